"""The file backend: crash safety with real processes, torn tails, snapshots, locking, stats.

The behaviour every backend shares is in ``test_backend_contract.py`` (which runs on "file"
too); this module checks what only a durable store has to get right.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from statekeeper.errors import (
    ConflictError,
    FailedPreconditionError,
    HistoryCompactedError,
    StateKeeperError,
)
from statekeeper.state import (
    FileBackend,
    StateConfig,
    StateManager,
    StateStats,
    WorkflowState,
    WorkflowStateManager,
)
from statekeeper_server.config import ServerConfig
from statekeeper_server.engine.storage import file_log
from statekeeper_server.engine.storage.backend import Backend, Entry, Event, EventType, WatchUpdate
from statekeeper_server.engine.storage.file import read_frames
from statekeeper_server.engine.storage.file_log import Log
from statekeeper_server.server import StatekeeperServer

from tests.programs import child_process
from tests.servers import ServerProcess, start_server_process

#: (format, compression) pairs every durability test runs with.
FORMATS = [
    pytest.param("json", False, id="json"),
    pytest.param("msgpack", True, id="msgpack-zstd"),
]
#: How long a test waits for something that must happen (a failure, not a synchronisation).
WAIT = 60.0


def serve_file(data_dir: Path, file_format: str, compression: bool) -> ServerProcess:
    """A ``statekeeper serve`` process on the file backend in ``data_dir``."""
    return start_server_process(
        "--backend",
        "file",
        "--data-dir",
        str(data_dir),
        "--file-format",
        file_format,
        "--compression" if compression else "--no-compression",
    )


def segments(directory: Path) -> list[Path]:
    """The log segments of a store directory, oldest first."""
    return sorted(directory.glob("wal-*.log"))


def used_bytes(segment: Path) -> int:
    """Where the intact records of a log segment end (the rest is zero-filled space)."""
    return read_frames(segment.read_bytes())[1]


async def all_entries(store: Backend) -> list[Entry]:
    """Every live entry of ``store`` in key order."""
    return (await store.range("", limit=100_000)).entries


async def writes_go_on(path: Path, expected: list[Entry], revision: int, **options: Any) -> None:
    """The store in ``path`` opens holding ``expected`` at ``revision``; a write then takes the
    next revision, and the store reopens with it after the rest."""
    store = FileBackend(path, **options)
    try:
        assert await all_entries(store) == expected
        assert await store.revision() == revision
        entry = await store.put("next", b"after repair")
        assert entry.mod_revision == revision + 1
    finally:
        await store.close()
    store = FileBackend(path)
    try:
        assert await all_entries(store) == [*expected, entry]
    finally:
        await store.close()


async def history(store: Backend, start: int, last: int) -> list[Event]:
    """The watch events of ``store`` from revision ``start`` through ``last``."""
    updates = store.watch("", None, start_revision=start)
    events: list[Event] = []
    try:
        await asyncio.wait_for(anext(updates), WAIT)
        while not events or events[-1].revision < last:
            update: WatchUpdate = await asyncio.wait_for(anext(updates), WAIT)
            events += update.events
    finally:
        await updates.aclose()  # type: ignore[attr-defined]
    return events


# -- crash safety, for real --------------------------------------------------------------------


@pytest.mark.parametrize(("file_format", "compression"), FORMATS)
async def test_every_acknowledged_write_survives_sigkill(
    tmp_path: Path, file_format: str, compression: bool
) -> None:
    data_dir = tmp_path / "data"
    acknowledged: dict[str, tuple[Any, int]] = {}
    enough = asyncio.Event()
    server = serve_file(data_dir, file_format, compression)
    try:
        config = StateConfig(backend="grpc", address=server.address, timeout=WAIT)
        async with StateManager(config) as manager:

            async def writer(task: int) -> None:
                for number in itertools.count():
                    key = f"load/{task}/{number}"
                    value = {"task": task, "n": number, "third": number / 3, "pad": "x" * number}
                    try:
                        revision = await manager.save(key, value)
                    except StateKeeperError:
                        return  # the server is gone: this write was never acknowledged
                    acknowledged[key] = (value, revision)
                    if len(acknowledged) >= 400:
                        enough.set()

            writers = [asyncio.create_task(writer(task)) for task in range(16)]
            await asyncio.wait_for(enough.wait(), WAIT)
            server.kill()  # SIGKILL while the writers still have calls in flight
            await asyncio.wait_for(asyncio.gather(*writers), WAIT)
    finally:
        if server.process.poll() is None:
            server.kill()

    revisions = [revision for _, revision in acknowledged.values()]
    assert len(set(revisions)) == len(revisions)
    server = serve_file(data_dir, file_format, compression)
    try:
        config = StateConfig(backend="grpc", address=server.address, timeout=WAIT)
        async with StateManager(config) as manager:
            for key, (value, revision) in acknowledged.items():
                entry = await manager.get_entry(key)
                assert entry is not None, f"acknowledged write of {key} is lost"
                assert (entry.value, entry.mod_revision) == (value, revision)
            stats = await manager.get_stats()
            assert stats.backend == "file"
            assert stats.revision >= max(revisions)
            after = await manager.save("after/restart", {"ok": True})
            assert after > stats.revision >= max(revisions)
            assert await manager.get("after/restart") == {"ok": True}
    finally:
        assert server.terminate() == 0


async def test_second_process_on_one_directory_fails_clearly(tmp_path: Path) -> None:
    server = serve_file(tmp_path, "msgpack", False)
    try:
        async with child_process(
            sys.executable,
            "-m",
            "statekeeper_server",
            "serve",
            "--port",
            "0",
            "--backend",
            "file",
            "--data-dir",
            str(tmp_path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        ) as second:
            stdout, stderr = await asyncio.wait_for(second.communicate(), WAIT)
        assert second.returncode == 2
        assert b"listening" not in stdout
        message = stderr.decode()
        assert "is in use by another statekeeper process" in message
        assert str(tmp_path) in message and "Traceback" not in message
        with pytest.raises(FailedPreconditionError, match="in use"):
            FileBackend(tmp_path)
    finally:
        assert server.terminate() == 0
    store = FileBackend(tmp_path)  # released on shutdown
    await store.close()


async def test_discard_releases_the_directory_at_once(tmp_path: Path) -> None:
    store = FileBackend(tmp_path)
    await store.put("k", b"1")
    store.discard()
    again = FileBackend(tmp_path)
    try:
        entry = await again.get("k")
        assert entry is not None and entry.value == b"1"
    finally:
        await again.close()


# -- torn and corrupt tails ----------------------------------------------------------------------


def _cut_in_half(segment: Path, start: int, end: int) -> None:
    segment.write_bytes(segment.read_bytes()[: (start + end) // 2])


def _flip_a_byte(segment: Path, start: int, end: int) -> None:
    data = bytearray(segment.read_bytes())
    data[(start + end) // 2] ^= 0xFF
    segment.write_bytes(bytes(data))


def _cut_the_header(segment: Path, start: int, end: int) -> None:
    segment.write_bytes(segment.read_bytes()[: start + 5])


def _half_written(segment: Path, start: int, end: int) -> None:
    data = bytearray(segment.read_bytes())
    data[(start + end) // 2 : end] = bytes(end - (start + end) // 2)
    segment.write_bytes(bytes(data))


def _zero_fill(segment: Path, start: int, end: int) -> None:
    data = bytearray(segment.read_bytes())
    data[start:end] = bytes(end - start)
    segment.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage", [_cut_in_half, _flip_a_byte, _cut_the_header, _half_written, _zero_fill]
)
@pytest.mark.parametrize(("file_format", "compression"), FORMATS)
async def test_torn_final_record_is_dropped_and_the_rest_survives(
    tmp_path: Path, file_format: str, compression: bool, damage: Any
) -> None:
    store = FileBackend(tmp_path, format=file_format, compression=compression)
    written = [await store.put(f"k{n}", b"value %d" % n) for n in range(10)]
    (segment,) = segments(tmp_path)
    last_start = used_bytes(segment)
    await store.put("torn", b"the last record")
    await store.close()
    last_end = used_bytes(segment)
    assert last_end > last_start

    damage(segment, last_start, last_end)
    store = FileBackend(tmp_path, format=file_format, compression=compression)
    try:
        # The bad tail is gone for good: nothing but zero-filled space follows the records.
        data = segment.read_bytes()
        assert read_frames(data)[1] == last_start and not data[last_start:].strip(b"\0")
        assert await store.get("torn") is None
    finally:
        await store.close()
    await writes_go_on(tmp_path, written, 10, format=file_format, compression=compression)


async def test_damage_before_the_last_segment_is_reported(tmp_path: Path) -> None:
    store = FileBackend(tmp_path)
    await store.put("a", b"1")
    await store.close()
    (first,) = segments(tmp_path)
    first_size = first.stat().st_size
    store = FileBackend(tmp_path)
    await store.compact()  # rotates to a second segment and deletes the first
    await store.put("b", b"2")
    await store.close()
    (tmp_path / "snapshot.dat").unlink()
    second = segments(tmp_path)[-1]
    first.write_bytes(b"\xff" * first_size)  # an older segment, damaged in place
    with pytest.raises(FailedPreconditionError, match="restore the directory"):
        FileBackend(tmp_path)
    assert second.exists()


async def test_concurrent_commits_keep_revision_order_while_the_segment_grows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit that grows the segment takes its place in the log in commit order, like every
    other: before, commits started while it zero-filled could land ahead of it, and the store
    then refused to open ("jumps from revision")."""
    monkeypatch.setattr(file_log, "PREALLOCATE_BYTES", 16 * 1024)  # grow every few commits
    store = FileBackend(tmp_path)

    async def writer(number: int) -> list[Entry]:
        return [await store.put(f"w{number}/{n}", bytes(700)) for n in range(25)]

    batches = await asyncio.gather(*map(writer, range(16)))
    written = [entry for entries in batches for entry in entries]
    await store.close()
    (segment,) = segments(tmp_path)
    frames, _ = read_frames(segment.read_bytes())
    assert len(frames) == len(written) == 400
    assert [record[0] for _, record, _ in frames] == list(range(1, len(written) + 1))
    store = FileBackend(tmp_path)
    try:
        assert await all_entries(store) == sorted(written, key=lambda entry: entry.key)
    finally:
        await store.close()


