"""The file backend's index: live entries, retained watch history and the store's figures in
one SQLite database (``snapshot.dat``), read in place instead of loaded into memory.

* **Tables.** ``entries`` (one row per live key, a unique index on the key; keys are UTF-8 BLOBs,
  whose byte order is code point order), ``history`` (one row per event of the retained watch
  history, with the entry and the previous entry, in revision order) and ``meta`` (one row: format
  version, revision, the newest compacted revision, key count and value bytes). A partial index on
  ``expire_at`` finds the next expiry without a scan.
* **Who writes.** Only a compaction writes, from a housekeeping thread: :meth:`FileIndex.flush`
  commits what the backend's memtable gathered since the last flush (the log holds it durably
  meanwhile) in one SQLite transaction of multi-row statements (:func:`insert_rows`: the
  thread takes the GIL back once per few hundred rows, not once per row), in WAL mode with
  ``synchronous=FULL``, so it is durable before the log segments it covers are deleted.
  SQLite's automatic checkpoints run in that thread too.
* **Who reads.** The event loop reads through its own connection; every read is one SQLite read
  transaction (:meth:`FileIndex.reading` pins one across several statements), so a page is
  consistent with the revision it reports. A replay's history pages are read in a thread of
  their own, through a third connection (:meth:`FileIndex.history`). Only SQLite's page cache
  and the operating system's file cache hold data: memory follows the working set, not the
  store's size.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from statekeeper_server.engine.storage.backend import Entry, Event, KeyRange, WatchUpdate
from statekeeper_server.engine.storage.file_log import EVENT_CODES, EVENT_TYPES, fsync_dir
from statekeeper_server.engine.storage.file_watch import Feed
from statekeeper_server.engine.storage.glob import GlobPattern
from statekeeper_server.engine.storage.history import flat_events

SNAPSHOT_NAME = "snapshot.dat"
#: The format version of ``snapshot.dat`` this module writes (1: the framed snapshot of earlier
#: releases, migrated on open by :mod:`~statekeeper_server.engine.storage.file_migrate`).
INDEX_VERSION = 2
SQLITE_MAGIC = b"SQLite format 3\x00"
#: Rows fetched per statement when a read walks a key range.
CHUNK_ROWS = 256
#: Rows written per statement by a flush (12 columns each at most: within SQLite's limit of
#: 32,766 parameters per statement).
STATEMENT_ROWS = 256
#: Greater than every stored key (no UTF-8 text holds the byte 0xFF).
_NO_KEY = b"\xff"
#: History rows one page of a replay (or of an earlier-revision read) examines at most, whole
#: revisions aside: a page stops at the end of the revision in which it reaches this many.
HISTORY_BUDGET = 1024
#: SQLite page cache of the reading connection, in KiB (the working set beyond it is served
#: from the operating system's file cache).
READ_CACHE_KIB = 64 * 1024

#: Finds a key's first retained change after a revision, and walks the keys with retained
#: changes in key order (for reads at an earlier revision; created on open where a store of
#: this format predates it).
_HISTORY_KEY_INDEX = "CREATE INDEX IF NOT EXISTS history_key ON history(key, revision);\n"
_SCHEMA = (
    """
CREATE TABLE meta(
    id INTEGER PRIMARY KEY CHECK (id = 0), version INTEGER NOT NULL, revision INTEGER NOT NULL,
    compacted_through INTEGER NOT NULL, keys INTEGER NOT NULL, bytes INTEGER NOT NULL);
CREATE TABLE entries(
    id INTEGER PRIMARY KEY, key BLOB NOT NULL UNIQUE, value BLOB NOT NULL,
    create_revision INTEGER NOT NULL, mod_revision INTEGER NOT NULL, version INTEGER NOT NULL,
    expire_at REAL);
CREATE INDEX entries_expiry ON entries(expire_at, key) WHERE expire_at IS NOT NULL;
CREATE TABLE history(
    id INTEGER PRIMARY KEY, revision INTEGER NOT NULL, type INTEGER NOT NULL, key BLOB NOT NULL,
    value BLOB, create_revision INTEGER, version INTEGER, expire_at REAL,
    prev_value BLOB, prev_create INTEGER, prev_mod INTEGER, prev_version INTEGER,
    prev_expire REAL);
