"""The GPU promptable segmenter: SAM (transformers `SamModel`, e.g. facebook/sam-vit-huge), boxes in, masks out.

It loads from a local folder (`from_pretrained(model_dir, local_files_only=True)`: config, weights and the
processor's config) and never downloads. On a GPU it runs in bf16 (fp16 where bf16 is unsupported), on the CPU
in fp32. The processor prepares the image (resize the long side, normalise, pad); the rest is plain numpy:
- `scaled_boxes`: photo pixels -> the resized image's pixels, as SamProcessor scales them (the processor's
  `reshaped_input_sizes` says how it resized the photo);
- the model sees the image once and all boxes in one batch, and proposes 3 masks per box with a predicted IoU;
- `best_masks` keeps each box's mask with the highest predicted IoU; `upsampled` undoes the padding and resizing
  of the low-resolution logits (SAM's own `post_process_masks` order: to the padded size, crop, to the photo);
  `thresholded` cuts the logits at 0 into a 0/1 float32 mask.

As a `GarmentSegmenter` it needs a box first: the classical garment mask (or the photo minus a margin when that
finds nothing) gives the garment's extent, and SAM draws the mask inside it. Licence: SAM is Apache-2.0.
"""

from __future__ import annotations

import threading
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.backends.protocols import GarmentSegmenter
from pipeline.backends.table import BuildContext

Box = tuple[int, int, int, int]
MASK_THRESHOLD = 0.0  # on SAM's logits
MARGIN = 0.05  # the fallback garment box: the photo minus this fraction of each side
DTYPES = ("float32", "bfloat16", "float16")


class SamSegmenter:
    name = "sam"

    def __init__(self, model_dir: Path, device: str | None = None, *, dtype: str | None = None,
                 first_guess: GarmentSegmenter | None = None) -> None:
        self.model_dir = Path(model_dir)
        if not (self.model_dir / "config.json").is_file():
            raise FileNotFoundError(f"no SAM model in {self.model_dir}: expected a save_pretrained folder "
                                    "(config.json, weights, processor config), fetched ahead of time")
        if dtype is not None and dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        self.device = device
        self.dtype = dtype
        self._first_guess = first_guess
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any, Any] | None = None

    @property
    def version(self) -> str:
        return f"transformers {package_version('transformers')} ({self.model_dir.name})"

    def warm_up(self) -> None:
        """Load the model now (a container's start-up), not on the first call."""
        self.load()

    def load(self) -> None:
        """Build the model now (a container's start-up), not on the first photo."""
        with self._lock:
            self._load()

    def segment_boxes(self, rgb: np.ndarray, boxes: list[Box]) -> list[np.ndarray]:
        """(H, W) float32 0/1 mask of the main object in each box; the boxes run as one batch."""
        rgb = checked_rgb(rgb)
        if not boxes:
            return []
        height, width = rgb.shape[:2]
        with self._lock:
            logits, scores, sizes = self._predict(rgb, boxes)
        return [thresholded(upsampled(mask, *sizes, (height, width))) for mask in best_masks(logits, scores)]

    def segment(self, rgb: np.ndarray) -> np.ndarray:
        """The garment's alpha: SAM inside the box of a cheap first guess."""
        rgb = checked_rgb(rgb)
        box = garment_box(self._guesser().segment(rgb), MARGIN)
        return self.segment_boxes(rgb, [box])[0]

    def _predict(self, rgb: np.ndarray, boxes: list[Box]) -> tuple[np.ndarray, np.ndarray, tuple[Any, Any]]:
        """One forward pass: (low-res logits (N, 3, h, w), predicted IoUs (N, 3), (padded size, resized size))."""
        import torch

        model, processor, device = self._load()
        inputs = processor(images=rgb, return_tensors="pt")
        resized = (int(inputs["reshaped_input_sizes"][0][0]), int(inputs["reshaped_input_sizes"][0][1]))
        boxed = scaled_boxes(boxes, (rgb.shape[0], rgb.shape[1]), resized)
        prompt = torch.as_tensor(boxed[None], dtype=model.dtype, device=device)
        pixels = inputs["pixel_values"].to(device=device, dtype=model.dtype)
        with torch.inference_mode():
            out = model(pixel_values=pixels, input_boxes=prompt, multimask_output=True)
        logits = out.pred_masks[0].float().cpu().numpy()
        scores = out.iou_scores[0].float().cpu().numpy()
        return logits, scores, (tuple(pixels.shape[-2:]), resized)

    def _load(self) -> tuple[Any, Any, Any]:
        """(SamModel, SamProcessor, device), built on first use (called under the lock)."""
        if self._loaded is None:
            import torch
            from transformers import SamModel, SamProcessor

            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            cuda = torch.device(device).type == "cuda"
            dtype = chosen_dtype(self.dtype, cuda, cuda and torch.cuda.is_bf16_supported())
            model = SamModel.from_pretrained(self.model_dir, local_files_only=True, dtype=getattr(torch, dtype))
            processor = SamProcessor.from_pretrained(self.model_dir, local_files_only=True)
            self._loaded = (model.to(device).eval(), processor, device)
        return self._loaded

    def _guesser(self) -> GarmentSegmenter:
        if self._first_guess is None:
            from pipeline.backends.garment_mask import ClassicalGarmentSegmenter

            self._first_guess = ClassicalGarmentSegmenter()
        return self._first_guess


