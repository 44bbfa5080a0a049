"""The result page, its turntable WebP and the batch grid: what the publish and report steps write, read back
from storage and compared with the JSON files they show (the page in a real browser:
test_result_page_browser.py)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from conftest import run_sample_job
from events.outbound import StoreEventLog
from fakes import RunLog, make_fake_registry, photo
from functions import steps
from functions.app import LocalApp, build_local
from infra.folder_store import FolderStore
from infra.settings import Settings
from pipeline import layout
from pipeline.fitting.contracts import FitReport
from pipeline.manifests import BatchReport, ResultManifest
from pipeline.page.content import ResultPage, Viewer
from pipeline.page.publish import is_page_file, write_result_page
from pipeline.page.render import render_result
from pipeline.page.viewer import ViewerScript, find_viewer
from pipeline.phases import PHASES
from pipeline.plan import JobPlan
from pipeline.state import load_plan, read_model

JOB = "page job"  # a space: the page's links must not depend on the id
VIEWER = find_viewer(Settings().models().cache)  # `make setup` vendors it where npm exists
needs_viewer = pytest.mark.skipif(VIEWER.source is None, reason=str(VIEWER.missing))


class PageText(HTMLParser):
    """The text of a page's elements, by `#id` and by `row/class` (a row: an element with data-angle,
    data-region or data-job), and every element's attributes, in document order."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.stack: list[tuple[str, dict[str, str]]] = []
        self.texts: dict[str, str] = {}
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = (tag, {k: v or "" for k, v in attrs})
        self.elements.append(element)
        if tag not in ("img", "meta", "link", "br", "input"):
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self.stack and self.stack.pop()[0] != tag:
            pass

    def handle_data(self, data: str) -> None:
        row = next((a.get("data-angle") or a.get("data-region") or a.get("data-job") for _, a in reversed(self.stack)
                    if {"data-angle", "data-region", "data-job"} & set(a)), None)
        for _, attrs in self.stack:
            keys = [f"#{attrs['id']}"] if "id" in attrs else []
            keys += [f"{row}/{c}" for c in attrs.get("class", "").split()] if row else []
            for key in keys:
                self.texts[key] = (self.texts.get(key, "") + data).strip()

    def text(self, key: str) -> str:
        return " ".join(self.texts[key].split())


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalApp, ResultManifest]:
    app = build_local(tmp_path_factory.mktemp("bucket"), Settings(workers=2))
    return app, run_sample_job(app, JOB)


def result_file(app: LocalApp, name: str) -> bytes:
    return app.store.get(layout.result_prefix(JOB) + name)


def test_the_manifest_lists_the_page_and_its_assets_with_their_sizes_and_hashes(job) -> None:
    app, manifest = job
    names = [f.name for f in manifest.files]
    assert {"index.html", "turntable.webp", "page/person.jpg", "page/garment.jpg"} <= set(names)
    viewer_files = {"page/model-viewer.min.js", "page/model-glb.js"}
    assert viewer_files <= set(names) if VIEWER.source is not None else not viewer_files & set(names)
    assert names[-1] == "index.html"  # built from everything else
    for entry in manifest.files:
        data = app.store.get(entry.key)
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry.size, entry.sha256), entry.name
    by_name = {f.name: f for f in manifest.files}
    assert by_name["index.html"].content_type.startswith("text/html")
    assert by_name["turntable.webp"].content_type == "image/webp"
    root = app.store.root / layout.result_prefix(JOB)
    assert (root / "manifest.json").stat().st_mtime_ns >= (root / "index.html").stat().st_mtime_ns  # written last


def test_the_turntable_webp_loops_the_8_views_at_8_fps(job) -> None:
    app, _ = job
    with Image.open(io.BytesIO(result_file(app, "turntable.webp"))) as webp:
        assert webp.format == "WEBP" and webp.n_frames == 8 and webp.info["loop"] == 0
        durations = []
        for frame in range(webp.n_frames):
            webp.seek(frame)
            webp.load()  # a frame's duration is known once it is decoded
            durations.append(webp.info["duration"])
        assert durations == [125] * 8
        with Image.open(io.BytesIO(result_file(app, "angles/000.png"))) as front:
            assert webp.size[1] == min(front.size[1], 512)


