"""The Redis backend across processes: several servers on one Redis, and Redis going away."""

from __future__ import annotations

import asyncio
import multiprocessing
import random
from collections.abc import AsyncIterator, Callable

import pytest
from statekeeper.errors import ConflictError, Reason, UnavailableError
from statekeeper.state import RedisBackend, StateChange, StateConfig, StateManager
from statekeeper_server.engine.storage.backend import Compare, Put, Read, Transaction, TxnResult

from tests.processes import RedisProcess
from tests.servers import ServerProcess

#: How long a test waits for something that must happen (a failure bound, not a sync).
WAIT = 30.0


def remote(server: ServerProcess) -> StateManager:
    """A StateManager talking to ``server``."""
    return StateManager(StateConfig(backend="grpc", address=server.address))


async def started(manager: StateManager, pattern: str) -> AsyncIterator[StateChange]:
    """A watch of ``pattern`` that is established (its created marker arrived)."""
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    changes = manager.watch(pattern, _started=ready)
    first = asyncio.ensure_future(anext(changes))
    done, _ = await asyncio.wait({first, ready}, timeout=WAIT, return_when="FIRST_COMPLETED")
    assert ready in done, "the watch did not start"

    async def rest() -> AsyncIterator[StateChange]:
        yield await first
        async for change in changes:
            yield change

    return rest()


async def take(changes: AsyncIterator[StateChange], count: int) -> list[StateChange]:
    """The next ``count`` changes."""
    return [await asyncio.wait_for(anext(changes), WAIT) for _ in range(count)]


async def test_watcher_on_one_server_sees_every_write_through_another(
    redis_instances: list[ServerProcess],
) -> None:
    a, b = redis_instances
    async with remote(a) as watcher, remote(b) as writer:
        changes = await started(watcher, "job:*")
        revisions = []
        for number in range(40):
            revisions.append(await writer.save(f"job:{number % 3}", {"n": number}))
            if number % 10 == 9:
                await writer.delete(f"job:{number % 3}")
                revisions.append(revisions[-1] + 1)
        await writer.save("other", 1)
        seen = await take(changes, len(revisions))
    assert [change.revision for change in seen] == revisions
    assert revisions == sorted(revisions)
    puts = [change.new_value for change in seen if change.new_value is not None]
    assert puts == [{"n": number} for number in range(40)]


async def _increment(address: str, key: str, times: int) -> None:
    async with StateManager(StateConfig(backend="grpc", address=address)) as manager:
        for _ in range(times):
            while True:
                entry = await manager.get_entry(key)
                current = 0 if entry is None else entry.value
                expected = 0 if entry is None else entry.mod_revision
                try:
                    await manager.save(key, current + 1, expected_revision=expected)
                    break
                except ConflictError:
                    # Back off a little so that eight contending writers spread out.
                    await asyncio.sleep(random.uniform(0, 0.003))


def _increment_process(addresses: list[str], key: str, tasks: int, times: int) -> None:
    async def run() -> None:
        await asyncio.gather(
            *(_increment(addresses[task % len(addresses)], key, times) for task in range(tasks))
        )

    asyncio.run(run())


