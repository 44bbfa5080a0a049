"""What a person sees while a job runs: a live line of the steps running now, one line per finished
step, then a plain summary. On a terminal the live line animates; in a pipe only the step lines show."""

from __future__ import annotations

import threading
import time

from rich.console import Console
from rich.status import Status

from events.tasks import Task
from functions.handlers import StepOutcome

MARKS = {"done": "[green]✓[/]", "skipped": "[dim]=[/]", "busy": "[yellow]…[/]", "unavailable": "[yellow]![/]",
         "lost": "[red]✗[/]", "failed": "[red]✗[/]"}
WORDS = {"skipped": "already done", "busy": "running elsewhere", "unavailable": "not available"}


class ProgressPrinter:
    def __init__(self, console: Console) -> None:
        self.console = console
        self._seen_unavailable: set[str] = set()
        self._running: dict[str, float] = {}
        self._lock = threading.Lock()
        self._status: Status | None = None

    def __enter__(self) -> ProgressPrinter:
        if self.console.is_terminal:
            self._status = self.console.status("starting")
            self._status.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._status is not None:
            self._status.stop()

    def started(self, task: Task) -> None:
        with self._lock:
            self._running.setdefault(task.ident, time.monotonic())
        self._refresh()

    def __call__(self, outcome: StepOutcome) -> None:
        with self._lock:
            self._running.pop(outcome.task.ident, None)
        self._refresh()
        task = outcome.task
        if outcome.outcome == "skipped":
            return
        if outcome.outcome == "unavailable":
            if task.step in self._seen_unavailable:
                return
            self._seen_unavailable.add(task.step)
        word = WORDS.get(outcome.outcome, "")
        detail = f"{word}: {outcome.detail}" if word else outcome.detail
        timing = f" [dim]({outcome.duration_s * 1000:.0f} ms)[/]" if outcome.outcome == "done" else ""
        self.console.print(f"  {MARKS[outcome.outcome]} {task.step:<9} {detail}{timing}", highlight=False)

    def _refresh(self) -> None:
        if self._status is None:
            return
        now = time.monotonic()
        with self._lock:
            parts = [f"{ident.split(':', 1)[0]} {now - t:.0f}s" for ident, t in self._running.items()]
        self._status.update("running: " + (", ".join(parts) if parts else "routing"))
