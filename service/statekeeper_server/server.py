"""The gRPC server: every registered service, health checking, reflection, graceful shutdown."""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import socket
from collections.abc import Coroutine
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from statekeeper.errors import FailedPreconditionError, InvalidArgumentError

from statekeeper_server.auth import Authenticator, TokenTable
from statekeeper_server.config import ServerConfig
from statekeeper_server.engine.limits import Limits
from statekeeper_server.engine.storage.factory import BackendOptions, open_backend
from statekeeper_server.interceptors import CallInterceptor, StreamLimits, WrappingRegistrar
from statekeeper_server.observability import InstrumentedBackend, ServerMetrics
from statekeeper_server.reflection_pool import MethodAwarePool
from statekeeper_server.runtime import Runtime
from statekeeper_server.services import SERVICES

log = logging.getLogger("statekeeper.server")

T = TypeVar("T")


def run_loop(main: Coroutine[Any, Any, T], choice: str = "auto") -> T:
    """Run ``main`` to its end on the event loop ``choice`` names (``--event-loop``, asyncio by
    default): uvloop, asyncio, or auto: uvloop where it is installed (the ``server`` extra),
    else asyncio. The one place that picks the loop of a server process (``serve`` and its
    ``--workers``)."""
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                main.close()
                raise FailedPreconditionError(
                    "--event-loop uvloop: uvloop is not installed "
                    "(pip install 'statekeeper[server]')"
                ) from None
        else:
            return uvloop.run(main)
    return asyncio.run(main)


def settle_heap() -> None:
    """Move every object alive now (the modules, the servicers, the opened store) out of the
    garbage collector's reach (``gc.freeze``), once a serving process has started: full
    (generation 2) collections then walk only what was allocated since, instead of tens of
    thousands of long-lived objects each time (20-60 ms of the event loop at each, measured
    during a bulk load). Called by the serving processes, not by servers started in a test."""
    gc.collect()
    gc.freeze()


