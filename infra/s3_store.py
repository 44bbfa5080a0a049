"""S3 (or any S3-compatible endpoint) as an `ObjectStore`, through boto3.

Conditional writes map to S3's own: `IfNoneMatch="*"` creates once, `IfMatch=<etag>` is compare-and-swap.
A lost condition is HTTP 412, or 404 for `IfMatch` on a missing key: both become `PreconditionFailed`. AWS may
answer 409 `ConditionalRequestConflict` to concurrent conditional writes: retried a few times, then raised. A
conditional write whose answer was lost (a timeout, a reset) is retried by botocore, and the retry finds the
condition broken by the first attempt's own write: a 412 after a retry is checked against what the key holds,
and when those are our bytes the write succeeded (no claim mistaken for another worker's, no delivery record
left for the sweeper).
Etags are returned without quotes; `IfMatch` is sent quoted, as HTTP entity tags are (moto accepts both).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from pipeline.storage import ObjectInfo, ObjectNotFound, PreconditionFailed

_CONFLICT_ATTEMPTS = 4
_CONFLICT_BACKOFF_S = 0.05
_NOT_FOUND = frozenset({"NoSuchKey", "NotFound", "404"})


def unquote_etag(etag: str) -> str:
    return etag.strip('"')


def _error(exc: ClientError) -> tuple[str, int]:
    """The error code and HTTP status of a failed call."""
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    return code, status


def _is_not_found(exc: ClientError) -> bool:
    code, status = _error(exc)
    return status == 404 or code in _NOT_FOUND


def client_config() -> Config:
    """Standard retries (throttling, 5xx, timeouts) with bounded connect and read timeouts."""
    return Config(
        retries={"mode": "standard", "max_attempts": 5},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=32,
    )


class S3Store:
    """An `ObjectStore` on one S3 bucket. `client` is a boto3 S3 client (any endpoint)."""

    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    @classmethod
    def connect(cls, bucket: str, *, endpoint_url: str | None = None, region: str | None = None) -> S3Store:
        """A store on `bucket` with credentials from the default chain; path-style for custom endpoints.
        Signature V4, so its presigned links are V4 too (valid up to 7 days; V2 is refused in new regions)."""
        config = client_config().merge(Config(signature_version="s3v4"))
        if endpoint_url is not None:
            config = config.merge(Config(s3={"addressing_style": "path"}))
        client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
        return cls(client, bucket)

    def __repr__(self) -> str:
        return f"S3Store(bucket={self._bucket!r}, endpoint={self._client.meta.endpoint_url!r})"

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def client(self) -> Any:
        return self._client

    def get(self, key: str) -> bytes:
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if _is_not_found(exc):
                raise ObjectNotFound(key) from exc
            raise
        with response["Body"] as body:
            return body.read()

    def head(self, key: str) -> ObjectInfo | None:
        try:
            response = self._client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if _is_not_found(exc):
                return None
            raise
        return ObjectInfo(key, unquote_etag(response["ETag"]), response["ContentLength"], response["LastModified"])

    def put(
        self,
        key: str,
        data: bytes,
        *,
        if_none_match: bool = False,
        if_match: str | None = None,
        content_type: str | None = None,
    ) -> ObjectInfo:
        if if_none_match and if_match is not None:
            raise ValueError("if_none_match and if_match exclude each other")
        request: dict[str, Any] = {"Bucket": self._bucket, "Key": key, "Body": data}
        if content_type is not None:
            request["ContentType"] = content_type
        if if_none_match:
            request["IfNoneMatch"] = "*"
        if if_match is not None:
            request["IfMatch"] = f'"{unquote_etag(if_match)}"'
        response = self._put_conditional(key, request)
        # PutObject returns no LastModified: the time of the answer is within the request's span.
        return ObjectInfo(key, unquote_etag(response["ETag"]), len(data), datetime.now(UTC))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
            for item in page.get("Contents", ()):
                yield ObjectInfo(item["Key"], unquote_etag(item["ETag"]), item["Size"], item["LastModified"])

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self._bucket, Key=key)

    def copy(self, source: str, dest: str, *, content_type: str | None = None) -> ObjectInfo:
        """Server-side CopyObject: the bytes never pass through this process."""
        request: dict[str, Any] = {"Bucket": self._bucket, "Key": dest,
                                   "CopySource": {"Bucket": self._bucket, "Key": source}}
        if content_type:
            request.update(ContentType=content_type, MetadataDirective="REPLACE")
        try:
            reply = self._client.copy_object(**request)
        except ClientError as exc:
            if _is_not_found(exc):
                raise ObjectNotFound(source) from exc
            raise
        result = reply["CopyObjectResult"]
        info = self.head(dest)
        size = info.size if info else 0
        return ObjectInfo(dest, unquote_etag(result["ETag"]), size, result["LastModified"])

    def presign_get(self, key: str, expires_s: int) -> str:
        """A URL anyone can GET the object with, until `expires_s` seconds from now."""
        return self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=expires_s
        )

    def _put_conditional(self, key: str, request: dict[str, Any]) -> dict[str, Any]:
        for attempt in range(_CONFLICT_ATTEMPTS):
            try:
                return self._client.put_object(**request)
            except ClientError as exc:
                code, status = _error(exc)
                if status == 412 or code == "PreconditionFailed":
                    ours = self._own_write(key, request, exc)
                    if ours is not None:
                        return ours
                    condition = "the key exists" if "IfNoneMatch" in request else "the etag changed"
                    raise PreconditionFailed(key, condition) from exc
                if "IfMatch" in request and _is_not_found(exc):
                    raise PreconditionFailed(key, "the key does not exist") from exc
                if status != 409 or code != "ConditionalRequestConflict" or attempt == _CONFLICT_ATTEMPTS - 1:
                    raise
            time.sleep(_CONFLICT_BACKOFF_S * 2**attempt * (1 + random.random()))
        raise AssertionError("unreachable")

    def _own_write(self, key: str, request: dict[str, Any], exc: ClientError) -> dict[str, Any] | None:
        """After a retried conditional put failed its condition: the put's reply (its etag) when the key holds
        exactly the bytes we sent (the first attempt landed, its answer was lost); None otherwise."""
        if not exc.response.get("ResponseMetadata", {}).get("RetryAttempts"):
            return None
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=key)
        except ClientError:
            return None
        with response["Body"] as body:
            if body.read() != request["Body"]:
                return None
        return {"ETag": response["ETag"]}
