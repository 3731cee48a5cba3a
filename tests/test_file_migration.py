"""A data directory written by the previous file format opens with all its data and history.

The fixtures under ``tests/fixtures/file-store-v1`` were written by the file backend of commit
2121ac9 (a framed ``snapshot.dat`` and a log after it); see their README.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from statekeeper_server.engine.storage.backend import Entry, Event
from statekeeper_server.engine.storage.file import FileBackend

FIXTURES = Path(__file__).parent / "fixtures" / "file-store-v1"
WAIT = 60.0


def _entry(entry: Entry | None) -> list[Any] | None:
    if entry is None:
        return None
    value = base64.b64encode(entry.value).decode()
    return [entry.key, value, entry.create_revision, entry.mod_revision, entry.version,
            entry.expire_at]  # fmt: skip


def _event(event: Event) -> list[Any]:
    return [event.type.name, event.key, event.revision, _entry(event.entry), _entry(event.prev)]


async def _history(store: FileBackend, last: int) -> list[list[Any]]:
    updates = store.watch("", None, start_revision=1)
    events: list[Event] = []
    try:
        await asyncio.wait_for(anext(updates), WAIT)
        while not events or events[-1].revision < last:
            events += (await asyncio.wait_for(anext(updates), WAIT)).events
    finally:
        await updates.aclose()  # type: ignore[attr-defined]
    return [_event(event) for event in events]


async def _read_back(store: FileBackend) -> dict[str, Any]:
    """What the fixture's ``expected.json`` records, read from ``store``."""
    stats = await store.stats()
    return {
        "entries": [_entry(e) for e in (await store.range("", limit=1000)).entries],
        "history": await _history(store, stats.revision),
        "stats": [stats.keys, stats.bytes, stats.revision, stats.oldest_revision],
    }


@pytest.mark.parametrize("name", ["json", "msgpack-zstd"])
async def test_a_store_of_the_previous_format_opens_with_data_revisions_and_history(
    tmp_path: Path, name: str
) -> None:
    directory = tmp_path / "store"
    shutil.copytree(FIXTURES / name, directory)
    # A migration that crashed earlier left its temporary file behind: it is started again.
    (directory / "snapshot.dat.tmp").write_bytes(b"half a migration")
    expected = json.loads((FIXTURES / "expected.json").read_text())
    store = FileBackend(directory)
    try:
        assert await _read_back(store) == expected
        after = await store.put("doc/after", b"written after the migration")
        assert after.mod_revision == expected["stats"][2] + 1
    finally:
        await store.close()
    assert (directory / "snapshot.dat").read_bytes().startswith(b"SQLite format 3\x00")
    assert not (directory / "snapshot.dat.tmp").exists()

    store = FileBackend(directory)  # the migrated store opens again, the new write included
    try:
        assert await store.get("doc/after") == after
        await store.delete("doc/after")
        now = await _read_back(store)
        assert now["entries"] == expected["entries"]
        assert now["history"][: len(expected["history"])] == expected["history"]
        assert [event[:3] for event in now["history"][len(expected["history"]) :]] == [
            ["PUT", "doc/after", after.mod_revision],
            ["DELETE", "doc/after", after.mod_revision + 1],
        ]
    finally:
        await store.close()
