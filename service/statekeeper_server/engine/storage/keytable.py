"""The in-memory table of live entries: lookups by key and walks in key order, at any size.

Keys are kept in a :class:`sortedcontainers.SortedList`, so adding or removing a key costs
O(log n) and a walk starts anywhere in O(log n); a plain sorted list would move every later key
on each insertion (``bisect.insort`` is O(n)), which made bulk loads slow down as they grew.

Each entry is stored as a plain tuple ``(value, create_revision, mod_revision, version,
expire_at)`` rather than as an :class:`~statekeeper_server.engine.storage.backend.Entry`
object. A tuple of strings, bytes, numbers and None is untracked by Python's cyclic garbage
collector once it has survived one collection, so a store of a million keys adds almost nothing
to the work of a full (generation 2) collection; a million ``Entry`` objects made every full
collection walk all of them (over a second at 1M keys). ``Entry`` objects are built on read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sortedcontainers import SortedList

from statekeeper_server.engine.storage.backend import Entry

#: One stored entry: value, create revision, mod revision, version, expiry time (or None).
Row = tuple[bytes, int, int, int, float | None]


def _row(entry: Entry) -> Row:
    return (entry.value, entry.create_revision, entry.mod_revision, entry.version, entry.expire_at)


class KeyTable:
    """Live entries by key, with the keys in code point order."""

    __slots__ = ("_keys", "_rows", "bytes")

    def __init__(self) -> None:
        self._rows: dict[str, Row] = {}
        self._keys = SortedList()
        #: The total size of the stored values.
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: str) -> bool:
        return key in self._rows

    def get(self, key: str) -> Entry | None:
        """The entry under ``key``, or None."""
        row = self._rows.get(key)
        return None if row is None else Entry(key, *row)

    def put(self, entry: Entry) -> None:
        """Store ``entry``, replacing the one under its key."""
        key = entry.key
        old = self._rows.get(key)
        if old is None:
            self._keys.add(key)
        else:
            self.bytes -= len(old[0])
        self._rows[key] = _row(entry)
        self.bytes += len(entry.value)

    def remove(self, key: str) -> None:
        """Drop the entry under ``key`` (which must exist)."""
        row = self._rows.pop(key)
        self._keys.remove(key)
        self.bytes -= len(row[0])

    def load(self, entries: Iterable[Entry]) -> None:
        """Fill an empty table with ``entries`` (distinct keys, any order) in one step."""
        assert not self._rows, "load() needs an empty table"
        for entry in entries:
            self._rows[entry.key] = _row(entry)
            self.bytes += len(entry.value)
        self._keys = SortedList(self._rows)

    def keys(
        self, low: str, high: str | None, *, after: str | None = None, reverse: bool = False
    ) -> Iterator[str]:
        """The keys ``k`` with ``low <= k`` (and ``k < high`` when set) strictly after the
        cursor ``after`` in the walk's direction (ascending, or descending when ``reverse``)."""
        if reverse:
            if after is not None and (high is None or after < high):
                high = after
            return self._keys.irange(low, high, inclusive=(True, False), reverse=True)
        if after is not None and after >= low:
            return self._keys.irange(after, high, inclusive=(False, False))
        return self._keys.irange(low, high, inclusive=(True, False))

    def entries(self) -> Iterator[Entry]:
        """Every entry, in key order."""
        rows = self._rows
        for key in self._keys:
            yield Entry(key, *rows[key])
