"""The change-log follower of the Redis backend: one reader per process, shared by its watchers."""

from __future__ import annotations

import asyncio

from statekeeper.errors import HistoryCompactedError

from statekeeper_server.engine.storage.backend import Event

#: Revisions of decoded change log the stream reader keeps for local watchers.
TAIL_BUFFER = 1024


class ChangeLogTail:
    """The process's one reader of the change log, shared by every local watcher."""

    def __init__(self, last: int) -> None:
        self.last = last
        self.first = last + 1
        self.buffer: list[tuple[Event, ...]] = []
        self.healthy = True
        self.reset: HistoryCompactedError | None = None
        self.watchers = 0
        self.waiter: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        """Wake every watcher waiting for the next batch."""
        waiter = self.waiter
        self.waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout: float | None) -> bool:
        """Wait for the next batch; False when ``timeout`` passed first."""
        if self.waiter is None:
            self.waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self.waiter), timeout)
        except TimeoutError:
            return False
        return True

    def add(self, revision: int, events: tuple[Event, ...]) -> None:
        """Append the events of ``revision`` (the next one read from the stream)."""
        if revision != self.last + 1:
            # The reader fell behind the retained stream (or started anew): restart the buffer.
            self.buffer = []
            self.first = revision
        self.buffer.append(events)
        self.last = revision
        if len(self.buffer) > 2 * TAIL_BUFFER:
            del self.buffer[:TAIL_BUFFER]
            self.first += TAIL_BUFFER
