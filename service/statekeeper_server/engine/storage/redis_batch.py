"""The Redis backend's batches: items in calls of BATCH_SCRIPT (one round trip, one command
each), reads and transactions in order, each as its own call would run it, and the gathering
of concurrent batches into shared script calls.

A batch that arrives while a script call is in flight waits for it, then goes with every
other batch that arrived meanwhile in the next call: under load the server makes one Redis call
for many RPCs, and Redis runs one script for them, so the cost of a command (packing, a round
trip, the script's entry and its counters) is paid once for all of them. A call carries items
in arrival order while they fit :data:`GATHER_OPERATIONS` and :data:`GATHER_BYTES`, so no call
holds Redis for more than a few milliseconds: a larger batch goes in several calls (its items
stay in order, each atomic alone, as :meth:`Backend.batch` allows), and only a single
transaction larger than that goes whole, alone. A batch that arrives while none is in flight
goes at once: nothing waits for a timer. This is the Redis backend's own gathering, as the file
backend's is its group commit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from statekeeper_server.engine.storage.backend import BatchItem, Operation, Put, Read
from statekeeper_server.engine.storage.redis_codec import expire_text

#: Operations (reads, comparisons and writes) one script call carries at most: about 4 ms of
#: the script's time for small values (measured: 30 us a put; 256 single puts took 7.6 ms,
#: 64 gathered transactions of 127 puts 204 ms).
GATHER_OPERATIONS = 128
#: Bytes of written values one script call carries at most (about 8 ms a MiB, the change-log
#: entry copying each value and the one it replaces).
GATHER_BYTES = 256 * 1024


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


def weight(item: BatchItem) -> tuple[int, int]:
    """The operations of ``item`` (one at least) and the bytes of the values it writes."""
    if isinstance(item, Read):
        return 1, 0
    size = sum(len(op.value) for op in item.operations if isinstance(op, Put))
    return max(1, len(item.compares) + len(item.operations)), size


class _Batch:
    """One caller's items, the replies of those sent so far, and the future of all of them."""

    __slots__ = ("future", "items", "replies")

    def __init__(self, items: Sequence[BatchItem], future: asyncio.Future[list[Any]]) -> None:
        self.items = items
        self.future = future
        self.replies: list[Any] = []


class Gatherer:
    """The script calls of one backend (used from one event loop): one in flight at a time,
    and the batches that arrive meanwhile queued for the next ones.

    ``send`` runs the items given in one script call and returns their replies in order; an
    error it raises is that of every batch with items in the call. A batch split over several
    calls whose later call fails keeps the replies of the items that ran: the error takes the
    place of each reply still missing.
    """

    def __init__(self, send: Callable[[list[BatchItem]], Awaitable[list[Any]]]) -> None:
        self._send = send
        self._queue: list[_Batch] = []
        self._worker: asyncio.Task[None] | None = None

    async def run(self, items: Sequence[BatchItem]) -> list[Any]:
        """The replies of ``items``, run in order in script calls shared with other batches.
        A caller cancelled takes out its items not sent yet: they never run."""
        if not items:
            return []
        loop = asyncio.get_running_loop()
        batch = _Batch(items, loop.create_future())
        self._queue.append(batch)
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._drain(), name="statekeeper-redis-batches")
        try:
            return await batch.future
        except asyncio.CancelledError:
            batch.future.cancel()
            raise

    def _take(self) -> list[tuple[_Batch, int]]:
        """The items of the next call, as (batch, how many of its items not sent yet) in queue
        order: the oldest items while they fit :data:`GATHER_OPERATIONS` and
        :data:`GATHER_BYTES` (the first one however large)."""
        parts: list[tuple[_Batch, int]] = []
        operations, size = 0, 0
        for batch in self._queue:
            count = 0
            for item in batch.items[len(batch.replies) :]:
                more, extra = weight(item)
                full = operations + more > GATHER_OPERATIONS or size + extra > GATHER_BYTES
                if full and (parts or count):
                    return [*parts, (batch, count)] if count else parts
                operations, size, count = operations + more, size + extra, count + 1
            parts.append((batch, count))
        return parts

    async def _drain(self) -> None:
        """Send what is queued, one script call after the other, until nothing is."""
        while True:
            self._queue = [batch for batch in self._queue if not batch.future.done()]
            if not self._queue:
                return
            parts = self._take()
            items = [
                item
                for batch, count in parts
                for item in batch.items[len(batch.replies) : len(batch.replies) + count]
            ]
            try:
                replies = await self._send(items)
            except asyncio.CancelledError:
                for batch, _ in parts:
                    batch.future.cancel()
                raise
            except BaseException as error:
                for batch, _ in parts:
                    if batch.future.done():
                        continue
                    if batch.replies:  # its earlier items ran and keep their replies
                        batch.replies += [error] * (len(batch.items) - len(batch.replies))
                        batch.future.set_result(batch.replies)
                    else:
                        batch.future.set_exception(error)
                continue
            start = 0
            for batch, count in parts:
                batch.replies += replies[start : start + count]
                start += count
                if len(batch.replies) == len(batch.items) and not batch.future.done():
                    batch.future.set_result(batch.replies)

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
        for batch in self._queue:
            batch.future.cancel()
        self._queue = []
        self._worker = None
