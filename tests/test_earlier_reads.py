"""Reads at an earlier revision, on every backend: a page read at revision R shows exactly what
a read of the current state showed when the store was at R (keys deleted and recreated since,
multi-key transactions, patterns, both directions, small pages), and a revision whose history
is gone is refused with the oldest readable one. The memory backend's retained history adds no
objects for the garbage collector to walk, however much of it there is. The file and Redis
backends find a key's entry at a revision with one seek of an index of the history, so a page
costs what it examines, not the history since."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import msgpack
import pytest
import redis
from statekeeper.errors import HistoryCompactedError
from statekeeper_server.engine.storage.backend import Backend, Delete, Entry, Put
from statekeeper_server.engine.storage.file import FileBackend
from statekeeper_server.engine.storage.memory import MemoryBackend
from statekeeper_server.engine.storage.redis import SCRIPT_READS, RedisBackend

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
    # Keys never changed again, among those that are (their history leaves before the end).
    await backend.txn([], [Put(key, b"still") for key in ("e/k", "e/k3a", "e/k9z", "e/z")])
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


#: The Redis commands of a scan script call that read keys, the indexes and the change log.
_READ_COMMANDS = ("hmget", "zrangebylex", "zrevrangebylex", "xrange")


def _reads(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in _READ_COMMANDS)


async def test_a_redis_read_at_an_earlier_revision_costs_what_its_page_needs_not_the_history(
    redis_url: str,
) -> None:
    """The commands a page at an early revision runs in Redis are counted: as many with 100 or
    with 1,000 revisions written since (each key's entry then is one seek of the history
    index)."""
    client = redis.Redis.from_url(redis_url)
    commands = []
    for revisions in (100, 1000):
        backend = RedisBackend(redis_url, key_prefix=f"r{revisions}:")
        try:
            await backend.txn([], [Put(f"e/{n:03d}", b"first") for n in range(50)])
            for number in range(revisions):  # rewrite every key, delete and recreate some
                key = f"e/{number % 50:03d}"
                if number % 7 == 3:
                    await backend.delete(key)
                else:
                    await backend.put(key, b"%d" % number)
            before = _reads(client)
            page = await backend.scan(_span("e/"), revision=1, limit=4)
            assert [(e.key, e.value) for e in page.entries] == [
                (f"e/{n:03d}", b"first") for n in range(4)
            ]
            reverse = await backend.scan(_span("e/"), revision=1, limit=4, reverse=True)
            assert [e.key for e in reverse.entries] == [f"e/{n:03d}" for n in (49, 48, 47, 46)]
            commands.append(_reads(client) - before)
        finally:
            await backend.close()
    # Per page: the oldest revision, then per key examined a step of each index, one seek of
    # the history index and one read of the change log (a chunk of the key index is fetched
    # at once), whatever the number of revisions since.
    assert commands[0] == commands[1] <= 2 * (1 + 5 * 4)
    client.close()


def _logged_events(client: redis.Redis, prefix: str) -> int:
    return sum(len(msgpack.unpackb(fields[b"e"])) for _, fields in client.xrange(prefix + "log"))


async def test_a_redis_store_written_before_the_history_index_reads_earlier_revisions(
    redis_url: str,
) -> None:
    """The history index holds one member per event of the retained change log (trimmed with
    it); a store without one (written before it) is indexed when a read needs it."""
    backend = RedisBackend(redis_url, key_prefix="old:", history_revisions=60)
    try:
        seen = await _random_history(backend)
        client = redis.Redis.from_url(redis_url)
        assert client.zcard("old:hist") == _logged_events(client, "old:")
        client.delete("old:hist", "old:histfrom")  # as a store written before the index
        oldest = (await backend.stats()).oldest_revision
        for revision, views in seen.items():
            if revision >= oldest:
                assert await _views(backend, revision) == views, revision
        assert client.get("old:histfrom") == b"0"  # the whole log is indexed now
        assert client.zcard("old:hist") == _logged_events(client, "old:")
        client.close()
    finally:
        await backend.close()


async def test_a_redis_page_read_in_several_script_calls_holds_one_revision(
    redis_url: str,
) -> None:
    """A page of more entries than one script call reads is read in several, at the first
    one's revision: writes landing between them do not show, however many."""
    backend = RedisBackend(redis_url, key_prefix="pages:")
    keys = [f"p/{n:04d}" for n in range(3 * SCRIPT_READS)]
    await backend.txn([], [Put(key, b"0") for key in keys])
    writes = 0

    async def writer() -> None:
        nonlocal writes
        while True:
            writes += 1
            await backend.txn([], [Put(key, b"%d" % writes) for key in keys])

    task = asyncio.get_running_loop().create_task(writer())
    spanned = 0
    try:
        for _ in range(200):
            page = await backend.scan(_span("p/"), limit=len(keys))
            assert not page.more and [e.key for e in page.entries] == keys
            assert len({e.value for e in page.entries}) == 1  # one revision's state
            assert {e.mod_revision for e in page.entries} == {page.entries[0].mod_revision}
            spanned += page.revision < await backend.revision()
            if spanned >= 3:
                break
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await backend.close()
    assert spanned >= 3  # writes landed while pages were read
