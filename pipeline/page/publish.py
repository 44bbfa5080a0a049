"""Writing the pages: a job's page and its assets (before its manifest), a batch's grid (before its report).

Everything is derived from what was published, so a re-publish writes the same bytes to the same keys.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
from collections.abc import Iterable
from typing import TypeVar
from urllib.parse import quote

from PIL import Image, ImageOps

from pipeline import layout
from pipeline.cost import JobCost
from pipeline.fitting.contracts import FitReport
from pipeline.manifests import BatchReport, FileEntry, PhaseSummary, ResultManifest
from pipeline.page.content import BatchGrid, FittingRecord, GridCell, ResultPage, Viewer, phase_rows
from pipeline.page.render import render_batch, render_result
from pipeline.page.turntable import turntable_webp
from pipeline.page.viewer import ViewerScript
from pipeline.plan import InputRef
from pipeline.storage import ObjectStore

M = TypeVar("M", FitReport, FittingRecord)

INDEX = "index.html"
TURNTABLE = "turntable.webp"
PAGE_DIR = "page/"
VIEWER_SCRIPT = f"{PAGE_DIR}model-viewer.min.js"
EMBEDDED_GLB = f"{PAGE_DIR}model-glb.js"  # the GLB as base64 in a classic script: what a page from a folder can load
MAX_EMBEDDED_GLB = 32 * 1024 * 1024  # larger models are shown from a served page only (base64 adds a third)
THUMBNAIL_SIDE = 640
_ANGLE = re.compile(r"^angles/(\d{3})\.png$")
DOWNLOADS = (("3D model (GLB)", "model.glb"), ("turntable (WebP)", TURNTABLE), ("contact sheet", "contact_sheet.jpg"),
             ("fit report", "fit_report.json"), ("fitting scores", "fitting.json"))


def is_page_file(name: str) -> bool:
    """Is this published name one the page step writes (not a phase's)?"""
    return name in (INDEX, TURNTABLE) or name.startswith(PAGE_DIR)


class _Writer:
    """Puts files under one job's results and remembers their manifest entries."""

    def __init__(self, store: ObjectStore, job_id: str) -> None:
        self.store, self.prefix, self.entries = store, layout.result_prefix(job_id), list[FileEntry]()

    def put(self, name: str, data: bytes, content_type: str) -> str:
        key = self.prefix + name
        self.store.put(key, data, content_type=content_type)
        self.entries.append(FileEntry(name=name, key=key, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                                      content_type=content_type))
        return name


def write_result_page(store: ObjectStore, job_id: str, files: list[FileEntry], inputs: dict[str, InputRef],
                      phases: dict[str, PhaseSummary], viewer: ViewerScript, *, batch_id: str | None = None,
                      max_embedded: int = MAX_EMBEDDED_GLB, cost: JobCost | None = None) -> list[FileEntry]:
    """The page, the turntable WebP and the page's assets under results/{job_id}/, given the job's published
    `files` (already copied there); their manifest entries, the page last. A GLB over `max_embedded` bytes is
    shown by served pages only."""
    by_name = {f.name: f for f in files}
    clash = sorted(name for name in by_name if is_page_file(name))
    if clash:
        raise LookupError(f"job {job_id}: a phase publishes {', '.join(clash)}, which the page writes; "
                          "fix the phase table")
    out = _Writer(store, job_id)
    angles = tuple(sorted(m.group(1) for m in map(_ANGLE.match, by_name) if m))
    turntable = None
    if angles:
        frames = [store.get(by_name[f"angles/{a}.png"].key) for a in angles]
        turntable = out.put(TURNTABLE, turntable_webp(frames), "image/webp")
    page = ResultPage(
        job_id=job_id, batch_id=batch_id, photo="photo.png" if "photo.png" in by_name else None, angles=angles,
        turntable=turntable, viewer=_viewer(store, out, by_name.get("model.glb"), viewer, max_embedded),
        report=_read(store, by_name.get("fit_report.json"), FitReport),
        fitting=_read(store, by_name.get("fitting.json"), FittingRecord),
        inputs=_inputs(store, out, inputs), phases=phase_rows(phases),
        downloads=tuple((label, name) for label, name in DOWNLOADS if name in by_name or name == turntable),
        cost=cost)
    out.put(INDEX, render_result(page), "text/html; charset=utf-8")
    return out.entries


def _viewer(store: ObjectStore, out: _Writer, glb: FileEntry | None, viewer: ViewerScript, max_embedded: int,
            ) -> Viewer:
    if glb is None:
        return Viewer(None, None, None, "this result has no 3D model")
    if viewer.source is None:
        return Viewer(glb.name, None, None, viewer.missing or "the 3D viewer is not installed")
    script = out.put(VIEWER_SCRIPT, viewer.source, "text/javascript")
    if glb.size > max_embedded:
        return Viewer(glb.name, script, None, None, not_embedded=(
            f"the model is {glb.size / 2**20:.1f} MB, too large to embed for a page opened from a folder"))
    encoded = base64.b64encode(store.get(glb.key)).decode("ascii")
    embedded = out.put(EMBEDDED_GLB, f'window.dropfitGlb = "{encoded}";\n'.encode(), "text/javascript")
    return Viewer(glb.name, script, embedded, None)


def _read(store: ObjectStore, entry: FileEntry | None, model: type[M]) -> M | None:
    return None if entry is None else model.model_validate_json(store.get(entry.key))


def _inputs(store: ObjectStore, out: _Writer, inputs: dict[str, InputRef]) -> tuple[tuple[str, str], ...]:
    """A thumbnail of each input photo the job read (skipped if it was replaced since: not this job's)."""
    shown = []
    for role in ("person", "garment", "size_chart"):
        ref = inputs.get(role)
        if ref is None:
            continue
        data = store.get(ref.key) if store.head(ref.key) is not None else b""
        if hashlib.sha256(data).hexdigest() != ref.sha256:
            continue
        try:
            small = thumbnail(data)
        except (OSError, ValueError, Image.DecompressionBombError):  # intake took it; a page need not show it
            continue
        shown.append((role, out.put(f"{PAGE_DIR}{role}.jpg", small, "image/jpeg")))
    return tuple(shown)


def thumbnail(data: bytes, side: int = THUMBNAIL_SIDE) -> bytes:
    """A JPEG of the photo upright, at most `side` pixels on its longer side."""
    opened = Image.open(io.BytesIO(data))
    opened.draft("RGB", (side, side))  # a large JPEG decodes at a fraction of its size
    image = ImageOps.exif_transpose(opened).convert("RGB")
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


# ---- the batch grid ---------------------------------------------------------------------------------


def write_batch_page(store: ObjectStore, report: BatchReport,
                     manifests: dict[str, ResultManifest | None]) -> str:
    """results/batches/{batch_id}/index.html: person rows, garment columns; `manifests` by job id (None for a
    failed job). Returns the key."""
    cells = {}
    for entry in report.jobs:
        manifest = manifests.get(entry.job_id)
        job = "../../" + quote(entry.job_id, safe="")
        names = {f.name for f in manifest.files} if manifest is not None else set()
        cells[(entry.person, entry.garment)] = GridCell(
            job_id=entry.job_id, status=entry.status,
            href=f"{job}/{INDEX}" if INDEX in names else None,
            front=f"{job}/angles/000.png" if "angles/000.png" in names else (
                f"{job}/photo.png" if "photo.png" in names else None),
            caption=_verdict(manifest), phase=entry.phase, error=entry.error, user_action=entry.user_action)
    grid = BatchGrid(batch_id=report.batch_id, people=_unique(e.person for e in report.jobs),
                     garments=_unique(e.garment for e in report.jobs), cells=cells, report=report)
    key = layout.batch_page_key(report.batch_id)
    store.put(key, render_batch(grid), content_type="text/html; charset=utf-8")
    return key


def _verdict(manifest: ResultManifest | None) -> str | None:
    fitting = manifest.phases.get("fitting") if manifest is not None else None
    if fitting is None or "recommended_size" not in fitting.data:
        return None
    return f"size {fitting.data['recommended_size']} · {fitting.data.get('overall_fit', '?')}"


def _unique(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))