def loop_name() -> str:
    """The kind of the running event loop: ``uvloop`` or ``asyncio``."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"


def cannot_listen(host: str, port: int, flag: str) -> FailedPreconditionError:
    """The one-line error of a server that cannot listen on host:port, with the reason the
    operating system gives (found by binding a plain socket there) and what to change."""
    address = f"{host}:{port}"
    try:
        family, kind, _, _, sockaddr = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM
        )[0]
        with socket.socket(family, kind) as probe:
            probe.bind(sockaddr)
        reason = "the address cannot be bound"
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            return FailedPreconditionError(
                f"cannot listen on {address}: port {port} is already in use; stop the process "
                f"using it or choose another port with {flag} (0 picks a free one)",
                metadata={"address": address},
            )
        reason = error.strerror or str(error)
    return FailedPreconditionError(
        f"cannot listen on {address}: {reason}; check the host and {flag}",
        metadata={"address": address},
    )


def backend_options(config: ServerConfig) -> BackendOptions:
    """The backend part of a server configuration."""
    return BackendOptions(
        kind=config.backend,
        data_dir=config.data_dir,
        file_format=config.file_format,
        compression=config.compression,
        redis_url=config.redis_url,
        redis_db=config.redis_db,
        redis_key_prefix=config.redis_key_prefix,
        redis_pool_size=config.redis_pool_size,
        history_revisions=config.history_revisions,
        history_bytes=config.history_bytes,
    )


def limits_of(config: ServerConfig) -> Limits:
    """The request limits part of a server configuration."""
    return Limits(
        max_key_bytes=config.max_key_bytes,
        max_value_bytes=config.max_value_bytes,
        max_transaction_operations=config.max_transaction_operations,
        tool_history_per_tool=config.tool_history_per_tool,
        speech_session_idle_ttl=config.speech_session_idle_ttl,
        max_message_bytes=config.max_message_bytes,
    )


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        raise InvalidArgumentError(f"cannot read {path}: {error.strerror}") from None


def server_credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    """TLS credentials when ``tls_cert`` is set (mutual TLS when ``tls_client_ca`` is)."""
    if not config.tls_cert and not config.tls_key:
        if config.tls_client_ca:
            raise InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key")
        return None
    if not (config.tls_cert and config.tls_key):
        raise InvalidArgumentError("TLS needs both --tls-cert and --tls-key")
    client_ca = _read(config.tls_client_ca) if config.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(_read(config.tls_key), _read(config.tls_cert))],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


class StatekeeperServer:
    """One running statekeeper server (used by ``statekeeper serve`` and by tests)."""

    def __init__(self, config: ServerConfig, runtime: Runtime | None = None) -> None:
        self.config = config
        self._owns_runtime = runtime is None
        #: The Prometheus series of this server (served when ``metrics_port`` >= 0).
        self.metrics = ServerMetrics()
        limits = limits_of(config) if runtime is None else runtime.limits
        limits.check_message_size()
        if runtime is None:
            backend = InstrumentedBackend(open_backend(backend_options(config)), self.metrics)
            runtime = Runtime(backend, limits)
        self.runtime = runtime
        self.metrics_port: int | None = None
        self.health = health.aio.HealthServicer()
        self.port = 0
        self._server: grpc.aio.Server | None = None

    async def start(self) -> int:
        """Bind, start serving and report SERVING; returns the bound port."""
        # The one message limit: what the server receives, and what its streams split to.
        max_message_bytes = self.runtime.limits.max_message_bytes
        options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            # Workers share the port; a lone server must not share it with a stray process.
            ("grpc.so_reuseport", 1 if self.config.workers > 1 else 0),
        ]
        if self.config.max_concurrent_streams > 0:
            options.append(("grpc.max_concurrent_streams", self.config.max_concurrent_streams))
        server = grpc.aio.server(options=options)
        # Every service is added through the registrar, which wraps each handler once: no
        # interceptor runs per call.
        registrar = WrappingRegistrar(server, self._interceptor())
        for spec in SERVICES:
            spec.add_to_server(self.runtime.servicers[spec.name], registrar)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, registrar)
        names = [spec.name for spec in SERVICES]
        reflection_names = [
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ]
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
            reflection.aio.ReflectionServicer(reflection_names, pool=MethodAwarePool()),
            registrar,
        )
        address = f"{self.config.host}:{self.config.port}"
        credentials = server_credentials(self.config)
        try:
            if credentials is None:
                self.port = server.add_insecure_port(address)
            else:
                self.port = server.add_secure_port(address, credentials)
        except RuntimeError:  # grpc says only "Failed to bind"; the OS says why
            raise cannot_listen(self.config.host, self.config.port, "--port") from None
        self.runtime.stopping.clear()
        await server.start()
        self._server = server
        if self.config.metrics_port >= 0 and self.metrics_port is None:
            self.metrics.watch_store(self.runtime.backend, asyncio.get_running_loop())
            host = self.config.metrics_host or self.config.host
            try:
                self.metrics_port = self.metrics.serve_http(host, self.config.metrics_port)
            except OSError:
                await server.stop(0)
                self._server = None
                raise cannot_listen(host, self.config.metrics_port, "--metrics-port") from None
        for name in ["", *names]:
            await self._set_health(name, health_pb2.HealthCheckResponse.SERVING)
        return self.port

    def _interceptor(self) -> CallInterceptor:
        config = self.config
        auth = None
        if config.auth_tokens_file:
            try:
                tokens = TokenTable.from_file(config.auth_tokens_file)
            except OSError as error:
                raise InvalidArgumentError(
                    f"cannot read {config.auth_tokens_file}: {error.strerror}"
                ) from None
            auth = Authenticator(tokens, [p.strip() for p in config.auth_exempt.split(",")])
        return CallInterceptor(
            auth=auth,
            metrics=self.metrics,
            limits=StreamLimits(config.max_watchers, config.max_streams_per_connection),
            access_log=config.access_log,
        )

    async def _set_health(self, name: str, status: int) -> None:
        await self.health.set(name, status)

    async def stop(self, grace: float | None = None) -> None:
        """Graceful shutdown: health NOT_SERVING, streams end, in-flight calls finish; the
        backend is closed unless the runtime was handed in (then its owner closes it)."""
        if self._server is None:
            return
        await self.health.enter_graceful_shutdown()
        self.runtime.stopping.set()
        await self._server.stop(self.config.shutdown_grace if grace is None else grace)
        self._server = None
        self.metrics.close()
        self.metrics_port = None
        if self._owns_runtime:
            await self.runtime.backend.close()

    async def wait(self) -> None:
        """Wait until the server terminates."""
        if self._server is not None:
            await self._server.wait_for_termination()
