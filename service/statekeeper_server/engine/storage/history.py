"""The retained change history of an in-process store, kept where the garbage collector does
not walk it and indexed by key, so that neither a full collection nor a read at an earlier
revision costs time in the size of the history.

* **No objects for the collector.** A revision's events are kept as one flat tuple of
  strings, bytes and numbers, :data:`FIELDS` per event (the value objects are those the store
  holds anyway). CPython stops tracking such a tuple at the first collection it survives (a
  tuple of tuples can take several), so a history of a million
  events adds nothing to later full (generation 2) collections; ``Event`` and ``Entry`` objects
  (which the collector tracks for as long as they live) are built only when a page is read.
  The revisions and sizes are two arrays, and each key's versions a ``bytearray`` (which the
  collector never tracks, unlike an ``array``).
* **Versions by key.** Every key with a retained change has its changes' positions, in
  revision order, packed as ``revision << 24 | index within the revision`` (8 bytes each), and
  the keys are kept sorted: a read at an earlier revision bisects the versions of the keys its
  page examines, instead of walking every revision since.
* **Trimming** drops the oldest revisions a bounded step at a time (at most about
  :data:`DROP_STEP` events per call, whole revisions), so forgetting a long stretch of history
  is spread over the commits that follow instead of stalling one of them: :meth:`trim` keeps
  the history within a revision count and a byte size, :meth:`drop_through` forgets what
  another store now holds.
"""

from __future__ import annotations

import bisect
import itertools
import struct
from array import array
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from sortedcontainers import SortedList

from statekeeper_server.engine.storage.backend import Entry, Event, EventType, KeyRange, events_size
from statekeeper_server.engine.storage.keytable import walk
from statekeeper_server.engine.storage.shardedmap import ShardedMap

#: Bits of a version code that hold the event's index within its revision.
_INDEX_BITS = 24
_CODE = struct.Struct("q")  # native order, as memoryview.cast("q") reads it
_TYPES = {kind.value: kind for kind in EventType}


#: Items per event in a revision's tuple (see :func:`_flat`).
FIELDS = 11
#: Events one call forgets at most (whole revisions, at least one): about 1-3 ms at 1M keys.
DROP_STEP = 1024


def _flat(event: Event) -> tuple[Any, ...]:
    """One event as a tuple of atoms: type, key, then the entry's and the previous entry's
    value, create revision, version and expiry (None when absent), and the previous mod."""
    entry, prev = event.entry, event.prev
    head: tuple[Any, ...] = (event.type.value, event.key)
    if entry is None:
        head += (None, 0, 0, None)
    else:
        head += (entry.value, entry.create_revision, entry.version, entry.expire_at)
    if prev is None:
        return (*head, None, 0, 0, 0, None)
    previous = (prev.value, prev.create_revision, prev.mod_revision, prev.version)
    return (*head, *previous, prev.expire_at)


def _previous(item: tuple[Any, ...], at: int) -> Entry | None:
    """The previous entry of the event at offset ``at`` of a revision's tuple."""
    value = item[at + 6]
    if value is None:
        return None
    return Entry(item[at + 1], value, item[at + 7], item[at + 8], item[at + 9], item[at + 10])