def test_compare_and_set_is_atomic_across_server_processes(
    redis_instances: list[ServerProcess],
) -> None:
    a, b = redis_instances
    context = multiprocessing.get_context("spawn")
    workers = [
        # Each client process spreads its four tasks over both servers.
        context.Process(
            target=_increment_process, args=(order, "counter", 4, 250), name=f"client-{index}"
        )
        for index, order in enumerate([[a.address, b.address], [b.address, a.address]])
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(240)
        assert worker.exitcode == 0

    async def read() -> object:
        async with remote(b) as manager:
            return await manager.get("counter")

    assert asyncio.run(read()) == 2000


async def test_redis_outage_fails_fast_and_recovers_without_restart(
    redis_process: RedisProcess, spawn_servers: Callable[..., list[ServerProcess]]
) -> None:
    a, b = spawn_servers(2, "--backend", "redis", "--redis-url", redis_process.url)
    async with remote(a) as watcher, remote(a) as client_a, remote(b) as client_b:
        changes = await started(watcher, "k*")
        before = [await client_b.save("k1", number) for number in range(3)]
        assert [c.revision for c in await take(changes, 3)] == before

        redis_process.stop()
        for client in (client_a, client_b):
            for call in (client.save("k2", "lost"), client.get("k1"), client.list_keys()):
                with pytest.raises(UnavailableError) as caught:
                    await asyncio.wait_for(call, WAIT)
                assert caught.value.reason == Reason.BACKEND_UNAVAILABLE
                assert "Redis" in caught.value.message and "unavailable" in caught.value.message

        redis_process.start()
        # Same servers, no restart: they reach Redis again on the next call.
        after = [await client_a.save("k2", "back"), await client_b.save("k1", 99)]
        assert after[0] == before[-1] + 1
        assert await client_b.get("k2") == "back"
        assert await client_a.get("k1") == 99
        resumed = await take(changes, 2)
    assert [(c.key, c.revision, c.new_value) for c in resumed] == [
        ("k2", after[0], "back"),
        ("k1", after[1], 99),
    ]


async def test_embedded_state_manager_on_redis(redis_url: str) -> None:
    config = StateConfig(backend="redis", redis_url=redis_url, key_prefix="app:")
    async with StateManager(config) as manager:
        changes = await started(manager, "agent:*")
        await manager.save("agent:x", {"status": "running"})
        assert await manager.get("agent:x") == {"status": "running"}
        assert await manager.list_keys() == ["agent:x"]
        (change,) = await take(changes, 1)
        assert change.key == "agent:x" and change.new_value == {"status": "running"}


async def test_key_prefix_and_db_isolation(redis_url: str) -> None:
    base = redis_url.rsplit("/", 1)[0]
    one = RedisBackend(base, db=0, key_prefix="one:")
    two = RedisBackend(base, db=0, key_prefix="two:")
    other_db = RedisBackend(base, db=1, key_prefix="one:")
    try:
        await one.put("k", b"1")
        assert await two.get("k") is None
        assert await other_db.get("k") is None
        assert await two.revision() == 0 and await other_db.revision() == 0
        await other_db.put("k", b"x")
        entry = await one.get("k")
        assert entry is not None and entry.value == b"1"
        assert [e.key for e in (await other_db.range("")).entries] == ["k"]
    finally:
        for backend in (one, two, other_db):
            await backend.close()


async def test_unreachable_redis_fails_fast_with_a_clear_message(redis_url: str) -> None:
    from tests.processes import free_port

    backend = RedisBackend(f"redis://:secret@127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(UnavailableError) as caught:
            await asyncio.wait_for(backend.put("k", b"v"), WAIT)
        assert caught.value.reason == Reason.BACKEND_UNAVAILABLE
        assert "Redis backend at redis://:***@127.0.0.1" in caught.value.message
        assert "secret" not in caught.value.message
        with pytest.raises(UnavailableError):
            await asyncio.wait_for(anext(backend.watch("", None)), WAIT)
    finally:
        await backend.close()


async def test_backend_reconnects_after_a_redis_restart_without_failed_calls(
    redis_process: RedisProcess,
) -> None:
    backend = RedisBackend(redis_process.url, connection_pool_size=4)
    try:
        await asyncio.gather(*(backend.put(f"k{number}", b"1") for number in range(4)))
        # Nobody calls while Redis is down: the pooled connections just went stale.
        await asyncio.to_thread(redis_process.stop)
        await asyncio.to_thread(redis_process.start)
        entries = await asyncio.gather(*(backend.put(f"k{number}", b"2") for number in range(4)))
        assert sorted(entry.mod_revision for entry in entries) == [5, 6, 7, 8]
        assert [e.version for e in (await backend.range("")).entries] == [2, 2, 2, 2]
    finally:
        await backend.close()


async def test_a_batch_runs_whole_and_in_order_when_redis_lost_its_scripts(redis_url: str) -> None:
    import redis.asyncio as aioredis

    backend = RedisBackend(redis_url, key_prefix="flushed:")
    try:
        first = await backend.put("a", b"\x01")
        admin = aioredis.Redis.from_url(redis_url)
        try:
            await admin.script_flush()  # as after a Redis restart: no script is cached
        finally:
            await admin.aclose()
        saved, read, refused = await backend.batch(
            [
                Transaction((), (Put("b", b"\x02"),)),
                Read("b"),
                Transaction((Compare("a", first.mod_revision + 5),), (Put("a", b"\x03"),)),
            ]
        )
        assert isinstance(saved, TxnResult) and saved.revision == first.mod_revision + 1
        assert isinstance(read, tuple) and read[0] is not None and read[0].value == b"\x02"
        assert isinstance(refused, ConflictError)
        assert await backend.revision() == saved.revision
    finally:
        await backend.close()


async def test_calls_issued_together_share_one_script_call(redis_url: str) -> None:
    import redis.asyncio as aioredis

    backend = RedisBackend(redis_url, key_prefix="gathered:")
    admin = aioredis.Redis.from_url(redis_url)
    try:
        first = await backend.put("warm", b"0")

        async def calls() -> dict[str, int]:
            stats = await admin.info("commandstats")
            return {
                name: int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))
                for name in ("get", "xadd")
            }

        before = await calls()
        *entries, (read, revision) = await asyncio.gather(
            *(backend.put(f"k{number}", b"1") for number in range(16)), backend.read("k3")
        )
        after = await calls()
        # Each write has a revision of its own, in the order issued, and the read sees them all.
        assert [entry.mod_revision for entry in entries] == [
            first.mod_revision + 1 + number for number in range(16)
        ]
        assert read is not None and read.mod_revision == entries[3].mod_revision
        assert revision == entries[-1].mod_revision
        # One script call for all 17: the revision and the change log's size read once for all
        # of them (two GETs, not two a call), and one change-log entry a write.
        assert after["get"] - before["get"] == 2
        assert after["xadd"] - before["xadd"] == 16
    finally:
        await admin.aclose()
        await backend.close()
