"""The Batch RPC and client-side coalescing: each operation of a batch gets exactly the result
and the error its own RPC would give, and coalesced calls keep their own errors, timeouts and
cancellation (docs/batching.md)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from statekeeper import values
from statekeeper.errors import (
    DeadlineExceededError,
    PermissionDeniedError,
    Reason,
    from_rpc_error,
)
from statekeeper.state import StateConfig, StateManager
from statekeeper.transport import Coalescer
from statekeeper.v1 import state_service_pb2 as pb
from statekeeper.v1 import state_service_pb2_grpc
from statekeeper_server.config import ServerConfig

from tests.test_state import batched

SERVICE = "statekeeper.v1.StateService"
MSGPACK = 2


@pytest.fixture
async def stub(address: str) -> AsyncIterator[Any]:
    """A raw StateService stub on the ``server`` fixture."""
    options = [("grpc.max_receive_message_length", 8 * 1024 * 1024)]
    async with grpc.aio.insecure_channel(address, options=options) as channel:
        yield state_service_pb2_grpc.StateServiceStub(channel)


def doc(value: Any) -> Any:
    """The wire Value of a document (exact form)."""
    return values.document_to_wire(value)


def as_error(status: pb.BatchStatus) -> tuple[int, str, list[bytes]]:
    """A batch status as (code, message, serialized details), to compare with a call's."""
    return status.code, status.message, [d.SerializeToString() for d in status.details]


async def alone(stub: Any, method: str, request: Any) -> tuple[int, str, list[bytes]]:
    """The status a single RPC fails with, in the form of :func:`as_error`."""
    from grpc_status import rpc_status

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(stub, method)(request)
    status = rpc_status.from_call(caught.value)
    assert status is not None
    return status.code, status.message, [d.SerializeToString() for d in status.details]


async def test_each_operation_gets_the_result_and_the_error_of_its_own_rpc(stub: Any) -> None:
    first = await stub.Save(pb.SaveRequest(key="a", value=doc({"n": 1})))
    bad_ttl = pb.SaveRequest(key="t", value=doc(1), ttl=duration_pb2.Duration(seconds=-(10**12)))
    failing = {
        "missing get": ("Get", pb.GetRequest(key="missing")),
        "bad key": ("Save", pb.SaveRequest(key="", value=doc(1))),
        "stale cas": ("Save", pb.SaveRequest(key="a", value=doc(2), expected_revision=0)),
        "bad ttl": ("Save", bad_ttl),
        "stale delete": ("Delete", pb.DeleteRequest(key="a", expected_revision=1_000_000)),
        "duplicate txn": (
            "Transact",
            pb.TransactRequest(
                operations=[
                    pb.Operation(put=pb.PutOperation(key="d", value=doc(1))),
                    pb.Operation(delete=pb.DeleteOperation(key="d")),
                ]
            ),
        ),
    }
    expected = {name: await alone(stub, *call) for name, call in failing.items()}
    operations = [
        pb.BatchOperation(save=pb.SaveRequest(key="b", value=doc({"n": 2}))),
        pb.BatchOperation(get=pb.GetRequest(key="b", value_encoding=MSGPACK)),
        *(pb.BatchOperation(**{method.lower(): request}) for method, request in failing.values()),
        pb.BatchOperation(
            save=pb.SaveRequest(key="a", value=doc(3), expected_revision=first.kv.mod_revision)
        ),
        pb.BatchOperation(delete=pb.DeleteRequest(key="b")),
        pb.BatchOperation(),
    ]
    response = await stub.Batch(pb.BatchRequest(operations=operations))
    results = list(response.results)
    assert len(results) == len(operations)
    saved, read, *errors, swapped, deleted, empty = results
    assert not saved.HasField("status")
    assert saved.save.kv.key == "b" and saved.save.kv.mod_revision == first.kv.mod_revision + 1
    assert read.get.kv.mod_revision == saved.save.kv.mod_revision
    assert values.wire_to_python(read.get.kv.value) == {"n": 2}
    assert read.get.revision >= saved.save.kv.mod_revision
    for name, result in zip(failing, errors, strict=True):
        assert not result.WhichOneof("kind"), name
        assert as_error(result.status) == expected[name], name
    # Each write has a revision of its own, in the order of the batch.
    assert swapped.save.kv.mod_revision == saved.save.kv.mod_revision + 1
    assert deleted.delete.deleted and deleted.delete.revision == swapped.save.kv.mod_revision + 1
    assert empty.status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    got = await stub.Get(pb.GetRequest(key="a", value_encoding=MSGPACK))
    assert values.wire_to_python(got.kv.value) == 3


async def test_a_batch_of_more_than_1000_operations_is_refused_whole(stub: Any) -> None:
    operations = [
        pb.BatchOperation(save=pb.SaveRequest(key=f"k{n}", value=doc(n))) for n in range(1001)
    ]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Batch(pb.BatchRequest(operations=operations))
    error = from_rpc_error(caught.value)
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.reason == Reason.TOO_MANY_OPERATIONS
    stats = await stub.GetStats(pb.GetStatsRequest())
    assert stats.keys == 0


