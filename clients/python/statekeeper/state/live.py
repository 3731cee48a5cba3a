"""``LiveStream``: the async iterator behind the managers' watch methods.

It opens a server-streaming watch RPC, waits for the server's "created" message (so
:meth:`LiveStream.started` tells when later changes are sure to be delivered), converts every
further message into API objects, and in remote mode reconnects after a broken stream, resuming
after the last delivered revision so nothing is lost or repeated.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, TypeVar

from statekeeper.errors import UnavailableError
from statekeeper.state.client import MAX_RECONNECT_DELAY as MAX_RECONNECT_DELAY
from statekeeper.state.client import Backoff, history_compacted
from statekeeper.transport import stream

T = TypeVar("T")
log = logging.getLogger("statekeeper.state")


class LiveStream(Generic[T]):
    """An async iterator of changes; ``await stream.started()`` once a consumer iterates it
    to know that every later change will be delivered. ``revision`` is the store revision the
    stream is current to (pass ``revision + 1`` as ``start_revision`` to continue elsewhere)."""

    def __init__(
        self,
        method: Callable[..., Any],
        make_request: Callable[[int], Any],
        convert: Callable[[Any], list[T]],
        start_revision: int,
        reconnect: bool,
    ) -> None:
        self._method = method
        self._make_request = make_request
        self._convert = convert
        self._next_revision = start_revision
        self._reconnect = reconnect
        self._started: asyncio.Future[None] | None = None
        self._iterator: AsyncIterator[T] | None = None
        self.revision = 0

    def _started_future(self) -> asyncio.Future[None]:
        if self._started is None:
            self._started = asyncio.get_running_loop().create_future()
        return self._started

    async def started(self) -> None:
        """Wait until the server has registered the watch (someone must be iterating)."""
        await asyncio.shield(self._started_future())

    def __aiter__(self) -> LiveStream[T]:
        return self

    async def __anext__(self) -> T:
        if self._iterator is None:
            self._iterator = self._run()
        return await anext(self._iterator)

    async def aclose(self) -> None:
        """Stop watching."""
        if self._iterator is not None:
            await self._iterator.aclose()  # type: ignore[attr-defined]

    async def _run(self) -> AsyncIterator[T]:
        backoff = Backoff()
        started = self._started_future()
        while True:
            try:
                async for message in stream(self._method, self._make_request(self._next_revision)):
                    backoff.reset()
                    if message.canceled:
                        if message.compact_revision:
                            raise history_compacted(message)
                        break
                    self.revision = max(self.revision, message.revision)
                    if message.created:
                        if self._next_revision == 0:
                            self._next_revision = message.revision + 1
                        if not started.done():
                            started.set_result(None)
                    for item in self._convert(message):
                        yield item
                    if not message.created:
                        self._next_revision = max(self._next_revision, message.revision + 1)
            except UnavailableError as error:
                log.info("watch interrupted (%s); reconnecting", error.message)
            if not self._reconnect:
                return
            await backoff.wait()
