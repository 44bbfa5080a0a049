"""`dropfit models ...`: build the CPU model stack once per machine and say what is there."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from infra.settings import Settings

models_app = typer.Typer(help="the model backends: build their one-time caches, list what runs each phase",
                         no_args_is_help=True)
console = Console()


@models_app.command("prepare")
def prepare(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print one line instead of a table")] = False,
) -> None:
    """Build every CPU model now (the body model's one-time cache, ~60 s and ~800 MB the first time, under
    the model cache folder: DROPFIT_MODEL_CACHE_DIR, default <repo>/.cache), render the demo person and load
    the landmark, face and garment models once. Safe to run again: what exists is reused."""
    from pipeline.body.anny_model import prepare as prepare_body
    from pipeline.registry import product_registry
    from pipeline.sample import sample_person

    config = Settings().models()
    steps: list[tuple[str, float]] = []
    started = time.perf_counter()
    prepare_body(config.cache / "anny")
    steps.append(("body model cache (anny)", time.perf_counter() - started))
    for name, work in (("demo person render", lambda: sample_person(config.cache)),
                       ("load every backend once", lambda: product_registry(config).warm_up())):
        began = time.perf_counter()
        work()
        steps.append((name, time.perf_counter() - began))
    if quiet:
        console.print(f"models ready in {config.cache} ({sum(s for _, s in steps):.1f} s)")
        return
    table = Table(title=f"models ready (cache: {config.cache})")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    for name, seconds in steps:
        table.add_row(name, f"{seconds:.1f}")
    console.print(table)
