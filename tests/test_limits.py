"""Every limit answers RESOURCE_EXHAUSTED with a clear message, and the server stays healthy."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from statekeeper.errors import Reason, ResourceExhaustedError, from_rpc_error
from statekeeper.state import StateConfig, StateManager
from statekeeper.v1 import common_pb2, state_service_pb2_grpc, workflow_service_pb2_grpc
from statekeeper.v1 import state_service_pb2 as pb
from statekeeper.v1 import workflow_service_pb2 as wf
from statekeeper_server.config import ServerConfig
from statekeeper_server.server import StatekeeperServer

#: Channels of one process share connections unless told otherwise.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


@pytest.fixture
async def small_server() -> AsyncIterator[StatekeeperServer]:
    server = StatekeeperServer(
        ServerConfig(
            backend="memory",
            port=0,
            max_message_bytes=64 * 1024,
            max_value_bytes=1024,
            max_transaction_operations=4,
            max_watchers=3,
            max_streams_per_connection=2,
        )
    )
    await server.start()
    yield server
    await server.stop(0)


def manager(server: StatekeeperServer) -> StateManager:
    return StateManager(StateConfig(backend="grpc", address=f"127.0.0.1:{server.port}"))


async def assert_healthy(server: StatekeeperServer) -> None:
    async with manager(server) as client:
        await client.save("still-ok", {"ok": True})
        assert await client.get("still-ok") == {"ok": True}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        status = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert status.status == health_pb2.HealthCheckResponse.SERVING


async def test_message_larger_than_the_limit(small_server: StatekeeperServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{small_server.port}") as channel:
        stub = state_service_pb2_grpc.StateServiceStub(channel)
        request = pb.SaveRequest(key="big", value=common_pb2.Value(msgpack=b"\xc4" * 100_000))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Save(request)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in (raised.value.details() or "")
    await assert_healthy(small_server)


async def test_value_larger_than_the_limit(small_server: StatekeeperServer) -> None:
    async with manager(small_server) as client:
        with pytest.raises(ResourceExhaustedError) as raised:
            await client.save("big", {"text": "x" * 2000})
        assert raised.value.reason == Reason.VALUE_TOO_LARGE
        assert "limit is 1024" in raised.value.message
        assert await client.get("big") is None
    await assert_healthy(small_server)


async def test_transaction_with_too_many_keys(small_server: StatekeeperServer) -> None:
    async with manager(small_server) as client:
        with pytest.raises(ResourceExhaustedError) as raised:
            await client.transaction(put={f"k{i}": {"i": i} for i in range(5)})
        assert raised.value.reason == Reason.TOO_MANY_OPERATIONS
        assert "limit is 4" in raised.value.message
        assert await client.list_keys("k*") == []
    await assert_healthy(small_server)


async def open_watch(stub: state_service_pb2_grpc.StateServiceStub) -> grpc.aio.UnaryStreamCall:
    call = stub.Watch(pb.WatchRequest(pattern="*"))
    first = await anext(aiter(call))
    assert first.created
    return call


async def watch_error(stub: state_service_pb2_grpc.StateServiceStub) -> grpc.aio.AioRpcError:
    call = stub.Watch(pb.WatchRequest(pattern="*"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await anext(aiter(call))
    return raised.value


async def test_streams_per_connection(small_server: StatekeeperServer) -> None:
    address = f"127.0.0.1:{small_server.port}"
    async with grpc.aio.insecure_channel(address, options=OWN_CONNECTION) as channel:
        stub = state_service_pb2_grpc.StateServiceStub(channel)
        calls = [await open_watch(stub), await open_watch(stub)]
        error = await watch_error(stub)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "too many streams on this connection" in (error.details() or "")
        # Another connection may still watch; closing a stream frees its slot.
        async with grpc.aio.insecure_channel(address, options=OWN_CONNECTION) as other:
            other_call = await open_watch(state_service_pb2_grpc.StateServiceStub(other))
            other_call.cancel()
        calls[0].cancel()
        await calls[0].code()
        replacement = await open_watch(stub)
        replacement.cancel()
        calls[1].cancel()
    await assert_healthy(small_server)


async def test_watchers_in_the_whole_server(small_server: StatekeeperServer) -> None:
    address = f"127.0.0.1:{small_server.port}"
    channels = [grpc.aio.insecure_channel(address, options=OWN_CONNECTION) for _ in range(4)]
    try:
        calls = []
        for channel in channels[:3]:
            calls.append(await open_watch(state_service_pb2_grpc.StateServiceStub(channel)))
        error = await watch_error(state_service_pb2_grpc.StateServiceStub(channels[3]))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "too many watchers" in (error.details() or "")
        await assert_healthy(small_server)
        calls[0].cancel()
        await calls[0].code()
        again = await open_watch(state_service_pb2_grpc.StateServiceStub(channels[3]))
        again.cancel()
        for call in calls[1:]:
            call.cancel()
    finally:
        for channel in channels:
            await channel.close()


SAVE = pb.SaveRequest(key="a", value=common_pb2.Value(msgpack=b"\x80"))


async def test_http2_concurrent_streams_setting_queues_extra_calls() -> None:
    """grpc.max_concurrent_streams bounds the calls of one connection at the transport level:
    with a limit of 1 and a watch open, a unary call on the same connection waits (here until
    its deadline), while other connections are served."""
    server = StatekeeperServer(ServerConfig(backend="memory", port=0, max_concurrent_streams=1))
    await server.start()
    address = f"127.0.0.1:{server.port}"
    try:
        async with grpc.aio.insecure_channel(address, options=OWN_CONNECTION) as channel:
            stub = state_service_pb2_grpc.StateServiceStub(channel)
            watch = await open_watch(stub)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.Save(SAVE, timeout=0.5)
            assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            async with grpc.aio.insecure_channel(address, options=OWN_CONNECTION) as other:
                await state_service_pb2_grpc.StateServiceStub(other).Save(SAVE)
            watch.cancel()
            await watch.code()
            await stub.Save(SAVE, timeout=30)
    finally:
        await server.stop(0)


async def test_a_workflow_history_over_the_message_limit_points_to_its_pages(
    small_server: StatekeeperServer,
) -> None:
    """GetWorkflow of a history larger than one message is RESOURCE_EXHAUSTED
    (RESPONSE_TOO_LARGE) saying what to call instead, and that works."""
    result = common_pb2.Value(msgpack=b"\xda\x03\x84" + b"r" * 900)  # a 900-character string
    async with grpc.aio.insecure_channel(f"127.0.0.1:{small_server.port}") as channel:
        stub = workflow_service_pb2_grpc.WorkflowServiceStub(channel)
        workflow = wf.WorkflowState(workflow_id="long")
        await stub.CreateWorkflow(wf.CreateWorkflowRequest(workflow=workflow))
        for number in range(100):  # about 90 KB of steps
            step = wf.StepState(step_number=number, status=wf.STEP_STATUS_COMPLETED, result=result)
            await stub.UpdateStep(wf.UpdateStepRequest(workflow_id="long", step=step))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.GetWorkflow(wf.GetWorkflowRequest(workflow_id="long", include_steps=True))
        error = from_rpc_error(raised.value)
        assert isinstance(error, ResourceExhaustedError)
        assert error.reason == Reason.RESPONSE_TOO_LARGE
        assert "ListWorkflowSteps" in error.message and error.metadata["steps"] == "100"
        alone = await stub.GetWorkflow(wf.GetWorkflowRequest(workflow_id="long"))
        assert alone.workflow.current_step == 99 and not alone.workflow.steps
        numbers, token = [], ""
        while True:
            page = await stub.ListWorkflowSteps(
                wf.ListWorkflowStepsRequest(workflow_id="long", page_size=40, page_token=token)
            )
            numbers += [step.step_number for step in page.steps]
            token = page.next_page_token
            if not token:
                break
    assert numbers == list(range(99, -1, -1))
    await assert_healthy(small_server)
