"""``LiveStream``: the one reconnecting watch loop behind every watch and subscription.

Every manager's watch (``StateManager.watch`` / ``subscribe``, ``watch_checkpoints``,
``WorkflowStateManager.watch``, ``watch_team``, ``watch_session``) is a :class:`LiveStream`
over a :class:`Feed`, which knows one stream's messages: how to ask for the stream from where
delivery stands, and how to turn a message into API objects.

The loop's rule, the same in remote and embedded mode:

- When the server or its backend is unavailable (``UNAVAILABLE``, a reset stream), or the
  server ends the stream itself (a final ``canceled`` message without ``compact_revision``:
  ``slow_consumer``, ``server_shutdown``; or an end without a reason), the stream logs a
  WARNING on the ``statekeeper.state`` logger and reconnects with backoff (50 ms, doubling up
  to 2 s; further failed attempts are logged at INFO), resuming after the last change it
  delivered, so no change is lost or repeated. It keeps trying until the consumer stops.
- A change split over several messages (``fragment``) is delivered only once its last part
  arrived; a partial change is dropped on reconnect and received again whole.
- A start position no longer in the history (``compact_revision`` > 0) raises
  :class:`~statekeeper.errors.HistoryCompactedError`; any other error (bad argument, unknown
  id, permission) is raised to the consumer as its typed error. Nothing ends silently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, Protocol, TypeVar

from statekeeper.errors import UnavailableError
from statekeeper.state.client import MAX_RECONNECT_DELAY, Backoff, history_compacted
from statekeeper.transport import stream

T = TypeVar("T")
log = logging.getLogger("statekeeper.state")


class Feed(Protocol[T]):
    """How one kind of stream is read and resumed."""

    #: True once the stream has delivered its last item (a deleted team, an ended session).
    finished: bool
    #: The store revision the delivered items are current to (0: unknown).
    revision: int

    def request(self) -> Any:
        """The request that opens the stream from where delivery stands (and drops any part
        of a change received so far)."""

    def receive(self, message: Any) -> list[T]:
        """The items ``message`` completes, in order."""

    def commit(self) -> None:
        """Every item of the last received message was delivered: resume after it."""


class LiveStream(Generic[T]):
    """An async iterator of changes; ``await stream.started()`` once a consumer iterates it
    to know that every later change will be delivered. ``revision`` is the store revision the
    stream is current to (pass ``revision + 1`` as ``start_revision`` to continue elsewhere).

    ``client`` is the manager (its ``_stub`` is looked up at every connection, so the stream
    follows the manager into another event loop) and ``method`` the streaming RPC's name;
    ``what`` names the stream in log lines.
    """

    def __init__(self, client: Any, method: str, feed: Feed[T], what: str) -> None:
        self._client = client
        self._method = method
        self._feed = feed
        self.what = what
        #: The longest pause between two reconnection attempts, in seconds.
        self.backoff_limit = MAX_RECONNECT_DELAY
        self._started: asyncio.Future[None] | None = None
        self._iterator: AsyncIterator[T] | None = None

    @property
    def revision(self) -> int:
        """The store revision the delivered changes are current to."""
        return self._feed.revision

    def _started_future(self) -> asyncio.Future[None]:
        if self._started is None or self._started.get_loop() is not asyncio.get_running_loop():
            self._started = asyncio.get_running_loop().create_future()
        return self._started

    def on_started(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once the server has registered the watch."""
        self._started_future().add_done_callback(lambda _: callback())

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
        backoff = Backoff(self.backoff_limit)
        started = self._started_future()
        failures = 0
        while True:
            method = getattr(self._client._stub, self._method)
            try:
                async for message in stream(method, self._feed.request()):
                    if failures:
                        log.info("%s: resumed after %d failed attempt(s)", self.what, failures)
                        failures = 0
                        backoff.reset()
                    if not started.done():
                        started.set_result(None)
                    if getattr(message, "canceled", False):
                        if message.compact_revision:
                            raise history_compacted(message)
                        cause = f"the server ended it ({message.cancel_reason or 'no reason'})"
                        break
                    for item in self._feed.receive(message):
                        yield item
                    self._feed.commit()
                    if self._feed.finished:
                        return
                else:
                    cause = "the server ended it"
            except UnavailableError as error:
                cause = f"unavailable: {error.message}"
            failures += 1
            level = logging.WARNING if failures == 1 else logging.INFO
            log.log(
                level,
                "%s interrupted (%s); reconnecting in %.2f s",
                self.what,
                cause,
                backoff.delay,
            )
            await backoff.wait()


class RevisionFeed(Generic[T]):
    """A stream resumed by store revision (StateService.Watch, WatchCheckpoints,
    WatchWorkflow): a first ``created`` message, then changes; a message with ``fragment``
    set holds part of one revision, completed by the next message without it.

    ``make_request(revision)`` asks for changes from ``revision`` (0: after now);
    ``convert(message)`` turns one message into items; ``delivered(message)`` is the last
    revision a complete message delivers (default: its ``revision``).
    """

    def __init__(
        self,
        make_request: Any,
        convert: Any,
        start_revision: int = 0,
        delivered: Any = None,
    ) -> None:
        self._make_request = make_request
        self._convert = convert
        self._delivered = delivered or (lambda message: message.revision)
        self.next_revision = start_revision
        self.revision = 0
        self.finished = False
        self._partial: list[T] = []
        self._after = start_revision

    def request(self) -> Any:
        """Ask from the revision after the last complete one; drop a partial revision."""
        self._partial = []
        return self._make_request(self.next_revision)

    def receive(self, message: Any) -> list[T]:
        """Items of a complete message (with the fragments before it), none for a fragment."""
        if message.created:
            self._after = self.next_revision or message.revision + 1
            self.revision = max(self.revision, message.revision)
            return []
        items: list[T] = self._convert(message)
        if getattr(message, "fragment", False):
            self._partial.extend(items)
            self._after = self.next_revision
            return []
        if self._partial:
            items = self._partial + items
            self._partial = []
        self.revision = max(self.revision, message.revision)
        self._after = max(self.next_revision, self._delivered(message) + 1)
        return items

    def commit(self) -> None:
        """Resume after the last complete message."""
        self.next_revision = self._after
