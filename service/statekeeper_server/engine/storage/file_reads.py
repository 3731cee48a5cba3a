"""Reads of a file store's durable state: the memtable over the index.

A key the memtable holds (changed since the last flush) is read from it, ``None`` meaning
deleted; any other key from the index. Listings merge the two in key order. Scans examine at
most ``SCAN_EXAMINED`` entries per page (a sparse pattern over many keys gets a short page
with a cursor), and a scan at an earlier revision rebuilds the changed keys from the retained
history in the index and the memtable.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterator

from statekeeper_server.engine.storage.backend import Entry, KeyRange, Page, ScanPage, prefix_end
from statekeeper_server.engine.storage.file_index import FileIndex
from statekeeper_server.engine.storage.file_memtable import Memtable
from statekeeper_server.engine.storage.glob import GlobPattern
from statekeeper_server.engine.storage.memory import compacted_error

#: Entries one scan page examines at most (a sparse pattern returns a short page).
SCAN_EXAMINED = 4096


def live(entry: Entry | None, now: float) -> Entry | None:
    """``entry`` unless its expiry time has passed."""
    if entry is not None and entry.expire_at is not None and entry.expire_at <= now:
        return None
    return entry


def _first(item: tuple[str, Entry | None]) -> str:
    return item[0]


class DurableReader:
    """Reads the durable state of one store (see the module docstring)."""

    def __init__(self, index: FileIndex, memtable: Memtable) -> None:
        self._index = index
        self._memtable = memtable

    def stored(self, key: str) -> Entry | None:
        """The durable entry under ``key``, even when its expiry time has passed."""
        known, entry = self._memtable.lookup(key)
        return entry if known else self._index.get(key)

    def _merged(
        self, low: str, high: str | None, after: str | None, reverse: bool, keys_only: bool
    ) -> Iterator[tuple[str, Entry | None]]:
        """The durable entries with ``low <= key < high`` after the cursor, in the walk's
        order (None: deleted since the last flush)."""
        index, memtable = self._index, self._memtable
        stored = ((e.key, e) for e in index.entries_in(low, high, after, reverse, keys_only))
        recent = ((key, None) for key in memtable.keys_in(low, high, after, reverse))
        previous: str | None = None
        for key, entry in heapq.merge(stored, recent, key=_first, reverse=reverse):
            if key == previous:
                continue
            previous = key
            known, newer = memtable.lookup(key)
            yield key, newer if known else entry

    def range(
        self, prefix: str, pattern: GlobPattern | None, start_after: str, limit: int, revision: int
    ) -> Page:
        """Live entries in key order under ``prefix`` matching ``pattern``, after
        ``start_after``, at most ``limit``, reported as of ``revision``."""
        now = time.time()
        low = prefix + (pattern.literal_prefix if pattern is not None else "")
        after = start_after if start_after and start_after >= low else None
        entries: list[Entry] = []
        more = False
        with self._index.reading():
            for key, entry in self._merged(low, prefix_end(low), after, False, False):
                found = live(entry, now)
                if found is None:
                    continue
                if pattern is not None and not pattern.matches(key[len(prefix) :]):
                    continue
                if len(entries) == limit:
                    more = True
                    break
                entries.append(found)
        return Page(entries, revision, more)

    def scan(
        self,
        span: KeyRange,
        after: str | None,
        reverse: bool,
        limit: int,
        revisions: tuple[int, int],
        keys_only: bool,
        max_bytes: int | None,
    ) -> ScanPage:
        """One scan page of ``span``; ``revisions`` is (the revision asked for, 0 for now; the
        store's current revision)."""
        revision, at = revisions
        with self._index.reading():
            then: dict[str, Entry | None] = {}
            if 0 < revision < at:
                then = self._state_at(revision, span)
                at = revision
            current = self._merged(span.low, span.high, after, reverse, keys_only)
            return _page(span, current, then, at, after, reverse, limit, max_bytes)

    def _state_at(self, revision: int, span: KeyRange) -> dict[str, Entry | None]:
        """The entries (None: absent) at ``revision`` of the keys of ``span`` changed since."""
        compacted_through = self._memtable.compacted_through
        if revision <= compacted_through:
            raise compacted_error(compacted_through + 1, revision)
        state = self._index.changed_since(revision, span)
        for _, events in self._memtable.history_from(revision + 1) or ():
            for event in events:
                if event.key not in state and span.holds(event.key):
                    state[event.key] = event.prev
        return state


def _page(
    span: KeyRange,
    current: Iterator[tuple[str, Entry | None]],
    then: dict[str, Entry | None],
    at: int,
    after: str | None,
    reverse: bool,
    limit: int,
    max_bytes: int | None,
) -> ScanPage:
    """One scan page from the current entries merged with the historic ones of ``then``."""
    changed = sorted(
        (k for k in then if after is None or (k < after if reverse else k > after)),
        reverse=reverse,
    )
    now = time.time()
    merged = heapq.merge(current, ((key, None) for key in changed), key=_first, reverse=reverse)
    entries: list[Entry] = []
    size = examined = 0
    previous: str | None = None
    for key, found in merged:
        if key == previous:
            continue
        if examined == SCAN_EXAMINED and previous is not None:
            return ScanPage(entries, at, True, previous)
        previous = key
        examined += 1
        entry = then[key] if key in then else found
        if entry is None or (not then and live(entry, now) is None):
            continue
        if span.pattern is not None and not span.pattern.matches(key[len(span.prefix) :]):
            continue
        if len(entries) == limit or (max_bytes is not None and size >= max_bytes):
            return ScanPage(entries, at, True, entries[-1].key)
        entries.append(entry)
        size += len(entry.value) + len(entry.key)
    return ScanPage(entries, at, False, "")
