"""The `ObjectStore` contract, run against every implementation (a folder, and S3 on a moto server)."""

from __future__ import annotations

import hashlib
import threading
import urllib.request
from datetime import datetime
from typing import Any

import pytest

from infra.folder_store import FolderStore
from infra.s3_store import S3Store
from pipeline.storage import ObjectNotFound, ObjectStore, PreconditionFailed, exists


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def keys(store: ObjectStore, prefix: str) -> list[str]:
    return [info.key for info in store.list(prefix)]


def test_implements_the_protocol(store: ObjectStore) -> None:
    assert isinstance(store, ObjectStore)
    assert store.bucket


def test_put_get_head_round_trip(store: ObjectStore) -> None:
    info = store.put("work/a/result.json", b'{"ok": true}', content_type="application/json")
    assert (info.key, info.etag, info.size) == ("work/a/result.json", md5(b'{"ok": true}'), 12)
    assert store.get("work/a/result.json") == b'{"ok": true}'
    head = store.head("work/a/result.json")
    assert head is not None
    assert (head.key, head.etag, head.size) == (info.key, info.etag, info.size)
    assert isinstance(head.last_modified, datetime) and head.last_modified.tzinfo is not None
    assert exists(store, "work/a/result.json")


def test_overwrite_changes_etag_and_content(store: ObjectStore) -> None:
    first = store.put("k/v", b"one")
    second = store.put("k/v", b"two!")
    assert first.etag != second.etag
    assert store.get("k/v") == b"two!"
    assert [(i.key, i.etag, i.size) for i in store.list("k/")] == [("k/v", second.etag, 4)]


def test_empty_object(store: ObjectStore) -> None:
    info = store.put("k/empty", b"")
    assert (info.size, info.etag) == (0, md5(b""))
    assert store.get("k/empty") == b""


def test_missing_key(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound) as raised:
        store.get("nope/missing.bin")
    assert raised.value.key == "nope/missing.bin"
    assert isinstance(raised.value, KeyError)
    assert store.head("nope/missing.bin") is None
    store.delete("nope/missing.bin")  # not an error


def test_delete(store: ObjectStore) -> None:
    store.put("work/x/1", b"1")
    store.put("work/x/2", b"2")
    store.delete("work/x/1")
    assert store.head("work/x/1") is None
    assert keys(store, "work/") == ["work/x/2"]
    store.delete("work/x/2")
    assert keys(store, "") == []


def test_list_is_in_key_order_and_scoped_to_the_prefix(store: ObjectStore) -> None:
    for key in ["work/x0", "other/a", "work/x/2/z", "work/xy", "work/x-y/3", "work/x/1", "workshop"]:
        store.put(key, key.encode())
    assert keys(store, "work/x/") == ["work/x/1", "work/x/2/z"]
    assert keys(store, "work/x") == ["work/x-y/3", "work/x/1", "work/x/2/z", "work/x0", "work/xy"]
    assert keys(store, "work") == ["work/x-y/3", "work/x/1", "work/x/2/z", "work/x0", "work/xy", "workshop"]
    assert keys(store, "") == sorted(keys(store, ""))
    assert len(keys(store, "")) == 7
    assert keys(store, "nothing/") == []
    assert keys(store, "work/x/2/z") == ["work/x/2/z"]
    sizes = {info.key: info.size for info in store.list("")}
    assert sizes["work/x/2/z"] == len(b"work/x/2/z")


