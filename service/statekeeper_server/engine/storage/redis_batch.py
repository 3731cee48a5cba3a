"""The Redis backend's batches: every item in one call of BATCH_SCRIPT (one round trip, one
command), reads and transactions in order, each as its own call would run it, and the
gathering of concurrent batches into one script call.

A batch that arrives while a script call is in flight waits for it, then goes with every
other batch that arrived meanwhile in the next call (up to :data:`GATHER_ITEMS` items): under
load the server makes one Redis call for many RPCs, and Redis runs one script for them, so the
cost of a command (packing, a round trip, the script's entry and its counters) is paid once for
all of them. A batch that arrives while none is in flight goes at once: nothing waits for a
timer. This is the Redis backend's own gathering, as the file backend's is its group commit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from statekeeper_server.engine.storage.backend import BatchItem, Operation, Put, Read
from statekeeper_server.engine.storage.redis_codec import expire_text

#: Items one gathered script call carries at most (a larger batch still goes whole, alone).
GATHER_ITEMS = 256


def item_args(item: BatchItem) -> list[Any]:
    """The arguments of one item of BATCH_SCRIPT (see the script)."""
    if isinstance(item, Read):
        return ["r", item.key]
    args: list[Any] = ["t", len(item.compares)]
    for compare in item.compares:
        args += (compare.key, compare.mod_revision)
    args.append(len(item.operations))
    for operation in item.operations:
        args += _operation_args(operation)
    return args


def _operation_args(operation: Operation) -> tuple[Any, ...]:
    if isinstance(operation, Put):
        return ("p", operation.key, operation.value, expire_text(operation.expire_at))
    return ("d", operation.key, b"", "")


class Gatherer:
    """The script calls of one backend (used from one event loop): one in flight at a time,
    and the batches that arrive meanwhile queued for the next one.

    ``send`` runs the items given in one script call and returns their replies in order; an
    error it raises is every gathered batch's.
    """

    def __init__(self, send: Callable[[list[BatchItem]], Awaitable[list[Any]]]) -> None:
        self._send = send
        self._queue: list[tuple[Sequence[BatchItem], asyncio.Future[list[Any]]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def run(self, items: Sequence[BatchItem]) -> list[Any]:
        """The replies of ``items``, run in one script call, alone or with other batches.
        A caller cancelled before its call is sent takes its items out: they never run."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        entry = (items, future)
        self._queue.append(entry)
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._drain(), name="statekeeper-redis-batches")
        try:
            return await future
        except asyncio.CancelledError:
            with contextlib.suppress(ValueError):
                self._queue.remove(entry)
            raise

    def _take(self) -> list[tuple[Sequence[BatchItem], asyncio.Future[list[Any]]]]:
        """The queued batches of the next call: the oldest one, and those after it while
        they fit :data:`GATHER_ITEMS`."""
        count, end = len(self._queue[0][0]), 1
        while end < len(self._queue) and count + len(self._queue[end][0]) <= GATHER_ITEMS:
            count += len(self._queue[end][0])
            end += 1
        taken, self._queue = self._queue[:end], self._queue[end:]
        return taken

    async def _drain(self) -> None:
        """Send what is queued, one script call after the other, until nothing is."""
        while self._queue:
            taken = self._take()
            try:
                replies = await self._send([item for items, _ in taken for item in items])
            except asyncio.CancelledError:
                for _, future in taken:
                    future.cancel()
                raise
            except BaseException as error:
                for _, future in taken:
                    if not future.done():
                        future.set_exception(error)
                continue
            start = 0
            for items, future in taken:
                if not future.done():
                    future.set_result(replies[start : start + len(items)])
                start += len(items)

    async def close(self) -> None:
        """Stop sending: queued batches fail with CancelledError."""
        worker, self._worker = self._worker, None
        if worker is not None and not worker.done():
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await worker
        self.discard()

    def discard(self) -> None:
        """Forget the queue and the worker (their event loop is gone or they are done)."""
        for _, future in self._queue:
            if not future.done():
                future.cancel()
        self._queue = []
        self._worker = None
