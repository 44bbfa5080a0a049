"""The try-on painter on FLUX.1 Fill: in-context garment transfer onto phase 3's renders (CatVTON-FLUX style).

Each request becomes one diptych of two 3:4 halves, as CatVTON-FLUX was trained (`tryon_framing`): on the left
the garment photo as a product shot (cropped to the garment, letterboxed on white), on the right the render's
frame around the paint and keep masks. The inpainting mask is empty on the garment half and, on the right,
covers the paint mask grown a little (less the keep region); phase 3 makes the paint mask as generous as
CatVTON's agnostic masks (`tryon_framing.agnostic_region`). The prompt is CatVTON-FLUX's training caption with
the request's cues after it. The right half comes back, is resized to the frame, pasted onto the render and
composited: the render stays exactly as it was outside the paint mask and inside the keep mask (the face), with
an inward feather at the paint mask's edge.

preprocess (`diptychs`) and postprocess (`tryon_output`) are plain numpy and PIL; only `predict` touches torch.
The pipeline loads from a local folder only (`local_files_only=True`), once per painter, on first use, straight
onto its device (`device_map`, no whole copy in host memory), with VAE slicing on; the try-on LoRA is fused into
the transformer after its checks, so inference runs the plain model. A batch the GPU cannot hold is split in
halves until it fits (one request that does not fit is a RetryableError).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline.backends.gpu.tryon_framing import ASPECT, Box, crop, frame_box, paste, product_box
from pipeline.backends.gpu.tryon_lora import LORA_WEIGHT_NAME, load_lora
from pipeline.backends.installed import installed_version
from pipeline.backends.protocols import TryOnRequest
from pipeline.backends.table import BuildContext
from pipeline.errors import RetryableError

# CatVTON-FLUX's caption, verbatim from its training and inference scripts (github.com/nftblackmagic/catvton-flux,
# train_flux_inpaint.py and tryon_inference_lora.py; the missing space before [IMAGE2] is theirs): the LoRA was
# trained on this sentence only, so it comes first and unchanged; the fit and view cues follow it.
TRAINING_CAPTION = ("The pair of images highlights a clothing and its styling on a model, high resolution, 4K, 8K; "
                    "[IMAGE1] Detailed product shot of a clothing"
                    "[IMAGE2] The same cloth is worn by a model in a lifestyle setting.")
MAX_SIDE = 1024  # each half's height (3:4: 768 x 1024, CatVTON-FLUX's serving size)
GROW_FRAC = 0.01  # the model's mask grows past the paint mask by this fraction of the frame's height
FEATHER_FRAC = 0.006  # the composite fades in over this fraction of the frame's height, inside the paint mask
MAX_SEQUENCE_LENGTH = 512  # T5 tokens, as FLUX.1-dev and its Fill variant were trained


@dataclass(frozen=True)
class Diptych:
    """One request as the pipeline sees it."""

    image: np.ndarray  # (h, 2w, 3) uint8: the garment as a product shot | the render's 3:4 frame, each (w, h)
    mask: np.ndarray  # (h, 2w) float32: 0 on the garment half, 1 where the frame is repainted
    prompt: str
    seed: int

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the whole diptych."""
        return self.image.shape[1], self.image.shape[0]


# ---- preprocess ------------------------------------------------------------------------------------------------


