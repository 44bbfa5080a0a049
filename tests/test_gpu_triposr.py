"""The commercial-safe mesh builder (TripoSR, pipeline/backends/gpu/triposr_mesh.py and its network triposr_net.py).

What runs here, on CPU: the pre- and post-processing (plain numpy), the port's parameter names and shapes against
the ones TripoSR's code gives the released model.ckpt (built on the meta device: no memory), its DINO encoder
against transformers' own ViTModel, and a tiny random TripoSR (the released config.yaml shrunk) saved as
`model.ckpt` in a verified weights folder, planned by `PlannedBackends` under commercial-safe and run on a real
MeshRequest. `test_the_real_model_rebuilds_a_figure` runs where the pulled weights are (`DROPFIT_REAL_WEIGHTS=DIR`)
and skips otherwise.
"""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from pipeline.backends.gpu.triposr_mesh import (
    CONFIG_FILE,
    DINO_CONFIG,
    MODEL_FILE,
    THRESHOLD,
    TripoSRMeshBuilder,
    conditioning_image,
    foreground_square,
    front_view,
    isosurface,
    shape_mesh,
)
from pipeline.backends.protocols import MESH_VIEW_TAGS, MeshBuilder, MeshRequest
from pipeline.backends.table import BACKENDS

RELEASED_CONFIG: dict[str, Any] = {  # stabilityai/TripoSR's config.yaml
    "cond_image_size": 512,
    "image_tokenizer_cls": "tsr.models.tokenizers.image.DINOSingleImageTokenizer",
    "image_tokenizer": {"pretrained_model_name_or_path": "facebook/dino-vitb16"},
    "tokenizer_cls": "tsr.models.tokenizers.triplane.Triplane1DTokenizer",
    "tokenizer": {"plane_size": 32, "num_channels": 1024},
    "backbone_cls": "tsr.models.transformer.transformer_1d.Transformer1D",
    "backbone": {"in_channels": "${tokenizer.num_channels}", "num_attention_heads": 16, "attention_head_dim": 64,
                 "num_layers": 16, "cross_attention_dim": 768},
    "post_processor_cls": "tsr.models.network_utils.TriplaneUpsampleNetwork",
    "post_processor": {"in_channels": 1024, "out_channels": 40},
    "decoder_cls": "tsr.models.network_utils.NeRFMLP",
    "decoder": {"in_channels": 120, "n_neurons": 64, "n_hidden_layers": 9, "activation": "silu"},
    "renderer_cls": "tsr.models.nerf_renderer.TriplaneNeRFRenderer",
    "renderer": {"radius": 0.87, "feature_reduction": "concat", "density_activation": "exp", "density_bias": -1.0,
                 "num_samples_per_ray": 128},
}
DINO_VITB16 = {"model_type": "vit", "hidden_act": "gelu", "hidden_size": 768, "num_hidden_layers": 12,
               "num_attention_heads": 12, "intermediate_size": 3072, "image_size": 224, "patch_size": 16,
               "num_channels": 3, "layer_norm_eps": 1e-12, "qkv_bias": True}
TINY_DINO = {**DINO_VITB16, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 64, "image_size": 32}
RESOLUTION = 24  # DROPFIT_MESH_RESOLUTION for the tiny model


def tiny_config() -> dict[str, Any]:
    config = copy.deepcopy(RELEASED_CONFIG)
    config["cond_image_size"] = 64  # 4 x 4 patches of a 2 x 2 grid: the position embeddings are interpolated
    config["tokenizer"] = {"plane_size": 4, "num_channels": 32}
    config["backbone"].update(num_attention_heads=2, attention_head_dim=16, num_layers=1, cross_attention_dim=32,
                              norm_num_groups=8)
    config["post_processor"] = {"in_channels": 32, "out_channels": 8}
    config["decoder"].update(in_channels=24, n_neurons=16, n_hidden_layers=3)
    return config


def figure_view(width: int = 96, height: int = 160) -> np.ndarray:
    view = np.zeros((height, width, 4), dtype=np.uint8)
    view[20:150, 30:70] = (200, 60, 60, 255)
    view[22:40, 40:60] = (230, 190, 160, 255)  # a head
    return view


def request(views: dict[str, np.ndarray] | None = None) -> MeshRequest:
    return MeshRequest(views=views if views is not None else {tag: figure_view() for tag in MESH_VIEW_TAGS}, seed=3)


