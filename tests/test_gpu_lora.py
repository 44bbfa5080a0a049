"""The try-on LoRA path: a tiny random LoRA saved as the CatVTON-FLUX LoRA is (diffusers'
`pytorch_lora_weights.safetensors`, keys `transformer.<module>.lora_A.weight`) loaded by `load_flux_fill` into a
tiny random FLUX Fill, from a file, from its folder, and from a verified weights folder through `PlannedBackends`,
then fused into the transformer (no adapter layer is left for inference to pay). LoRAs that do not fit the
transformer fail with a ValueError naming the file, including the two kinds diffusers itself would load silently
(no `transformer.` key at all; some module names unknown). On the CPU, or on CUDA in bfloat16 under
DROPFIT_TEST_DEVICE=cuda (tests/tiny_weights.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from pipeline.backends.config import ModelConfig
from pipeline.backends.gpu.tryon import DiffusersTryOnPainter
from pipeline.backends.planned import PlannedBackends
from pipeline.backends.protocols import TryOnRequest
from pipeline.backends.weights import write_manifest
from tiny_diffusers import tiny_flux_fill, tiny_flux_lora
from tiny_weights import adapter_device

if TYPE_CHECKING:
    import torch

for package in ("diffusers", "transformers", "peft"):
    pytest.importorskip(package, reason="the gpu extra (diffusers, transformers, peft) is not installed")

Tensors = dict[str, "torch.Tensor"]
DEVICE = adapter_device()
SIDE = 64


def request(seed: int = 0) -> TryOnRequest:
    """A 64x64 random render: the box (16, 24)-(48, 56) is repainted, the box (24, 2)-(40, 18) (the face) kept."""
    paint, keep = np.zeros((64, 64), np.float32), np.zeros((64, 64), np.float32)
    paint[24:56, 16:48] = 1.0
    keep[2:18, 24:40] = 1.0
    render = np.random.default_rng(100 + seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    garment = np.full((30, 20, 3), (200, 30, 30), dtype=np.uint8)
    return TryOnRequest(render, paint, keep, garment, "snug across the chest", seed)


def lora_modules(file: Path) -> set[str]:
    """The transformer modules a diffusers-format LoRA file names."""
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as weights:
        return {key.removeprefix("transformer.").split(".lora_A.")[0] for key in weights.keys()
                if key.startswith("transformer.") and ".lora_A." in key}


def wrapped_modules(pipe: object) -> set[str]:
    """The transformer modules peft wrapped with a LoRA layer."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return {name for name, module in pipe.transformer.named_modules()  # type: ignore[attr-defined]
            if isinstance(module, BaseTunerLayer)}


