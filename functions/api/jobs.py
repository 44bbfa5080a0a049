"""/v1/jobs: create a job (job.json), put its photos, read its state, follow it, fetch its results."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import ValidationError
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from functions.api import idempotency, links
from functions.api.config import ApiConfig
from functions.api.errors import ApiError, refused
from functions.api.models import JobCreated, JobView, UploadDone, UploadTarget
from functions.api.stream import progress_events, told_everything
from functions.api.uploads import (
    MAX_FORM_BYTES,
    MAX_JSON_BYTES,
    MAX_PHOTO_BYTES,
    api_target,
    check_photo,
    photo_extension,
    read_body,
    s3_target,
)
from functions.api.views import Linker, job_exists, job_view
from functions.incoming import put_photo
from infra.s3_store import S3Store
from pipeline import layout
from pipeline.errors import InvalidInput
from pipeline.spec import JobSpec, check_job_spec, describe_errors, load_json_object
from pipeline.state import result_manifest
from pipeline.storage import ObjectStore

Part = layout.Role
WHAT = {"person": "person photo", "garment": "garment photo", "size_chart": "size-chart image"}
FORMAT_HELP = "the photo's format, for the S3 upload link's signed content type: jpeg, png or webp"


class JobRequest(JobSpec):
    """POST /v1/jobs as JSON: job.json's fields, and the job's id if the client chooses it."""

    job_id: str | None = None


def create_schema() -> dict[str, Any]:
    form = {"type": "object", "required": ["person", "garment"], "properties": {
        "person": {"type": "string", "format": "binary"}, "garment": {"type": "string", "format": "binary"},
        "spec": {"type": "string", "description": "job.json's fields as JSON text (job_id among them)"}}}
    return {"requestBody": {"required": False, "content": {
        "application/json": {"schema": JobRequest.model_json_schema(ref_template="#/components/schemas/{model}")},
        "multipart/form-data": {"schema": form}}}}


def parse_request(data: bytes) -> tuple[str | None, dict[str, Any], JobSpec]:
    """(job id or None, job.json's fields, the spec) from a create request's JSON, or 422 in job.json's words."""
    try:
        raw = load_json_object(data or b"{}", "the request body", "send job.json's fields as one JSON object")
        request = JobRequest.model_validate(raw)
        spec = JobSpec.model_validate(request.model_dump(exclude={"job_id"}, exclude_unset=True))
        check_job_spec(spec, "the request")
        if request.job_id is not None:
            layout.check_id(request.job_id)
    except InvalidInput as exc:
        raise refused(exc) from exc
    except layout.InvalidKey as exc:
        raise ApiError(422, str(exc), "choose another job_id, or leave it out to get one") from exc
    except ValidationError as exc:
        raise ApiError(422, f"the request is invalid: {describe_errors(exc)}",
                       "correct those fields (see GET /docs, and the README's 'job.json')") from exc
    fields = {k: v for k, v in raw.items() if k != "job_id"}
    return request.job_id, fields, spec


async def read_form(request: Request) -> tuple[bytes, dict[layout.Role, tuple[bytes, str]]]:
    """A multipart create: (the spec field's JSON, {'person'|'garment': (bytes, extension)}), photos checked."""
    body = await read_body(request, MAX_FORM_BYTES, "request")

    async def once() -> Any:
        yield body

    try:
        form = await MultiPartParser(request.headers, once(), max_files=3, max_fields=2,
                                     max_part_size=MAX_JSON_BYTES).parse()
    except MultiPartException as exc:
        raise ApiError(422, f"the form cannot be read: {exc.message}", "send person and garment as files, "
                       "and job.json's fields as the text field 'spec'") from exc
    photos: dict[layout.Role, tuple[bytes, str]] = {}
    parts: tuple[layout.Role, ...] = ("person", "garment")
    for part in parts:
        upload = form.get(part)
        if not isinstance(upload, UploadFile):
            raise ApiError(422, f"the form has no {part} file", f"add the {WHAT[part]} as the file field {part!r}")
        data = await upload.read()
        photos[part] = (data, check_photo(data, WHAT[part]))
    spec = form.get("spec")
    return (spec.encode() if isinstance(spec, str) else b"{}"), photos


def router(config: ApiConfig) -> APIRouter:
    api = APIRouter(prefix="/v1/jobs", tags=["jobs"])
    store = config.store

    def view_or_404(job_id: str, link: Linker) -> JobView:
        view = job_view(store, config.registry, job_id, link) if layout.is_valid_id(job_id) else None
        if view is None:
            raise ApiError(404, f"there is no job {job_id!r}", "create it with POST /v1/jobs (or check the id)")
        return view

    def targets(job_id: str, formats: dict[layout.Role, str]) -> dict[str, UploadTarget]:
        if isinstance(store, S3Store):
            expires = config.upload_expiry_s
            return {part: s3_target(store, layout.incoming_image_key(job_id, part, ext), expires)
                    for part, ext in formats.items()}
        return {part: api_target(f"/v1/jobs/{job_id}/{part}") for part in formats}

    def create(job_id: str | None, fields: dict[str, Any], photos: dict[layout.Role, tuple[bytes, str]],
               key: str | None) -> tuple[str, bool]:
        digest = request_digest(job_id, fields, photos)
        job = job_id or f"job-{uuid.uuid4().hex[:12]}"
        if key is not None:
            job, replay = idempotency.remember(store, key, digest, job)
            if replay:
                return job, True
        if job_exists(store, job):
            if key is not None:
                idempotency.forget(store, key)
            raise ApiError(409, f"job {job!r} exists already", "choose another job_id (or leave it out), or "
                           f"replace its photos with PUT /v1/jobs/{job}/person and /garment")
        store.put(layout.incoming_spec_key(job), json.dumps(fields).encode(), content_type="application/json")
        for part, (data, ext) in photos.items():
            put_photo(store, job, part, data, ext)
        return job, False

    @api.post("", status_code=201, response_model=JobCreated, openapi_extra=create_schema(),
              summary="Create a job: job.json's fields as JSON, or both photos at once as multipart/form-data")
    async def create_job(request: Request, response: Response,
                         idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
                         person_format: Annotated[str, Query(description=FORMAT_HELP)] = "jpeg",
                         garment_format: Annotated[str, Query(description=FORMAT_HELP)] = "jpeg") -> JobCreated:
        kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        photos: dict[layout.Role, tuple[bytes, str]] = {}
        if kind == "multipart/form-data":
            spec_json, photos = await read_form(request)
        elif kind in ("application/json", ""):
            spec_json = await read_body(request, MAX_JSON_BYTES, "request body")
        else:
            raise ApiError(415, f"a create request cannot be {kind}", "send job.json's fields as application/json, "
                           "or both photos as multipart/form-data")
        job_id, fields, _ = parse_request(spec_json)
        formats: dict[layout.Role, str] = {"person": photo_extension(person_format, "person_format"),
                                           "garment": photo_extension(garment_format, "garment_format")}
        job, replay = await run_in_threadpool(create, job_id, fields, photos, idempotency_key)
        if replay:
            response.headers["Idempotent-Replayed"] = "true"
        link = config.linker(request)
        uploads = await run_in_threadpool(targets, job, formats)
        view = await run_in_threadpool(view_or_404, job, link)
        response.headers["Location"] = f"/v1/jobs/{job}"
        return JobCreated(job_id=job, uploads=uploads, job=view)

    @api.put("/{job_id}/{part}", response_model=UploadDone, summary="Put one photo of a job (any bucket)",
             openapi_extra={"requestBody": {"required": True, "content": {
                 t: {"schema": {"type": "string", "format": "binary"}} for t in ("image/jpeg", "image/png",
                                                                                 "image/webp")}}})
    async def put_part(job_id: str, part: Part, request: Request) -> UploadDone:
        link = config.linker(request)
        await run_in_threadpool(view_or_404, job_id, link)
        data = await read_body(request, MAX_PHOTO_BYTES, WHAT[part])
        ext = check_photo(data, WHAT[part])  # refused here, before anything is written
        key = await run_in_threadpool(put_photo, store, job_id, part, data, ext)
        view = await run_in_threadpool(view_or_404, job_id, link)
        return UploadDone(key=key, size=len(data), format=ext, job=view)

    @api.get("/{job_id}", response_model=JobView, summary="A job's state, phases, progress, results or error")
    async def get_job(job_id: str, request: Request) -> JobView:
        return await run_in_threadpool(view_or_404, job_id, config.linker(request))

    @api.get("/{job_id}/events", summary="Server-Sent Events: a progress event per change, until terminal",
             response_class=EventSourceResponse)
    async def job_events(job_id: str, request: Request,
                         last_event_id: Annotated[str | None, Header(max_length=200)] = None) -> Response:
        link = config.linker(request)
        if told_everything(last_event_id, await run_in_threadpool(view_or_404, job_id, link)):
            return Response(status_code=204)
        return EventSourceResponse(progress_events(lambda: job_view(store, config.registry, job_id, link),
                                                   last_event_id, config.poll_s, config.stream_max_s), ping=15)

    @api.get("/{job_id}/results/{name:path}", summary="A result file (the links of a folder bucket on a server "
             "without keys; S3 links are presigned)", response_class=Response)
    async def get_result(job_id: str, name: str) -> Response:
        return await run_in_threadpool(result_file, store, job_id, name)

    return api


def request_digest(job_id: str | None, fields: dict[str, Any], photos: dict[layout.Role, tuple[bytes, str]]) -> str:
    """What an Idempotency-Key promises: the same job id, fields and photos."""
    canonical = {"job_id": job_id, "fields": fields,
                 "photos": {part: hashlib.sha256(data).hexdigest() for part, (data, _) in photos.items()}}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def result_file(store: ObjectStore, job_id: str, name: str) -> Response:
    """A file the job's manifest lists (or the manifest itself), never another key under results/."""
    manifest = result_manifest(store, job_id) if layout.is_valid_id(job_id) else None
    if manifest is None:
        raise ApiError(404, f"job {job_id!r} has no results (yet)", f"GET /v1/jobs/{job_id} says its state")
    if name == "manifest.json":
        return Response(store.get(layout.result_manifest_key(job_id)), media_type="application/json")
    entry = next((f for f in manifest.files if f.name == name), None)
    if entry is None:
        raise ApiError(404, f"job {job_id!r} has no result file {name!r}", f"GET /v1/jobs/{job_id} lists its results")
    return Response(store.get(entry.key), media_type=entry.content_type)


def links_router(config: ApiConfig) -> APIRouter:
    """/v1/results/{job_id}/{token}/{name}: signed result links, no key needed (functions/api/links.py)."""
    api = APIRouter(prefix=links.PREFIX, tags=["jobs"])

    @api.get("/{job_id}/{token}/{name:path}", summary="A result file through a signed link (folder buckets)",
             response_class=Response)
    async def signed_result(job_id: str, token: str, name: str) -> Response:
        links.check(config.link_secret, job_id, token)
        return await run_in_threadpool(result_file, config.store, job_id, name)

    return api
