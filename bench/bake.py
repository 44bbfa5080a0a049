"""Benchmark of the back-projection bake (phase 4): the 8 views of a fitting output onto a 1024 atlas.

    .venv/bin/python -m bench.bake [--fitting DIR] [--out /tmp/bake-bench] [--repeat 5] [--size 1024]

`--fitting DIR` is a fitting phase output (`work/fitting/<key>/` holding angles/, views.json, dressed.npz and
atlas.png); without it the bench runs `dropfit demo` into a temporary bucket first and uses its fitting output.
Prints the bake's seconds (median and worst over `--repeat` runs, after one warm-up), the share of texels
seen, the main view's texel counts, and how far the baked atlas is from phase 3's atlas on the seen texels
(the CPU path renders the views from that atlas, so the bake should give it back). Writes the baked atlas,
phase 3's and their difference to `--out`, never into the repo.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.geometry import Camera
from pipeline.render.shade import Lighting
from pipeline.viewer3d.bake import Baked, bake_views


def demo_fitting(bucket: Path) -> Path:
    """Run `dropfit demo` into `bucket` and return its fitting folder."""
    cli = Path(sys.executable).with_name("dropfit")
    subprocess.run([str(cli), "demo", "--bucket", str(bucket)], check=True, capture_output=True)
    return next((bucket / "work" / "fitting").glob("*/views.json")).parent


def rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def load(fitting: Path) -> tuple[dict, list, Lighting, np.ndarray]:
    """dressed.npz arrays, the (image, camera) views, their lighting, and phase 3's atlas."""
    dressed = dict(np.load(fitting / "dressed.npz"))
    record = json.loads((fitting / "views.json").read_text())
    views = [(rgb(fitting / f"angles/{v['angle_deg']:03d}.png"), Camera.from_dict(v["camera"]))
             for v in record["views"]]
    light = record["lighting"]
    lighting = Lighting(ambient=light["ambient"], diffuse=light["diffuse"], direction=tuple(light["direction"]))
    return dressed, views, lighting, rgb(fitting / "atlas.png")


def compare(baked: Baked, atlas: np.ndarray) -> dict[str, float]:
    """Mean and 95th-percentile abs difference, and PSNR, of the baked atlas against `atlas` on seen texels."""
    diff = np.abs(baked.atlas.astype(np.float64) - atlas.astype(np.float64))[baked.seen]
    mse = float((diff**2).mean())
    return {"mean_abs": round(float(diff.mean()), 2), "p95_abs": round(float(np.percentile(diff, 95)), 2),
            "psnr_db": round(10 * np.log10(255**2 / max(mse, 1e-12)), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fitting", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bake-bench"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fitting = args.fitting or demo_fitting(Path(tmp) / "bucket")
        dressed, views, lighting, atlas = load(fitting)
    mesh = (dressed["vertices"], dressed["faces"], dressed["uvs"], dressed["face_uvs"])
    bake_views(*mesh, views, lighting, size=args.size, fallback_atlas=atlas)  # warm-up (imports, allocator)
    seconds = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        baked = bake_views(*mesh, views, lighting, size=args.size, fallback_atlas=atlas)
        seconds.append(time.perf_counter() - start)
    args.out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(baked.atlas).save(args.out / "baked.png")
    Image.fromarray(atlas).save(args.out / "phase3_atlas.png")
    diff = np.abs(baked.atlas.astype(np.int16) - atlas.astype(np.int16)).max(axis=2)
    Image.fromarray(np.clip(diff * 8, 0, 255).astype(np.uint8)).save(args.out / "difference_x8.png")
    width, height = views[0][1].image_size
    print(f"{len(views)} views at {width}x{height}, {len(mesh[1])} triangles, atlas {args.size}, "
          f"repeat {args.repeat}")
    print(json.dumps({"bake_s_median": round(statistics.median(seconds), 3), "bake_s_max": round(max(seconds), 3),
                      "seen_share": round(baked.seen_share, 4), "main_view_texels": baked.main_view_texels,
                      "against_phase3_atlas": compare(baked, atlas)}))
    print(f"wrote {args.out}/baked.png")


if __name__ == "__main__":
    main()
