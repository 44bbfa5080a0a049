"""What the avatar phase writes: strict, versioned records that the fitting phase and people read."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_HEIGHT_CM = 170.0  # used when job.json gives no height: between the adult male and female means


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_bytes(self) -> bytes:
        return self.model_dump_json(indent=2).encode()


class FaceReference(Strict):
    source: str  # the input key the face was found in
    box: tuple[int, int, int, int]
    embedding: tuple[float, ...]


class FaceBank(Strict):
    """face_bank.json: the identity references later phases compare renders against."""

    schema_version: Literal[1] = 1
    backend: str
    threshold: float  # same person below this L2 distance
    references: tuple[FaceReference, ...] = ()
    skipped_reason: str | None = None  # set when no face was found: identity checks are skipped


class FitQuality(Strict):
    reprojection_error_px: float = Field(description="mean 2D distance of the fitted keypoints to their targets")
    reprojection_error_rel: float = Field(description="the same, as a fraction of the image height")
    mask_iou: float = Field(description="IoU of the projected body against the person mask")
    keypoints_used: int
    iterations: int


class AvatarRecord(Strict):
    """avatar.json: the phase's summary; the other files sit next to it."""

    schema_version: Literal[1] = 1
    image_size: tuple[int, int]
    person_box: tuple[int, int, int, int]
    people_found: int
    face_found: bool
    height_cm: float
    height_source: Literal["job.json", "default"]
    fit: FitQuality
    measurements: dict[str, dict[str, float | str]]  # name -> value_cm, confidence, basis
    notes: tuple[str, ...] = ()
    backends: dict[str, str]
