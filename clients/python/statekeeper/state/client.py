"""``ServiceClient``: the connection plumbing every manager of :mod:`statekeeper.state` shares,
and the small proto helpers they have in common.

A manager names its gRPC stub class and service, and passes its constructor's connection
arguments to :class:`ServiceClient`; the base opens (or shares) the :class:`Transport`, makes
the stub, calls unary RPCs with the manager's ``timeout``, reads paginated lists, and closes
the transport it opened (a ``transport`` given by the caller is closed by its owner).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar, Self

from statekeeper import values
from statekeeper.errors import HistoryCompactedError
from statekeeper.transport import Transport, connect, unary
from statekeeper.v1 import common_pb2

#: The value encoding the managers ask for: the exact MessagePack form of documents.
MSGPACK = common_pb2.VALUE_ENCODING_MSGPACK
#: The longest pause between two reconnection attempts of a stream, in seconds.
MAX_RECONNECT_DELAY = 2.0
#: The first pause before reconnecting a broken stream, in seconds.
FIRST_RECONNECT_DELAY = 0.05


def optional_document(message: Any, name: str, default: Any = None) -> Any:
    """The document in the ``Value`` field ``name`` of ``message``, or ``default`` when unset."""
    if not message.HasField(name):
        return default
    return values.wire_to_python(getattr(message, name))


def optional_wire(document: Any) -> common_pb2.Value | None:
    """The ``Value`` of a document, or None (field left unset) for None."""
    return None if document is None else values.document_to_wire(document)


def history_compacted(message: Any) -> HistoryCompactedError:
    """The error of a watch cancelled because its start revision was compacted away."""
    return HistoryCompactedError(
        message.cancel_reason, metadata={"compact_revision": str(message.compact_revision)}
    )


class Backoff:
    """The pause before each reconnection of a broken stream: doubling from 50 ms up to
    ``limit`` seconds, and back to 50 ms once a stream delivers again."""

    def __init__(self, limit: float = MAX_RECONNECT_DELAY) -> None:
        self.limit = limit
        self.delay = FIRST_RECONNECT_DELAY

    def reset(self) -> None:
        """Start again from the shortest pause (the stream delivered a message)."""
        self.delay = FIRST_RECONNECT_DELAY

    async def wait(self) -> None:
        """Sleep the current pause, then double it (up to ``limit``)."""
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, self.limit)


async def paginate(
    call: Callable[[str, Any], Awaitable[Any]],
    method: str,
    request_class: Callable[..., Any],
    items: str,
    **fields: Any,
) -> AsyncIterator[Any]:
    """Every item (the repeated field ``items``) of a paginated list RPC, page by page:
    ``request_class(page_token=..., **fields)`` is sent until no ``next_page_token`` is left."""
    token = ""
    while True:
        response = await call(method, request_class(page_token=token, **fields))
        for item in getattr(response, items):
            yield item
        token = response.next_page_token
        if not token:
            return


class ServiceClient:
    """The base of the managers (StateManager included): one stub of one service over a
    (possibly shared) transport.

    Subclasses set ``_STUB`` (the generated stub class) and ``_SERVICE`` (the full service
    name). ``persistence`` / ``address`` / ``redis_url`` / ``file_path`` / ``**options`` (TLS,
    token, namespace, ...) go to :func:`statekeeper.transport.connect`; an explicit
    ``transport`` is shared as it is and left open by :meth:`close`. Nothing is opened here:
    the transport binds to the running event loop on the first call, so a manager can be made
    anywhere (module level, one ``asyncio.run``, and used in the next). A manager takes its own
    settings and passes these connection keywords on as its ``**connection``.
    """

    _STUB: ClassVar[type]
    _SERVICE: ClassVar[str]

    def __init__(
        self,
        persistence: Any = "memory",
        *,
        address: str | None = None,
        redis_url: str | None = None,
        file_path: str | None = None,
        transport: Transport | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> None:
        self._attach(
            transport,
            timeout,
            lambda: connect(
                persistence,
                address=address,
                redis_url=redis_url,
                file_path=file_path,
                **options,
            ),
        )

    def _attach(
        self, transport: Transport | None, timeout: float | None, make: Callable[[], Transport]
    ) -> None:
        """Use ``transport`` (shared, left open by :meth:`close`) or one of this manager's own,
        made by ``make``, with ``timeout`` (seconds) on every unary call."""
        self.timeout = timeout
        self._owns_transport = transport is None
        self._transport = transport if transport is not None else make()

    @property
    def transport(self) -> Transport:
        """The connection this manager uses (pass it as ``transport=`` to share it)."""
        return self._transport

    @property
    def _stub(self) -> Any:
        """The service's stub in the running event loop."""
        return self._transport.stub(self._STUB, self._SERVICE)

    async def _call(self, method: str, request: Any) -> Any:
        return await unary(getattr(self._stub, method), request, self.timeout)

    def _pages(
        self, method: str, request_class: Callable[..., Any], items: str, **fields: Any
    ) -> AsyncIterator[Any]:
        return paginate(self._call, method, request_class, items, **fields)

    async def close(self) -> None:
        """Close the connection this manager opened (a shared ``transport`` stays open)."""
        if self._owns_transport:
            await self._transport.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
