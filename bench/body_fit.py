"""Benchmark of the parametric body fit (anny) on the development photos, on CPU.

    .venv/bin/python -m bench.body_fit [--photos DIR] [--height 1.70] [--threads 2] [--debug DIR] [--out FILE]

For every photo: mediapipe pose (static, model_complexity=1, with its person mask) finds the landmarks,
then `pipeline.body.fit.fit_body` fits anny to them. Prints per photo whether a person was detected, the
fit's seconds, its reprojection error (px and % of the image height, mean over the keypoints used, weighted
as fitted) and the IoU of the fitted body's silhouette with mediapipe's mask (which includes clothes and
hair, so 1.0 is out of reach), then the medians. One fit warms up first and is not counted. Target: the
fit about 1 s or less per photo with torch on 2 threads. `--debug DIR` writes each photo with the fitted
outline (yellow), the mask's (green) and the keypoints (red, joined to their targets in blue) into DIR;
never into the repository. The exit code is 0 even when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.devdata import DEV_DATA
from pipeline.backends.protocols import PersonObservation
from pipeline.geometry import BodyFit

DEFAULT_PHOTOS = DEV_DATA


def detect(pose: Any, rgb: np.ndarray) -> PersonObservation | None:
    height, width = rgb.shape[:2]
    result = pose.process(rgb)
    if result.pose_landmarks is None:
        return None
    landmarks = np.array([[p.x * width, p.y * height, p.visibility] for p in result.pose_landmarks.landmark])
    world = np.array([[p.x, p.y, p.z] for p in result.pose_world_landmarks.landmark])
    return PersonObservation(image_size=(width, height), landmarks=landmarks, world=world,
                             mask=result.segmentation_mask.astype(np.float32), box=(0, 0, width, height))


def draw(bgr: np.ndarray, person: PersonObservation, fit: BodyFit, body: np.ndarray) -> np.ndarray:
    import cv2

    image = bgr.copy()
    for mask, colour in (((person.mask > 0.5), (0, 255, 0)), (body, (0, 220, 255))):
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(image, contours, -1, colour, 2)
    for (x, y), (tx, ty, w) in zip(fit.keypoints_2d, fit.targets_2d, strict=True):
        if w > 0:
            cv2.line(image, (int(tx), int(ty)), (int(x), int(y)), (255, 0, 0), 2)
            cv2.circle(image, (int(x), int(y)), 4, (0, 0, 255), -1)
    return image


def run(photos: list[Path], height_m: float, debug: Path | None) -> list[dict[str, Any]]:
    import cv2
    import mediapipe as mp

    from pipeline.body.anny_model import load_rig
    from pipeline.body.fit import fit_body
    from pipeline.body.silhouette import mask_iou, reprojection_error_px, silhouette

    rig = load_rig()
    rows: list[dict[str, Any]] = []
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1, enable_segmentation=True) as pose:
        warmed = False
        for path in photos:
            bgr = cv2.imread(str(path))
            person = detect(pose, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            if person is None:
                rows.append({"photo": path.name, "detected": False})
                print(f"{path.name:14s} no person", flush=True)
                continue
            if not warmed:
                fit_body(rig, person, height_m)
                warmed = True
            start = time.perf_counter()
            fit = fit_body(rig, person, height_m)
            seconds = time.perf_counter() - start
            body = silhouette(fit)
            error = reprojection_error_px(fit)
            row = {"photo": path.name, "detected": True, "fit_s": seconds, "error_px": error,
                   "error_pct": 100 * error / person.image_size[1], "iou": mask_iou(body, person.mask),
                   "used": int((fit.targets_2d[:, 2] > 0).sum())}
            rows.append(row)
            print(f"{path.name:14s} yes  fit {seconds:5.3f} s  error {error:5.1f} px {row['error_pct']:5.2f} %  "
                  f"IoU {row['iou']:.3f}  keypoints {row['used']}", flush=True)
            if debug is not None:
                cv2.imwrite(str(debug / f"{path.stem}_fit.png"), draw(bgr, person, fit, body))
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    fitted = [r for r in rows if r["detected"]]
    out: dict[str, float] = {"photos": len(rows), "detected": len(fitted)}
    for key in ("fit_s", "error_px", "error_pct", "iou"):
        out[f"median_{key}"] = statistics.median(r[key] for r in fitted)
    out["max_fit_s"] = max(r["fit_s"] for r in fitted)
    out["min_iou"] = min(r["iou"] for r in fitted)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS / "people")
    parser.add_argument("--height", type=float, default=1.70, help="the height every body is scaled to (m)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--debug", type=Path, default=None, help="folder for overlay images (outside the repo)")
    parser.add_argument("--out", type=Path, default=None, help="write the rows and summary as JSON")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    photos = sorted(p for p in args.photos.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not photos:
        raise SystemExit(f"no photos in {args.photos}")
    if args.debug is not None:
        args.debug.mkdir(parents=True, exist_ok=True)
    rows = run(photos, args.height, args.debug)
    totals = summary(rows)
    print(f"\n{totals['detected']}/{totals['photos']} detected; medians: fit {totals['median_fit_s']:.3f} s "
          f"(max {totals['max_fit_s']:.3f}), error {totals['median_error_px']:.1f} px "
          f"({totals['median_error_pct']:.2f} % of height), IoU {totals['median_iou']:.3f} "
          f"(min {totals['min_iou']:.3f})")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"rows": rows, "summary": totals}, indent=1))


if __name__ == "__main__":
    main()
