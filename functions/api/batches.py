"""/v1/batches: the catalog flow. Create (the photos' names and batch.json's settings), put each photo under
catalog/{batch_id}/, then commit: batch.json, the commit marker that fans the batch out, is written only then."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from functions.api import idempotency
from functions.api.config import ApiConfig
from functions.api.errors import ApiError, refused
from functions.api.models import BatchCreated, BatchRequest, BatchView, UploadDone, UploadTarget
from functions.api.uploads import MAX_PHOTO_BYTES, api_target, check_photo, read_body, s3_target
from functions.api.views import batch_view
from infra.s3_store import S3Store
from pipeline import layout
from pipeline.errors import InvalidInput
from pipeline.intake import check_overrides, parse_batch_spec
from pipeline.manifests import Record, utcnow
from pipeline.spec import MAX_JSON_BYTES as MAX_BATCH_BYTES
from pipeline.spec import describe_errors, load_json_object
from pipeline.state import read_model
from pipeline.storage import PreconditionFailed

Folder = Literal["people", "garments"]


class PendingBatch(Record):
    """work/api/batches/{batch_id}.json: a batch created through the API, until and after its commit."""

    schema_version: Literal[1] = 1
    batch_id: str
    people: tuple[str, ...]
    garments: tuple[str, ...]
    settings: dict[str, Any]
    created_at: datetime

    def keys(self) -> list[str]:
        return [*(f"{layout.catalog_people_prefix(self.batch_id)}{n}" for n in self.people),
                *(f"{layout.catalog_garments_prefix(self.batch_id)}{n}" for n in self.garments)]


def parse_batch_request(data: bytes) -> BatchRequest:
    """The body, read with a cap (batch.json's own), or 422 in the same words as job.json's errors."""
    try:
        return BatchRequest.model_validate(load_json_object(data, "the request body", "send one JSON object"))
    except InvalidInput as exc:
        raise refused(exc) from exc
    except ValidationError as exc:
        raise ApiError(422, f"the request is invalid: {describe_errors(exc)}",
                       "correct those fields (see GET /docs, and the README's 'Catalog batches')") from exc


def check_names(names: list[str], folder: str) -> None:
    for name in names:
        if "/" in name or "\\" in name or name.startswith(".") or layout.image_extension(name) is None:
            raise ApiError(422, f"{folder}: {name!r} is not a photo file name", "name each photo like alice.jpg "
                           "(one name, ending in .jpg, .jpeg, .png or .webp)")
    if len(set(names)) != len(names):
        raise ApiError(422, f"{folder}: a name is given twice", "give each photo one name")


def router(config: ApiConfig) -> APIRouter:
    api = APIRouter(prefix="/v1/batches", tags=["batches"])
    store = config.store

    def pending(batch_id: str) -> PendingBatch:
        record = read_model(store, layout.api_batch_key(batch_id), PendingBatch) if layout.is_valid_id(batch_id) \
            else None
        if record is None:
            raise ApiError(404, f"there is no batch {batch_id!r} created through the API",
                           "create it with POST /v1/batches (or check the id)")
        return record

    def create(body: BatchRequest, key: str | None) -> PendingBatch:
        batch_id = body.batch_id or f"batch-{uuid.uuid4().hex[:12]}"
        if key is not None:  # the same namespace as the jobs' keys, apart: "batch:" + the client's key
            digest = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
            batch_id, replay = idempotency.remember(store, f"batch:{key}", digest, batch_id)
            if replay:
                return pending(batch_id)
        try:
            return _create(body, batch_id)
        except ApiError:
            if key is not None:
                idempotency.forget(store, f"batch:{key}")
            raise

    def _create(body: BatchRequest, batch_id: str) -> PendingBatch:
        try:
            layout.check_id(batch_id, "batch id")
            check_overrides(parse_batch_spec(json.dumps(body.settings).encode()), body.people, body.garments)
        except InvalidInput as exc:
            raise refused(exc) from exc
        except layout.InvalidKey as exc:
            raise ApiError(422, str(exc), "choose another batch_id, or leave it out to get one") from exc
        record = PendingBatch(batch_id=batch_id, people=tuple(body.people), garments=tuple(body.garments),
                              settings=body.settings, created_at=utcnow())
        taken = ApiError(409, f"batch {batch_id!r} exists already", "choose another batch_id, or leave it out")
        if any(True for _ in store.list(layout.catalog_prefix(batch_id))):
            raise taken
        try:
            store.put(layout.api_batch_key(batch_id), record.to_bytes(), if_none_match=True)
        except PreconditionFailed as exc:
            raise taken from exc
        return record

    def target(key: str, path: str) -> UploadTarget:
        if isinstance(store, S3Store):
            return s3_target(store, key, config.upload_expiry_s)
        return api_target(path)

    def view(batch_id: str, request: Request) -> BatchView:
        record = pending(batch_id)
        return batch_view(store, config.registry, batch_id, record.keys(), config.linker(request))

    @api.post("", status_code=201, response_model=BatchCreated, summary="Create a batch: where each photo goes",
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                  "schema": BatchRequest.model_json_schema(ref_template="#/components/schemas/{model}")}}}})
    async def create_batch(request: Request,
                           idempotency_key: Annotated[str | None, Header(max_length=255)] = None) -> BatchCreated:
        body = parse_batch_request(await read_body(request, MAX_BATCH_BYTES, "request body"))
        check_names(body.people, "people")
        check_names(body.garments, "garments")
        record = await run_in_threadpool(create, body, idempotency_key)
        base = f"/v1/batches/{record.batch_id}"
        uploads = {key.split("/", 2)[2]: target(key, f"{base}/{key.split('/', 2)[2]}") for key in record.keys()}
        return BatchCreated(batch_id=record.batch_id, uploads=uploads, commit_url=f"{base}/commit",
                            batch=await run_in_threadpool(view, record.batch_id, request))

    @api.put("/{batch_id}/{folder}/{name}", response_model=UploadDone, summary="Put one photo of a batch")
    async def put_photo(batch_id: str, folder: Folder, name: str, request: Request) -> UploadDone:
        record = await run_in_threadpool(pending, batch_id)
        if name not in (record.people if folder == "people" else record.garments):
            raise ApiError(404, f"batch {batch_id!r} has no {folder} photo {name!r}",
                           "put only the photos named when the batch was created")
        data = await read_body(request, MAX_PHOTO_BYTES, "photo")
        ext = check_photo(data, f"photo {folder}/{name}")
        key = f"{layout.catalog_prefix(batch_id)}{folder}/{name}"
        await run_in_threadpool(store.put, key, data)
        return UploadDone(key=key, size=len(data), format=ext)

    @api.post("/{batch_id}/commit", status_code=202, response_model=BatchView,
              summary="Say the uploads are done: writes batch.json, which starts the batch")
    async def commit(batch_id: str, request: Request) -> BatchView:
        def write() -> None:
            record = pending(batch_id)
            missing = [key for key in record.keys() if store.head(key) is None]
            if missing:
                raise ApiError(409, f"batch {batch_id!r} still misses {len(missing)} photo(s): "
                               + ", ".join(k.split("/", 2)[2] for k in missing[:8]), "put them, then commit")
            try:
                store.put(layout.batch_marker_key(batch_id), json.dumps(record.settings).encode(), if_none_match=True,
                          content_type="application/json")
            except PreconditionFailed:
                pass  # committed before: a repeated commit changes nothing

        await run_in_threadpool(write)
        return await run_in_threadpool(view, batch_id, request)

    @api.get("/{batch_id}", response_model=BatchView, summary="A batch's state, its jobs, its report when done")
    async def get_batch(batch_id: str, request: Request) -> BatchView:
        return await run_in_threadpool(view, batch_id, request)

    return api