# ---- pre- and post-processing: plain numpy ----------------------------------------------------------------


def chosen_dtype(requested: str | None, cuda: bool, bf16_supported: bool) -> str:
    """The requested dtype, else bf16 on a GPU that has it, fp16 on one that does not, fp32 on the CPU."""
    if requested:
        return requested
    if not cuda:
        return "float32"
    return "bfloat16" if bf16_supported else "float16"


def checked_rgb(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected a uint8 RGB image of shape (H, W, 3), got {rgb.dtype} {rgb.shape}")
    return np.ascontiguousarray(rgb)


def scaled_boxes(boxes: list[Box], size: tuple[int, int], resized: tuple[int, int]) -> np.ndarray:
    """(N, 4) float32 boxes (x0, y0, x1, y1) in the pixels of a (H, W) photo -> in the pixels of its resized
    (h, w) copy that the model sees (before padding), as SamProcessor scales them."""
    height, width = size
    new_h, new_w = resized
    scale = np.array([new_w / width, new_h / height, new_w / width, new_h / height], dtype=np.float32)
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4) * scale


def best_masks(logits: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(N, K, h, w) candidate logits and (N, K) predicted IoUs -> (N, h, w): each box's best candidate."""
    best = np.argmax(scores, axis=1)
    return logits[np.arange(len(logits)), best]


def upsampled(logits: np.ndarray, padded: tuple[int, int], resized: tuple[int, int],
              size: tuple[int, int]) -> np.ndarray:
    """(h, w) low-res logits of the padded input -> (H, W) logits over the photo: up to the padded size,
    crop the padding (bottom and right), then to the photo's size; bilinear throughout."""
    import cv2

    full = cv2.resize(logits.astype(np.float32), (padded[1], padded[0]), interpolation=cv2.INTER_LINEAR)
    crop = full[: resized[0], : resized[1]]
    return cv2.resize(crop, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def thresholded(logits: np.ndarray, threshold: float = MASK_THRESHOLD) -> np.ndarray:
    return (logits > threshold).astype(np.float32)


def garment_box(alpha: np.ndarray, margin: float = MARGIN) -> Box:
    """The bounding box of alpha > 0.5, or the photo minus `margin` on each side when the alpha is empty."""
    height, width = alpha.shape
    ys, xs = np.nonzero(alpha > 0.5)
    if len(xs) == 0:
        dx, dy = int(margin * width), int(margin * height)
        return dx, dy, width - dx, height - dy
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def build(ctx: BuildContext) -> SamSegmenter:
    return SamSegmenter(ctx.weights())
