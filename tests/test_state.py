"""StateService behaviour through the Python API, in embedded and remote mode."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from statekeeper.errors import (
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    Reason,
    ResourceExhaustedError,
    StateKeeperError,
)
from statekeeper.state import ChangeType, StateConfig, StateManager
from statekeeper.transport import Coalescer, ConnectionOptions

EXACT_VALUE = {"n": 1, "x": 0.5, "big": 2**60, "none": None, "nested": {"l": [1, "a", True]}}


def batched(manager: StateManager) -> Coalescer:
    """Make every save, get, delete and transaction of a remote ``manager`` go through the
    Batch RPC (even a lone call, as a batch of one); returns its channel's coalescer."""
    coalescer = manager.transport.coalescer("statekeeper.v1.StateService", manager._coalescer)
    assert coalescer is not None
    coalescer.lone_in_batch = True
    return coalescer


@pytest.fixture(params=["embedded", "remote", "remote-batched"])
def mode(request: pytest.FixtureRequest) -> str:
    """The modes of this suite: embedded, remote with every call sent alone, and remote with
    every call sent through the Batch RPC (which must give the same results and errors)."""
    return str(request.param)


@pytest.fixture
async def manager(connection: ConnectionOptions, mode: str) -> AsyncIterator[StateManager]:
    """A StateManager in the current mode."""
    config = StateConfig(
        backend=connection.persistence,
        address=connection.address,
        batching=mode == "remote-batched",
    )
    async with StateManager(config) as instance:
        if mode == "remote-batched":
            batched(instance)
        yield instance


def types_of(value: object) -> object:
    """The value with every leaf replaced by its type, to compare int vs float exactly."""
    if isinstance(value, dict):
        return {k: types_of(v) for k, v in value.items()}
    if isinstance(value, list):
        return [types_of(v) for v in value]
    return type(value)


async def test_values_round_trip_exactly(manager: StateManager) -> None:
    await manager.save("exact", EXACT_VALUE)
    value = await manager.get("exact")
    assert value == EXACT_VALUE
    assert types_of(value) == types_of(EXACT_VALUE)
    assert type(value["n"]) is int and type(value["x"]) is float


async def test_get_missing_key_returns_none_and_default(manager: StateManager) -> None:
    assert await manager.get("missing") is None
    assert await manager.get("missing", {"d": 1}) == {"d": 1}
    assert await manager.get_entry("missing") is None


async def test_revisions_and_compare_and_set(manager: StateManager) -> None:
    first = await manager.save("cas", {"v": 1}, expected_revision=0)
    entry = await manager.get_entry("cas")
    assert entry is not None
    assert (entry.mod_revision, entry.create_revision, entry.version) == (first, first, 1)
    second = await manager.save("cas", {"v": 2}, expected_revision=first)
    assert second > first
    with pytest.raises(ConflictError) as caught:
        await manager.save("cas", {"v": 3}, expected_revision=first)
    assert caught.value.reason == Reason.REVISION_CONFLICT
    assert caught.value.metadata["actual_revision"] == str(second)
    with pytest.raises(ConflictError):
        await manager.save("cas", {"v": 3}, expected_revision=0)
    assert await manager.get("cas") == {"v": 2}
    assert await manager.delete("cas", expected_revision=second)
    assert not await manager.delete("cas")


