"""The in-memory table of live entries: lookups by key and walks in key order, at any size.

Keys are kept in a :class:`sortedcontainers.SortedList`, so adding or removing a key costs
O(log n) and a walk starts anywhere in O(log n); a plain sorted list would move every later key
on each insertion (``bisect.insort`` is O(n)), which made bulk loads slow down as they grew.

An entry is stored as two ``bytes`` objects: its value (the very object the write brought) and
its revisions and expiry packed in 32 bytes (:data:`_META`), each in a map by key, rather than
as an :class:`~statekeeper_server.engine.storage.backend.Entry` object. Strings and bytes are
invisible to Python's cyclic garbage collector, and so are dicts that hold only them, so a
store of a million keys adds nothing to a full (generation 2) collection but the sorted key
list; a million ``Entry`` objects (or tuples, which put their dict back under the collector's
eye on every write) made each full collection walk all of them (over a second at 1M keys, in
the issue's measurements). ``Entry`` objects are built on read. Both maps are
:class:`~statekeeper_server.engine.storage.shardedmap.ShardedMap` objects, so that no single
growth rehashes the whole table.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Iterator

from sortedcontainers import SortedList

from statekeeper_server.engine.storage.backend import Entry
from statekeeper_server.engine.storage.shardedmap import ShardedMap

#: create revision, mod revision, version, expiry time (NaN: none).
_META = struct.Struct("<qqqd")


def _meta(entry: Entry) -> bytes:
    expire_at = math.nan if entry.expire_at is None else entry.expire_at
    return _META.pack(entry.create_revision, entry.mod_revision, entry.version, expire_at)


def walk(
    keys: SortedList, low: str, high: str | None, after: str | None, reverse: bool
) -> Iterator[str]:
    """The strings of the sorted ``keys`` in ``[low, high)`` (no upper bound when ``high`` is
    None) strictly after ``after`` in the walk's direction, ascending or descending."""
    if reverse:
        if after is not None and (high is None or after < high):
            high = after
        return keys.irange(low, high, inclusive=(True, False), reverse=True)
    if after is not None and after >= low:
        return keys.irange(after, high, inclusive=(False, False))
    return keys.irange(low, high, inclusive=(True, False))


class KeyTable:
    """Live entries by key, with the keys in code point order."""

    __slots__ = ("_keys", "_meta", "_values", "bytes")

    def __init__(self) -> None:
        self._values: ShardedMap[bytes] = ShardedMap()
        self._meta: ShardedMap[bytes] = ShardedMap()
        self._keys = SortedList()
        #: The total size of the stored values.
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def get(self, key: str) -> Entry | None:
        """The entry under ``key``, or None."""
        value = self._values.get(key)
        if value is None:
            return None
        create, mod, version, expire_at = _META.unpack(self._meta[key])
        expire = None if math.isnan(expire_at) else expire_at
        return Entry(key, value, create, mod, version, expire)

    def put(self, entry: Entry) -> None:
        """Store ``entry``, replacing the one under its key."""
        key = entry.key
        old = self._values.get(key)
        if old is None:
            self._keys.add(key)
        else:
            self.bytes -= len(old)
        self._values[key] = entry.value
        self._meta[key] = _meta(entry)
        self.bytes += len(entry.value)

    def remove(self, key: str) -> None:
        """Drop the entry under ``key`` (which must exist)."""
        value = self._values.pop(key)
        del self._meta[key]
        self._keys.remove(key)
        self.bytes -= len(value)

    def load(self, entries: Iterable[Entry]) -> None:
        """Fill an empty table with ``entries`` (distinct keys, any order) in one step."""
        assert not self._values, "load() needs an empty table"
        for entry in entries:
            self._values[entry.key] = entry.value
            self._meta[entry.key] = _meta(entry)
            self.bytes += len(entry.value)
        self._keys = SortedList(self._values)

    def keys(
        self, low: str, high: str | None, *, after: str | None = None, reverse: bool = False
    ) -> Iterator[str]:
        """The keys ``k`` with ``low <= k`` (and ``k < high`` when set) strictly after the
        cursor ``after`` in the walk's direction (ascending, or descending when ``reverse``)."""
        return walk(self._keys, low, high, after, reverse)

    def entries(self) -> Iterator[Entry]:
        """Every entry, in key order."""
        for key in self._keys:
            entry = self.get(key)
            assert entry is not None
            yield entry
