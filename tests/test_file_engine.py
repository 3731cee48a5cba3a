"""The file backend's engine: the memtable over the SQLite index reads like one store.

Random writes with compactions at random points must read exactly like the memory backend
fed the same writes (gets, scans in both directions, scans at earlier revisions, watch
history), before and after a reopen; staged transactions commit together, each with its own
result.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from statekeeper.errors import ConflictError
from statekeeper_server.engine.storage.backend import (
    Backend,
    Compare,
    Delete,
    Event,
    KeyRange,
    Operation,
    Put,
    prefix_end,
)
from statekeeper_server.engine.storage.file import FileBackend
from statekeeper_server.engine.storage.glob import parse_pattern
from statekeeper_server.engine.storage.memory import MemoryBackend

WAIT = 60.0
KEYS = [f"{group}/{number}" for group in ("a", "b", "bb", "c") for number in range(12)]


async def _scan(backend: Backend, span: KeyRange, **options: object) -> list[tuple[str, bytes]]:
    found: list[tuple[str, bytes]] = []
    after = None
    while True:
        page = await backend.scan(span, after=after, limit=5, **options)  # type: ignore[arg-type]
        found += [(entry.key, entry.value) for entry in page.entries]
        if not page.more:
            return found
        after = page.cursor


async def _history(backend: Backend, last: int) -> list[Event]:
    updates = backend.watch("", None, start_revision=1)
    events: list[Event] = []
    try:
        await asyncio.wait_for(anext(updates), WAIT)
        while not events or events[-1].revision < last:
            events += (await asyncio.wait_for(anext(updates), WAIT)).events
    finally:
        await updates.aclose()  # type: ignore[attr-defined]
    return events


async def _same_reads(file: Backend, memory: Backend, revisions: list[int]) -> None:
    for key in KEYS:
        assert await file.get(key) == await memory.get(key), key
    for prefix, pattern in (("", None), ("b", None), ("b", "b/*"), ("", "*1")):
        low = prefix
        span = KeyRange(prefix, low, prefix_end(low), parse_pattern(pattern) if pattern else None)
        for reverse in (False, True):
            expected = await _scan(memory, span, reverse=reverse)
            assert await _scan(file, span, reverse=reverse) == expected
            for revision in revisions:
                then = await _scan(memory, span, reverse=reverse, revision=revision)
                assert await _scan(file, span, reverse=reverse, revision=revision) == then
    last = await memory.revision()
    assert await file.revision() == last
    assert await _history(file, last) == await _history(memory, last)
    file_stats, memory_stats = await file.stats(), await memory.stats()
    assert (file_stats.keys, file_stats.bytes) == (memory_stats.keys, memory_stats.bytes)


def _operations(rng: random.Random) -> list[Operation]:
    keys = rng.sample(KEYS, rng.randint(1, 4))
    return [
        Delete(key) if rng.random() < 0.3 else Put(key, b"%d" % rng.randrange(10**6))
        for key in keys
    ]


async def test_random_writes_and_compactions_read_like_the_memory_backend(
    tmp_path: Path,
) -> None:
    rng = random.Random(1919)
    file = FileBackend(tmp_path)
    memory = MemoryBackend()
    revisions: list[int] = []
    try:
        for step in range(300):
            operations = _operations(rng)
            expected = await memory.txn([], operations)
            assert await file.txn([], operations) == expected
            if rng.random() < 0.05:
                await file.compact()  # the memtable goes into the index, at random points
            if step % 60 == 59:
                revisions.append(await memory.revision())
                await _same_reads(file, memory, rng.sample(range(1, revisions[-1]), 3))
        await file.close()
        file = FileBackend(tmp_path)
        await _same_reads(file, memory, revisions)
    finally:
        await file.close()


async def test_staged_transactions_commit_together_each_with_its_own_result(
    tmp_path: Path,
) -> None:
    store = FileBackend(tmp_path)
    try:
        first = await store.put("a", b"1")
        staged = [
            store.stage([], [Put("b", b"1")]),
            store.stage([Compare("a", 0)], [Put("a", b"never")]),
            store.stage([Compare("a", first.mod_revision)], [Put("a", b"2")]),
        ]
        put_b, refused, put_a = await asyncio.gather(*staged, return_exceptions=True)
        assert isinstance(refused, ConflictError)
        assert not isinstance(put_b, BaseException) and not isinstance(put_a, BaseException)
        assert (put_b.revision, put_a.revision) == (2, 3)
    finally:
        await store.close()
    store = FileBackend(tmp_path)
    try:
        a, b = await store.get("a"), await store.get("b")
        assert a is not None and b is not None
        assert (a.value, a.mod_revision, b.value) == (b"2", 3, b"1")
    finally:
        await store.close()
