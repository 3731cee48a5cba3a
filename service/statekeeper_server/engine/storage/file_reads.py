"""Reads of a file store's durable state: the memtable over the index.

A key the memtable holds (changed since the last flush) is read from it, ``None`` meaning
deleted; any other key from the index. Scans merge the two in key order and examine at most
:data:`~statekeeper_server.engine.storage.backend.SCAN_BUDGET` keys per page (a sparse pattern
over many keys gets a short page with a cursor); a scan at an earlier revision rebuilds the
keys changed since from the retained history in the index and the memtable.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Iterable, Iterator

from statekeeper_server.engine.storage.backend import Entry, KeyRange, ScanPage, scan_page
from statekeeper_server.engine.storage.file_index import FileIndex
from statekeeper_server.engine.storage.file_memtable import Memtable
from statekeeper_server.engine.storage.memory import compacted_error

#: Keys a read at an earlier revision resolves together (one statement of the index each).
RESOLVE_CHUNK = 128


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

    def stored_many(self, keys: Iterable[str]) -> dict[str, Entry | None]:
        """The durable entries of ``keys`` (None: absent), even when expired."""
        found: dict[str, Entry | None] = {}
        missing: list[str] = []
        for key in keys:
            known, entry = self._memtable.lookup(key)
            if known:
                found[key] = entry
            else:
                missing.append(key)
        stored = self._index.get_many(missing) if missing else {}
        for key in missing:
            found[key] = stored.get(key)
        return found

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
            current = self._merged(span.low, span.high, after, reverse, keys_only)
            if 0 < revision < at:
                return self._scan_at(span, current, revision, (after, reverse), limit, max_bytes)
            now = time.time()
            return scan_page(span, current, lambda _, found: live(found, now), at, limit, max_bytes)

    def _scan_at(
        self,
        span: KeyRange,
        current: Iterator[tuple[str, Entry | None]],
        revision: int,
        walk: tuple[str | None, bool],
        limit: int,
        max_bytes: int | None,
    ) -> ScanPage:
        """One page at an earlier ``revision``: the current entries merged, in the walk's
        order (``walk``: the cursor and the direction), with the keys that have retained
        changes (in the index and the memtable); a key changed since reads as the previous
        entry of its first later change, found by one seek of the index's key index (or by
        bisecting the memtable's versions), so a page costs what it examines, not the history
        since ``revision``."""
        compacted_through = self._memtable.compacted_through
        if revision <= compacted_through:
            raise compacted_error(compacted_through + 1, revision)
        after, reverse = walk
        history, index = self._memtable.history, self._index
        changed = heapq.merge(
            index.changed_keys(span.low, span.high, after, reverse),
            history.keys(span.low, span.high, after=after, reverse=reverse),
            reverse=reverse,
        )
        # The current entries first: merge keeps that order between equal keys.
        merged = heapq.merge(current, ((k, None) for k in changed), key=_first, reverse=reverse)
        found = self._resolved(span, merged, revision)
        return scan_page(span, found, _given, revision, limit, max_bytes)

    def _resolved(
        self, span: KeyRange, merged: Iterator[tuple[str, Entry | None]], revision: int
    ) -> Iterator[tuple[str, Entry | None]]:
        """``merged`` (the current entries and the changed keys, a key possibly twice in a
        row) once per key, each with its entry at ``revision``, resolved a chunk of keys at a
        time: a key changed since reads as the previous entry of its first later change, found
        in the index's history (one statement per chunk) or, where only the memtable holds a
        later change, by bisecting its versions."""
        history, previous = self._memtable.history, None
        while chunk := list(itertools.islice(merged, RESOLVE_CHUNK)):
            pairs = []
            for key, entry in chunk:
                if key != previous:
                    pairs.append((key, entry))
                    previous = key
            wanted = [key for key, _ in pairs if span.matches(key)]
            then = self._index.entries_at(wanted, revision)
            for key, entry in pairs:
                if key in then:
                    yield key, then[key]
                    continue
                changed, earlier = history.at(key, revision)
                yield key, earlier if changed else entry


def _given(_: str, entry: Entry | None) -> Entry | None:
    return entry
