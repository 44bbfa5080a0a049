"""Benchmark of phase 4's own work around a multi-view shape model (the `gpu` profile's MeshBuilder).

    .venv/bin/python -m bench.rebuild [--fitting DIR] [--repeat 3]

The model itself needs a GPU and its weights; what runs around it is ours and runs on the CPU of the phase's
container: the subject masks, placing the model's mesh in the body's frame (8 orientations x 8 silhouettes),
the UV unwrap (xatlas) and the bake onto the rebuilt mesh. To time those on a real job's views, the "model"
here is the dressed body itself handed back as a shape model would (y up, turned 90 degrees, in a unit cube);
so the bench also says how exactly the placement recovers a known mesh (max vertex error, IoU).

`--fitting DIR` is a fitting phase output (see bench/bake.py); without it, `dropfit demo` runs first.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.bake import demo_fitting, load
from pipeline.backends.protocols import MeshRequest, ShapeMesh
from pipeline.viewer3d.bake import bake_views
from pipeline.viewer3d.rebuild import rebuild

ANGLES = ("000", "045", "090", "135", "180", "225", "270", "315")


class KnownShapeBuilder:
    """A MeshBuilder that returns a known mesh in a shape model's frame (the bench's stand-in for the model)."""

    name = "known-shape"
    version = "bench"

    def __init__(self, vertices: np.ndarray, faces: np.ndarray) -> None:
        yup = vertices @ np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]).T
        turned = yup @ np.array([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]]).T
        centred = turned - (turned.max(axis=0) + turned.min(axis=0)) / 2
        self.shape = ShapeMesh((centred / np.abs(centred).max()).astype(np.float32), faces.astype(np.int32))

    def build_mesh(self, request: MeshRequest) -> ShapeMesh:
        return self.shape


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fitting", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fitting = args.fitting or demo_fitting(Path(tmp) / "bucket")
        dressed, views, lighting, _ = load(fitting)
    by_angle = dict(zip(ANGLES, views, strict=True))
    vertices, faces = dressed["vertices"].astype(np.float64), dressed["faces"]
    builder = KnownShapeBuilder(vertices, faces)
    rebuild_s, bake_s = [], []
    for _ in range(args.repeat):
        start = time.perf_counter()
        rebuilt = rebuild(builder, by_angle, vertices, faces)
        rebuild_s.append(time.perf_counter() - start)
        assert rebuilt.mesh is not None, rebuilt.record
        mesh = rebuilt.mesh
        start = time.perf_counter()
        baked = bake_views(*mesh.parts(), views, lighting, size=1024)
        bake_s.append(time.perf_counter() - start)
    error = float(np.abs(mesh.vertices - vertices).max())
    print(f"mesh: {len(faces)} faces, views {views[0][0].shape[1]}x{views[0][0].shape[0]}")
    print(f"rebuild (masks + placement + unwrap): median {statistics.median(rebuild_s):.2f} s, "
          f"worst {max(rebuild_s):.2f} s over {args.repeat}")
    print(f"bake onto the rebuilt mesh: median {statistics.median(bake_s):.2f} s, seen {baked.seen_share:.3f}")
    print(f"placement: IoU {rebuilt.record['silhouette_iou']}, up {rebuilt.record['up_axis']}, "
          f"yaw {rebuilt.record['yaw_deg']}, max vertex error {error * 1000:.1f} mm")


if __name__ == "__main__":
    main()
