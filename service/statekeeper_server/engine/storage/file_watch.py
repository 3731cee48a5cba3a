"""The file backend's watch feed: the newest revisions in memory, older ones from the index.

The backend publishes every durable group commit to the :class:`Feed` (on the event loop, once
the memtable holds it), which hands each revision to its
:class:`~statekeeper_server.engine.storage.watchers.WatcherIndex`: only the watches a change's
keys match do any work for it. A watch that starts from an older revision (or fell behind) reads
:meth:`Feed.history` pages: from the memtable's history (every revision since the last flush)
or, further back, the index's history in windows of ``REPLAY_WINDOW`` revisions; a page stops
after ``limit`` events, so a replay from revision 1 of a large store streams in bounded memory
and never blocks other calls for long.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

from statekeeper_server.engine.storage.backend import (
    Event,
    HistoryPage,
    KeyRange,
    WatchUpdate,
    compacted_error,
    range_span,
)
from statekeeper_server.engine.storage.glob import GlobPattern
from statekeeper_server.engine.storage.watchers import WatcherIndex

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
        #: The open watches of the store, fed by :meth:`publish`.
        self.watchers = WatcherIndex(revision)

    @property
    def revision(self) -> int:
        """The newest published revision."""
        return self.watchers.revision

    def publish(self, commits: Sequence[tuple[int, Sequence[Event]]]) -> None:
        """Make durable revisions (now in the memtable), each with its events, visible to the
        watches they concern, in revision order."""
        for revision, events in commits:
            self.watchers.publish(revision, events)

    def rebind(self) -> None:
        """Forget the watches of an event loop that is gone."""
        self.watchers.clear()

    def close(self) -> None:
        """End the open watches (the store is closing)."""
        self.watchers.close()

    async def history(self, span: KeyRange, first: int, last: int, limit: int) -> HistoryPage:
        """A page of the retained history (see Backend.history)."""
        compacted_through = self._memtable.compacted_through
        if first <= compacted_through:
            raise compacted_error(compacted_through + 1, first)
        last = min(last, self.revision)
        if self._memtable.holds_history_from(first):
            events_here, covered = self._memtable.history.page(span, first, last, limit)
            return HistoryPage(events_here, covered)
        with self._index.reading() as (flushed, _):
            last = min(last, flushed, first + max(limit, REPLAY_WINDOW) - 1)
            found = self._index.history(first, last, span.low, span.high)
        events: list[Event] = []
        for examined, (revision, items) in enumerate(found, 1):
            if revision > last:
                break
            events.extend(event for event in items if span.matches(event.key))
            if len(events) >= limit or (examined == limit and revision < last):
                return HistoryPage(tuple(events), revision)
        return HistoryPage(tuple(events), last)

    def watch(
        self,
        prefix: str,
        pattern: GlobPattern | None = None,
        *,
        start_revision: int = 0,
        progress_interval: float | None = None,
    ) -> AsyncIterator[WatchUpdate]:
        """Changes under ``prefix`` matching ``pattern`` from ``start_revision`` (0: after the
        current revision): the created marker, then events and progress (the Backend contract)."""
        return self.watchers.watch(
            self.history,
            range_span(prefix, pattern),
            self.revision,
            start_revision,
            progress_interval,
        )
