"""A tiny random-weight Hunyuan3D-2mv shape model folder, built from a config the way the real one is laid out.

The real `tencent/Hunyuan3D-2mv` subfolder `hunyuan3d-dit-v2-mv` holds `config.yaml` (hy3dgen class paths and
their parameters: the flow-matching DiT, the shape VAE, a DINOv2 multi-view image encoder, the multi-view image
processor, the scheduler) and `model.fp16.safetensors` (every module's weights, keys prefixed `model.`, `vae.`,
`conditioner.`). `write_tiny_hunyuan_mv` writes the same two files with every size shrunk, so that the adapter
loads them and hy3dgen's pipeline runs on CPU in a second. The geometry decoder's output bias is set to the
median of its outputs over the grid, so marching cubes finds a surface (random weights give noise).

The real checkpoint was saved with transformers 4: its DINOv2 image encoder has that version's parameter names
(`attention.attention.query`, `attention.output.dense`, and for a SwiGLU DINOv2 `mlp.weights_in` / `weights_out`),
which transformers 5 renamed. A model built here has the new names, so `legacy_dinov2_names` writes them back
the old way; the test that transformers' own `from_pretrained` reads them (tests/test_gpu_mesh.py) holds the
tiny file to the real file's layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

MODEL_FILE = "model.fp16.safetensors"
IMAGE_SIZE = 28  # two DINOv2 patches of 14 a side
PROCESSOR_SIZE = 64


def tiny_config() -> dict[str, Any]:
    hidden, latent_channels, latents = 32, 8, 16
    dino = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
            "image_size": IMAGE_SIZE, "patch_size": 14, "num_channels": 3, "layerscale_value": 1.0,
            "mlp_ratio": 2, "hidden_act": "gelu"}
    return {
        "model": {"target": "hy3dgen.shapegen.models.Hunyuan3DDiT", "params": {
            "in_channels": latent_channels, "context_in_dim": dino["hidden_size"], "hidden_size": hidden,
            "mlp_ratio": 2.0, "num_heads": 2, "depth": 1, "depth_single_blocks": 1, "axes_dim": [16],
            "theta": 10000, "qkv_bias": True, "guidance_embed": False}},
        "vae": {"target": "hy3dgen.shapegen.models.ShapeVAE", "params": {
            "num_latents": latents, "embed_dim": latent_channels, "num_freqs": 4, "include_pi": False,
            "heads": 2, "width": hidden, "num_decoder_layers": 1, "qkv_bias": False, "qk_norm": True,
            "scale_factor": 1.0}},
        "conditioner": {"target": "hy3dgen.shapegen.models.SingleImageEncoder", "params": {
            "main_image_encoder": {"type": "DinoImageEncoderMV", "kwargs": {
                "config": dino, "view_num": 4, "image_size": IMAGE_SIZE, "use_cls_token": True}}}},
        "image_processor": {"target": "hy3dgen.shapegen.preprocessors.MVImageProcessorV2",
                            "params": {"size": PROCESSOR_SIZE, "border_ratio": 0.15}},
        "scheduler": {"target": "hy3dgen.shapegen.schedulers.FlowMatchEulerDiscreteScheduler",
                      "params": {"num_train_timesteps": 1000}},
    }


def write_tiny_hunyuan_mv(folder: Path, seed: int = 0) -> Path:
    """`folder` (created) with config.yaml and model.fp16.safetensors of a tiny random Hunyuan3D-2mv."""
    import safetensors.torch
    import torch
    from hy3dgen.shapegen.pipelines import instantiate_from_config

    folder.mkdir(parents=True, exist_ok=True)
    config = tiny_config()
    torch.manual_seed(seed)
    modules = {name: instantiate_from_config(config[name]) for name in ("model", "vae", "conditioner")}
    _centre_surface(modules["vae"])
    tensors = {f"{name}.{key}": value.detach().contiguous()
               for name, module in modules.items()
               for key, value in (legacy_dinov2_names(module.state_dict()) if name == "conditioner"
                                  else module.state_dict()).items()}
    safetensors.torch.save_file(tensors, str(folder / MODEL_FILE))
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def legacy_dinov2_names(state: dict[str, Any]) -> dict[str, Any]:
    """transformers 5's DINOv2 parameter names -> transformers 4's, as the real checkpoint has them: q/k/v/o
    projections back under `attention.attention` / `attention.output.dense`, SwiGLU's gate and up projections
    fused into one `weights_in` (gate rows first), its down projection as `weights_out`."""
    import torch

    renames = ((".attention.q_proj.", ".attention.attention.query."),
               (".attention.k_proj.", ".attention.attention.key."),
               (".attention.v_proj.", ".attention.attention.value."),
               (".attention.o_proj.", ".attention.output.dense."),
               (".mlp.down_proj.", ".mlp.weights_out."))
    out: dict[str, Any] = {}
    for key, value in state.items():
        if ".mlp.up_proj." in key:
            continue  # fused into weights_in with its gate projection below
        if ".mlp.gate_proj." in key:
            up = state[key.replace(".mlp.gate_proj.", ".mlp.up_proj.")]
            out[key.replace(".mlp.gate_proj.", ".mlp.weights_in.")] = torch.cat([value, up], dim=0).contiguous()
            continue
        for current, legacy in renames:
            key = key.replace(current, legacy)
        out[key] = value
    return out


def _centre_surface(vae: Any, resolution: int = 16) -> None:
    """Shift the geometry decoder's output so that half the grid is inside: a level set at 0 then exists."""
    import torch
    from hy3dgen.shapegen.models.autoencoders.volume_decoders import generate_dense_grid_points

    points, _, _ = generate_dense_grid_points(bbox_min=np.full(3, -1.01), bbox_max=np.full(3, 1.01),
                                              octree_resolution=resolution, indexing="ij")
    with torch.no_grad():
        latents = vae(torch.randn(1, *vae.latent_shape))
        logits = vae.geo_decoder(queries=torch.from_numpy(points).float().reshape(1, -1, 3), latents=latents)
        vae.geo_decoder.output_proj.bias -= logits.median()