def write_tiny_triposr(folder: Path, seed: int = 0) -> Path:
    """A random TripoSR of `tiny_config()` as `dropfit weights pull --only triposr` lays out the real one. The
    decoder's density bias is set so that the figure's density field crosses TripoSR's threshold (half the grid
    inside): random weights alone give a field that is all outside, or all inside."""
    import torch

    from pipeline.backends.gpu.triposr_mesh import predict
    from pipeline.backends.gpu.triposr_net import TripoSRNet, shape_of

    torch.manual_seed(seed)
    net = TripoSRNet(shape_of(tiny_config(), TINY_DINO)).eval()
    density = predict(net, conditioning_image(figure_view()), RESOLUTION)
    with torch.no_grad():
        net.decoder.layers[-1].bias[0] += math.log(THRESHOLD) - float(np.median(np.log(density)))
    (folder / DINO_CONFIG).parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), folder / MODEL_FILE)
    (folder / CONFIG_FILE).write_text(yaml.safe_dump(tiny_config(), sort_keys=False))
    (folder / DINO_CONFIG).write_text(json.dumps(TINY_DINO))
    return folder


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights folder holding the tiny TripoSR, verified (its manifest written) as a pull leaves it."""
    from pipeline.backends.weights import write_manifest

    weights = tmp_path_factory.mktemp("weights")
    write_tiny_triposr(weights / "triposr")
    write_manifest(weights, ["triposr"])
    return weights


# ---- preprocess ------------------------------------------------------------------------------------------------


def test_only_a_checked_front_view_is_used() -> None:
    assert np.array_equal(front_view(request()), figure_view())
    with pytest.raises(ValueError, match="front"):
        front_view(request({"back": figure_view()}))
    with pytest.raises(ValueError, match="front"):
        front_view(request({"front": figure_view(), "top": figure_view()}))
    with pytest.raises(ValueError, match="RGBA"):
        front_view(request({"front": figure_view()[..., :3]}))
    with pytest.raises(ValueError, match="no subject"):
        front_view(request({"front": np.zeros((10, 10, 4), np.uint8)}))


def test_the_subject_is_centred_at_85_percent_of_a_square_on_grey() -> None:
    """TripoSR's resize_foreground(0.85) and grey fill (run.py), on a 40 x 130 subject."""
    square = foreground_square(figure_view())
    assert square.shape == (151, 151, 4)  # the 129-row box (the reference drops its last row) / 0.85
    rows, cols = np.nonzero(square[..., 3])
    assert (rows.min(), rows.max() + 1) == (11, 140) and (cols.min(), cols.max() + 1) == (56, 95)
    image = conditioning_image(figure_view())
    assert image.shape == (151, 151, 3) and image.dtype == np.uint8
    assert tuple(image[0, 0]) == (127, 127, 127)  # grey 0.5, truncated as the reference does
    assert tuple(image[80, 60]) == (200, 60, 60)
    half = figure_view()
    half[..., 3] = np.where(half[..., 3] > 0, 102, 0)  # 40 % opaque: between the colour and the grey
    assert tuple(conditioning_image(half)[80, 60]) == (156, 100, 100)


# ---- postprocess -----------------------------------------------------------------------------------------------


def ball_density(resolution: int = 32, radius: float = 0.87, ball: float = 0.5) -> np.ndarray:
    axis = np.linspace(-radius, radius, resolution)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    return THRESHOLD * np.exp(6 * (ball - np.sqrt(x**2 + y**2 + (z - 0.1) ** 2)))  # THRESHOLD on the sphere


def test_the_isosurface_is_the_threshold_crossing_in_the_model_cube_facing_out() -> None:
    vertices, faces = isosurface(ball_density(), radius=0.87)
    mesh = shape_mesh(vertices, faces)
    v = mesh.vertices.astype(np.float64)
    assert np.allclose(np.linalg.norm(v - (0, 0, 0.1), axis=1), 0.5, atol=0.02)  # x, y, z as the grid's axes
    signed = np.einsum("ij,ij->i", v[mesh.faces[:, 0]], np.cross(v[mesh.faces[:, 1]], v[mesh.faces[:, 2]])).sum() / 6
    assert signed == pytest.approx(4 / 3 * math.pi * 0.5**3, rel=0.05)  # counter-clockwise seen from outside
    assert isosurface(np.full((8, 8, 8), 1.0), radius=0.87)[1].shape == (0, 3)  # nowhere dense: no surface
    assert isosurface(np.full((8, 8, 8), 1e3), radius=0.87)[1].shape == (0, 3)


