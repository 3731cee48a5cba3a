"""Shared fixtures: an in-process server on a free port, and the embedded/remote mode switch."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from statekeeper.transport import ConnectionOptions
from statekeeper_server.config import ServerConfig
from statekeeper_server.server import StatekeeperServer

from tests.processes import RedisProcess, start_redis
from tests.servers import ServerProcess, start_server_process


@pytest.fixture
async def server() -> AsyncIterator[StatekeeperServer]:
    """A statekeeper server on the memory backend, serving on a free port of 127.0.0.1."""
    instance = StatekeeperServer(ServerConfig(backend="memory", port=0, shutdown_grace=1.0))
    await instance.start()
    yield instance
    await instance.stop(0)


@pytest.fixture
def address(server: StatekeeperServer) -> str:
    """The host:port of the ``server`` fixture."""
    return f"127.0.0.1:{server.port}"


@pytest.fixture(params=["embedded", "remote"])
def mode(request: pytest.FixtureRequest) -> str:
    """Runs a test once in embedded mode and once against a live server."""
    return str(request.param)


@pytest.fixture
def connection(mode: str, request: pytest.FixtureRequest) -> ConnectionOptions:
    """Connection options for the current mode (remote mode starts the ``server`` fixture)."""
    if mode == "embedded":
        return ConnectionOptions(persistence="memory")
    address = request.getfixturevalue("address")
    return ConnectionOptions(persistence="grpc", address=address)


@pytest.fixture
def persistence_kwargs(connection: ConnectionOptions) -> dict[str, str]:
    """Keyword arguments that point a reference manager (``persistence=...``) at this mode."""
    if connection.persistence == "grpc":
        assert connection.address is not None
        return {"persistence": "grpc", "address": connection.address}
    return {"persistence": "memory"}


# -- real processes: redis-server (tests/processes.py) and servers (tests/servers.py) ----------


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """The URL (``redis://127.0.0.1:PORT/0``) of a real redis-server started for the session
    on a free port (no persistence); prefer ``redis_url``, which also empties it per test."""
    process = start_redis()
    yield process.url
    process.cleanup()


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session redis-server's URL, flushed (every database emptied) before this test."""
    import redis

    client = redis.Redis.from_url(redis_server)
    client.flushall()
    client.close()
    return redis_server


@pytest.fixture
def redis_process() -> Iterator[RedisProcess]:
    """A redis-server of this test alone, with an fsynced append-only file, so a test can
    ``stop()`` it and ``start()`` it again on the same port with its data."""
    process = start_redis(persistent=True)
    yield process
    process.cleanup()


@pytest.fixture
def spawn_servers() -> Iterator[Callable[..., list[ServerProcess]]]:
    """``spawn_servers(count, *args)`` starts ``count`` statekeeper server subprocesses
    (``python -m statekeeper_server serve --port 0 *args``, see tests/servers.py) and returns
    them (each has ``.address``, ``.kill()``, ``.terminate()``); all stop at teardown."""
    started: list[ServerProcess] = []

    def spawn(count: int, *args: str) -> list[ServerProcess]:
        for _ in range(count):
            started.append(start_server_process(*args))
        return started[-count:]

    yield spawn
    for server in started:
        if server.process.poll() is None:
            try:
                server.terminate(15)
            except subprocess.TimeoutExpired:
                server.kill()


@pytest.fixture
def redis_instances(
    redis_url: str, spawn_servers: Callable[..., list[ServerProcess]]
) -> list[ServerProcess]:
    """Two statekeeper server processes sharing one (flushed) Redis: ``[a, b]``; use
    ``a.address`` / ``b.address`` with ``StateConfig(backend="grpc", address=...)``."""
    return spawn_servers(2, "--backend", "redis", "--redis-url", redis_url)