CREATE INDEX history_revision ON history(revision);
"""
    + _HISTORY_KEY_INDEX
)
_ENTRY_COLUMNS = "key, value, create_revision, mod_revision, version, expire_at"
_KEY_COLUMNS = "key, x'', create_revision, mod_revision, version, expire_at"
#: Insert statements as (head, tail): the rows' ``VALUES`` groups go between them.
_INSERT_ENTRY = (f"INSERT INTO entries({_ENTRY_COLUMNS})", "")
_UPSERT = (
    _INSERT_ENTRY[0],
    " ON CONFLICT(key) DO UPDATE "
    "SET value = excluded.value, create_revision = excluded.create_revision, "
    "mod_revision = excluded.mod_revision, version = excluded.version, "
    "expire_at = excluded.expire_at",
)
_HISTORY_COLUMNS = (
    "revision, type, key, value, create_revision, version, expire_at, "
    "prev_value, prev_create, prev_mod, prev_version, prev_expire"
)
_INSERT_HISTORY = (f"INSERT INTO history({_HISTORY_COLUMNS})", "")
_GET = f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE key = ?"
_GET_MANY = f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE key IN "


def encode_key(key: str) -> bytes:
    """A key as stored: UTF-8 (surrogates kept), so byte order is code point order."""
    return key.encode("utf-8", "surrogatepass")


def _decode_key(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


def insert_rows(
    connection: sqlite3.Connection, statement: tuple[str, str], rows: Iterable[Sequence[Any]]
) -> None:
    """Insert ``rows`` (equal-length tuples) with ``statement`` (see :data:`_INSERT_ENTRY`),
    :data:`STATEMENT_ROWS` rows per SQLite statement. The sqlite3 module lets go of the GIL
    while SQLite works and takes it back after every statement; ``executemany`` runs one
    statement per row, so a flush thread would trade the GIL with the event loop once per
    row, and each read on the loop would wait for it (up to the 5 ms switch interval) every
    time; here it is once per few hundred rows."""
    head, tail = statement
    remaining = iter(rows)
    while chunk := list(itertools.islice(remaining, STATEMENT_ROWS)):
        group = "(" + ", ".join("?" * len(chunk[0])) + ")"
        values = ", ".join([group] * len(chunk))
        connection.execute(f"{head} VALUES {values}{tail}", list(itertools.chain(*chunk)))


def _chunks(items: Sequence[Any], size: int) -> Iterator[tuple[Sequence[Any], str]]:
    """``items`` in slices of at most ``size``, each with its list of SQL placeholders
    (``?, ?, ?``)."""
    for start in range(0, len(items), size):
        chunk = items[start : start + size]
        yield chunk, ", ".join("?" * len(chunk))


def _entry(row: Sequence[Any]) -> Entry:
    key, value, create_revision, mod_revision, version, expire_at = row
    return Entry(_decode_key(key), value, create_revision, mod_revision, version, expire_at)


def _history_row(revision: int, event: Event) -> tuple[Any, ...]:
    entry, prev = event.entry, event.prev
    row: tuple[Any, ...] = (revision, EVENT_CODES[event.type], encode_key(event.key))
    if entry is not None:
        row += (entry.value, entry.create_revision, entry.version, entry.expire_at)
    else:
        row += (None, None, None, None)
    if prev is not None:
        row += (prev.value, prev.create_revision, prev.mod_revision, prev.version, prev.expire_at)
    else:
        row += (None, None, None, None, None)
    return row


def _event(row: Sequence[Any]) -> Event:
    revision, code, raw_key, value, create, version, expire, *previous = row
    key = _decode_key(raw_key)
    entry = None if value is None else Entry(key, value, create, revision, version, expire)
    prev_value, prev_create, prev_mod, prev_version, prev_expire = previous
    prev = None
    if prev_mod is not None:
        prev = Entry(key, prev_value, prev_create, prev_mod, prev_version, prev_expire)
    return Event(EVENT_TYPES[code], key, revision, entry, prev)


def _connect(path: Path, *, cache_kib: int = 2048) -> sqlite3.Connection:
    connection = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, cached_statements=64
    )
    connection.execute("PRAGMA busy_timeout = 60000")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute(f"PRAGMA cache_size = -{cache_kib}")
    return connection


def build_index(
    path: Path,
    revision: int = 0,
    compacted_through: int = 0,
    entries: Iterable[Entry] = (),
    history: Iterable[tuple[int, Sequence[Event]]] = (),
) -> None:
    """Write a complete index at ``path`` (a temporary name), durably, in one transaction."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode = DELETE")
        connection.executescript(_SCHEMA)
        connection.execute("BEGIN")
        keys = size = 0
        batch: list[tuple[Any, ...]] = []
        for entry in entries:
            keys += 1
            size += len(entry.value)
            batch.append((encode_key(entry.key), *_entry_fields(entry)))
            if len(batch) >= 10_000:
                insert_rows(connection, _INSERT_ENTRY, batch)
                batch.clear()
        insert_rows(connection, _INSERT_ENTRY, batch)
        insert_rows(
            connection,
            _INSERT_HISTORY,
            (_history_row(item, event) for item, events in history for event in events),
        )
        connection.execute(
            "INSERT INTO meta VALUES (0, ?, ?, ?, ?, ?)",
            (INDEX_VERSION, revision, compacted_through, keys, size),
        )
        connection.execute("COMMIT")
    finally:
        connection.close()
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _entry_fields(entry: Entry) -> tuple[Any, ...]:
    return (entry.value, entry.create_revision, entry.mod_revision, entry.version, entry.expire_at)


