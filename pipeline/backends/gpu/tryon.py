"""The try-on painter on FLUX.1 Fill: in-context garment transfer onto phase 3's renders (CatVTON-FLUX style).

Each request becomes one diptych: the garment photo letterboxed on white on the left, the render on the right.
The inpainting mask is empty on the garment half and covers the render's garment region (grown a little, less
the keep region) on the right, so the model repaints the garment while it sees the garment itself in the same
image. The right half comes back, is resized to the render's size and composited: the render stays exactly as it
was outside the paint mask and inside the keep mask (the face), with an inward feather at the paint mask's edge.

preprocess (`diptychs`) and postprocess (`tryon_output`) are plain numpy and PIL; only `predict` touches torch.
The pipeline loads from a local folder only (`local_files_only=True`), once per painter, on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline.backends.installed import installed_version
from pipeline.backends.protocols import TryOnRequest
from pipeline.backends.table import BuildContext
from pipeline.errors import RetryableError

PROMPT_TEMPLATE = "The pair of images shows a garment and the same garment worn by a person"
MAX_SIDE = 1024  # each half's longer side at most this (FLUX.1 Fill's training resolution)
GROW_FRAC = 0.01  # the model's mask grows past the paint mask by this fraction of the longer side
FEATHER_FRAC = 0.006  # the composite fades in over this fraction of the longer side, inside the paint mask
MAX_SEQUENCE_LENGTH = 512  # T5 tokens, as FLUX.1-dev and its Fill variant were trained
LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"  # diffusers' name for a pipeline's LoRA file


@dataclass(frozen=True)
class Diptych:
    """One request as the pipeline sees it."""

    image: np.ndarray  # (h, 2w, 3) uint8: the garment letterboxed on white | the render resized to (w, h)
    mask: np.ndarray  # (h, 2w) float32: 0 on the garment half, 1 where the render half is repainted
    prompt: str
    seed: int

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the whole diptych."""
        return self.image.shape[1], self.image.shape[0]


# ---- preprocess ------------------------------------------------------------------------------------------------


