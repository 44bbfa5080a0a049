"""Bytes in and out for every phase: decode images (upright, as a viewer shows them), encode PNG and JPEG.
Plain numpy + PIL.

The one place images are decoded: a 16-bit or palette image, a greyscale one, or one with transparency
comes back as the RGB (or RGBA, or mask) array a phase expects. Uploads are decoded at the working size
(`decode_upload`: at most 2048 px on the long side and 3.1 megapixels, docs/inputs.md), so memory stays bounded
whatever the photo. Checks on uploads (size, format, readable) are `pipeline.images.inspect_image`'s, at intake.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps
from PIL.ExifTags import Base

ORIENTATION = Base.Orientation.value
WORKING_SIDE = 2048  # an upload is worked on at most this long side ...
WORKING_PIXELS = 2048 * 1536  # ... and at most this many pixels (a 3:4 photo at 2048): docs/inputs.md
_GREY_16 = ("I;16", "I;16B", "I;16L", "I")


def working_size(size: tuple[int, int], max_side: int | None = WORKING_SIDE,
                 max_pixels: int | None = WORKING_PIXELS) -> tuple[int, int]:
    """(width, height) scaled down, aspect kept, until the long side is at most `max_side` and the area at most
    `max_pixels`; a size within both comes back unchanged (never scaled up)."""
    width, height = size
    scale = 1.0
    if max_side is not None:
        scale = min(scale, max_side / max(width, height, 1))
    if max_pixels is not None:
        scale = min(scale, (max_pixels / max(width * height, 1)) ** 0.5)
    if scale >= 1.0:
        return width, height
    return max(1, int(width * scale + 1e-6)), max(1, int(height * scale + 1e-6))


def upright_size(data: bytes) -> tuple[int, int]:
    """(width, height) as a viewer shows the image (EXIF orientation applied), from the header alone."""
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
        turned = _turned(image)
    return (height, width) if turned else (width, height)


def open_upright(data: bytes, max_side: int | None = None, max_pixels: int | None = None) -> Image.Image:
    """The decoded image, upright, file closed; 16-bit greyscale scaled to 8 bits (never clipped to white).

    With `max_side` / `max_pixels`, a larger image comes back scaled down to fit (`working_size`); a JPEG is
    then decoded at a reduced scale to begin with, so a 48-megapixel photo never sits in memory whole."""
    with Image.open(io.BytesIO(data)) as image:
        stored = image.size
        target = working_size(stored, max_side, max_pixels)
        if target != stored and image.format in ("JPEG", "MPO"):
            image.draft(image.mode, target)  # at least `target`: the DCT scale (1/2, 1/4, 1/8) that fits
        if _turned(image):
            target = (target[1], target[0])
        upright = ImageOps.exif_transpose(image)
        upright.load()
        if upright.size != target:
            upright = _scaled(upright, target)
        if upright.mode in _GREY_16:
            return _grey_8(upright)
        return upright.copy() if upright is image else upright


def _turned(image: Image.Image) -> bool:
    """Its EXIF orientation turns it a quarter (so width and height swap once upright)."""
    return image.getexif().get(ORIENTATION, 1) in (5, 6, 7, 8)


def _scaled(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resized with Lanczos; palette and 1-bit images first become colours (resizing them would pick pixels)."""
    if image.size == size:
        return image
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode == "1":
        image = image.convert("L")
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _grey_8(image: Image.Image) -> Image.Image:
    """16- or 32-bit greyscale as 8-bit 'L', scaled by its range (65535 for 16-bit data), not clipped."""
    values = np.asarray(image, dtype=np.float32)
    top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
    return Image.fromarray(np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8))


def decode_rgb(data: bytes, max_side: int | None = None, max_pixels: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB, upright (EXIF orientation applied). Transparency is dropped, not composited.
    `max_side` / `max_pixels` as in `open_upright`."""
    return np.asarray(open_upright(data, max_side, max_pixels).convert("RGB"), dtype=np.uint8).copy()


def decode_upload(data: bytes) -> np.ndarray:
    """An uploaded photo as every phase works on it: upright RGB at the working size (`WORKING_SIDE`,
    `WORKING_PIXELS`); a smaller photo keeps its own size."""
    return decode_rgb(data, WORKING_SIDE, WORKING_PIXELS)


def decode_rgba(data: bytes) -> np.ndarray:
    """(H, W, 4) uint8 RGBA, upright; an image with no alpha gets an opaque one."""
    return np.asarray(open_upright(data).convert("RGBA"), dtype=np.uint8).copy()


def decode_mask(data: bytes) -> np.ndarray:
    """(H, W) float32 in [0, 1] from a greyscale mask image."""
    return np.asarray(open_upright(data).convert("L"), dtype=np.float32) / 255.0


def encode_png(array: np.ndarray) -> bytes:
    """uint8 (H, W), (H, W, 3) or (H, W, 4) -> PNG bytes; a float mask in [0, 1] is scaled to 8 bits.
    Fast compression: these are working files and overlays, written once per run."""
    if array.dtype != np.uint8:
        array = (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def encode_jpeg(rgb: np.ndarray, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
