"""Large record sets for the queue and workflow scaling parts, loaded in bulk.

Building 100k tasks, steps or checkpoints through the engine one operation at a time costs one
durable commit each: on the file backend one ``fdatasync`` per record (100k of them take the
better part of an hour on a busy disk), on Redis a few round trips per record. So a part builds
its records once per size through the engine on a memory backend (the records are exactly what
the engine writes), then :func:`copy` puts every entry into a fresh backend of each kind in
transactions of :data:`BATCH` keys, and the operations are timed there. Revisions differ from
those of the building store; nothing the engine stores depends on them.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from statekeeper_server.engine.records import scan
from statekeeper_server.engine.storage.backend import Backend, Put
from statekeeper_server.engine.storage.factory import BackendOptions, open_backend

from bench.scaling import flush_redis

#: Entries per copying transaction.
BATCH = 1000


async def copy(source: Backend, target: Backend) -> float:
    """Put every live entry of ``source`` into ``target`` (its expiry kept), :data:`BATCH` to a
    transaction; the entries copied per second."""
    started, count = time.perf_counter(), 0
    batch: list[Put] = []
    async for entry in scan(source, "", page=BATCH):
        batch.append(Put(entry.key, entry.value, entry.expire_at))
        if len(batch) == BATCH:
            await target.txn((), batch)
            count, batch = count + len(batch), []
    if batch:
        await target.txn((), batch)
        count += len(batch)
    return count / max(time.perf_counter() - started, 1e-9)


@asynccontextmanager
async def copied(source: Backend, kind: str, redis_url: str) -> AsyncIterator[tuple[Any, float]]:
    """A fresh backend of ``kind`` (an emptied Redis, a new directory) holding a copy of
    ``source``, with the copy's entries per second; closed on exit."""
    with tempfile.TemporaryDirectory(prefix="bench-bulk-") as directory:
        if kind == "redis":
            flush_redis(redis_url)
        target = open_backend(BackendOptions(kind=kind, data_dir=directory, redis_url=redis_url))
        try:
            yield target, await copy(source, target)
        finally:
            await target.close()