def work_size(width: int, height: int, multiple: int, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """(w, h) of one half: scaled down to fit `max_side`, each side rounded to a multiple of `multiple`."""
    scale = min(1.0, max_side / max(width, height))
    w, h = (max(multiple, round(side * scale / multiple) * multiple) for side in (width, height))
    return w, h


def letterbox(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w, 3) uint8: `image` scaled to fit `size` = (w, h), centred on white."""
    width, height = size
    scale = min(width / image.shape[1], height / image.shape[0])
    fit = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    x0, y0 = (width - fit[0]) // 2, (height - fit[1]) // 2
    canvas[y0:y0 + fit[1], x0:x0 + fit[0]] = resize_rgb(image, fit)
    return canvas


def resize_rgb(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS), dtype=np.uint8)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (mask.shape[1], mask.shape[0]) == tuple(size):
        return mask.astype(np.float32)
    resized = Image.fromarray(mask.astype(np.float32)).resize(size, Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def grow(mask: np.ndarray, px: int) -> np.ndarray:
    """(H, W) bool: `mask` > 0.5, dilated by `px` pixels (a disc)."""
    import cv2

    binary = (mask > 0.5).astype(np.uint8)
    if px <= 0:
        return binary > 0
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(binary, disc) > 0


def repaint_mask(paint_mask: np.ndarray, keep_mask: np.ndarray, grow_px: int) -> np.ndarray:
    """(H, W) float32 in {0, 1}: what the model may repaint, the paint mask grown by `grow_px`, less the keep mask."""
    return (grow(paint_mask, grow_px) & ~(keep_mask > 0.5)).astype(np.float32)


def tryon_prompt(cues: str) -> str:
    cues = cues.strip().rstrip(".")
    return f"{PROMPT_TEMPLATE}; {cues}." if cues else f"{PROMPT_TEMPLATE}."


def diptych(request: TryOnRequest, half: tuple[int, int], grow_frac: float = GROW_FRAC) -> Diptych:
    """The request as one image of size (2w, h) for `half` = (w, h): garment left, render right."""
    check_request(request)
    height, width = request.render.shape[:2]
    mask = repaint_mask(request.paint_mask, request.keep_mask, round(grow_frac * max(width, height)))
    image = np.concatenate([letterbox(request.garment, half), resize_rgb(request.render, half)], axis=1)
    right = (resize_mask(mask, half) > 0.5).astype(np.float32)
    full_mask = np.concatenate([np.zeros_like(right), right], axis=1)
    return Diptych(image=image, mask=full_mask, prompt=tryon_prompt(request.prompt), seed=request.seed)


def diptychs(requests: Sequence[TryOnRequest], multiple: int, max_side: int = MAX_SIDE) -> list[Diptych]:
    """preprocess: one diptych per request; each half's sides are multiples of `multiple` (the pipeline's)."""
    return [diptych(r, work_size(r.render.shape[1], r.render.shape[0], multiple, max_side)) for r in requests]


def check_request(request: TryOnRequest) -> None:
    shape = request.render.shape
    if request.render.ndim != 3 or shape[2] != 3 or request.render.dtype != np.uint8:
        raise ValueError(f"render must be (H, W, 3) uint8, got {shape} {request.render.dtype}")
    for name in ("paint_mask", "keep_mask"):
        if getattr(request, name).shape != shape[:2]:
            raise ValueError(f"{name} is {getattr(request, name).shape}, the render is {shape[:2]}")
    if request.garment.ndim != 3 or request.garment.shape[2] != 3:
        raise ValueError(f"garment must be (h, w, 3), got {request.garment.shape}")


# ---- postprocess ---------------------------------------------------------------------------------------------


def right_half(image: np.ndarray) -> np.ndarray:
    return image[:, image.shape[1] // 2:]


def feather(mask: np.ndarray, px: int) -> np.ndarray:
    """(H, W) float32 alpha: 0 outside `mask` > 0.5, rising to 1 over `px` pixels inward from its edge."""
    import cv2

    binary = (mask > 0.5).astype(np.uint8)
    if px <= 0:
        return binary.astype(np.float32)
    inside = cv2.distanceTransform(binary, cv2.DIST_L2, 3)
    return np.clip(inside / (px + 1), 0.0, 1.0).astype(np.float32) * binary


def composite(render: np.ndarray, generated: np.ndarray, paint_mask: np.ndarray, keep_mask: np.ndarray,
              feather_px: int) -> np.ndarray:
    """(H, W, 3) uint8: `generated` inside the paint mask (feathered inward), the render exactly elsewhere and
    wherever the keep mask is 1."""
    alpha = feather(paint_mask, feather_px) * (1.0 - np.clip(keep_mask, 0.0, 1.0))
    mixed = render.astype(np.float32) + alpha[..., None] * (generated.astype(np.float32) - render)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def tryon_output(request: TryOnRequest, generated: np.ndarray, feather_frac: float = FEATHER_FRAC) -> np.ndarray:
    """postprocess: the diptych's right half, at the render's size, composited over the render."""
    height, width = request.render.shape[:2]
    painted = resize_rgb(right_half(generated), (width, height))
    return composite(request.render, painted, request.paint_mask, request.keep_mask,
                     round(feather_frac * max(width, height)))


def to_uint8(images: np.ndarray) -> np.ndarray:
    """The pipeline's float images in [0, 1] -> uint8."""
    return np.clip(np.rint(np.asarray(images, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


# ---- the painter -----------------------------------------------------------------------------------------------


class DiffusersTryOnPainter:
    """`TryOnPainter` on a FLUX.1 Fill pipeline folder (diffusers layout), optionally with a try-on LoRA.

    Loads once, lazily, from local files only; bfloat16 on CUDA, float32 on CPU. Calls are serialized: the
    scheduler keeps per-call state, so one pipeline runs one batch at a time.
    """

    name = "flux-fill-tryon"

    def __init__(self, path: Path, device: str | None = None, steps: int = 28, guidance: float = 30.0,
                 lora: Path | None = None, max_side: int = MAX_SIDE, strength: float = 1.0) -> None:
        """`strength` < 1 starts from the noised render instead of pure noise, so the dressed body's folds and
        shading carry into the result (1.0: only the unmasked context and the mask's outline guide it)."""
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {strength}")
        self.path = Path(path)
        self.lora = Path(lora) if lora is not None else None
        self.device = device
        self.steps = steps
        self.guidance = guidance
        self.max_side = max_side
        self.strength = strength
        lora_note = f" + lora {self.lora.name}" if self.lora is not None else ""
        self.version = f"{self.path.name}{lora_note} (diffusers {installed_version('diffusers')})"
        self._pipe: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_pipeline(cls, pipe: Any, steps: int = 28, guidance: float = 30.0, max_side: int = MAX_SIDE,
                      strength: float = 1.0) -> DiffusersTryOnPainter:
        """A painter around an already built pipeline (tests, notebooks); `pipe` must sit on its device."""
        painter = cls(Path("prebuilt"), device=str(pipe.device), steps=steps, guidance=guidance, max_side=max_side,
                      strength=strength)
        painter._pipe = pipe
        return painter

    def warm_up(self) -> None:
        """Load the model now (a container's start-up), not on the first call."""
        self.load()

    def load(self) -> Any:
        """The pipeline, built on the first call (call it where models load, e.g. a container's start)."""
        with self._lock:
            return self._pipeline()

    def repaint(self, requests: list[TryOnRequest]) -> list[np.ndarray]:
        if not requests:
            return []
        with self._lock:
            pipe = self._pipeline()
            batch = diptychs(requests, multiple=pipe.vae_scale_factor * 2, max_side=self.max_side)
            generated = self._predict(pipe, batch)
        return [tryon_output(r, g) for r, g in zip(requests, generated, strict=True)]

    def _pipeline(self) -> Any:
        if self._pipe is None:
            self._pipe = load_flux_fill(self.path, self.device, self.lora)
        return self._pipe

    def _predict(self, pipe: Any, batch: list[Diptych]) -> list[np.ndarray]:
        """One pipeline call per diptych size (one call when every render has the same size)."""
        out: list[np.ndarray | None] = [None] * len(batch)
        for size in dict.fromkeys(d.size for d in batch):
            index = [i for i, d in enumerate(batch) if d.size == size]
            images = predict(pipe, [batch[i] for i in index], self.steps, self.guidance, self.strength)
            for i, image in zip(index, images, strict=True):
                out[i] = image
        return out  # type: ignore[return-value]


def load_flux_fill(path: Path, device: str | None, lora: Path | None) -> Any:
    """The FluxFillPipeline in `path` (and the LoRA in `lora`), from local files only, on `device`."""
    import torch
    from diffusers import FluxFillPipeline

    if not (path / "model_index.json").is_file():
        raise FileNotFoundError(f"no diffusers pipeline in {path} (model_index.json is missing): pull the weights")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    pipe = FluxFillPipeline.from_pretrained(str(path), dtype=dtype, local_files_only=True)
    if lora is not None:
        load_lora(pipe, lora)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def lora_file(lora: Path) -> Path:
    """The LoRA's safetensors file: `lora` itself, or `pytorch_lora_weights.safetensors` in the folder `lora`."""
    file = lora / LORA_WEIGHT_NAME if lora.is_dir() else lora
    if not file.is_file():
        raise FileNotFoundError(f"no try-on LoRA at {file}: pull the weights")
    return file


def load_lora(pipe: Any, lora: Path) -> None:
    """Load the try-on LoRA (diffusers format: keys `transformer.<module>.lora_A.weight`) into the transformer.

    diffusers raises on wrong shapes or unknown module names, but with no `transformer.` key it loads nothing
    (and only logs), and with some unknown names it wraps the rest: both would leave the painter without its
    LoRA while its version names one, so both raise here too. Every failure is a ValueError naming the file."""
    from peft.tuners.tuners_utils import BaseTunerLayer
    from safetensors import safe_open

    file = lora_file(lora)
    try:
        pipe.load_lora_weights(str(file.parent), weight_name=file.name, local_files_only=True)
    except (ValueError, RuntimeError) as error:  # peft's NoMatchingPeftModuleError is a ValueError
        cause = " ".join(str(error).splitlines()[:2])
        raise ValueError(f"the try-on LoRA {file} does not fit the FLUX Fill transformer: {cause}") from error
    with safe_open(str(file), framework="pt") as weights:
        named = {key.removeprefix("transformer.").split(".lora_A.")[0] for key in weights.keys()
                 if key.startswith("transformer.") and ".lora_A." in key}
    wrapped = {name for name, module in pipe.transformer.named_modules() if isinstance(module, BaseTunerLayer)}
    if not wrapped:
        raise ValueError(f"the try-on LoRA {file} loaded nothing into the FLUX Fill transformer: it has no "
                         "diffusers-format transformer keys ('transformer.<module>.lora_A.weight')")
    if named - wrapped:
        raise ValueError(f"the try-on LoRA {file} names {len(named - wrapped)} modules the FLUX Fill transformer "
                         f"does not have, e.g. {sorted(named - wrapped)[0]!r}")


def predict(pipe: Any, batch: list[Diptych], steps: int, guidance: float, strength: float = 1.0) -> list[np.ndarray]:
    """(h, 2w, 3) uint8 per diptych, in one pipeline call; every diptych has the same size and its own seed."""
    import torch

    width, height = batch[0].size
    generators = [torch.Generator("cpu").manual_seed(d.seed) for d in batch]
    try:
        result = pipe(
            prompt=[d.prompt for d in batch],
            image=[Image.fromarray(d.image) for d in batch],
            mask_image=[Image.fromarray((d.mask * 255).astype(np.uint8)) for d in batch],
            height=height, width=width, num_inference_steps=steps, guidance_scale=guidance, strength=strength,
            generator=generators, max_sequence_length=MAX_SEQUENCE_LENGTH, output_type="np",
        )
    except torch.cuda.OutOfMemoryError as error:
        raise RetryableError(f"try-on: the GPU ran out of memory on a batch of {len(batch)}") from error
    return list(to_uint8(result.images))


def build(ctx: BuildContext) -> DiffusersTryOnPainter:
    """FLUX Fill from the weights folder, with the try-on LoRA when the manifest lists it (so it was verified)."""
    folder = ctx.weights()
    lora = folder / "lora" / LORA_WEIGHT_NAME if ctx.weights_list(f"lora/{LORA_WEIGHT_NAME}") else None
    return DiffusersTryOnPainter(folder / "flux-fill", lora=lora, steps=ctx.config.tryon_steps,
                                 max_side=ctx.config.tryon_max_side)