def test_shape_mesh_drops_degenerate_faces_and_unused_vertices_and_reduces_faces() -> None:
    vertices = np.arange(18, dtype=np.float64).reshape(6, 3)
    mesh = shape_mesh(vertices, np.array([[0, 2, 3], [1, 1, 4], [3, 2, 5]]))
    assert mesh.faces.dtype == np.int32 and mesh.vertices.dtype == np.float32
    assert mesh.faces.tolist() == [[0, 1, 2], [2, 1, 3]]
    assert mesh.vertices.tolist() == vertices[[0, 2, 3, 5]].tolist()
    assert shape_mesh(vertices, np.array([[1, 1, 2]])).empty
    ball = shape_mesh(*isosurface(ball_density(48), radius=0.87), max_faces=800)
    assert 0 < len(ball.faces) <= 800 and np.allclose(np.linalg.norm(ball.vertices - (0, 0, 0.1), axis=1), 0.5,
                                                       atol=0.05)


# ---- the port's names: those of TripoSR's code, which model.ckpt was saved with ------------------------------


def reference_keys(vit_layers: int, blocks: int, decoder_linears: int) -> set[str]:
    """The released TSR's state-dict keys, as tsr/ (at the ported commit) and transformers 4.35's ViTModel name
    them: DINOSingleImageTokenizer.model is a ViTModel (pooler included), Triplane1DTokenizer.embeddings, the
    Transformer1D's blocks (diffusers' names), TriplaneUpsampleNetwork.upsample, NeRFMLP.layers (a Sequential of
    Linear, activation, ..., Linear)."""
    vit = "image_tokenizer.model."
    keys = {f"{vit}embeddings.cls_token", f"{vit}embeddings.position_embeddings",
            f"{vit}embeddings.patch_embeddings.projection.weight", f"{vit}embeddings.patch_embeddings.projection.bias",
            f"{vit}layernorm.weight", f"{vit}layernorm.bias", f"{vit}pooler.dense.weight", f"{vit}pooler.dense.bias",
            "tokenizer.embeddings", "post_processor.upsample.weight", "post_processor.upsample.bias"}
    for i in range(vit_layers):
        layer = f"{vit}encoder.layer.{i}."
        for name in ("attention.attention.query", "attention.attention.key", "attention.attention.value",
                     "attention.output.dense", "intermediate.dense", "output.dense", "layernorm_before",
                     "layernorm_after"):
            keys |= {f"{layer}{name}.weight", f"{layer}{name}.bias"}
    keys |= {f"backbone.{n}.{p}" for n in ("norm", "proj_in", "proj_out") for p in ("weight", "bias")}
    for i in range(blocks):
        block = f"backbone.transformer_blocks.{i}."
        keys |= {f"{block}{norm}.{p}" for norm in ("norm1", "norm2", "norm3") for p in ("weight", "bias")}
        for attn in ("attn1", "attn2"):
            keys |= {f"{block}{attn}.to_q.weight", f"{block}{attn}.to_k.weight", f"{block}{attn}.to_v.weight",
                     f"{block}{attn}.to_out.0.weight", f"{block}{attn}.to_out.0.bias"}
        keys |= {f"{block}ff.net.{n}.{p}" for n in ("0.proj", "2") for p in ("weight", "bias")}
    keys |= {f"decoder.layers.{2 * i}.{p}" for i in range(decoder_linears) for p in ("weight", "bias")}
    return keys


def test_the_released_models_parameters_are_named_and_shaped_as_tsr_names_them() -> None:
    import torch

    from pipeline.backends.gpu.triposr_net import TripoSRNet, shape_of

    with torch.device("meta"):
        net = TripoSRNet(shape_of(RELEASED_CONFIG, DINO_VITB16))
    state = net.state_dict()
    assert set(state) == reference_keys(vit_layers=12, blocks=16, decoder_linears=10)
    shapes = {key: tuple(value.shape) for key, value in state.items()}
    assert shapes["image_tokenizer.model.embeddings.position_embeddings"] == (1, 197, 768)
    assert shapes["image_tokenizer.model.encoder.layer.11.attention.attention.query.weight"] == (768, 768)
    assert shapes["tokenizer.embeddings"] == (3, 1024, 32, 32)
    assert shapes["backbone.transformer_blocks.15.attn2.to_k.weight"] == (1024, 768)  # cross-attends to DINO
    assert shapes["backbone.transformer_blocks.0.ff.net.0.proj.weight"] == (8192, 1024)  # GEGLU: 2 x 4 x 1024
    assert shapes["post_processor.upsample.weight"] == (1024, 40, 2, 2)
    assert shapes["decoder.layers.0.weight"] == (64, 120) and shapes["decoder.layers.18.weight"] == (4, 64)
    assert sum(math.prod(s) for s in shapes.values()) == pytest.approx(420e6, rel=0.02)  # model.ckpt: 1.68 GB fp32