def test_if_none_match_creates_once(store: ObjectStore) -> None:
    store.put("claims/a", b"first", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put("claims/a", b"second", if_none_match=True)
    assert store.get("claims/a") == b"first"


def test_if_none_match_race_has_exactly_one_winner(store: ObjectStore) -> None:
    contenders = 20
    barrier = threading.Barrier(contenders)
    winners: list[int] = []
    losers: list[int] = []
    errors: list[BaseException] = []

    def contend(i: int) -> None:
        barrier.wait()
        try:
            store.put("claims/race", f"contender {i}".encode(), if_none_match=True)
            winners.append(i)
        except PreconditionFailed:
            losers.append(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(winners) == 1 and len(losers) == contenders - 1
    assert store.get("claims/race") == f"contender {winners[0]}".encode()


def test_if_match_is_compare_and_swap(store: ObjectStore) -> None:
    v1 = store.put("state.json", b"v1")
    v2 = store.put("state.json", b"v2", if_match=v1.etag)
    assert store.get("state.json") == b"v2"
    with pytest.raises(PreconditionFailed):
        store.put("state.json", b"v3", if_match=v1.etag)  # stale
    assert store.get("state.json") == b"v2"
    store.put("state.json", b"v3", if_match=f'"{v2.etag}"')  # quoted etags are accepted too
    assert store.get("state.json") == b"v3"


def test_if_match_on_a_missing_key_fails(store: ObjectStore) -> None:
    with pytest.raises(PreconditionFailed):
        store.put("state/missing.json", b"x", if_match=md5(b"x"))
    assert store.head("state/missing.json") is None


@pytest.mark.parametrize(
    "key", ["incoming/job 1/photo+x é.jpg", "catalog/日本/ü ñ.png", "a+b/c%20d/e=f&g", "incoming/j/a:b@c"]
)
def test_unusual_but_valid_keys(store: ObjectStore, key: str) -> None:
    info = store.put(key, b"data")
    assert store.get(key) == b"data"
    assert store.head(key) == store.head(key)
    assert [(i.key, i.etag) for i in store.list(key.split("/")[0] + "/")] == [(key, info.etag)]
    store.delete(key)
    assert store.head(key) is None


UNSAFE_KEYS = ["", "/abs", "a//b", "a/", "../x", "a/../b", "a/./b", ".", "a\\b", "a\x00b"]


@pytest.mark.parametrize("key", [*UNSAFE_KEYS, ".dropfit", ".dropfit/tmp/x"])
def test_folder_store_rejects_unsafe_keys(folder_store: FolderStore, key: str) -> None:
    for call in (
        lambda: folder_store.put(key, b"x"),
        lambda: folder_store.get(key),
        lambda: folder_store.head(key),
        lambda: folder_store.delete(key),
    ):
        with pytest.raises(ValueError):
            call()
    assert list(folder_store.root.parent.iterdir()) == [folder_store.root]


# ---- S3 only -----------------------------------------------------------------------------------------------


def test_s3_presigned_get_serves_the_object(s3_client: Any, s3_bucket: str) -> None:
    store = S3Store(s3_client, s3_bucket)
    store.put("results/j/tryon.png", b"png bytes", content_type="image/png")
    with urllib.request.urlopen(store.presign_get("results/j/tryon.png", expires_s=60), timeout=10) as reply:
        assert (reply.status, reply.read()) == (200, b"png bytes")
    assert s3_client.head_object(Bucket=s3_bucket, Key="results/j/tryon.png")["ContentType"] == "image/png"


def test_s3_connect_builds_a_path_style_client_with_standard_retries() -> None:
    store = S3Store.connect("some-bucket", endpoint_url="http://127.0.0.1:9", region="eu-west-1")
    config = store.client.meta.config
    assert (store.bucket, store.client.meta.region_name) == ("some-bucket", "eu-west-1")
    assert config.s3["addressing_style"] == "path"
    assert config.retries["mode"] == "standard"


def test_copy_makes_an_independent_object_and_refuses_a_missing_source(store: ObjectStore) -> None:
    store.put("work/a/1/out.bin", b"first", content_type="image/png")
    info = store.copy("work/a/1/out.bin", "results/j/out.bin", content_type="image/png")
    assert info.key == "results/j/out.bin" and info.size == 5
    assert store.get("results/j/out.bin") == b"first"
    assert store.head("results/j/out.bin").etag == store.head("work/a/1/out.bin").etag
    store.put("work/a/1/out.bin", b"second")
    assert store.get("results/j/out.bin") == b"first"
    with pytest.raises(ObjectNotFound):
        store.copy("work/a/1/missing.bin", "results/j/missing.bin")
