"""The file backend: durable single-node storage under one directory.

Design (see also docs/backends.md):

* **Append-only log with group commit** (:mod:`~statekeeper_server.engine.storage.file_log`).
  A transaction is planned synchronously against the durable state plus the writes still
  waiting for the disk (the "pending" overlay), so its compare-and-set checks and its revision
  account for every earlier transaction. Planning is one synchronous step of the event loop, so
  no two plans interleave inside the process (the same serialization an asyncio lock would
  give, without its cost). The record is encoded once and queued; one writer task hands
  everything queued to the log thread, which writes it in one ``write`` plus one ``fdatasync``
  (group commit) and then commits it to the index in one SQLite transaction; only then is each
  transaction acknowledged. While one group is on its way to the disk the next one gathers.
* **The index in SQLite** (:mod:`~statekeeper_server.engine.storage.file_index`, the file
  ``snapshot.dat``): the live entries, the retained watch history and the store's figures, read
  in place by every read, scan and replaying watch. Nothing per key is held in memory, so a
  store opens in the time it takes to open a database file and replay the short log tail, and
  memory follows the working set, not the data size. The index only ever holds *durable* state.
* **Watch** (:mod:`~statekeeper_server.engine.storage.file_watch`): current watchers read the
  newest revisions from memory; a start revision further back streams from the index's history
  in bounded windows.
* **Expiry through the log.** TTL expiry is a logged record (``EXPIRE`` events at a revision of
  their own), committed by a background task without any client reading the key, so the
  revisions after a restart are identical to those before it. Reads hide entries whose expiry
  time has passed before the record is durable.
* **Compaction.** When the log since the last compaction holds ``compact_bytes``, the log
  rotates to a new segment, SQLite's WAL is synced (so the index holds everything the older
  segments do, even across a power loss), the older segments are deleted and SQLite's WAL is
  checkpointed, all off the event loop. Its cost does not grow with the store.
* **Recovery.** Opening migrates a snapshot of an earlier format
  (:mod:`~statekeeper_server.engine.storage.file_migrate`), opens the index and replays the
  log records after the index's revision into it; a torn or corrupt tail of the last segment
  is dropped with a warning (it was never acknowledged).
* **One process per directory.** ``LOCK`` is held with ``flock`` while the store is open; a
  second process (or a second open in this process) fails with a clear error.

Directory layout: ``LOCK``, ``snapshot.dat`` (with SQLite's ``snapshot.dat-wal`` and
``snapshot.dat-shm`` while open) and ``wal-<first revision>.log`` segments.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from statekeeper.errors import ConflictError, InvalidArgumentError, UnavailableError

from statekeeper_server.engine.storage.backend import (
    DEFAULT_HISTORY_BYTES,
    DEFAULT_HISTORY_REVISIONS,
    Backend,
    BackendStats,
    BatchItem,
    BatchOutcome,
    Compare,
    Entry,
    Event,
    EventType,
    HistoryPage,
    KeyRange,
    Operation,
    Read,
    ScanPage,
    TxnResult,
    WatchUpdate,
    future_revision,
)
from statekeeper_server.engine.storage.file_commit import COMMITS_IN_FLIGHT, Commits, Queued
from statekeeper_server.engine.storage.file_index import SNAPSHOT_NAME, FileIndex, install_new_index
from statekeeper_server.engine.storage.file_log import (
    EVENT_TYPES,
    FORMATS,
    Codec,
    CorruptStoreError,
    Log,
    acquire_lock,
    read_frames,
    value_in,
)
from statekeeper_server.engine.storage.file_memtable import Memtable, Row
from statekeeper_server.engine.storage.file_migrate import migrate_snapshot, needs_migration
from statekeeper_server.engine.storage.file_reads import DurableReader, live
from statekeeper_server.engine.storage.file_watch import Feed
from statekeeper_server.engine.storage.glob import GlobPattern
from statekeeper_server.engine.storage.memory import MemoryBackend, plan_events

__all__ = ["FORMATS", "CorruptStoreError", "FileBackend", "read_frames"]

log = logging.getLogger("statekeeper.file")

#: Compact once the log since the last compaction holds this many bytes.
DEFAULT_COMPACT_BYTES = 4 * 1024 * 1024
#: Writes wait for a running flush once the log has grown this many compaction sizes meanwhile.
BACKLOG = 4
#: Expiries committed per EXPIRE revision at most.
EXPIRY_BATCH = 1000
#: Log records replayed into the index per SQLite transaction on open.
REPLAY_BATCH = 1000


def _consume(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _open_index(base: Path) -> FileIndex:
    """The directory's index, migrating an earlier snapshot or creating an empty one first."""
    for leftover in (".tmp", ".tmp-journal"):
        with contextlib.suppress(FileNotFoundError):
            (base / (SNAPSHOT_NAME + leftover)).unlink()
    if needs_migration(base):
        migrate_snapshot(base)
    elif not (base / SNAPSHOT_NAME).exists():
        install_new_index(base)
    return FileIndex(base)


