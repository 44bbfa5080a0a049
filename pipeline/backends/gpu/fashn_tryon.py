"""The commercial-safe try-on painter: FASHN VTON v1.5 (Apache-2.0), maskless, in pixel space at 576x864.

FASHN's own pipeline (github.com/fashn-AI/fashn-vton-1.5, `TryOnPipeline`) in its segmentation-free mode with a
flat-lay garment, which is what a request is (the wardrobe's cutout on white): the person image goes in unmasked,
the garment as it is, so its human parser (research-only licence) is never needed and never loaded. Per request:
- preprocess (plain numpy): the render scaled to fit 864 a side (never up) for DWPose, its pose drawn in grey
  (`dwpose.draw_pose_gray`); render, pose and garment each scaled to fit 576x864 and centred on black; the
  garment's pose is empty (a flat-lay); the category (tops, bottoms, one-pieces) is the wardrobe's (the request's
  `category`), read from where the paint mask sits on the person's body (`garment_category`) only when the
  request does not carry one;
- predict: Euler steps of the rectified flow from seeded noise (`ModelConfig.tryon_steps`, 28 by default; FASHN
  suggests 20, 30 or 50), classifier-free guidance 1.5 (not on the last step), all requests in one batch
  (`fashn_mmdit.TryOnModel`), bf16 on a bf16-capable GPU, fp32 elsewhere;
- postprocess: the padding cut off, the image scaled back to the render's size and composited as the FLUX painter
  does (`tryon.composite`): the render kept exactly in the keep mask (the face) and outside the paint mask.
FASHN ignores text, so the request's prompt (the fit cues) is not used. Weights load from the verified folder only
(`model.safetensors` at its root, DWPose's two ONNX files in `dwpose/`), once per painter, on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline.backends.gpu.dwpose import PersonPose, draw_pose_gray
from pipeline.backends.gpu.tryon import check_request, composite, resize_rgb
from pipeline.backends.installed import installed_version
from pipeline.backends.protocols import TryOnRequest
from pipeline.backends.table import BuildContext
from pipeline.errors import RetryableError
from pipeline.spec import Category

MODEL_FILE = "model.safetensors"
POSE_DIR = "dwpose"
MODEL_SIZE = (576, 864)  # (w, h): the released model's input
STEPS, GUIDANCE, TIME_SHIFT, PLAIN_LAST_STEPS = 30, 1.5, 1.5, 1  # FASHN's defaults ("30: balanced")
CATEGORIES = ("tops", "bottoms", "one-pieces")  # the model's labels 1, 2, 3
FROM_WARDROBE: dict[Category, str] = {"upper": "tops", "lower": "bottoms", "full": "one-pieces"}
BOTTOMS_FROM = 0.6  # a paint mask starting this far down the torso (shoulders 0, hips 1) is a lower garment
ONE_PIECE_TO = 1.4  # one reaching this far down (mid-thigh) from above that is a dress or jumpsuit
FEATHER_FRAC = 0.006  # the composite fades in over this fraction of the render's height, inside the paint mask

PoseFinder = Callable[[np.ndarray], PersonPose]  # BGR uint8 image -> the most prominent person's pose


@dataclass(frozen=True)
class Placement:
    """How an image was scaled and centred into the model's frame: its scaled size and the padding around it."""

    size: tuple[int, int]  # (w, h) after scaling
    pad: tuple[int, int, int, int]  # left, top, right, bottom


@dataclass(frozen=True)
class FashnInputs:
    """One request as the model sees it, every image at MODEL_SIZE."""

    person: np.ndarray  # (H, W, 3) uint8: the render, unmasked (maskless mode)
    person_pose: np.ndarray  # (H, W) uint8: its DWPose drawing
    garment: np.ndarray  # (H, W, 3) uint8: the garment photo
    category: str  # one of CATEGORIES
    seed: int
    placement: Placement  # of the render, to undo


# ---- preprocess ------------------------------------------------------------------------------------------------


def fit_size(width: int, height: int, box: tuple[int, int], upsample: bool = True) -> tuple[int, int]:
    """(w, h) of an image scaled to fit `box` = (w, h), keeping its aspect, truncated as FASHN's transforms do."""
    scale = min(box[0] / width, box[1] / height)
    if not upsample and scale > 1.0:
        scale = 1.0
    return (width, height) if scale == 1.0 else (int(scale * width), int(scale * height))


def pose_resolution(rgb: np.ndarray, max_side: int = max(MODEL_SIZE)) -> np.ndarray:
    """The image scaled to fit `max_side` a side, never up (PIL Lanczos): what DWPose and the drawing see."""
    size = fit_size(rgb.shape[1], rgb.shape[0], (max_side, max_side), upsample=False)
    if size == (rgb.shape[1], rgb.shape[0]):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS), dtype=np.uint8)


