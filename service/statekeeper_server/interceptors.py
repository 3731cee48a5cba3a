"""The call wrapper: one wrapper around every handler of every service, built once per method.

:class:`CallInterceptor` wraps each method handler when it is registered (the server hands
the services a :class:`WrappingRegistrar` instead of itself), so no gRPC interceptor runs per
call: a call costs one wrapped handler, nothing more. For each call the wrapper

1. takes the request id from the ``x-request-id`` metadata (or makes one); log records of the
   call carry it, and the trailing metadata returns it when the client gave it, on a stream
   and on every failed call;
2. authenticates and authorizes the call when an :class:`~statekeeper_server.auth.Authenticator`
   is configured, and runs the handler as the caller's tenant
   (:data:`~statekeeper_server.engine.tenancy.current_tenant`);
3. admits a server-streaming call only within the stream limits (:class:`StreamLimits`);
4. maps exceptions to statuses: a :class:`~statekeeper.errors.StateKeeperError` becomes its
   status code with a ``google.rpc.ErrorInfo`` (and ``BadRequest``) detail; any other exception
   is logged with its traceback and answered as INTERNAL without leaking its text;
5. counts the call in the metrics and writes one access log line.

The context variables are set inside the wrapped handler, i.e. in the task that runs the
servicer, so they hold for the whole call (streams included). What a call needs only in some
cases (the peer address, the access log record) is computed only then.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import itertools
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from statekeeper.errors import (
    InternalError,
    InvalidArgumentError,
    Reason,
    ResourceExhaustedError,
    StateKeeperError,
    to_grpc_status,
)

from statekeeper_server.auth import Authenticator, metadata_value, require_role
from statekeeper_server.engine.tenancy import current_authorization, current_tenant
from statekeeper_server.observability import (
    CallSeries,
    ServerMetrics,
    current_request_id,
    split_method,
)
from statekeeper_server.servicers.fanout import encoded_once

log = logging.getLogger("statekeeper.server")
access_log = logging.getLogger("statekeeper.access")

#: The metadata key of the request id (request and trailing metadata).
REQUEST_ID_METADATA = "x-request-id"
_REQUEST_ID_RE = re.compile(r"^[\x21-\x7e]{1,128}$")
#: Generated request ids: 64 random bits per process, then a counter (32 hex digits in all),
#: unique without a system call per call.
_REQUEST_ID_PREFIX = os.urandom(8).hex()
_request_numbers = itertools.count(1)


def new_request_id() -> str:
    """A request id unique to this call: the process's random prefix and a counter."""
    return f"{_REQUEST_ID_PREFIX}{next(_request_numbers):016x}"


async def abort_with(
    context: grpc.aio.ServicerContext,
    error: Exception,
    method: str,
    trailing: Sequence[tuple[str, str]] = (),
) -> None:
    """Abort the call with the rich status for ``error`` (plus ``trailing`` metadata)."""
    if not isinstance(error, StateKeeperError):
        log.error("unexpected error in %s", method, exc_info=error)
        error = InternalError(f"internal error in {method}; see the server log")
    status = to_grpc_status(error)
    await context.abort(status.code, status.details, (*status.trailing_metadata, *trailing))


@dataclass
class StreamLimits:
    """Admission of server-streaming calls (watches): at most ``max_streams`` in the whole
    server and ``max_per_connection`` per client connection (0: unlimited)."""

    max_streams: int = 0
    max_per_connection: int = 0
    active: int = 0
    by_peer: dict[str, int] = field(default_factory=dict)

    def acquire(self, peer: str) -> None:
        """Take a slot for a new stream from ``peer`` or raise RESOURCE_EXHAUSTED."""
        if self.max_streams and self.active >= self.max_streams:
            raise ResourceExhaustedError(
                f"too many watchers: the server allows {self.max_streams} open streams at once; "
                "close a watch or retry later",
                reason=Reason.TOO_MANY_WATCHERS,
                metadata={"limit": str(self.max_streams)},
            )
        count = self.by_peer.get(peer, 0)
        if self.max_per_connection and count >= self.max_per_connection:
            raise ResourceExhaustedError(
                f"too many streams on this connection: the limit is {self.max_per_connection}; "
                "close a watch or open another connection",
                reason=Reason.TOO_MANY_STREAMS,
                metadata={"limit": str(self.max_per_connection)},
            )
        self.active += 1
        self.by_peer[peer] = count + 1

    def release(self, peer: str) -> None:
        """Give back the slot of a finished stream."""
        self.active -= 1
        left = self.by_peer.get(peer, 1) - 1
        if left > 0:
            self.by_peer[peer] = left
        else:
            self.by_peer.pop(peer, None)


