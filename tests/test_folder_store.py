"""FolderStore beyond the shared contract: events, real processes, killed writers, and the folder watcher."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from multiprocessing.context import ForkContext
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

from events.contracts import ObjectEvent, sequencer_order
from infra.folder_store import FolderStore
from infra.watcher import FolderWatcher
from pipeline.storage import PreconditionFailed

REPO_ROOT = Path(__file__).resolve().parents[1]
MiB = 1 << 20

# watchdog warns when a new folder's watch is registered twice (its own scan and the IN_CREATE): harmless.
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id .* already exists:RuntimeWarning")


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


# ---- events ---------------------------------------------------------------------------------------------


def test_every_put_emits_an_event(folder_store: FolderStore) -> None:
    events: list[ObjectEvent] = []
    folder_store.subscribe(events.append)
    payloads = [("incoming/j/person.jpg", b"a"), ("incoming/j/person.jpg", b"bb"), ("work/x/y", b"ccc")]
    for key, data in payloads:
        folder_store.put(key, data)
    folder_store.put("work/x/z", b"d", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        folder_store.put("work/x/z", b"e", if_none_match=True)  # a failed write emits nothing

    assert [(e.key, e.etag, e.size) for e in events] == [
        *((key, md5(data), len(data)) for key, data in payloads),
        ("work/x/z", md5(b"d"), 1),
    ]
    assert {(e.source, e.bucket) for e in events} == {("folder", "bucket")}
    orders = [sequencer_order(e.sequencer or "") for e in events]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)
    # The watcher and the sweeper describe an untouched file exactly as the put's event did.
    for event in (events[1], events[2], events[3]):
        again = folder_store.event_for(event.key)
        assert again is not None and again.same_object(event)
    assert folder_store.event_for("incoming/j/missing.jpg") is None


def test_etag_of_a_file_dropped_by_someone_else(folder_store: FolderStore) -> None:
    path = folder_store.root / "incoming" / "j" / "garment.png"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"dropped")
    info = folder_store.head("incoming/j/garment.png")
    assert info is not None and (info.etag, info.size) == (md5(b"dropped"), 7)
    path.write_bytes(b"changed!")  # same inode, new size and mtime: the cached etag is not reused
    info = folder_store.head("incoming/j/garment.png")
    assert info is not None and info.etag == md5(b"changed!")
    assert folder_store.recently_written("incoming/j/garment.png", md5(b"changed!")) is False


def test_internal_state_is_never_listed(folder_store: FolderStore) -> None:
    folder_store.put("a", b"1")
    assert (folder_store.root / ".dropfit" / "locks").is_dir()
    assert [i.key for i in folder_store.list("")] == ["a"]
    assert [i.key for i in folder_store.list(".")] == []


def test_delete_removes_empty_folders(folder_store: FolderStore) -> None:
    folder_store.put("work/p/r/out.bin", b"1")
    folder_store.put("work/keep", b"2")
    folder_store.delete("work/p/r/out.bin")
    assert not (folder_store.root / "work" / "p").exists()
    assert (folder_store.root / "work" / "keep").is_file()


# ---- real processes ---------------------------------------------------------------------------------------


def _claim(root: str, index: int, start: Event, results: multiprocessing.Queue) -> None:
    store = FolderStore(root)
    start.wait()
    try:
        store.put("claims/once", f"process {index}".encode(), if_none_match=True)
        results.put(("won", index))
    except PreconditionFailed:
        results.put(("lost", index))


def _increment(root: str, times: int, start: Event) -> None:
    store = FolderStore(root)
    start.wait()
    for _ in range(times):
        while True:
            current = store.head("counter")
            assert current is not None
            value = int(store.get("counter"))  # may be newer than `current`: then the swap fails
            try:
                store.put("counter", str(value + 1).encode(), if_match=current.etag)
                break
            except PreconditionFailed:
                continue


@pytest.fixture(scope="module")
def processes() -> ForkContext:
    return multiprocessing.get_context("fork")


def test_conditional_create_across_processes(folder_store: FolderStore, processes: ForkContext) -> None:
    start, results = processes.Event(), processes.Queue()
    workers = [processes.Process(target=_claim, args=(str(folder_store.root), i, start, results)) for i in range(8)]
    for worker in workers:
        worker.start()
    start.set()
    outcomes = [results.get(timeout=20) for _ in workers]
    for worker in workers:
        worker.join(timeout=20)
        assert worker.exitcode == 0
    winners = [index for outcome, index in outcomes if outcome == "won"]
    assert len(winners) == 1
    assert folder_store.get("claims/once") == f"process {winners[0]}".encode()


def test_compare_and_swap_across_processes(folder_store: FolderStore, processes: ForkContext) -> None:
    folder_store.put("counter", b"0")
    start = processes.Event()
    workers = [processes.Process(target=_increment, args=(str(folder_store.root), 15, start)) for _ in range(6)]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    assert folder_store.get("counter") == b"90"


_WRITER = """
import sys
from infra.folder_store import FolderStore
FolderStore(sys.argv[1]).put("results/big.bin", b"N" * int(sys.argv[2]))
"""


def test_a_killed_writer_leaves_no_partial_object(folder_store: FolderStore) -> None:
    size = 256 * MiB
    folder_store.put("results/big.bin", b"old")
    tmp_dir = folder_store.root / ".dropfit" / "tmp"
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(folder_store.root), str(size)], cwd=REPO_ROOT)
    try:
        assert wait_until(lambda: any(p.stat().st_size > 0 for p in tmp_dir.iterdir()), timeout_s=20)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert writer.returncode == -signal.SIGKILL

    data = folder_store.get("results/big.bin")
    completed = len(data) == size and data == b"N" * size
    assert data == b"old" or completed
    assert folder_store.clean_temp(max_age_s=3600) == 0  # young temp files stay: a writer may own them
    time.sleep(0.01)
    assert folder_store.clean_temp(max_age_s=0) == (0 if completed else 1)
    assert list(tmp_dir.iterdir()) == []
    assert [i.key for i in folder_store.list("results/")] == ["results/big.bin"]


# ---- the watcher ------------------------------------------------------------------------------------------


@pytest.fixture
def watched(folder_store: FolderStore) -> Iterator[tuple[FolderStore, list[ObjectEvent]]]:
    events: list[ObjectEvent] = []
    with FolderWatcher(folder_store, events.append):
        yield folder_store, events


def _keys(events: list[ObjectEvent]) -> list[str]:
    return [e.key for e in events]


def test_watcher_emits_once_for_a_file_written_in_chunks(watched, tmp_path: Path) -> None:
    store, events = watched
    payload = os.urandom(8 * MiB)
    dest = store.root / "incoming" / "job1" / "person.jpg"
    dest.parent.mkdir(parents=True)
    with open(dest, "wb") as f:
        for offset in range(0, len(payload), MiB):
            f.write(payload[offset : offset + MiB])
            f.flush()
            if offset == 2 * MiB:
                time.sleep(0.5)  # a stall longer than the settle time: still not complete
    assert wait_until(lambda: len(events) == 1)

    source = tmp_path / "garment.jpg"
    source.write_bytes(payload[::-1])
    shutil.copy(source, store.root / "incoming" / "job1" / "garment.jpg")
    assert wait_until(lambda: len(events) == 2)
    time.sleep(0.5)
    assert [(e.key, e.etag, e.size, e.source) for e in events] == [
        ("incoming/job1/person.jpg", md5(payload), len(payload), "folder"),
        ("incoming/job1/garment.jpg", md5(payload[::-1]), len(payload), "folder"),
    ]


def test_watcher_emits_once_for_a_file_moved_in(watched, tmp_path: Path) -> None:
    store, events = watched
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"from elsewhere")
    (store.root / "catalog" / "b1" / "people").mkdir(parents=True)
    os.rename(outside, store.root / "catalog" / "b1" / "people" / "ann.png")  # no close-write: settles

    hidden = store.root / "incoming" / "job2" / ".person.jpg.part"
    hidden.parent.mkdir(parents=True)
    hidden.write_bytes(b"downloaded")
    os.rename(hidden, hidden.with_name("person.jpg"))
    assert wait_until(lambda: len(events) == 2)
    time.sleep(0.5)
    assert sorted((e.key, e.etag) for e in events) == [
        ("catalog/b1/people/ann.png", md5(b"from elsewhere")),
        ("incoming/job2/person.jpg", md5(b"downloaded")),
    ]


def test_watcher_skips_own_writes_internal_state_and_other_prefixes(watched) -> None:
    store, events = watched
    store.put("incoming/job3/person.jpg", b"ours")
    store.put("incoming/job3/garment.jpg", b"ours too", if_none_match=True)  # a hard link: settles
    (store.root / ".dropfit" / "tmp" / "x.jpg").write_bytes(b"internal")
    (store.root / "incoming" / ".DS_Store").write_bytes(b"hidden")
    (store.root / "work" / "p").mkdir(parents=True)
    (store.root / "work" / "p" / "out.png").write_bytes(b"not watched")
    (store.root / "incoming" / "job3" / "spec.json").write_bytes(b"{}")
    (store.root / "incoming" / "job3" / "spec.json").write_bytes(b"{}")  # same content again: no new event
    assert wait_until(lambda: len(events) >= 1)
    time.sleep(0.6)
    assert _keys(events) == ["incoming/job3/spec.json"]

    (store.root / "incoming" / "job3" / "spec.json").write_bytes(b'{"v": 2}')  # a change: a new event
    assert wait_until(lambda: len(events) == 2)
    assert events[1].etag == md5(b'{"v": 2}')


def test_watcher_waits_for_a_writer_that_stalls_in_a_folder_moved_in(watched, tmp_path: Path) -> None:
    store, events = watched
    staging = tmp_path / "job4"
    staging.mkdir()
    payload = os.urandom(2 * MiB)
    with open(staging / "person.jpg", "wb") as f:
        f.write(payload[:MiB])  # written before any watch could see it
        f.flush()
        (store.root / "incoming").mkdir()
        os.rename(staging, store.root / "incoming" / "job4")
        time.sleep(0.5)  # stable for longer than the settle time, but still open for writing
        assert events == []
        f.write(payload[MiB:])
    assert wait_until(lambda: len(events) == 1)
    time.sleep(0.3)
    assert [(e.key, e.etag) for e in events] == [("incoming/job4/person.jpg", md5(payload))]
