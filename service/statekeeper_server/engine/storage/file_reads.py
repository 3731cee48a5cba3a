"""Reads of a file store's durable state: the memtable over the index.

A key the memtable holds (changed since the last flush) is read from it, ``None`` meaning
deleted; any other key from the index. Scans merge the two in key order and examine at most
:data:`~statekeeper_server.engine.storage.backend.SCAN_BUDGET` keys per page (a sparse pattern
over many keys gets a short page with a cursor); a scan at an earlier revision rebuilds the
keys changed since from the retained history in the index and the memtable.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable, Iterator

from statekeeper_server.engine.storage.backend import Entry, KeyRange, ScanPage, scan_page
from statekeeper_server.engine.storage.file_index import FileIndex
from statekeeper_server.engine.storage.file_memtable import Memtable
from statekeeper_server.engine.storage.memory import compacted_error


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
        history = self._memtable.history
        for key in history.keys(span.low, span.high):
            if key not in state:
                changed, entry = history.at(key, revision)
                if changed:
                    state[key] = entry
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

    def entry_of(key: str, found: Entry | None) -> Entry | None:
        if key in then:
            return then[key]
        return found if then else live(found, now)

    return scan_page(span, merged, entry_of, at, limit, max_bytes)
