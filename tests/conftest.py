"""Shared fixtures: an in-process server on a free port, and the embedded/remote mode switch;
and the guard that keeps tests out of the checkout (every server a test starts gets its own
temporary data directory; nothing writes to ``./data``, which ``make run`` serves from)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from statekeeper.transport import ConnectionOptions
from statekeeper_server.config import ServerConfig
from statekeeper_server.server import StatekeeperServer

from tests.processes import RedisProcess, start_redis
from tests.servers import ServerProcess, start_server_process

#: The checkout the tests run from.
CHECKOUT = Path(__file__).resolve().parent.parent
#: The default data directories of ``statekeeper serve`` (``make run``) and of an embedded
#: file-backend manager, relative to the checkout: no test may open a store in them.
RUN_DATA_DIRS = (CHECKOUT / "data", CHECKOUT / "state")
#: Where the session keeps the checkout's untracked files as they were at its start.
_UNTRACKED = pytest.StashKey[set[str] | None]()


def _data_dir_state(path: Path) -> tuple[tuple[str, int, int], ...] | None:
    """Every file under ``path`` with its size and modification time (None: no such dir).

    Opening a file-backend store rewrites its ``LOCK`` file, so even a test server that only
    reads the store changes this."""
    if not path.is_dir():
        return None
    files = []
    for root, _, names in os.walk(path):
        for name in names:
            try:
                info = os.stat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            files.append((os.path.join(root, name), info.st_size, info.st_mtime_ns))
    return tuple(sorted(files))


@pytest.fixture(autouse=True)
def _leaves_the_run_data_directories_alone() -> Iterator[None]:
    """Fail a test that opened a store in ``./data`` or ``./state`` of the checkout (give its
    server ``backend="memory"`` or a ``tmp_path`` data directory instead). A ``make run``
    server in the same checkout is not disturbed by tests, so it may keep serving."""
    before = [_data_dir_state(path) for path in RUN_DATA_DIRS]
    yield
    for path, state in zip(RUN_DATA_DIRS, before, strict=True):
        if _data_dir_state(path) != state:
            pytest.fail(f"this test wrote into {path}: give each server it starts its own data dir")


def _untracked_files() -> set[str] | None:
    """Files of the checkout that git neither tracks nor ignores (None: not a git checkout)."""
    try:
        listing = subprocess.run(
            ["git", "-C", str(CHECKOUT), "ls-files", "--others", "--exclude-standard", "-z"],
            capture_output=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return set(listing.stdout.decode().split("\0")) - {""}


def pytest_sessionstart(session: pytest.Session) -> None:
    """Record the checkout's untracked files before any test runs."""
    session.stash[_UNTRACKED] = _untracked_files()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when tests left new files in the checkout (outside ignored paths)."""
    before, after = session.stash.get(_UNTRACKED, None), _untracked_files()
    if before is None or after is None or not after - before:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"error: tests wrote into the checkout: {sorted(after - before)}", red=True
        )
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
async def server() -> AsyncIterator[StatekeeperServer]:
    """A statekeeper server on the memory backend, serving on a free port of 127.0.0.1."""
    instance = StatekeeperServer(ServerConfig(backend="memory", port=0, shutdown_grace=1.0))
    await instance.start()
    yield instance
    await instance.stop(0)


@pytest.fixture
async def metrics_server() -> AsyncIterator[StatekeeperServer]:
    """A memory-backend server that also serves Prometheus ``/metrics`` on a free port."""
    server = StatekeeperServer(ServerConfig(backend="memory", port=0, metrics_port=0))
    await server.start()
    yield server
    await server.stop(0)


@pytest.fixture
async def auth_address(tmp_path: Path) -> AsyncIterator[str]:
    """A server that requires bearer tokens: two tenants, and a read-only token of team-a."""
    tokens = tmp_path / "tokens.json"
    tokens.write_text(
        json.dumps(
            {
                "token-a": {"name": "alice", "namespaces": ["team-a"], "role": "write"},
                "token-b": {"name": "bob", "namespaces": ["team-b"], "role": "write"},
                "reader-a": {"name": "carol", "namespaces": ["team-a"], "role": "read"},
            }
        )
    )
    server = StatekeeperServer(
        ServerConfig(backend="memory", port=0, shutdown_grace=1.0, auth_tokens_file=str(tokens))
    )
    await server.start()
    yield f"127.0.0.1:{server.port}"
    await server.stop(0)


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
