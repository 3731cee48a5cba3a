"""The watch index: the open watches a committed change concerns, found from the change's key.

Every backend serves :meth:`~statekeeper_server.engine.storage.backend.Backend.watch` through one
:class:`WatcherIndex`, so that a commit costs work for the watches it matches and for no other:

* **Lookup by key.** A watch's filter is a :class:`KeyRange` (a key prefix and an optional glob
  over the rest of the key). Its literal part, the prefix followed by the glob's literal prefix,
  is what every key it matches starts with; a glob without a wildcard names exactly one key. The
  index keeps the exact keys in one dict and the literal prefixes in another, with the set of
  their lengths, so a committed key is looked up once as an exact key and once per distinct
  prefix length (at most the key's own length), never once per watch. Only the watches found
  there test their glob.
* **Delivery.** The backend hands every commit to :meth:`WatcherIndex.publish` once, in
  revision order; each matching watch gets that revision's matching events appended to its own
  queue and is woken. A watch whose queue exceeds :data:`PENDING_REVISIONS` (a consumer slower
  than the writes) drops it and reads those revisions again from the backend's history.
* **Replay.** A watch from an old revision, and a watch that dropped its queue, reads the
  history through :meth:`~statekeeper_server.engine.storage.backend.Backend.history` in pages of
  at most :data:`REPLAY_PAGE` revisions and about as many events, yielding each page before it
  reads the next: a replay of a long history holds one page in memory and lets the event loop
  serve other calls between pages.
  It is registered in the index before its first page is read, so the live changes that commit
  meanwhile wait in its queue, and it goes on from there without loss or duplicates.
* **Progress.** An idle watch waits for its next change with no timer of its own: the index's
  :class:`ProgressClock` keeps the progress deadlines of all its idle watches in one heap, at
  most one entry per watch, behind one event-loop timer, and wakes the watches whose deadline
  has come. Deadlines are rounded up to :data:`PROGRESS_GRAIN`, so the idle watches due at
  about the same time are woken in one pass (and their messages leave together); a watch's
  first progress comes after a random part of its interval, so that streams opened together
  spread their progress evenly over the interval instead of sending it all at once. Thousands of
  idle streams then cost one timer and one wake-up per progress message, nothing per change
  elsewhere.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence

from statekeeper.errors import UnavailableError

from statekeeper_server.engine.storage.backend import (
    Event,
    HistoryPage,
    KeyRange,
    WatchUpdate,
)

#: Revisions one replay page examines at most, and the events after which it stops (64: a
#: replay of 100k documents of 1 KB on the memory backend held a probe Get's p99 to 42 ms,
#: against 130-178 ms with pages of 256, and took no longer).
REPLAY_PAGE = 64
#: Revisions of matching events a watch keeps queued before it drops them and reads them from
#: the history instead.
PENDING_REVISIONS = 1024
#: The longest pause (seconds) before a watch reads the history again after the store was
#: unavailable.
MAX_BACKOFF = 1.0

#: Progress deadlines are rounded up to a multiple of this many seconds (at most a tenth of
#: the watch's interval), so that watches due at about the same time are woken by one timer
#: (5,000 idle streams: about 10 progress messages per pass, a pass every 20 ms).
PROGRESS_GRAIN = 0.02

#: ``history(span, first, last, limit)``: a page of the retained history (see Backend.history).
HistoryReader = Callable[[KeyRange, int, int, int], Awaitable[HistoryPage]]


class Watcher:
    """One open watch in the index: its filter, the events committed for it and not yet taken,
    and the revision from which those queued events are complete."""

    __slots__ = (
        "_waiter",
        "deadline",
        "error",
        "exact",
        "literal",
        "live_from",
        "pending",
        "scheduled",
        "span",
    )

    def __init__(self, span: KeyRange, live_from: int) -> None:
        self.span = span
        pattern = span.pattern
        #: What every matching key starts with (or, when ``exact``, is).
        self.literal = span.low
        self.exact = pattern is not None and pattern.is_literal
        #: (revision, matching events) committed since ``live_from``, oldest first.
        self.pending: list[tuple[int, tuple[Event, ...]]] = []
        #: Every matching change from this revision on is in ``pending`` (or was taken).
        self.live_from = live_from
        #: Set when the index's feed failed: the watch raises it.
        self.error: BaseException | None = None
        #: While the watch waits: when it is due to report progress (None: never).
        self.deadline: float | None = None
        #: Whether the progress clock holds an entry for this watch.
        self.scheduled = False
        self._waiter: asyncio.Future[bool] | None = None

    def matches(self, key: str) -> bool:
        """Whether a change of ``key`` concerns this watch (the literal part is known to match)."""
        pattern = self.span.pattern
        return self.exact or pattern is None or pattern.matches(key[len(self.span.prefix) :])

    def wake(self, progress: bool = False) -> None:
        """Wake the watch if it waits (``progress``: because its progress deadline came)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(not progress)

    async def wait(self, clock: ProgressClock, interval: float | None, idle_since: float) -> bool:
        """Wait to be woken; False when the progress deadline (``interval`` after
        ``idle_since``) came first."""
        self._waiter = waiter = asyncio.get_running_loop().create_future()
        if interval is not None:
            clock.schedule(self, idle_since + interval, interval)
        try:
            return await waiter
        finally:
            self._waiter = None
            self.deadline = None


