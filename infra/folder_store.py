"""A real local folder used as a bucket, safe across threads and processes.

Keys are '/'-separated paths under the root. Internal state lives in `root/.dropfit/` (temp files, lock files)
and is never listed. Writes are atomic: the bytes go to a temp file in `.dropfit/tmp/`, are fsynced, then
renamed (or hard-linked, for a conditional create) into place under a per-key `flock`, so readers see the old
object or the new one, never a part, and compare-and-swap holds between processes.

Every successful `put` emits an `ObjectEvent` to the subscribers, synchronously, after the write is visible.
The event's sequencer comes from the file itself (the later of its mtime and ctime, in ns, as hex), and a put
sets the mtime to a strictly increasing clock first, so `event_for(key)` (the watcher, the sweeper) describes
a file exactly as the put's own event did, and versions of one key sort in write order.
"""

from __future__ import annotations

import builtins
import fcntl
import hashlib
import os
import stat
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from events.contracts import EventSource, ObjectEvent
from pipeline.storage import ObjectInfo, ObjectNotFound, PreconditionFailed

STATE_DIR = ".dropfit"
LOCK_STRIPES = 1024
_TMP_SUFFIX = ".tmp"
_RECENT_WRITES = 4096
_ETAG_CACHE_SIZE = 65536
_PLACE_ATTEMPTS = 5

Subscriber = Callable[[ObjectEvent], None]
_Signature = tuple[str, int, int, int, int]


def _md5() -> hashlib._Hash:
    return hashlib.md5(usedforsecurity=False)


class _Clock:
    """Nanosecond timestamps, strictly increasing within this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def next(self) -> int:
        with self._lock:
            self._last = max(time.time_ns(), self._last + 1)
            return self._last

    def observe(self, ns: int) -> None:
        with self._lock:
            self._last = max(self._last, ns)


_CLOCK = _Clock()


class _Recent:
    """A thread-safe mapping that keeps only its `size` most recently set entries."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[object, str] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items

    def get(self, key: object) -> str | None:
        with self._lock:
            return self._items.get(key)

    def set(self, key: object, value: str = "") -> bool:
        """Set `key`; returns whether it was already there."""
        with self._lock:
            known = key in self._items
            self._items[key] = value
            self._items.move_to_end(key)
            if len(self._items) > self._size:
                self._items.popitem(last=False)
            return known

    def discard(self, key: object) -> None:
        with self._lock:
            self._items.pop(key, None)


def check_key(key: str) -> list[str]:
    """The key's path segments; ValueError for a key that is unsafe as a path or names internal state."""
    if not isinstance(key, str) or not key:
        raise ValueError("key must be a non-empty string")
    if key.startswith("/") or "\\" in key or "\x00" in key:
        raise ValueError(f"unsafe key {key!r}: leading '/', backslash or NUL")
    segments = key.split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise ValueError(f"unsafe key {key!r}: empty, '.' or '..' segment")
    if segments[0] == STATE_DIR:
        raise ValueError(f"key {key!r} names the store's internal state")
    return segments


def _sequence_ns(st: os.stat_result) -> int:
    return max(st.st_mtime_ns, st.st_ctime_ns)


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime_ns / 1e9, UTC)