def test_the_page_shows_the_fit_report_and_the_scores_of_the_json_files(job) -> None:
    app, _ = job
    page = PageText(result_file(app, "index.html").decode())
    report = FitReport.model_validate_json(result_file(app, "fit_report.json"))
    fitting = json.loads(result_file(app, "fitting.json"))
    assert page.text("#recommended-size") == report.recommended_size
    assert page.text("#size-evaluated") == report.size_evaluated
    assert page.text("#overall-label") == report.overall_label
    for region in report.regions:
        assert page.text(f"{region.region}/label") == region.label
        assert page.text(f"{region.region}/ease") == f"{region.effective_ease_cm:+.1f} cm"
    for note in report.notes:
        assert note in page.text("#notes")
    assert len(fitting["identity"]) == 8
    for score in fitting["identity"]:
        shown = page.text(f"{score['angle']}/distance")
        assert shown == ("–" if score["distance"] is None else str(score["distance"]))
        said = "not compared" if score["status"].startswith("skipped") else score["status"]  # the reason: its title
        assert page.text(f"{score['angle']}/chip") == said
    assert any(a.get("title", "").startswith("skipped: the view turns 180 degrees") for _, a in page.elements)
    flags = page.text("#quality-flags")
    assert all(flag in flags for flag in fitting["quality_flags"])
    assert fitting["quality_flags"] or "no quality flags" in flags


@needs_viewer
def test_the_page_links_only_relative_files_that_were_published(job) -> None:
    app, manifest = job
    page = PageText(result_file(app, "index.html").decode())
    published = {f.name for f in manifest.files} | {"manifest.json"}
    links = [a.get("src") or a.get("href") for _, a in page.elements if a.get("src") or a.get("href")]
    links = [link for link in links if link != "data:,"]  # the empty favicon: no request
    assert links and all("://" not in link and not link.startswith("/") for link in links)
    assert set(links) <= published, set(links) - published
    order = [a.get("id") for _, a in page.elements if a.get("id") in ("photo", "turntable", "viewer")]
    assert order == ["photo", "turntable", "viewer"]  # the person wearing it first
    viewer = next(a for tag, a in page.elements if tag == "model-viewer")
    assert (viewer["data-src"], viewer["data-embedded"]) == ("model.glb", "page/model-glb.js")
    assert [f"angles/{a:03d}.png" for a in range(0, 360, 45)] == [
        a["src"] for tag, a in page.elements if tag == "img" and "data-angle" in a]
    timings = page.text("#phases")
    assert all(name in timings for name in manifest.phases) and "anny" in timings  # backends too


@needs_viewer
def test_the_embedded_glb_is_the_published_model(job) -> None:
    import base64

    app, _ = job
    script = result_file(app, "page/model-glb.js").decode()
    assert script.startswith('window.dropfitGlb = "') and script.endswith('";\n')
    assert base64.b64decode(script.split('"')[1]) == result_file(app, "model.glb")


def test_a_re_publish_writes_the_same_bytes_to_the_same_keys(job) -> None:
    app, manifest = job
    before = {f.name: app.store.get(f.key) for f in manifest.files}
    app.store.delete(layout.result_manifest_key(JOB))  # as if the worker died before the manifest
    steps.run_publish(app.store, JOB, StoreEventLog(app.store), PHASES, VIEWER)
    again = read_model(app.store, layout.result_manifest_key(JOB), ResultManifest)
    assert again is not None
    assert [f.model_dump() for f in again.files] == [f.model_dump() for f in manifest.files]
    assert {f.name: app.store.get(f.key) for f in again.files} == before


def copied_job(source: FolderStore, tmp_path: Path) -> tuple[FolderStore, JobPlan]:
    """The finished job's bucket copied (the page written again there leaves the fixture's alone), and its plan."""
    shutil.copytree(source.root, tmp_path / "copy", ignore=shutil.ignore_patterns(".dropfit"))
    store = FolderStore(tmp_path / "copy")
    plan = load_plan(store, JOB)
    assert plan is not None
    return store, plan


def test_without_the_vendored_viewer_the_page_shows_the_rest_and_says_why(job, tmp_path: Path) -> None:
    app, manifest = job
    store, plan = copied_job(app.store, tmp_path)
    phase_files = [f for f in manifest.files if not is_page_file(f.name)]
    written = write_result_page(store, JOB, phase_files, plan.inputs, manifest.phases,
                                ViewerScript(None, "npm was not found at setup"))
    names = {f.name for f in written}
    assert "page/model-viewer.min.js" not in names and "page/model-glb.js" not in names
    html = store.get(layout.result_page_key(JOB)).decode()
    page = PageText(html)
    assert "<model-viewer" not in html and "npm was not found at setup" in page.text("#viewer-note")
    assert page.text("#recommended-size") and page.text("000/distance")  # everything else is there


