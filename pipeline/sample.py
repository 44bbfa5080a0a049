"""The demo's built-in sample pair, made by the project itself (no files shipped, no network).

The person is the parametric body (anny, CC0 assets) in its rest A-pose, dressed in a plain top and
trousers and rendered front-on in a studio light: a photo the real landmark and face models accept, so
the demo runs the real avatar phase. The garment is a drawn T-shirt product shot on white.
The person render is cached (it needs the body model, ~2 s) next to the model cache.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pipeline.backends.config import default_cache_dir

SIZE = (768, 1024)
BACKGROUND = (236, 234, 230)
SKIN, TOP, TROUSERS, HAIR = (224, 180, 150), (60, 90, 150), (50, 50, 60), (58, 40, 30)
SAMPLE_VERSION = "1"


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def sample_person(cache_dir: Path | None = None) -> bytes:
    """The demo person photo (PNG), rendered once from the body model and cached under `cache_dir`."""
    cache_dir = cache_dir or default_cache_dir()
    cached = cache_dir / "demo" / f"person-v{SAMPLE_VERSION}.png"
    if cached.exists():
        return cached.read_bytes()
    from pipeline.body.anny_model import build_anny

    model = build_anny(cache_dir / "anny")
    out = model(phenotype_kwargs={"gender": 0.5, "age": 0.7})
    vertices = out["vertices"][0].detach().cpu().numpy().astype(np.float64)
    faces = model.faces.cpu().numpy().astype(np.int64)
    data = _png(Image.fromarray(render_front(vertices, faces)))
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(cached)
    return data


def clothing_colours(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F, 3) colours: a top on the torso, trousers on the legs, hair on the crown, skin elsewhere."""
    centre = vertices[faces].mean(axis=1)
    low, high = vertices[:, 2].min(), vertices[:, 2].max()
    rel = (centre[:, 2] - low) / (high - low)
    colours = np.tile(np.array(SKIN, dtype=np.float64), (len(faces), 1))
    on_torso = (rel > 0.50) & (rel < 0.81) & (np.abs(centre[:, 0]) < 0.21)
    colours[on_torso] = TOP
    colours[(rel > 0.06) & (rel <= 0.50)] = TROUSERS
    crown = (rel > 0.935) & (centre[:, 1] > -0.06) | (rel > 0.975)
    colours[crown] = HAIR
    return colours


def render_front(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """A front view (the body faces -y; the camera looks along +y), painter's algorithm with Lambert light."""
    import cv2

    width, height = SIZE
    low, high = vertices[:, 2].min(), vertices[:, 2].max()
    focal = height * 1.6
    distance = focal * (high - low) / (height * 0.86)
    cam = np.stack([vertices[:, 0], -(vertices[:, 2] - (low + high) / 2), vertices[:, 1] + distance], axis=1)
    pixels = np.stack([focal * cam[:, 0] / cam[:, 2] + width / 2, focal * cam[:, 1] / cam[:, 2] + height / 2], 1)
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    normals = np.cross(b - a, c - a)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    light = np.array([0.3, -1.0, 0.5]) / np.linalg.norm([0.3, -1.0, 0.5])
    shade = np.clip(normals @ light, 0.0, 1.0) * 0.75 + 0.25
    colours = clothing_colours(vertices, faces) * shade[:, None]
    image = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    triangles = np.round(pixels[faces] * 16).astype(np.int32)
    for i in np.argsort(-cam[faces, 2].mean(axis=1)):  # far to near
        if normals[i, 1] <= 0.3:  # facing the camera
            cv2.fillConvexPoly(image, triangles[i], colours[i].astype(int).tolist(), cv2.LINE_AA, 4)
    return image


def sample_garment() -> bytes:
    image = Image.new("RGB", SIZE, (255, 255, 255))
    d = ImageDraw.Draw(image)
    body = [(234, 220), (320, 180), (448, 180), (534, 220), (660, 330), (590, 420), (530, 370),
            (530, 860), (238, 860), (238, 370), (178, 420), (108, 330)]
    d.polygon(body, fill=(196, 40, 52))
    d.ellipse((330, 150, 438, 230), fill=(255, 255, 255))  # neckline
    d.rectangle((300, 430, 468, 560), fill=(240, 210, 60))  # a print
    return _png(image)
