"""Benchmark of the software renderer: the posed anny body at the photo's resolution, 8 turntable views.

    .venv/bin/python -m bench.render [--avatar DIR] [--out /tmp/render-bench] [--threads 1] [--repeat 3]

`--avatar DIR` is an avatar phase output (`work/avatar/<key>/` holding body.npz and camera.json); without it
the bench runs `dropfit demo` into a temporary bucket first and uses its avatar. The body is textured with a
UV test texture (a checker over a u -> red, v -> green ramp), so texture sampling and Lambert shading are both
timed. Prints rasterize, shade and total seconds per view (median over views x repeats, after one warm-up
render) and writes the 8 views and a labelled contact sheet (`sheet.png`) to `--out`, never into the repo.
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
from pipeline.render.raster import rasterize
from pipeline.render.shade import Lighting, Surface, shade
from pipeline.render.views import ANGLES_DEG, View, body_centre, contact_sheet, orbit_cameras


def demo_avatar(bucket: Path) -> Path:
    """Run `dropfit demo` into `bucket` and return its avatar folder."""
    cli = Path(sys.executable).with_name("dropfit")
    subprocess.run([str(cli), "demo", "--bucket", str(bucket)], check=True, capture_output=True)
    return next((bucket / "work" / "avatar").glob("*/body.npz")).parent


def uv_test_texture(size: int = 1024, squares: int = 16) -> np.ndarray:
    """(size, size, 3) uint8: a red/green ramp over u/v, darkened on alternate checker squares."""
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    texture = np.zeros((size, size, 3), dtype=np.float32)
    texture[..., 0] = ramp[None, :]
    texture[..., 1] = ramp[::-1, None]
    texture[..., 2] = 150
    cells = (np.arange(size) * squares // size)
    checker = (cells[:, None] + cells[None, :]) % 2 == 0
    texture[checker] *= 0.6
    return texture.astype(np.uint8)


def load_surface(avatar: Path) -> tuple[Surface, Camera]:
    body = np.load(avatar / "body.npz")
    camera = Camera.from_json((avatar / "camera.json").read_bytes())
    surface = Surface(vertices=body["vertices"], faces=body["faces"], texture=uv_test_texture(),
                      uvs=body["uvs"], face_uvs=body["face_uvs"])
    return surface, camera


def time_views(surface: Surface, cameras: list[Camera], threads: int, repeat: int
               ) -> tuple[list[View], dict[str, float]]:
    """Render every camera `repeat` times; the last round's views and the per-view seconds."""
    raster_s: list[float] = []
    shade_s: list[float] = []
    views: list[View] = []
    lighting = Lighting()
    for _ in range(repeat):
        views = []
        for angle, cam in zip(ANGLES_DEG, cameras, strict=True):
            t0 = time.perf_counter()
            raster = rasterize(surface.vertices, surface.faces, cam, threads=threads)
            t1 = time.perf_counter()
            image = shade(raster, surface, cam, lighting)
            t2 = time.perf_counter()
            raster_s.append(t1 - t0)
            shade_s.append(t2 - t1)
            views.append(View(angle_deg=angle, camera=cam, image=image, mask=raster.mask, seconds=t2 - t0))
    totals = [r + s for r, s in zip(raster_s, shade_s, strict=True)]
    stats = {"rasterize_s": statistics.median(raster_s), "shade_s": statistics.median(shade_s),
             "total_s": statistics.median(totals), "max_total_s": max(totals)}
    return views, stats


def labelled_sheet(views: list[View]) -> np.ndarray:
    import cv2

    labelled = []
    for view in views:
        image = view.image.copy()
        cv2.putText(image, f"{view.angle_deg:03d}", (20, 60), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (30, 30, 30), 4)
        labelled.append(View(view.angle_deg, view.camera, image, view.mask, view.seconds))
    return contact_sheet(labelled)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--avatar", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("/tmp/render-bench"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        avatar = args.avatar or demo_avatar(Path(tmp) / "bucket")
        surface, camera = load_surface(avatar)
    cameras = orbit_cameras(camera, body_centre(surface.vertices))
    shade(rasterize(surface.vertices, surface.faces, camera, threads=args.threads), surface, camera)  # warm-up
    views, stats = time_views(surface, cameras, args.threads, args.repeat)
    args.out.mkdir(parents=True, exist_ok=True)
    for view in views:
        Image.fromarray(view.image).save(args.out / f"{view.angle_deg:03d}.png")
    Image.fromarray(labelled_sheet(views)).save(args.out / "sheet.png")
    width, height = camera.image_size
    print(f"{width}x{height}, {len(surface.faces)} triangles, {len(views)} views x {args.repeat}, "
          f"threads={args.threads}")
    print(json.dumps({k: round(v, 4) for k, v in stats.items()}))
    print(f"wrote {args.out}/sheet.png")


if __name__ == "__main__":
    main()
