"""Shared fixtures: an in-process server on a free port, and the embedded/remote mode switch."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from statekeeper.transport import ConnectionOptions
from statekeeper_server.config import ServerConfig
from statekeeper_server.server import StatekeeperServer


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