def test_the_image_encoder_is_transformers_vit_under_its_old_names() -> None:
    """At its native size (no interpolation) the port's DINO equals transformers' ViTModel holding its weights."""
    import torch
    from transformers import ViTConfig, ViTModel

    from pipeline.backends.gpu.triposr_net import DinoViT, VitShape

    torch.manual_seed(1)
    port = DinoViT(VitShape(**{k: v for k, v in TINY_DINO.items() if k not in ("model_type", "hidden_act")})).eval()
    renames = (("encoder.layer.", "layers."), ("attention.attention.query", "attention.q_proj"),
               ("attention.attention.key", "attention.k_proj"), ("attention.attention.value", "attention.v_proj"),
               ("attention.output.dense", "attention.o_proj"), ("intermediate.dense", "mlp.fc1"),
               ("output.dense", "mlp.fc2"))
    state = {}
    for key, value in port.state_dict().items():
        for old, new in renames:
            key = key.replace(old, new)
        state[key] = value
    reference = ViTModel(ViTConfig(**TINY_DINO)).eval()
    reference.load_state_dict(state, strict=True)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(port(images), reference(images).last_hidden_state, atol=1e-5)
        assert port(torch.randn(1, 3, 64, 64)).shape == (1, 17, 32)  # 4 x 4 patches + CLS, interpolated


def test_a_config_the_port_does_not_implement_is_refused() -> None:
    from pipeline.backends.gpu.triposr_net import shape_of

    assert shape_of(RELEASED_CONFIG, DINO_VITB16).num_channels == 1024  # the ${tokenizer.num_channels} reference
    other = {**RELEASED_CONFIG, "decoder_cls": "tsr.models.network_utils.OtherMLP"}
    with pytest.raises(ValueError, match="OtherMLP"):
        shape_of(other, DINO_VITB16)
    softplus = {**RELEASED_CONFIG, "renderer": {**RELEASED_CONFIG["renderer"], "density_activation": "softplus"}}
    with pytest.raises(ValueError, match="density_activation"):
        shape_of(softplus, DINO_VITB16)
    with pytest.raises(ValueError, match="cross_attention_dim"):
        shape_of(RELEASED_CONFIG, {**DINO_VITB16, "hidden_size": 1024})


# ---- the tiny model, through the table -----------------------------------------------------------------------


def test_its_row_is_commercial_safes_mesh_builder() -> None:
    row = BACKENDS["triposr"]
    assert BACKENDS.commercial_use(row.key) and row.gpu and row.profiles == ("commercial-safe",)
    assert row.serves == ("MeshBuilder",) and BACKENDS.plan("commercial-safe")["MeshBuilder"] == "triposr"
    assert BACKENDS.plan("gpu")["MeshBuilder"] == "hunyuan3d-2mv" and BACKENDS.plan("cpu")["MeshBuilder"] is None


def test_the_tiny_model_builds_a_mesh_from_the_verified_weights(tiny_weights: Path) -> None:
    from pipeline.backends.config import ModelConfig
    from pipeline.backends.planned import PlannedBackends

    backends = PlannedBackends(ModelConfig(profile="commercial-safe", weights_dir=tiny_weights,
                                           mesh_resolution=RESOLUTION))
    builder = backends.serving("MeshBuilder")
    checked: MeshBuilder = builder
    assert isinstance(builder, TripoSRMeshBuilder) and isinstance(checked, MeshBuilder)
    assert builder.resolution == RESOLUTION and builder.folder == tiny_weights / "triposr"
    mesh = builder.build_mesh(request())
    assert not mesh.empty and mesh.vertices.dtype == np.float32 and mesh.faces.dtype == np.int32
    assert np.abs(mesh.vertices).max() <= 0.87 + 1e-5  # inside the renderer's cube
    assert mesh.faces.min() >= 0 and mesh.faces.max() == len(mesh.vertices) - 1  # every vertex used
    assert (mesh.faces[:, 0] != mesh.faces[:, 1]).all() and (mesh.faces[:, 1] != mesh.faces[:, 2]).all()
    again = builder.build_mesh(request())
    assert np.array_equal(again.faces, mesh.faces)  # deterministic: one model, no sampling
    other = figure_view()
    other[60:150, 30:50, 3] = 0  # another silhouette: another field
    assert not np.array_equal(builder.build_mesh(request({"front": other})).vertices, mesh.vertices)


