"""Benchmark of the CPU person backends on the development photos: the landmarker and the face embedder.

    .venv/bin/python -m bench.person_backends [--photos DIR] [--repeats 5] [--no-garments] [--debug DIR]
                                              [--out FILE]

For every person photo: `MediapipePersonLandmarker.find_person` (landmarks, world landmarks, mask, the
people count) and `DlibFaceEmbedder.faces` (detection, 5 points, 128-D embedding), each called `--repeats`
times; the photo's time is the median of its calls. Prints per photo whether a person was found, how many
people and faces, and the two times, then the detection rate, the faces found and the medians over the
photos (after one warm-up call of each backend on the first photo, not counted). The flat-lay garments
beside the people (`../garments`) are then checked once each: none should be taken for a person. Targets
(a 768x1024 photo, this 2-core machine): landmarks + mask < 0.15 s, face detect + embed < 0.2 s, so that
the avatar phase with its ~1 s body fit stays under 1.5 s. `--debug DIR` writes each photo with its
landmarks, box, mask outline and face boxes into DIR; never into the repository. The exit code is 0 even
when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.devdata import DEV_DATA
from pipeline.backends.dlib_face import DlibFaceEmbedder
from pipeline.backends.mediapipe_person import MediapipePersonLandmarker
from pipeline.backends.protocols import Face, PersonObservation

DEFAULT_PHOTOS = DEV_DATA
LANDMARKS_TARGET_S = 0.15
FACES_TARGET_S = 0.2
SKELETON = ((11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24), (23, 25), (25, 27),
            (24, 26), (26, 28))


def load(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def photos_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def timed(call: Callable[[], Any], repeats: int) -> tuple[Any, float]:
    """The last result and the median seconds of `repeats` calls."""
    seconds, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - start)
    return result, statistics.median(seconds)


def draw(rgb: np.ndarray, person: PersonObservation | None, faces: list[Face]) -> Image.Image:
    import cv2

    image = rgb.copy()
    if person is not None:
        contours, _ = cv2.findContours((person.mask > 0.5).astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(image, contours, -1, (0, 255, 0), 2)
        cv2.rectangle(image, person.box[:2], person.box[2:], (255, 0, 0), 2)
        marks = person.landmarks
        for a, b in SKELETON:
            if marks[a, 2] > 0.5 and marks[b, 2] > 0.5:
                cv2.line(image, tuple(int(v) for v in marks[a, :2]), tuple(int(v) for v in marks[b, :2]),
                         (255, 220, 0), 3)
    for face in faces:
        cv2.rectangle(image, face.box[:2], face.box[2:], (255, 0, 255), 2)
        for x, y in face.landmarks:
            cv2.circle(image, (int(x), int(y)), 3, (255, 0, 255), -1)
    return Image.fromarray(image)


def run(photos: list[Path], repeats: int, debug: Path | None) -> list[dict[str, Any]]:
    landmarker, embedder = MediapipePersonLandmarker(), DlibFaceEmbedder()
    first = load(photos[0])
    landmarker.find_person(first)  # warm-up: builds the graphs
    embedder.faces(first)
    rows: list[dict[str, Any]] = []
    for path in photos:
        rgb = load(path)
        person, person_s = timed(lambda: landmarker.find_person(rgb), repeats)  # noqa: B023 (called at once)
        faces, faces_s = timed(lambda: embedder.faces(rgb), repeats)  # noqa: B023
        row: dict[str, Any] = {
            "photo": path.name, "size": list(rgb.shape[1::-1]), "detected": person is not None,
            "people": person.people if person else 0, "notes": list(person.notes) if person else [],
            "faces": len(faces), "landmarks_s": person_s, "faces_s": faces_s,
        }
        rows.append(row)
        print(f"{path.name:14s} {'yes' if person else 'NO ':3s} people {row['people']}  faces {len(faces)}  "
              f"landmarks {person_s:.3f} s  faces {faces_s:.3f} s  {'; '.join(row['notes'])}", flush=True)
        if debug is not None:
            draw(rgb, person, faces).save(debug / f"{path.stem}_person.png")
    return rows


def garment_check(garments: list[Path]) -> dict[str, Any]:
    landmarker = MediapipePersonLandmarker()
    taken = [p.name for p in garments if landmarker.find_person(load(p)) is not None]
    return {"garments": len(garments), "taken_for_a_person": taken}


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    landmarks = [r["landmarks_s"] for r in rows]
    faces = [r["faces_s"] for r in rows]
    with_face = [r["faces_s"] for r in rows if r["faces"]]
    return {
        "photos": len(rows), "detected": sum(r["detected"] for r in rows),
        "photos_with_a_face": sum(r["faces"] > 0 for r in rows), "faces": sum(r["faces"] for r in rows),
        "median_landmarks_s": statistics.median(landmarks), "max_landmarks_s": max(landmarks),
        "median_faces_s": statistics.median(faces), "max_faces_s": max(faces),
        "median_faces_s_with_a_face": statistics.median(with_face) if with_face else None,
        "median_both_s": statistics.median(a + b for a, b in zip(landmarks, faces, strict=True)),
    }


def verdict(value: float, target: float) -> str:
    return f"{'met' if value < target else 'MISSED'} (< {target} s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS / "people")
    parser.add_argument("--repeats", type=int, default=5, help="calls per photo and backend (median kept)")
    parser.add_argument("--no-garments", action="store_true", help="skip the garment false-positive check")
    parser.add_argument("--debug", type=Path, default=None, help="folder for overlay images (outside the repo)")
    parser.add_argument("--out", type=Path, default=None, help="write the rows and summary as JSON")
    args = parser.parse_args()
    photos = photos_in(args.photos)
    if not photos:
        raise SystemExit(f"no photos in {args.photos}")
    if args.debug is not None:
        args.debug.mkdir(parents=True, exist_ok=True)
    rows = run(photos, max(1, args.repeats), args.debug)
    totals = summary(rows)
    with_face = totals["median_faces_s_with_a_face"]
    print(f"\nperson found on {totals['detected']}/{totals['photos']} photos; faces on "
          f"{totals['photos_with_a_face']}/{totals['photos']} ({totals['faces']} faces)")
    print(f"landmarks + mask: median {totals['median_landmarks_s']:.3f} s, max {totals['max_landmarks_s']:.3f} s  "
          f"{verdict(totals['median_landmarks_s'], LANDMARKS_TARGET_S)}")
    print(f"faces: median {totals['median_faces_s']:.3f} s (photos with a face {with_face or 0:.3f} s), "
          f"max {totals['max_faces_s']:.3f} s  {verdict(with_face or totals['median_faces_s'], FACES_TARGET_S)}")
    print(f"both: median {totals['median_both_s']:.3f} s per photo")
    garments = photos_in(args.photos.parent / "garments")
    if garments and not args.no_garments:
        check = garment_check(garments)
        totals["garment_check"] = check
        print(f"garments taken for a person: {len(check['taken_for_a_person'])}/{check['garments']} "
              f"{check['taken_for_a_person'] or ''}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"rows": rows, "summary": totals}, indent=1))


if __name__ == "__main__":
    main()
