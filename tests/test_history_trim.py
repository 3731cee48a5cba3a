"""Forgetting old history goes a bounded step per commit (issue 19: no call waits behind the
store's housekeeping): past its bound the memory backend's history is trimmed about
``DROP_STEP`` events at a time until it is back under the bound, and after a flush the file
backend's memtable forgets what the index now holds the same way, while every read and watch
still sees each revision once."""

from __future__ import annotations

import itertools
from pathlib import Path

from statekeeper_server.engine.storage.backend import Put
from statekeeper_server.engine.storage.file import FileBackend
from statekeeper_server.engine.storage.history import DROP_STEP
from statekeeper_server.engine.storage.memory import MemoryBackend

from tests.test_backend_contract import _span, close, collect, started_watch

#: A write of one key "k" with a value of 8 bytes and its previous one: 17 bytes of history.
EVENT_BYTES = 17


async def test_the_memory_history_is_trimmed_a_bounded_step_per_commit() -> None:
    revisions = 8 * DROP_STEP  # the byte bound is crossed after these; trimming frees a quarter
    store = MemoryBackend(history_bytes=revisions * EVENT_BYTES)
    for number in range(revisions):
        await store.put("k", b"%08d" % number)
    assert (await store.stats()).oldest_revision == 1
    oldest = [1]
    for number in range(revisions, revisions + 5):
        await store.put("k", b"%08d" % number)
        oldest.append((await store.stats()).oldest_revision)
    steps = [newer - older for older, newer in itertools.pairwise(oldest)]
    # A quarter of the history is two steps and a bit: three commits share it, then it stays.
    assert steps == [DROP_STEP, DROP_STEP, 3, 0, 0]
    # Once done, at most three quarters of the bound were left.
    assert ((revisions + 3) - oldest[3] + 1) * EVENT_BYTES <= revisions * EVENT_BYTES * 3 // 4
    newest = revisions + 5
    kept = newest - oldest[-1] + 1
    updates, _ = await started_watch(store, start_revision=oldest[-1])
    try:
        events = await collect(updates, kept)
        assert [e.revision for e in events] == list(range(oldest[-1], newest + 1))
    finally:
        await close(updates)


async def test_the_memory_history_count_bound_is_kept_in_steps() -> None:
    bound = 8 * DROP_STEP
    store = MemoryBackend(history_revisions=bound)
    trimming_from = bound + bound // 4  # trimming starts a quarter over
    for number in range(trimming_from):
        await store.put(f"k{number % 7}", b"v")
    assert (await store.stats()).oldest_revision == DROP_STEP + 1  # one step, not the quarter
    for number in range(2):
        await store.put(f"k{number % 7}", b"v")
    # Two more steps: back to the bound.
    oldest = (await store.stats()).oldest_revision
    assert trimming_from + 2 - oldest + 1 == bound
    page = await store.scan(_span(""), revision=oldest)
    assert len(page.entries) == 7


async def test_a_flush_leaves_the_memtable_history_to_later_commits_and_reads_stay_whole(
    tmp_path: Path,
) -> None:
    store = FileBackend(tmp_path)
    try:
        for start in range(0, 4 * DROP_STEP, 8):  # 512 revisions of 8 keys
            puts = [Put(f"r/{n % 300:03d}", b"%d" % n) for n in range(start, start + 8)]
            await store.txn([], puts)
        await store.compact()
        history = store._memtable.history
        held = len(history)
        assert held == 512  # the flushed revisions wait for later commits
        lengths = []
        for number in range(6):
            await store.put(f"later/{number}", b"x")
            lengths.append(len(history))
        # Each commit forgets at most one step's worth (128 revisions of 8 events).
        assert lengths[0] == held + 1 - DROP_STEP // 8
        assert lengths[-1] == 6  # only the revisions since the flush are left
        # A watch from the first revision reads each revision once, from the index on.
        updates, _ = await started_watch(store, "r/", start_revision=1)
        try:
            events = await collect(updates, 4 * DROP_STEP)
            revisions = [e.revision for e in events]
            assert revisions == sorted(revisions) and len(set(revisions)) == 512
        finally:
            await close(updates)
        page = await store.scan(_span("r/"), revision=256, limit=1000)
        assert [e.key for e in page.entries] == [f"r/{n:03d}" for n in range(300)]
        assert page.entries[0].mod_revision == 226  # r/000's last write up to revision 256
    finally:
        await store.close()
