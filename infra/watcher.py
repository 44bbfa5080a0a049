"""Files dropped into a `FolderStore`'s folder by anyone (cp, mv, an editor) become `ObjectEvent`s.

A file is emitted once complete: on inotify's close-write, on a rename into place, or, for a file that appears
without being written through a descriptor we saw (a hard link, a file moved in from outside, a file found in
a new folder, any platform without close events), once its size and mtime are stable for `settle_s`. Where
the platform reports close-write (Linux), a file seen being written, or found still open for writing by a
process in /proc, waits for its close-write instead. Hidden and temp files, the
store's `.dropfit/` and the store's own writes (`store.recently_written`) are skipped; a (key, etag) is
emitted once per change. Events lost to an inotify overflow are the sweeper's job, not the watcher's.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType

import structlog
from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from events.contracts import ObjectEvent
from infra.folder_store import FolderStore

log = structlog.get_logger(__name__)

DEFAULT_PREFIXES = ("incoming/", "catalog/")
TEMP_SUFFIXES = (".tmp", ".temp", ".part", ".partial", ".crdownload", ".download", ".swp", ".swx", "~")
_EMITTED_MEMORY = 16384
STOP_JOIN_S = 3.0  # how long a stop waits for watchdog's threads and the worker

try:
    from watchdog.observers.inotify import InotifyObserver
except ImportError:  # not Linux
    InotifyObserver = None  # type: ignore[assignment,misc]


def writers_among(inodes: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """Linux: which of these (st_dev, st_ino) a process we may inspect holds open for writing.

    Catches what a settle time cannot: a writer that stalls, on a file whose earlier writes (and so the
    hint to wait for close-write) happened before the watch on its new folder existed. Empty elsewhere.
    """
    found: set[tuple[int, int]] = set()
    try:
        pids = [entry.name for entry in os.scandir("/proc") if entry.name.isdigit()]
    except OSError:
        return found
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                st = os.stat(f"/proc/{pid}/fd/{fd}")
                if (st.st_dev, st.st_ino) not in inodes:
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                    flags = next(int(line.split()[1], 8) for line in info if line.startswith("flags:"))
            except (OSError, StopIteration, ValueError):
                continue
            if flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR):
                found.add((st.st_dev, st.st_ino))
    return found


def is_ignored_name(name: str) -> bool:
    """Hidden files, editor and download temp files: never complete objects."""
    return name.startswith((".", "#", "~$")) or name.endswith(TEMP_SUFFIXES)


@dataclass
class _Pending:
    signature: tuple[int, int, int] | None = None
    stable_since: float = 0.0
    writing: bool = False  # a write through a descriptor was seen: wait for close-write


class _Handler(FileSystemEventHandler):
    """Runs in watchdog's thread: only forwards (kind, path) to the watcher's worker."""

    def __init__(self, inbox: queue.Queue[tuple[str, str]]) -> None:
        self._inbox = inbox

    def dispatch(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        if isinstance(event, FileMovedEvent):
            self._inbox.put(("done", os.fsdecode(event.dest_path)))
        elif isinstance(event, FileClosedEvent):
            self._inbox.put(("done", os.fsdecode(event.src_path)))
        elif isinstance(event, FileModifiedEvent):
            self._inbox.put(("writing", os.fsdecode(event.src_path)))
        elif isinstance(event, FileCreatedEvent):
            self._inbox.put(("created", os.fsdecode(event.src_path)))


class FolderWatcher:
    """Watches `store.root` and calls `callback(event)` (from one worker thread) for completed files."""

    def __init__(
        self,
        store: FolderStore,
        callback: Callable[[ObjectEvent], None],
        prefixes: Iterable[str] = DEFAULT_PREFIXES,
        *,
        settle_s: float = 0.2,
        poll_s: float = 0.05,
    ) -> None:
        self._store = store
        self._callback = callback
        self._prefixes = tuple(prefixes)
        self._settle_s = settle_s
        self._poll_s = poll_s
        self._inbox: queue.Queue[tuple[str, str]] = queue.Queue()
        self._pending: dict[str, _Pending] = {}
        self._emitted: OrderedDict[str, str] = OrderedDict()
        self._stop = threading.Event()
        self._observer = Observer()
        self._waits_for_close = InotifyObserver is not None and isinstance(self._observer, InotifyObserver)
        self._worker = threading.Thread(target=self._run, name="dropfit-folder-watcher", daemon=True)

    def start(self) -> None:
        """Start watching; returns once the watches are in place."""
        handler = _Handler(self._inbox)
        event_filter = [FileClosedEvent, FileCreatedEvent, FileModifiedEvent, FileMovedEvent]
        self._observer.schedule(handler, str(self._store.root), recursive=True, event_filter=event_filter)
        self._observer.start()
        self._worker.start()

    def stop(self) -> None:
        """Stop watching, within about `STOP_JOIN_S`: a watchdog thread that does not end by then is left
        behind (its threads are daemons, so it cannot hold up the process's exit) and logged."""
        if not self._worker.is_alive():
            return
        self._observer.stop()
        self._stop.set()
        self._observer.join(timeout=STOP_JOIN_S)
        self._worker.join(timeout=STOP_JOIN_S)
        stuck = [t.name for t in (self._observer, self._worker) if t.is_alive()]
        if stuck:
            log.warning("folder_watcher.stop_slow", threads=stuck, waited_s=STOP_JOIN_S,
                        detail="left running as daemon threads; they end with the process")

    def __enter__(self) -> FolderWatcher:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- worker thread --------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                kind, path = self._inbox.get(timeout=self._poll_s)
            except queue.Empty:
                pass
            else:
                self._note(kind, path)
                while True:
                    try:
                        self._note(*self._inbox.get_nowait())
                    except queue.Empty:
                        break
            self._check_settled()

    def _key(self, path: str) -> str | None:
        key = self._store.key_for(path)
        if key is None or not key.startswith(self._prefixes):
            return None
        if any(is_ignored_name(segment) for segment in key.split("/")):
            return None
        return key

    def _note(self, kind: str, path: str) -> None:
        key = self._key(path)
        if key is None:
            return
        if kind == "done":
            self._pending.pop(key, None)
            self._emit(key)
            return
        pending = self._pending.setdefault(key, _Pending())
        if kind == "writing" and self._waits_for_close:
            pending.writing = True

    def _check_settled(self) -> None:
        now = time.monotonic()
        settled: dict[str, tuple[int, int]] = {}
        for key, pending in list(self._pending.items()):
            if pending.writing:
                continue
            try:
                st = os.stat(self._store.root / key)
            except OSError:
                del self._pending[key]
                continue
            signature = (st.st_ino, st.st_size, st.st_mtime_ns)
            if signature != pending.signature:
                pending.signature, pending.stable_since = signature, now
            elif now - pending.stable_since >= self._settle_s:
                settled[key] = (st.st_dev, st.st_ino)
        if not settled:
            return
        busy = writers_among(set(settled.values())) if self._waits_for_close else set()
        for key, inode in settled.items():
            if inode in busy:
                self._pending[key].writing = True  # still open for writing: its close-write will come
                continue
            del self._pending[key]
            self._emit(key)

    def _emit(self, key: str) -> None:
        try:
            event = self._store.event_for(key)
        except OSError:
            log.warning("folder_watcher.unreadable", key=key, exc_info=True)
            return
        if event is None or event.etag is None:
            return
        if self._emitted.get(key) == event.etag:
            return
        self._emitted[key] = event.etag
        self._emitted.move_to_end(key)
        if len(self._emitted) > _EMITTED_MEMORY:
            self._emitted.popitem(last=False)
        if self._store.recently_written(key, event.etag):
            return
        try:
            self._callback(event)
        except Exception:
            log.exception("folder_watcher.callback_failed", key=key, etag=event.etag)
