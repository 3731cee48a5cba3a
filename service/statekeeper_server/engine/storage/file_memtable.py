"""The file backend's memtable: the durable changes since the last flush into the index.

Every group commit, once on disk in the log, is applied here (on the event loop); reads look
here before the index (a key here overrides the index, ``None`` marks a deletion), and the
watch feed serves current watchers from :attr:`Memtable.history`. A compaction flushes the
memtable into the index as of one revision and then :meth:`Memtable.prune` forgets what the
index now holds, so the memtable holds at most about one compaction's worth of log
(``compact_bytes``), whatever the size of the store. It also keeps the store's running figures
(key count, value bytes, the newest compacted history revision).
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Sequence

from statekeeper_server.engine.storage.backend import Entry, Event

#: One revision of history: the revision and its events.
History = tuple[int, tuple[Event, ...]]


class Memtable:
    """Recent durable state on top of the index (see the module docstring)."""

    def __init__(
        self, history_revisions: int, keys: int, size: int, compacted_through: int
    ) -> None:
        self._history_revisions = history_revisions
        #: key -> (revision of its last change, entry or None when deleted).
        self.entries: dict[str, tuple[int, Entry | None]] = {}
        self._keys: list[str] = []
        #: Every revision since the last flush (older than ``compacted_through`` trimmed).
        self.history: list[tuple[int, tuple[Event, ...]]] = []
        self._expiries: list[tuple[float, str, int]] = []
        self.keys = keys
        self.bytes = size
        self.compacted_through = compacted_through

    def apply(self, revision: int, events: Sequence[Event]) -> None:
        """Apply one durable revision."""
        for event in events:
            entry, prev = event.entry, event.prev
            if event.key not in self.entries:
                bisect.insort(self._keys, event.key)
            self.entries[event.key] = (revision, entry)
            self.keys += (entry is not None) - (prev is not None)
            self.bytes += (len(entry.value) if entry else 0) - (len(prev.value) if prev else 0)
            if entry is not None and entry.expire_at is not None:
                heapq.heappush(self._expiries, (entry.expire_at, event.key, revision))
        self.history.append((revision, tuple(events)))
        self.compacted_through = max(self.compacted_through, revision - self._history_revisions)
        history = self.history
        if history[0][0] <= self.compacted_through and len(history) >= 64:
            cut = bisect.bisect_right(history, self.compacted_through, key=lambda item: item[0])
            if cut >= len(history) // 4:
                del history[:cut]

    def lookup(self, key: str) -> tuple[bool, Entry | None]:
        """(True, entry or None when deleted) for a key changed here, else (False, None)."""
        found = self.entries.get(key)
        return (False, None) if found is None else (True, found[1])

    def keys_in(self, low: str, high: str | None, after: str | None, reverse: bool) -> list[str]:
        """The keys changed here with ``low <= key < high`` strictly after ``after`` in the
        walk's direction, in key order or reversed."""
        keys = self._keys
        start = bisect.bisect_left(keys, low)
        end = len(keys) if high is None else bisect.bisect_left(keys, high)
        if after is not None and not reverse:
            start = max(start, bisect.bisect_right(keys, after))
        elif after is not None:
            end = min(end, bisect.bisect_left(keys, after))
        found = keys[start:end]
        return found[::-1] if reverse else found

    def history_from(self, first: int) -> list[tuple[int, tuple[Event, ...]]] | None:
        """The revisions from ``first`` on, or None when ``first`` is older than what is here."""
        history = self.history
        if not history or history[0][0] > first:
            return None
        return history[bisect.bisect_left(history, first, key=lambda item: item[0]) :]

    def snapshot(self) -> tuple[list[tuple[str, Entry | None]], list[History]]:
        """The current state of every key changed here and the retained history (to flush)."""
        state = [(key, entry) for key, (_, entry) in self.entries.items()]
        retained = [item for item in self.history if item[0] > self.compacted_through]
        return state, retained

    def prune(self, through: int) -> None:
        """Forget the changes up to revision ``through`` (the index holds them now)."""
        self.entries = {k: item for k, item in self.entries.items() if item[0] > through}
        self._keys = [key for key in self._keys if key in self.entries]
        cut = bisect.bisect_right(self.history, through, key=lambda item: item[0])
        del self.history[:cut]

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