class _Call:
    """The bookkeeping of one call: request id, caller, status code, timing."""

    __slots__ = (
        "code",
        "context",
        "counted",
        "given_id",
        "metadata",
        "method",
        "owner",
        "peer",
        "principal",
        "request_id",
        "request_token",
        "series",
        "start",
        "stream_gauge",
        "stream_peer",
        "streaming",
        "tenant",
        "tenant_token",
    )

    def __init__(
        self,
        owner: CallInterceptor,
        method: str,
        context: Any,
        streaming: bool,
        series: CallSeries | None,
    ) -> None:
        self.owner = owner
        self.method = method
        self.series = series
        self.context = context
        self.streaming = streaming
        self.start = time.perf_counter()
        metadata = context.invocation_metadata() or ()
        self.metadata = metadata
        given = metadata_value(metadata, REQUEST_ID_METADATA)
        #: Whether the client named the request id (then it is returned even on success).
        self.given_id = bool(given and _REQUEST_ID_RE.match(given))
        self.request_id = given if given and self.given_id else new_request_id()
        #: The peer for the access log, read while the call is live (gRPC must not be asked
        #: once the call has ended: the server may be gone by then).
        self.peer = (
            str(context.peer())
            if owner.access_log and access_log.isEnabledFor(logging.INFO)
            else ""
        )
        self.principal = ""
        self.tenant = ""
        self.code = "OK"
        #: Whether the call is in the metrics and the access log already (:meth:`finish`).
        self.counted = False
        #: The peer holding a stream slot (None: no slot taken).
        self.stream_peer: str | None = None
        self.stream_gauge = False
        self.tenant_token: contextvars.Token[str] | None = None
        self.request_token: contextvars.Token[str] | None = None

    @property
    def trailing(self) -> tuple[tuple[str, str], ...]:
        return ((REQUEST_ID_METADATA, self.request_id),)

    def enter(self) -> None:
        """Set the call's request id for its log records; return it in the trailing metadata
        when the client gave it or the call is a stream (a failed call always returns it,
        see :func:`abort_with`)."""
        self.request_token = current_request_id.set(self.request_id)
        if self.given_id or self.streaming:
            self.context.set_trailing_metadata(self.trailing)

    def exit(self) -> None:
        """Release what :meth:`admit` took, count the call, write its access log line and
        reset the context variables."""
        owner = self.owner
        if self.stream_peer is not None and owner.limits is not None:
            owner.limits.release(self.stream_peer)
        if self.stream_gauge and owner.metrics is not None:
            owner.metrics.stream_closed(self.method)
        self.finish()
        if self.tenant_token is not None:
            with contextlib.suppress(ValueError):
                current_tenant.reset(self.tenant_token)
        if self.request_token is not None:
            with contextlib.suppress(ValueError):
                current_request_id.reset(self.request_token)

    def admit(self) -> None:
        """Authenticate and authorize the call, set its tenant, and admit a stream within
        the stream limits; raises UNAUTHENTICATED, PERMISSION_DENIED or RESOURCE_EXHAUSTED."""
        owner = self.owner
        if owner.auth is not None and not owner.auth.is_exempt(self.method):
            principal, self.tenant = owner.auth.authorize(self.method, self.metadata)
            self.principal = principal.name
            current_authorization.set(functools.partial(require_role, principal.role))
        self.tenant_token = current_tenant.set(self.tenant)
        if self.streaming and owner.limits is not None:
            peer = str(self.context.peer())
            owner.limits.acquire(peer)
            self.stream_peer = peer
        if self.streaming and owner.metrics is not None:
            owner.metrics.stream_opened(self.method)
            self.stream_gauge = True

    def fail(self, error: BaseException) -> None:
        """Record the status code a failure ends the call with."""
        if isinstance(error, StateKeeperError):
            self.code = error.code.name
        elif isinstance(error, (asyncio.CancelledError, GeneratorExit)):
            self.code = "CANCELLED"
        elif isinstance(error, grpc.aio.AbortError):
            code = _context_code(self.context)
            self.code = code.name if code is not None else "UNKNOWN"
        else:
            self.code = "INTERNAL"

    async def fail_and_abort(self, error: BaseException) -> None:
        """Record the failure; answer an exception with its status (an abort the handler
        made itself, a cancellation or a closed stream stays as it is)."""
        self.fail(error)
        if isinstance(error, Exception) and not isinstance(error, grpc.aio.AbortError):
            self.finish()  # counted before the client can see the status
            await abort_with(self.context, error, self.method, self.trailing)

    def succeed(self) -> None:
        """Record the status code of a call that returned (a handler may have set one)."""
        code = _context_code(self.context)
        if code is not None:
            self.code = code.name

    def finish(self) -> None:
        """Count the call in the metrics and write its access log line (when enabled), once."""
        if self.counted:
            return
        self.counted = True
        seconds = time.perf_counter() - self.start
        if self.series is not None:
            self.series.observe(self.code, seconds)
        if self.owner.access_log and access_log.isEnabledFor(logging.INFO):
            access_log.info(
                "%s %s %.1fms",
                self.method,
                self.code,
                seconds * 1000,
                extra={
                    "method": self.method,
                    "code": self.code,
                    "duration_ms": round(seconds * 1000, 3),
                    "peer": self.peer,
                    "principal": self.principal,
                    "namespace": self.tenant or "default",
                    "request_id": self.request_id,
                },
            )


