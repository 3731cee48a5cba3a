"""The memory backend: the whole Backend contract in one process, nothing persisted.

All state changes happen synchronously inside one event loop step, so every transaction is
atomic with respect to every other coroutine of the process. Live entries are kept in a
:class:`~statekeeper_server.engine.storage.keytable.KeyTable` and the change history in a
:class:`~statekeeper_server.engine.storage.history.RetainedHistory`, both out of the garbage
collector's sight, so full collections do not grow with the store. The file backend borrows
:func:`plan_events` from here.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import AsyncIterator, Callable, Sequence

from statekeeper_server.engine.storage.backend import (
    DEFAULT_HISTORY_BYTES,
    DEFAULT_HISTORY_REVISIONS,
    Backend,
    BackendStats,
    Compare,
    Delete,
    Entry,
    Event,
    EventType,
    HistoryPage,
    KeyRange,
    Operation,
    Put,
    ScanPage,
    TxnResult,
    WatchUpdate,
    compacted_error,
    conflict,
    future_revision,
    range_span,
    scan_page,
)
from statekeeper_server.engine.storage.glob import GlobPattern
from statekeeper_server.engine.storage.history import RetainedHistory
from statekeeper_server.engine.storage.keytable import KeyTable
from statekeeper_server.engine.storage.watchers import WatcherIndex


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
        self._table = KeyTable()
        self._revision = 0
        self._compacted_through = 0
        self._history = RetainedHistory()
        self._expiry_heap: list[tuple[float, str, int]] = []
        self._watchers = WatcherIndex()
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
            history = self._history
            history.append(revision, events)
            through = history.trim(self._history_revisions, self._history_bytes_limit)
            if through:
                self._compacted_through = through
        self._watchers.publish(self._revision, events)

    @property
    def compacted_through(self) -> int:
        """The newest revision whose history is gone (0: the whole history is retained)."""
        return self._compacted_through

    @property
    def watchers(self) -> WatcherIndex:
        """The index of the open watches (see :mod:`.watchers`)."""
        return self._watchers

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

    def next_expiry(self) -> float | None:
        """The earliest pending expiry time, if any (stale heap items included)."""
        return self._expiry_heap[0][0] if self._expiry_heap else None

    # -- the reaper ------------------------------------------------------------------------

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
        """Forget the old loop's watches and expiry task; restart expiry in this one."""
        self._watchers.clear()
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

    async def read(self, key: str) -> tuple[Entry | None, int]:
        """The live entry under ``key`` and the store revision, in one step."""
        self.expire_due()
        return self._table.get(key), self._revision

    async def txn(self, compares: Sequence[Compare], operations: Sequence[Operation]) -> TxnResult:
        """Check, then apply, in one synchronous step."""
        events = self.plan(compares, operations)
        if not events:
            return TxnResult(self._revision, tuple(None for _ in operations))
        self.apply(events[0].revision, events)
        return TxnResult(events[0].revision, self.results_of(operations, events))

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
        """Entries of ``span`` in key order (or reversed), now or at an earlier revision.

        A page examines at most :data:`SCAN_BUDGET` keys (or ``limit``, when larger), so a
        pattern that matches few of them returns a short page, even an empty one, whose cursor
        is the last key examined. At an earlier revision the page walks the live keys and the
        keys with retained changes together: a key changed since then reads as the entry
        before its first later change (None where it did not exist), found by bisecting its
        versions, so the page costs what it examines, not the history since."""
        self.expire_due()
        at, table, history = self._revision, self._table, self._history
        if revision > at:
            raise future_revision(revision, at)
        keys = table.keys(span.low, span.high, after=after, reverse=reverse)
        earlier = 0 < revision < at
        if earlier:
            if revision <= self._compacted_through:
                raise compacted_error(self._compacted_through + 1, revision)
            changed = history.keys(span.low, span.high, after=after, reverse=reverse)
            keys = heapq.merge(keys, changed, reverse=reverse)
            at = revision

        def entry_of(key: str, _: None) -> Entry | None:
            if earlier:
                changed_since, entry = history.at(key, revision)
                if changed_since:
                    return entry
            return table.get(key)

        return scan_page(span, zip(keys, itertools.repeat(None)), entry_of, at, limit, max_bytes)

    def watch(
        self,
        prefix: str,
        pattern: GlobPattern | None = None,
        *,
        start_revision: int = 0,
        progress_interval: float | None = None,
    ) -> AsyncIterator[WatchUpdate]:
        """Serve the watch through the watch index, replaying from the retained history."""
        self.expire_due()
        return self._watchers.watch(
            self.history,
            range_span(prefix, pattern),
            self._revision,
            start_revision,
            progress_interval,
        )

    async def history(self, span: KeyRange, first: int, last: int, limit: int) -> HistoryPage:
        """A page of the retained history (see Backend.history)."""
        if first <= self._compacted_through:
            raise compacted_error(self._compacted_through + 1, first)
        events, covered = self._history.page(span, first, min(last, self._revision), limit)
        return HistoryPage(events, covered)

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

    async def close(self) -> None:
        """Stop the expiry task and end the open watches."""
        self._closed = True
        self._watchers.close()
        if self._reaper is not None:
            self._reaper.cancel()
            try:
                await self._reaper
            except (asyncio.CancelledError, Exception):
                pass
            self._reaper = None
