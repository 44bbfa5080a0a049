"""The three recipes of docs/architecture.md, done for real by tests/test_recipes.py: a test-only fifth phase,
a test-only try-on backend and a test-only subscriber kind. Each needs its code (here) and one declaration (in
the test: a row of the phase table, a row of the backend table, an entry of the subscriber kinds)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from events.webhooks import DeliveryRecord, SendResult
from pipeline.backends.protocols import TryOnRequest
from pipeline.backends.table import BackendSpec, BuildContext
from pipeline.codec import decode_rgb, encode_png
from pipeline.phase_api import PhaseIO, PhaseResult, PhaseTask
from pipeline.phases import Phase

# ---- recipe 1: a phase -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThumbnailBackends:
    """The thumbnail phase uses no model: its row declares no roles."""


def make_thumbnail(task: PhaseTask, io: PhaseIO, backends: ThumbnailBackends) -> PhaseResult:
    """A 1/4-size copy of the front view: a fifth phase after viewer3d, reading fitting's output by name."""
    front = decode_rgb(io.read_upstream("fitting", "angles/000.png"))
    small = np.ascontiguousarray(front[::4, ::4])
    io.write("thumbnail.png", encode_png(small), "image/png")
    return PhaseResult(data={"size": [int(small.shape[1]), int(small.shape[0])]}, backends={"thumbnail": "1"})


THUMBNAIL = Phase(name="thumbnail", run="recipes:make_thumbnail", reads=("fitting/angles/000.png",),
                  writes=("thumbnail.png",), publishes=("thumbnail.png",))


# ---- recipe 2: a backend ---------------------------------------------------------------------------------


ASKED_CATEGORIES: list[str | None] = []  # the garment category of every request a TintPainter was given


class TintPainter:
    """A `TryOnPainter` that tints the paint region towards the garment photo's mean colour, keeping what the
    request says to keep. Real code behind the real protocol, so the fitting phase's repaint path runs on it.
    It notes each request's garment category (`ASKED_CATEGORIES`), which the fitting phase must pass on."""

    name = "test-tint-painter"
    version = "1"

    def repaint(self, requests: list[TryOnRequest]) -> list[np.ndarray]:
        out = []
        for request in requests:
            ASKED_CATEGORIES.append(request.category)
            colour = request.garment.reshape(-1, 3).mean(axis=0)
            paint = (request.paint_mask * (1.0 - request.keep_mask))[..., None]
            tinted = request.render * (1.0 - 0.5 * paint) + colour * 0.5 * paint
            out.append(np.clip(tinted + 0.5, 0, 255).astype(np.uint8))
        return out


def build_painter(ctx: BuildContext) -> TintPainter:
    return TintPainter()


TINT_PAINTER = BackendSpec("test-tint-painter", "a tint of the garment's mean colour", ("TryOnPainter",),
                           "test code", True, "written for the tests", "none (no learned weights)",
                           build="recipes:build_painter", profiles=("cpu",))


# ---- recipe 3: a subscriber kind -------------------------------------------------------------------------


class FolderChannel:
    """A subscriber kind that drops each event as a JSON file into a folder (the target)."""

    kind = "folder"

    def __init__(self, target: str) -> None:
        self.target = target

    def send(self, record: DeliveryRecord, now: datetime) -> SendResult:
        folder = Path(self.target)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{record.message_id}.json").write_text(json.dumps(json.loads(record.body), indent=2))
        return SendResult("delivered", status=200)
