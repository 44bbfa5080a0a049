"""The jobs HTTP API: one more producer of `incoming/` and `catalog/` writes, and a reader of storage.

It never runs a phase and never goes around the events: creating a job writes job.json, an upload writes the
photo under `incoming/{job_id}/`, a batch's commit writes `catalog/{batch_id}/batch.json`; the pipeline reacts
to those writes exactly as it does to files dropped into the bucket. A job's state is read from storage with
`dropfit status`'s own logic (functions/status.py), so the two always agree. docs/api.md says what and why.
"""

from functions.api.app import create_api
from functions.api.config import ApiConfig

__all__ = ["ApiConfig", "create_api"]
