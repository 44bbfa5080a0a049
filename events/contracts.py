"""The one normalized object event every inbound storage event becomes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

EventSource = Literal["s3", "sqs", "sns", "eventbridge", "folder", "sweep"]


class ObjectEvent(BaseModel):
    """An object was created (or overwritten) in a bucket.

    `key` is decoded exactly once where the event was parsed. `etag` has no quotes. `sequencer` orders
    events of one key only (compare with `sequencer_order`). `source` says how the event reached us.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    bucket: str
    key: str
    etag: str | None = None
    size: int | None = None
    sequencer: str | None = None
    version: str | None = None
    event_time: datetime | None = None
    source: EventSource

    def same_object(self, other: ObjectEvent) -> bool:
        """True when both events describe the same object write, whatever route they came by."""
        return (self.bucket, self.key, self.etag, self.size, self.sequencer, self.version) == (
            other.bucket,
            other.key,
            other.etag,
            other.size,
            other.sequencer,
            other.version,
        )


def sequencer_order(sequencer: str, width: int = 32) -> str:
    """S3 sequencers are hex strings of varying length: zero-pad to compare them as strings."""
    return sequencer.upper().rjust(width, "0")