def half_size(multiple: int, max_side: int = MAX_SIDE, aspect: tuple[int, int] = ASPECT) -> tuple[int, int]:
    """(w, h) of one half: `aspect` exactly, `h` at most `max_side` (at least one step), both multiples of
    `multiple` (the pipeline's)."""
    step = max(1, max_side // (aspect[1] * multiple))
    return aspect[0] * multiple * step, aspect[1] * multiple * step


def letterbox(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w, 3) uint8: `image` scaled to fit `size` = (w, h), centred on white."""
    width, height = size
    scale = min(width / image.shape[1], height / image.shape[0])
    fit = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    x0, y0 = (width - fit[0]) // 2, (height - fit[1]) // 2
    canvas[y0:y0 + fit[1], x0:x0 + fit[0]] = resize_rgb(image, fit)
    return canvas


def product_shot(garment: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The garment half: the photo cropped to the garment (plus a margin) and letterboxed on white."""
    x0, y0, x1, y1 = product_box(garment)
    return letterbox(garment[y0:y1, x0:x1], size)


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


def tryon_prompt(cues: str) -> str:
    """CatVTON-FLUX's training caption, then the request's cues (fit, view) as one more sentence."""
    cues = cues.strip().rstrip(".")
    return f"{TRAINING_CAPTION} {cues[0].upper()}{cues[1:]}." if cues else TRAINING_CAPTION


def request_frame(request: TryOnRequest, grow_frac: float = GROW_FRAC) -> tuple[Box, np.ndarray]:
    """The request's 3:4 frame (a box in the render, which may reach past it) and the model's mask in the render's
    pixels, (H, W) float32 in {0, 1}: the paint mask grown by `grow_frac` of the frame's height, less the keep
    mask."""
    box = frame_box(request.paint_mask, request.keep_mask)
    grown = grow(request.paint_mask, round(grow_frac * (box[3] - box[1])))
    return box, (grown & ~(request.keep_mask > 0.5)).astype(np.float32)


def diptych(request: TryOnRequest, half: tuple[int, int]) -> Diptych:
    """The request as one image of size (2w, h) for `half` = (w, h): garment left, the render's frame right."""
    check_request(request)
    box, region = request_frame(request)
    person = resize_rgb(crop(request.render, box, 255), half)
    right = (resize_mask(crop(region, box, 0.0), half) > 0.5).astype(np.float32)
    image = np.concatenate([product_shot(request.garment, half), person], axis=1)
    full_mask = np.concatenate([np.zeros_like(right), right], axis=1)
    return Diptych(image=image, mask=full_mask, prompt=tryon_prompt(request.prompt), seed=request.seed)


def diptychs(requests: Sequence[TryOnRequest], multiple: int, max_side: int = MAX_SIDE) -> list[Diptych]:
    """preprocess: one diptych per request, every half the same 3:4 size (multiples of the pipeline's `multiple`)."""
    half = half_size(multiple, max_side)
    return [diptych(r, half) for r in requests]


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
    """postprocess: the diptych's right half, resized to the request's frame, pasted onto the render and
    composited inside the paint mask (feathered); the keep mask and everything else stay the render's own."""
    x0, y0, x1, y1 = box = frame_box(request.paint_mask, request.keep_mask)
    painted = paste(request.render, resize_rgb(right_half(generated), (x1 - x0, y1 - y0)), box)
    return composite(request.render, painted, request.paint_mask, request.keep_mask, round(feather_frac * (y1 - y0)))


def to_uint8(images: np.ndarray) -> np.ndarray:
    """The pipeline's float images in [0, 1] -> uint8."""
    return np.clip(np.rint(np.asarray(images, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


# ---- the painter -----------------------------------------------------------------------------------------------


class DiffusersTryOnPainter:
    """`TryOnPainter` on a FLUX.1 Fill pipeline folder (diffusers layout), optionally with a try-on LoRA.

    Loads once, lazily, from local files only; bfloat16 on CUDA, float32 on CPU. Calls are serialized: the
    scheduler keeps per-call state, so one pipeline runs one batch at a time. `batches` records the size of
    every pipeline call, so a split after running out of GPU memory shows.
    """

    name = "flux-fill-tryon"

    def __init__(self, path: Path, device: str | None = None, steps: int = 28, guidance: float = 30.0,
                 lora: Path | None = None, max_side: int = MAX_SIDE, strength: float = 1.0,
                 fuse_lora: bool = True) -> None:
        """`strength` < 1 starts from the noised render instead of pure noise, so the dressed body's folds and
        shading carry into the result (1.0: only the unmasked context and the mask's outline guide it).
        `fuse_lora` False keeps the LoRA as adapter layers (to compare; inference then pays them)."""
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {strength}")
        self.path = Path(path)
        self.lora = Path(lora) if lora is not None else None
        self.device = device
        self.steps = steps
        self.guidance = guidance
        self.max_side = max_side
        self.strength = strength
        self.fuse_lora = fuse_lora
        self.lora_modules: frozenset[str] = frozenset()  # the transformer modules the LoRA changed, once loaded
        self.batches: list[int] = []
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
            self._pipe, self.lora_modules = load_flux_fill(self.path, self.device, self.lora, fuse=self.fuse_lora)
        return self._pipe

    def _predict(self, pipe: Any, batch: list[Diptych]) -> list[np.ndarray]:
        """One pipeline call per diptych size (one call when every render has the same size)."""
        out: list[np.ndarray | None] = [None] * len(batch)
        for size in dict.fromkeys(d.size for d in batch):
            index = [i for i, d in enumerate(batch) if d.size == size]
            images = predict_in_parts(pipe, [batch[i] for i in index], self.steps, self.guidance, self.strength,
                                      self.batches)
            for i, image in zip(index, images, strict=True):
                out[i] = image
        return out  # type: ignore[return-value]


def load_flux_fill(path: Path, device: str | None, lora: Path | None, fuse: bool = True
                   ) -> tuple[Any, frozenset[str]]:
    """The FluxFillPipeline in `path` (and the LoRA in `lora`, fused unless `fuse` is False), from local files
    only, on `device`; and the transformer modules the LoRA changed (empty without one).

    `device_map` loads each component's weights straight onto the device (a plain "cuda" or "cpu"; other devices
    load on the host and move), so the host never holds the whole 34 GB. VAE slicing decodes (and encodes) a
    batch one image at a time: the same images, a fraction of the activation memory at 8 x 1024 x 2048. VAE
    tiling stays off: it blends overlapping tiles, which shows as seams on flat colours, and one 1024 x 2048
    decode fits any of the deployment's GPUs."""
    import torch
    from diffusers import FluxFillPipeline

    if not (path / "model_index.json").is_file():
        raise FileNotFoundError(f"no diffusers pipeline in {path} (model_index.json is missing): pull the weights")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    mapped = device in ("cuda", "cpu")
    pipe = FluxFillPipeline.from_pretrained(str(path), dtype=dtype, local_files_only=True, low_cpu_mem_usage=True,
                                            device_map=device if mapped else None)
    if not mapped:
        pipe = pipe.to(device)
    modules = load_lora(pipe, lora, fuse=fuse) if lora is not None else frozenset()
    pipe.vae.enable_slicing()
    pipe.set_progress_bar_config(disable=True)
    return pipe, modules


def is_out_of_memory(error: BaseException) -> bool:
    import torch

    return isinstance(error, torch.cuda.OutOfMemoryError)


def predict_in_parts(pipe: Any, batch: list[Diptych], steps: int, guidance: float, strength: float,
                     calls: list[int] | None = None) -> list[np.ndarray]:
    """`predict` on the whole batch; when the GPU runs out of memory, on each half of it in turn (recursively),
    after freeing the cached blocks. Each diptych has its own seeded generator, so a split changes no result
    beyond rounding. One diptych that does not fit is a RetryableError (another container may have more memory)."""
    try:
        if calls is not None:
            calls.append(len(batch))
        return predict(pipe, batch, steps, guidance, strength)
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        release_cached_memory()
        if len(batch) == 1:
            raise RetryableError("try-on: the GPU ran out of memory on a single view") from error
    middle = len(batch) // 2
    return [*predict_in_parts(pipe, batch[:middle], steps, guidance, strength, calls),
            *predict_in_parts(pipe, batch[middle:], steps, guidance, strength, calls)]


def release_cached_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def predict(pipe: Any, batch: list[Diptych], steps: int, guidance: float, strength: float = 1.0) -> list[np.ndarray]:
    """(h, 2w, 3) uint8 per diptych, in one pipeline call; every diptych has the same size and its own seed."""
    import torch

    width, height = batch[0].size
    generators = [torch.Generator("cpu").manual_seed(d.seed) for d in batch]
    result = pipe(
        prompt=[d.prompt for d in batch],
        image=[Image.fromarray(d.image) for d in batch],
        mask_image=[Image.fromarray((d.mask * 255).astype(np.uint8)) for d in batch],
        height=height, width=width, num_inference_steps=steps, guidance_scale=guidance, strength=strength,
        generator=generators, max_sequence_length=MAX_SEQUENCE_LENGTH, output_type="np",
    )
    return list(to_uint8(result.images))


def build(ctx: BuildContext) -> DiffusersTryOnPainter:
    """FLUX Fill from the weights folder, with the try-on LoRA when the manifest lists it (so it was verified)."""
    folder = ctx.weights()
    lora = folder / "lora" / LORA_WEIGHT_NAME if ctx.weights_list(f"lora/{LORA_WEIGHT_NAME}") else None
    return DiffusersTryOnPainter(folder / "flux-fill", lora=lora, steps=ctx.config.tryon_steps,
                                 max_side=ctx.config.tryon_max_side)
