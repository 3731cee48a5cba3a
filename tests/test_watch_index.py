"""The watch index: a commit does work only for the watches its keys match, a replay streams
the history in bounded pages while other calls are served, and a watch that falls behind reads
the history again instead of queueing without bound. Counted, never timed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from statekeeper import values
from statekeeper.v1 import state_service_pb2 as pb
from statekeeper_server.engine.storage.backend import Backend, Put, range_span
from statekeeper_server.engine.storage.file import FileBackend
from statekeeper_server.engine.storage.file_index import HISTORY_BUDGET
from statekeeper_server.engine.storage.glob import GlobPattern
from statekeeper_server.engine.storage.memory import MemoryBackend
from statekeeper_server.engine.storage.watchers import (
    PENDING_REVISIONS,
    REPLAY_PAGE,
    WatcherIndex,
)
from statekeeper_server.runtime import Runtime
from statekeeper_server.servicers.state import StateServicer

from tests.test_backend_contract import (
    OpenBackend,
    close,
    collect,
    make_backend,  # noqa: F401  (a store of every backend)
    next_events,
    started_watch,
    step,
)


@pytest.fixture
async def store(make_backend: OpenBackend) -> Backend:  # noqa: F811
    """A new, empty store of the parametrized store."""
    return await make_backend()


def index_of(backend: Backend) -> WatcherIndex:
    """The backend's watch index (the file backend's is its feed's)."""
    if isinstance(backend, FileBackend):
        assert backend.index.feed is not None
        return backend.index.feed.watchers
    index = backend.watchers
    assert isinstance(index, WatcherIndex)
    return index


def test_the_index_finds_exact_keys_prefixes_and_glob_literals_only() -> None:
    index = WatcherIndex()
    exact = index.add(range_span("kv/", GlobPattern("agent-7")))
    prefix = index.add(range_span("wf/", None))
    glob = index.add(range_span("kv/", GlobPattern("a*/state")))
    catch_all = index.add(range_span("", None))
    assert len(index) == 4
    assert set(index._candidates("kv/agent-7")) == {exact, glob, catch_all}
    assert set(index._candidates("kv/agent-70")) == {glob, catch_all}
    assert set(index._candidates("wf/1")) == {prefix, catch_all}
    assert set(index._candidates("kv/b")) == {catch_all}
    for watcher in (exact, prefix, glob, catch_all):
        index.remove(watcher)
    assert len(index) == 0 and not index._lengths and not index._exact and not index._prefixes


async def test_a_write_no_watch_matches_does_no_work_for_any_watch(store: Backend) -> None:
    index = index_of(store)
    watches = []
    for number in range(300):
        watches.append(await started_watch(store, f"agents/a{number}/", "state"))
        watches.append(await started_watch(store, f"agents/a{number}/tools/", "*"))
    # The one watch of everything tells when a write has reached the index (Redis feeds it
    # from its change log), and is the only watch a key outside the fleet concerns.
    everything, _ = await started_watch(store)
    try:
        before = index.examined
        await store.put("sessions/s1", b"1")
        await next_events(everything)
        assert index.examined == before + 1
        assert index.pending_revisions() == 0  # nothing was queued for the fleet's watches

        before = index.examined
        await store.txn((), [Put("agents/a7/state", b"2"), Put("agents/a7/tools/t1", b"3")])
        await next_events(everything)
        # One exact key and one prefix watch, plus the watch of everything for each key.
        assert index.examined == before + 4
        state_watch, _ = watches[14]
        tools_watch, _ = watches[15]
        assert [e.key for e in (await next_events(state_watch)).events] == ["agents/a7/state"]
        assert [e.key for e in (await next_events(tools_watch)).events] == ["agents/a7/tools/t1"]
        assert index.pending_revisions() == 0
    finally:
        for updates, _ in watches:
            await close(updates)
        await close(everything)
    assert len(index) == 0


async def test_a_replay_streams_in_bounded_pages_while_other_calls_are_served(
    store: Backend,
) -> None:
    total = 3 * REPLAY_PAGE + 17
    for number in range(total):
        await store.put(f"r/{number % 5}", b"%d" % number)
    updates, created = await started_watch(store, "r/", start_revision=1)
    assert created.revision == total
    replayed: list[int] = []
    pages: list[set[int]] = []

    async def replay() -> None:
        while len(replayed) < total:
            update = await next_events(updates)
            pages.append({event.revision for event in update.events})
            replayed.extend(event.revision for event in update.events)

    task = asyncio.create_task(replay())
    answered_during_replay = 0
    try:
        while not task.done():
            entry = await store.get("r/0")
            assert entry is not None
            answered_during_replay += not task.done()
            await asyncio.sleep(0)
        await task
    finally:
        await close(updates)
    assert replayed == list(range(1, total + 1))
    assert len(pages) >= 4 and all(len(page) <= REPLAY_PAGE for page in pages)
    assert answered_during_replay >= 3


