"""StateService.Range through the Python API (StateManager.range) on every backend and over gRPC:
key ranges, prefixes, globs, reverse, limits, paging, keys only, earlier revisions, bad input,
and tenancy (another tenant's keys never show, the tenant prefix never leaks)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from statekeeper.errors import (
    ConflictError,
    HistoryCompactedError,
    InvalidArgumentError,
    PermissionDeniedError,
    Reason,
    ResourceExhaustedError,
    from_rpc_error,
)
from statekeeper.state import StateConfig, StateEntry, StateManager
from statekeeper.v1 import state_service_pb2 as pb
from statekeeper.v1 import state_service_pb2_grpc
from statekeeper_server.config import ServerConfig
from statekeeper_server.server import StatekeeperServer

KEYS = ["t/1/a", "t/1/b", "t/1/c", "t/10/a", "t/2/a", "u/a"]


@pytest.fixture(params=["memory", "file", "redis", "grpc"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> StateConfig:
    """A StateConfig for each backend (embedded) and for a live server."""
    kind = str(request.param)
    if kind == "grpc":
        return StateConfig(backend="grpc", address=request.getfixturevalue("address"))
    if kind == "file":
        return StateConfig(backend="file", file_path=str(tmp_path / "store"))
    if kind == "redis":
        return StateConfig(backend="redis", redis_url=request.getfixturevalue("redis_url"))
    return StateConfig(backend="memory")


@pytest.fixture
async def manager(config: StateConfig) -> AsyncIterator[StateManager]:
    """A StateManager with the keys of KEYS saved (value: the key's position)."""
    async with StateManager(config) as instance:
        for number, key in enumerate(KEYS):
            await instance.save(key, {"n": number, "blob": key.encode()})
        yield instance


async def entries(manager: StateManager, *args: str, **kwargs: object) -> list[StateEntry]:
    return [entry async for entry in manager.range(*args, **kwargs)]  # type: ignore[arg-type]


async def keys(manager: StateManager, *args: str, **kwargs: object) -> list[str]:
    return [entry.key for entry in await entries(manager, *args, **kwargs)]


async def test_prefix_range_glob_reverse_and_limit(manager: StateManager) -> None:
    assert await keys(manager, "t/1/") == ["t/1/a", "t/1/b", "t/1/c"]
    assert await keys(manager, "t/1/", reverse=True) == ["t/1/c", "t/1/b", "t/1/a"]
    assert await keys(manager, "t/1/", limit=2) == ["t/1/a", "t/1/b"]
    assert await keys(manager, "t/1/", reverse=True, limit=1) == ["t/1/c"]
    assert await keys(manager, start="t/1/b", end="t/2/a") == ["t/1/b", "t/1/c", "t/10/a"]
    assert await keys(manager, "t/", start="t/10", end="u") == ["t/10/a", "t/2/a"]
    assert await keys(manager, pattern="t/*/a") == ["t/1/a", "t/10/a", "t/2/a"]
    assert await keys(manager, "t/", pattern="*[!a]", reverse=True) == ["t/1/c", "t/1/b"]
    assert await keys(manager) == KEYS
    assert await keys(manager, "nothing/") == []
    got = await entries(manager, "t/1/")
    assert [e.value for e in got] == [{"n": i, "blob": KEYS[i].encode()} for i in range(3)]
    assert all(e.mod_revision > 0 and e.version == 1 for e in got)


async def test_pages_are_complete_and_keys_only_leaves_values_out(manager: StateManager) -> None:
    more = {f"p/{number:03d}": number for number in range(45)}
    await manager.transaction(put=dict(list(more.items())[:40]))
    await manager.transaction(put=dict(list(more.items())[40:]))
    assert await keys(manager, "p/", page_size=7) == sorted(more)
    assert await keys(manager, "p/", page_size=7, reverse=True) == sorted(more)[::-1]
    only = await entries(manager, "p/", keys_only=True, page_size=10)
    assert [e.key for e in only] == sorted(more) and {e.value for e in only} == {None}


async def test_a_range_at_an_earlier_revision(manager: StateManager) -> None:
    before = (await manager.get_stats()).revision
    await manager.save("t/1/a", {"changed": True})
    await manager.delete("t/1/b")
    await manager.save("t/1/new", {})
    then = await entries(manager, "t/1/", revision=before, page_size=1)
    assert [(e.key, e.value["n"]) for e in then] == [("t/1/a", 0), ("t/1/b", 1), ("t/1/c", 2)]
    assert await keys(manager, "t/1/") == ["t/1/a", "t/1/c", "t/1/new"]
    with pytest.raises(InvalidArgumentError) as caught:
        await entries(manager, "t/", revision=before + 100)
    assert caught.value.reason == Reason.INVALID_REVISION


async def test_a_compacted_revision_is_out_of_range(tmp_path: Path) -> None:
    server = StatekeeperServer(
        ServerConfig(backend="memory", port=0, shutdown_grace=1.0, history_revisions=4)
    )
    await server.start()
    try:
        config = StateConfig(backend="grpc", address=f"127.0.0.1:{server.port}")
        async with StateManager(config) as manager:
            for number in range(30):
                await manager.save("k", {"n": number})
            oldest = (await manager.get_stats()).oldest_revision
            with pytest.raises(HistoryCompactedError) as caught:
                await entries(manager, revision=1)
            assert caught.value.code == grpc.StatusCode.OUT_OF_RANGE
            assert caught.value.compact_revision == oldest
            (entry,) = await entries(manager, revision=oldest)
            assert entry.mod_revision <= oldest
    finally:
        await server.stop(0)


BAD = [
    ({"page_size": -1}, Reason.INVALID_PAGE_SIZE),
    ({"pattern": "a[b"}, Reason.INVALID_PATTERN),
    ({"start_key": "a\n"}, Reason.INVALID_KEY),
    ({"end_key": "k" * 600}, Reason.KEY_TOO_LONG),
    ({"start_key": "b", "end_key": "a"}, Reason.INVALID_ARGUMENT),
    ({"revision": -1}, Reason.INVALID_REVISION),
    ({"page_token": "not-a-token"}, Reason.INVALID_PAGE_TOKEN),
]


@pytest.mark.parametrize(("fields", "reason"), BAD, ids=[r.value for _, r in BAD])
async def test_bad_requests_are_invalid_argument(
    address: str, fields: dict[str, object], reason: Reason
) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = state_service_pb2_grpc.StateServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            await stub.Range(pb.RangeRequest(**fields))  # type: ignore[arg-type]
    error = from_rpc_error(caught.value)
    assert isinstance(error, InvalidArgumentError) and error.reason == reason


async def test_a_page_token_only_continues_its_own_request(address: str) -> None:
    async with StateManager(StateConfig(backend="grpc", address=address)) as manager:
        await manager.transaction(put={f"k/{n}": n for n in range(5)})
    async with grpc.aio.insecure_channel(address) as channel:
        stub = state_service_pb2_grpc.StateServiceStub(channel)
        first = await stub.Range(pb.RangeRequest(prefix="k/", page_size=2))
        assert [kv.key for kv in first.kvs] == ["k/0", "k/1"] and first.next_page_token
        second = await stub.Range(
            pb.RangeRequest(prefix="k/", page_size=2, page_token=first.next_page_token)
        )
        assert [kv.key for kv in second.kvs] == ["k/2", "k/3"]
        with pytest.raises(grpc.RpcError) as caught:
            await stub.Range(
                pb.RangeRequest(prefix="k/", reverse=True, page_token=first.next_page_token)
            )
        assert from_rpc_error(caught.value).reason == Reason.INVALID_PAGE_TOKEN


async def test_pages_of_large_values_fit_one_message(address: str) -> None:
    async with StateManager(StateConfig(backend="grpc", address=address)) as manager:
        big = b"x" * (1024 * 1024 - 64)
        for number in range(6):
            await manager.save(f"big/{number}", {"blob": big})
        got = await entries(manager, "big/")
        assert [e.key for e in got] == [f"big/{n}" for n in range(6)]
        assert all(e.value["blob"] == big for e in got)


async def test_key_prefix_of_the_manager_is_applied_and_stripped(config: StateConfig) -> None:
    async with StateManager(config) as plain:
        await plain.transaction(put={"app/x/1": 1, "app/x/2": 2, "other/x/1": 3})
    scoped = StateConfig(**{**config.__dict__, "key_prefix": "app/"})
    async with StateManager(scoped) as manager:
        assert await keys(manager, "x/") == ["x/1", "x/2"]
        assert await keys(manager, pattern="*1") == ["x/1"]
        assert await keys(manager, start="x/2") == ["x/2"]


async def test_tenants_see_only_their_keys_without_the_tenant_prefix(auth_address: str) -> None:
    def config(token: str) -> StateConfig:
        return StateConfig(backend="grpc", address=auth_address, token=token)

    async with StateManager(config("token-a")) as alice, StateManager(config("token-b")) as bob:
        await alice.transaction(put={"s/1": 1, "s/2": 2})
        await bob.save("s/3", 3)
        assert await keys(alice, "s/") == ["s/1", "s/2"]
        assert await keys(alice, start="s/", end="s/9", reverse=True) == ["s/2", "s/1"]
        assert await keys(bob, pattern="*") == ["s/3"]
        assert await keys(bob, "tenants/") == []
    async with StateManager(config("reader-a")) as reader:
        assert await keys(reader, "s/") == ["s/1", "s/2"]
        with pytest.raises(PermissionDeniedError):
            await reader.save("s/4", 4)
        with pytest.raises(PermissionDeniedError):
            await reader.delete_range("s/")


# -- DeleteRange / CopyRange ------------------------------------------------------------------


async def put_many(manager: StateManager, prefix: str, count: int) -> list[str]:
    """Save ``count`` keys under ``prefix`` (in transactions under the operation limit)."""
    names = [f"{prefix}{number:05d}" for number in range(count)]
    for start in range(0, count, 100):
        await manager.transaction(put={name: {"name": name} for name in names[start : start + 100]})
    return names


async def test_delete_range_removes_more_keys_than_a_transaction_may_hold(
    manager: StateManager,
) -> None:
    await put_many(manager, "big/", 2500)
    await manager.save("big", {"kept": True})
    await manager.save("bigger/x", {"kept": True})
    assert await manager.delete_range("big/") == 2500
    assert await keys(manager, "big") == ["big", "bigger/x"]
    assert await manager.delete_range("big/") == 0


async def test_a_small_delete_range_is_one_transaction(manager: StateManager) -> None:
    before = (await manager.get_stats()).revision
    assert await manager.delete_range(start="t/1/b", end="t/2") == 3
    assert (await manager.get_stats()).revision == before + 1
    assert await keys(manager) == ["t/1/a", "t/2/a", "u/a"]


async def test_a_guarded_range_change_needs_the_guard_revision(manager: StateManager) -> None:
    lock = await manager.save("lock", {"owner": "me"})
    with pytest.raises(ConflictError) as caught:
        await manager.delete_range("t/", guard=("lock", lock + 5))
    assert caught.value.reason == Reason.REVISION_CONFLICT
    assert caught.value.metadata["key"] == "lock"
    with pytest.raises(ConflictError):
        await manager.copy_range("t/", "copy/", guard=("lock", 0))
    assert await keys(manager, "t/") == KEYS[:5] and await keys(manager, "copy/") == []
    assert await manager.delete_range("t/", guard=("lock", lock)) == 5


async def test_copy_range_copies_a_snapshot_with_values_and_expiry(manager: StateManager) -> None:
    names = await put_many(manager, "src/", 1500)
    await manager.save("src/ttl", {"blob": b"\x00"}, ttl=3600)
    await manager.save("dst/extra", {"stays": True})
    assert await manager.copy_range("src/", "dst/") == 1501
    copied = {e.key: e async for e in manager.range("dst/")}
    assert list(copied) == [f"dst/{n[4:]}" for n in names] + ["dst/extra", "dst/ttl"]
    assert copied["dst/00042"].value == {"name": "src/00042"}
    assert copied["dst/ttl"].value == {"blob": b"\x00"}
    source = await manager.get_entry("src/ttl")
    assert source is not None and copied["dst/ttl"].expires_at == source.expires_at
    assert len(await keys(manager, "src/")) == 1501
    # A target inside the source copies the snapshot once, not its own copies again.
    assert await manager.copy_range("t/", "t/1/again/") == 5
    assert await keys(manager, "t/1/again/") == [f"t/1/again/{k[2:]}" for k in KEYS[:5]]


async def test_bad_range_changes_are_refused_and_change_nothing(manager: StateManager) -> None:
    before = (await manager.get_stats()).revision
    with pytest.raises(InvalidArgumentError) as caught:
        await manager.delete_range()
    assert caught.value.reason == Reason.INVALID_ARGUMENT
    with pytest.raises(InvalidArgumentError):
        await manager.copy_range("t/", "t/")
    with pytest.raises(InvalidArgumentError) as caught:
        await manager.copy_range("t/", "x" * 510)
    assert caught.value.reason == Reason.KEY_TOO_LONG
    with pytest.raises(InvalidArgumentError):
        await manager.delete_range("t/", guard=("bad\n", 1))
    assert (await manager.get_stats()).revision == before


async def test_range_changes_stay_inside_the_tenant(auth_address: str) -> None:
    def config(token: str) -> StateConfig:
        return StateConfig(backend="grpc", address=auth_address, token=token)

    async with StateManager(config("token-a")) as alice, StateManager(config("token-b")) as bob:
        await alice.transaction(put={"s/1": 1, "s/2": 2})
        await bob.transaction(put={"s/1": 10, "s/3": 30})
        assert await alice.copy_range("s/", "c/") == 2
        assert await alice.delete_range("s/") == 2
        assert await keys(alice) == ["c/1", "c/2"]
        assert await keys(bob) == ["s/1", "s/3"]


async def test_the_value_limit_is_a_setting_and_range_pages_respect_it() -> None:
    limit = 1536 * 1024
    server = StatekeeperServer(
        ServerConfig(backend="memory", port=0, shutdown_grace=1.0, max_value_bytes=limit)
    )
    await server.start()
    try:
        config = StateConfig(backend="grpc", address=f"127.0.0.1:{server.port}")
        async with StateManager(config) as manager:
            large = b"d" * (limit - 1024)
            for number in range(5):
                await manager.save(f"doc/{number}", {"blob": large})
            assert (await manager.get("doc/3")) == {"blob": large}
            got = [e async for e in manager.range("doc/", reverse=True)]
            assert [e.key for e in got] == [f"doc/{n}" for n in (4, 3, 2, 1, 0)]
            assert all(e.value == {"blob": large} for e in got)
            with pytest.raises(ResourceExhaustedError) as caught:
                await manager.save("doc/too-big", {"blob": b"d" * limit})
            assert caught.value.reason == Reason.VALUE_TOO_LARGE
    finally:
        await server.stop(0)


async def test_a_failed_guard_names_the_user_key_inside_a_tenant(auth_address: str) -> None:
    config = StateConfig(backend="grpc", address=auth_address, token="token-a")
    async with StateManager(config) as alice:
        await alice.save("s/1", 1)
        with pytest.raises(ConflictError) as caught:
            await alice.delete_range("s/", guard=("lock", 7))
        assert caught.value.metadata["key"] == "lock"
        assert "tenants/" not in caught.value.message and "kv/" not in caught.value.message
