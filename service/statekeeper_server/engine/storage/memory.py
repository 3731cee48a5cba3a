"""The memory backend: the whole Backend contract in one process, nothing persisted.

All state changes happen synchronously inside one event loop step, so every transaction is
atomic with respect to every other coroutine of the process. The file backend reuses this
class as its in-memory index (see :mod:`statekeeper_server.engine.storage.file`).
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
import time
from collections.abc import AsyncIterator, Callable, Sequence

from statekeeper_server.engine.storage.backend import (
    DEFAULT_HISTORY_BYTES,
    DEFAULT_HISTORY_REVISIONS,
    SCAN_BUDGET,
    Backend,
    BackendStats,
    Compare,
    Delete,
    Entry,
    Event,
    EventType,
    KeyRange,
    Operation,
    Page,
    Put,
    ScanPage,
    TxnResult,
    WatchUpdate,
    compacted_error,
    conflict,
    events_size,
    future_revision,
    key_filter,
    range_span,
)
from statekeeper_server.engine.storage.glob import GlobPattern
from statekeeper_server.engine.storage.keytable import KeyTable


def plan_events(
    compares: Sequence[Compare],
    operations: Sequence[Operation],
    lookup: Callable[[str], Entry | None],
    revision: int,
) -> list[Event]:
    """Check ``compares`` against the live entries ``lookup`` returns and turn ``operations``
    into the events they would commit at ``revision``; raises ConflictError on a failed
    comparison. A delete of a missing key makes no event."""
    for compare in compares:
        current = lookup(compare.key)
        actual = current.mod_revision if current is not None else 0
        if actual != compare.mod_revision:
            raise conflict(compare.key, compare.mod_revision, actual)
    events: list[Event] = []
    for operation in operations:
        prev = lookup(operation.key)
        if isinstance(operation, Put):
            entry = Entry(
                key=operation.key,
                value=operation.value,
                create_revision=prev.create_revision if prev is not None else revision,
                mod_revision=revision,
                version=prev.version + 1 if prev is not None else 1,
                expire_at=operation.expire_at,
            )
            events.append(Event(EventType.PUT, operation.key, revision, entry, prev))
        elif prev is not None:
            events.append(Event(EventType.DELETE, operation.key, revision, None, prev))
    return events


class MemoryBackend(Backend):
    """Fast, no persistence: data is lost on restart. Best for development and tests.

    ``history_revisions`` and ``history_bytes`` (see
    :data:`~statekeeper_server.engine.storage.backend.DEFAULT_HISTORY_BYTES`; 0: none) bound the
    change history kept for watchers: a watcher that falls further behind gets
    :class:`~statekeeper.errors.HistoryCompactedError`.
    """

    name = "memory"
    in_process = True

    def __init__(
        self,
        history_revisions: int = DEFAULT_HISTORY_REVISIONS,
        history_bytes: int = DEFAULT_HISTORY_BYTES,
    ) -> None:
        if history_revisions < 1:
            raise ValueError("history_revisions must be at least 1")
        if history_bytes < 0:
            raise ValueError("history_bytes must not be negative")
        self._history_revisions = history_revisions
        self._history_bytes_limit = history_bytes
        #: The events_size() of each retained history item, and their sum.
        self._history_sizes: list[int] = []
        self._history_bytes = 0
        self._table = KeyTable()
        self._revision = 0
        self._compacted_through = 0
        self._history: list[tuple[int, tuple[Event, ...]]] = []
        self._expiry_heap: list[tuple[float, str, int]] = []
        self._commit_waiter: asyncio.Future[None] | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._reaper_wakeup: asyncio.Event | None = None
        self._closed = False

    # -- state changes -------------------------------------------------------------------

    def apply(self, revision: int, events: Sequence[Event]) -> None:
        """Apply already-decided events at ``revision`` (used by persistent backends on replay
        and after their own commit); keeps keys, sizes, expiry and history consistent."""
        table = self._table
        for event in events:
            if event.type is EventType.PUT:
                entry = event.entry
                assert entry is not None
                table.put(entry)
                if entry.expire_at is not None:
                    heapq.heappush(
                        self._expiry_heap, (entry.expire_at, entry.key, entry.mod_revision)
                    )
                    self._wake_reaper()
            elif event.key in table:
                table.remove(event.key)
        self._revision = max(self._revision, revision)
        if events:
            self._history.append((revision, tuple(events)))
            self._history_sizes.append(events_size(events))
            self._history_bytes += self._history_sizes[-1]
            self._trim_history()
            self._notify()

    def _trim_history(self) -> None:
        # Trim in batches (a quarter of a bound) so a commit does not shift the lists each time:
        # down to the revision bound once a quarter over it, and to three quarters of the byte
        # bound once over it; the newest revision always stays.
        cut = 0
        excess = len(self._history) - self._history_revisions
        if excess > 0 and excess >= self._history_revisions // 4:
            cut = excess
        limit = self._history_bytes_limit
        if limit and self._history_bytes > limit:
            goal = self._history_bytes - limit * 3 // 4
            freed = sum(self._history_sizes[:cut])
            while freed < goal and cut < len(self._history) - 1:
                freed += self._history_sizes[cut]
                cut += 1
        if cut:
            self._compacted_through = self._history[cut - 1][0]
            self._history_bytes -= sum(self._history_sizes[:cut])
            del self._history[:cut]
            del self._history_sizes[:cut]

    def restore(
        self,
        entries: Sequence[Entry],
        revision: int,
        compacted_through: int,
        history: Sequence[tuple[int, tuple[Event, ...]]] = (),
    ) -> None:
        """Load a persisted state (a snapshot) into an empty store: ``entries`` in key order
        as of ``revision``, plus the retained change history after ``compacted_through``."""
        assert not self._table and not self._history, "restore() needs an empty store"
        self._table.load(entries)
        for entry in entries:
            if entry.expire_at is not None:
                self._expiry_heap.append((entry.expire_at, entry.key, entry.mod_revision))
        heapq.heapify(self._expiry_heap)
        self._history = list(history)
        self._history_sizes = [events_size(events) for _, events in self._history]
        self._history_bytes = sum(self._history_sizes)
        self._revision = revision
        self._compacted_through = compacted_through
        self._trim_history()

    def history_items(self) -> list[tuple[int, tuple[Event, ...]]]:
        """A copy of the retained change history, oldest first (for snapshots)."""
        return list(self._history)

    @property
    def compacted_through(self) -> int:
        """The newest revision whose history is gone (0: the whole history is retained)."""
        return self._compacted_through

    def set_compacted_through(self, revision: int) -> None:
        """Record that history up to ``revision`` is gone (after loading a snapshot)."""
        self._compacted_through = max(self._compacted_through, revision)
        self._revision = max(self._revision, revision)

    def _notify(self) -> None:
        waiter = self._commit_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._commit_waiter = None

    def plan(self, compares: Sequence[Compare], operations: Sequence[Operation]) -> list[Event]:
        """Check ``compares`` and turn ``operations`` into the events they would commit at the
        next revision, without applying them; raises ConflictError on a failed comparison."""
        self.expire_due()
        return plan_events(compares, operations, self._table.get, self._revision + 1)

    @staticmethod
    def results_of(
        operations: Sequence[Operation], events: Sequence[Event]
    ) -> tuple[Entry | None, ...]:
        """Per operation: the new entry of a put, the removed entry of a delete, else None."""
        by_key = {event.key: event for event in events}
        results: list[Entry | None] = []
        for operation in operations:
            event = by_key.get(operation.key)
            if event is None:
                results.append(None)
            elif isinstance(operation, Delete):
                results.append(event.prev)
            else:
                results.append(event.entry)
        return tuple(results)

    def expire_due(self, now: float | None = None) -> None:
        """Remove every entry whose expiry time has passed, as one EXPIRE revision."""
        events = self.expiry_events(now)
        if events:
            self.apply(events[0].revision, events)

    def expiry_events(self, now: float | None = None) -> list[Event]:
        """The EXPIRE events due at ``now``, at the next revision, without applying them."""
        if not self._expiry_heap:
            return []
        now = time.time() if now is None else now
        heap = self._expiry_heap
        revision = self._revision + 1
        events: list[Event] = []
        seen: set[str] = set()
        while heap and heap[0][0] <= now:
            _, key, mod_revision = heapq.heappop(heap)
            entry = self._table.get(key)
            if entry is None or entry.mod_revision != mod_revision or key in seen:
                continue
            seen.add(key)
            events.append(Event(EventType.EXPIRE, key, revision, None, entry))
        return events

    def pop_due_expiries(self, now: float) -> list[tuple[str, int]]:
        """Remove and return the expiry-heap items due at ``now`` as (key, mod_revision); the
        caller decides which still match a live entry (persistent backends plan against their
        pending writes)."""
        heap = self._expiry_heap
        due: list[tuple[str, int]] = []
        while heap and heap[0][0] <= now:
            _, key, mod_revision = heapq.heappop(heap)
            due.append((key, mod_revision))
        return due

    def peek(self, key: str) -> Entry | None:
        """The stored entry under ``key`` even when its expiry time has passed."""
        return self._table.get(key)

    def next_expiry(self) -> float | None:
        """The earliest pending expiry time, if any (stale heap items included)."""
        return self._expiry_heap[0][0] if self._expiry_heap else None

    # -- the reaper ------------------------------------------------------------------------

    def wake_reaper(self) -> None:
        """Start (or nudge) the background expiry task when a loop is running."""
        self._wake_reaper()

    def _wake_reaper(self) -> None:
        if self._closed:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._reaper is None or self._reaper.done():
            self._reaper_wakeup = asyncio.Event()
            self._reaper = asyncio.get_running_loop().create_task(self._reap())
        elif self._reaper_wakeup is not None:
            self._reaper_wakeup.set()

    async def _reap(self) -> None:
        wakeup = self._reaper_wakeup
        assert wakeup is not None
        while not self._closed:
            deadline = self.next_expiry()
            if deadline is None:
                return
            delay = deadline - time.time()
            if delay > 0:
                wakeup.clear()
                try:
                    await asyncio.wait_for(wakeup.wait(), timeout=delay)
                except TimeoutError:
                    pass
                continue
            await self.expire_now()

    def rebind(self) -> None:
        """Forget the old loop's commit waiter and expiry task; restart expiry in this one."""
        self._commit_waiter = None
        self._reaper = None
        self._reaper_wakeup = None
        self._wake_reaper()

    async def expire_now(self) -> None:
        """Commit the expiries that are due (persistent backends log them first)."""
        self.expire_due()

    # -- Backend -----------------------------------------------------------------------------

    async def get(self, key: str) -> Entry | None:
        """The live entry under ``key``, or None."""
        self.expire_due()
        return self._table.get(key)

    async def txn(self, compares: Sequence[Compare], operations: Sequence[Operation]) -> TxnResult:
        """Check, then apply, in one synchronous step."""
        events = self.plan(compares, operations)
        if not events:
            return TxnResult(self._revision, tuple(None for _ in operations))
        self.apply(events[0].revision, events)
        return TxnResult(events[0].revision, self.results_of(operations, events))

    def range_now(
        self,
        prefix: str,
        pattern: GlobPattern | None,
        *,
        start_after: str,
        limit: int,
        now: float | None = None,
    ) -> Page:
        """The synchronous body of :meth:`range` (see :meth:`scan_now` for ``now``)."""
        page = self.scan_now(
            range_span(prefix, pattern),
            after=start_after or None,
            reverse=False,
            limit=limit,
            revision=0,
            now=now,
        )
        return Page(page.entries, page.revision, page.more, page.cursor)

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
        """Entries of ``span`` in key order (or reversed), now or at an earlier revision."""
        self.expire_due()
        return self.scan_now(
            span, after=after, reverse=reverse, limit=limit, revision=revision, max_bytes=max_bytes
        )

    def scan_now(
        self,
        span: KeyRange,
        *,
        after: str | None,
        reverse: bool,
        limit: int,
        revision: int,
        max_bytes: int | None = None,
        now: float | None = None,
    ) -> ScanPage:
        """The synchronous body of :meth:`scan`; with ``now`` set, current entries whose expiry
        time is not after ``now`` are left out (for backends that reap through a log).

        A page examines at most :data:`SCAN_BUDGET` keys (or ``limit``, when larger), so a
        pattern that matches few of them returns a short page, even an empty one, whose cursor
        is the last key examined. An earlier revision is rebuilt from the history: a key
        changed since then reads as the entry before its first later change (``prev``, None
        where it did not exist)."""
        at = self._revision
        if revision > at:
            raise future_revision(revision, at)
        then: dict[str, Entry | None] = {}
        if 0 < revision < at:
            if revision <= self._compacted_through:
                raise compacted_error(self._compacted_through + 1, revision)
            then = self._state_at(revision, span)
            at = revision
        changed = sorted(
            (k for k in then if after is None or (k < after if reverse else k > after)),
            reverse=reverse,
        )
        current = self._table.keys(span.low, span.high, after=after, reverse=reverse)
        entries: list[Entry] = []
        size, budget, previous = 0, max(SCAN_BUDGET, limit), None
        for key in heapq.merge(current, changed, reverse=reverse):
            if key == previous:
                continue
            if budget == 0:
                return ScanPage(entries, at, True, previous or "")
            budget -= 1
            previous = key
            if span.pattern is not None and not span.pattern.matches(key[len(span.prefix) :]):
                continue
            entry = then[key] if key in then else self._table.get(key)
            if entry is None:
                continue
            if not then and now is not None and entry.expire_at is not None:
                if entry.expire_at <= now:
                    continue
            if len(entries) == limit or (max_bytes is not None and size >= max_bytes):
                return ScanPage(entries, at, True, entries[-1].key)
            entries.append(entry)
            size += len(entry.value) + len(entry.key)
        return ScanPage(entries, at, False, "")

    def _state_at(self, revision: int, span: KeyRange) -> dict[str, Entry | None]:
        """The entries (None: absent) at ``revision`` of the keys of ``span`` changed since."""
        history = self._history
        start = bisect.bisect_left(history, revision + 1, key=lambda item: item[0])
        state: dict[str, Entry | None] = {}
        for _, events in itertools.islice(history, start, None):
            for event in events:
                if event.key not in state and span.holds(event.key):
                    state[event.key] = event.prev
        return state

    async def watch(
        self,
        prefix: str,
        pattern: GlobPattern | None = None,
        *,
        start_revision: int = 0,
        progress_interval: float | None = None,
    ) -> AsyncIterator[WatchUpdate]:
        """Serve the watch from the retained history, waking on every commit."""
        self.expire_due()
        if start_revision <= 0:
            next_revision = self._revision + 1
        elif start_revision <= self._compacted_through:
            raise compacted_error(self._compacted_through + 1, start_revision)
        else:
            next_revision = start_revision
        yield WatchUpdate(self._revision)
        progress_due = False
        while True:
            if next_revision <= self._compacted_through:
                raise compacted_error(self._compacted_through + 1, next_revision)
            upto = self._revision
            if upto >= next_revision:
                events = self._events_between(next_revision, prefix, pattern)
                next_revision = upto + 1
                if events:
                    progress_due = False
                    yield WatchUpdate(upto, events)
                    continue
            if progress_due:
                progress_due = False
                yield WatchUpdate(upto)
                continue
            progress_due = not await self._wait_for_commit(progress_interval)

    def _events_between(
        self, first_revision: int, prefix: str, pattern: GlobPattern | None
    ) -> tuple[Event, ...]:
        history = self._history
        index = bisect.bisect_left(history, first_revision, key=lambda item: item[0])
        return tuple(
            event
            for _, events in history[index:]
            for event in events
            if key_filter(prefix, pattern, event.key)
        )

    async def _wait_for_commit(self, timeout: float | None) -> bool:
        """Wait for the next commit; False when ``timeout`` passed first."""
        if self._commit_waiter is None:
            self._commit_waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._commit_waiter), timeout)
        except TimeoutError:
            return False
        return True

    async def revision(self) -> int:
        """The current store revision."""
        return self._revision

    async def stats(self) -> BackendStats:
        """Sizes and revisions of the store."""
        self.expire_due()
        return BackendStats(
            keys=len(self._table),
            bytes=self._table.bytes,
            revision=self._revision,
            oldest_revision=self._compacted_through + 1,
            backend=self.name,
        )

    def snapshot_entries(self) -> list[Entry]:
        """Every live entry, in key order (for persistent backends' snapshots)."""
        return list(self._table.entries())

    async def close(self) -> None:
        """Stop the expiry task and wake watchers so they can end."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            try:
                await self._reaper
            except (asyncio.CancelledError, Exception):
                pass
            self._reaper = None