def _context_code(context: Any) -> grpc.StatusCode | None:
    code_of = getattr(context, "code", None)
    if code_of is None:
        return None
    try:
        code = code_of()
    except Exception:
        return None
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):
        for candidate in grpc.StatusCode:
            if candidate.value[0] == code:
                return candidate
    return None


class Undecodable:
    """Stands for a request message that could not be decoded (answered INVALID_ARGUMENT)."""

    def __init__(self, problem: str) -> None:
        self.problem = problem


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """A deserializer that returns :class:`Undecodable` instead of raising, so that malformed
    bytes get INVALID_ARGUMENT rather than gRPC's own INTERNAL."""
    if deserializer is None:
        return None

    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as error:
            return Undecodable(type(error).__name__)

    return decode


def check_decoded(request: Any, method: str) -> None:
    """Raise INVALID_ARGUMENT for a request that could not be decoded."""
    if isinstance(request, Undecodable):
        raise InvalidArgumentError(
            f"the request is not a valid {split_method(method)[1]} request message "
            f"({request.problem})",
            reason=Reason.INVALID_ARGUMENT,
        )


class CallInterceptor:
    """Request ids, authentication, stream limits, error mapping, metrics and access logs for
    every unary and streaming handler of every service (see the module docstring)."""

    def __init__(
        self,
        *,
        auth: Authenticator | None = None,
        metrics: ServerMetrics | None = None,
        limits: StreamLimits | None = None,
        access_log: bool = False,
    ) -> None:
        self.auth = auth
        self.metrics = metrics
        self.limits = limits
        self.access_log = access_log
        self._cache: dict[str, grpc.RpcMethodHandler] = {}

    def wrapped(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        """The wrapped ``handler`` of ``method`` (``/pkg.Service/Rpc``), built once."""
        found = self._cache.get(method)
        if found is None:
            found = self._cache[method] = self._wrap(handler, method)
        return found

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        codec = {
            "request_deserializer": _tolerant(handler.request_deserializer),
            "response_serializer": handler.response_serializer,
        }
        # Only the services' own server streams count as watchers (not health Watch).
        watcher = not method.startswith("/grpc.")
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, method), **codec
            )
        if handler.unary_stream is not None:
            if getattr(handler.unary_stream, "shares_responses", False):
                codec["response_serializer"] = encoded_once(handler.response_serializer)
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(handler.unary_stream, method, watcher), **codec
            )
        codec["request_deserializer"] = handler.request_deserializer
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(handler.stream_unary, method), **codec
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._streaming(handler.stream_stream, method, False), **codec
            )
        return handler

    def _streaming(
        self, behavior: Callable[..., Any], method: str, watcher: bool
    ) -> Callable[..., Any]:
        # A streaming handler is either an async generator or a coroutine that writes its
        # responses with context.write (as the health servicer's Watch): keep its shape.
        if inspect.iscoroutinefunction(behavior):
            return self._unary(behavior, method, streaming=watcher)
        return self._stream(behavior, method, watcher)

    def _unary(
        self, behavior: Callable[..., Any], method: str, streaming: bool = False
    ) -> Callable[..., Any]:
        always_awaitable = inspect.iscoroutinefunction(behavior)
        series = self.metrics.call_series(method) if self.metrics is not None else None

        async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
            call = _Call(self, method, context, streaming, series)
            call.enter()
            try:
                try:
                    call.admit()
                    check_decoded(request, method)
                    result = behavior(request, context)
                    if always_awaitable or inspect.isawaitable(result):
                        result = await result
                except BaseException as error:
                    await call.fail_and_abort(error)
                    raise
                call.succeed()
                return result
            finally:
                call.exit()

        return handler

    def _stream(
        self, behavior: Callable[..., Any], method: str, watcher: bool
    ) -> Callable[..., Any]:
        series = self.metrics.call_series(method) if self.metrics is not None else None

        async def handler(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            call = _Call(self, method, context, watcher, series)
            call.enter()
            try:
                try:
                    call.admit()
                    check_decoded(request, method)
                    responses = behavior(request, context)
                    if hasattr(responses, "__aiter__"):
                        async for response in responses:
                            yield response
                    elif responses is not None:
                        for response in responses:
                            yield response
                except BaseException as error:
                    await call.fail_and_abort(error)
                    raise
                call.succeed()
            finally:
                call.exit()

        return handler


class _WrappedHandlers(grpc.GenericRpcHandler):
    """One generic handler for every service added through a :class:`WrappingRegistrar`: the
    wrapped handler of a method is found by one dictionary lookup (made on first call)."""

    def __init__(self, interceptor: CallInterceptor) -> None:
        self._interceptor = interceptor
        self.inner: list[grpc.GenericRpcHandler] = []
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        """The wrapped handler of the call's method, or None when no service has it."""
        method = handler_call_details.method
        found = self._wrapped.get(method)
        if found is None:
            for inner in self.inner:
                handler = inner.service(handler_call_details)
                if handler is not None:
                    found = self._wrapped[method] = self._interceptor.wrapped(handler, method)
                    break
        return found


class WrappingRegistrar:
    """Stands for a ``grpc.aio.Server`` where services are added (the generated
    ``add_*Servicer_to_server`` functions, health, reflection): every handler they add reaches
    the server wrapped by ``interceptor``, through one generic handler.

    Methods are not registered with gRPC core one by one (``add_registered_method_handlers``):
    measured here, each registered method adds to the server CPU of every call (about 12% on a
    no-op call with the 80-odd methods of the services), while the one dictionary lookup of
    the generic handler costs the same for any number of methods.
    """

    def __init__(self, server: grpc.aio.Server, interceptor: CallInterceptor) -> None:
        self._handlers = _WrappedHandlers(interceptor)
        server.add_generic_rpc_handlers((self._handlers,))

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Sequence[Any]) -> None:
        """Add the handlers (each method wrapped when first called)."""
        self._handlers.inner.extend(generic_rpc_handlers)

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        """Nothing to do: the generic handlers added with them serve these methods."""
