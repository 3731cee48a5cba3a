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
  consistent with the revision it reports. Only SQLite's page cache and the operating system's
  file cache hold data: memory follows the working set, not the store's size.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
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
#: SQLite page cache of the reading connection, in KiB (the working set beyond it is served
#: from the operating system's file cache).
READ_CACHE_KIB = 64 * 1024

_SCHEMA = """
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
        #: What watchers read (attached by the backend, which owns the recent history).
        self.feed: Feed | None = None

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
            for start in range(0, len(deletes), STATEMENT_ROWS):
                chunk = deletes[start : start + STATEMENT_ROWS]
                marks = ", ".join("?" * len(chunk))
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
        for start in range(0, len(wanted), CHUNK_ROWS):
            chunk = wanted[start : start + CHUNK_ROWS]
            marks = ", ".join("?" * len(chunk))
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
        bounds: list[str] = ["key >= ?"]
        values: list[Any] = [encode_key(low)]
        if high is not None:
            bounds.append("key < ?")
            values.append(encode_key(high))
        cursor = None if after is None else encode_key(after)
        while True:
            where = list(bounds)
            arguments = list(values)
            if cursor is not None:
                where.append("key < ?" if reverse else "key > ?")
                arguments.append(cursor)
            rows = self._reader.execute(
                f"SELECT {columns} FROM entries WHERE {' AND '.join(where)} "
                f"ORDER BY key {order} LIMIT {CHUNK_ROWS}",
                arguments,
            ).fetchall()
            for row in rows:
                yield _entry(row)
            if len(rows) < CHUNK_ROWS:
                return
            cursor = rows[-1][0]

    def changed_since(self, revision: int, span: KeyRange) -> dict[str, Entry | None]:
        """The entries (None: absent) at ``revision`` of the keys of ``span`` changed since."""
        where, arguments = _key_bounds(span.low, span.high)
        rows = self._reader.execute(
            "SELECT key, prev_value, prev_create, prev_mod, prev_version, prev_expire "
            f"FROM history WHERE revision > ? AND {where} ORDER BY id",
            (revision, *arguments),
        )
        state: dict[str, Entry | None] = {}
        for raw_key, value, create, mod, version, expire in rows:
            key = _decode_key(raw_key)
            if key not in state:
                prev = None if mod is None else Entry(key, value, create, mod, version, expire)
                state[key] = prev
        return state

    def history(
        self, first: int, last: int, low: str, high: str | None, limit: int
    ) -> tuple[list[tuple[int, tuple[Event, ...]]], int]:
        """The retained events of revisions ``first`` through ``last`` on keys in
        ``[low, high)``, grouped by revision, oldest first, and the newest revision covered:
        ``last``, or less when reading stopped after the revision that holds the
        ``limit``-th event (whole revisions only), so a page reads what it returns."""
        where, arguments = _key_bounds(low, high)
        select = f"SELECT {_HISTORY_COLUMNS} FROM history WHERE "
        rows = self._reader.execute(
            f"{select}revision BETWEEN ? AND ? AND {where} ORDER BY id LIMIT ?",
            (first, last, *arguments, limit),
        ).fetchall()
        if rows and len(rows) == limit:  # the last revision read may go on
            last = rows[-1][0]
            rest = self._reader.execute(
                f"{select}revision = ? AND {where} ORDER BY id", (last, *arguments)
            ).fetchall()
            rows = [row for row in rows if row[0] != last] + rest
        grouped: list[tuple[int, tuple[Event, ...]]] = []
        events: list[Event] = []
        for row in rows:
            if events and events[-1].revision != row[0]:
                grouped.append((events[-1].revision, tuple(events)))
                events = []
            events.append(_event(row))
        if events:
            grouped.append((events[-1].revision, tuple(events)))
        return grouped, last

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
        """Close every connection (the last close checkpoints and removes SQLite's WAL)."""
        for connection in (self._reader, self._writer):
            with contextlib.suppress(sqlite3.Error):
                connection.close()


def _key_bounds(low: str, high: str | None) -> tuple[str, tuple[bytes, ...]]:
    if high is None:
        return "key >= ?", (encode_key(low),)
    return "key >= ? AND key < ?", (encode_key(low), encode_key(high))