def test_a_write_that_grows_the_segment_keeps_the_offset_taken_in_commit_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The growing write's offset is taken on the event loop before its thread runs, so a
    write reserved while the segment grows lands after it (before, the growing write took its
    offset in its thread once the growth was done, after any reserved meanwhile)."""
    grown, resume = threading.Event(), threading.Event()
    real_extend = Log._extend

    def paused_extend(log: Log, fd: int, needed: int) -> None:
        real_extend(log, fd, needed)
        grown.set()
        assert resume.wait(WAIT)

    log = Log(tmp_path)
    list(log.recover(0))
    log.start(1)
    try:
        first = log.reserve(8, grow=True)
        assert first == 0
        monkeypatch.setattr(Log, "_extend", paused_extend)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            growing = pool.submit(log.write_at, first, b"commit 1", 1)
            assert grown.wait(WAIT)
            second = log.reserve(8)  # the segment has grown: this one need not wait
            resume.set()
            assert growing.result(WAIT) == 1
        assert second == 8
        assert log.write_at(second, b"commit 2", 2) == 2
    finally:
        log.close()
    (segment,) = segments(tmp_path)
    assert segment.read_bytes()[:16] == b"commit 1commit 2"


def frame_bytes(segment: Path) -> list[bytes]:
    """The intact frames of a log segment, each as its bytes, in file order."""
    data = segment.read_bytes()
    frames, end = read_frames(data)
    offsets = [offset for _, _, offset in frames] + [end]
    return [data[start:stop] for start, stop in itertools.pairwise(offsets)]


def rewrite_segment(segment: Path, frames: list[bytes]) -> None:
    """Replace a segment's records with ``frames``, zero-filled to its size as the log is."""
    size = segment.stat().st_size
    data = b"".join(frames)
    segment.write_bytes(data + bytes(size - len(data)))


