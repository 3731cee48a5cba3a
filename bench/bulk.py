"""Large record sets for the queue and workflow scaling parts, loaded in bulk, and how their
operations are timed.

Building 100k tasks, steps or checkpoints through the engine one operation at a time costs one
durable commit each: on the file backend one ``fdatasync`` per record (100k of them take the
better part of an hour on a busy disk), on Redis a few round trips per record. So a part builds
its records once per size on a memory backend (through the engine, or in the engine's stored
form put with :func:`put_all`), then :func:`copy` puts every entry into a fresh backend of each
kind in transactions of :data:`BATCH` keys, and the operations are timed there, every size in
each of :func:`interleaved`'s rounds. Revisions differ from those of the building store;
nothing the engine stores depends on them.

A :class:`Meter` times each call in wall time and in CPU time: this process's, plus on Redis
the Redis main thread's (what a script or command costs there). CPU per call is what the
flatness targets judge: on a shared 2-core machine a wall time mostly measures the scheduler.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from statekeeper_server.engine.records import scan
from statekeeper_server.engine.storage.backend import Backend, Put
from statekeeper_server.engine.storage.factory import BackendOptions, open_backend

#: Entries per copying transaction.
BATCH = 1000


async def put_all(target: Backend, puts: Iterable[Put]) -> None:
    """Apply ``puts`` (distinct keys) to ``target``, :data:`BATCH` to a transaction."""
    batch: list[Put] = []
    for put in puts:
        batch.append(put)
        if len(batch) == BATCH:
            await target.txn((), batch)
            batch = []
    if batch:
        await target.txn((), batch)


async def copy(source: Backend, target: Backend) -> None:
    """Put every live entry of ``source`` into ``target`` (its expiry kept)."""
    entries = [entry async for entry in scan(source, "", page=BATCH)]
    await put_all(target, (Put(entry.key, entry.value, entry.expire_at) for entry in entries))


@asynccontextmanager
async def copies(
    built: dict[int, Backend], kind: str, redis_url: str
) -> AsyncIterator[dict[int, Backend]]:
    """Per size, a fresh backend of ``kind`` holding a copy of ``built[size]`` (each in its own
    directory, or under its own key prefix of one emptied Redis), all open at once so that the
    sizes can be timed in interleaved rounds; closed on exit."""
    with tempfile.TemporaryDirectory(prefix="bench-bulk-") as directory:
        if kind == "redis":
            # Imported here: bench.scaling needs the bench extra (psutil); building and
            # copying records does not (tests/test_bench_records.py runs without it).
            from bench.scaling import flush_redis

            flush_redis(redis_url)
        stores: dict[int, Backend] = {}
        try:
            for size, source in built.items():
                options = BackendOptions(
                    kind=kind,
                    data_dir=f"{directory}/{size}",
                    redis_url=redis_url,
                    redis_key_prefix=f"statekeeper-{size}:",
                )
                stores[size] = open_backend(options)
                await copy(source, stores[size])
            yield stores
        finally:
            for store in stores.values():
                await store.close()


async def interleaved(
    stores: dict[int, Backend],
    timed: Callable[[Backend, int], Awaitable[dict[str, float]]],
    rounds: int,
    log: Callable[[str], None],
) -> dict[int, dict[str, float]]:
    """Per size, every figure of ``timed(store, size)``: the median over ``rounds`` rounds,
    each round timing every size in turn (so a busy machine weighs on all sizes alike). The
    medians and the range over rounds of each figure's ratio largest / smallest size are logged."""
    seen: dict[int, dict[str, list[float]]] = {size: {} for size in stores}
    for _ in range(rounds):
        for size, store in stores.items():
            for name, value in (await timed(store, size)).items():
                seen[size].setdefault(name, []).append(value)
    medians = {size: {n: statistics.median(v) for n, v in by.items()} for size, by in seen.items()}
    smallest, largest = min(seen), max(seen)
    for name, values in seen[largest].items():
        pairs = zip(values, seen[smallest][name], strict=True)
        ratios = [big / max(small, 1e-9) for big, small in pairs]
        shown = " / ".join(f"{medians[size][name]:.3g}" for size in sorted(seen))
        log(f"  {name}: {shown}; {largest:,} / {smallest:,}: {min(ratios):.2f}-{max(ratios):.2f} x")
    return medians


#: Calls timed to calibrate a :class:`Meter`'s reading of the Redis CPU clock.
CALIBRATION = 20


class Meter:
    """Times calls in wall time and in CPU time: this process's, and with ``redis_url`` also
    the Redis main thread's (``INFO cpu``, read before and after each call; the median cost of
    a reading with no call between is subtracted)."""

    def __init__(self, redis_url: str = "") -> None:
        import redis as syncredis

        self.client = syncredis.Redis.from_url(redis_url) if redis_url else None
        self.offset = 0.0
        if self.client is not None:
            gaps = []
            for _ in range(CALIBRATION):
                before = self._server()
                gaps.append(self._server() - before)
            self.offset = statistics.median(gaps)

    def _server(self) -> float:
        """The Redis main thread's CPU seconds so far (0 without Redis)."""
        if self.client is None:
            return 0.0
        info: dict[str, Any] = self.client.info("cpu")
        return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])

    async def p50(self, call: Callable[[], Awaitable[Any]], samples: int) -> tuple[float, float]:
        """The median wall time and the median CPU time of ``samples`` calls, in ms."""
        walls, cpus = [], []
        for _ in range(samples):
            server = self._server()
            cpu, started = time.process_time(), time.perf_counter()
            await call()
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            server = max(self._server() - server - self.offset, 0.0)
            walls.append(wall)
            cpus.append(cpu + server)
        return statistics.median(walls) * 1000, statistics.median(cpus) * 1000

    def close(self) -> None:
        """Close the Redis connection."""
        if self.client is not None:
            self.client.close()
