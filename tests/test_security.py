"""TLS, mutual TLS, bearer tokens, roles and tenant isolation (certificates made at test time)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from statekeeper.errors import (
    PermissionDeniedError,
    StateKeeperError,
    UnauthenticatedError,
    UnavailableError,
)
from statekeeper.state import StateConfig, StateManager
from statekeeper.transport import connect
from statekeeper_server.auth import Role, TokenTable, required_role
from statekeeper_server.config import ServerConfig
from statekeeper_server.engine.storage.backend import Backend
from statekeeper_server.engine.storage.glob import GlobPattern
from statekeeper_server.engine.storage.memory import MemoryBackend
from statekeeper_server.observability import InstrumentedBackend, ServerMetrics
from statekeeper_server.runtime import Runtime
from statekeeper_server.server import StatekeeperServer

from tests.pki import Authority
from tests.protofuzz import all_rpcs, random_message

TOKENS = {
    "token-a-write": {"name": "alice", "namespaces": ["team-a"], "role": "write"},
    "token-a-read": {"name": "reader", "namespaces": ["team-a"], "role": "read"},
    "token-b-write": {"name": "bob", "namespaces": ["team-b", "shared"], "role": "write"},
    "token-admin": {"name": "ops", "namespaces": ["default", "team-a"], "role": "admin"},
}


async def started(config: ServerConfig, runtime: Runtime | None = None) -> StatekeeperServer:
    server = StatekeeperServer(config, runtime)
    await server.start()
    return server


# -- TLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("pki")
    ca = Authority(directory, "trusted")
    rogue = Authority(directory, "rogue")
    return {
        "ca": ca.ca_file,
        "server": ca.issue("server", server=True),
        "client": ca.issue("client", server=False),
        "rogue_client": rogue.issue("client", server=False),
        "rogue_ca": rogue.ca_file,
    }


@pytest.fixture
async def tls_server(pki: dict[str, Any]) -> AsyncIterator[StatekeeperServer]:
    server = await started(
        ServerConfig(
            backend="memory", port=0, tls_cert=pki["server"].cert, tls_key=pki["server"].key
        )
    )
    yield server
    await server.stop(0)


@pytest.fixture
async def mtls_server(pki: dict[str, Any]) -> AsyncIterator[StatekeeperServer]:
    server = await started(
        ServerConfig(
            backend="memory",
            port=0,
            tls_cert=pki["server"].cert,
            tls_key=pki["server"].key,
            tls_client_ca=pki["ca"],
        )
    )
    yield server
    await server.stop(0)


async def roundtrip(**config: Any) -> Any:
    async with StateManager(StateConfig(backend="grpc", timeout=10, **config)) as manager:
        await manager.save("greeting", {"text": "hello"})
        return await manager.get("greeting")


async def test_tls_client_trusting_the_ca_talks_to_the_server(
    tls_server: StatekeeperServer, pki: dict[str, Any]
) -> None:
    address = f"127.0.0.1:{tls_server.port}"
    assert await roundtrip(address=address, tls_ca_file=pki["ca"]) == {"text": "hello"}
    # The server name can be checked against another name in the certificate.
    value = await roundtrip(
        address=address, tls_ca_file=pki["ca"], tls_server_name="statekeeper.test"
    )
    assert value == {"text": "hello"}


async def test_tls_server_refuses_plaintext_and_untrusted_clients(
    tls_server: StatekeeperServer, pki: dict[str, Any]
) -> None:
    address = f"127.0.0.1:{tls_server.port}"
    with pytest.raises(UnavailableError):
        await roundtrip(address=address)
    with pytest.raises(UnavailableError):
        await roundtrip(address=address, tls_ca_file=pki["rogue_ca"])


async def test_mtls_client_with_a_certificate_of_the_ca_connects(
    mtls_server: StatekeeperServer, pki: dict[str, Any]
) -> None:
    value = await roundtrip(
        address=f"127.0.0.1:{mtls_server.port}",
        tls_ca_file=pki["ca"],
        tls_cert_file=pki["client"].cert,
        tls_key_file=pki["client"].key,
    )
    assert value == {"text": "hello"}


async def test_mtls_client_without_a_trusted_certificate_cannot_connect(
    mtls_server: StatekeeperServer, pki: dict[str, Any]
) -> None:
    address = f"127.0.0.1:{mtls_server.port}"
    with pytest.raises(UnavailableError):
        await roundtrip(address=address, tls_ca_file=pki["ca"])
    with pytest.raises(UnavailableError):
        await roundtrip(
            address=address,
            tls_ca_file=pki["ca"],
            tls_cert_file=pki["rogue_client"].cert,
            tls_key_file=pki["rogue_client"].key,
        )


# -- authentication and authorization ---------------------------------------------------------


@pytest.fixture
def tokens_file(tmp_path: Path) -> str:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(TOKENS))
    return str(path)


class RecordingBackend(InstrumentedBackend):
    """Records the key or prefix of every backend access (to prove where a tenant reads)."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner, ServerMetrics())
        self.touched: list[str] = []

    async def get(self, key: str) -> Any:
        self.touched.append(key)
        return await super().get(key)

    async def txn(self, compares: Sequence[Any], operations: Sequence[Any]) -> Any:
        self.touched.extend([c.key for c in compares] + [o.key for o in operations])
        return await super().txn(compares, operations)

    async def range(
        self,
        prefix: str,
        pattern: GlobPattern | None = None,
        *,
        start_after: str = "",
        limit: int = 1000,
    ) -> Any:
        self.touched.append(prefix)
        return await super().range(prefix, pattern, start_after=start_after, limit=limit)

    def watch(self, prefix: str, pattern: GlobPattern | None = None, **kwargs: Any) -> Any:
        self.touched.append(prefix)
        return super().watch(prefix, pattern, **kwargs)