async def test_a_commit_written_ahead_of_the_one_before_it_is_read_back_in_order(
    tmp_path: Path,
) -> None:
    """Stores written before the fix can hold a commit ahead of the commit before it where
    the segment grew: they open with every record, in revision order."""
    store = FileBackend(tmp_path)
    written = [await store.put(f"k{n}", b"%d" % n) for n in range(8)]
    await store.close()
    (segment,) = segments(tmp_path)
    frames = frame_bytes(segment)
    rewrite_segment(segment, [*frames[:3], frames[5], frames[6], *frames[3:5], frames[7]])
    await writes_go_on(tmp_path, written, 8)


async def test_records_after_a_commit_never_written_are_dropped_and_the_log_goes_on(
    tmp_path: Path,
) -> None:
    """A crash while the segment grew can leave the commits after the growing one written and
    the growing one not: those were never acknowledged (a commit is answered only once every
    earlier one is durable), so they are cut off, and the log continues after the last
    record in order."""
    store = FileBackend(tmp_path)
    written = [await store.put(f"k{n}", b"%d" % n) for n in range(8)]
    await store.close()
    (segment,) = segments(tmp_path)
    frames = frame_bytes(segment)
    rewrite_segment(segment, [*frames[:5], frames[6], frames[7]])  # revision 6 never written
    await FileBackend(tmp_path).close()  # opening cuts them off
    assert used_bytes(segment) == sum(map(len, frames[:5]))
    await writes_go_on(tmp_path, written[:5], 5)


