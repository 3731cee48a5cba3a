"""Opening a store written by earlier releases: the version-1 snapshot becomes the SQLite index.

Version 1 kept ``snapshot.dat`` as framed chunks (see
:mod:`~statekeeper_server.engine.storage.file_log`): a ``["snapshot", 1, revision,
compacted_through]`` header, ``["entries", [...]]`` and ``["history", [...]]`` chunks and an
``["end", entries, history]`` trailer. Its log segments have the same format as today's, so only
the snapshot needs converting: :func:`migrate_snapshot` reads it, writes the index to a
temporary file, syncs it and renames it over ``snapshot.dat``. Until that rename the old
snapshot is untouched, so a crash during the migration leaves the version-1 store as it was and
the next open starts the migration again; the log is replayed after it as usual.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from statekeeper_server.engine.storage.backend import Entry, Event
from statekeeper_server.engine.storage.file_index import SNAPSHOT_NAME, SQLITE_MAGIC, build_index
from statekeeper_server.engine.storage.file_log import (
    EVENT_TYPES,
    CorruptStoreError,
    fsync_dir,
    read_frames,
    value_in,
)

log = logging.getLogger("statekeeper.file")

LEGACY_SNAPSHOT_VERSION = 1


def needs_migration(base: Path) -> bool:
    """True when ``base`` holds a snapshot of an earlier format (not a SQLite index)."""
    path = base / SNAPSHOT_NAME
    if not path.exists():
        return False
    with open(path, "rb") as handle:
        return handle.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC


def _entry_in(item: Any, is_json: bool) -> Entry | None:
    if item is None:
        return None
    key, value, create_revision, mod_revision, version, expire_at = item
    return Entry(key, value_in(value, is_json), create_revision, mod_revision, version, expire_at)


def read_legacy_snapshot(
    path: Path,
) -> tuple[int, int, list[Entry], list[tuple[int, tuple[Event, ...]]]]:
    """A version-1 snapshot as (revision, compacted_through, entries, history)."""
    data = path.read_bytes()
    frames, good = read_frames(data)
    kinds = [obj[0] for _, obj, _ in frames]
    if good < len(data) or len(frames) < 2 or kinds[0] != "snapshot" or kinds[-1] != "end":
        raise CorruptStoreError(
            f"snapshot {str(path)!r} is damaged (at byte {good} of {len(data)}): "
            "restore the directory from a backup"
        )
    _, version, revision, compacted_through = frames[0][1]
    if version != LEGACY_SNAPSHOT_VERSION:
        raise CorruptStoreError(f"snapshot {str(path)!r} has unknown version {version}")
    entries: list[Entry] = []
    history: list[tuple[int, tuple[Event, ...]]] = []
    for is_json, obj, _ in frames[1:-1]:
        if obj[0] == "entries":
            entries += [entry for entry in (_entry_in(i, is_json) for i in obj[1]) if entry]
        elif obj[0] == "history":
            for item_revision, raw_events in obj[1]:
                events = tuple(
                    Event(
                        EVENT_TYPES[code],
                        key,
                        item_revision,
                        _entry_in(entry, is_json),
                        _entry_in(prev, is_json),
                    )
                    for code, key, entry, prev in raw_events
                )
                history.append((item_revision, events))
    return revision, compacted_through, entries, history


def migrate_snapshot(base: Path) -> None:
    """Replace a version-1 ``snapshot.dat`` by the index holding the same state and history."""
    path = base / SNAPSHOT_NAME
    started = time.monotonic()
    revision, compacted_through, entries, history = read_legacy_snapshot(path)
    temporary = base / (SNAPSHOT_NAME + ".tmp")
    build_index(temporary, revision, compacted_through, entries, history)
    os.replace(temporary, path)
    fsync_dir(base)
    log.warning(
        "migrated the snapshot of %s to format 2 (%d keys, %d history revisions, revision %d) "
        "in %.1f s",
        base,
        len(entries),
        len(history),
        revision,
        time.monotonic() - started,
    )
