"""Fixtures of the framework-adapter tests: a StateManager embedded, or talking to a server
that requires a bearer token and serves the token's tenant (namespace)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from statekeeper.state import StateConfig, StateManager
from statekeeper_server.config import ServerConfig
from statekeeper_server.server import StatekeeperServer

#: The tokens of the authenticated server: a writer of tenant ``team-a`` and one of ``team-b``.
TOKENS = {
    "agents-a": {"name": "agents-a", "namespaces": ["team-a"], "role": "write"},
    "agents-b": {"name": "agents-b", "namespaces": ["team-b"], "role": "write"},
}


async def start_auth_server(directory: Path) -> StatekeeperServer:
    """A started memory-backend server on a free port that requires one of :data:`TOKENS`."""
    tokens = directory / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    server = StatekeeperServer(
        ServerConfig(backend="memory", port=0, shutdown_grace=1.0, auth_tokens_file=str(tokens))
    )
    await server.start()
    return server


@pytest.fixture
async def auth_server(tmp_path: Path) -> AsyncIterator[StatekeeperServer]:
    """A memory-backend server on a free port that requires one of :data:`TOKENS`."""
    server = await start_auth_server(tmp_path)
    yield server
    await server.stop(0)


def tenant_config(server: StatekeeperServer, token: str, namespace: str) -> StateConfig:
    """The configuration of a remote StateManager of ``server`` with a token and a tenant."""
    return StateConfig(
        backend="grpc", address=f"127.0.0.1:{server.port}", token=token, namespace=namespace
    )


@pytest.fixture(params=["embedded", "server"])
async def manager(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateManager]:
    """A StateManager embedded (memory backend), then one of an authenticated server (token
    ``agents-a``, tenant ``team-a``)."""
    if request.param == "embedded":
        async with StateManager(StateConfig(backend="memory")) as instance:
            yield instance
        return
    server = await start_auth_server(tmp_path)
    try:
        async with StateManager(tenant_config(server, "agents-a", "team-a")) as instance:
            yield instance
    finally:
        await server.stop(0)


def calls(metrics: str, method: str) -> float:
    """How many calls of the StateService RPC ``method`` a server's metrics page counts."""
    sample = re.compile(rf'^statekeeper_requests_total{{.*method="{method}".*}} (\S+)$', re.M)
    return sum(float(count) for count in sample.findall(metrics))
