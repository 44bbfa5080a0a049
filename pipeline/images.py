"""Checks on uploaded photos before any work is planned: a clear refusal beats a crash three phases later."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from pipeline.errors import InvalidInput

MIN_SIDE = 64
MAX_SIDE = 8192
MAX_BYTES = 40 * 1024 * 1024
FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


@dataclass(frozen=True)
class ImageFacts:
    format: str
    width: int
    height: int


def inspect_image(data: bytes, what: str) -> ImageFacts:
    """Decode a photo fully enough to trust it, or raise InvalidInput naming `what` (e.g. 'person photo')."""
    action = f"upload the {what} again as a JPEG, PNG or WebP file"
    if not data:
        raise InvalidInput(f"the {what} is an empty file", action)
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"the {what} is {len(data) / 1e6:.0f} MB; the limit is {MAX_BYTES / 1e6:.0f} MB", action)
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format or "?"
            width, height = image.size
            if fmt not in FORMATS:
                raise InvalidInput(f"the {what} is a {fmt} image; only JPEG, PNG and WebP are accepted", action)
            if max(width, height) > MAX_SIDE:
                raise InvalidInput(f"the {what} is {width}x{height}; the largest side allowed is {MAX_SIDE}", action)
            image.load()  # a truncated or corrupt file fails here, not in a phase
    except InvalidInput:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidInput(f"the {what} is not a readable image ({exc})", action) from exc
    if min(width, height) < MIN_SIDE:
        raise InvalidInput(
            f"the {what} is {width}x{height}; it must be at least {MIN_SIDE} pixels on each side",
            f"upload a larger {what} (768x1024 or more works best)",
        )
    return ImageFacts(fmt, width, height)