def resize_pad(image: np.ndarray, size: tuple[int, int] = MODEL_SIZE, nearest: bool = False
               ) -> tuple[np.ndarray, Placement]:
    """`image` scaled to fit `size` = (w, h) (Lanczos up, area down, or nearest for pose drawings) and centred on
    black; and where it went."""
    import cv2

    height, width = image.shape[:2]
    scaled = fit_size(width, height, size)
    if scaled != (width, height):
        grow = min(size[0] / width, size[1] / height) > 1
        mode = cv2.INTER_NEAREST_EXACT if nearest else cv2.INTER_LANCZOS4 if grow else cv2.INTER_AREA
        image = cv2.resize(image, scaled, interpolation=mode)
    left, top = (size[0] - scaled[0]) // 2, (size[1] - scaled[1]) // 2
    pad = (left, top, size[0] - scaled[0] - left, size[1] - scaled[1] - top)
    padded = cv2.copyMakeBorder(image, pad[1], pad[3], pad[0], pad[2], cv2.BORDER_CONSTANT, value=(0, 0, 0))
    return padded, Placement(size=scaled, pad=pad)


def unpad(image: np.ndarray, placement: Placement) -> np.ndarray:
    left, top, right, bottom = placement.pad
    return image[top:image.shape[0] - bottom, left:image.shape[1] - right]


def garment_category(pose: PersonPose, paint_mask: np.ndarray) -> str:
    """tops, bottoms or one-pieces, from where the paint mask starts and ends on the torso (shoulders 0, hips 1):
    starting past BOTTOMS_FROM is a lower garment, reaching past ONE_PIECE_TO a one-piece. Where DWPose saw no
    torso, on the image's height instead: starting below 45 %, or reaching past 75 %."""
    rows = np.flatnonzero((paint_mask > 0.5).any(axis=1))
    if len(rows) == 0:
        return "tops"
    top, bottom = rows[0] / paint_mask.shape[0], (rows[-1] + 1) / paint_mask.shape[0]
    shoulders = pose.y(2, 5)
    shoulders = pose.y(1) if shoulders is None else shoulders
    hips = pose.y(8, 11)
    if shoulders is None or hips is None or hips - shoulders < 0.05:
        starts, ends = top - 0.45, bottom - 0.75
    else:
        torso = hips - shoulders
        starts, ends = (top - shoulders) / torso - BOTTOMS_FROM, (bottom - shoulders) / torso - ONE_PIECE_TO
    return "bottoms" if starts > 0 else "one-pieces" if ends > 0 else "tops"


def fashn_inputs(request: TryOnRequest, find_pose: PoseFinder) -> FashnInputs:
    """preprocess one request (its render's pose found by `find_pose`)."""
    check_request(request)
    person = pose_resolution(request.render)
    pose = find_pose(np.ascontiguousarray(person[..., ::-1]))  # DWPose reads BGR
    drawing = draw_pose_gray(pose, person.shape[0], person.shape[1])
    padded, placement = resize_pad(person)
    garment, _ = resize_pad(pose_resolution(request.garment))
    return FashnInputs(person=padded, person_pose=resize_pad(drawing, nearest=True)[0], garment=garment,
                       category=request_category(request, pose), seed=request.seed, placement=placement)


def request_category(request: TryOnRequest, pose: PersonPose) -> str:
    """The model's label for the request's garment: the wardrobe's category when the request carries it (a
    skirt whose mask starts high is still bottoms), else guessed from where the paint mask sits."""
    if request.category is None:
        return garment_category(pose, request.paint_mask)
    if request.category not in FROM_WARDROBE:
        raise ValueError(f"garment category {request.category!r}: use one of {', '.join(FROM_WARDROBE)}")
    return FROM_WARDROBE[request.category]


# ---- predict ---------------------------------------------------------------------------------------------------


def rf_schedule(steps: int, mu: float = TIME_SHIFT) -> list[float]:
    """The rectified flow's times from 0 (noise) to 1 (image), shifted towards the noisy end (FASHN's schedule)."""
    import math

    import torch

    t = torch.linspace(1, 0, steps + 1)
    shifted = math.exp(-mu) / (math.exp(-mu) + (1 / t - 1))
    return [float(v) for v in shifted.tolist()[::-1]]


