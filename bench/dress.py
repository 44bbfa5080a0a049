"""Benchmark and look-see of dressing the body (`pipeline.fitting.dress.dress_body`) on CPU.

    .venv/bin/python -m bench.dress [--out /tmp/dress-bench] [--buckets /tmp/dress-bench/buckets] [--repeat 3]

Runs `dropfit demo` plus `dropfit run` on 3 development pairs (upper, lower, full; photos from
$DROPFIT_DEV_DATA, default ../shared/data/tryon) into `--buckets` (re-used when already there), dresses each
avatar with its wardrobe garment and a fixed ease (chest 10, waist 12, hip 8 cm), prints the median seconds of
`dress_body` (1024 atlas) and its coverage, and writes the atlas and renders at 000 / 090 / 180 per case into
`--out` (never into the repo).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.devdata import DEV_DATA

DEV = DEV_DATA
PAIRS = {"01008_00": "00055_00", "049205_0": "051412_1", "051482_0": "051998_1"}  # person -> garment
EASE = {"chest": 10.0, "waist": 12.0, "hip": 8.0}


def bucket_for(buckets: Path, person: str | None) -> Path:
    """Run the demo (person None) or one dev pair into its own bucket, unless it is there already."""
    cli = Path(sys.executable).with_name("dropfit")
    bucket = buckets / (f"b_{person}" if person else "demo")
    if not any((bucket / "work" / "avatar").glob("*/body.npz")):
        args = ["demo"] if person is None else ["run", str(DEV / "people" / f"{person}.jpg"),
                                                 str(DEV / "garments" / f"{PAIRS[person]}.jpg")]
        subprocess.run([str(cli), *args, "--bucket", str(bucket)], capture_output=True)
    return bucket


def load_case(bucket: Path) -> dict:
    """The inputs of `dress_body` from a bucket's avatar and wardrobe runs."""
    from pipeline.fitting.dress import GarmentLook, PersonPhoto
    from pipeline.geometry import Camera, PosedBody

    avatar = next((bucket / "work" / "avatar").glob("*/body.npz")).parent
    wardrobe = next((bucket / "work" / "wardrobe").glob("*/garment.json")).parent
    photo_path = next((bucket / "incoming").glob("*/person.*"))
    photo = PersonPhoto(np.asarray(Image.open(photo_path).convert("RGB")),
                        np.asarray(Image.open(avatar / "mask.png").convert("L"), dtype=np.float32) / 255.0,
                        Camera.from_json((avatar / "camera.json").read_bytes()))
    garment = GarmentLook(np.asarray(Image.open(wardrobe / "cutout.png").convert("RGBA")),
                          json.loads((wardrobe / "garment.json").read_text())["category"]["value"],
                          np.asarray(Image.open(wardrobe / "texture.png").convert("RGB")))
    return {"body": PosedBody.from_npz((avatar / "body.npz").read_bytes()), "photo": photo, "garment": garment,
            "ease_cm_by_region": EASE}


def render_case(name: str, case: dict, out: Path, repeat: int) -> dict:
    """Dress one case `repeat` times (timed), write its atlas and a 000 / 090 / 180 strip."""
    from pipeline.fitting.dress import dress_body
    from pipeline.render.shade import Surface
    from pipeline.render.views import body_centre, render_views

    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        dressed = dress_body(**case)
        seconds.append(time.perf_counter() - start)
    body = case["body"]
    surface = Surface(vertices=dressed.vertices, faces=body.faces, texture=dressed.atlas, uvs=body.uvs,
                      face_uvs=body.face_uvs)
    views = render_views(surface, case["photo"].camera, body_centre(body.vertices), angles_deg=(0, 90, 180))
    strip = np.concatenate([case["photo"].rgb[: views[0].image.shape[0], : views[0].image.shape[1]]]
                           + [v.image for v in views], axis=1)
    Image.fromarray(strip).save(out / f"{name}_views.png")
    Image.fromarray(dressed.atlas).save(out / f"{name}_atlas.png")
    row = {"case": name, "category": case["garment"].category, "median_s": round(statistics.median(seconds), 3),
           "coverage": round(dressed.coverage, 3),
           "seen": round(dressed.seen, 3), "garment_vertices": int(dressed.garment_vertices.sum())}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/dress-bench"))
    parser.add_argument("--buckets", type=Path, default=Path("/tmp/dress-bench/buckets"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for person in (None, *PAIRS):
        render_case(person or "demo", load_case(bucket_for(args.buckets, person)), args.out, args.repeat)


if __name__ == "__main__":
    main()
