"""Photos and JSON into the bucket: bodies read with a cap, photos sniffed by content (the pipeline's own check,
`pipeline.images.inspect_image`) before anything is written, upload links on S3."""

from __future__ import annotations

import io
from typing import Any

from fastapi import Request
from PIL import Image, UnidentifiedImageError

from functions.api.errors import ApiError, refused
from functions.api.models import UploadTarget
from functions.incoming import CONTENT_TYPES
from infra.s3_store import S3Store
from pipeline import layout
from pipeline.errors import InvalidInput
from pipeline.images import FORMATS, MAX_BYTES, MIB, inspect_image

MAX_PHOTO_BYTES = MAX_BYTES  # 40 MiB, intake's own limit (docs/inputs.md)
MAX_JSON_BYTES = 1 * MIB  # a create request's body: job.json's fields (a size chart fits in a few KiB)
MAX_FORM_BYTES = 2 * MAX_PHOTO_BYTES + MAX_JSON_BYTES  # a multipart create: both photos and the fields


async def read_body(request: Request, limit: int, what: str) -> bytes:
    """The request's body, refused with 413 as soon as it is known to pass `limit` (its Content-Length, or the
    bytes read so far): a too-large upload is never read to its end."""
    too_large = ApiError(413, f"the {what} is larger than {limit / MIB:.0f} MiB, the most accepted",
                         f"send a smaller {what}" + (" (at most 2048 pixels on the long side is plenty)"
                                                     if "photo" in what else ""))
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def check_photo(data: bytes, what: str) -> str:
    """The photo's extension by its content (jpg, png, webp), or a refusal: 415 when it is no JPEG, PNG or
    WebP at all, 413 when too large, 422 when it is one but unusable (damaged, too small, too many pixels)."""
    try:
        facts = inspect_image(data, what)
    except InvalidInput as exc:
        status = 413 if len(data) > MAX_PHOTO_BYTES else 415 if not _is_accepted_format(data) else 422
        raise refused(exc, status) from exc
    return FORMATS[facts.format]


def _is_accepted_format(data: bytes) -> bool:
    """Whether the bytes start like a format intake accepts (whatever state the rest is in)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return (image.format or "") in FORMATS
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return data.startswith((b"\xff\xd8", b"\x89PNG")) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def photo_extension(value: str, what: str) -> str:
    ext = value.lower().lstrip(".")
    ext = "jpg" if ext in ("jpeg", "image/jpeg") else ext.removeprefix("image/")
    if ext not in layout.IMAGE_EXTENSIONS:
        raise ApiError(422, f"{what}: {value!r} is not a photo format accepted",
                       "use jpeg, png or webp")
    return ext


def s3_target(store: S3Store, key: str, expires_s: int) -> UploadTarget:
    """A presigned PUT (content type signed) and a presigned POST form (size range and type in its policy,
    which S3 enforces) for one photo at `key`."""
    content_type = CONTENT_TYPES[key.rsplit(".", 1)[1]]
    client: Any = store.client
    url = client.generate_presigned_url("put_object", ExpiresIn=expires_s,
                                        Params={"Bucket": store.bucket, "Key": key, "ContentType": content_type})
    form = client.generate_presigned_post(
        store.bucket, key, Fields={"Content-Type": content_type}, ExpiresIn=expires_s,
        Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, MAX_PHOTO_BYTES]])
    return UploadTarget(url=url, headers={"Content-Type": content_type}, max_bytes=MAX_PHOTO_BYTES, form=form,
                        expires_in_s=expires_s)


def api_target(path: str, ext: str | None = None) -> UploadTarget:
    headers = {"Content-Type": CONTENT_TYPES[ext]} if ext else {}
    return UploadTarget(url=path, headers=headers, max_bytes=MAX_PHOTO_BYTES)
