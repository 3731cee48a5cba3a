"""The file backend's memtable: the durable changes since the last flush into the index.

Every group commit, once on disk in the log, is applied here (on the event loop); reads look
here before the index (a key here overrides the index, a deletion is kept as one), and the
watch feed serves current watchers from :attr:`Memtable.history`. A compaction flushes the
memtable into the index as of one revision and then :meth:`Memtable.prune` forgets what the
index now holds (the rows at once, the history a bounded step at each later commit), so the
memtable holds at most about one or two compactions' worth of log (``compact_bytes``), whatever
the size of the store. It also keeps the store's running figures
(key count, value bytes, the newest compacted history revision).

Like the memory backend, it keeps nothing the garbage collector walks: an entry is one flat
tuple of atoms (built into an ``Entry`` on read) and the history a
:class:`~statekeeper_server.engine.storage.history.RetainedHistory`, so a full collection
during a bulk load does not stall every call behind it.

The history bound: the store keeps ``history_revisions`` revisions and, when
``history_bytes`` is set, at most that many bytes of history (index and memtable together,
counted as :func:`~statekeeper_server.engine.storage.backend.events_size` counts them), the
same bound as the memory and Redis backends; :attr:`Memtable.compacted_through` moves past
what falls outside it at once (reads and watches from there are refused), and the next flush
deletes it from the index.
"""

from __future__ import annotations

import bisect
import heapq
from array import array
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from statekeeper_server.engine.storage.backend import Entry, Event
from statekeeper_server.engine.storage.history import RetainedHistory


class IndexFigures(Protocol):
    """What the memtable starts from: the index's figures and the sizes of its history."""

    keys: int
    bytes: int
    compacted_through: int

    def history_sizes(self) -> list[tuple[int, int]]:
        """The (revision, size) of every retained revision, oldest first."""
        ...


#: One key's state here: (revision of its last change, value or None when deleted, create
#: revision, version, expiry time).
Row = tuple[int, bytes | None, int, int, float | None]


def _row(revision: int, entry: Entry | None) -> Row:
    if entry is None:
        return (revision, None, 0, 0, None)
    return (revision, entry.value, entry.create_revision, entry.version, entry.expire_at)


def row_entry(key: str, row: Row) -> Entry | None:
    """The entry a memtable row stands for (None: deleted)."""
    revision, value, create, version, expire_at = row
    return None if value is None else Entry(key, value, create, revision, version, expire_at)


class _Ledger:
    """The size of every retained revision of the store, oldest first (what the byte bound
    of the history is checked against)."""

    def __init__(self, sizes: Iterable[tuple[int, int]]) -> None:
        self._revisions = array("q")
        self._sizes = array("q")
        self._start = 0
        self.bytes = 0
        for revision, size in sizes:
            self.add(revision, size)

    def add(self, revision: int, size: int) -> None:
        self._revisions.append(revision)
        self._sizes.append(size)
        self.bytes += size

    def over(self, limit: int) -> int:
        """The newest revision to drop so that at most three quarters of ``limit`` bytes stay,
        when more than ``limit`` are retained (the newest revision always stays); else 0."""
        if not limit or self.bytes <= limit:
            return 0
        goal, freed, position = self.bytes - limit * 3 // 4, 0, self._start
        while freed < goal and position < len(self._sizes) - 1:
            freed += self._sizes[position]
            position += 1
        return self._revisions[position - 1] if position > self._start else 0

    def forget_through(self, revision: int) -> None:
        revisions, start = self._revisions, self._start
        while start < len(revisions) and revisions[start] <= revision:
            self.bytes -= self._sizes[start]
            start += 1
        if start > 4096 and start * 2 > len(revisions):  # shift the arrays now and then
            del revisions[:start]
            del self._sizes[:start]
            start = 0
        self._start = start


def _between(
    keys: list[str], low: str, high: str | None, after: str | None, reverse: bool
) -> list[str]:
    """The sorted ``keys`` with ``low <= key < high`` strictly after ``after`` in the walk's
    direction, in key order."""
    start = bisect.bisect_left(keys, low)
    end = len(keys) if high is None else bisect.bisect_left(keys, high)
    if after is not None and not reverse:
        start = max(start, bisect.bisect_right(keys, after))
    elif after is not None:
        end = min(end, bisect.bisect_left(keys, after))
    return keys[start:end]