async def test_a_gap_that_records_in_order_follow_is_reported(tmp_path: Path) -> None:
    store = FileBackend(tmp_path)
    for n in range(6):
        await store.put(f"k{n}", b"%d" % n)
    await store.close()
    (segment,) = segments(tmp_path)
    frames = frame_bytes(segment)
    rewrite_segment(segment, [*frames[:2], frames[4], frames[2], frames[5]])  # 4 is missing
    with pytest.raises(FailedPreconditionError, match="jumps from revision 3 to 5"):
        FileBackend(tmp_path)


# -- snapshots, compaction, retention ----------------------------------------------------------


@pytest.mark.parametrize(("file_format", "compression"), FORMATS)
async def test_snapshot_then_reopen_keeps_data_revisions_and_history(
    tmp_path: Path, file_format: str, compression: bool
) -> None:
    store = FileBackend(tmp_path, format=file_format, compression=compression)
    for n in range(20):
        await store.put(f"doc/{n % 7}", b"v%d" % n)
    await store.delete("doc/3")
    await store.put("ttl", b"x", expire_at=time.time() + 3600)
    await store.compact()
    assert (tmp_path / "snapshot.dat").exists()
    assert [p.name for p in segments(tmp_path)] == ["wal-00000000000000000023.log"]
    await store.put("doc/after", b"after the snapshot")
    before = await all_entries(store)
    before_history = await history(store, 1, 23)
    await store.close()

    store = FileBackend(tmp_path, format=file_format, compression=compression)
    try:
        assert await store.revision() == 23
        assert await all_entries(store) == before
        assert await history(store, 1, 23) == before_history
        stats = await store.stats()
        assert (stats.keys, stats.revision, stats.oldest_revision) == (8, 23, 1)
        assert (await store.put("doc/0", b"new")).mod_revision == 24
    finally:
        await store.close()


async def test_background_compaction_bounds_the_log(tmp_path: Path) -> None:
    store = FileBackend(tmp_path, compact_bytes=4096)
    for n in range(300):
        await store.put(f"k{n % 10}", b"%d" % n * 20)
    expected = await all_entries(store)
    await store.close()  # waits for a running compaction
    assert (tmp_path / "snapshot.dat").exists()
    assert sum(used_bytes(p) for p in segments(tmp_path)) < 300 * 40
    store = FileBackend(tmp_path)
    try:
        assert await all_entries(store) == expected
        assert await store.revision() == 300
    finally:
        await store.close()


async def test_compaction_gets_the_log_while_concurrent_writers_keep_commits_in_flight(
    tmp_path: Path,
) -> None:
    store = FileBackend(tmp_path, compact_bytes=4096)

    async def writer(task: int) -> list[int]:
        for _ in range(task):  # start one loop turn apart: commits overlap from then on
            await asyncio.sleep(0)
        return [
            (await store.put(f"w{task}/{n % 5}", b"%d" % n * 20)).mod_revision for n in range(60)
        ]

    revisions = [r for found in await asyncio.gather(*(writer(t) for t in range(8))) for r in found]
    assert sorted(revisions) == list(range(1, 481))  # each acknowledged once, none lost
    expected = await all_entries(store)
    await store.close()
    assert (tmp_path / "snapshot.dat").exists()
    assert sum(used_bytes(p) for p in segments(tmp_path)) < 480 * 40
    store = FileBackend(tmp_path)
    try:
        assert await all_entries(store) == expected
        assert await store.revision() == 480
    finally:
        await store.close()


async def test_history_retention_is_honoured_across_restart(tmp_path: Path) -> None:
    store = FileBackend(tmp_path, history_revisions=4)
    for n in range(30):
        await store.put("k", b"%d" % n)
    await store.compact()
    oldest = (await store.stats()).oldest_revision
    await store.close()
    assert 1 < oldest <= 27
    store = FileBackend(tmp_path, history_revisions=4)
    try:
        assert (await store.stats()).oldest_revision == oldest
        with pytest.raises(HistoryCompactedError):
            await anext(store.watch("", None, start_revision=1))
        assert [e.revision for e in await history(store, oldest, 30)] == list(range(oldest, 31))
    finally:
        await store.close()


