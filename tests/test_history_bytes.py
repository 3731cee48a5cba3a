"""The byte bound of the change history (``history_bytes``) on the memory, file and Redis
backends: the history stays under it whatever the transaction sizes, and a watch or a read from
before it gets the "compacted" signal with the oldest revision still there, never a gap. The
file backend keeps the bound over its index and memtable together, across flushes and a
reopen."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from statekeeper.errors import HistoryCompactedError
from statekeeper_server.engine.storage.backend import Backend, Put
from statekeeper_server.engine.storage.file import FileBackend

from tests.test_backend_contract import (
    _span,
    close,
    collect,
    open_backend,
    started_watch,
    step,
)

VALUE = b"v" * 1000
#: Room for about four overwrites of VALUE (each event holds the value and the previous one).
BOUND = 8000


@pytest.fixture(params=["memory", "file", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """A store of the parametrized backend whose history holds at most BOUND bytes."""
    store = await open_backend(str(request.param), request, history_bytes=BOUND)
    yield store
    await store.close()


async def test_history_stays_under_the_byte_bound_and_older_starts_are_compacted(
    backend: Backend,
) -> None:
    for number in range(40):
        await backend.put(f"k{number % 4}", VALUE)
    oldest = (await backend.stats()).oldest_revision
    # At least one revision is kept, and no more than BOUND bytes of ~2 KB events.
    assert 36 <= oldest <= 40
    with pytest.raises(HistoryCompactedError) as caught:
        await step(backend.watch("", None, start_revision=oldest - 1))
    assert caught.value.compact_revision == oldest
    with pytest.raises(HistoryCompactedError) as caught:
        await backend.scan(_span(""), revision=oldest - 1)
    assert caught.value.compact_revision == oldest
    updates, _ = await started_watch(backend, start_revision=oldest)
    try:
        events = await collect(updates, 41 - oldest)
        assert [e.revision for e in events] == list(range(oldest, 41))
    finally:
        await close(updates)


async def test_one_large_transaction_is_kept_whole_then_trimmed_by_the_next(
    backend: Backend,
) -> None:
    big = await backend.txn([], [Put(f"big/{n}", VALUE) for n in range(20)])
    assert (await backend.stats()).oldest_revision == big.revision  # the newest always stays
    await backend.put("small", b"1")
    assert (await backend.stats()).oldest_revision == big.revision + 1


async def test_a_watcher_left_behind_the_bound_gets_every_change_or_the_compacted_signal(
    backend: Backend,
) -> None:
    updates, created = await started_watch(backend, "w/")
    first = created.revision + 1
    # More revisions than the Redis reader buffers for its watchers (2,048), each of ~1 KB.
    for number in range(2100):
        await backend.put(f"w/{number % 8}", VALUE)
    revisions: list[int] = []
    try:
        with pytest.raises(HistoryCompactedError) as caught:
            while True:
                update = await step(updates)
                revisions += [event.revision for event in update.events]
    finally:
        await close(updates)
    # What came before the signal has no gap, and the signal names a revision after it.
    assert revisions == list(range(first, first + len(revisions)))
    assert caught.value.compact_revision > first + len(revisions)


async def test_the_file_backend_keeps_the_bound_across_flushes_and_a_reopen(tmp_path: Path) -> None:
    def store() -> FileBackend:
        return FileBackend(tmp_path, history_bytes=BOUND, compact_bytes=4000)

    first = store()
    for number in range(30):  # a flush every few writes: most history is in the index
        await first.put(f"k{number % 4}", VALUE)
    oldest = (await first.stats()).oldest_revision
    assert 26 <= oldest <= 30
    await first.close()
    again = store()
    try:
        assert (await again.stats()).oldest_revision == oldest
        for number in range(30, 40):
            await again.put(f"k{number % 4}", VALUE)
        oldest = (await again.stats()).oldest_revision
        assert 36 <= oldest <= 40  # the index's history counts toward the bound after a reopen
        with pytest.raises(HistoryCompactedError):
            await again.scan(_span(""), revision=oldest - 1)
        page = await again.history(_span(""), oldest, 40, 100)
        assert [event.revision for event in page.events] == list(range(oldest, 41))
    finally:
        await again.close()