async def test_update_is_an_rfc7396_merge(manager: StateManager) -> None:
    await manager.save("doc", {"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]})
    merged = await manager.update("doc", {"b": {"c": None, "e": 4}, "l": [3], "z": "new"})
    assert merged == {"a": 1, "b": {"d": 3, "e": 4}, "l": [3], "z": "new"}
    assert await manager.get("doc") == merged


async def test_transaction_is_all_or_nothing(manager: StateManager) -> None:
    task_rev = await manager.save("task:1", {"state": "pending"})
    agent_rev = await manager.save("agent:1", {"state": "idle"})
    revision = await manager.transaction(
        compare={"task:1": task_rev, "agent:1": agent_rev},
        put={"task:1": {"state": "assigned"}, "agent:1": {"state": "busy"}},
        delete=["queue:head"],
    )
    task = await manager.get_entry("task:1")
    agent = await manager.get_entry("agent:1")
    assert task is not None and agent is not None
    assert task.mod_revision == agent.mod_revision == revision
    with pytest.raises(ConflictError):
        await manager.transaction(
            compare={"task:1": task_rev},
            put={"task:1": {"state": "stolen"}, "agent:2": {"state": "busy"}},
        )
    assert await manager.get("task:1") == {"state": "assigned"}
    assert await manager.get("agent:2") is None


async def test_list_keys_glob_and_pagination(manager: StateManager) -> None:
    for index in range(25):
        await manager.save(f"agent:{index:02d}", {"i": index})
    await manager.save("agent-x", {})
    await manager.save("tool:a", {})
    keys = [key async for key in manager.iter_keys("agent:*", page_size=10)]
    assert keys == [f"agent:{i:02d}" for i in range(25)]
    assert await manager.list_keys("agent:0?") == [f"agent:0{i}" for i in range(10)]
    assert await manager.list_keys("agent:[12]0") == ["agent:10", "agent:20"]
    assert await manager.list_keys("agent[!:]x") == ["agent-x"]
    assert await manager.list_keys("*:a") == ["tool:a"]


async def test_key_prefix_isolates_managers(connection: ConnectionOptions) -> None:
    transport_config = {"backend": connection.persistence, "address": connection.address}
    async with (
        StateManager(StateConfig(key_prefix="app1:", **transport_config)) as one,  # type: ignore[arg-type]
        StateManager(StateConfig(key_prefix="app2:", **transport_config)) as two,  # type: ignore[arg-type]
    ):
        await one.save("k", {"app": 1})
        await two.save("k", {"app": 2})
        assert await one.get("k") == {"app": 1}
        assert await one.list_keys("*") == ["k"]
        assert await two.get("k") == {"app": 2}


async def test_watch_iterator_delivers_changes_in_order(manager: StateManager) -> None:
    start = await manager.save("w:setup", {})
    changes = manager.watch("w:*", start_revision=start + 1)
    await manager.save("w:a", {"v": 1})
    await manager.update("w:a", {"v": 2})
    await manager.save("other", {})
    await manager.delete("w:a")
    received = [await anext(changes) for _ in range(3)]
    await changes.aclose()
    assert [(c.type, c.key, c.old_value, c.new_value) for c in received] == [
        (ChangeType.PUT, "w:a", None, {"v": 1}),
        (ChangeType.PUT, "w:a", {"v": 1}, {"v": 2}),
        (ChangeType.DELETE, "w:a", {"v": 2}, None),
    ]
    assert received[0].revision < received[1].revision < received[2].revision


async def test_watch_resumes_exactly_after_a_dropped_stream(manager: StateManager) -> None:
    base = await manager.save("r:0", {"i": 0})
    first = manager.watch("r:*", start_revision=base + 1)
    for index in range(1, 4):
        await manager.save(f"r:{index}", {"i": index})
    seen = [await anext(first) for _ in range(2)]
    await first.aclose()  # the stream drops after revision R
    last = seen[-1].revision
    for index in range(4, 7):
        await manager.save(f"r:{index}", {"i": index})
    resumed = manager.watch("r:*", start_revision=last + 1)
    rest = [await anext(resumed) for _ in range(4)]
    await resumed.aclose()
    keys = [c.key for c in seen + rest]
    assert keys == [f"r:{i}" for i in range(1, 7)]
    revisions = [c.revision for c in seen + rest]
    assert revisions == sorted(set(revisions))


async def test_ttl_expiry_hides_key_and_emits_event(manager: StateManager) -> None:
    start = await manager.save("ttl:keep", {})
    changes = manager.watch("ttl:*", start_revision=start + 1)
    await manager.save("ttl:gone", {"v": 1}, ttl=0.3)
    put = await anext(changes)
    assert put.type is ChangeType.PUT
    expired = await asyncio.wait_for(anext(changes), 10)
    await changes.aclose()
    assert (expired.type, expired.key, expired.old_value) == (
        ChangeType.EXPIRE,
        "ttl:gone",
        {"v": 1},
    )
    assert await manager.get("ttl:gone") is None
    assert await manager.list_keys("ttl:*") == ["ttl:keep"]
    entry = await manager.get_entry("ttl:keep")
    assert entry is not None and entry.expires_at is None


async def test_default_ttl_from_config(connection: ConnectionOptions) -> None:
    config = StateConfig(backend=connection.persistence, address=connection.address, ttl=3600)
    async with StateManager(config) as manager:
        await manager.save("with-default-ttl", {})
        entry = await manager.get_entry("with-default-ttl")
        assert entry is not None and entry.expires_at is not None


BAD_CALLS = [
    ("empty key", lambda m: m.save("", {}), InvalidArgumentError, Reason.INVALID_KEY),
    ("long key", lambda m: m.save("k" * 513, {}), InvalidArgumentError, Reason.KEY_TOO_LONG),
    ("control key", lambda m: m.save("a\nb", {}), InvalidArgumentError, Reason.INVALID_KEY),
    (
        "bad pattern",
        lambda m: m.list_keys("agent:[abc"),
        InvalidArgumentError,
        Reason.INVALID_PATTERN,
    ),
    (
        "oversized value",
        lambda m: m.save("big", {"blob": "x" * (1024 * 1024 + 1)}),
        ResourceExhaustedError,
        Reason.VALUE_TOO_LARGE,
    ),
    ("negative ttl", lambda m: m.save("neg", {}, ttl=-1), InvalidArgumentError, Reason.INVALID_TTL),
    ("update missing", lambda m: m.update("nope", {"a": 1}), NotFoundError, Reason.KEY_NOT_FOUND),
    (
        "wrong revision",
        lambda m: m.save("existing", {"v": 9}, expected_revision=999_999),
        ConflictError,
        Reason.REVISION_CONFLICT,
    ),
    (
        "wrong revision delete",
        lambda m: m.delete("existing", expected_revision=999_999),
        ConflictError,
        Reason.REVISION_CONFLICT,
    ),
    (
        "negative revision",
        lambda m: m.save("existing", {}, expected_revision=-1),
        InvalidArgumentError,
        Reason.INVALID_REVISION,
    ),
    (
        "duplicate txn key",
        lambda m: m.transaction(put={"a": {}}, delete=["a"]),
        InvalidArgumentError,
        Reason.INVALID_TRANSACTION,
    ),
]


@pytest.mark.parametrize(
    ("name", "call", "error", "reason"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS]
)
async def test_bad_input_is_rejected_and_changes_nothing(
    manager: StateManager, name: str, call, error: type[StateKeeperError], reason: Reason
) -> None:
    await manager.save("existing", {"v": 1})
    before = {key: await manager.get_entry(key) for key in await manager.list_keys("*")}
    with pytest.raises(error) as caught:
        await call(manager)
    assert caught.value.reason == reason
    assert caught.value.code == error.code
    after = {key: await manager.get_entry(key) for key in await manager.list_keys("*")}
    assert after == before


async def test_bad_input_carries_field_violations_over_grpc(address: str) -> None:
    async with StateManager(StateConfig(backend="grpc", address=address)) as manager:
        with pytest.raises(InvalidArgumentError) as caught:
            await manager.save("", {})
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.violations == [("key", "empty")]
