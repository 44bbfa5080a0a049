"""The demo's built-in sample: a person and a garment drawn by the project itself (no files, no network).

The person is a simple drawn figure in a standing A-pose: it exercises the pipeline's plumbing, and is
replaced by a render of the parametric body once the body model lands.
"""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

SIZE = (768, 1024)
SKIN = (224, 178, 150)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def sample_person() -> bytes:
    image = Image.new("RGB", SIZE, (232, 232, 228))
    d = ImageDraw.Draw(image)
    cx = SIZE[0] // 2
    d.ellipse((cx - 55, 90, cx + 55, 220), fill=SKIN)  # head
    d.ellipse((cx - 58, 80, cx + 58, 150), fill=(70, 50, 40))  # hair
    d.rectangle((cx - 22, 215, cx + 22, 250), fill=SKIN)  # neck
    d.polygon([(cx - 120, 250), (cx + 120, 250), (cx + 100, 560), (cx - 100, 560)], fill=(90, 110, 140))  # top
    for side in (-1, 1):  # arms in an A-pose, legs apart
        d.line([(cx + side * 115, 265), (cx + side * 190, 430), (cx + side * 215, 600)], fill=SKIN, width=44)
        d.line([(cx + side * 55, 560), (cx + side * 80, 780), (cx + side * 95, 960)], fill=(50, 55, 70), width=70)
        d.ellipse((cx + side * 95 - 45, 945, cx + side * 95 + 45, 985), fill=(30, 30, 30))  # shoes
    d.rectangle((cx - 100, 540, cx + 100, 620), fill=(50, 55, 70))  # hips
    return _png(image)


def sample_garment() -> bytes:
    image = Image.new("RGB", SIZE, (255, 255, 255))
    d = ImageDraw.Draw(image)
    body = [(234, 220), (320, 180), (448, 180), (534, 220), (660, 330), (590, 420), (530, 370),
            (530, 860), (238, 860), (238, 370), (178, 420), (108, 330)]
    d.polygon(body, fill=(196, 40, 52))
    d.ellipse((330, 150, 438, 230), fill=(255, 255, 255))  # neckline
    d.rectangle((300, 430, 468, 560), fill=(240, 210, 60))  # a print
    return _png(image)