class ProgressClock:
    """The progress deadlines of the idle watches of one index behind one event-loop timer
    (see the module): a heap of (deadline, order, watch) with at most one entry per watch."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Watcher]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def schedule(self, watcher: Watcher, deadline: float, interval: float) -> None:
        """Wake ``watcher`` with progress at ``deadline`` (rounded up to the grain) unless it is
        woken before."""
        grain = min(PROGRESS_GRAIN, interval / 10)
        if grain > 0:
            deadline = math.ceil(deadline / grain) * grain
        watcher.deadline = deadline
        if not watcher.scheduled:
            self._push(watcher, deadline)

    def clear(self) -> None:
        """Forget every deadline (the event loop is gone)."""
        self._heap.clear()
        self._timer, self._timer_at = None, math.inf

    def _push(self, watcher: Watcher, deadline: float) -> None:
        watcher.scheduled = True
        heapq.heappush(self._heap, (deadline, next(self._order), watcher))
        if deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = asyncio.get_running_loop().call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        now = asyncio.get_running_loop().time()
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, watcher = heapq.heappop(heap)
            watcher.scheduled = False
            if watcher.deadline is None:
                continue  # it is not waiting (any more)
            if watcher.deadline <= now:
                watcher.wake(progress=True)
            else:
                self._push(watcher, watcher.deadline)  # its deadline moved on meanwhile
        if heap and self._timer is None:
            self._timer_at = heap[0][0]
            self._timer = asyncio.get_running_loop().call_at(self._timer_at, self._fire)


class WatcherIndex:
    """The open watches of one backend, by exact key and by literal prefix (see the module).

    ``revision`` is the newest revision the backend has published here: every watch registered
    has been given every matching change up to it.
    """

    def __init__(self, revision: int = 0) -> None:
        self.revision = revision
        #: False while the backend's feed cannot reach its store (idle watches then send no
        #: progress, which would claim a revision they cannot vouch for).
        self.healthy = True
        #: How many watches publish() tested against a committed key, ever (a measure of the
        #: work commits did for watches; a key no watch covers adds nothing).
        self.examined = 0
        # Buckets are dicts used as ordered sets (removal in constant time).
        self._exact: dict[str, dict[Watcher, None]] = {}
        self._prefixes: dict[str, dict[Watcher, None]] = {}
        #: Distinct prefix lengths, with how many prefixes of each length are in ``_prefixes``.
        self._lengths: dict[int, int] = {}
        self._count = 0
        self._closed = False
        self._clock = ProgressClock()

    def __len__(self) -> int:
        return self._count

    # -- registration ------------------------------------------------------------------------

    def add(self, span: KeyRange) -> Watcher:
        """Register a watch of ``span``; it is given every matching change after ``revision``."""
        watcher = Watcher(span, self.revision + 1)
        if watcher.exact:
            self._exact.setdefault(watcher.literal, {})[watcher] = None
        else:
            bucket = self._prefixes.get(watcher.literal)
            if bucket is None:
                bucket = self._prefixes[watcher.literal] = {}
                length = len(watcher.literal)
                self._lengths[length] = self._lengths.get(length, 0) + 1
            bucket[watcher] = None
        self._count += 1
        return watcher

    def remove(self, watcher: Watcher) -> None:
        """Unregister ``watcher`` (a watcher already removed is ignored)."""
        table = self._exact if watcher.exact else self._prefixes
        bucket = table.get(watcher.literal)
        if bucket is None or watcher not in bucket:
            return
        del bucket[watcher]
        self._count -= 1
        if bucket:
            return
        del table[watcher.literal]
        if not watcher.exact:
            length = len(watcher.literal)
            self._lengths[length] -= 1
            if not self._lengths[length]:
                del self._lengths[length]

    def pending_revisions(self) -> int:
        """How many revisions of events the registered watches hold queued, in all."""
        return sum(len(watcher.pending) for watcher in self._all())

    def reposition(self, revision: int) -> None:
        """Start the feed anew at ``revision`` (only while no watch is registered)."""
        assert not self._count, "reposition() would skip changes registered watches expect"
        self.revision = revision

    # -- the feed ----------------------------------------------------------------------------

    def publish(self, revision: int, events: Sequence[Event]) -> None:
        """Give the watches the ``events`` of ``revision`` (the next one committed; a revision
        with no events only moves ``revision`` on)."""
        if revision > self.revision + 1 and self._count:
            # Revisions were skipped (a feed that restarted past them): every watch reads them
            # from the history, which knows whether they are still retained.
            for watcher in self._all():
                self._drop(watcher, revision)
        self.revision = max(self.revision, revision)
        if not self._count or not events:
            return
        hits: dict[Watcher, list[Event]] = {}
        for event in events:
            for watcher in self._candidates(event.key):
                self.examined += 1
                if watcher.matches(event.key):
                    hits.setdefault(watcher, []).append(event)
        for watcher, matched in hits.items():
            if revision < watcher.live_from:
                continue
            if len(watcher.pending) >= PENDING_REVISIONS:
                self._drop(watcher, revision + 1)
            else:
                watcher.pending.append((revision, tuple(matched)))
            watcher.wake()

    def concerns(self, key: str) -> bool:
        """Whether a change of ``key`` concerns a registered watch (a feed that decodes its
        changes need not build the others)."""
        return any(watcher.matches(key) for watcher in self._candidates(key))

    def fail(self, error: BaseException) -> None:
        """End every registered watch with ``error`` and unregister it (the feed is gone)."""
        for watcher in self._all():
            watcher.error = error
            watcher.wake()
        self._forget()

    def close(self) -> None:
        """End every registered watch (the store is closing)."""
        self._closed = True
        for watcher in self._all():
            watcher.wake()

    def clear(self) -> None:
        """Forget every watch (their event loop is gone; the index serves the next one)."""
        self._forget()
        self._clock.clear()
        self._closed = False

    def _forget(self) -> None:
        self._exact.clear()
        self._prefixes.clear()
        self._lengths.clear()
        self._count = 0

    def _candidates(self, key: str) -> list[Watcher]:
        """The watches whose literal part ``key`` equals or starts with."""
        found = list(self._exact.get(key, ()))
        prefixes = self._prefixes
        for length in self._lengths:
            if length <= len(key):
                bucket = prefixes.get(key[:length])
                if bucket is not None:
                    found.extend(bucket)
        return found

    def _all(self) -> list[Watcher]:
        return [w for table in (self._exact, self._prefixes) for b in table.values() for w in b]

    @staticmethod
    def _drop(watcher: Watcher, live_from: int) -> None:
        watcher.pending.clear()
        watcher.live_from = max(watcher.live_from, live_from)

    # -- serving a watch -----------------------------------------------------------------------

    async def watch(
        self,
        history: HistoryReader,
        span: KeyRange,
        current: int,
        start_revision: int,
        progress_interval: float | None,
    ) -> AsyncGenerator[WatchUpdate, None]:
        """The updates of a watch of ``span`` (the contract of Backend.watch): the created
        marker at ``current`` (the store revision), then the changes from ``start_revision``
        (0: after ``current``), from the history while they are older than the feed, then live.
        A start revision that is no longer retained fails before the created marker."""
        next_revision = start_revision if start_revision > 0 else current + 1
        watcher = self.add(span)
        try:
            page: HistoryPage | None = None
            if next_revision < watcher.live_from:
                page = await history(span, next_revision, watcher.live_from - 1, REPLAY_PAGE)
            yield WatchUpdate(current)
            loop = asyncio.get_running_loop()
            # A random phase for the first progress: streams opened together (a fleet
            # reconnecting) do not all report progress at the same moments ever after.
            idle_since = loop.time() - random.random() * (progress_interval or 0.0)
            while True:
                while next_revision < watcher.live_from:
                    if page is None:
                        # Other calls run between two pages, even where reading a page and
                        # sending the last one never had to wait.
                        await asyncio.sleep(0)
                        page = await _read_retrying(history, span, next_revision, watcher)
                    next_revision = page.last + 1
                    events, page = page.events, None
                    if events:
                        yield WatchUpdate(next_revision - 1, events)
                        idle_since = loop.time()
                taken, watcher.pending = watcher.pending, []
                events = tuple(e for rev, batch in taken if rev >= next_revision for e in batch)
                next_revision = max(next_revision, self.revision + 1)
                if events:
                    yield WatchUpdate(next_revision - 1, events)
                    idle_since = loop.time()
                    continue
                if watcher.error is not None:
                    raise watcher.error
                if self._closed:
                    return
                if watcher.pending or next_revision < watcher.live_from:
                    continue
                if not await watcher.wait(self._clock, progress_interval, idle_since):
                    idle_since = loop.time()
                    if self.healthy:
                        yield WatchUpdate(next_revision - 1)
        finally:
            self.remove(watcher)


async def _read_retrying(
    history: HistoryReader, span: KeyRange, first: int, watcher: Watcher
) -> HistoryPage:
    """The next history page of ``watcher`` from ``first``, read again (backing off) while the
    store is unavailable: an open watch outlives an outage and loses nothing."""
    backoff = 0.05
    while True:
        try:
            return await history(span, first, watcher.live_from - 1, REPLAY_PAGE)
        except UnavailableError:
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
