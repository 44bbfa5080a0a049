"""Writing a job's photos under incoming/, as every producer does (`dropfit run`, the HTTP API): a photo in a
new format replaces the part's old file (person.png replaces person.jpg), so intake never finds two and the
replacement re-plans the job."""

from __future__ import annotations

from pipeline import layout
from pipeline.storage import ObjectStore

CONTENT_TYPES = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


def clear_other_formats(store: ObjectStore, job: str, keep: dict[str, str]) -> None:
    """Delete each part's files (names read as intake reads them) whose extension is not `keep[part]`."""
    for info in list(store.list(layout.incoming_prefix(job))):
        parsed = layout.parse_incoming(info.key)
        if parsed and parsed.part in keep and not info.key.endswith(f".{keep[parsed.part]}"):
            store.delete(info.key)


def put_photo(store: ObjectStore, job: str, part: layout.Role, data: bytes, ext: str) -> str:
    """Write a (checked) photo as the job's `part`, replacing the part in any other format; its key."""
    key = layout.incoming_image_key(job, part, ext)
    clear_other_formats(store, job, {part: ext})
    store.put(key, data, content_type=CONTENT_TYPES[ext])
    return key
