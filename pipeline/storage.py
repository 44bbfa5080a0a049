"""The object store protocol every phase and handler talks to.

Two real implementations live in `infra/`: a local folder (`infra.folder_store.FolderStore`) and S3 through
boto3 (`infra.s3_store.S3Store`). Keys are always decoded ('/'-separated, no leading slash).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


class StoreError(Exception):
    """Base class of object store errors."""


class ObjectNotFound(StoreError, KeyError):
    """The key does not exist."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"object not found: {self.key}"


class PreconditionFailed(StoreError):
    """A conditional write lost: the key exists (if_none_match) or changed (if_match)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"precondition failed for {key}: {reason}")
        self.key = key
        self.reason = reason


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    etag: str
    size: int
    last_modified: datetime


@runtime_checkable
class ObjectStore(Protocol):
    """A bucket: flat keys, whole-object reads and writes, conditional creates and compare-and-swap.

    `put` is atomic: readers see the old object or the new one, never a part. With `if_none_match=True`
    it fails with PreconditionFailed when the key exists; with `if_match=etag` it fails when the current
    object's etag differs (or the key is gone).
    """

    @property
    def bucket(self) -> str: ...

    def get(self, key: str) -> bytes: ...

    def head(self, key: str) -> ObjectInfo | None: ...

    def put(
        self,
        key: str,
        data: bytes,
        *,
        if_none_match: bool = False,
        if_match: str | None = None,
        content_type: str | None = None,
    ) -> ObjectInfo: ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix`, in key order, recursively."""
        ...

    def delete(self, key: str) -> None:
        """Remove the key; removing a missing key is not an error."""
        ...

    def copy(self, source: str, dest: str, *, content_type: str | None = None) -> ObjectInfo:
        """Copy an object within the bucket (server-side where the store can). ObjectNotFound if absent."""
        ...


def exists(store: ObjectStore, key: str) -> bool:
    return store.head(key) is not None
