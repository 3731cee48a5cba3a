"""The file backend's append-only log: framing, segments, group-commit writes, recovery.

Every log record is one frame::

    length (u32 LE) | crc32 of flags+payload (u32 LE) | flags (u8) | payload

flags bit 0: the payload is zstd-compressed; bit 1: the payload is JSON (else MessagePack).
Each frame says how it is encoded, so a store opens under any ``format``/``compression``
setting (the setting applies to what is written next). A record is ``[revision, items]``, one
item per event: ``[1, key, value, create_revision, version, expire_at]`` for a put,
``[2, key]`` for a delete and ``[3, key]`` for an expiry (previous entries are recomputed on
replay). In the JSON format values are base64 text, so they round-trip byte for byte.

Segments are named ``wal-<first revision>.log`` and are zero-filled ahead of the writes
(``PREALLOCATE_BYTES`` at a time, made durable with a full fsync), so each write overwrites
allocated blocks and its ``fdatasync`` has no file size to journal, which roughly halves its
latency. A zero tail after the last record is that preallocated space, not damage; a torn or
corrupt tail of the last segment (a crash in the middle of a write) is cut off on open.
"""

from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgpack
import zstandard
from statekeeper.errors import FailedPreconditionError

from statekeeper_server.engine.storage.backend import Event, EventType

log = logging.getLogger("statekeeper.file")

#: The formats a file store can write.
FORMATS = ("msgpack", "json")
LOCK_NAME = "LOCK"
SEGMENT_PREFIX = "wal-"
SEGMENT_SUFFIX = ".log"
#: How far ahead of the writes a log segment is zero-filled.
PREALLOCATE_BYTES = 4 * 1024 * 1024

_HEADER = struct.Struct("<IIB")
_FLAG_ZSTD = 1
_FLAG_JSON = 2
_MAX_FRAME = 1 << 30
#: The CRC32 of each valid flags byte, where every frame's checksum starts.
_FLAGS_CRC = {flags: zlib.crc32(bytes((flags,))) for flags in range(_FLAG_ZSTD + _FLAG_JSON + 1)}
EVENT_CODES = {EventType.PUT: 1, EventType.DELETE: 2, EventType.EXPIRE: 3}
EVENT_TYPES = {code: kind for kind, code in EVENT_CODES.items()}


class CorruptStoreError(FailedPreconditionError):
    """The store holds damage that is not a torn final write (it needs an operator)."""


class Codec:
    """Encodes log records into frames in one format, optionally compressed."""

    def __init__(self, file_format: str, compression: bool) -> None:
        self.json = file_format == "json"
        self.compressor = zstandard.ZstdCompressor(level=3) if compression else None

    def value(self, data: bytes) -> Any:
        """A value as the format stores it (base64 text in JSON)."""
        return base64.b64encode(data).decode("ascii") if self.json else data

    def record(self, revision: int, events: Sequence[Event]) -> bytes:
        """The framed log record of one revision."""
        items: list[Any] = []
        for event in events:
            entry = event.entry
            if event.type is EventType.PUT and entry is not None:
                value = self.value(entry.value)
                items.append(
                    [1, event.key, value, entry.create_revision, entry.version, entry.expire_at]
                )
            else:
                items.append([EVENT_CODES[event.type], event.key])
        return self.frame([revision, items])

    def frame(self, obj: Any) -> bytes:
        """One framed, checksummed object."""
        if self.json:
            payload = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
            flags = _FLAG_JSON
        else:
            payload = msgpack.packb(obj, use_bin_type=True)
            flags = 0
        if self.compressor is not None:
            payload = self.compressor.compress(payload)
            flags |= _FLAG_ZSTD
        crc = zlib.crc32(payload, _FLAGS_CRC[flags])
        return _HEADER.pack(len(payload), crc, flags) + payload


