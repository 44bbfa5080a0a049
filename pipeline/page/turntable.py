"""The animated WebP of the 8 views: for catalog pages, chat and e-mail, where a page cannot run."""

from __future__ import annotations

import io

from PIL import Image

FPS = 8
MAX_HEIGHT = 512  # an e-mail or a chat preview needs no more


def turntable_webp(frames: list[bytes], *, fps: int = FPS, max_height: int = MAX_HEIGHT, quality: int = 80) -> bytes:
    """One looping animated WebP of `frames` (encoded images, in turn order) at `fps`; deterministic bytes."""
    if not frames:
        raise ValueError("a turntable needs at least one frame")
    images = [_fit(Image.open(io.BytesIO(data)), max_height) for data in frames]
    out = io.BytesIO()
    images[0].save(out, "WEBP", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0,
                   quality=quality, method=4)
    return out.getvalue()


def _fit(image: Image.Image, max_height: int) -> Image.Image:
    image = image.convert("RGB")
    if image.height <= max_height:
        return image
    width = max(1, round(image.width * max_height / image.height))
    return image.resize((width, max_height), Image.Resampling.LANCZOS, reducing_gap=2.0)  # box-reduce first: fast
