"""How the Python API reaches the service: a gRPC channel (remote) or in-process (embedded).

Every manager of :mod:`statekeeper.state` is written once against a :class:`Transport`:
``transport.stub(StubClass, "statekeeper.v1.XService")`` returns an object with one method per
RPC, and :func:`unary` / :func:`stream` call them. Remote mode uses the generated gRPC stub over
a ``grpc.aio`` channel and maps failed calls to typed errors (``errors.from_rpc_error``);
embedded mode calls the server's own servicers in process, with no serialization and no
network, so both modes share validation, rules and errors.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from statekeeper.errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    Reason,
    StateKeeperError,
    UnimplementedError,
    from_rpc_error,
)

#: The largest message a client accepts by default: the server's 4 MiB message limit with
#: headroom (``max_receive_message_bytes`` changes it).
DEFAULT_MAX_RECEIVE_BYTES = 8 * 1024 * 1024

#: The persistence names the managers accept: three embedded backends and the remote server.
PERSISTENCE_CHOICES = ("memory", "file", "redis", "grpc")
#: Calls one coalesced batch carries at most.
MAX_BATCH_CALLS = 128
#: Request bytes one coalesced batch carries at most; a larger call is always sent alone.
MAX_BATCH_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ConnectionOptions:
    """Where state lives: an embedded backend or a remote server, and how to reach it.

    ``persistence`` is a name of :data:`PERSISTENCE_CHOICES` or a backend object (such as
    ``FileBackend(...)``), which is then used in process as it is.

    Remote security: ``tls=True`` (implied by any ``tls_*`` file) makes the channel use TLS,
    trusting ``tls_ca_file`` (default: the system roots); ``tls_cert_file`` + ``tls_key_file``
    present a client certificate (mutual TLS); ``tls_server_name`` overrides the name checked
    in the server certificate. ``token`` is sent as ``authorization: Bearer <token>`` and
    ``namespace`` as ``x-statekeeper-namespace`` on every call. ``max_receive_message_bytes``
    is the largest message the channel accepts (default 8 MiB: the server's default limit of
    4 MiB with headroom; raise it with the server's ``--max-message-bytes``).

    ``batching`` (remote only, on by default) coalesces the calls that can travel in one
    ``Batch`` RPC: while one is in flight on the channel, those issued meanwhile are sent
    together when it returns (see docs/batching.md); ``batching=False`` sends every call alone.
    """

    persistence: Any = "memory"
    address: str | None = None
    file_path: str | None = None
    file_format: str | None = None
    compression: bool = False
    redis_url: str | None = None
    redis_db: int = 0
    redis_key_prefix: str = "statekeeper:"
    redis_pool_size: int = 16
    timeout: float | None = None
    tls: bool = False
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_server_name: str | None = None
    token: str | None = None
    namespace: str | None = None
    max_receive_message_bytes: int = DEFAULT_MAX_RECEIVE_BYTES
    batching: bool = True

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if shown["token"] is not None:
            shown["token"] = "***"
        return "ConnectionOptions(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    @property
    def secure(self) -> bool:
        """True when the channel uses TLS."""
        return bool(self.tls or self.tls_ca_file or self.tls_cert_file or self.tls_server_name)

    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        """The metadata sent with every call (token and namespace)."""
        metadata: list[tuple[str, str]] = []
        if self.token:
            metadata.append(("authorization", f"Bearer {self.token}"))
        if self.namespace:
            metadata.append(("x-statekeeper-namespace", self.namespace))
        return tuple(metadata)


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as file:
        return file.read()


def open_channel(
    options: ConnectionOptions, channel_options: Sequence[tuple[str, Any]] = ()
) -> grpc.aio.Channel:
    """A ``grpc.aio`` channel to ``options.address`` with its TLS and credential settings, plus
    any gRPC ``channel_options`` (channel arguments)."""
    assert options.address is not None
    interceptors = []
    metadata = options.call_metadata()
    if metadata:
        interceptors = [
            _MetadataUnaryUnary(metadata),
            _MetadataUnaryStream(metadata),
            _MetadataStreamUnary(metadata),
            _MetadataStreamStream(metadata),
        ]
    arguments: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", options.max_receive_message_bytes),
        *channel_options,
    ]
    if not options.secure:
        return grpc.aio.insecure_channel(
            options.address, options=arguments, interceptors=interceptors
        )
    if bool(options.tls_cert_file) != bool(options.tls_key_file):
        raise InvalidArgumentError("a client certificate needs both tls_cert_file and tls_key_file")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(options.tls_ca_file),
        private_key=_read(options.tls_key_file),
        certificate_chain=_read(options.tls_cert_file),
    )
    if options.tls_server_name:
        arguments.append(("grpc.ssl_target_name_override", options.tls_server_name))
    return grpc.aio.secure_channel(
        options.address, credentials, options=arguments, interceptors=interceptors
    )


class _MetadataInterceptor:
    """Adds fixed metadata (token, namespace) to every call of a channel."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def _details(self, details: Any) -> Any:
        metadata = list(details.metadata or ()) + list(self._metadata)
        return details._replace(metadata=metadata)

    async def _intercept(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _MetadataUnaryUnary(_MetadataInterceptor, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await self._intercept(continuation, details, request)


class _MetadataUnaryStream(_MetadataInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await self._intercept(continuation, details, request)


class _MetadataStreamUnary(_MetadataInterceptor, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await self._intercept(continuation, details, request)


class _MetadataStreamStream(_MetadataInterceptor, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await self._intercept(continuation, details, request)


class _LocalContext:
    """The servicer context of an in-process call (no metadata, never cancelled)."""

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def peer(self) -> str:
        return "embedded"

    def cancelled(self) -> bool:
        return False


_LOCAL_CONTEXT = _LocalContext()


class _LocalMethod:
    """One RPC of a servicer, called in process."""

    __slots__ = ("_method",)

    def __init__(self, method: Callable[..., Any]) -> None:
        self._method = method

    def __call__(self, request: Any, **_: Any) -> Any:
        return self._method(request, _LOCAL_CONTEXT)


class _LocalStub:
    """A stub whose methods call a servicer directly."""

    def __init__(self, servicer: Any) -> None:
        self._servicer = servicer

    def __getattr__(self, name: str) -> _LocalMethod:
        return _LocalMethod(getattr(self._servicer, name))


class Transport:
    """A connection to statekeeper, remote or embedded, shared by the managers made with it.

    Making one opens nothing and needs no event loop: it binds on first use, to the running
    loop, and binds again when it is used from another loop (a later ``asyncio.run``, the next
    test's loop). Remote, each loop gets its own ``grpc.aio`` channel. Embedded, managers that
    name the same storage and are first used in one loop share one backend; a manager keeps its
    backend in later loops, so an embedded memory store keeps its data across ``asyncio.run``
    calls (a file or Redis store is opened again and reads the same data).
    """

    def __init__(self, options: ConnectionOptions) -> None:
        if isinstance(options.persistence, str) and options.persistence not in PERSISTENCE_CHOICES:
            raise InvalidArgumentError(
                f"persistence must be one of {', '.join(PERSISTENCE_CHOICES)}, "
                f"got {options.persistence!r}"
            )
        if options.persistence == "grpc" and not options.address:
            raise InvalidArgumentError("persistence 'grpc' needs an address (host:port)")
        self.options = options
        self._loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
        self._channel: grpc.aio.Channel | None = None
        self._runtime: Any = None
        self._backend: Any = None
        self._stubs: dict[str, Any] = {}
        self._coalescers: dict[str, Coalescer] = {}

    @property
    def remote(self) -> bool:
        """True when calls go to a server over gRPC."""
        return self.options.persistence == "grpc"

    def _bind(self) -> None:
        """Bind to the running event loop, unless bound to it already."""
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop() is loop:
            if self._runtime is None or not self._runtime.stopping.is_set():
                return
        self._stubs = {}
        self._coalescers = {}
        if self.remote:
            self._channel = open_channel(self.options)
        else:
            self._runtime = self._embedded_runtime()
        self._loop = weakref.ref(loop)

    def _embedded_runtime(self) -> Any:
        from statekeeper_server.runtime import loop_runtime, shared_backend

        backend = self._backend
        if backend is None or backend.closed or not backend.in_process:
            opts = self.options
            if not isinstance(opts.persistence, str):
                backend = opts.persistence
            else:
                from statekeeper_server.engine.storage.factory import BackendOptions, open_backend

                named = BackendOptions(
                    kind=opts.persistence,
                    data_dir=opts.file_path or "./state",
                    file_format=opts.file_format or "msgpack",
                    compression=opts.compression,
                    redis_url=opts.redis_url or "redis://127.0.0.1:6379",
                    redis_db=opts.redis_db,
                    redis_key_prefix=opts.redis_key_prefix,
                    redis_pool_size=opts.redis_pool_size,
                )
                backend = shared_backend(named.identity, lambda: open_backend(named))
            self._backend = backend
        return loop_runtime(backend)

    def channel(self) -> grpc.aio.Channel:
        """The gRPC channel of a remote transport in the running loop, opened on first use."""
        self._bind()
        assert self._channel is not None
        return self._channel

    def stub(self, stub_class: type, service_name: str) -> Any:
        """An object with one method per RPC of ``service_name``, for the running loop."""
        self._bind()
        found = self._stubs.get(service_name)
        if found is None:
            if self.remote:
                found = stub_class(self._channel)
            else:
                found = _LocalStub(self._runtime.servicers[service_name])
            self._stubs[service_name] = found
        return found

    def coalescer(self, name: str, make: Callable[[], Coalescer]) -> Coalescer | None:
        """The :class:`Coalescer` ``name`` of the channel in the running loop (made by
        ``make`` on first use), or None when calls go alone: embedded, or ``batching`` off."""
        if not (self.remote and self.options.batching):
            return None
        self._bind()
        found = self._coalescers.get(name)
        if found is None:
            found = self._coalescers[name] = make()
        return found

    async def close(self) -> None:
        """Close the channel (embedded stores stay open for other managers of the process).

        A channel of another event loop (one that is gone) is only let go. The transport can
        be used again afterwards: it then opens a new channel."""
        channel, loop = self._channel, self._loop
        self._channel = None
        self._loop = None
        self._stubs = {}
        self._coalescers = {}
        if channel is not None and loop is not None and loop() is asyncio.get_running_loop():
            await channel.close()


async def unary(
    method: Callable[..., Awaitable[Any]], request: Any, timeout: float | None = None
) -> Any:
    """Call a unary RPC, raising the typed error of a failed call; a call that takes longer
    than ``timeout`` seconds raises :class:`~statekeeper.errors.DeadlineExceededError`, remote
    and embedded alike."""
    try:
        if timeout is None:
            return await method(request)
        if isinstance(method, _LocalMethod):
            async with asyncio.timeout(timeout):
                return await method(request)
        return await method(request, timeout=timeout)
    except grpc.RpcError as error:
        raise from_rpc_error(error) from None
    except TimeoutError:
        raise _timed_out(timeout) from None


def _timed_out(timeout: float | None) -> DeadlineExceededError:
    return DeadlineExceededError(f"the call did not finish within its timeout of {timeout} s")


@dataclass(eq=False, slots=True)
class Queued:
    """One call waiting in a :class:`Coalescer`: its method, request, timeout, future and the
    request's size in bytes."""

    method: str
    request: Any
    timeout: float | None
    future: asyncio.Future[Any]
    deadline: float | None = None
    size: int = 0
    sent: bool = False

    def remaining(self) -> float | None:
        """Seconds left of its timeout (None: no timeout)."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())


#: Sends one call alone: (method, request, timeout) -> response, raising its typed error.
SendOne = Callable[[str, Any, float | None], Awaitable[Any]]
#: Sends calls as one batch: (calls, timeout) -> per call its response or its typed error.
SendBatch = Callable[[list[Queued], float | None], Awaitable[list[Any]]]


class Coalescer:
    """Coalesces the unary calls of one channel, without a timer.

    A call issued while none is in flight (and none is waiting) goes at once, alone, as its own
    RPC, so a lone call is never delayed. A call issued while one is in flight waits in a
    queue; when the call in flight returns (and, when it answered several callers, those have
    had one turn of the event loop to issue their next calls), everything queued goes as one
    batch (at most ``max_calls`` calls and ``max_bytes`` of requests; one queued call goes
    alone). Each call keeps its own result, its own error, its own timeout, and its own
    cancellation: a call cancelled or timed out while queued is never sent. A request larger
    than ``max_bytes`` always goes alone, at once. A server without the batch RPC
    (UNIMPLEMENTED) turns coalescing off for the channel.
    """

    def __init__(
        self,
        send_one: SendOne,
        send_batch: SendBatch,
        *,
        max_calls: int = MAX_BATCH_CALLS,
        max_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        self._send_one = send_one
        self._send_batch = send_batch
        self.max_calls = max_calls
        self.max_bytes = max_bytes
        self._in_flight = False
        self._flush_pending = False
        #: How many callers the last call in flight answered, until the flush after it: while
        #: it is more than one, their next calls wait for that flush to go together.
        self._answered = 0
        self._off = False
        self._queue: deque[Queued] = deque()
        #: When True, even a lone call goes through the batch RPC (a batch of one): the test
        #: suite runs the core tests this way to hold batched results to unbatched ones.
        self.lone_in_batch = False
        #: How many calls went in batches and how many batches carried them (for tests and
        #: the benchmark's report).
        self.batched_calls = 0
        self.batches = 0

    async def call(self, method: str, request: Any, timeout: float | None) -> Any:
        """The response of ``method`` for ``request`` (or its typed error), coalesced."""
        if self._off:
            return await self._send_one(method, request, timeout)
        if not (self._in_flight or self._queue or self._answered > 1 or self.lone_in_batch):
            self._in_flight = True
            try:
                return await self._send_one(method, request, timeout)
            finally:
                self._returned(1)
        size = request.ByteSize()
        if size > self.max_bytes:
            return await self._send_one(method, request, timeout)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else time.monotonic() + timeout
        queued = Queued(method, request, timeout, loop.create_future(), deadline, size)
        self._queue.append(queued)
        if not self._in_flight:
            self._schedule_flush()
        try:
            if timeout is None:
                return await queued.future
            async with asyncio.timeout(timeout):
                return await queued.future
        except TimeoutError:
            raise _timed_out(timeout) from None
        finally:
            if not queued.sent:
                self._queue.remove(queued)

    def _returned(self, answered: int) -> None:
        """The call in flight returned to ``answered`` callers: what queued meanwhile (and what
        they issue in their next turn) goes after one loop turn."""
        self._in_flight = False
        self._answered = answered
        if answered > 1 or self._queue:
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        self._answered = 0
        if self._in_flight or not self._queue:
            return
        calls: list[Queued] = []
        size = 0
        while self._queue and len(calls) < self.max_calls:
            next_size = self._queue[0].size
            if calls and size + next_size > self.max_bytes:
                break
            queued = self._queue.popleft()
            queued.sent = True
            calls.append(queued)
            size += next_size
        self._in_flight = True
        asyncio.get_running_loop().create_task(self._run(calls))

    async def _run(self, calls: list[Queued]) -> None:
        try:
            if len(calls) == 1 and not self.lone_in_batch:
                await self._deliver(calls[0], self._one(calls[0]))
                return
            timeouts = [call.remaining() for call in calls]
            timeout = None if None in timeouts else max(t for t in timeouts if t is not None)
            try:
                outcomes = await self._send_batch(calls, timeout)
            except UnimplementedError:
                self._off = True
                await asyncio.gather(*(self._deliver(call, self._one(call)) for call in calls))
                return
            except StateKeeperError as error:
                outcomes = [error for _ in calls]
            self.batches += 1
            self.batched_calls += len(calls)
            again = []
            for call, outcome in zip(calls, outcomes, strict=True):
                too_large = isinstance(outcome, StateKeeperError) and (
                    outcome.reason == Reason.BATCH_RESPONSE_TOO_LARGE
                )
                if too_large:
                    again.append(self._deliver(call, self._one(call)))
                elif not call.future.done():
                    if isinstance(outcome, StateKeeperError):
                        call.future.set_exception(outcome)
                    else:
                        call.future.set_result(outcome)
            await asyncio.gather(*again)
        except BaseException as error:
            for call in calls:  # never leave a caller waiting
                if call.future.done():
                    continue
                if isinstance(error, Exception):
                    call.future.set_exception(error)
                else:
                    call.future.cancel()
            if not isinstance(error, Exception):
                raise
        finally:
            self._returned(len(calls))

    def _one(self, call: Queued) -> Awaitable[Any]:
        return self._send_one(call.method, call.request, call.remaining())

    @staticmethod
    async def _deliver(call: Queued, response: Awaitable[Any]) -> None:
        """Send one call alone and pass its outcome to its caller (unless it gave up)."""
        try:
            result = await response
        except Exception as error:
            if not call.future.done():
                call.future.set_exception(error)
            return
        if not call.future.done():
            call.future.set_result(result)


async def stream(method: Callable[..., Any], request: Any) -> AsyncIterator[Any]:
    """Iterate a server-streaming RPC, raising the typed error of a failed call; the call is
    cancelled when the consumer stops early."""
    call = method(request)
    try:
        async for message in call:
            yield message
    except grpc.RpcError as error:
        raise from_rpc_error(error) from None
    finally:
        cancel = getattr(call, "cancel", None)
        if cancel is not None:
            cancel()
        else:
            aclose = getattr(call, "aclose", None)
            if aclose is not None:
                await aclose()


def connect(
    persistence: Any = "memory",
    *,
    address: str | None = None,
    redis_url: str | None = None,
    file_path: str | None = None,
    transport: Transport | None = None,
    **options: Any,
) -> Transport:
    """The transport of a reference manager: ``persistence`` is ``"memory"``, ``"file"``,
    ``"redis"`` (embedded engine over that backend), ``"grpc"`` (a server at ``address``) or a
    backend object. An explicit ``transport`` is shared as it is (one connection for many
    managers). The reference's ``persistence="redis"`` without a URL uses the local Redis."""
    if transport is not None:
        return transport
    return Transport(
        ConnectionOptions(
            persistence=persistence,
            address=address,
            redis_url=redis_url,
            file_path=file_path,
            **options,
        )
    )
