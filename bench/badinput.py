"""Every kind of bad input, once, through the CLI in a fresh bucket: the time to the answer and the peak memory.

    .venv/bin/python -m bench.badinput [--only NAME ...] [--out bench/out/badinput.json]

Each case is generated here (no files shipped): photos that are no photo, damaged, huge or 16-bit; job.json
and batch.json that nest, use another encoding or contradict themselves; several photos for one part; files
intake never reads; garment photos of a shoe, a bag or a person. A case runs as the user would: `dropfit run
PERSON GARMENT [--job-spec]`, or the files placed in the bucket and `dropfit sweep` (batches, duplicates), or
`dropfit status` (files intake never reads). Each command is one fresh process, measured from outside: its wall
time (start-up and imports included) and its peak RSS (a small launcher waits for it, so the RSS is the
command's own). Reported per case: what came back (refused, succeeded, flagged, listed) and its words.

Targets: every refusal within 3 s and 500 MB; every job's peak memory within 2 GB whatever the photo. "cmd s" is
the command's wall time (the target's measure); "pipe s" the pipeline's own: for `run`, from the upload to the
answer on record; for `sweep` (files placed before it starts), the steps' durations as the CLI prints them.
Exit code 0 even when a target is missed (the table says which).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, PngImagePlugin

ROOT = Path(__file__).resolve().parents[1]
REFUSAL_S, REFUSAL_MB, JOB_MB = 3.0, 500.0, 2048.0
RED, BLUE = (200, 40, 40), (40, 40, 200)
LAUNCHER = (  # waits for the command and reports its own peak RSS (KiB) and wall time: argv[1] is the report
    "import json, resource, subprocess, sys, time\n"
    "t = time.perf_counter(); r = subprocess.run(sys.argv[2:])\n"
    "json.dump({'rc': r.returncode, 's': time.perf_counter() - t,\n"
    "           'kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}, open(sys.argv[1], 'w'))\n"
)


@dataclass(frozen=True)
class Measured:
    returncode: int
    seconds: float
    peak_rss_mb: float
    output: str


def measure(command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> Measured:
    """Run `command` as a child of a small launcher process: its exit code, wall seconds, peak RSS and output.
    (A child forked straight from a big process would count that process's memory as its own.)"""
    report = cwd / f".measure-{time.monotonic_ns()}.json"
    done = subprocess.run([sys.executable, "-c", LAUNCHER, str(report), *command], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    result = json.loads(report.read_text())
    report.unlink()
    return Measured(result["rc"], round(result["s"], 3), round(result["kib"] / 1024, 1), done.stdout + done.stderr)


# ---- generated inputs -----------------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str = "PNG", **options: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def small_photo(colour: tuple[int, int, int] = RED, fmt: str = "JPEG") -> bytes:
    image = Image.new("RGB", (300, 400), colour)
    ImageDraw.Draw(image).rectangle((75, 100, 150, 200), fill=tuple(min(255, c + 60) for c in colour))
    return encode(image, fmt)


def png_header(width: int, height: int) -> bytes:
    """A small PNG whose header claims width x height (a decompression bomb's first bytes)."""
    data = bytearray(encode(Image.new("L", (100, 100))))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def png_with_metadata(size: int = 2_000_000) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "x" * size, zip=True)
    return encode(Image.new("RGB", (300, 400), RED), pnginfo=info)


def sample_person() -> Image.Image:
    from pipeline.sample import sample_person as render

    return Image.open(io.BytesIO(render())).convert("RGB")


def sample_garment() -> bytes:
    from pipeline.sample import sample_garment as draw

    return draw()


def grey16(image: Image.Image) -> bytes:
    """The image as a 16-bit greyscale PNG."""
    grey = np.asarray(image.convert("L")).astype(np.uint16) * 257
    return encode(Image.fromarray(grey))


def huge_person(size: tuple[int, int] = (6000, 8000)) -> bytes:
    """The sample person scaled up to 48 megapixels, as a phone's full-resolution JPEG."""
    return encode(sample_person().resize(size, Image.Resampling.BILINEAR), "JPEG", quality=90)


def shoe_photo() -> bytes:
    """A product shot of a shoe from the side: wide, low, heel left, toe right, on a light backdrop."""
    image = Image.new("RGB", (768, 1024), (245, 245, 245))
    draw = ImageDraw.Draw(image)
    draw.polygon([(120, 640), (120, 420), (200, 400), (300, 470), (420, 520), (600, 560), (660, 600), (670, 650),
                  (640, 680), (120, 680)], fill=(150, 60, 40))
    draw.rectangle((110, 660, 680, 700), fill=(60, 60, 60))
    return encode(image, "JPEG", quality=92)


def bag_photo() -> bytes:
    """A product shot of a handbag: a solid block under a narrower handle loop."""
    image = Image.new("RGB", (768, 1024), (245, 245, 245))
    draw = ImageDraw.Draw(image)
    draw.rectangle((180, 420, 590, 800), fill=(30, 30, 30))
    draw.arc((270, 260, 500, 580), 180, 360, fill=(30, 30, 30), width=26)
    return encode(image, "JPEG", quality=92)


def person_below_the_chin() -> bytes:
    """The sample person cropped just below the face, as a shop's model photo of a top: no face to find."""
    person = sample_person()
    rows = np.flatnonzero((np.abs(np.asarray(person).astype(int) - person.getpixel((5, 5))).sum(axis=2) > 30)
                          .any(axis=1))
    top = int(rows[0] + 0.1 * (rows[-1] - rows[0]))
    return encode(person.crop((0, top, person.width, person.height)), "JPEG", quality=92)


HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(4096)
SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="300" height="400"></svg>'
NESTED = b"[" * 100_000 + b"]" * 100_000
CHART = [{"label": "S", "chest_cm": 90}, {"label": "M", "chest_cm": 96}]


# ---- the cases ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # "refusal" (answered at intake), "job" (runs to the end, maybe flagged), "listing" (status)
    make: Callable[[Path], list[str]]  # writes its files under the folder, returns the dropfit arguments


def run_case(person: Callable[[], bytes], garment: Callable[[], bytes] = lambda: small_photo(BLUE),
             spec: Callable[[], bytes] | None = None, names: tuple[str, str] = ("person.jpg", "garment.jpg")
             ) -> Callable[[Path], list[str]]:
    def make(folder: Path) -> list[str]:
        (folder / names[0]).write_bytes(person())
        (folder / names[1]).write_bytes(garment())
        args = ["run", names[0], names[1], "--bucket", "bucket", "--job-id", "case"]
        if spec is not None:
            (folder / "job.json").write_bytes(spec())
            args += ["--job-spec", "job.json"]
        return args
    return make


def sweep_case(files: Callable[[], dict[str, bytes]]) -> Callable[[Path], list[str]]:
    def make(folder: Path) -> list[str]:
        for key, data in files().items():
            (folder / "bucket" / key).parent.mkdir(parents=True, exist_ok=True)
            (folder / "bucket" / key).write_bytes(data)
        return ["sweep", "bucket"]
    return make


def batch(marker: bytes, people: tuple[str, ...] = ("alice.jpg",)) -> dict[str, bytes]:
    files = {f"catalog/b/people/{name}": small_photo(RED) for name in people}
    return files | {"catalog/b/garments/shirt.jpg": small_photo(BLUE), "catalog/b/batch.json": marker}


def spec_of(value: object) -> Callable[[], bytes]:
    return lambda: json.dumps(value).encode()


STRAYS = ("incoming/person.jpg", "incoming/a/b/person.jpg", "incoming/.hidden/person.jpg", "incoming/_x/person.jpg",
          "incoming/jobs/person.jpg", "incoming/" + "x" * 130 + "/person.jpg", "incoming/trailing /person.jpg",
          "catalog/.b/people/a.jpg", "incoming/j/me.jpg", "incoming/j/person.jpeg.jpg", "incoming/k/person.heic")

CASES = [
    Case("text named .jpg", "refusal", run_case(lambda: b"this is not a photo\n")),
    Case("SVG named .jpg", "refusal", run_case(lambda: SVG)),
    Case("HEIC named .jpg", "refusal", run_case(lambda: HEIC)),
    Case("HTML named .jpg", "refusal", run_case(lambda: b"<!DOCTYPE html><html></html>")),
    Case("GIF named .png", "refusal", run_case(lambda: encode(Image.new("RGB", (300, 400), RED), "GIF"),
                                               names=("person.png", "garment.jpg"))),
    Case("truncated JPEG", "refusal", run_case(lambda: small_photo()[:2000])),
    Case("PNG with a 2 MB metadata chunk", "refusal", run_case(png_with_metadata, names=("person.png", "garment.jpg"))),
    Case("41 MiB file", "refusal", run_case(lambda: b"\xff\xd8" + bytes(41 * 1024 * 1024))),
    Case("9000 px side (header)", "refusal", run_case(lambda: png_header(9000, 6000), names=("person.png", "g.jpg"))),
    Case("decompression bomb header", "refusal", run_case(lambda: png_header(100_000, 100_000),
                                                          names=("person.png", "garment.jpg"))),
    Case("job.json nested 100000 deep", "refusal", run_case(small_photo, spec=lambda: NESTED)),
    Case("job.json in UTF-16", "refusal", run_case(small_photo, spec=lambda: json.dumps({}).encode("utf-16"))),
    Case("job.json in Latin-1", "refusal", run_case(small_photo, spec=lambda: '{"garment": {"size": "é"}}'
                                                    .encode("latin-1"))),
    Case("job.json of 5 MiB", "refusal", run_case(small_photo, spec=lambda: b" " * (5 * 1024 * 1024) + b"{}")),
    Case("size not in the size chart", "refusal", run_case(small_photo, spec=spec_of(
        {"garment": {"size": "XL", "size_chart": CHART}}))),
    Case("subscriber 'not a url at all'", "refusal", run_case(small_photo, spec=spec_of(
        {"subscribers": [{"url": "not a url at all"}]}))),
    Case("misspelt job.json field", "refusal", run_case(small_photo, spec=spec_of({"persn": {"height_cm": 170}}))),
    Case("three person photos in one job", "refusal", sweep_case(lambda: {
        "incoming/j/person.jpg": small_photo(), "incoming/j/person.png": small_photo(fmt="PNG"),
        "incoming/j/Person.webp": small_photo(fmt="WEBP"), "incoming/j/garment.jpg": small_photo(BLUE)})),
    Case("batch.json nested 100000 deep", "refusal", sweep_case(lambda: batch(NESTED))),
    Case("batch.json field errors", "refusal", sweep_case(lambda: batch(json.dumps(
        {"people": {"alice.jpg": {"height_cm": 20}}, "garmnets": {}}).encode()))),
    Case("batch.json override for a missing photo", "refusal", sweep_case(lambda: batch(json.dumps(
        {"people": {"alise.jpg": {"height_cm": 170}}}).encode(), people=("alice.jpg", "bob.jpg")))),
    Case("files intake never reads", "listing", sweep_case(lambda: {k: small_photo() for k in STRAYS})),
    Case("16-bit greyscale person PNG", "job", run_case(lambda: grey16(sample_person()), sample_garment,
                                                        names=("person.png", "garment.png"))),
    Case("48-megapixel person JPEG", "job", run_case(huge_person, sample_garment, names=("person.jpg", "garment.png"))),
    Case("job.json with a byte-order mark", "job", run_case(
        lambda: encode(sample_person()), sample_garment, spec=lambda: b'\xef\xbb\xbf{"person": {"height_cm": 172}}',
        names=("person.png", "garment.png"))),
    Case("a shoe as the garment", "job", run_case(lambda: encode(sample_person()), shoe_photo,
                                                  names=("person.png", "garment.jpg"))),
    Case("a bag as the garment", "job", run_case(lambda: encode(sample_person()), bag_photo,
                                                 names=("person.png", "garment.jpg"))),
    Case("a model wearing the top as the garment", "job", run_case(lambda: encode(sample_person()),
                                                                   person_below_the_chin,
                                                                   names=("person.png", "garment.jpg"))),
]


# ---- running and judging ---------------------------------------------------------------------------------------


def answer_delay(bucket: Path) -> float | None:
    """Seconds from the first upload to the answer on record (error.json, the batch report or manifest.json):
    the pipeline's own time, without the command's start-up."""
    uploads = [p.stat().st_mtime for top in ("incoming", "catalog") for p in (bucket / top).rglob("*") if p.is_file()]
    answers = [p.stat().st_mtime for pattern in ("results/*/error.json", "results/*/manifest.json",
                                                 "results/batches/*/report.json") for p in bucket.glob(pattern)]
    return round(max(answers) - min(uploads), 3) if uploads and answers else None


def answer(bucket: Path, case: Case) -> tuple[str, str]:
    """(outcome, words): what the bucket says the user got."""
    for error in sorted(bucket.glob("results/*/error.json")):
        return "refused", json.loads(error.read_text())["reason"]
    for report in sorted(bucket.glob("results/batches/*/report.json")):
        data = json.loads(report.read_text())
        reasons = [data.get("error")] + [j.get("error") for j in data.get("jobs", [])]
        return "refused", next((r for r in reasons if r), "no job failed")
    for manifest in sorted(bucket.glob("results/*/manifest.json")):
        phases = json.loads(manifest.read_text())["phases"]
        flags = phases.get("wardrobe", {}).get("data", {}).get("flags", [])
        notes = [n for p in ("avatar", "wardrobe") for n in phases.get(p, {}).get("data", {}).get("notes", [])
                 if "working size" in n or "looks like" in n or "worn by a person" in n]
        return ("flagged " + ",".join(flags) if flags else "succeeded"), "; ".join(notes)
    return "no answer", ""


def steps_s(output: str) -> float:
    """The steps' own time, as the CLI prints it ('✓ intake  refused (120 ms)')."""
    return round(sum(float(ms) for ms in re.findall(r"\((\d+) ms\)", output)) / 1000, 3)


def run(case: Case, folder: Path, env: dict[str, str]) -> dict[str, Any]:
    args = case.make(folder)
    measured = measure([sys.executable, "-m", "functions.cli", *args], folder, env)
    pipeline_s = answer_delay(folder / "bucket") if args[0] == "run" else steps_s(measured.output)
    if case.kind == "listing":
        measured = measure([sys.executable, "-m", "functions.cli", "status", "bucket"], folder, env)
        listed = measured.output.count("│ incoming/") + measured.output.count("│ catalog/")
        outcome, words = f"listed {listed} rows", "dropfit status: 11 stray files and 2 jobs waiting for a photo"
        pipeline_s = None
    else:
        outcome, words = answer(folder / "bucket", case)
    limit_mb = JOB_MB if case.kind == "job" else REFUSAL_MB
    within = measured.peak_rss_mb <= limit_mb and (case.kind == "job" or measured.seconds <= REFUSAL_S)
    return {"case": case.name, "kind": case.kind, "outcome": outcome, "answer": words, "seconds": measured.seconds,
            "answer_s": pipeline_s, "peak_rss_mb": measured.peak_rss_mb,
            "exit_code": measured.returncode, "within_targets": within}


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'case':42} {'kind':8} {'outcome':30} {'cmd s':>6} {'pipe s':>6} {'MB':>6}  ok")
    for row in rows:
        inside = "" if row["answer_s"] is None else f"{row['answer_s']:.2f}"
        print(f"{row['case'][:42]:42} {row['kind']:8} {row['outcome'][:30]:30} {row['seconds']:6.2f} {inside:>6} "
              f"{row['peak_rss_mb']:6.0f}  {'yes' if row['within_targets'] else 'NO'}")
    for row in rows:
        print(f"  {row['case']}: {row['answer'][:200]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", default=None, help="case names (substrings) to run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/badinput.json")
    args = parser.parse_args(argv)
    cases = [c for c in CASES if not args.only or any(o.lower() in c.name.lower() for o in args.only)]
    env = {**os.environ, "COLUMNS": "250", "DROPFIT_WAITING_AFTER_S": "0.001", "PYTHONPATH": str(ROOT)}
    rows = []
    for case in cases:
        folder = Path(tempfile.mkdtemp(prefix="dropfit-badinput-"))
        try:
            rows.append(run(case, folder, env))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        print(f"{case.name}: {rows[-1]['outcome']} in {rows[-1]['seconds']:.2f} s, {rows[-1]['peak_rss_mb']:.0f} MB",
              flush=True)
    print_table(rows)
    refusals = [r for r in rows if r["kind"] != "job"]
    jobs = [r for r in rows if r["kind"] == "job"]
    summary = {"targets": {"refusal_s": REFUSAL_S, "refusal_mb": REFUSAL_MB, "job_mb": JOB_MB},
               "slowest_refusal_s": max((r["seconds"] for r in refusals), default=None),
               "largest_refusal_mb": max((r["peak_rss_mb"] for r in refusals), default=None),
               "largest_job_mb": max((r["peak_rss_mb"] for r in jobs), default=None),
               "all_within_targets": all(r["within_targets"] for r in rows)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "cases": rows}, indent=2))
    print(json.dumps(summary), f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