@pytest.fixture
async def auth_server(tokens_file: str) -> AsyncIterator[StatekeeperServer]:
    runtime = Runtime(RecordingBackend(MemoryBackend()))
    server = await started(ServerConfig(port=0, auth_tokens_file=tokens_file), runtime)
    yield server
    await server.stop(0)
    await runtime.close()


def manager_for(server: StatekeeperServer, token: str | None, **config: Any) -> StateManager:
    return StateManager(
        StateConfig(backend="grpc", address=f"127.0.0.1:{server.port}", token=token, **config)
    )


async def call_raw(
    channel: grpc.aio.Channel, rpc: Any, request: Any, metadata: Sequence[tuple[str, str]]
) -> grpc.StatusCode:
    """Call any RPC with ``request``; the status code it ends with (a stream: its first
    message or its end)."""
    data = request.SerializeToString()
    try:
        if rpc.server_streaming:
            call = channel.unary_stream(rpc.path)(data, metadata=metadata, timeout=10)
            try:
                await anext(aiter(call))
            except StopAsyncIteration:
                pass
            finally:
                call.cancel()
        else:
            await channel.unary_unary(rpc.path)(data, metadata=metadata, timeout=10)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_every_rpc_without_a_token_is_unauthenticated(
    auth_server: StatekeeperServer,
) -> None:
    rpcs = all_rpcs()
    assert len({rpc.service for rpc in rpcs}) >= 1
    async with grpc.aio.insecure_channel(f"127.0.0.1:{auth_server.port}") as channel:
        for rpc in rpcs:
            request = rpc.request()
            for metadata in ((), (("authorization", "Bearer wrong-token"),)):
                code = await call_raw(channel, rpc, request, metadata)
                assert code == grpc.StatusCode.UNAUTHENTICATED, f"{rpc.path}: {code.name}"
        # Health and reflection need no token.
        health = health_pb2_grpc.HealthStub(channel)
        response = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    assert auth_server.runtime.backend.touched == []  # type: ignore[attr-defined]


async def test_manager_errors_are_typed(auth_server: StatekeeperServer) -> None:
    async with manager_for(auth_server, None) as anonymous:
        with pytest.raises(UnauthenticatedError):
            await anonymous.get("x")
    async with manager_for(auth_server, "not-a-token") as stranger:
        with pytest.raises(UnauthenticatedError) as raised:
            await stranger.list_keys()
    assert "not-a-token" not in str(raised.value)


async def test_roles(auth_server: StatekeeperServer) -> None:
    async with manager_for(auth_server, "token-a-write") as writer:
        await writer.save("doc", {"n": 1})
        with pytest.raises(PermissionDeniedError):
            await writer.get_stats()  # statistics are for admins
    async with manager_for(auth_server, "token-a-read") as reader:
        assert await reader.get("doc") == {"n": 1}
        assert await reader.list_keys() == ["doc"]
        with pytest.raises(PermissionDeniedError):
            await reader.save("doc", {"n": 2})
        with pytest.raises(PermissionDeniedError):
            await reader.delete("doc")
    async with manager_for(auth_server, "token-admin", namespace="team-a") as admin:
        assert (await admin.get_stats()).keys >= 1
        await admin.save("doc", {"n": 3})
    async with manager_for(auth_server, "token-a-write") as writer:
        assert await writer.get("doc") == {"n": 3}


def test_rpc_roles_follow_the_name_convention() -> None:
    assert required_role("/statekeeper.v1.StateService/Get") is Role.READ
    assert required_role("/statekeeper.v1.StateService/ListKeys") is Role.READ
    assert required_role("/statekeeper.v1.StateService/Watch") is Role.READ
    assert required_role("/statekeeper.v1.StateService/Save") is Role.WRITE
    assert required_role("/statekeeper.v1.StateService/Transact") is Role.WRITE
    assert required_role("/statekeeper.v1.StateService/GetStats") is Role.ADMIN
    assert required_role("/statekeeper.v1.AdminService/Anything") is Role.ADMIN
    # Every registered RPC has a role (and the read ones do not write: see the tenant test).
    for rpc in all_rpcs():
        assert required_role(rpc.path) in Role


