"""The runtime: one backend, the limits, and a servicer for every service over them.

The gRPC server registers the runtime's servicers; the Python client's embedded mode calls the
very same servicers in process (see :mod:`statekeeper.transport`), so validation, business rules
and errors are identical in both modes.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from statekeeper_server.engine.backend import Backend
from statekeeper_server.engine.limits import Limits

T = TypeVar("T")


async def close_iterator(iterator: AsyncIterator[Any]) -> None:
    """Close an async generator (other async iterators have nothing to close)."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


class Runtime:
    """Servicers of every registered service over one backend."""

    def __init__(self, backend: Backend, limits: Limits | None = None) -> None:
        from statekeeper_server.servicers.boundary import guard_servicer
        from statekeeper_server.services import SERVICES

        self.backend = backend
        self.limits = limits or Limits()
        self._stopping: asyncio.Event | None = None
        #: Each servicer with the boundary checks of its requests (servicers.boundary).
        self.servicers: dict[str, Any] = {
            spec.name: guard_servicer(spec.servicer(self), spec.name) for spec in SERVICES
        }

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


#: Embedded runtimes by storage identity, each with (a weak reference to) the loop it serves.
_EMBEDDED: dict[tuple[Any, ...], tuple[weakref.ref[asyncio.AbstractEventLoop], Runtime]] = {}


def embedded_runtime(key: tuple[Any, ...], make_backend: Any) -> Runtime:
    """The process's embedded runtime for ``key`` in the running event loop, made once.

    Managers of one process that name the same storage share one runtime (one memory store,
    one open file store), as they would share one server. A runtime made for an event loop
    that is gone is discarded (its files released) and replaced, never handed to another loop.
    """
    loop = asyncio.get_running_loop()
    for stale_key, (loop_ref, stale) in list(_EMBEDDED.items()):
        if loop_ref() is not loop:
            del _EMBEDDED[stale_key]
            stale.backend.discard()
    found = _EMBEDDED.get(key)
    if found is not None and not found[1].stopping.is_set():
        return found[1]
    runtime = Runtime(make_backend())
    _EMBEDDED[key] = (weakref.ref(loop), runtime)
    return runtime
