"""Running the adapters' coroutines for LangGraph's synchronous methods (``graph.invoke``).

A :class:`~statekeeper.state.StateManager` belongs to the event loop it is used on (a gRPC
channel and an embedded store are bound to one loop). The adapters are async at heart; their
synchronous methods hand each coroutine to the loop the adapter's async methods last ran on,
while that loop is running in another thread (LangGraph runs sync checkpoint calls from worker
threads), or else to a private loop in a daemon thread that the bridge starts on first use.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class LoopBridge:
    """The loop an adapter's synchronous calls run on, and the way there."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._private: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def remember(self) -> None:
        """Note the running loop as the one synchronous calls should use (async methods call
        this first)."""
        self._loop = asyncio.get_running_loop()

    def _target(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None and loop.is_running():
            return loop
        with self._lock:
            if self._private is None:
                self._private = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._private.run_forever, name="statekeeper-langgraph", daemon=True
                )
                self._thread.start()
            self._loop = self._private
            return self._private

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` to its end on the adapter's loop and return its result."""
        loop = self._target()
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is loop:
            coroutine.close()
            raise RuntimeError(
                "a synchronous statekeeper LangGraph method was called from inside the event "
                "loop the adapter runs on; use the async API there (ainvoke, astream, aget)"
            )
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    def iterate(self, iterator: AsyncIterator[T]) -> Iterator[T]:
        """The items of an async iterator, each fetched on the adapter's loop."""

        async def step() -> tuple[bool, T | None]:
            try:
                return True, await anext(iterator)
            except StopAsyncIteration:
                return False, None

        while True:
            more, item = self.run(step())
            if not more:
                return
            yield item  # type: ignore[misc]

    def close(self) -> None:
        """Stop the private loop, if one was started."""
        with self._lock:
            private, thread = self._private, self._thread
            self._private = self._thread = None
        if private is not None and thread is not None:
            private.call_soon_threadsafe(private.stop)
            thread.join()
            private.close()
