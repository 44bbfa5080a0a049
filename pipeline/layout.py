"""The storage layout: every key the product reads or writes, as pure functions.

This module is the contract users and subscribers rely on (README, "Storage layout"). Keys are
deterministic from their inputs, so a retry overwrites instead of duplicating.

    incoming/{job_id}/person.{ext}      incoming/{job_id}/garment.{ext}      incoming/{job_id}/job.json
    catalog/{batch_id}/people/{name}    catalog/{batch_id}/garments/{name}   catalog/{batch_id}/batch.json
    work/{phase}/{run_key}/...          outputs of one phase run, keyed by the content of its inputs
    work/{phase}/{run_key}/_manifest.json   written last: the run is done
    work/{phase}/{run_key}/_error.json      the run failed for good (invalid input, retries exhausted)
    work/{phase}/{run_key}/_jobs/{job_id}   jobs that use this run (so its completion can wake them)
    work/{step}/{id}/_claim.json        who is running a step, until when (a lease)
    work/jobs/{job_id}/plan.json        a job's plan: its inputs' hashes and the run key of every phase
    work/batches/{batch_id}/plan.json   a catalog batch's plan: its job ids and the photos they pair
    work/api/idempotency/{digest}.json  the HTTP API: an Idempotency-Key's request hash and the job it made
    work/api/batches/{batch_id}.json    the HTTP API: a batch created, not committed (its photos, batch.json)
    results/{job_id}/...                published results; manifest.json written last
    results/{job_id}/index.html         the result page (with turntable.webp and page/), listed in the manifest
    results/{job_id}/error.json         the job failed: phase, reason, what the user can do
    results/batches/{batch_id}/report.json  every job of a batch, once all are terminal
    results/batches/{batch_id}/index.html   the batch's grid page, written just before its report
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal

INCOMING = "incoming/"
CATALOG = "catalog/"
WORK = "work/"
RESULTS = "results/"

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
RESERVED_IDS = frozenset({"jobs", "batches"})
MAX_ID_LENGTH = 128

Role = Literal["person", "garment", "size_chart"]  # size_chart: optional
INCOMING_ROLES: tuple[Role, ...] = ("person", "garment", "size_chart")
_ID_FORBIDDEN = re.compile(r"[/\\\x00-\x1f\x7f]")


class InvalidKey(ValueError):
    """A key or id that the layout cannot hold."""


def is_valid_id(value: str) -> bool:
    """A job or batch id: one path segment, not hidden, not reserved, at most 128 characters."""
    return id_problem(value) is None


def id_problem(value: str) -> str | None:
    """What makes `value` unusable as a job or batch id, in words; None when it is usable."""
    if not value:
        return "it is empty"
    if len(value) > MAX_ID_LENGTH:
        return f"it is {len(value)} characters long; the most is {MAX_ID_LENGTH}"
    if _ID_FORBIDDEN.search(value):
        return "it contains a '/', a backslash or a control character"
    if value[0] in "._":
        return f"it starts with {value[0]!r}, which marks hidden and internal folders"
    if value in RESERVED_IDS:
        return f"{value!r} is reserved"
    if value.strip() != value:
        return "it starts or ends with a space"
    return None


def suggest_id(value: str) -> str:
    """A usable id close to `value`: spaces at the ends, leading '.' and '_', forbidden characters and the
    excess length dropped; a reserved or empty result gets a suffix."""
    cleaned = _ID_FORBIDDEN.sub("-", value).strip().lstrip("._").strip()[:MAX_ID_LENGTH].rstrip()
    if not cleaned:
        return "job-1"
    return f"{cleaned}-1" if cleaned in RESERVED_IDS else cleaned


def check_id(value: str, what: str = "job id") -> str:
    problem = id_problem(value)
    if problem is not None:
        raise InvalidKey(
            f"{what} {value!r} is not usable ({problem}): use 1-{MAX_ID_LENGTH} characters, no '/', not starting "
            f"with '.' or '_', not one of {sorted(RESERVED_IDS)}"
        )
    return value


def image_extension(name: str) -> str | None:
    """The normalized extension of an image file name we accept, or None."""
    _, dot, ext = name.rpartition(".")
    ext = ext.lower()
    return ext if dot and ext in IMAGE_EXTENSIONS else None


# ---- incoming/ -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IncomingKey:
    job_id: str
    part: Literal["person", "garment", "size_chart", "spec"]


def incoming_prefix(job_id: str) -> str:
    return f"{INCOMING}{job_id}/"


def incoming_image_key(job_id: str, role: Role, ext: str) -> str:
    ext = ext.lower().lstrip(".")
    if ext not in IMAGE_EXTENSIONS:
        raise InvalidKey(f"unsupported image extension {ext!r}: use one of {', '.join(IMAGE_EXTENSIONS)}")
    return f"{incoming_prefix(check_id(job_id))}{role}.{ext}"


def incoming_spec_key(job_id: str) -> str:
    return f"{incoming_prefix(check_id(job_id))}job.json"


def parse_incoming(key: str) -> IncomingKey | None:
    """The job and part of a key intake reads (names compared without case), or None; `pipeline.stray`
    says what is wrong with the others."""
    parts = key.split("/")
    if len(parts) != 3 or parts[0] != INCOMING.rstrip("/") or not is_valid_id(parts[1]):
        return None
    name = parts[2].lower()  # Person.JPG is person.jpg: the intent is plain
    if name == "job.json":
        return IncomingKey(parts[1], "spec")
    stem, _, _ = name.partition(".")
    if stem in INCOMING_ROLES and image_extension(name) and name.count(".") == 1:
        return IncomingKey(parts[1], stem)
    return None


# ---- catalog/ --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogKey:
    batch_id: str
    part: Literal["person", "garment", "marker"]
    name: str = ""


def catalog_prefix(batch_id: str) -> str:
    return f"{CATALOG}{batch_id}/"


def catalog_people_prefix(batch_id: str) -> str:
    return f"{catalog_prefix(batch_id)}people/"


def catalog_garments_prefix(batch_id: str) -> str:
    return f"{catalog_prefix(batch_id)}garments/"


def batch_marker_key(batch_id: str) -> str:
    return f"{catalog_prefix(check_id(batch_id, 'batch id'))}batch.json"


def parse_catalog(key: str) -> CatalogKey | None:
    parts = key.split("/")
    if len(parts) < 3 or parts[0] != CATALOG.rstrip("/") or not is_valid_id(parts[1]):
        return None
    if len(parts) == 3 and parts[2] == "batch.json":
        return CatalogKey(parts[1], "marker")
    if len(parts) == 4 and parts[2] in ("people", "garments") and image_extension(parts[3]):
        return CatalogKey(parts[1], "person" if parts[2] == "people" else "garment", parts[3])
    return None


def catalog_job_id(batch_id: str, person_name: str, garment_name: str) -> str:
    """A deterministic, readable job id for one (person, garment) pair of a batch."""
    raw = f"{batch_id}--{_slug(person_name)}--{_slug(garment_name)}"
    if len(raw) <= MAX_ID_LENGTH:
        return raw
    digest = hashlib.sha256(raw.encode()).hexdigest()[:16]
    return f"{raw[: MAX_ID_LENGTH - 18]}--{digest}"


def _slug(name: str) -> str:
    stem = name.rsplit(".", 1)[0] if image_extension(name) else name
    ext = image_extension(name)
    # no "--" and no edge dashes inside a slug: "--" only ever separates batch, person and garment,
    # so ids of different batches or pairs cannot collide
    slug = re.sub(r"-{2,}", "-", re.sub(r"[^A-Za-z0-9._-]+", "_", stem)).strip("._-") or "x"
    return f"{slug}.{ext}" if ext else slug


# ---- work/ -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkKey:
    """A key under work/{phase}/{run_key}/: `name` is the rest of the key (e.g. '_manifest.json')."""

    phase: str
    run_key: str
    name: str


def run_prefix(phase: str, run_key: str) -> str:
    return f"{WORK}{phase}/{run_key}/"


def run_manifest_key(phase: str, run_key: str) -> str:
    return f"{run_prefix(phase, run_key)}_manifest.json"


def run_error_key(phase: str, run_key: str) -> str:
    return f"{run_prefix(phase, run_key)}_error.json"


def run_jobs_prefix(phase: str, run_key: str) -> str:
    return f"{run_prefix(phase, run_key)}_jobs/"


def run_job_key(phase: str, run_key: str, job_id: str) -> str:
    return f"{run_jobs_prefix(phase, run_key)}{job_id}"


def claim_key(step: str, step_key: str) -> str:
    return f"{run_prefix(step, step_key)}_claim.json"


def plan_key(job_id: str) -> str:
    return f"{WORK}jobs/{job_id}/plan.json"


def batch_plan_key(batch_id: str) -> str:
    return f"{WORK}batches/{batch_id}/plan.json"


def api_idempotency_key(idempotency_key: str) -> str:
    """The record of one Idempotency-Key (hashed: a client's key may hold anything)."""
    return f"{WORK}api/idempotency/{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}.json"


def api_batch_key(batch_id: str) -> str:
    return f"{WORK}api/batches/{check_id(batch_id, 'batch id')}.json"


def parse_work(key: str) -> WorkKey | None:
    parts = key.split("/", 3)
    if len(parts) != 4 or parts[0] != WORK.rstrip("/") or not parts[1] or not parts[2]:
        return None
    return WorkKey(parts[1], parts[2], parts[3])


# ---- results/ --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResultKey:
    job_id: str
    name: str


def result_prefix(job_id: str) -> str:
    return f"{RESULTS}{job_id}/"


def result_manifest_key(job_id: str) -> str:
    return f"{result_prefix(job_id)}manifest.json"


def result_error_key(job_id: str) -> str:
    return f"{result_prefix(job_id)}error.json"


def result_page_key(job_id: str) -> str:
    """The job's result page; its assets sit next to it (`turntable.webp`, `page/...`)."""
    return f"{result_prefix(job_id)}index.html"


def result_event_key(job_id: str, outcome: str) -> str:
    """The local notifier's record of the job's terminal event ('succeeded' or 'failed')."""
    return f"{result_prefix(job_id)}_events/{outcome}.json"


def job_event_id(job_id: str, plan_hash: str, status: str) -> str:
    """The id of a job's outcome event: stable across re-deliveries, so subscribers dedupe on it."""
    return f"{job_id}:{plan_hash}:{status}"


# ---- subscriber deliveries (infra/subscribers.py) -----------------------------------------------


def delivery_key(job_id: str, msg_id: str, channel: str) -> str:
    return f"{result_prefix(job_id)}_deliveries/{msg_id}-{channel}.json"


def outbox_key(record_key: str) -> str:
    """A pointer to a pending delivery: the sweeper lists these, not every job's results."""
    return f"{WORK}outbox/{hashlib.sha256(record_key.encode()).hexdigest()[:24]}"


def disabled_key(channel: str) -> str:
    """Written when a webhook answers 410 Gone: no further event goes there until an operator deletes it."""
    return f"{WORK}subscribers/disabled/{channel}.json"


def batch_report_key(batch_id: str) -> str:
    return f"{RESULTS}batches/{batch_id}/report.json"


def batch_page_key(batch_id: str) -> str:
    return f"{RESULTS}batches/{batch_id}/index.html"


def parse_result(key: str) -> ResultKey | None:
    parts = key.split("/", 2)
    if len(parts) != 3 or parts[0] != RESULTS.rstrip("/") or not is_valid_id(parts[1]):
        return None
    return ResultKey(parts[1], parts[2])


def content_key(*parts: str) -> str:
    """A run key from the identities of a run's inputs: 24 hex characters of a sha256."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]