def test_a_model_too_large_to_embed_is_left_to_served_pages(job, tmp_path: Path) -> None:
    app, manifest = job
    store, plan = copied_job(app.store, tmp_path)
    written = write_result_page(store, JOB, [f for f in manifest.files if not is_page_file(f.name)], plan.inputs,
                                manifest.phases, ViewerScript(b"// the viewer's script\n"), max_embedded=1000)
    assert "page/model-glb.js" not in {f.name for f in written} and "page/model-viewer.min.js" in {
        f.name for f in written}
    viewer = next(a for tag, a in PageText(store.get(layout.result_page_key(JOB)).decode()).elements
                  if tag == "model-viewer")
    assert viewer["data-src"] == "model.glb" and viewer["data-embedded"] == ""
    assert "too large to embed" in viewer["data-not-embedded"]


def test_every_value_on_the_page_is_escaped() -> None:
    hostile = '<script>alert("x")</script>&'
    report = FitReport(category="upper", size_evaluated=hostile, size_source="recommended",
                       recommended_size=hostile, regions=(), overall_label="regular", prompt_cues=(),
                       notes=(hostile,), defaults_used=())
    page = ResultPage(job_id=hostile, batch_id=None, photo=None, angles=(), turntable=None,
                      viewer=Viewer("model.glb", None, None, hostile), report=report, fitting=None,
                      inputs=(), phases=(), downloads=())
    html = render_result(page).decode()
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;" in html
    assert PageText(html).text("#recommended-size") == hostile


def test_the_batch_grid_shows_each_pair_and_why_a_failed_one_failed(tmp_path: Path) -> None:
    app = build_local(tmp_path / "bucket", Settings(workers=4, lease_s=5, retry_base_s=0.05),
                      registry=make_fake_registry(RunLog(tmp_path / "runs.log")))
    store = app.store
    for name, colour in (("alice.jpg", (200, 40, 40)), ("bob.jpg", (40, 200, 40))):
        store.put(f"{layout.catalog_people_prefix('spring')}{name}", photo(colour))
    store.put(f"{layout.catalog_garments_prefix('spring')}shirt.jpg", photo((40, 40, 200)))
    store.put(f"{layout.catalog_garments_prefix('spring')}broken.jpg", photo((40, 40, 200))[:200])  # truncated
    with app.runtime:
        store.put(layout.batch_marker_key("spring"), b"{}")
        assert app.runtime.run_until(lambda: store.head(layout.batch_report_key("spring")) is not None, timeout=60)
    report = read_model(store, layout.batch_report_key("spring"), BatchReport)
    assert report is not None and (report.succeeded, report.failed) == (2, 2)
    html = store.get(layout.batch_page_key("spring")).decode()
    page = PageText(html)
    rows = [a for tag, a in page.elements if tag == "th"]
    assert len(rows) == 1 + 2 + 2  # the corner, two garment columns, two person rows
    for entry in report.jobs:
        cell = next(a for tag, a in page.elements if tag == "td" and a.get("data-job") == entry.job_id)
        assert cell["class"] == entry.status
        if entry.status == "failed":
            error = json.loads(store.get(layout.result_error_key(entry.job_id)))
            assert page.text(f"{entry.job_id}/reason") == error["reason"] and "broken.jpg" in error["reason"]
        else:
            link = f"../../{entry.job_id}/index.html"
            assert link in {a.get("href") for _, a in page.elements}
            assert (store.root / "results/batches/spring" / link).resolve().is_file()


def test_a_job_that_fails_after_a_success_keeps_no_old_page(tmp_path: Path) -> None:
    app = build_local(tmp_path / "bucket", Settings(workers=2, lease_s=5, retry_base_s=0.05),
                      registry=make_fake_registry(RunLog(tmp_path / "runs.log")))
    store, page = app.store, layout.result_page_key("again")
    with app.runtime:
        store.put(layout.incoming_image_key("again", "person", "jpg"), photo((200, 40, 40)))
        store.put(layout.incoming_image_key("again", "garment", "jpg"), photo((40, 40, 200)))
        assert app.runtime.run_until(lambda: store.head(layout.result_manifest_key("again")) is not None, timeout=60)
        assert store.head(page) is not None
        store.put(layout.incoming_image_key("again", "garment", "jpg"), photo((40, 40, 200))[:200])  # truncated
        assert app.runtime.run_until(lambda: store.head(layout.result_error_key("again")) is not None, timeout=60)
    assert store.head(layout.result_manifest_key("again")) is None and store.head(page) is None