async def test_expiry_is_logged_so_revisions_match_after_restart(tmp_path: Path) -> None:
    store = FileBackend(tmp_path)
    updates = store.watch("", None)
    await anext(updates)
    # "long" first: "short" may expire as soon as it is written (a loaded machine can take
    # longer than its TTL between two calls), and its EXPIRE must still be revision 3.
    await store.put("long", b"v", expire_at=time.time() + 3600)
    put = await store.put("short", b"v", expire_at=time.time() + 0.2)
    events: list[Event] = []
    while len(events) < 3:  # nobody reads: the reaper expires the key through the log
        events += (await asyncio.wait_for(anext(updates), WAIT)).events
    await updates.aclose()  # type: ignore[attr-defined]
    expire = events[-1]
    assert (expire.type, expire.key, expire.prev) == (EventType.EXPIRE, "short", put)
    await store.close()

    store = FileBackend(tmp_path)
    try:
        assert await store.revision() == expire.revision == 3
        assert await store.get("short") is None
        assert (await history(store, 1, 3))[-1] == expire
    finally:
        await store.close()


# -- statistics: RPC, CLI, embedded ------------------------------------------------------------


async def test_stats_by_rpc_and_cli(tmp_path: Path) -> None:
    server = StatekeeperServer(
        ServerConfig(backend="file", data_dir=str(tmp_path), port=0, shutdown_grace=1.0)
    )
    port = await server.start()
    address = f"127.0.0.1:{port}"
    try:
        async with StateManager(StateConfig(backend="grpc", address=address)) as manager:
            await manager.save("a", {"n": 1})
            await manager.save("b", [1, 2, 3])
            await manager.save("a", {"n": 2})
            await manager.delete("b")
            stats = await manager.get_stats()
            assert stats == StateStats(
                keys=1, bytes=4, revision=4, oldest_revision=1, backend="file", user_keys=1
            )
            # A manager's records are stored too, but they are not the user's keys.
            workflows = WorkflowStateManager(persistence="grpc", address=address)
            await workflows.create(WorkflowState(workflow_id="w"))
            await workflows.close()
            stats = await manager.get_stats()
            assert await manager.list_keys("*") == ["a"]
            assert stats.user_keys == 1 and stats.keys > 1
        async with child_process(
            sys.executable,
            "-m",
            "statekeeper_server",
            "stats",
            "--address",
            address,
            stdout=asyncio.subprocess.PIPE,
        ) as cli:
            stdout, _ = await asyncio.wait_for(cli.communicate(), WAIT)
        assert cli.returncode == 0
        assert json.loads(stdout) == {
            "user_keys": 1,
            "stored_records": stats.keys,
            "bytes": stats.bytes,
            "revision": stats.revision,
            "oldest_revision": 1,
            "backend": "file",
        }
    finally:
        await server.stop(0)


async def test_embedded_file_store_reports_stats(tmp_path: Path) -> None:
    config = StateConfig(backend="file", file_path=str(tmp_path / "app_state.json"))
    async with StateManager(config) as manager:
        await manager.save("x", {"v": 1})
        stats = await manager.get_stats()
    assert (stats.keys, stats.revision, stats.backend) == (1, 1, "file")
    assert segments(tmp_path / "app_state")


async def test_reaper_runs_after_open_without_any_call(tmp_path: Path) -> None:
    store = FileBackend(tmp_path)
    await store.put("gone", b"v", expire_at=time.time() + 0.3)
    await store.compact()  # the entry comes back from the snapshot, not from log replay
    await store.close()  # before the key is due
    reopened = FileBackend(tmp_path)
    try:
        # Watch the index directly: no call of the store's API may be what starts the reaper.
        updates = reopened._index.watch("", None, start_revision=1)
        events: list[Event] = []
        while not events or events[-1].type is not EventType.EXPIRE:
            events += (await asyncio.wait_for(anext(updates), WAIT)).events
        await updates.aclose()  # type: ignore[attr-defined]
        assert [(e.type, e.key, e.revision) for e in events] == [
            (EventType.PUT, "gone", 1),
            (EventType.EXPIRE, "gone", 2),
        ]
    finally:
        await reopened.close()


