"""Test phases: small, real functions with the product's phase shape (they read and write storage),
standing in for the model phases until those land. Never registered in the product.

Each execution appends `phase run_key pid` to a log file (O_APPEND, safe across processes), so tests can
count how often each phase really ran, even across killed workers.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.errors import InvalidInput, RetryableError
from pipeline.phase_api import PhaseFn, PhaseIO, PhaseRegistry, PhaseResult, PhaseTask
from pipeline.phases import PHASES, Phase, PhaseTable

# The product's phases (names, inputs, spec parts, versions, backends) with the test phases' own files.
FAKE_FILES: dict[str, dict[str, tuple[str, ...]]] = {
    "avatar": {"writes": ("body.json", "mask.bin")},
    "wardrobe": {"writes": ("garment.json",)},
    "fitting": {"reads": ("avatar/body.json", "wardrobe/garment.json"), "writes": ("angles/*.json",),
                "publishes": ("angles/*.json",)},
    "viewer3d": {"reads": ("fitting/angles/*.json",), "writes": ("model.json",), "publishes": ("model.json",)},
}
FAKE_PHASES = PhaseTable(Phase(name=p.name, run="", inputs=p.inputs, optional=p.optional, spec=p.spec,
                               version=p.version, backends=p.backends, **FAKE_FILES[p.name]) for p in PHASES)


class RunLog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def record(self, phase: str, run_key: str) -> None:
        line = f"{phase} {run_key} {os.getpid()}\n".encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def runs(self, phase: str | None = None) -> list[tuple[str, str]]:
        if not self.path.exists():
            return []
        rows = [tuple(line.split()[:2]) for line in self.path.read_text().splitlines() if line.strip()]
        return [r for r in rows if phase is None or r[0] == phase]  # type: ignore[misc]

    def count(self, phase: str) -> int:
        return len(self.runs(phase))


def _mean_colour(data: bytes) -> list[float]:
    with Image.open(io.BytesIO(data)) as image:
        small = np.asarray(image.convert("RGB").resize((8, 8)), dtype=np.float64)
    return [round(float(v), 2) for v in small.reshape(-1, 3).mean(axis=0)]


def make_fake_registry(log: RunLog, *, delay_s: float = 0.0, slow_phase: str | None = None,
                       slow_s: float = 0.0, flaky: dict[str, int] | None = None) -> PhaseRegistry:
    """`slow_phase` sleeps `slow_s` (in small steps) before writing; `flaky[phase] = n` makes the first n
    attempts of each run of that phase raise RetryableError."""
    flaky = dict(flaky or {})
    attempts: dict[str, int] = {}
    lock = threading.Lock()

    def begin(task: PhaseTask) -> None:
        log.record(task.phase, task.run_key)
        with lock:
            attempts[task.run_key] = attempts.get(task.run_key, 0) + 1
            seen = attempts[task.run_key]
        if seen <= flaky.get(task.phase, 0):
            raise RetryableError(f"{task.phase}: transient failure {seen}")
        if delay_s:
            time.sleep(delay_s)

    def pace(task: PhaseTask, steps: int) -> None:
        """The slow phase spends `slow_s` spread over its writes, so a kill lands mid-output."""
        if task.phase == slow_phase:
            time.sleep(slow_s / steps)

    def avatar(task: PhaseTask, io_: PhaseIO) -> PhaseResult:
        begin(task)
        colour = _mean_colour(io_.read_input("person"))
        if max(colour) < 8:
            raise InvalidInput("no person found (the photo is black)", "use a photo with one standing person")
        io_.write("body.json", json.dumps({"colour": colour, "height_cm": task.spec.person.height_cm}).encode())
        io_.write("mask.bin", os.urandom(4096))
        return PhaseResult(data={"colour": colour}, backends={"fake": "1"})

    def wardrobe(task: PhaseTask, io_: PhaseIO) -> PhaseResult:
        begin(task)
        colour = _mean_colour(io_.read_input("garment"))
        io_.write("garment.json", json.dumps({"colour": colour, "category": task.spec.garment.category}).encode())
        return PhaseResult(data={"colour": colour}, backends={"fake": "1"})

    def fitting(task: PhaseTask, io_: PhaseIO) -> PhaseResult:
        begin(task)
        body = json.loads(io_.read_upstream("avatar", "body.json"))
        garment = json.loads(io_.read_upstream("wardrobe", "garment.json"))
        for angle in range(0, 360, 45):
            view = {"angle": angle, "body": body, "garment": garment}
            io_.write(f"angles/{angle:03d}.json", json.dumps(view).encode())
            pace(task, 8)
        return PhaseResult(data={"angles": 8}, backends={"fake": "1"})

    def viewer3d(task: PhaseTask, io_: PhaseIO) -> PhaseResult:
        begin(task)
        views = [json.loads(io_.read_upstream("fitting", f"angles/{a:03d}.json")) for a in range(0, 360, 45)]
        io_.write("model.json", json.dumps({"views": len(views)}).encode(), "application/json")
        return PhaseResult(data={"views": len(views)}, backends={"fake": "1"})

    phases: dict[str, PhaseFn] = {"avatar": avatar, "wardrobe": wardrobe, "fitting": fitting, "viewer3d": viewer3d}
    return PhaseRegistry(phases, table=FAKE_PHASES)


def photo(colour: tuple[int, int, int], size: tuple[int, int] = (96, 128), fmt: str = "JPEG") -> bytes:
    """A small real image file (decodable) of one colour with a lighter block, for tests."""
    image = Image.new("RGB", size, colour)
    image.paste(tuple(min(255, c + 60) for c in colour), (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()