async def test_batches_keep_tenants_apart_and_writes_need_the_write_role(auth_address: str) -> None:
    def manager(token: str) -> StateManager:
        return StateManager(StateConfig(backend="grpc", address=auth_address, token=token))

    async with manager("token-a") as alice, manager("token-b") as bob, manager("reader-a") as carol:
        for each in (alice, bob, carol):
            batched(each)
        await alice.save("shared-name", {"owner": "a"})
        assert await bob.get("shared-name") is None
        await bob.save("shared-name", {"owner": "b"})
        assert await alice.get("shared-name") == {"owner": "a"}
        assert await carol.get("shared-name") == {"owner": "a"}
        with pytest.raises(PermissionDeniedError) as caught:
            await carol.save("shared-name", {"owner": "c"})
        assert caught.value.reason == Reason.PERMISSION_DENIED
        assert "StateService/Save" in caught.value.message
        assert caught.value.metadata == {"required_role": "write"}
        assert await alice.get("shared-name") == {"owner": "a"}


async def test_gets_past_the_message_limit_fail_alone_and_the_client_sends_them_again(
    stub: Any, address: str
) -> None:
    big = "x" * (1024 * 1024 - 64)
    for n in range(6):
        await stub.Save(pb.SaveRequest(key=f"big{n}", value=doc(big)))
    operations = [pb.BatchOperation(get=pb.GetRequest(key=f"big{n}")) for n in range(6)]
    operations.append(pb.BatchOperation(save=pb.SaveRequest(key="small", value=doc(1))))
    response = await stub.Batch(pb.BatchRequest(operations=operations))
    codes = [result.status.code for result in response.results]
    assert codes[0] == 0 and codes[-1] == 0
    refused = [n for n, code in enumerate(codes) if code]
    assert refused and all(codes[n] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0] for n in refused)
    assert response.ByteSize() <= ServerConfig().max_message_bytes
    # The client sends such gets again, alone: every call gets its value.
    async with StateManager(StateConfig(backend="grpc", address=address)) as manager:
        coalescer = batched(manager)
        found = await asyncio.gather(*(manager.get(f"big{n}") for n in range(6)))
        assert found == [big] * 6
        assert coalescer.batches >= 1


async def test_concurrent_calls_are_coalesced_and_a_lone_call_goes_alone(address: str) -> None:
    async with StateManager(StateConfig(backend="grpc", address=address)) as manager:
        for n in range(5):
            await manager.save(f"seq{n}", n)
        coalescer = coalescer_of(manager)
        assert (coalescer.batches, coalescer.batched_calls) == (0, 0)
        revisions = await asyncio.gather(*(manager.save(f"c{n}", {"n": n}) for n in range(40)))
        assert len(set(revisions)) == 40
        assert coalescer.batches >= 1 and coalescer.batched_calls > coalescer.batches
        assert await asyncio.gather(*(manager.get(f"c{n}") for n in range(40))) == [
            {"n": n} for n in range(40)
        ]
        entries = [await manager.get_entry(f"c{n}") for n in range(40)]
        assert [entry.mod_revision for entry in entries if entry] == revisions


async def test_coalescing_off_sends_every_call_alone(address: str) -> None:
    config = StateConfig(backend="grpc", address=address, batching=False)
    async with StateManager(config) as manager:
        assert manager.transport.coalescer(SERVICE, manager._coalescer) is None
        await asyncio.gather(*(manager.save(f"o{n}", n) for n in range(10)))
        assert await manager.list_keys("o*") == sorted(f"o{n}" for n in range(10))


async def test_a_queued_call_that_is_cancelled_is_never_sent(address: str) -> None:
    async with StateManager(StateConfig(backend="grpc", address=address)) as manager:
        coalescer = coalescer_of(manager)
        first = asyncio.create_task(manager.save("first", 1))
        await asyncio.sleep(0)  # one loop turn: the first call is in flight
        queued = asyncio.create_task(manager.save("cancelled", 2))
        await asyncio.sleep(0)  # one loop turn: the second call waits in the queue
        queued.cancel()
        await first
        with pytest.raises(asyncio.CancelledError):
            await queued
        assert await manager.get("cancelled") is None
        assert coalescer.batches == 0


async def test_a_queued_call_keeps_its_own_timeout(address: str) -> None:
    async with StateManager(StateConfig(backend="grpc", address=address)) as manager:
        first = asyncio.create_task(manager.save("first", 1))
        await asyncio.sleep(0)
        short = StateManager(
            StateConfig(backend="grpc", address=address, timeout=0), transport=manager.transport
        )
        with pytest.raises(DeadlineExceededError):
            await short.save("late", 2)
        assert await first > 0


def coalescer_of(manager: StateManager) -> Coalescer:
    """The coalescer of a remote manager's channel."""
    coalescer = manager.transport.coalescer(SERVICE, manager._coalescer)
    assert coalescer is not None
    return coalescer
