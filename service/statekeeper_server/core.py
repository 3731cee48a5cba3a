"""What every servicer is built over: one backend, the limits, and the stopping signal.

A servicer gets a :class:`Core` and nothing else of the server, so servicers never import the
runtime that builds them (:mod:`statekeeper_server.runtime` composes a core with the servicers
of :mod:`statekeeper_server.services`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from statekeeper_server.engine.limits import Limits
from statekeeper_server.engine.storage.backend import Backend

T = TypeVar("T")


async def close_iterator(iterator: AsyncIterator[Any]) -> None:
    """Close an async generator (other async iterators have nothing to close)."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


class Core:
    """One backend, its limits and the server's stopping signal, shared by every servicer."""

    def __init__(self, backend: Backend, limits: Limits | None = None) -> None:
        self.backend = backend
        self.limits = limits or Limits()
        self._stopping: asyncio.Event | None = None

    @property
    def stopping(self) -> asyncio.Event:
        """Set when the server begins a graceful shutdown; long streams end on it."""
        if self._stopping is None:
            self._stopping = asyncio.Event()
        return self._stopping

    async def until_stopping(self, source: AsyncIterator[T]) -> AsyncIterator[T]:
        """Yield from ``source`` until the runtime starts stopping, then close ``source``.

        ``source`` runs in the caller's task (no task per item: this is the per-message path
        of every stream). When stopping begins while the caller waits for the next item, the
        caller's task is cancelled once and that cancellation is absorbed here; any other
        cancellation propagates as usual.
        """
        stopping = self.stopping
        task = asyncio.current_task()
        waiting = False
        interrupted = False

        def interrupt(_: object) -> None:
            nonlocal interrupted
            if waiting and task is not None and not interrupted:
                interrupted = True
                task.cancel()

        watcher = asyncio.ensure_future(stopping.wait())
        watcher.add_done_callback(interrupt)
        try:
            while not stopping.is_set():
                waiting = True
                try:
                    item = await anext(source)
                except StopAsyncIteration:
                    return
                except asyncio.CancelledError:
                    if interrupted and task is not None and task.uncancel() == 0:
                        return
                    raise
                finally:
                    waiting = False
                yield item
        finally:
            watcher.remove_done_callback(interrupt)
            watcher.cancel()
            await close_iterator(source)

    async def close(self) -> None:
        """Stop streams and close the backend."""
        self.stopping.set()
        await self.backend.close()