def predict(model: Any, batch: Sequence[FashnInputs], steps: int, guidance: float = GUIDANCE,
            plain_last: int = PLAIN_LAST_STEPS) -> list[np.ndarray]:
    """(H, W, 3) uint8 per input at MODEL_SIZE: Euler steps with classifier-free guidance, one seed per input."""
    import torch

    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype

    def stacked(images: list[np.ndarray]) -> Any:
        tensor = torch.from_numpy(np.stack(images))
        tensor = tensor.permute(0, 3, 1, 2) if tensor.ndim == 4 else tensor[:, None]
        return (tensor / 127.5 - 1.0).to(device=device, dtype=dtype)

    conditions = {
        "ca_images": stacked([i.person for i in batch]), "person_poses": stacked([i.person_pose for i in batch]),
        "garment_images": stacked([i.garment for i in batch]),
        "garment_poses": torch.full((len(batch), 1, MODEL_SIZE[1], MODEL_SIZE[0]), -1.0, device=device, dtype=dtype),
        "garment_categories": torch.tensor([CATEGORIES.index(i.category) + 1 for i in batch], device=device)}
    noise = [torch.randn((1, 3, MODEL_SIZE[1], MODEL_SIZE[0]), generator=torch.Generator("cpu").manual_seed(i.seed))
             for i in batch]
    images = torch.cat(noise).to(device=device, dtype=dtype)
    times = rf_schedule(steps)
    try:
        with torch.inference_mode():
            for step, (t_now, t_next) in enumerate(zip(times[:-1], times[1:], strict=True)):
                t_vec = torch.full((len(batch),), t_now, device=device, dtype=dtype)
                v_c, v_u = model.forward_for_cfg(images, t_vec, **conditions)
                velocity = v_c if plain_last and step >= steps - plain_last else v_u + guidance * (v_c - v_u)
                images = images + (t_next - t_now) * velocity
    except torch.cuda.OutOfMemoryError as error:
        raise RetryableError(f"try-on (FASHN): the GPU ran out of memory on a batch of {len(batch)}") from error
    pixels = ((images.float().clamp(-1.0, 1.0) + 1.0) * 0.5 * 255).to(torch.uint8)  # truncated, as FASHN's
    return list(pixels.permute(0, 2, 3, 1).cpu().numpy())


# ---- postprocess -----------------------------------------------------------------------------------------------


def fashn_output(request: TryOnRequest, generated: np.ndarray, placement: Placement,
                 feather_frac: float = FEATHER_FRAC) -> np.ndarray:
    """postprocess: the generated person, unpadded and scaled to the render, inside the paint mask (feathered);
    the render exactly in the keep mask and everywhere else."""
    height, width = request.render.shape[:2]
    person = resize_rgb(np.ascontiguousarray(unpad(generated, placement)), (width, height))
    return composite(request.render, person, request.paint_mask, request.keep_mask, round(feather_frac * height))


# ---- the painter -----------------------------------------------------------------------------------------------


class FashnTryOnPainter:
    """`TryOnPainter` on a FASHN VTON v1.5 folder (`model.safetensors`, `dwpose/`). Loads once, lazily; calls are
    serialized (one model, one batch at a time)."""

    name = "fashn-vton-1.5"

    def __init__(self, folder: Path, device: str | None = None, steps: int = STEPS, guidance: float = GUIDANCE,
                 providers: list[str] | None = None) -> None:
        self.folder = Path(folder)
        self.device = device
        self.steps = steps
        self.guidance = guidance
        self.providers = providers
        self.version = (f"fashn-vton-1.5 {MODEL_FILE} + DWPose-l (torch {installed_version('torch')}, "
                        f"onnxruntime {installed_version('onnxruntime-gpu', 'onnxruntime')})")
        self._loaded: tuple[Any, PoseFinder] | None = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Load the models now (a container's start-up), not on the first call."""
        self.load()

    def load(self) -> tuple[Any, PoseFinder]:
        """(the try-on network, the DWPose pose finder), loaded on the first call."""
        with self._lock:
            return self._models()

    def repaint(self, requests: list[TryOnRequest]) -> list[np.ndarray]:
        if not requests:
            return []
        with self._lock:
            model, find_pose = self._models()
            batch = [fashn_inputs(r, find_pose) for r in requests]
            generated = predict(model, batch, self.steps, self.guidance)
        return [fashn_output(r, g, i.placement) for r, g, i in zip(requests, generated, batch, strict=True)]

    def _models(self) -> tuple[Any, PoseFinder]:
        if self._loaded is None:
            self._loaded = load_fashn(self.folder, self.device, self.providers)
        return self._loaded


def load_fashn(folder: Path, device: str | None, providers: list[str] | None = None) -> tuple[Any, PoseFinder]:
    """The try-on network (bf16 on a bf16-capable GPU, else fp32) and DWPose, from `folder` only."""
    import torch

    from pipeline.backends.gpu.dwpose import DWPose
    from pipeline.backends.gpu.fashn_mmdit import load_tryon_model

    if not (folder / MODEL_FILE).is_file():
        raise FileNotFoundError(f"no FASHN VTON v1.5 model at {folder / MODEL_FILE}: pull the weights "
                                "(dropfit weights pull --only fashn)")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
    model = load_tryon_model(folder / MODEL_FILE, device, torch.bfloat16 if bf16 else torch.float32)
    return model, DWPose(folder / POSE_DIR, providers)


def build(ctx: BuildContext) -> FashnTryOnPainter:
    return FashnTryOnPainter(ctx.weights(), steps=ctx.config.tryon_steps)
