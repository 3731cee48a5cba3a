"""The file backend's group commits: what is queued for the log, and the writes in flight.

Records planned on the event loop queue here. The backend's writer task turns everything
queued into one group commit (one write and one fdatasync in a log thread), and may start the
next one while up to :data:`COMMITS_IN_FLIGHT` are still being written, so a write that
arrives during a commit does not wait for that commit's write to finish before its own starts
(the fdatasyncs themselves run one at a time, :meth:`Log.write_at`). Each commit takes its
place in the log in commit order before it is written (:meth:`Log.reserve`) and gets the next
commit number; a commit is visible and answered only once it and every earlier one are
durable. An fdatasync that returns tells how far the log is durable (every commit written
before it began), so the commits it covers are answered then.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from statekeeper_server.engine.storage.backend import Event
from statekeeper_server.engine.storage.file_log import Log

#: Group commits being written at once at most (one per client connection of the benchmark's
#: four processes; see docs/backends.md for the measurements).
COMMITS_IN_FLIGHT = 4


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


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
        #: The commits being written, oldest first: (commit number, records, the write's
        #: future giving the commit number the log is durable through). A commit stays here
        #: until its own write returns, even once a later one answered it.
        self.in_flight: deque[tuple[int, list[Queued], asyncio.Future[int]]] = deque()
        #: The newest commit number given out, and the newest one answered.
        self.started = 0
        self.answered = 0
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
        in flight, :meth:`held` is waiting, or the segment must grow while others are in
        flight; True when one started."""
        if not self.queue or len(self.in_flight) >= COMMITS_IN_FLIGHT or self._wanted:
            return False
        data = b"".join(item.frame for item in self.queue)
        # A commit that grows the segment starts alone: its offset is taken here, in commit
        # order like every other, and the growth's fsync must not overlap an fdatasync.
        offset = self.log.reserve(len(data), grow=not self.in_flight)
        if offset is None:
            return False
        batch, self.queue = self.queue, []
        self.started += 1
        written = asyncio.get_running_loop().run_in_executor(
            self.executor, self.log.write_at, offset, data, self.started
        )
        self.in_flight.append((self.started, batch, written))
        return True

    async def finished(self) -> list[list[Queued]]:
        """Wait for a write in flight to return (or, with room for another, for a new record)
        and return the commits now durable and not yet answered, oldest first; raises the
        error of a failed write (the commits not answered stay, for :meth:`take_all`)."""
        waits: set[asyncio.Future[Any]] = {w for _, _, w in self.in_flight if not w.done()}
        if len(self.in_flight) < COMMITS_IN_FLIGHT and not self.queue:
            self._arrival = asyncio.get_running_loop().create_future()
            waits.add(self._arrival)
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._arrival = None
        durable = self.answered
        for _, _, written in self.in_flight:
            if written.done():
                durable = max(durable, written.result())
        done = [batch for number, batch, _ in self.in_flight if self.answered < number <= durable]
        self.answered = durable
        while self.in_flight and self.in_flight[0][2].done():
            self.in_flight.popleft()
        return done

    def take_all(self) -> list[Queued]:
        """Every record in flight or queued, forgotten here (after a failed write)."""
        unanswered = [batch for number, batch, _ in self.in_flight if number > self.answered]
        items = [item for batch in unanswered for item in batch] + self.queue
        for _, _, written in self.in_flight:
            written.add_done_callback(_consume)
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
