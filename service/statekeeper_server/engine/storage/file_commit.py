"""The file backend's group commits: what is queued for the log, and the writes in flight.

Records planned on the event loop queue here. The backend's writer task turns everything
queued into one group commit (one write and one fdatasync in a log thread), and may start the
next one while up to :data:`COMMITS_IN_FLIGHT` are still being written: concurrent fdatasyncs
of one file overlap in the kernel, so a write that arrives during a commit does not wait for
that commit to finish before its own starts. Each commit takes its place in the log in commit
order before it is written (:meth:`Log.reserve`), and commits finish in that order, so a
commit is visible and answered only once every earlier one is durable too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from dataclasses import dataclass

from statekeeper_server.engine.storage.backend import Event
from statekeeper_server.engine.storage.file_log import Log

#: Group commits being written at once at most.
COMMITS_IN_FLIGHT = 2


@dataclass(slots=True)
class Queued:
    """One planned record waiting for its group commit: its revision, events, framed bytes
    and the future its writer waits on."""

    revision: int
    events: list[Event]
    frame: bytes
    future: asyncio.Future[None]


class Commits:
    """The queue and the commits in flight of one log (used from one event loop).

    ``lock`` is held by the writer while commits are in flight; :meth:`held` takes the log
    with none in flight (the writer lets the ones in flight finish and starts no other).
    """

    def __init__(self, log: Log, executor: Executor) -> None:
        self.log = log
        self.executor = executor
        self.queue: list[Queued] = []
        self.in_flight: deque[tuple[list[Queued], asyncio.Future[None]]] = deque()
        self.lock = asyncio.Lock()
        self._wanted = 0
        self._arrival: asyncio.Future[None] | None = None

    def add(self, item: Queued) -> None:
        """Queue a record for the next group commit (waking a writer that waits for one)."""
        self.queue.append(item)
        if self._arrival is not None and not self._arrival.done():
            self._arrival.set_result(None)

    def start(self) -> bool:
        """Start writing everything queued as one group commit, unless COMMITS_IN_FLIGHT are
        in flight, :meth:`held` is waiting, or the segment must grow while others write; True
        when one started."""
        if not self.queue or len(self.in_flight) >= COMMITS_IN_FLIGHT or self._wanted:
            return False
        data = b"".join(item.frame for item in self.queue)
        offset = self.log.reserve(len(data))
        if offset is None and self.in_flight:
            return False
        batch, self.queue = self.queue, []
        loop = asyncio.get_running_loop()
        if offset is None:
            written = loop.run_in_executor(self.executor, self.log.append, data)
        else:
            written = loop.run_in_executor(self.executor, self.log.write_at, offset, data)
        self.in_flight.append((batch, written))
        return True

    async def finished(self) -> list[list[Queued]]:
        """Wait for the oldest commit in flight (or, with room for another, for a new record)
        and return the commits now durable, oldest first; raises the error of a failed write
        (that commit and the later ones stay in flight, for :meth:`take_all`)."""
        waits: set[asyncio.Future[None]] = {self.in_flight[0][1]}
        if len(self.in_flight) < COMMITS_IN_FLIGHT and not self.queue:
            self._arrival = asyncio.get_running_loop().create_future()
            waits.add(self._arrival)
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._arrival = None
        done: list[list[Queued]] = []
        while self.in_flight and self.in_flight[0][1].done():
            self.in_flight[0][1].result()
            done.append(self.in_flight.popleft()[0])
        return done

    def take_all(self) -> list[Queued]:
        """Every record in flight or queued, forgotten here (after a failed write)."""
        items = [item for batch, _ in self.in_flight for item in batch] + self.queue
        self.in_flight.clear()
        self.queue = []
        return items

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """Hold the log with no group commit in flight."""
        self._wanted += 1
        try:
            await self.lock.acquire()
        finally:
            self._wanted -= 1
        try:
            yield
        finally:
            self.lock.release()

    def rebind(self) -> None:
        """Forget the old loop's lock and waiter (nothing is in flight: every acknowledged
        write is durable)."""
        self.lock = asyncio.Lock()
        self._arrival = None
        self._wanted = 0
