"""Server interceptors: the one place where errors become gRPC statuses.

:class:`ErrorInterceptor` wraps every handler. A :class:`~statekeeper.errors.StateKeeperError`
becomes its status code with a ``google.rpc.ErrorInfo`` (and ``BadRequest``) detail; any other
exception is logged with its traceback and answered as INTERNAL without leaking its text.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from statekeeper.errors import InternalError, StateKeeperError, to_grpc_status

log = logging.getLogger("statekeeper.server")


async def abort_with(context: grpc.aio.ServicerContext, error: Exception, method: str) -> None:
    """Abort the call with the rich status for ``error``."""
    if not isinstance(error, StateKeeperError):
        log.exception("unexpected error in %s", method, exc_info=error)
        error = InternalError(f"internal error in {method}; see the server log")
    await context.abort_with_status(to_grpc_status(error))


def _wrap_unary(behavior: Callable[..., Awaitable[Any]], method: str) -> Callable[..., Any]:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behavior(request, context)
        except Exception as error:
            await abort_with(context, error, method)

    return handler


def _wrap_stream(behavior: Callable[..., AsyncIterator[Any]], method: str) -> Callable[..., Any]:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            async for response in behavior(request, context):
                yield response
        except Exception as error:
            await abort_with(context, error, method)

    return handler


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Maps exceptions of every unary and server-streaming handler to rich statuses."""

    def __init__(self) -> None:
        self._cache: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """Return the wrapped handler (built once per method)."""
        method = handler_call_details.method
        cached = self._cache.get(method)
        if cached is not None:
            return cached
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        wrapped = handler
        if handler.unary_unary is not None:
            wrapped = grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        elif handler.unary_stream is not None and not method.startswith("/grpc."):
            wrapped = grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        self._cache[method] = wrapped
        return wrapped
