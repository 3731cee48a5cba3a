"""The gRPC server: every registered service, health checking, reflection, graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from statekeeper_server.config import ServerConfig
from statekeeper_server.engine.factory import BackendOptions, open_backend
from statekeeper_server.engine.limits import Limits
from statekeeper_server.interceptors import ErrorInterceptor
from statekeeper_server.runtime import Runtime
from statekeeper_server.services import SERVICES

log = logging.getLogger("statekeeper.server")


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
    )


def limits_of(config: ServerConfig) -> Limits:
    """The request limits part of a server configuration."""
    return Limits(
        max_key_bytes=config.max_key_bytes,
        max_value_bytes=config.max_value_bytes,
        max_transaction_operations=config.max_transaction_operations,
    )


class StatekeeperServer:
    """One running statekeeper server (used by ``statekeeper serve`` and by tests)."""

    def __init__(self, config: ServerConfig, runtime: Runtime | None = None) -> None:
        self.config = config
        self._owns_runtime = runtime is None
        self.runtime = runtime or Runtime(open_backend(backend_options(config)), limits_of(config))
        self.health = health.aio.HealthServicer()
        self.port = 0
        self._server: grpc.aio.Server | None = None

    async def start(self) -> int:
        """Bind, start serving and report SERVING; returns the bound port."""
        options = [
            ("grpc.max_receive_message_length", self.config.max_message_bytes),
            ("grpc.max_send_message_length", self.config.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ]
        server = grpc.aio.server(interceptors=[ErrorInterceptor()], options=options)
        for spec in SERVICES:
            spec.add_to_server(self.runtime.servicers[spec.name], server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        names = [spec.name for spec in SERVICES]
        reflection.enable_server_reflection(
            [
                *names,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            server,
        )
        self.port = server.add_insecure_port(f"{self.config.host}:{self.config.port}")
        self.runtime.stopping.clear()
        await server.start()
        self._server = server
        for name in ["", *names]:
            await self._set_health(name, health_pb2.HealthCheckResponse.SERVING)
        return self.port

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
        if self._owns_runtime:
            await self.runtime.backend.close()

    async def wait(self) -> None:
        """Wait until the server terminates."""
        if self._server is not None:
            await self._server.wait_for_termination()


async def serve(config: ServerConfig) -> None:
    """Run a server until SIGTERM or SIGINT, then shut it down gracefully."""
    server = StatekeeperServer(config)
    port = await server.start()
    print(f"statekeeper listening on {config.host}:{port} (backend {config.backend})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("shutting down")
    await server.stop()
