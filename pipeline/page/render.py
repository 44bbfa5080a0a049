"""HTML from the page records: Jinja2 templates with autoescaping on, so every value is escaped."""

from __future__ import annotations

from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from pipeline.page.content import BatchGrid, ResultPage

LABEL_CLASSES = {"too small": "bad", "tight": "warn", "regular": "good", "loose": "info"}


@cache
def _environment() -> Environment:
    env = Environment(loader=PackageLoader("pipeline.page", "templates"), autoescape=select_autoescape(["j2"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["label_class"] = lambda label: LABEL_CLASSES.get(str(label), "info")
    env.filters["signed"] = lambda value: f"{value:+.1f}"
    env.filters["seconds"] = _seconds
    return env


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def render_result(page: ResultPage) -> bytes:
    return _environment().get_template("result.html.j2").render(page=page).encode()


def render_batch(grid: BatchGrid) -> bytes:
    return _environment().get_template("batch.html.j2").render(grid=grid).encode()
