"""Large record sets for the queue and workflow scaling parts, loaded in bulk.

Building 100k tasks, steps or checkpoints through the engine one operation at a time costs one
durable commit each: on the file backend one ``fdatasync`` per record (100k of them take the
better part of an hour on a busy disk), on Redis a few round trips per record. So a part builds
its records once per size through the engine on a memory backend (the records are exactly what
the engine writes), then :func:`copy` puts every entry into a fresh backend of each kind in
transactions of :data:`BATCH` keys, and the operations are timed there, every size in each of
:func:`interleaved`'s rounds. Revisions differ from
those of the building store; nothing the engine stores depends on them.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from statekeeper_server.engine.records import scan
from statekeeper_server.engine.storage.backend import Backend, Put
from statekeeper_server.engine.storage.factory import BackendOptions, open_backend

from bench.scaling import flush_redis

#: Entries per copying transaction.
BATCH = 1000


async def copy(source: Backend, target: Backend) -> None:
    """Put every live entry of ``source`` into ``target`` (its expiry kept), :data:`BATCH` to a
    transaction."""
    batch: list[Put] = []
    async for entry in scan(source, "", page=BATCH):
        batch.append(Put(entry.key, entry.value, entry.expire_at))
        if len(batch) == BATCH:
            await target.txn((), batch)
            batch = []
    if batch:
        await target.txn((), batch)


@asynccontextmanager
async def copies(
    built: dict[int, Backend], kind: str, redis_url: str
) -> AsyncIterator[dict[int, Backend]]:
    """Per size, a fresh backend of ``kind`` holding a copy of ``built[size]`` (each in its own
    directory, or under its own key prefix of one emptied Redis), all open at once so that the
    sizes can be timed in interleaved rounds; closed on exit."""
    with tempfile.TemporaryDirectory(prefix="bench-bulk-") as directory:
        if kind == "redis":
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