async def test_concurrent_compare_and_set_during_compactions(tmp_path: Path) -> None:
    store = FileBackend(tmp_path, compact_bytes=2048)

    async def increment(times: int) -> None:
        done = 0
        while done < times:
            entry = await store.get("counter")
            value = int(entry.value) if entry is not None else 0
            expected = entry.mod_revision if entry is not None else 0
            try:
                await store.put("counter", b"%d" % (value + 1), expected_revision=expected)
            except ConflictError:
                continue
            done += 1

    await asyncio.gather(*(increment(50) for _ in range(8)))
    final = await store.get("counter")
    assert final is not None and final.value == b"400" and final.version == 400
    assert await store.revision() == final.mod_revision == 400
    await store.close()
    assert (tmp_path / "snapshot.dat").exists()
    store = FileBackend(tmp_path)
    try:
        assert await store.get("counter") == final
    finally:
        await store.close()


def test_a_log_write_reports_durability_through_every_commit_written_before_its_fdatasync(
    tmp_path: Path,
) -> None:
    """An fdatasync covers every write that completed before it began, so a commit's write says
    how far the log is durable: through the newest commit written with all earlier ones (commit
    3 written before commit 2 covers only commit 1; commit 2 then covers all three)."""
    log = Log(tmp_path)
    list(log.recover(0))
    log.start(1)
    try:
        assert log.write_at(log.reserve(3, grow=True) or 0, b"one", 1) == 1  # grows the segment
        offsets = [log.reserve(len(data)) for data in (b"two", b"three")]
        assert None not in offsets
        assert log.write_at(offsets[1], b"three", 3) == 1
        assert log.write_at(offsets[0], b"two", 2) == 3
    finally:
        log.close()


def test_log_fdatasyncs_never_overlap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes run in several threads at once, but their fdatasyncs one at a time: of two
    overlapping fdatasyncs of one file the kernel reports a failed write-back to only one, so
    the other could acknowledge a lost write. Every commit is durable once all have returned."""
    real = os.fdatasync
    active, most = 0, 0
    guard = threading.Lock()

    def counted(fd: int) -> None:
        nonlocal active, most
        with guard:
            active += 1
            most = max(most, active)
        try:
            real(fd)
        finally:
            with guard:
                active -= 1

    monkeypatch.setattr(os, "fdatasync", counted)
    log = Log(tmp_path)
    list(log.recover(0))
    log.start(1)
    try:
        log.write_at(log.reserve(5, grow=True) or 0, b"first", 1)  # grows the segment
        commits = range(2, 402)
        offsets = {c: log.reserve(8) for c in commits}  # in commit order, as the loop does
        assert None not in offsets.values()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            covered = list(pool.map(lambda c: log.write_at(offsets[c], b"%08d" % c, c), commits))
    finally:
        log.close()
    assert most == 1
    assert max(covered) == 401  # the last fdatasync covered every commit
    assert all(number >= 1 for number in covered)


async def test_a_listing_page_deep_in_the_index_costs_what_the_first_costs(tmp_path: Path) -> None:
    """A page from a cursor far into the key space reads the same entries, in order, either
    way, and makes SQLite do no more work than a page from the start (it seeks to the cursor
    instead of walking the keys before it again for every chunk of rows)."""
    from statekeeper_server.engine.storage.backend import Put, range_span
    from statekeeper_server.engine.storage.file import FileBackend

    store = FileBackend(tmp_path / "data")
    keys = [f"k/{number:05d}" for number in range(3000)]
    for start in range(0, len(keys), 500):
        await store.txn([], [Put(key, b"v") for key in keys[start : start + 500]])
    await store.compact()  # every key in the index, none in the memtable
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    store.index._reader.set_progress_handler(count, 100)
    work = {}
    for after, reverse in (
        ("k/00010", False),
        ("k/02600", False),
        ("k/02990", True),
        ("k/00400", True),
    ):
        steps = 0
        page = await store.scan(range_span("k/", None), after=after, reverse=reverse, limit=300)
        start = keys.index(after)
        expected = keys[start + 1 : start + 301] if not reverse else keys[start - 300 : start][::-1]
        assert [entry.key for entry in page.entries] == expected
        work[after] = steps
    await store.close()
    assert work["k/02600"] <= work["k/00010"] * 1.5
    assert work["k/00400"] <= work["k/02990"] * 1.5
