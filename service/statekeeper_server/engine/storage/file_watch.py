"""The file backend's watch feed: the newest revisions in memory, older ones from the index.

The backend publishes every durable group commit to the :class:`Feed` (on the event loop, once
the memtable holds it), which hands each revision to its
:class:`~statekeeper_server.engine.storage.watchers.WatcherIndex`: only the watches a change's
keys match do any work for it. A watch that starts from an older revision (or fell behind) reads
:meth:`Feed.history` pages: from the memtable's history (every revision since the last flush)
or, further back, the index's history, walked in revision order from the page's first revision
(:meth:`~statekeeper_server.engine.storage.file_index.FileIndex.history`); a page stops after
``limit`` events or a bounded number of examined rows, at the end of a revision, so a replay
from revision 1 of a large store streams in bounded memory and never blocks other calls for
long.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
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

    async def history(
        self, span: KeyRange, first: int, last: int, limit: int
    ) -> tuple[list[Event], int]:
        """The retained events of revisions ``first`` through ``last`` (at most the flushed
        one) on keys of ``span``, stopping at the end of the revision of the ``limit``-th event
        or after a bounded number of examined rows; and the newest revision covered."""
        ...


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
        events, covered = await self._index.history(span, first, last, limit)
        return HistoryPage(tuple(events), covered)

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