class Memtable:
    """Recent durable state on top of the index (see the module docstring)."""

    def __init__(self, bounds: tuple[int, int], index: IndexFigures) -> None:
        """``bounds``: (history_revisions, history_bytes); the figures and the sizes of the
        retained history start from the ``index``'s."""
        self._history_revisions, self._history_bytes = bounds
        if self._history_bytes < 0:
            raise ValueError("history_bytes must not be negative")
        #: key -> its :data:`Row`, for the changes since the running (or last) flush began.
        self.entries: dict[str, Row] = {}
        self._keys: list[str] = []
        #: The rows a running flush writes, read after ``entries``: :meth:`snapshot` moves
        #: ``entries`` here and :meth:`prune` drops them, both in one step whatever the size.
        self._flushing: dict[str, Row] = {}
        self._flushing_keys: list[str] = []
        #: Every revision since the last flush, and for a while the flushed ones (older
        #: than ``compacted_through`` or ``_flushed_through``: dropped a step per commit).
        self.history = RetainedHistory()
        #: The revision of the last flush (the index holds the history up to it).
        self._flushed_through = 0
        self._ledger = _Ledger(index.history_sizes())
        self._expiries: list[tuple[float, str, int]] = []
        self.keys, self.bytes = index.keys, index.bytes
        self.compacted_through = index.compacted_through

    def apply(self, revision: int, events: Sequence[Event]) -> None:
        """Apply one durable revision."""
        for event in events:
            entry, prev = event.entry, event.prev
            if event.key not in self.entries:
                bisect.insort(self._keys, event.key)
            self.entries[event.key] = _row(revision, entry)
            self.keys += (entry is not None) - (prev is not None)
            self.bytes += (len(entry.value) if entry else 0) - (len(prev.value) if prev else 0)
            if entry is not None and entry.expire_at is not None:
                heapq.heappush(self._expiries, (entry.expire_at, event.key, revision))
        history, ledger = self.history, self._ledger
        ledger.add(revision, history.append(revision, events))
        through = max(revision - self._history_revisions, ledger.over(self._history_bytes))
        if through > self.compacted_through:
            self.compacted_through = through
            ledger.forget_through(through)
        held_elsewhere = max(self.compacted_through, self._flushed_through)
        cut = history.count_through(held_elsewhere)
        if cut and len(history) >= 64 and cut >= len(history) // 4:
            history.drop_through(held_elsewhere)

    def lookup(self, key: str) -> tuple[bool, Entry | None]:
        """(True, entry or None when deleted) for a key changed here, else (False, None)."""
        found = self.entries.get(key)
        if found is None:
            found = self._flushing.get(key)
        return (False, None) if found is None else (True, row_entry(key, found))

    def keys_in(self, low: str, high: str | None, after: str | None, reverse: bool) -> list[str]:
        """The keys changed here with ``low <= key < high`` strictly after ``after`` in the
        walk's direction, in key order or reversed."""
        found = _between(self._keys, low, high, after, reverse)
        if self._flushing_keys:
            older = _between(self._flushing_keys, low, high, after, reverse)
            found = sorted({*found, *older})
        return found[::-1] if reverse else found

    def holds_history_from(self, first: int) -> bool:
        """Whether revision ``first`` and every later one are here (not only in the index)."""
        oldest = self.history.oldest_after(self._flushed_through)
        return oldest is not None and oldest <= first

    def snapshot(self) -> tuple[dict[str, Row], list[tuple[int, tuple[Any, ...]]]]:
        """Every key's row here and a copy of the retained history (see
        :meth:`RetainedHistory.export`), for a flush from another thread: the rows move aside
        (still read, never changed again) and later changes gather anew, so neither this nor
        :meth:`prune` walks the rows on the event loop. The rows of a flush that failed are
        written again with the newer ones."""
        if self._flushing:
            self._flushing.update(self.entries)
            self._flushing_keys = sorted(self._flushing)
        else:
            self._flushing, self._flushing_keys = self.entries, self._keys
        self.entries, self._keys = {}, []
        return self._flushing, self.history.export(
            max(self.compacted_through, self._flushed_through)
        )

    def prune(self, through: int) -> None:
        """Forget the rows of the last :meth:`snapshot`; the history up to revision
        ``through``, its revision (the index holds them now), goes a bounded step at each
        later commit (still read meanwhile: the same events the index holds)."""
        self._flushing, self._flushing_keys = {}, []
        self._flushed_through = through

    def pop_due(self, now: float, limit: int) -> list[tuple[str, int]]:
        """Remove and return up to ``limit`` (key, mod_revision) of expiries here due at
        ``now``; the caller checks them against the current entries."""
        heap = self._expiries
        due: list[tuple[str, int]] = []
        while heap and heap[0][0] <= now and len(due) < limit:
            _, key, revision = heapq.heappop(heap)
            due.append((key, revision))
        return due

    def next_expiry(self) -> float | None:
        """The earliest expiry time here (stale items included)."""
        return self._expiries[0][0] if self._expiries else None
