"""The byte bound of the change history (``history_bytes``) on the memory and Redis backends:
the history stays under it whatever the transaction sizes, and a watch or a read from before
it gets the "compacted" signal with the oldest revision still there, never a gap."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from statekeeper.errors import HistoryCompactedError
from statekeeper_server.engine.storage.backend import Backend, Put

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


@pytest.fixture(params=["memory", "redis"])
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