def flat_events(item: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
    """The events of one revision's tuple (see :meth:`RetainedHistory.export`) without
    building objects: (type code, key, value, create revision, version, expiry time, then the
    previous entry's value, create revision, mod revision, version, expiry time), the entry's
    four and the previous entry's five None where there is none."""
    for at in range(0, len(item), FIELDS):
        head = item[at : at + 2]
        entry = item[at + 2 : at + 6] if item[at + 2] is not None else (None,) * 4
        prev = item[at + 6 : at + 11] if item[at + 6] is not None else (None,) * 5
        yield head + entry + prev


def _event(revision: int, item: tuple[Any, ...], at: int) -> Event:
    """The event at offset ``at`` of a revision's tuple."""
    key, value = item[at + 1], item[at + 2]
    entry = None
    if value is not None:
        entry = Entry(key, value, item[at + 3], revision, item[at + 4], item[at + 5])
    return Event(_TYPES[item[at]], key, revision, entry, _previous(item, at))


class RetainedHistory:
    """The revisions of a store's change history, oldest first (see the module docstring)."""

    __slots__ = (
        "_items",
        "_keys",
        "_revisions",
        "_sizes",
        "_trimming",
        "_versions",
        "bytes",
    )

    def __init__(self) -> None:
        self._revisions = array("q")
        self._sizes = array("q")
        self._items: list[tuple[Any, ...]] = []
        self._versions: ShardedMap[bytearray] = ShardedMap()
        #: Every key with retained versions, sorted (a key enters on its first retained
        #: change, at O(log n), and leaves when its last one is dropped).
        self._keys = SortedList()
        #: The :func:`events_size` of every retained revision together.
        self.bytes = 0
        #: Whether :meth:`trim` has started and not yet reached its goal.
        self._trimming = False

    def __len__(self) -> int:
        return len(self._items)

    def oldest_after(self, revision: int) -> int | None:
        """The oldest retained revision after ``revision`` (None: there is none)."""
        place = bisect.bisect_right(self._revisions, revision)
        return self._revisions[place] if place < len(self._revisions) else None

    def append(self, revision: int, events: Sequence[Event]) -> int:
        """Retain the events of ``revision`` (newer than every retained one); their size."""
        code = revision << _INDEX_BITS
        versions, pack = self._versions, _CODE.pack
        for index, event in enumerate(events):
            found = versions.get(event.key)
            if found is None:
                versions[event.key] = bytearray(pack(code | index))
                self._keys.add(event.key)
            else:
                found += pack(code | index)
        size = events_size(events)
        self._revisions.append(revision)
        self._sizes.append(size)
        self._items.append(tuple(itertools.chain.from_iterable(map(_flat, events))))
        self.bytes += size
        return size

    def trim(self, revisions: int, size: int) -> int:
        """One step of keeping at most ``revisions`` revisions and, when ``size`` is set, at
        most ``size`` bytes (the newest revision always stays); the newest revision dropped
        (0: none). Trimming starts once ``revisions`` is exceeded by a quarter or ``size``
        bytes are exceeded (so a commit does not shift the arrays each time), and goes on at
        every later call, :data:`DROP_STEP` events at a time, until at most ``revisions``
        revisions and three quarters of ``size`` bytes remain."""
        items, sizes = self._items, self._sizes
        excess = len(items) - revisions
        if not self._trimming:
            over_count = excess > 0 and excess >= revisions // 4
            self._trimming = over_count or bool(size and self.bytes > size)
            if not self._trimming:
                return 0
        goal = self.bytes - size * 3 // 4 if size else 0
        cut = freed = events = 0
        while cut < len(items) - 1 and (cut < excess or freed < goal):
            if events >= DROP_STEP:
                break
            freed += sizes[cut]
            events += len(items[cut]) // FIELDS
            cut += 1
        else:
            self._trimming = False
        return self._drop(cut)

    def drop_through(self, revision: int) -> int:
        """One step of forgetting the revisions up to ``revision``: the oldest of them, about
        :data:`DROP_STEP` events' worth; the newest revision dropped (0: none)."""
        count, items = self.count_through(revision), self._items
        cut = events = 0
        while cut < count and events < DROP_STEP:
            events += len(items[cut]) // FIELDS
            cut += 1
        return self._drop(cut)

    def _drop(self, count: int) -> int:
        """Forget the ``count`` oldest revisions; the newest revision dropped (0: none)."""
        if count <= 0:
            return 0
        through = self._revisions[count - 1]
        dropped = Counter(key for item in self._items[:count] for key in item[1::FIELDS])
        versions, gone = self._versions, []
        for key, number in dropped.items():
            found = versions[key]
            if number * _CODE.size == len(found):
                del versions[key]
                gone.append(key)
            else:
                del found[: number * _CODE.size]
        if len(gone) * 4 > len(self._keys):  # sorting the rest is cheaper
            self._keys = SortedList(versions)
        else:
            for key in gone:
                self._keys.discard(key)
        self.bytes -= sum(self._sizes[:count])
        del self._items[:count]
        del self._revisions[:count]
        del self._sizes[:count]
        return through

    def count_through(self, revision: int) -> int:
        """How many retained revisions are at most ``revision``."""
        return bisect.bisect_right(self._revisions, revision)

    def export(self, after: int) -> list[tuple[int, tuple[Any, ...]]]:
        """The retained revisions after ``after`` as (revision, tuple) pairs, a copy another
        thread may read while this history changes (:func:`events_of` turns each into
        events)."""
        start = bisect.bisect_right(self._revisions, after)
        return list(zip(self._revisions[start:], self._items[start:], strict=True))

    def at(self, key: str, revision: int) -> tuple[bool, Entry | None]:
        """(True, the entry of ``key`` at ``revision``, None where absent) when the key
        changed after ``revision`` (the previous entry of its first later change), else
        (False, None): the key is as it is now."""
        found = self._versions.get(key)
        if found is None:
            return False, None
        codes = memoryview(found).cast("q")
        try:
            place = bisect.bisect_left(codes, (revision + 1) << _INDEX_BITS)
            if place == len(codes):
                return False, None
            code = codes[place]
        finally:
            codes.release()
        position = bisect.bisect_left(self._revisions, code >> _INDEX_BITS)
        index = code & ((1 << _INDEX_BITS) - 1)
        return True, _previous(self._items[position], index * FIELDS)

    def keys(
        self, low: str, high: str | None, *, after: str | None = None, reverse: bool = False
    ) -> Iterator[str]:
        """The keys with retained changes in ``[low, high)`` strictly after ``after`` in the
        walk's direction, ascending or descending."""
        return walk(self._keys, low, high, after, reverse)

    def page(
        self, span: KeyRange, first: int, last: int, limit: int
    ) -> tuple[tuple[Event, ...], int]:
        """The events on keys of ``span`` in revisions ``first`` to ``last``, examining at most
        ``limit`` revisions and none after the one that brings the page to ``limit`` events;
        returns them and the newest revision covered."""
        revisions, items = self._revisions, self._items
        start = position = bisect.bisect_left(revisions, first)
        stop = min(len(items), start + limit)
        events: list[Event] = []
        while position < stop and revisions[position] <= last and len(events) < limit:
            revision = revisions[position]
            item = items[position]
            for at in range(0, len(item), FIELDS):
                if span.matches(item[at + 1]):
                    events.append(_event(revision, item, at))
            position += 1
        covered = last
        if position < len(items) and revisions[position] <= last:  # stopped at a limit
            covered = revisions[position - 1] if position > start else first - 1
        return tuple(events), covered
