"""The runtime: one backend, the limits, and a servicer for every service over them.

The gRPC server registers the runtime's servicers; the Python client's embedded mode calls the
very same servicers in process (see :mod:`statekeeper.transport`), so validation, business rules
and errors are identical in both modes.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from statekeeper_server.engine.limits import Limits
from statekeeper_server.engine.storage.backend import Backend

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


#: The embedded backend first used in an event loop, by storage identity, with (a weak
#: reference to) that loop.
_SHARED: dict[tuple[Any, ...], tuple[weakref.ref[asyncio.AbstractEventLoop], Backend]] = {}
#: The runtime of each embedded backend in the loop it serves now.
_RUNTIMES: weakref.WeakKeyDictionary[
    Backend, tuple[weakref.ref[asyncio.AbstractEventLoop], Runtime]
] = weakref.WeakKeyDictionary()


def shared_backend(key: tuple[Any, ...], make_backend: Callable[[], Backend]) -> Backend:
    """The backend for storage ``key`` shared by the managers first used in the running loop.

    Managers of one process that name the same storage in one event loop share one backend
    (one memory store, one open file store), as they would share one server. A backend first
    used in a loop that is gone is replaced, never handed to a new manager of another loop; it
    is discarded (files released) unless it keeps its data in process (memory), because the
    managers that used it keep it (see :func:`loop_runtime`).
    """
    loop = asyncio.get_running_loop()
    for stale_key, (loop_ref, stale) in list(_SHARED.items()):
        if loop_ref() is not loop:
            del _SHARED[stale_key]
            if not stale.in_process:
                stale.discard()
    found = _SHARED.get(key)
    if found is not None and not found[1].closed:
        return found[1]
    backend = make_backend()
    _SHARED[key] = (weakref.ref(loop), backend)
    return backend


def loop_runtime(backend: Backend) -> Runtime:
    """The runtime (servicers) over ``backend`` in the running event loop, made once per loop.

    Servicers and backends hold loop-bound objects (tasks, futures, connections): when the
    backend is used from a new loop, :meth:`Backend.rebind` lets go of the old loop's and
    a new runtime is made; the data stays.
    """
    loop = asyncio.get_running_loop()
    found = _RUNTIMES.get(backend)
    if found is not None and found[0]() is loop and not found[1].stopping.is_set():
        return found[1]
    if found is not None:
        backend.rebind()
    runtime = Runtime(backend)
    _RUNTIMES[backend] = (weakref.ref(loop), runtime)
    return runtime
