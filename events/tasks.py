"""A task: one step the router says is ready. Handlers claim and run tasks; tasks carry ids, never bytes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from pipeline.phases import STEP_NAMES


class Task(BaseModel):
    """`subject` is a job id (intake, publish, fail), a batch id (batch, report) or a run key (phases)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    step: str
    subject: str

    @property
    def is_phase(self) -> bool:
        return self.step not in STEP_NAMES

    @property
    def ident(self) -> str:
        return f"{self.step}:{self.subject}"

    def __str__(self) -> str:
        return self.ident
