"""What a person sees while a job runs: one line per finished step, then a plain summary."""

from __future__ import annotations

from rich.console import Console

from functions.handlers import StepOutcome

MARKS = {"done": "[green]✓[/]", "skipped": "[dim]=[/]", "busy": "[yellow]…[/]", "unavailable": "[yellow]![/]",
         "lost": "[red]✗[/]", "failed": "[red]✗[/]"}
WORDS = {"skipped": "already done", "busy": "running elsewhere", "unavailable": "not available"}


class ProgressPrinter:
    def __init__(self, console: Console) -> None:
        self.console = console
        self._seen_unavailable: set[str] = set()

    def __call__(self, outcome: StepOutcome) -> None:
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