def value_in(data: Any, is_json: bool) -> bytes:
    """A stored value back as bytes (the inverse of :meth:`Codec.value`)."""
    return base64.b64decode(data) if is_json else bytes(data)


def read_frames(data: bytes) -> tuple[list[tuple[bool, Any, int]], int]:
    """The decoded frames at the start of ``data`` that are whole and intact, each as
    (is_json, object, the offset where the frame starts), and the offset just after the last
    of them."""
    frames: list[tuple[bool, Any, int]] = []
    offset = 0
    decompressor = zstandard.ZstdDecompressor()
    while len(data) - offset >= _HEADER.size:
        length, crc, flags = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        end = start + length
        if length > _MAX_FRAME or end > len(data) or flags & ~(_FLAG_ZSTD | _FLAG_JSON):
            break
        payload = data[start:end]
        if zlib.crc32(payload, _FLAGS_CRC[flags]) != crc:
            break
        try:
            if flags & _FLAG_ZSTD:
                payload = decompressor.decompress(payload)
            is_json = bool(flags & _FLAG_JSON)
            obj = json.loads(payload) if is_json else msgpack.unpackb(payload, raw=False)
        except Exception:
            break
        frames.append((is_json, obj, offset))
        offset = end
    return frames, offset


def fsync_dir(path: Path) -> None:
    """Make the directory's entries (creations, renames, deletions) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def segment_path(base: Path, first_revision: int) -> Path:
    """The path of the segment whose first record may be ``first_revision``."""
    return base / f"{SEGMENT_PREFIX}{first_revision:020d}{SEGMENT_SUFFIX}"


def segments(base: Path) -> list[tuple[int, Path]]:
    """The log segments of a store, oldest first, with the first revision each may hold."""
    found: list[tuple[int, Path]] = []
    for path in base.iterdir():
        name = path.name
        if name.startswith(SEGMENT_PREFIX) and name.endswith(SEGMENT_SUFFIX):
            digits = name[len(SEGMENT_PREFIX) : -len(SEGMENT_SUFFIX)]
            if digits.isdigit():
                found.append((int(digits), path))
    return sorted(found)


def acquire_lock(base: Path) -> int:
    """Hold ``LOCK`` with flock for this process, or fail naming the holder's pid."""
    fd = os.open(base / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise FailedPreconditionError(
            f"the data directory {str(base)!r} is in use by another statekeeper process "
            f"(pid {holder}); stop that process or choose another data directory",
            metadata={"data_dir": str(base), "pid": holder},
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _cut_torn_tail(path: Path, data: bytes, good: int, last: bool) -> int:
    """Truncate a damaged tail of the last segment (returns the new size); damage in an
    earlier segment is not a torn write and raises."""
    if not data[good:].strip(b"\x00"):
        return len(data)  # only preallocated space follows the records
    if not last:
        raise CorruptStoreError(
            f"log segment {str(path)!r} is damaged at byte {good} and is not the last "
            "segment: this is not a torn write; restore the directory from a backup"
        )
    log.warning(
        "dropping a torn or corrupt tail of %d bytes at byte %d of %s", len(data) - good, good, path
    )
    _truncate(path, good)
    return good


def _truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(size)
        handle.flush()
        os.fsync(handle.fileno())


def in_revision_order(
    path: Path, frames: list[tuple[bool, Any, int]], after: int, expected: int
) -> tuple[list[tuple[bool, Any]], int, int | None]:
    """The records of one segment's ``frames`` newer than revision ``after``, as (is_json,
    record), in revision order from ``expected``; the revision expected after them; and the
    offset of the first record left out, if any (None when none is).

    Stores written before the growth of a segment was reserved in commit order can hold one
    commit's records ahead of the commit before it, at the point where the segment grew; those
    are put back in order. Records that follow, at the end of the segment's intact frames, a
    commit that was never written (a crash while the segment grew) were never acknowledged:
    a commit is answered only once every earlier one is durable. They are left out. Any other
    gap is damage, and raises."""
    ordered: list[tuple[bool, Any]] = []
    ahead: dict[int, tuple[bool, Any, int]] = {}
    for is_json, record, offset in frames:
        revision = record[0]
        if revision <= after:
            continue
        if revision > expected:
            ahead[revision] = (is_json, record, offset)
            continue
        if revision < expected:
            raise CorruptStoreError(
                f"log segment {str(path)!r} repeats revision {revision}: restore the "
                "directory from a backup"
            )
        ordered.append((is_json, record))
        expected = revision + 1
        while expected in ahead:
            is_json, record, _ = ahead.pop(expected)
            ordered.append((is_json, record))
            expected += 1
    if not ahead:
        return ordered, expected, None
    left_out = {offset for _, _, offset in ahead.values()}
    if len(left_out) == len(frames) or left_out != {o for _, _, o in frames[-len(ahead) :]}:
        raise CorruptStoreError(
            f"log segment {str(path)!r} jumps from revision {expected - 1} to "
            f"{min(ahead)}: restore the directory from a backup"
        )
    return ordered, expected, min(left_out)


class Log:
    """The open log of a store directory: recovery on open, then appends and rotations.

    Appends and rotations run in the backend's log threads. Several appends may be in flight
    at once: each takes its place in the log in commit order on the event loop
    (:meth:`reserve`), then writes there and fdatasyncs in a thread of its own
    (:meth:`write_at`); ``lock`` guards the file descriptor, and a rotation or a close waits
    for the appends in flight. The fdatasyncs run one at a time (:meth:`_sync`).

    An ``fdatasync`` makes durable every write to the file that completed before it began, not
    only its own, so each append says how far the log is durable once it returns: the newest
    commit number such that it and every earlier one had been written when its fdatasync
    started (commit numbers are given in log order, from 1). An append that a finished
    fdatasync already covered needs no fdatasync of its own.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.lock = threading.Condition()
        self.fd: int | None = None
        self.segment_first = 0
        self.write_offset = 0
        self.allocated = 0
        #: Bytes of intact records in the segments written since the last compaction.
        self.bytes = 0
        self._writing = 0
        #: The newest commit number written with every earlier one, and those written past it.
        self._written_through = 0
        self._written: set[int] = set()
        #: Held by the one fdatasync in progress; the newest commit a finished one covered.
        self._sync_lock = threading.Lock()
        self._synced_through = 0

    def recover(self, after: int) -> Iterator[tuple[Path, Any, bool]]:
        """Yield every intact record newer than revision ``after`` as (segment, record,
        is_json), in revision order (:func:`in_revision_order`), cutting a torn tail of the
        last segment and any records there that were never acknowledged; then open the last
        segment."""
        found = segments(self.base)
        tail_end = 0
        expected = after + 1
        for position, (_, path) in enumerate(found):
            last = position == len(found) - 1
            data = path.read_bytes()
            frames, good = read_frames(data)
            tail_end = _cut_torn_tail(path, data, good, last)
            records, expected, left_out = in_revision_order(path, frames, after, expected)
            if left_out is not None:
                if not last:
                    raise CorruptStoreError(
                        f"log segment {str(path)!r} has records after a gap and is not the"
                        " last segment: restore the directory from a backup"
                    )
                log.warning(
                    "dropping %d bytes of records at byte %d of %s that follow a commit"
                    " never written (a crash while the segment grew; they were never"
                    " acknowledged)",
                    good - left_out,
                    left_out,
                    path,
                )
                _truncate(path, left_out)
                good = tail_end = left_out
            for is_json, record in records:
                yield path, record, is_json
            self.bytes += good
            self.write_offset = good
        if found:
            self.segment_first, current = found[-1]
            self.allocated = tail_end
            self.fd = os.open(current, os.O_RDWR | os.O_CREAT, 0o644)

    def start(self, next_revision: int) -> None:
        """Open a first segment when recovery found none (a new or migrated store)."""
        if self.fd is None:
            self.segment_first = next_revision
            path = segment_path(self.base, next_revision)
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            self.write_offset = self.allocated = 0
        fsync_dir(self.base)

    def reserve(self, size: int, grow: bool = False) -> int | None:
        """Take the next ``size`` bytes of the segment for a write (the event loop, in commit
        order) and return their offset. Bytes past the zero-filled space are taken only when
        ``grow`` (no other write may be in flight then: :meth:`write_at` grows the segment
        first); otherwise that gives None."""
        offset = self.write_offset
        if offset + size > self.allocated and not grow:
            return None
        self.write_offset = offset + size
        self.bytes += size
        return offset

    def write_at(self, offset: int, data: bytes, commit: int) -> int:
        """Write commit number ``commit``'s ``data`` at its reserved ``offset`` (growing the
        segment first when it lies past the zero-filled space) and fdatasync (a log thread);
        returns the commit number through which the log is durable now (at
        least every commit before this one that had been written when the fdatasync began)."""
        with self.lock:
            fd = self.fd
            if fd is None:
                raise OSError("the log is closed")
            if offset + len(data) > self.allocated:
                self._extend(fd, offset + len(data))
            self._writing += 1
        try:
            view = memoryview(data)
            while view:
                written = os.pwrite(fd, view, offset)
                view = view[written:]
                offset += written
            with self.lock:
                self._written.add(commit)
                while self._written_through + 1 in self._written:
                    self._written_through += 1
                    self._written.discard(self._written_through)
            return self._sync(fd, commit)
        finally:
            with self.lock:
                self._writing -= 1
                self.lock.notify_all()

    def _sync(self, fd: int, commit: int) -> int:
        """fdatasync unless a finished one already covered ``commit``; the commit number
        through which the log is durable now.

        One fdatasync at a time: of two overlapping fdatasyncs of one file, the kernel reports
        a failed write-back to only one, so the other could return success for a write that
        was lost. Writes still overlap, and an append waiting here is often covered by the
        fdatasync it waited for and needs none of its own."""
        with self._sync_lock:
            if self._synced_through >= commit:
                return self._synced_through
            with self.lock:
                covered = self._written_through
            os.fdatasync(fd)
            self._synced_through = max(self._synced_through, covered)
            return covered

    def _extend(self, fd: int, needed: int) -> None:
        """Zero-fill the segment up to at least ``needed`` bytes and make that durable."""
        size = max(needed, self.allocated + PREALLOCATE_BYTES)
        zeros = bytes(min(size - self.allocated, 1 << 20))
        offset = self.allocated
        while offset < size:
            offset += os.pwrite(fd, zeros[: size - offset], offset)
        os.fsync(fd)
        self.allocated = size

    def rotate(self, first_revision: int) -> None:
        """Continue the log in a new segment starting at ``first_revision`` (log thread)."""
        with self.lock:
            self.lock.wait_for(lambda: not self._writing)
            if self.fd is None or self.segment_first == first_revision:
                return
            fd = os.open(segment_path(self.base, first_revision), os.O_RDWR | os.O_CREAT, 0o644)
            fsync_dir(self.base)
            os.close(self.fd)
            self.fd = fd
            self.segment_first = first_revision
            self.write_offset = self.allocated = self.bytes = 0
            self._extend(fd, PREALLOCATE_BYTES)

    def drop_before(self, first_revision: int) -> None:
        """Delete the segments older than the one starting at ``first_revision``."""
        removed = False
        for first, path in segments(self.base):
            if first < first_revision:
                path.unlink()
                removed = True
        if removed:
            fsync_dir(self.base)

    def close(self) -> None:
        """Close the segment once no write is in flight (idempotent)."""
        with self.lock:
            self.lock.wait_for(lambda: not self._writing)
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None