class FileBackend(Backend):
    """Durable single-node storage under ``base_path`` (see the module docstring).

    ``format`` is ``"msgpack"`` or ``"json"`` (the log's record encoding); ``compression``
    compresses every log record with zstd; ``history_revisions`` and ``history_bytes`` bound the
    watch history (see :mod:`.file_memtable`); ``compact_bytes`` triggers a compaction.
    """

    name = "file"

    def __init__(
        self,
        base_path: str | os.PathLike[str] = "./state",
        format: str = "msgpack",
        compression: bool = False,
        history_revisions: int = DEFAULT_HISTORY_REVISIONS,
        *,
        history_bytes: int = DEFAULT_HISTORY_BYTES,
        compact_bytes: int = DEFAULT_COMPACT_BYTES,
    ) -> None:
        if format not in FORMATS:
            raise InvalidArgumentError(
                f"format must be one of {', '.join(FORMATS)}, got {format!r}"
            )
        if history_revisions < 1:
            raise ValueError("history_revisions must be at least 1")
        self.path = Path(base_path)
        self.format = format
        self.compression = compression
        self._codec = Codec(format, compression)
        self._compact_bytes = compact_bytes
        self._history_revisions = history_revisions
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = acquire_lock(self.path)
        self._log = Log(self.path)
        self._index: FileIndex | None = None
        try:
            self._index = index = _open_index(self.path)
            self._memtable = Memtable((history_revisions, history_bytes), index)
            self._reader = DurableReader(index, self._memtable)
            self._durable_revision = self._replay(index)
        except BaseException:
            self._release()
            raise
        index.feed = Feed(index, self._memtable, self._durable_revision)
        self._pending: dict[str, tuple[int, Entry | None]] = {}
        self._pending_revision = self._durable_revision
        self._last_future: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._compaction: asyncio.Task[None] | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._reaper_wakeup: asyncio.Event | None = None
        self._next_expiry: float | None = None
        self._expiry_stale = True  # computed by the reaper once it runs
        self._compact_lock = asyncio.Lock()
        self._executor = ThreadPoolExecutor(COMMITS_IN_FLIGHT, thread_name_prefix="statekeeper-log")
        self._commits = Commits(self._log, self._executor)
        self._failed: str | None = None
        self._closed = False
        self._started = False
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop()
            self._start()  # entries that expired while the store was closed

    # -- opening ----------------------------------------------------------------------------

    def _replay(self, index: FileIndex) -> int:
        """Apply the log records after the index's revision to the memtable (cutting a torn
        tail); returns the newest durable revision."""
        revision = index.revision
        for path, record, is_json in self._log.recover(revision):
            record_revision, items = record
            if record_revision != revision + 1:
                raise CorruptStoreError(
                    f"log segment {str(path)!r} jumps from revision {revision} to "
                    f"{record_revision}: restore the directory from a backup"
                )
            revision = record_revision
            before = self._reader.stored_many({item[1] for item in items})
            events = [self._replayed(revision, item, is_json, before[item[1]]) for item in items]
            self._memtable.apply(revision, events)
        self._log.start(revision + 1)
        return revision

    @staticmethod
    def _replayed(revision: int, item: Any, is_json: bool, prev: Entry | None) -> Event:
        kind = EVENT_TYPES[item[0]]
        key = item[1]
        if kind is not EventType.PUT:
            return Event(kind, key, revision, None, prev)
        _, _, value, create_revision, version, expire_at = item
        entry = Entry(key, value_in(value, is_json), create_revision, revision, version, expire_at)
        return Event(kind, key, revision, entry, prev)

    # -- state checks -----------------------------------------------------------------------

    @property
    def index(self) -> FileIndex:
        """The open index (the store's SQLite database)."""
        assert self._index is not None
        return self._index

    @property
    def _feed(self) -> Feed:
        feed = self.index.feed
        assert feed is not None
        return feed

    @property
    def unusable(self) -> bool:
        """True once the store is closed or its log could not be written."""
        return self._closed or self._failed is not None

    def _check_usable(self) -> None:
        if self._closed:
            raise UnavailableError(f"the file store at {str(self.path)!r} is closed")
        if self._failed is not None:
            raise UnavailableError(self._failed)
        if not self._started:
            self._start()

    def _start(self) -> None:
        """Bind the expiry task (and a compaction that is due) to the running loop."""
        self._started = True
        self._run_reaper()
        self._maybe_compact()  # a long log tail replayed on open goes into the index now

    def _run_reaper(self) -> None:
        """Start the expiry task unless it runs (it ends when nothing is due to expire)."""
        if self._reaper is None or self._reaper.done():
            self._reaper_wakeup = asyncio.Event()
            self._reaper = asyncio.get_running_loop().create_task(
                self._reap(self._reaper_wakeup), name="statekeeper-file-reaper"
            )

    # -- planning ---------------------------------------------------------------------------

    def _lookup(self, key: str) -> Entry | None:
        pending = self._pending.get(key)
        if pending is not None:
            return pending[1]
        return self._reader.stored(key)

    def _plan(self, compares: Sequence[Compare], operations: Sequence[Operation]) -> list[Event]:
        self._plan_expiries(time.time())
        if len(operations) + len(compares) == 1:
            return plan_events(compares, operations, self._lookup, self._pending_revision + 1)
        keys = {item.key for item in (*compares, *operations) if item.key not in self._pending}
        known = self._reader.stored_many(keys)  # one read of the index for all the keys

        def lookup(key: str) -> Entry | None:
            return known[key] if key in known else self._lookup(key)

        return plan_events(compares, operations, lookup, self._pending_revision + 1)

    def _submit(self, revision: int, events: list[Event]) -> asyncio.Future[None]:
        """Queue a planned record for the next group commit."""
        frame = self._codec.record(revision, events)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        future.add_done_callback(_consume)
        self._commits.add(Queued(revision, events, frame, future))
        self._pending_revision = revision
        for event in events:
            self._pending[event.key] = (revision, event.entry)
            if event.entry is not None and event.entry.expire_at is not None:
                self._note_expiry(event.entry.expire_at)
        self._last_future = future
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_loop(), name="statekeeper-file-writer")
        return future

    async def _barrier(self) -> None:
        """Wait until everything queued so far is durable."""
        future = self._last_future
        if future is not None and not future.done():
            await asyncio.shield(future)
        elif future is not None:
            future.result()

    # -- writing ----------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        commits = self._commits
        while commits.queue and self._failed is None:
            await self._catch_up()
            async with commits.lock:
                try:
                    while (not self._behind() and commits.start()) or commits.in_flight:
                        for batch in await commits.finished():
                            self._committed(batch)
                except BaseException as error:
                    self._fail(error)
                    if isinstance(error, asyncio.CancelledError):
                        raise
                    return

    def _committed(self, batch: list[Queued]) -> None:
        """A group commit is durable: its records become visible, its writers are answered."""
        for item in batch:
            self._memtable.apply(item.revision, item.events)
        self._durable_revision = batch[-1].revision
        self._feed.publish([(item.revision, item.events) for item in batch])
        self._forget_durable()
        for item in batch:
            if not item.future.done():
                item.future.set_result(None)
        self._maybe_compact()

    def _behind(self) -> bool:
        """True when the log has grown ``BACKLOG`` times past the compaction size while a
        flush runs: writes then wait for it, so the memtable (and the replay after a crash)
        stays bounded however fast writes come."""
        compaction = self._compaction
        running = compaction is not None and not compaction.done()
        return running and self._log.bytes >= BACKLOG * self._compact_bytes

    async def _catch_up(self) -> None:
        """Let a running flush finish first when the writes are :meth:`_behind` it."""
        compaction = self._compaction
        if compaction is not None and self._behind():
            with contextlib.suppress(Exception):
                await asyncio.shield(compaction)

    def _forget_durable(self) -> None:
        """Drop the pending overlay's writes that the index now holds."""
        if self._pending_revision == self._durable_revision:
            self._pending.clear()
            return
        durable = self._durable_revision
        for key in [k for k, (r, _) in self._pending.items() if r <= durable]:
            del self._pending[key]

    def _fail(self, error: BaseException) -> None:
        self._failed = (
            f"the file store at {str(self.path)!r} could not write its log ({error!r}); "
            "restart the server to recover from the log"
        )
        log.error("%s", self._failed)
        for item in self._commits.take_all():
            if not item.future.done():
                item.future.set_exception(UnavailableError(self._failed))
        self._pending.clear()
        self._pending_revision = self._durable_revision

    # -- compaction -------------------------------------------------------------------------

    def _maybe_compact(self) -> None:
        if self._compaction is not None and not self._compaction.done():
            return
        if self._log.bytes >= self._compact_bytes and not self.unusable:
            self._compaction = asyncio.get_running_loop().create_task(
                self._compact(), name="statekeeper-file-compaction"
            )

    async def compact(self) -> None:
        """Flush the memtable into the index and drop the log segments it covers, now."""
        self._check_usable()
        await self._compact()

    async def _compact(self) -> None:
        loop = asyncio.get_running_loop()
        async with self._compact_lock:
            try:
                async with self._commits.held():  # none in flight: the memtable is durable
                    if self.unusable:
                        return
                    through = self._durable_revision
                    await loop.run_in_executor(self._executor, self._log.rotate, through + 1)
                    memtable = self._memtable
                    state, history = memtable.snapshot()
                    figures = (through, memtable.compacted_through, memtable.keys, memtable.bytes)
                await asyncio.to_thread(self._flush, state, history, figures)
            except (OSError, sqlite3.Error) as error:
                log.error("compaction of %s failed (the log keeps it all): %s", self.path, error)
                return
            self._memtable.prune(through)

    def _flush(
        self,
        state: dict[str, Row],
        history: list[tuple[int, tuple[Any, ...]]],
        figures: tuple[int, int, int, int],
    ) -> None:
        """Commit the memtable's snapshot to the index durably, then delete the log segments
        it covers (a housekeeping thread)."""
        self.index.flush(state, history, figures)
        self._log.drop_before(figures[0] + 1)

    # -- expiry -----------------------------------------------------------------------------

    def _note_expiry(self, expire_at: float) -> None:
        if self._next_expiry is None or expire_at < self._next_expiry:
            self._next_expiry = expire_at
            if self._reaper_wakeup is not None:
                self._reaper_wakeup.set()
        if self._started:
            self._run_reaper()

    def _plan_expiries(self, now: float) -> None:
        """Queue one EXPIRE record for (a bounded batch of) the entries that are due."""
        deadline = self._next_expiry
        if not self._expiry_stale and (deadline is None or deadline > now):
            return
        revision = self._pending_revision + 1
        events: list[Event] = []
        seen: set[str] = set()
        due = itertools.takewhile(lambda item: item[2] <= now, self._stored_expiries())
        stored = ((key, mod_revision) for key, mod_revision, _ in due)
        recent = self._memtable.pop_due(now, EXPIRY_BATCH)
        for key, mod_revision in itertools.chain(recent, stored):
            if len(events) == EXPIRY_BATCH:
                break
            current = self._lookup(key)
            if current is not None and current.mod_revision == mod_revision and key not in seen:
                seen.add(key)
                events.append(Event(EventType.EXPIRE, key, revision, None, current))
        self._next_expiry = None
        self._expiry_stale = True  # the reaper recomputes it once these are durable
        if self._reaper_wakeup is not None:
            self._reaper_wakeup.set()
        if self._started:
            self._run_reaper()
        if events:
            self._submit(revision, events)

    def _stored_expiries(self) -> Iterator[tuple[str, int, float]]:
        """The index's entries with an expiry time, earliest first, that the memtable does
        not override."""
        for key, mod_revision, expire_at in self.index.expiring():
            if not self._memtable.lookup(key)[0]:
                yield key, mod_revision, expire_at

    def _earliest_expiry(self) -> float | None:
        times = [
            entry.expire_at
            for _, entry in self._pending.values()
            if entry is not None and entry.expire_at is not None
        ]
        stored = next(self._stored_expiries(), None)
        if stored is not None:
            times.append(stored[2])
        for known in (self._memtable.next_expiry(), self._next_expiry):
            if known is not None:
                times.append(known)
        return min(times, default=None)

    async def _reap(self, wakeup: asyncio.Event) -> None:
        """Commit expiries when they fall due, without any client reading the keys."""
        while not self.unusable:
            try:
                if self._expiry_stale:
                    await self._barrier()
                    self._expiry_stale = False
                    self._next_expiry = self._earliest_expiry()
            except Exception as error:
                log.warning("could not commit expiries: %s", error)
                return
            deadline, now = self._next_expiry, time.time()
            if deadline is None:
                return  # nothing expires: the next write with a TTL starts the task again
            if deadline <= now:
                self._plan_expiries(now)
                continue
            wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), deadline - now)

    async def expire_due(self) -> None:
        """Commit the expiries that are due now, through the log."""
        if self.unusable:
            return
        self._plan_expiries(time.time())
        await self._barrier()

    # -- Backend ----------------------------------------------------------------------------

    async def get(self, key: str) -> Entry | None:
        """The live, durable entry under ``key``, or None."""
        self._check_usable()
        return live(self._reader.stored(key), time.time())

    async def read(self, key: str) -> tuple[Entry | None, int]:
        """The live entry under ``key`` and the store revision (one synchronous step)."""
        self._check_usable()
        return live(self._reader.stored(key), time.time()), self._durable_revision

    async def txn(self, compares: Sequence[Compare], operations: Sequence[Operation]) -> TxnResult:
        """Plan against durable plus pending state, queue, and return once on disk."""
        return await self.stage(compares, operations)

    def stage(
        self, compares: Sequence[Compare], operations: Sequence[Operation]
    ) -> Awaitable[TxnResult]:
        """Plan one transaction now (in call order with every other) and queue it for the next
        group commit; the returned awaitable gives its result once it is on disk, or raises its
        ConflictError once everything queued before it is. Staging several transactions before
        awaiting any commits them all in one group commit (one write and one fsync)."""
        self._check_usable()
        try:
            events = self._plan(compares, operations)
        except ConflictError as error:
            return self._after_barrier(error)  # never report a conflict with a pending write
        if not events:
            return self._after_barrier(None, tuple(None for _ in operations))
        revision = events[0].revision
        result = TxnResult(revision, MemoryBackend.results_of(operations, events))
        return self._durable(self._submit(revision, events), result)

    async def _durable(self, future: asyncio.Future[None], result: TxnResult) -> TxnResult:
        await asyncio.shield(future)
        return result

    async def _after_barrier(
        self, error: ConflictError | None, results: tuple[None, ...] = ()
    ) -> TxnResult:
        await self._barrier()
        if error is not None:
            raise error
        return TxnResult(self._durable_revision, results)

    async def batch(self, items: Sequence[BatchItem]) -> list[BatchOutcome]:
        """Plan every item in one synchronous step against durable plus pending state (a read
        sees the items before it, each transaction gets a revision of its own), queue the
        records together, and answer once they are on disk: one group commit for the batch."""
        self._check_usable()
        now = time.time()
        outcomes: list[BatchOutcome] = []
        for item in items:
            if isinstance(item, Read):
                entry = self._lookup(item.key)
                if entry is not None and entry.expire_at is not None and entry.expire_at <= now:
                    entry = None
                outcomes.append((entry, self._pending_revision))
                continue
            try:
                events = self._plan(item.compares, item.operations)
            except ConflictError as error:
                outcomes.append(error)
                continue
            if events:
                self._submit(events[0].revision, events)
                results = MemoryBackend.results_of(item.operations, events)
            else:
                results = tuple(None for _ in item.operations)
            outcomes.append(TxnResult(self._pending_revision, results))
        try:
            await self._barrier()
        except UnavailableError as error:
            return [error for _ in items]
        return outcomes

    async def scan(
        self,
        span: KeyRange,
        *,
        after: str | None = None,
        reverse: bool = False,
        limit: int = 100,
        revision: int = 0,
        keys_only: bool = False,
        max_bytes: int | None = None,
    ) -> ScanPage:
        """Live, durable entries of ``span``, now or at an earlier revision (rebuilt from the
        retained history); a page examines a bounded number of entries."""
        self._check_usable()
        if revision > self._durable_revision:
            raise future_revision(revision, self._durable_revision)
        revisions = (revision, self._durable_revision)
        return self._reader.scan(span, after, reverse, limit, revisions, keys_only, max_bytes)

    def watch(
        self,
        prefix: str,
        pattern: GlobPattern | None = None,
        *,
        start_revision: int = 0,
        progress_interval: float | None = None,
    ) -> AsyncIterator[WatchUpdate]:
        """Durable changes only, from the feed (recent ones) or the index (older ones)."""
        self._check_usable()
        return self.index.watch(
            prefix, pattern, start_revision=start_revision, progress_interval=progress_interval
        )

    async def history(self, span: KeyRange, first: int, last: int, limit: int) -> HistoryPage:
        """Durable changes only, from the index's retained history."""
        self._check_usable()
        return await self._feed.history(span, first, last, limit)

    async def revision(self) -> int:
        """The newest durable revision."""
        return self._durable_revision

    async def stats(self) -> BackendStats:
        """Sizes and revisions after committing due expiries."""
        self._check_usable()
        await self.expire_due()
        return BackendStats(
            keys=self._memtable.keys,
            bytes=self._memtable.bytes,
            revision=self._durable_revision,
            oldest_revision=self._memtable.compacted_through + 1,
            backend=self.name,
        )

    async def close(self) -> None:
        """Finish queued writes and a running compaction, then release the directory."""
        if self._closed:
            return
        self._closed = True
        for task in (self._writer, self._compaction):
            if task is not None and not task.done():
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.shield(task)
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._reaper
        if self._index is not None and self._index.feed is not None:
            self._index.feed.close()
        self._release()
        self._executor.shutdown(wait=False)

    def rebind(self) -> None:
        """Forget the old loop's tasks, locks and futures (everything they wrote is durable: a
        write is acknowledged only then); the log, the index and the lock stay open."""
        self._feed.rebind()
        self._writer = None
        self._compaction = None
        self._reaper = None
        self._reaper_wakeup = None
        self._last_future = None
        self._commits.rebind()
        self._compact_lock = asyncio.Lock()
        self._started = False

    def discard(self) -> None:
        """Release the log, the index and the directory lock synchronously (the loop is gone)."""
        self._closed = True
        self._release()
        self._executor.shutdown(wait=False)

    def _release(self) -> None:
        self._log.close()
        if self._index is not None:
            self._index.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
