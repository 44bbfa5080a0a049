"""A real job's result page in a real browser: Debian's chromium driven by Playwright (never a browser download),
opened from the folder (file://) and from a static server on 127.0.0.1. No console errors, no request leaving
the machine, the 3D canvas draws the model, the turntable turns, and the shown size and scores are the JSON's."""

from __future__ import annotations

import functools
import io
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import numpy as np
import pytest
from PIL import Image

from conftest import run_sample_job
from functions.app import build_local
from infra.settings import Settings
from pipeline import layout
from pipeline.page.viewer import find_viewer

CHROMIUM = shutil.which("chromium")
if CHROMIUM is None:
    pytest.skip("no chromium on PATH (`make setup` installs Debian's where it runs as root with apt-get)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra)")
VIEWER = find_viewer(Settings().models().cache)
if VIEWER.source is None:
    pytest.skip(str(VIEWER.missing), allow_module_level=True)

JOB = "browser job"  # a space, so the file:// and http:// URLs are quoted
SWIFTSHADER = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"]
GARMENT_RED = np.array([196, 40, 52])  # the sample T-shirt's colour (pipeline.sample)


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def bucket(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bucket")
    run_sample_job(build_local(root, Settings(workers=2)), JOB)
    return root


@pytest.fixture(scope="module")
def server(bucket: Path) -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(bucket)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/"
    httpd.shutdown()
    thread.join()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=SWIFTSHADER)
        yield launched
        launched.close()


def local_only(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("file", "data", "blob") or (parts.scheme == "http" and parts.hostname == "127.0.0.1")


def open_page(browser: Any, url: str) -> tuple[Any, list[str]]:
    """The page loaded with its 3D model shown; the console errors, page errors and outside requests seen."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url}"))

    def guard(route: Any) -> None:
        if local_only(route.request.url):
            route.continue_()
        else:
            problems.append(f"outside request: {route.request.url}")
            route.abort()

    page.route("**/*", guard)
    page.goto(url)
    page.locator("model-viewer").scroll_into_view_if_needed()  # model-viewer loads its model once in view
    # polled on a timer: SwiftShader draws slowly, so polling per animation frame (the default) lags by seconds
    page.wait_for_function("document.querySelector('model-viewer').loaded", timeout=30_000, polling=100)
    page.wait_for_function("!document.getElementById('turntable').dataset.playing", timeout=30_000, polling=100)
    return page, problems


def drawn_share(png: bytes) -> tuple[float, float]:
    """Of a screenshot: the share of pixels unlike its background (most common) colour, and of garment-red ones."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    colours, counts = np.unique(pixels.reshape(-1, 3), axis=0, return_counts=True)
    background = colours[counts.argmax()]
    unlike = np.abs(pixels - background).sum(axis=2) > 40
    red = np.abs(pixels - GARMENT_RED).sum(axis=2) < 90
    return float(unlike.mean()), float(red.mean())


def shown_angle(page: Any) -> str:
    return page.evaluate("document.querySelector('#turntable img:not([hidden])').dataset.angle")


def check_page(page: Any, results: Path) -> None:
    report = json.loads((results / "fit_report.json").read_text())
    fitting = json.loads((results / "fitting.json").read_text())
    assert page.inner_text("#recommended-size") == report["recommended_size"]
    assert page.inner_text("#overall-label") == report["overall_label"]
    for region in report["regions"]:
        assert page.inner_text(f"tr[data-region='{region['region']}'] .label") == region["label"]
    for score in fitting["identity"]:
        shown = page.inner_text(f"#scores tr[data-angle='{score['angle']}'] .distance")
        assert shown == ("–" if score["distance"] is None else str(score["distance"]))

    unlike, red = drawn_share(page.locator("model-viewer").screenshot())
    assert unlike > 0.05 and red > 0.01, f"the 3D canvas looks empty: {unlike:.1%} drawn, {red:.1%} garment red"

    assert shown_angle(page) == "000"  # the autoplay's one turn ends at the front
    page.keyboard.press("ArrowRight")
    assert shown_angle(page) == "045" and page.inner_text("#turntable-angle") == "045°"
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert shown_angle(page) == "315"
    box = page.locator("#turntable").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 - 85, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    assert shown_angle(page) == "045"  # dragged two views on


@pytest.mark.timeout(180)
@pytest.mark.parametrize("origin", ["folder", "server"])
def test_the_result_page_works_in_chromium(origin: str, bucket: Path, browser: Any, request: Any) -> None:
    results = bucket / layout.result_prefix(JOB)
    if origin == "folder":
        url = (results / "index.html").as_uri()
    else:
        url = request.getfixturevalue("server") + quote(layout.result_page_key(JOB))
    page, problems = open_page(browser, url)
    try:
        check_page(page, results)
        assert problems == []
    finally:
        page.close()
