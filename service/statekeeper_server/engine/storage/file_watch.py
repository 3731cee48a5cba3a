"""The file backend's watch feed: the newest revisions in memory, older ones from the index.

The backend publishes every durable group commit to the :class:`Feed` (on the event loop, once
the memtable holds it). A watcher that is current reads the events from the memtable's history
(every revision since the last flush); a watcher that starts from an older revision reads the
index's history in windows of ``REPLAY_WINDOW`` revisions, yielding to the event loop between
windows, so a replay from revision 1 of a large store streams in bounded
memory and never blocks other calls for long. :meth:`Feed.history_window` is that bounded read,
for any other consumer of the history.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

from statekeeper_server.engine.storage.backend import Event, WatchUpdate, prefix_end
from statekeeper_server.engine.storage.glob import GlobPattern
from statekeeper_server.engine.storage.memory import compacted_error, key_filter

if TYPE_CHECKING:
    from statekeeper_server.engine.storage.file_memtable import Memtable


class HistorySource(Protocol):
    """Where older history is read from (the file backend's index)."""

    def reading(self) -> AbstractContextManager[tuple[int, int]]:
        """One read transaction, yielding (flushed revision, compacted_through)."""
        ...

    def history(
        self, first: int, last: int, low: str, high: str | None
    ) -> list[tuple[int, tuple[Event, ...]]]:
        """The retained events of revisions ``first`` through ``last`` on keys in
        ``[low, high)``, grouped by revision."""
        ...


#: Revisions read from the index per step of a replay.
REPLAY_WINDOW = 1000


class Feed:
    """Published revisions of one file store, for its watchers (see the module docstring)."""

    def __init__(self, index: HistorySource, memtable: Memtable, revision: int) -> None:
        self._index = index
        self._memtable = memtable
        #: The newest published revision.
        self.revision = revision
        self._waiter: asyncio.Future[None] | None = None

    def publish(self, revision: int) -> None:
        """Make the durable revisions through ``revision`` (in the memtable) visible to
        watchers and wake them."""
        self.revision = revision
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def rebind(self) -> None:
        """Forget the waiter of an event loop that is gone."""
        self._waiter = None

    def history_window(
        self, first: int, prefix: str, pattern: GlobPattern | None
    ) -> tuple[int, tuple[Event, ...]]:
        """The events from revision ``first`` matching ``prefix`` and ``pattern``, at most a
        bounded window of revisions of them, and the last revision the window covers; raises
        HistoryCompactedError when ``first`` is no longer retained."""
        compacted_through = self._memtable.compacted_through
        if first <= compacted_through:
            raise compacted_error(compacted_through + 1, first)
        recent = self._memtable.history_from(first)
        if recent is not None:
            found: Sequence[tuple[int, Sequence[Event]]] = recent
            last = recent[-1][0] if recent else first - 1
        else:
            with self._index.reading() as (flushed, _):
                last = min(self.revision, flushed, first + REPLAY_WINDOW - 1)
                found = self._index.history(first, last, prefix, prefix_end(prefix))
        events = tuple(
            event for _, items in found for event in items if key_filter(prefix, pattern, event.key)
        )
        return last, events

    async def watch(
        self,
        prefix: str,
        pattern: GlobPattern | None = None,
        *,
        start_revision: int = 0,
        progress_interval: float | None = None,
    ) -> AsyncIterator[WatchUpdate]:
        """Changes under ``prefix`` matching ``pattern`` from ``start_revision`` (0: after the
        current revision): the created marker, then events and progress (the Backend contract)."""
        compacted_through = self._memtable.compacted_through
        if start_revision <= 0:
            next_revision = self.revision + 1
        elif start_revision <= compacted_through:
            raise compacted_error(compacted_through + 1, start_revision)
        else:
            next_revision = start_revision
        yield WatchUpdate(self.revision)
        progress_due = False
        while True:
            if self.revision >= next_revision:
                reached, events = self.history_window(next_revision, prefix, pattern)
                next_revision = reached + 1
                if events:
                    progress_due = False
                    yield WatchUpdate(reached, events)
                    continue
                if reached < self.revision:
                    await asyncio.sleep(0)  # the next window, after other callers' turn
                    continue
            if progress_due:
                progress_due = False
                yield WatchUpdate(self.revision)
                continue
            progress_due = not await self._wait(progress_interval)

    async def _wait(self, timeout: float | None) -> bool:
        """Wait for the next publication; False when ``timeout`` passed first."""
        if self._waiter is None:
            self._waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._waiter), timeout)
        except TimeoutError:
            return False
        return True
