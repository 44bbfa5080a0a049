"""Bytes in and out for every phase: decode images (upright, as a viewer shows them), encode PNG and JPEG,
and the plain GLB of a mesh. Plain numpy + PIL; trimesh is imported where a GLB is made.

The one place images are decoded: a 16-bit or palette image, a greyscale one, or one with transparency
comes back as the RGB (or RGBA, or mask) array a phase expects. Checks on uploads (size, format, readable)
are `pipeline.images.inspect_image`'s, at intake.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps


def open_upright(data: bytes) -> Image.Image:
    """The decoded image, upright, file closed; 16-bit greyscale scaled to 8 bits (never clipped to white)."""
    with Image.open(io.BytesIO(data)) as image:
        upright = ImageOps.exif_transpose(image)
        if upright.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit greyscale: scale, do not clip to white
            values = np.asarray(upright, dtype=np.float64)
            top = 65535.0 if upright.mode.startswith("I;16") or values.max() > 255 else 255.0
            return Image.fromarray(np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
        upright.load()
        return upright.copy() if upright is image else upright


def decode_rgb(data: bytes) -> np.ndarray:
    """(H, W, 3) uint8 RGB, upright (EXIF orientation applied). Transparency is dropped, not composited."""
    return np.asarray(open_upright(data).convert("RGB"), dtype=np.uint8).copy()


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


def plain_glb(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    """An untextured GLB of a mesh: anny's z-up turned to glTF's y-up, facing +z as viewers expect."""
    import trimesh

    to_gltf = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=np.float64)  # x, y, z <- x, z, -y
    mesh = trimesh.Trimesh(vertices=np.asarray(vertices, np.float64) @ to_gltf.T, faces=faces, process=False)
    return bytes(mesh.export(file_type="glb"))