def test_phase_4_places_the_tiny_models_mesh_and_scores_it(tiny_weights: Path) -> None:
    """The builder's answer in the frame phase 4 expects: `rebuild` asks it for the front of 8 rendered views of a
    standing box figure, places the mesh by silhouette and records the builder; the random model's blob is then
    kept or declined by its IoU, never an error."""
    import trimesh

    from pipeline.geometry import Camera
    from pipeline.render.raster import rasterize
    from pipeline.render.shade import BACKGROUND
    from pipeline.render.views import orbit_cameras
    from pipeline.viewer3d.rebuild import MIN_IOU, rebuild

    body = trimesh.creation.box(extents=(0.45, 0.25, 1.7))
    body.apply_translation((0, 0, 0.85))
    vertices, faces = np.asarray(body.vertices), np.asarray(body.faces)
    rotation = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # at -y, looking along +y, image up = world z
    camera = Camera(focal_px=320.0, cx=60.0, cy=80.0, rotation=rotation,
                    translation=-rotation @ np.array([0.0, -4.0, 0.85]), image_size=(120, 160))
    views = {}
    for angle, view_camera in zip(("000", "045", "090", "135", "180", "225", "270", "315"),
                                  orbit_cameras(camera, np.array([0.0, 0.0, 0.85]),
                                                (0, 45, 90, 135, 180, 225, 270, 315)), strict=True):
        image = np.full((160, 120, 3), BACKGROUND, dtype=np.uint8)
        image[rasterize(vertices, faces, view_camera).mask] = (180, 40, 40)
        views[angle] = (image, view_camera)
    builder = TripoSRMeshBuilder(tiny_weights / "triposr", device="cpu", resolution=RESOLUTION)
    rebuilt = rebuild(builder, views, vertices, faces)
    record = rebuilt.record
    assert str(record["builder"]).startswith("triposr TripoSR (port of VAST-AI-Research/TripoSR@d26e33181947)")
    assert record["status"] in ("rebuilt", "declined") and record["faces"] and 0 <= record["silhouette_iou"] <= 1
    assert (rebuilt.mesh is None) == (record["silhouette_iou"] < MIN_IOU)


def test_a_missing_file_is_named_and_never_downloaded(tiny_weights: Path, tmp_path: Path) -> None:
    import shutil

    folder = shutil.copytree(tiny_weights / "triposr", tmp_path / "triposr")
    (folder / DINO_CONFIG).unlink()
    with pytest.raises(FileNotFoundError, match=r"dino-vitb16/config.json missing.*weights pull --only triposr"):
        TripoSRMeshBuilder(folder, device="cpu").load()
    with pytest.raises(FileNotFoundError, match="config.yaml, model.ckpt, dino-vitb16/config.json missing"):
        TripoSRMeshBuilder(tmp_path / "nothing", device="cpu").load()


def test_unverified_weights_are_refused_before_anything_loads(tmp_path: Path) -> None:
    from pipeline.backends.config import ModelConfig
    from pipeline.backends.planned import PlannedBackends
    from pipeline.backends.weights import WeightsError

    write_tiny_triposr(tmp_path / "weights" / "triposr")  # no manifest: never pulled there
    backends = PlannedBackends(ModelConfig(profile="commercial-safe", weights_dir=tmp_path / "weights"))
    with pytest.raises(WeightsError, match="never pulled there"):
        backends.serving("MeshBuilder")


def test_a_checkpoint_that_does_not_fit_the_config_names_the_file(tiny_weights: Path, tmp_path: Path) -> None:
    import shutil

    folder = shutil.copytree(tiny_weights / "triposr", tmp_path / "triposr")
    config = tiny_config()
    config["backbone"]["num_layers"] = 2  # a block the checkpoint has no weights for
    (folder / CONFIG_FILE).write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match=r"model.ckpt is not a TripoSR checkpoint.*transformer_blocks.1"):
        TripoSRMeshBuilder(folder, device="cpu").load()


# ---- the real model (opt-in) -----------------------------------------------------------------------------------


def test_the_real_model_rebuilds_a_figure() -> None:
    folder = os.environ.get("DROPFIT_REAL_WEIGHTS")
    if not folder or not (Path(folder) / "triposr").is_dir():
        pytest.skip("set DROPFIT_REAL_WEIGHTS to a folder where `dropfit weights pull --only triposr` ran")
    from pipeline.backends.weights import verify

    mesh = TripoSRMeshBuilder(verify(Path(folder), "triposr")).build_mesh(request())
    assert not mesh.empty and len(mesh.faces) <= 60000
    assert np.abs(mesh.vertices).max() <= 0.87
    extent = mesh.vertices.max(axis=0) - mesh.vertices.min(axis=0)
    assert extent[2] == extent.max()  # a standing figure: tallest along TripoSR's up (z)
