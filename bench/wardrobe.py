"""Benchmark of the wardrobe phase (garment photo -> garment analysis) on the development garments, on CPU.

    .venv/bin/python -m bench.wardrobe [--photos DIR] [--out /tmp/wardrobe-bench] [--labels FILE]

Every photo in DIR/garments runs through `analyse_garment` exactly as the product runs it: the real
`ClassicalGarmentSegmenter`, no vision LLM, a `PhaseIO` on a folder bucket under OUT (so the PNG and JSON
writes are timed too). One run on the first photo warms up (imports, OpenCV's first calls, the face
cascade) and is not counted. Prints per photo: milliseconds (whole phase, and the mask alone), category
with confidence, the hand label when known, mask coverage, print kind; then medians and the category
accuracy. Target: under 500 ms per garment after warm-up on this 2-core machine.

Writes into OUT (never into the repository): `{name}.overlay.png` and `{name}.mask.png` per photo,
`masks.png` (a contact sheet: each photo with the background tinted magenta, so misses and leaks show)
and `overlays.png` (the phase's debug overlays), and `results.json`. The exit code is 0 even when the
target is missed: this is a benchmark, not a test.
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

DEFAULT_PHOTOS = DEV_DATA
TARGET_MS = 500.0
TILE = (192, 256)

# Hand labels of the 42 development garments, from looking at each photo (tests/test_wardrobe_devdata.py
# uses them too). 04825 is a long halter top and 048769 a camisole: tops, though tall.
_UPPER = ("00055_00 00126_00 00151_00 00470_00 02015_00 02305_00 03032_00 03244_00 04825_00 048554_1 048769_1 "
          "049805_1 049920_1 049940_1 049947_1 049949_1 049965_1 050002_1 050105_1 050181_1 050191_1 06123_00 "
          "07382_00 07764_00 10297_00 12562_00")
_LOWER = "051412_1 051473_1 051515_1 051517_1 051827_1 051946_1 051988_1 051991_1"
_FULL = "051998_1 052234_1 053290_1 053319_1 053742_1 053744_1 053786_1 053790_1"
DEV_LABELS: dict[str, str] = {f"{stem}.jpg": category for category, stems in
                              (("upper", _UPPER), ("lower", _LOWER), ("full", _FULL)) for stem in stems.split()}


def run_one(store: Any, backends: Any, path: Path, index: int) -> tuple[dict[str, Any], dict[str, bytes]]:
    import hashlib

    from pipeline.phase_api import PhaseIO, PhaseTask
    from pipeline.plan import InputRef
    from pipeline.spec import JobSpec
    from pipeline.wardrobe.phase import analyse_garment

    data = path.read_bytes()
    key = f"incoming/bench-{index}/garment{path.suffix.lower()}"
    store.put(key, data)
    ref = InputRef(key=key, etag=hashlib.md5(data).hexdigest(), size=len(data), sha256=hashlib.sha256(data).hexdigest())
    task = PhaseTask(phase="wardrobe", run_key=f"bench-{index}", inputs={"garment": ref}, upstream={}, spec=JobSpec())
    phase_io = PhaseIO(store, task)
    start = time.perf_counter()
    result = analyse_garment(task, phase_io, backends)
    elapsed = (time.perf_counter() - start) * 1000.0
    files = {f.name: store.get(f.key) for f in phase_io.written}
    row = {"photo": path.name, "ms": round(elapsed, 1), "mask_ms": result.data["timings_ms"]["mask"],
           "category": result.data["category"], "confidence": result.data["category_confidence"],
           "label": DEV_LABELS.get(path.name), "coverage": result.data["coverage"], "print": result.data["print"],
           "timings_ms": result.data["timings_ms"]}
    return row, files


def tinted(photo: Path, mask_png: bytes) -> np.ndarray:
    """The photo with its background tinted magenta (where the mask says background)."""
    import io

    from PIL import Image

    rgb = np.asarray(Image.open(photo).convert("RGB").resize(TILE), dtype=np.float32)
    alpha = np.asarray(Image.open(io.BytesIO(mask_png)).convert("L").resize(TILE), dtype=np.float32)[..., None] / 255
    magenta = np.array([255.0, 0.0, 255.0])
    return (rgb * alpha + (0.45 * rgb + 0.55 * magenta) * (1 - alpha)).astype(np.uint8)


def contact_sheet(tiles: list[tuple[np.ndarray, str]], out: Path, columns: int = 7) -> None:
    from PIL import Image, ImageDraw

    w, h = TILE
    rows = (len(tiles) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * w, rows * (h + 14)), "black")
    draw = ImageDraw.Draw(sheet)
    for i, (tile, caption) in enumerate(tiles):
        x, y = (i % columns) * w, (i // columns) * (h + 14)
        sheet.paste(Image.fromarray(tile).resize(TILE), (x, y))
        draw.text((x + 2, y + h + 1), caption, fill="yellow")
    sheet.save(out)


def report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    labelled = [r for r in rows if r["label"]]
    correct = sum(r["category"] == r["label"] for r in labelled)
    return {
        "photos": len(rows),
        "median_ms": round(statistics.median(r["ms"] for r in rows), 1),
        "p90_ms": round(sorted(r["ms"] for r in rows)[int(0.9 * (len(rows) - 1))], 1),
        "max_ms": max(r["ms"] for r in rows),
        "median_mask_ms": round(statistics.median(r["mask_ms"] for r in rows), 1),
        "median_coverage": round(statistics.median(r["coverage"] for r in rows), 3),
        "category_correct": f"{correct}/{len(labelled)}",
        "target_ms": TARGET_MS,
        "target_met": statistics.median(r["ms"] for r in rows) < TARGET_MS,
    }


def main() -> None:
    from infra.folder_store import FolderStore
    from pipeline.backends.garment_mask import ClassicalGarmentSegmenter
    from pipeline.wardrobe.phase import WardrobeBackends

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--out", type=Path, default=Path("/tmp/wardrobe-bench"))
    args = parser.parse_args()
    photos = sorted(p for p in (args.photos / "garments").glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not photos:
        raise SystemExit(f"no garment photos in {args.photos / 'garments'}")
    args.out.mkdir(parents=True, exist_ok=True)
    store = FolderStore(args.out / "bucket")
    backends = WardrobeBackends(segmenter=ClassicalGarmentSegmenter())
    run_one(store, backends, photos[0], -1)  # warm-up, not counted
    rows, masks, overlays = [], [], []
    print(f"{'photo':14} {'ms':>6} {'mask':>6} {'category':14} {'label':6} {'cover':>6} print")
    for i, path in enumerate(photos):
        row, files = run_one(store, backends, path, i)
        rows.append(row)
        stem = path.stem
        (args.out / f"{stem}.overlay.png").write_bytes(files["overlay.png"])
        (args.out / f"{stem}.mask.png").write_bytes(files["mask.png"])
        masks.append((tinted(path, files["mask.png"]), f"{i} {stem}"))
        overlays.append((np.asarray(_decode(files["overlay.png"])), f"{i} {stem} {row['category']}"))
        mark = "" if row["label"] in (None, row["category"]) else "  <- label " + row["label"]
        print(f"{path.name:14} {row['ms']:6.0f} {row['mask_ms']:6.0f} {row['category']:5} {row['confidence']:.2f}"
              f"     {row['label'] or '-':6} {row['coverage']:6.3f} {row['print']}{mark}")
    contact_sheet(masks, args.out / "masks.png")
    contact_sheet(overlays, args.out / "overlays.png")
    summary = report(rows)
    (args.out / "results.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"contact sheets: {args.out / 'masks.png'}, {args.out / 'overlays.png'}")


def _decode(png: bytes) -> Any:
    import io

    from PIL import Image

    return Image.open(io.BytesIO(png)).convert("RGB")


if __name__ == "__main__":
    main()