async def test_a_watch_that_falls_behind_reads_the_history_again_and_loses_nothing(
    store: Backend,
) -> None:
    index = index_of(store)
    updates, _ = await started_watch(store, "s/")
    everything, _ = await started_watch(store, "", "s/*")
    total = PENDING_REVISIONS + 300
    try:
        for number in range(total):
            await store.put(f"s/{number % 3}", b"%d" % number)
        # ``everything`` is read as the writes go on; ``updates`` is not read at all.
        seen = await collect(everything, total)
        assert seen[-1].revision == total
        # The unread watch dropped its queue at the bound instead of growing past it.
        assert index.pending_revisions() <= PENDING_REVISIONS
        events = await collect(updates, total)
        assert [e.revision for e in events] == list(range(1, total + 1))
    finally:
        await close(updates)
        await close(everything)


async def test_a_file_replay_page_examines_rows_bounded_by_the_page_not_the_history(
    tmp_path: Path,
) -> None:
    backend = FileBackend(tmp_path)
    try:
        for start in range(0, 3000, 10):  # 300 revisions of 10 keys each
            await backend.txn(
                [], [Put(f"r/{n % 500:03d}", b"%d" % n) for n in range(start, start + 10)]
            )
        await backend.compact()  # every revision is read from the index now
        index = backend.index
        dense = range_span("r/", None)
        for first in (1, 150, 290):  # wherever it starts, a page reads what it returns
            before = index.examined
            page = await backend.history(dense, first, 300, REPLAY_PAGE)
            assert index.examined - before == len(page.events) == 70  # whole revisions
            assert page.last == first + 6
        # One key among all of them: every row is examined once, a bounded number per page.
        sparse = range_span("r/", GlobPattern("007"))
        first, found, pages, before = 1, [], 0, index.examined
        while first <= 300:
            start = index.examined
            page = await backend.history(sparse, first, 300, REPLAY_PAGE)
            assert index.examined - start <= HISTORY_BUDGET + 10
            found += [event.entry.value for event in page.events if event.entry]
            first, pages = page.last + 1, pages + 1
        assert index.examined - before == 3000 and pages >= 3000 // (HISTORY_BUDGET + 10)
        assert found == [b"%d" % n for n in range(3000) if n % 500 == 7]
    finally:
        await backend.close()


# -- through the service -----------------------------------------------------------------------


@pytest.fixture
async def servicer() -> AsyncIterator[tuple[StateServicer, MemoryBackend]]:
    store = MemoryBackend()
    runtime = Runtime(store)
    yield runtime.servicers["statekeeper.v1.StateService"], store
    await runtime.close()


async def test_thousands_of_streams_on_their_own_keys_cost_a_save_nothing(servicer) -> None:
    service, store = servicer
    streams = [
        service.Watch(pb.WatchRequest(pattern=f"agent-{number}/state"), None)
        for number in range(2000)
    ]
    for stream in streams:
        assert (await anext(stream)).created
    index = store.watchers
    assert len(index) == 2000
    try:
        before = index.examined
        for number in range(20):
            value = values.document_to_wire({"n": number})
            await service.Save(pb.SaveRequest(key=f"other-{number}", value=value), None)
        assert index.examined == before
        value = values.document_to_wire({"n": 1})
        await service.Save(pb.SaveRequest(key="agent-42/state", value=value), None)
        assert index.examined == before + 1
        response = await asyncio.wait_for(anext(streams[42]), 10)
        assert [event.kv.key for event in response.events] == ["agent-42/state"]
    finally:
        for stream in streams:
            await stream.aclose()
    assert len(service._watch_groups) == 0


async def test_idle_watches_report_progress_from_one_clock_holding_one_deadline_each(
    store: Backend,
) -> None:
    index = index_of(store)
    idle = [
        (await started_watch(store, f"idle/{number}", progress_interval=0.05))[0]
        for number in range(40)
    ]
    busy, _ = await started_watch(store, "busy/", progress_interval=30.0)
    waiting = [asyncio.ensure_future(step(updates)) for updates in idle]
    try:
        # A watch woken by every change waits again each time: its deadline moves, and the
        # clock still holds one entry for it.
        for number in range(30):
            await store.put(f"busy/{number % 3}", b"x")
            await next_events(busy)
            assert len(index._clock._heap) <= len(index)
        progress = await asyncio.gather(*waiting)
        assert all(update.events == () for update in progress)
    finally:
        for task in waiting:
            task.cancel()
        for updates in [*idle, busy]:
            await close(updates)
