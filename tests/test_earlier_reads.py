"""Reads at an earlier revision, on every backend: a page read at revision R shows exactly what
a read of the current state showed when the store was at R (keys deleted and recreated since,
multi-key transactions, patterns, both directions, small pages), and a revision whose history
is gone is refused with the oldest readable one. The memory backend's retained history adds no
objects for the garbage collector to walk, however much of it there is."""

from __future__ import annotations

import gc
import random
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from statekeeper.errors import HistoryCompactedError
from statekeeper_server.engine.storage.backend import Backend, Delete, Entry, Put
from statekeeper_server.engine.storage.file import FileBackend
from statekeeper_server.engine.storage.memory import MemoryBackend

from tests.test_backend_contract import _scan_all, _span, open_backend

#: Revisions written by the random history.
REVISIONS = 160


@pytest.fixture(params=["memory", "file", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """A store of the parametrized backend that keeps 60 revisions of history."""
    backend = await open_backend(str(request.param), request, history_revisions=60)
    yield backend
    await backend.close()


def _shown(entries: list[Entry]) -> list[tuple[str, bytes, int, int, int]]:
    return [(e.key, e.value, e.create_revision, e.mod_revision, e.version) for e in entries]


async def _views(
    backend: Backend, revision: int = 0
) -> list[list[tuple[str, bytes, int, int, int]]]:
    """The pages a user would read: the whole namespace both ways, a sub-range, a pattern."""
    return [
        _shown(await _scan_all(backend, _span("e/"), revision=revision, limit=4)),
        _shown(await _scan_all(backend, _span("e/"), revision=revision, reverse=True, limit=3)),
        _shown(await _scan_all(backend, _span("e/", low="e/k3"), revision=revision, limit=2)),
        _shown(await _scan_all(backend, _span("e/", pattern="*[13]"), revision=revision)),
    ]


async def _random_history(
    backend: Backend,
) -> dict[int, list[list[tuple[str, bytes, int, int, int]]]]:
    """Write REVISIONS random revisions (puts, deletes, recreations, several keys at once, keys
    outside the namespace); the views read after each, by revision."""
    chooser = random.Random(23)
    seen: dict[int, list[list[tuple[str, bytes, int, int, int]]]] = {}
    while len(seen) < REVISIONS:
        operations: list[Put | Delete] = []
        for key in chooser.sample([f"e/k{n}" for n in range(12)] + ["other", "f/x"], 3):
            if chooser.random() < 0.3:
                operations.append(Delete(key))
            else:
                operations.append(Put(key, b"%s=%d" % (key.encode(), chooser.randrange(10**6))))
        await backend.txn([], operations[: chooser.randint(1, 3)])
        seen[await backend.revision()] = await _views(backend)
    return seen


async def test_a_read_at_an_earlier_revision_shows_what_a_read_then_showed(
    store: Backend,
) -> None:
    seen = await _random_history(store)
    oldest = (await store.stats()).oldest_revision
    assert oldest > 1  # some of the history is gone
    for revision, views in seen.items():
        if revision >= oldest:
            assert await _views(store, revision) == views, revision
        else:
            with pytest.raises(HistoryCompactedError) as caught:
                await store.scan(_span("e/"), revision=revision)
            assert caught.value.compact_revision == oldest


async def test_the_memory_backends_history_adds_no_objects_for_the_collector() -> None:
    backend = MemoryBackend()
    await backend.put("warm/up", b"1")
    gc.collect()
    before = len(gc.get_objects())
    middle: list[tuple[str, bytes, int, int, int]] = []
    for number in range(3000):
        if number == 1500:
            middle = _shown(await _scan_all(backend, _span("g/"), limit=1000))
            at = await backend.revision()
        key = f"g/{number % 700}"
        if number % 7 == 0:
            await backend.delete(key)
        else:
            await backend.txn([], [Put(key, b"%d" % number), Put(f"h/{number}", b"x")])
    gc.collect()
    assert len(gc.get_objects()) - before < 100
    assert _shown(await _scan_all(backend, _span("g/"), revision=at, limit=1000)) == middle
    await backend.close()


async def test_file_history_pages_from_the_index_hold_whole_revisions(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path)
    try:
        for start in range(0, 50, 10):
            await backend.txn([], [Put(f"p/{n:02d}", b"%d" % n) for n in range(start, start + 10)])
        await backend.compact()  # every revision is read from the index now
        first, last, pages = 1, await backend.revision(), []
        while first <= last:  # a page limit inside a revision, the last one included
            page = await backend.history(_span("p/"), first, last, 4)
            pages.append([event.key for event in page.events])
            first = page.last + 1
        assert pages == [[f"p/{n:02d}" for n in range(s, s + 10)] for s in range(0, 50, 10)]
    finally:
        await backend.close()


async def test_a_file_read_at_an_earlier_revision_examines_what_its_page_needs_not_the_history(
    tmp_path: Path,
) -> None:
    """The index's history rows and keys a page looks at are counted: a page of four entries
    at an early revision examines as many with 100 or with 1,000 revisions written since."""
    examined = []
    for revisions in (100, 1000):
        backend = FileBackend(tmp_path / str(revisions))
        try:
            await backend.txn([], [Put(f"e/{n:03d}", b"first") for n in range(50)])
            for number in range(revisions):  # rewrite every key, delete and recreate some
                key = f"e/{number % 50:03d}"
                if number % 7 == 3:
                    await backend.delete(key)
                else:
                    await backend.put(key, b"%d" % number)
            await backend.compact()  # the history is read from the index
            index, span = backend.index, _span("e/")
            before = index.examined
            page = await backend.scan(span, revision=1, limit=4)
            assert [(e.key, e.value) for e in page.entries] == [
                (f"e/{n:03d}", b"first") for n in range(4)
            ]
            reverse = await backend.scan(span, revision=1, limit=4, reverse=True)
            assert [e.key for e in reverse.entries] == [f"e/{n:03d}" for n in (49, 48, 47, 46)]
            examined.append(index.examined - before)
        finally:
            await backend.close()
    # Each page walks each of the 50 keys once and looks it up once (a chunk of lookups is
    # more than a page of four here), whatever the number of revisions since.
    assert examined[0] == examined[1] <= 2 * 2 * 50


async def test_a_file_store_written_before_the_key_index_of_its_history_reads_earlier_revisions(
    tmp_path: Path,
) -> None:
    backend = FileBackend(tmp_path)
    await backend.put("e/a", b"1")
    await backend.put("e/a", b"2")
    await backend.compact()
    await backend.close()
    with sqlite3.connect(tmp_path / "snapshot.dat") as connection:  # as such a store has it
        connection.execute("DROP INDEX history_key")
    backend = FileBackend(tmp_path)
    try:
        page = await backend.scan(_span("e/"), revision=1)
        assert [(e.key, e.value) for e in page.entries] == [("e/a", b"1")]
    finally:
        await backend.close()