@pytest.fixture(scope="module")
def tiny_flux(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_flux_fill(tmp_path_factory.mktemp("tiny-flux-fill"))


@pytest.fixture(scope="module")
def tiny_lora(tiny_flux: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_flux_lora(tiny_flux, tmp_path_factory.mktemp("lora"))


@pytest.fixture(scope="module")
def with_lora(tiny_flux: Path, tiny_lora: Path) -> np.ndarray:
    """request(0) repainted with the LoRA given as its file."""
    painter = DiffusersTryOnPainter(tiny_flux, device=DEVICE, steps=2, max_side=SIDE, lora=tiny_lora)
    return painter.repaint([request(0)])[0]


def test_the_tiny_lora_has_the_diffusers_key_layout_and_non_zero_weights(tiny_lora: Path) -> None:
    from safetensors.torch import load_file

    weights = load_file(tiny_lora)
    assert tiny_lora.name == "pytorch_lora_weights.safetensors"
    assert "transformer.transformer_blocks.0.attn.to_q.lora_A.weight" in weights
    assert "transformer.single_transformer_blocks.0.attn.to_q.lora_B.weight" in weights
    assert all(key.startswith("transformer.") and key.endswith((".lora_A.weight", ".lora_B.weight")) for key in weights)
    assert all(weights[key].abs().max() > 0 for key in weights if ".lora_B." in key)  # peft's default would be 0


def test_the_lora_is_fused_into_the_transformer_and_changes_only_the_repainted_region(
        tiny_flux: Path, tiny_lora: Path, with_lora: np.ndarray) -> None:
    painter = DiffusersTryOnPainter(tiny_flux, device=DEVICE, steps=2, max_side=SIDE, lora=tiny_lora)
    pipe = painter.load()
    assert painter.lora_modules == lora_modules(tiny_lora) and len(painter.lora_modules) == 15
    assert wrapped_modules(pipe) == set() and pipe.get_list_adapters() == {}  # fused: no adapter layer left
    assert painter.version.startswith(f"{tiny_flux.name} + lora pytorch_lora_weights.safetensors (diffusers ")
    req = request(0)
    assert np.array_equal(painter.repaint([req])[0], with_lora)  # deterministic: the difference below is the LoRA's
    (without,) = DiffusersTryOnPainter(tiny_flux, device=DEVICE, steps=2, max_side=SIDE).repaint([req])
    inside = (req.paint_mask > 0) & (req.keep_mask == 0)
    assert (with_lora[inside] != without[inside]).any(axis=1).mean() > 0.5
    assert np.array_equal(with_lora[req.paint_mask == 0], req.render[req.paint_mask == 0])
    assert np.array_equal(with_lora[req.keep_mask > 0], req.render[req.keep_mask > 0])


def test_the_fused_lora_paints_as_the_lora_kept_as_adapter_layers(
        tiny_flux: Path, tiny_lora: Path, with_lora: np.ndarray) -> None:
    unfused = DiffusersTryOnPainter(tiny_flux, device=DEVICE, steps=2, max_side=SIDE, lora=tiny_lora, fuse_lora=False)
    assert wrapped_modules(unfused.load()) == lora_modules(tiny_lora) == unfused.lora_modules
    (kept,) = unfused.repaint([request(0)])
    tolerance = 8 if DEVICE == "cuda" else 2  # bfloat16 rounds the fused weights
    assert np.abs(kept.astype(int) - with_lora.astype(int)).max() <= tolerance


def test_the_lora_given_as_its_folder_paints_as_the_lora_given_as_its_file(
        tiny_flux: Path, tiny_lora: Path, with_lora: np.ndarray) -> None:
    painter = DiffusersTryOnPainter(tiny_flux, device=DEVICE, steps=2, max_side=SIDE, lora=tiny_lora.parent)
    painter.load()
    assert painter.lora_modules == lora_modules(tiny_lora)
    assert np.array_equal(painter.repaint([request(0)])[0], with_lora)


def halve_lora_b(weights: Tensors) -> Tensors:
    """As if trained for a narrower transformer: every lora_B has half the output rows."""
    return {k: v[: v.shape[0] // 2].contiguous() if ".lora_B." in k else v for k, v in weights.items()}


def renumber_blocks(weights: Tensors) -> Tensors:
    """Every key names block 7, which the one-block tiny transformer does not have."""
    return {k.replace("blocks.0.", "blocks.7."): v for k, v in weights.items()}


def drop_prefix(weights: Tensors) -> Tensors:
    """Peft's own keys, without diffusers' `transformer.` prefix: diffusers skips them all (and only logs)."""
    return {k.removeprefix("transformer."): v for k, v in weights.items()}


def rename_ff_context(weights: Tensors) -> Tensors:
    """Most keys fit, two modules do not exist: diffusers wraps the rest and says nothing."""
    return {k.replace(".ff_context.", ".ff_extra."): v for k, v in weights.items()}


def not_a_lora(weights: Tensors) -> Tensors:
    return {"transformer.proj_out.weight": next(iter(weights.values()))}


@pytest.mark.parametrize(("broken", "says"), [
    (halve_lora_b, "does not fit the FLUX Fill transformer: Error(s) in loading state_dict"),
    (renumber_blocks, "does not fit the FLUX Fill transformer: Target modules"),
    (drop_prefix, "loaded nothing into the FLUX Fill transformer"),
    (rename_ff_context, "names 2 modules the FLUX Fill transformer does not have, e.g. 'transformer_blocks.0.ff_extra"),
    (not_a_lora, "does not fit the FLUX Fill transformer: Invalid LoRA checkpoint"),
])
def test_a_lora_that_does_not_fit_the_transformer_fails_naming_the_file(
        tiny_flux: Path, tiny_lora: Path, tmp_path: Path, broken: Callable[[Tensors], Tensors], says: str) -> None:
    from safetensors.torch import load_file, save_file

    file = tmp_path / "pytorch_lora_weights.safetensors"
    save_file(broken(load_file(tiny_lora)), file)
    with pytest.raises(ValueError) as raised:
        DiffusersTryOnPainter(tiny_flux, device=DEVICE, steps=2, lora=file).load()
    assert f"the try-on LoRA {file} " in str(raised.value) and says in str(raised.value)


def test_a_missing_lora_fails_clearly_without_asking_the_hub(tiny_flux: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no try-on LoRA at .*pytorch_lora_weights.safetensors"):
        DiffusersTryOnPainter(tiny_flux, device=DEVICE, lora=tmp_path).load()  # a folder without the file
    with pytest.raises(FileNotFoundError, match="no try-on LoRA at .*gone.safetensors"):
        DiffusersTryOnPainter(tiny_flux, device=DEVICE, lora=tmp_path / "gone.safetensors").load()


@pytest.mark.parametrize("has_lora", [True, False])
def test_the_gpu_profile_builds_the_painter_with_the_lora_only_when_the_weights_have_it(
        tmp_path: Path, has_lora: bool) -> None:
    weights = tmp_path / "weights"
    flux = tiny_flux_fill(weights / "tryon" / "flux-fill")
    lora = tiny_flux_lora(flux, weights / "tryon" / "lora") if has_lora else None
    write_manifest(weights, ["tryon"])
    config = ModelConfig(profile="gpu", weights_dir=weights, tryon_steps=2, tryon_max_side=64)
    painter = PlannedBackends(config).serving("TryOnPainter")
    assert isinstance(painter, DiffusersTryOnPainter)
    assert painter.path == flux and painter.lora == lora and painter.steps == 2
    assert ("+ lora pytorch_lora_weights.safetensors" in painter.version) is has_lora
    pipe = painter.load()
    assert painter.lora_modules == (lora_modules(lora) if lora is not None else set())
    assert wrapped_modules(pipe) == set()  # fused when there is one
