"""The runtime: a core (one backend, the limits) with a servicer for every registered service.

The gRPC server registers the runtime's servicers; the Python client's embedded mode calls the
very same servicers in process (see :mod:`statekeeper.transport`), so validation, business rules
and errors are identical in both modes.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any

from statekeeper_server.core import Core
from statekeeper_server.engine.limits import Limits
from statekeeper_server.engine.storage.backend import Backend
from statekeeper_server.services import build_servicers


class Runtime(Core):
    """A core with the servicer of every registered service over it."""

    def __init__(self, backend: Backend, limits: Limits | None = None) -> None:
        super().__init__(backend, limits)
        #: Each servicer by full service name, with the boundary checks of its requests.
        self.servicers: dict[str, Any] = build_servicers(self)


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
