"""Intake: from what sits under incoming/ or catalog/ to plans. Reads storage, writes nothing."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline import layout
from pipeline.errors import InvalidInput
from pipeline.images import inspect_image
from pipeline.phases import PHASES, PhaseTable
from pipeline.plan import BatchPair, BatchPlan, InputRef, JobPlan, build_batch_plan, build_plan, refused_plan
from pipeline.spec import (
    GarmentSpec,
    JobSpec,
    PersonSpec,
    check_job_spec,
    describe_errors,
    load_json_object,
    parse_job_spec,
)
from pipeline.state import load_batch_plan, load_plan
from pipeline.storage import ObjectInfo, ObjectNotFound, ObjectStore

ROLE_WORDS = {"person": "person photo", "garment": "garment photo", "size_chart": "size-chart image"}

# job.json's profile (None: the deployment's) -> the profile the job runs under and its protocol -> backend plan;
# raises ValueError when the deployment does not allow it (PhaseRegistry.job_backends)
JobBackends = Callable[[str | None], tuple[str | None, dict[str, str | None]]]


def _as_asked(requested: str | None) -> tuple[str | None, dict[str, str | None]]:
    return requested, {}


def _planned(job_id: str, inputs: dict[str, InputRef], spec: JobSpec, job_backends: JobBackends,
             batch_id: str | None = None, table: PhaseTable = PHASES) -> JobPlan:
    """The job's plan under the backends its profile gets, or a refused plan when job.json asks for a profile
    the deployment does not allow."""
    try:
        profile, backends = job_backends(spec.profile)
    except ValueError as exc:
        return refused_plan(job_id, inputs, str(exc), "remove \"profile\" from job.json, or set it to one "
                            "this deployment allows", batch_id=batch_id)
    return build_plan(job_id, inputs, spec, batch_id=batch_id, profile=profile, backends=backends, table=table)


def incoming_files(store: ObjectStore, job_id: str) -> dict[str, ObjectInfo]:
    """The job's current files by part ('person', 'garment', 'size_chart', 'spec'). A part uploaded twice
    (person.jpg and person.png, or Person.JPG too) keeps its newest file under the part's name and the others
    under their file names ('person.png'): intake refuses such a job naming them, and its plan records them
    all, so deleting one plans the job again."""
    by_part: dict[str, list[ObjectInfo]] = {}
    for info in store.list(layout.incoming_prefix(job_id)):
        parsed = layout.parse_incoming(info.key)
        if parsed is not None:
            by_part.setdefault(parsed.part, []).append(info)
    found: dict[str, ObjectInfo] = {}
    for part, infos in by_part.items():
        newest, *others = sorted(infos, key=lambda i: (i.last_modified, i.key), reverse=True)
        found[part] = newest
        found.update({_file_name(info.key): info for info in others})
    return found


def duplicated_parts(files: dict[str, ObjectInfo]) -> dict[str, list[str]]:
    """part -> its file names, for every part `incoming_files` found more than one file of."""
    names: dict[str, list[str]] = {}
    for info in files.values():
        parsed = layout.parse_incoming(info.key)
        if parsed is not None:
            names.setdefault(parsed.part, []).append(_file_name(info.key))
    return {part: sorted(found) for part, found in names.items() if len(found) > 1}


def _file_name(key: str) -> str:
    return key.rsplit("/", 1)[1]


def is_ready(files: dict[str, ObjectInfo]) -> bool:
    return "person" in files and "garment" in files


def plan_is_current(plan: JobPlan | None, files: dict[str, ObjectInfo]) -> bool:
    """True when the plan was made from exactly the files there now (by etag)."""
    if plan is None:
        return False
    return {n: i.etag for n, i in plan.inputs.items()} == {n: i.etag for n, i in files.items()}


def intake_due(store: ObjectStore, job_id: str) -> bool:
    """Both photos are there and the job's plan was not made from exactly these files."""
    files = incoming_files(store, job_id)
    return is_ready(files) and not plan_is_current(load_plan(store, job_id), files)


def batch_due(store: ObjectStore, batch_id: str) -> bool:
    """The batch's marker is there and the batch was not planned from this marker."""
    marker = store.head(layout.batch_marker_key(batch_id))
    batch = load_batch_plan(store, batch_id)
    return marker is not None and (batch is None or batch.marker_etag != marker.etag)