async def test_namespace_selection(auth_server: StatekeeperServer) -> None:
    async with manager_for(auth_server, "token-b-write", namespace="shared") as shared:
        await shared.save("note", {"in": "shared"})
    async with manager_for(auth_server, "token-b-write") as first:  # default: first namespace
        assert await first.get("note") is None
    async with manager_for(auth_server, "token-b-write", namespace="team-a") as other:
        with pytest.raises(PermissionDeniedError):
            await other.get("note")
    async with manager_for(auth_server, "token-b-write", namespace="shared") as shared:
        assert await shared.get("note") == {"in": "shared"}


async def test_tenant_b_cannot_see_tenant_a(auth_server: StatekeeperServer) -> None:
    async with (
        manager_for(auth_server, "token-a-write") as alice,
        manager_for(auth_server, "token-b-write") as bob,
    ):
        await alice.save("secret", {"owner": "a"})
        await alice.save("shared-name", {"owner": "a"})
        assert await bob.get("secret") is None
        assert await bob.get_entry("secret") is None
        assert await bob.list_keys() == []
        assert await bob.list_keys("sec*") == []
        # The same key name in B is a different record.
        revision = await bob.save("shared-name", {"owner": "b"}, expected_revision=0)
        assert revision > 0
        assert await alice.get("shared-name") == {"owner": "a"}
        # A's deletes cannot touch B and the other way round.
        assert await bob.delete("secret") is False
        assert await alice.get("secret") == {"owner": "a"}

        # B's watch sees B's change only, even when A writes first.
        start = await alice.save("secret", {"owner": "a", "v": 2})
        await bob.save("mine", {"owner": "b"})
        changes = bob.watch("*", start)
        change = await anext(changes)
        assert change.key == "mine"
        await changes.aclose()


async def test_random_requests_of_every_service_stay_in_the_callers_tenant(
    auth_server: StatekeeperServer,
) -> None:
    """Every backend access made for tenant B's calls, of any RPC of any service, is under
    tenant B's prefix: no manager can read, list, watch or write another tenant's keys."""
    import random

    rng = random.Random(7)
    backend: RecordingBackend = auth_server.runtime.backend  # type: ignore[assignment]
    async with manager_for(auth_server, "token-a-write") as alice:
        await alice.save("a", {"owner": "a"})
    backend.touched.clear()
    metadata = (("authorization", "Bearer token-b-write"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{auth_server.port}") as channel:
        for _ in range(3):
            for rpc in all_rpcs():
                await call_raw(channel, rpc, random_message(rpc.request, rng), metadata)
    assert backend.touched, "the calls reached the backend"
    outside = sorted({key for key in backend.touched if not key.startswith("tenants/team-b/")})
    assert outside == []


def test_tokens_file_is_validated_and_tokens_compare_by_hash(tmp_path: Path) -> None:
    import hashlib

    digest = hashlib.sha256(b"hashed-secret").hexdigest()
    table = TokenTable.from_mapping(
        {f"sha256:{digest}": {"namespaces": ["x"], "role": "admin"}, "plain": {"namespaces": ["y"]}}
    )
    principal = table.lookup("hashed-secret")
    assert principal is not None and principal.role is Role.ADMIN
    plain = table.lookup("plain")
    assert plain is not None and plain.role is Role.READ and plain.namespaces == ("y",)
    assert table.lookup("plai") is None and table.lookup("") is None
    for bad in (
        {"t": {"namespaces": []}},
        {"t": {"namespaces": ["a/b"]}},
        {"t": {"namespaces": ["a"], "role": "root"}},
        {"sha256:12": {"namespaces": ["a"]}},
        ["not", "an", "object"],
    ):
        with pytest.raises(StateKeeperError):
            TokenTable.from_mapping(bad)  # type: ignore[arg-type]


async def test_token_and_namespace_reach_reference_managers_through_connect(
    auth_server: StatekeeperServer,
) -> None:
    transport = connect(
        "grpc", address=f"127.0.0.1:{auth_server.port}", token="token-a-write", namespace="team-a"
    )
    assert transport.options.token == "token-a-write"
    assert "token-a-write" not in repr(transport.options)
    async with StateManager(StateConfig(backend="grpc"), transport=transport) as manager:
        await manager.save("via-connect", {"ok": True})
    async with manager_for(auth_server, "token-a-read") as reader:
        assert await reader.get("via-connect") == {"ok": True}
    await transport.close()
