"""`job.json`: what a user may say about a job. Optional; every field has a default.

Strict on purpose (`extra="forbid"`): a misspelt field is an error the user sees, not a silent default.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import InvalidInput

Category = Literal["upper", "lower", "full"]


class PersonSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    height_cm: float | None = Field(default=None, ge=100, le=230, description="the person's height")
    references: tuple[str, ...] = Field(
        default=(), max_length=8,
        description="catalog only: other photos of the same person (file names under people/), added to the "
                    "face bank that identity checks compare against")


class SizeRow(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str = Field(min_length=1, max_length=16)
    chest_cm: float | None = Field(default=None, gt=0, le=300)
    waist_cm: float | None = Field(default=None, gt=0, le=300)
    hip_cm: float | None = Field(default=None, gt=0, le=300)
    length_cm: float | None = Field(default=None, gt=0, le=300)


class GarmentSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    category: Category | None = None
    size: str | None = Field(default=None, max_length=16, description="the garment's size label")
    size_chart: tuple[SizeRow, ...] = ()
    stretch: float | None = Field(default=None, ge=0, le=1, description="0 = rigid, 1 = very stretchy")
    thickness_mm: float | None = Field(default=None, gt=0, le=50)


class SubscriberSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(min_length=8, max_length=2048)


class JobSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    person: PersonSpec = PersonSpec()
    garment: GarmentSpec = GarmentSpec()
    subscribers: tuple[SubscriberSpec, ...] = ()
    profile: Literal["cpu", "gpu", "commercial-safe"] | None = None


def parse_job_spec(data: bytes) -> JobSpec:
    """Parse job.json bytes, or raise InvalidInput saying exactly which field is wrong."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"job.json is not valid JSON: {exc}", "fix the JSON syntax of job.json") from exc
    if not isinstance(raw, dict):
        raise InvalidInput("job.json must be a JSON object", "wrap the fields in { ... }")
    try:
        return JobSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidInput(
            f"job.json is invalid: {problems}", "correct those fields (see README, 'job.json')"
        ) from exc