def _input_ref(store: ObjectStore, info: ObjectInfo) -> tuple[InputRef, bytes]:
    data = store.get(info.key)
    ref = InputRef(key=info.key, etag=info.etag, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    return ref, data


def plan_incoming_job(store: ObjectStore, job_id: str, job_backends: JobBackends = _as_asked,
                      table: PhaseTable = PHASES) -> JobPlan | None:
    """The plan for incoming/{job_id}/, a refused plan when its inputs are invalid, None while not ready."""
    files = incoming_files(store, job_id)
    if not is_ready(files):
        return None
    refs: dict[str, InputRef] = {}
    try:
        refuse_duplicates(job_id, files)
        for part in ("person", "garment", "size_chart", "spec"):
            if part in files:
                refs[part], data = _input_ref(store, files[part])
                if part == "spec":
                    spec = parse_job_spec(data)
                    check_job_spec(spec)
                    if spec.person.references:
                        raise InvalidInput("job.json: person.references is for catalog batches only",
                                           "remove it, or run the photos as a catalog batch (README)")
                else:
                    inspect_image(data, ROLE_WORDS[part])
    except ObjectNotFound:
        return None  # replaced or removed while we read: the next event re-plans
    except InvalidInput as exc:
        refs.update({p: _etag_only(i) for p, i in files.items() if p not in refs})
        return refused_plan(job_id, refs, exc.reason, exc.user_action)
    return _planned(job_id, refs, spec if "spec" in refs else JobSpec(), job_backends, table=table)


def refuse_duplicates(job_id: str, files: dict[str, ObjectInfo]) -> None:
    """InvalidInput when a part was uploaded more than once: which file is meant is the user's to say."""
    for part, names in duplicated_parts(files).items():
        what = "job.json files" if part == "spec" else f"{ROLE_WORDS[part]}s"
        raise InvalidInput(f"incoming/{job_id}/ has {len(names)} {what} ({', '.join(names)}); "
                           "it is not clear which one to use",
                           f"keep one and delete the other{'s' if len(names) > 2 else ''}: the job then starts "
                           "with the one kept")


def refused_incoming_plan(store: ObjectStore, job_id: str, reason: str, user_action: str) -> JobPlan | None:
    """A refused plan of the files under incoming/{job_id}/ now (by etag, nothing read), or None while the job
    is not ready: for when intake itself cannot finish, so the job ends with a readable error."""
    files = incoming_files(store, job_id)
    if not is_ready(files):
        return None
    return refused_plan(job_id, {p: _etag_only(i) for p, i in files.items()}, reason, user_action)


def _etag_only(info: ObjectInfo) -> InputRef:
    return InputRef(key=info.key, etag=info.etag, size=info.size, sha256="")


# ---- catalog batches -------------------------------------------------------------------------------


class BatchSpec(BaseModel):
    """catalog/{batch_id}/batch.json: optional shared settings; per-file overrides by file name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    spec: JobSpec = JobSpec()
    people: dict[str, PersonSpec] = {}
    garments: dict[str, GarmentSpec] = {}


def parse_batch_spec(data: bytes) -> BatchSpec:
    """batch.json's settings (an empty file is none), or InvalidInput in the same words as job.json's.
    `plan_batch` then checks what the fields say together (`check_job_spec`, `check_overrides`)."""
    if not data.strip(b" \t\r\n\xef\xbb\xbf"):
        return BatchSpec()
    raw = load_json_object(data, "batch.json", "write {} or {\"spec\": ...} (see README, 'Catalog batches')")
    try:
        batch = BatchSpec.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(f"batch.json is invalid: {describe_errors(exc)}",
                           "correct those fields (see README, 'Catalog batches')") from exc
    return batch


def check_overrides(batch_spec: BatchSpec, people: list[str], garments: list[str]) -> None:
    """InvalidInput when batch.json has settings for a photo the batch does not have (a misspelt name would
    otherwise be ignored, and its photo run without them)."""
    for folder, named, present in (("people", batch_spec.people, people), ("garments", batch_spec.garments, garments)):
        unknown = sorted(set(named) - set(present))
        if unknown:
            raise InvalidInput(
                f"batch.json has settings for {', '.join(f'{folder}/{n}' for n in unknown)}, but {folder}/ has no "
                f"such photo (it has: {_some(sorted(present))})",
                "correct the file names in batch.json (they are case-sensitive and include the extension)")


def _some(names: list[str], limit: int = 8) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def batch_files(store: ObjectStore, batch_id: str) -> tuple[list[ObjectInfo], list[ObjectInfo]]:
    people = [i for i in store.list(layout.catalog_people_prefix(batch_id)) if layout.parse_catalog(i.key)]
    garments = [i for i in store.list(layout.catalog_garments_prefix(batch_id)) if layout.parse_catalog(i.key)]
    return people, garments


def plan_batch(store: ObjectStore, batch_id: str, job_backends: JobBackends = _as_asked,
               table: PhaseTable = PHASES) -> tuple[BatchPlan, BatchSpec, list[JobPlan]] | None:
    """The batch's plan and one job plan per pair. Each photo is read and checked once, however many
    pairs use it; a bad photo refuses only the jobs it is in. None while the marker is absent."""
    marker = store.head(layout.batch_marker_key(batch_id))
    if marker is None:
        return None
    batch_spec = parse_batch_spec(store.get(marker.key))
    check_job_spec(batch_spec.spec, "batch.json, spec")
    people, garments = batch_files(store, batch_id)
    if not people or not garments:
        raise InvalidInput(
            f"batch {batch_id} has {len(people)} people and {len(garments)} garments",
            f"put photos under catalog/{batch_id}/people/ and catalog/{batch_id}/garments/ before batch.json",
        )
    names = {info.key: _file_name(info.key) for info in people + garments}
    check_overrides(batch_spec, [names[i.key] for i in people], [names[i.key] for i in garments])
    checked = {info.key: _checked_ref(store, info, role) for role, infos in
               (("person", people), ("garment", garments)) for info in infos}
    batch = build_batch_plan(batch_id, marker.etag, [names[i.key] for i in people], [names[i.key] for i in garments])
    by_name = {("person", names[i.key]): i.key for i in people} | {("garment", names[i.key]): i.key for i in garments}
    people_refs = {names[i.key]: checked[i.key] for i in people}
    plans = []
    for pair in batch.jobs:
        pkey, gkey = by_name[("person", pair.person)], by_name[("garment", pair.garment)]
        plans.append(_pair_plan(batch_id, pair.job_id, checked[pkey], checked[gkey], batch_spec, pair, people_refs,
                                job_backends, table))
    return batch, batch_spec, plans


def _checked_ref(store: ObjectStore, info: ObjectInfo, role: str) -> tuple[InputRef, InvalidInput | None]:
    ref, data = _input_ref(store, info)
    try:
        inspect_image(data, f"{ROLE_WORDS[role]} {info.key.rsplit('/', 1)[1]}")
    except InvalidInput as exc:
        return ref, exc
    return ref, None


Checked = tuple[InputRef, InvalidInput | None]


def _pair_plan(batch_id: str, job_id: str, person: Checked, garment: Checked, batch_spec: BatchSpec,
               pair: BatchPair, people: dict[str, Checked], job_backends: JobBackends, table: PhaseTable) -> JobPlan:
    inputs = {"person": person[0], "garment": garment[0]}
    spec = batch_spec.spec.model_copy(update={
        "person": batch_spec.people.get(pair.person, batch_spec.spec.person),
        "garment": batch_spec.garments.get(pair.garment, batch_spec.spec.garment),
    })
    problem = person[1] or garment[1]
    try:
        check_job_spec(spec, f"batch.json, for {pair.person} with {pair.garment}")
        inputs |= face_references(spec.person.references, people, pair.person)
    except InvalidInput as exc:
        problem = problem or exc
    if problem is not None:
        return refused_plan(job_id, inputs, problem.reason, problem.user_action, batch_id=batch_id)
    return _planned(job_id, inputs, spec, job_backends, batch_id=batch_id, table=table)


def face_references(names: tuple[str, ...], people: dict[str, Checked], person: str) -> dict[str, InputRef]:
    """`face_ref_1`, ... : the other photos of this person that batch.json names, as avatar inputs."""
    refs: dict[str, InputRef] = {}
    for n, name in enumerate(dict.fromkeys(r for r in names if r != person), start=1):
        if name not in people:
            raise InvalidInput(f"batch.json names {name!r} as another photo of {person}, but people/ has no such file",
                               "list file names that are under people/ in the same batch")
        ref, problem = people[name]
        if problem is not None:
            raise problem
        refs[f"face_ref_{n}"] = ref
    return refs