class FolderStore:
    """An `ObjectStore` on a local folder; `bucket` defaults to the folder's name.

    `content_type` is accepted and ignored (a folder keeps no metadata). A key that is a file's "directory"
    elsewhere (`a` and `a/b`) cannot exist in a folder: that put fails with the OS error.
    """

    def __init__(self, root: Path | str, *, bucket: str | None = None) -> None:
        self._root = Path(root).resolve()
        self._tmp = self._root / STATE_DIR / "tmp"
        self._locks = self._root / STATE_DIR / "locks"
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._locks.mkdir(parents=True, exist_ok=True)
        self._bucket = bucket or self._root.name
        self._subscribers: builtins.list[Subscriber] = []
        self._written = _Recent(_RECENT_WRITES)  # (key, etag) of this process's writes
        self._etags = _Recent(_ETAG_CACHE_SIZE)  # (key, inode, size, mtime, ctime) -> md5

    def __repr__(self) -> str:
        return f"FolderStore({str(self._root)!r}, bucket={self._bucket!r})"

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def root(self) -> Path:
        return self._root

    # ---- events -------------------------------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> None:
        """Call `callback` with the event of every successful put, in the writing thread.

        A subscriber's exception reaches the caller of `put`, after the write is visible.
        """
        self._subscribers.append(callback)

    def event_for(self, key: str, *, source: EventSource = "folder") -> ObjectEvent | None:
        """The event describing the file at `key` as it is now; None when there is none."""
        found = self._stat_etag(key, self._path(key))
        return None if found is None else self._event(key, found[1], found[0], source)

    def recently_written(self, key: str, etag: str) -> bool:
        """True when this process wrote exactly (key, etag) among its last writes."""
        return (key, etag) in self._written

    def key_for(self, path: Path | str) -> str | None:
        """The key a file path stands for; None outside the root, in internal state or when unsafe."""
        try:
            relative = Path(os.path.abspath(path)).relative_to(self._root)
        except ValueError:
            return None
        key = relative.as_posix()
        try:
            check_key(key)
        except ValueError:
            return None
        return key

    # ---- ObjectStore ----------------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        try:
            with open(self._path(key), "rb") as f:
                return f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key) from None

    def head(self, key: str) -> ObjectInfo | None:
        found = self._stat_etag(key, self._path(key))
        return None if found is None else ObjectInfo(key, found[1], found[0].st_size, _mtime(found[0]))

    def put(
        self,
        key: str,
        data: bytes,
        *,
        if_none_match: bool = False,
        if_match: str | None = None,
        content_type: str | None = None,
    ) -> ObjectInfo:
        path = self._path(key)
        if if_none_match and if_match is not None:
            raise ValueError("if_none_match and if_match exclude each other")
        digest = _md5()
        digest.update(data)
        etag = digest.hexdigest()
        # Remembered before the write is visible, so the watcher cannot see it first and think it foreign.
        was_recent = self._written.set((key, etag))
        tmp = self._write_temp(data)
        try:
            with self._key_lock(key):
                if if_match is not None:
                    self._check_etag(key, path, if_match.strip('"'))
                seq = _CLOCK.next()
                os.utime(tmp, ns=(seq, seq))
                self._place(key, tmp, path, exclusive=if_none_match)
                st = os.stat(path)
                self._fsync_dir(path.parent)
                _CLOCK.observe(_sequence_ns(st))
                self._etags.set(self._signature(key, st), etag)
        except BaseException:
            if not was_recent:
                self._written.discard((key, etag))
            raise
        finally:
            tmp.unlink(missing_ok=True)
        event = self._event(key, etag, st, "folder")
        for callback in builtins.list(self._subscribers):
            callback(event)
        return ObjectInfo(key, etag, st.st_size, _mtime(st))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Objects whose key starts with `prefix`, in key order; walks only below the prefix's folder."""
        folder, _, name_prefix = prefix.rpartition("/")
        if not folder:
            yield from self._walk(self._root, "", name_prefix)
            return
        segments = check_key(folder)
        yield from self._walk(self._root.joinpath(*segments), folder + "/", name_prefix)

    def delete(self, key: str) -> None:
        path = self._path(key)
        with self._key_lock(key):
            try:
                os.unlink(path)
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                return
        parent = path.parent
        while parent != self._root:
            try:
                parent.rmdir()  # only when empty; a racing put re-creates it (see _place)
            except OSError:
                break
            parent = parent.parent

    # ---- maintenance ----------------------------------------------------------------------------------

    def copy(self, source: str, dest: str, *, content_type: str | None = None) -> ObjectInfo:
        """A copy written like any put (atomic, announced to subscribers); local bytes are cheap to move."""
        return self.put(dest, self.get(source), content_type=content_type)

    def clean_temp(self, max_age_s: float) -> int:
        """Remove temp files older than `max_age_s` (left by killed writers); returns how many.

        `max_age_s` must exceed the longest write in progress, or that write fails.
        """
        cutoff = time.time() - max_age_s
        removed = 0
        with os.scandir(self._tmp) as entries:
            for entry in entries:
                try:
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed

    # ---- internals ------------------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self._root.joinpath(*check_key(key))

    def _event(self, key: str, etag: str, st: os.stat_result, source: EventSource) -> ObjectEvent:
        ns = _sequence_ns(st)
        return ObjectEvent(
            bucket=self._bucket,
            key=key,
            etag=etag,
            size=st.st_size,
            sequencer=f"{ns:016X}",
            event_time=datetime.fromtimestamp(ns / 1e9, UTC),
            source=source,
        )

    def _write_temp(self, data: bytes) -> Path:
        tmp = self._tmp / f"{os.getpid()}-{uuid.uuid4().hex}{_TMP_SUFFIX}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def _place(self, key: str, tmp: Path, path: Path, *, exclusive: bool) -> None:
        """Move the temp file to `path`; a racing delete may remove the parent folder, so retry."""
        for attempt in range(_PLACE_ATTEMPTS):
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                if exclusive:
                    os.link(tmp, path)
                    os.unlink(tmp)  # before the caller's stat: dropping a link changes the ctime
                else:
                    os.replace(tmp, path)
                return
            except FileExistsError:
                raise PreconditionFailed(key, "the key exists") from None
            except FileNotFoundError:
                if attempt == _PLACE_ATTEMPTS - 1:
                    raise

    def _check_etag(self, key: str, path: Path, expected: str) -> None:
        found = self._stat_etag(key, path)
        if found is None:
            raise PreconditionFailed(key, "the key does not exist")
        if found[1] != expected:
            raise PreconditionFailed(key, f"etag is {found[1]}, expected {expected}")

    @staticmethod
    def _fsync_dir(folder: Path) -> None:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @contextmanager
    def _key_lock(self, key: str) -> Iterator[None]:
        """An exclusive flock for the key's stripe, between processes and between threads (one open file
        each). A fixed set of LOCK_STRIPES files, chosen by hashing the key: lock files never pile up."""
        digest = hashlib.sha1(key.encode("utf-8", "surrogateescape"), usedforsecurity=False).hexdigest()
        fd = os.open(self._locks / f"{int(digest[:8], 16) % LOCK_STRIPES:04d}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _walk(self, folder: Path, key_base: str, name_prefix: str = "") -> Iterator[ObjectInfo]:
        try:
            with os.scandir(folder) as scan:
                entries = builtins.list(scan)
        except (FileNotFoundError, NotADirectoryError):
            return
        # Sorting names with a '/' after folders gives key order ('a-b' < 'a/x' < 'a0').
        ordered: builtins.list[tuple[str, str, bool]] = []
        for entry in entries:
            name = entry.name
            if not name.startswith(name_prefix) or "\\" in name or (not key_base and name == STATE_DIR):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    ordered.append((name + "/", entry.path, True))
                elif entry.is_file():
                    ordered.append((name, entry.path, False))
            except OSError:
                continue
        ordered.sort()
        for name, path, is_dir in ordered:
            if is_dir:
                yield from self._walk(Path(path), key_base + name)
                continue
            key = key_base + name
            found = self._stat_etag(key, Path(path))
            if found is not None:
                yield ObjectInfo(key, found[1], found[0].st_size, _mtime(found[0]))

    def _stat_etag(self, key: str, path: Path) -> tuple[os.stat_result, str] | None:
        """The file's stat and md5, hashed only when (inode, size, mtime, ctime) changed since last time."""
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        cached = self._etags.get(self._signature(key, st))
        if cached is not None:
            return st, cached
        try:
            f = open(path, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        with f:
            for _ in range(3):  # a file written in place while hashing: hash it again
                st = os.fstat(f.fileno())
                f.seek(0)
                etag = hashlib.file_digest(f, _md5).hexdigest()
                if self._signature(key, os.fstat(f.fileno())) == self._signature(key, st):
                    self._etags.set(self._signature(key, st), etag)
                    break
        return st, etag

    @staticmethod
    def _signature(key: str, st: os.stat_result) -> _Signature:
        return (key, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
