"""Several server processes on one port, for more than one core.

One Python process serves on one core: its event loop and grpc.aio's per-message work share one
interpreter lock. ``statekeeper serve --workers N`` runs N server processes that listen on the
same port (``SO_REUSEPORT``: the kernel spreads new connections over them) and share one Redis
backend, whose revisions, compare-and-set and change log already keep several servers on one
Redis correct. The memory and file backends belong to one process and refuse ``--workers``.

The first process serves too and supervises the others: a worker that dies is started again,
SIGTERM or SIGINT stops every worker gracefully, and a worker whose supervisor is gone stops
by itself (it watches its end of a pipe to the supervisor).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import multiprocessing
import signal
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from statekeeper.errors import InvalidArgumentError, Reason

from statekeeper_server.config import ServerConfig
from statekeeper_server.observability import configure_logging
from statekeeper_server.server import StatekeeperServer, run_loop, settle_heap

log = logging.getLogger("statekeeper.workers")

#: Seconds a worker gets to start and report its port.
START_TIMEOUT = 60.0


def check_workers(config: ServerConfig) -> None:
    """Refuse a worker count the backend cannot be shared by."""
    if config.workers < 1:
        raise InvalidArgumentError(
            "--workers must be at least 1",
            reason=Reason.INVALID_ARGUMENT,
            violations=[("workers", "less than 1")],
        )
    if config.workers > 1 and config.backend != "redis":
        raise InvalidArgumentError(
            f"--workers {config.workers} needs the redis backend: a {config.backend} store "
            "belongs to one process",
            reason=Reason.INVALID_ARGUMENT,
            violations=[("workers", f"more than 1 with the {config.backend} backend")],
        )


def worker_config(config: ServerConfig, index: int, port: int) -> ServerConfig:
    """The configuration of worker ``index`` (0 is the supervisor): the supervisor's port, and
    its own metrics port next to the supervisor's when that one is fixed."""
    metrics_port = config.metrics_port
    if metrics_port > 0:
        metrics_port += index
    return dataclasses.replace(config, port=port, metrics_port=metrics_port)


class Supervisor:
    """Starts, restarts and stops the worker processes beside the supervisor's own server."""

    def __init__(self, config: ServerConfig, port: int) -> None:
        self.config = config
        self.port = port
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, tuple[BaseProcess, Connection]] = {}
        self._stopping = False
        self._watchers: list[asyncio.Task[None]] = []

    async def start(self) -> list[dict[str, Any]]:
        """Start workers 1..N-1 and wait until each serves; what each reported."""
        reports = await asyncio.gather(
            *(self._start(index) for index in range(1, self.config.workers))
        )
        self._watchers = [
            asyncio.create_task(self._supervise(index)) for index in range(1, self.config.workers)
        ]
        return list(reports)

    async def _start(self, index: int) -> dict[str, Any]:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=run_worker,
            args=(worker_config(self.config, index, self.port), index, theirs),
            name=f"statekeeper-worker-{index}",
            daemon=False,
        )
        process.start()
        theirs.close()
        self._workers[index] = (process, ours)
        ready = await asyncio.to_thread(ours.poll, START_TIMEOUT)
        report: dict[str, Any] = ours.recv() if ready else {"error": "did not start in time"}
        if "error" in report:
            process.kill()
            raise InvalidArgumentError(f"worker {index} failed to start: {report['error']}")
        return report

    async def _supervise(self, index: int) -> None:
        """Start worker ``index`` again whenever it dies, until stopping."""
        while True:
            process, _ = self._workers[index]
            await asyncio.to_thread(process.join)
            if self._stopping:
                return
            log.error(
                "worker %d (pid %s) exited with %s; starting it again",
                index,
                process.pid,
                process.exitcode,
            )
            try:
                await self._start(index)
            except InvalidArgumentError as error:
                log.error("%s", error.message)
                return

    async def stop(self) -> None:
        """SIGTERM every worker and wait for each to drain; kill one that does not."""
        self._stopping = True
        for process, _ in self._workers.values():
            if process.is_alive() and process.pid is not None:
                process.terminate()
        deadline = self.config.shutdown_grace + 10.0
        for process, connection in self._workers.values():
            await asyncio.to_thread(process.join, deadline)
            if process.is_alive():
                log.error("worker pid %s did not stop; killing it", process.pid)
                process.kill()
                await asyncio.to_thread(process.join)
            connection.close()
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)


def run_worker(config: ServerConfig, index: int, supervisor: Connection) -> None:
    """The body of a worker process: serve until SIGTERM, SIGINT or the supervisor's end."""
    configure_logging(config.log_level, config.log_format)

    async def main() -> None:
        server = StatekeeperServer(config)
        try:
            port = await server.start()
        except Exception as error:
            supervisor.send({"error": str(error) or type(error).__name__})
            return
        settle_heap()
        supervisor.send({"index": index, "port": port, "metrics_port": server.metrics_port})
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        # The supervisor never writes: the pipe becomes readable only when it is gone.
        loop.add_reader(supervisor.fileno(), stop.set)
        await stop.wait()
        loop.remove_reader(supervisor.fileno())
        await server.stop()

    run_loop(main(), config.event_loop)