def install_new_index(base: Path) -> None:
    """Create an empty index as ``snapshot.dat``, atomically (a temporary file renamed)."""
    path = base / SNAPSHOT_NAME
    for suffix in ("-wal", "-shm"):  # left over by an index that was deleted by hand
        with contextlib.suppress(FileNotFoundError):
            (base / (SNAPSHOT_NAME + suffix)).unlink()
    temporary = base / (SNAPSHOT_NAME + ".tmp")
    build_index(temporary)
    os.replace(temporary, path)
    fsync_dir(base)


class FileIndex:
    """The SQLite index of one store directory (see the module docstring)."""

    def __init__(self, base: Path) -> None:
        self.path = base / SNAPSHOT_NAME
        self._writer = _connect(self.path)
        self._writer.execute("PRAGMA synchronous = FULL")
        self._writer.execute("PRAGMA journal_size_limit = 67108864")
        self._reader = _connect(self.path, cache_kib=READ_CACHE_KIB)
        row = self._writer.execute(
            "SELECT version, revision, compacted_through, keys, bytes FROM meta"
        ).fetchone()
        version, self.revision, self.compacted_through, self.keys, self.bytes = row
        if version != INDEX_VERSION:
            raise ValueError(f"unknown index version {version}")
        self._writer.execute(_HISTORY_KEY_INDEX)
        #: What watchers read (attached by the backend, which owns the recent history).
        self.feed: Feed | None = None
        #: How many history rows history and earlier-revision reads examined, ever (a measure
        #: of their work that does not grow with the history).
        self.examined = 0
        self._history_reader: sqlite3.Connection | None = None
        self._history_thread = ThreadPoolExecutor(1, thread_name_prefix="statekeeper-history")

    # -- writing (a housekeeping thread) ------------------------------------------------------

    def flush(
        self,
        state: dict[str, tuple[Any, ...]],
        history: Sequence[tuple[int, tuple[Any, ...]]],
        figures: tuple[int, int, int, int],
    ) -> None:
        """Commit, in one durable transaction, the ``state`` of the keys changed since the last
        flush (the memtable's rows: mod revision, value or None when deleted, create revision,
        version, expiry time), the retained ``history`` after it
        and the store's ``figures`` (revision, compacted_through, keys, bytes) as of that
        revision. Rows go to SQLite as they are, with no objects built per key."""
        revision, compacted_through, keys, size = figures
        puts = [
            (encode_key(key), value, create, mod, version, expire_at)
            for key, (mod, value, create, version, expire_at) in state.items()
            if value is not None
        ]
        deletes = [encode_key(key) for key, row in state.items() if row[1] is None]
        rows = [
            (revision, code, encode_key(key), *fields)
            for revision, item in history
            for code, key, *fields in flat_events(item)
        ]
        connection = self._writer
        connection.execute("BEGIN")
        try:
            insert_rows(connection, _UPSERT, puts)
            for chunk, marks in _chunks(deletes, STATEMENT_ROWS):
                connection.execute(f"DELETE FROM entries WHERE key IN ({marks})", chunk)
            connection.execute("DELETE FROM history WHERE revision <= ?", (compacted_through,))
            insert_rows(connection, _INSERT_HISTORY, rows)
            connection.execute(
                "UPDATE meta SET revision = ?, compacted_through = ?, keys = ?, bytes = ?",
                (revision, compacted_through, keys, size),
            )
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        self.revision = revision

    # -- reading (the event loop) -------------------------------------------------------------

    def history_sizes(self) -> list[tuple[int, int]]:
        """The (revision, size) of every revision of the retained history, oldest first, its
        size counted as :func:`~statekeeper_server.engine.storage.backend.events_size` does
        (keys in UTF-8 bytes)."""
        rows = self._reader.execute(
            "SELECT revision, SUM(length(key) + IFNULL(length(value), 0) "
            "+ IFNULL(length(prev_value), 0)) FROM history WHERE revision > ? "
            "GROUP BY revision ORDER BY revision",
            (self.compacted_through,),
        )
        return [(revision, size) for revision, size in rows]

    @contextlib.contextmanager
    def reading(self) -> Iterator[tuple[int, int]]:
        """Pin one read transaction for the block; yields (revision, compacted_through) as of
        that transaction."""
        connection = self._reader
        connection.execute("BEGIN")
        try:
            row = connection.execute("SELECT revision, compacted_through FROM meta").fetchone()
            yield row[0], row[1]
        finally:
            connection.execute("COMMIT")

    def get(self, key: str) -> Entry | None:
        """The stored entry under ``key``, even when its expiry time has passed."""
        row = self._reader.execute(_GET, (encode_key(key),)).fetchone()
        return None if row is None else _entry(row)

    def get_many(self, keys: Iterable[str]) -> dict[str, Entry]:
        """The stored entries of ``keys`` that exist, by key (a few statements for many keys)."""
        wanted = [encode_key(key) for key in keys]
        found: dict[str, Entry] = {}
        for chunk, marks in _chunks(wanted, CHUNK_ROWS):
            rows = self._reader.execute(f"{_GET_MANY}({marks})", chunk)
            for row in rows:
                entry = _entry(row)
                found[entry.key] = entry
        return found

    def entries_in(
        self, low: str, high: str | None, after: str | None, reverse: bool, keys_only: bool
    ) -> Iterator[Entry]:
        """The stored entries with ``low <= key < high`` (no bound when ``high`` is None),
        strictly after ``after`` in the walk's direction, in key order or reversed."""
        columns = _KEY_COLUMNS if keys_only else _ENTRY_COLUMNS
        order = "DESC" if reverse else "ASC"
        # One bound on each side, the cursor folded in: with two lower (or upper) bounds on the
        # key, SQLite seeks to one and filters by the other, so every chunk would walk the
        # keys from the range's start to the cursor again.
        bottom, bottom_test = encode_key(low), ">="
        top = None if high is None else encode_key(high)
        cursor = None if after is None else encode_key(after)
        while True:
            if cursor is not None and not reverse and cursor >= bottom:
                bottom, bottom_test = cursor, ">"
            elif cursor is not None and reverse and (top is None or cursor < top):
                top = cursor
            where, arguments = f"key {bottom_test} ?", [bottom]
            if top is not None:
                where += " AND key < ?"
                arguments.append(top)
            rows = self._reader.execute(
                f"SELECT {columns} FROM entries WHERE {where} "
                f"ORDER BY key {order} LIMIT {CHUNK_ROWS}",
                arguments,
            ).fetchall()
            for row in rows:
                yield _entry(row)
            if len(rows) < CHUNK_ROWS:
                return
            cursor = rows[-1][0]

    def entries_at(self, keys: Sequence[str], revision: int) -> dict[str, Entry | None]:
        """For each of ``keys`` whose history here holds a change after ``revision``: its entry
        at ``revision`` (the previous entry of the first such change; None where absent), by
        key. One statement; each key costs one seek of the key index."""
        found: dict[str, Entry | None] = {}
        for chunk, marks in _chunks([encode_key(key) for key in keys], CHUNK_ROWS):
            self.examined += len(chunk)
            rows = self._reader.execute(
                f"WITH wanted(key) AS (VALUES {marks.replace('?', '(?)')}) "
                "SELECT h.key, h.prev_value, h.prev_create, h.prev_mod, h.prev_version, "
                "h.prev_expire FROM wanted JOIN history AS h ON h.id = (SELECT id FROM history "
                "WHERE key = wanted.key AND revision > ? ORDER BY revision, id LIMIT 1)",
                (*chunk, revision),
            )
            for raw_key, value, create, mod, version, expire in rows:
                key = _decode_key(raw_key)
                found[key] = (
                    None if mod is None else Entry(key, value, create, mod, version, expire)
                )
        return found

    def changed_keys(
        self, low: str, high: str | None, after: str | None, reverse: bool
    ) -> Iterator[str]:
        """The distinct keys with retained changes in ``[low, high)`` strictly after ``after``
        in the walk's direction, in key order or reversed: each found by one seek of the key
        index past the one before, however many changes a key has."""
        bottom = encode_key(low)
        top = _NO_KEY if high is None else encode_key(high)
        if reverse:
            if after is not None:
                top = min(top, encode_key(after))
            step = "key < {0} AND key >= ?2 ORDER BY key DESC"
        else:
            if after is not None:
                bottom = max(bottom, encode_key(after) + b"\x00")
            step = "key >= {0} AND key < ?2 ORDER BY key"
        first = f"SELECT key FROM history WHERE {step.format('?1')} LIMIT 1"
        then = f"SELECT key FROM history WHERE {step.format('walk.key')} LIMIT 1"
        if not reverse:  # past every change of the key before
            then = then.replace("key >= walk.key", "key > walk.key")
        statement = (
            f"WITH RECURSIVE walk(key) AS (SELECT ({first}) UNION ALL "
            f"SELECT ({then}) FROM walk WHERE walk.key IS NOT NULL LIMIT {CHUNK_ROWS}) "
            "SELECT key FROM walk WHERE key IS NOT NULL"
        )
        start, bound = (top, bottom) if reverse else (bottom, top)
        while True:
            rows = self._reader.execute(statement, (start, bound)).fetchall()
            self.examined += len(rows)
            for (raw_key,) in rows:
                yield _decode_key(raw_key)
            if len(rows) < CHUNK_ROWS:
                return
            start = rows[-1][0] if reverse else rows[-1][0] + b"\x00"

    async def history(
        self, span: KeyRange, first: int, last: int, limit: int
    ) -> tuple[list[Event], int]:
        """The retained events of revisions ``first`` through ``last`` (at most the flushed
        revision) on keys of ``span``, oldest first, and the newest revision covered: ``last``,
        or less when the walk stopped at the end of the revision that brought the page to
        ``limit`` events or to :data:`HISTORY_BUDGET` examined rows (whole revisions only).

        Read in the index's history thread through a connection of its own, in one read
        transaction, so a replay's SQLite work never holds the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._history_thread, self._read_history, span, first, last, limit
        )

    def _read_history(
        self, span: KeyRange, first: int, last: int, limit: int
    ) -> tuple[list[Event], int]:
        if self._history_reader is None:
            self._history_reader = _connect(self.path, cache_kib=READ_CACHE_KIB // 4)
        connection = self._history_reader
        connection.execute("BEGIN")
        try:
            flushed = connection.execute("SELECT revision FROM meta").fetchone()[0]
            last = min(last, flushed)
            ids, last = self._walk_history(connection, span, first, last, limit)
            return _history_rows(connection, ids), last
        finally:
            connection.execute("COMMIT")

    def _walk_history(
        self, connection: sqlite3.Connection, span: KeyRange, first: int, last: int, limit: int
    ) -> tuple[list[int], int]:
        """The ids of the history rows on keys of ``span`` from revision ``first`` through
        ``last``, walking the revision index in (revision, id) order and reading only each
        row's key, so a page examines a bounded number of rows however sparse ``span`` is;
        and the newest revision walked whole."""
        low = encode_key(span.low)
        high = None if span.high is None else encode_key(span.high)
        rows = connection.execute(
            "SELECT revision, id, key FROM history WHERE revision BETWEEN ? AND ? "
            "ORDER BY revision, id",
            (first, last),
        )
        wanted: list[int] = []
        examined, current = 0, None
        try:
            for revision, row_id, raw_key in rows:
                if revision != current:
                    if current is not None and (len(wanted) >= limit or examined >= HISTORY_BUDGET):
                        last = current
                        break
                    current = revision
                examined += 1
                if raw_key >= low and (high is None or raw_key < high):
                    if span.pattern is None or span.matches(_decode_key(raw_key)):
                        wanted.append(row_id)
        finally:
            rows.close()
        self.examined += examined
        return wanted, last

    def expiring(self) -> Iterator[tuple[str, int, float]]:
        """Every stored (key, mod_revision, expire_at) with an expiry time, earliest first."""
        after: tuple[float, bytes] | None = None
        while True:
            where = "expire_at IS NOT NULL"
            arguments: tuple[Any, ...] = ()
            if after is not None:
                where = "expire_at IS NOT NULL AND (expire_at, key) > (?, ?)"
                arguments = after
            rows = self._reader.execute(
                f"SELECT key, mod_revision, expire_at FROM entries WHERE {where} "
                f"ORDER BY expire_at, key LIMIT {CHUNK_ROWS}",
                arguments,
            ).fetchall()
            for key, mod_revision, expire_at in rows:
                yield _decode_key(key), mod_revision, expire_at
            if len(rows) < CHUNK_ROWS:
                return
            after = (rows[-1][2], rows[-1][0])

    def watch(
        self,
        prefix: str,
        pattern: GlobPattern | None = None,
        *,
        start_revision: int = 0,
        progress_interval: float | None = None,
    ) -> AsyncIterator[WatchUpdate]:
        """The published changes under ``prefix`` (see :meth:`Feed.watch`)."""
        assert self.feed is not None
        return self.feed.watch(
            prefix, pattern, start_revision=start_revision, progress_interval=progress_interval
        )

    def close(self) -> None:
        """Close every connection (the last close checkpoints and removes SQLite's WAL), once
        a history read in flight is done."""
        self._history_thread.shutdown(wait=True)
        for connection in (self._history_reader, self._reader, self._writer):
            if connection is None:
                continue
            with contextlib.suppress(sqlite3.Error):
                connection.close()


def _history_rows(connection: sqlite3.Connection, ids: Sequence[int]) -> list[Event]:
    """The history rows ``ids`` (in (revision, id) order) as events, in that order."""
    events: list[Event] = []
    for chunk, marks in _chunks(ids, CHUNK_ROWS):
        rows = connection.execute(
            f"SELECT {_HISTORY_COLUMNS} FROM history WHERE id IN ({marks}) ORDER BY revision, id",
            chunk,
        )
        events.extend(_event(row) for row in rows)
    return events


def _key_bounds(low: str, high: str | None) -> tuple[str, tuple[bytes, ...]]:
    if high is None:
        return "key >= ?", (encode_key(low),)
    return "key >= ? AND key < ?", (encode_key(low), encode_key(high))
