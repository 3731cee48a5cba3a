"""The server as a process and as a gRPC endpoint: concurrency across processes, watch
contract, reconnects, reflection, health and graceful shutdown."""

from __future__ import annotations

import asyncio
import multiprocessing

import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from statekeeper import values
from statekeeper.errors import ConflictError, HistoryCompactedError, Reason, from_rpc_error
from statekeeper.state import StateConfig, StateManager
from statekeeper.v1 import common_pb2, state_service_pb2, state_service_pb2_grpc
from statekeeper_server.config import ServerConfig
from statekeeper_server.engine.storage.memory import MemoryBackend
from statekeeper_server.runtime import Runtime
from statekeeper_server.server import StatekeeperServer

from tests.servers import start_server_process


async def _increment(address: str, times: int) -> None:
    async with StateManager(StateConfig(backend="grpc", address=address)) as manager:
        for _ in range(times):
            while True:
                entry = await manager.get_entry("counter")
                assert entry is not None
                try:
                    await manager.save(
                        "counter", {"n": entry.value["n"] + 1}, expected_revision=entry.mod_revision
                    )
                    break
                except ConflictError:
                    continue


def _increment_process(address: str, times: int) -> None:
    asyncio.run(_increment(address, times))


async def test_four_processes_increment_one_counter_exactly() -> None:
    server = start_server_process("--backend", "memory")
    try:
        async with StateManager(StateConfig(backend="grpc", address=server.address)) as manager:
            await manager.save("counter", {"n": 0})
            context = multiprocessing.get_context("spawn")
            workers = [
                context.Process(target=_increment_process, args=(server.address, 250))
                for _ in range(4)
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                await asyncio.to_thread(worker.join, 120)
            assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
            assert await manager.get("counter") == {"n": 1000}
    finally:
        server.terminate()


async def test_watch_from_compacted_revision_gets_explicit_signal() -> None:
    runtime = Runtime(MemoryBackend(history_revisions=4))
    server = StatekeeperServer(ServerConfig(backend="memory", port=0), runtime)
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = state_service_pb2_grpc.StateServiceStub(channel)
            for index in range(20):
                await stub.Save(
                    state_service_pb2.SaveRequest(
                        key=f"k{index}", value=values.document_to_wire({"i": index})
                    )
                )
            responses = [
                r async for r in stub.Watch(state_service_pb2.WatchRequest(start_revision=1))
            ]
        assert len(responses) == 1
        assert responses[0].canceled
        assert responses[0].compact_revision > 1
        assert "compacted" in responses[0].cancel_reason
        async with StateManager(StateConfig(backend="grpc", address=f"127.0.0.1:{port}")) as m:
            with pytest.raises(HistoryCompactedError) as caught:
                await anext(m.watch("*", start_revision=1))
            assert caught.value.compact_revision == responses[0].compact_revision
            # Watching from the signalled revision works.
            changes = m.watch("*", start_revision=caught.value.compact_revision)
            first = await anext(changes)
            assert first.revision == caught.value.compact_revision
            await changes.aclose()
    finally:
        await server.stop(0)


async def test_subscription_survives_a_server_restart_without_loss_or_repeat() -> None:
    runtime = Runtime(MemoryBackend())
    first = StatekeeperServer(ServerConfig(backend="memory", port=0), runtime)
    port = await first.start()
    address = f"127.0.0.1:{port}"
    received: list[str] = []
    six = asyncio.Event()

    def on_change(key: str, old: object, new: object) -> None:
        received.append(key)
        if len(received) == 6:
            six.set()

    async with (
        StateManager(StateConfig(backend="grpc", address=address)) as watcher,
        StateManager(StateConfig(backend="memory")) as _unused,
    ):
        watcher.subscribe("s:*", on_change)
        for index in range(2):
            await watcher.save(f"s:{index}", {})
        await first.stop(0)
        # While the server is down, writes land in the store through the engine directly.
        engine = runtime.servicers["statekeeper.v1.StateService"].engine
        for index in range(2, 4):
            await engine.save(f"s:{index}", values.pack({}))
        second = StatekeeperServer(ServerConfig(backend="memory", port=port), runtime)
        await second.start()
        try:
            for index in range(4, 6):
                await watcher.save(f"s:{index}", {})
            await asyncio.wait_for(six.wait(), 30)
        finally:
            await second.stop(0)
    assert received == [f"s:{i}" for i in range(6)]


async def test_json_form_reads_integral_numbers_as_integers(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = state_service_pb2_grpc.StateServiceStub(channel)
        document = json_format.Parse(
            '{"count": 3, "ratio": 0.5, "tags": ["a"]}', struct_pb2.Value()
        )
        await stub.Save(
            state_service_pb2.SaveRequest(key="json", value=common_pb2.Value(json=document))
        )
        exact = await stub.Get(
            state_service_pb2.GetRequest(
                key="json", value_encoding=common_pb2.VALUE_ENCODING_MSGPACK
            )
        )
        as_json = await stub.Get(state_service_pb2.GetRequest(key="json"))
    value = values.unpack(exact.kv.value.msgpack)
    assert value == {"count": 3, "ratio": 0.5, "tags": ["a"]}
    assert type(value["count"]) is int
    assert json_format.MessageToDict(as_json.kv.value) == {
        "json": {"count": 3.0, "ratio": 0.5, "tags": ["a"]}
    }


async def test_errors_carry_error_info_on_the_wire(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = state_service_pb2_grpc.StateServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Get(state_service_pb2.GetRequest(key="missing"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert from_rpc_error(caught.value).reason == Reason.KEY_NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListKeys(state_service_pb2.ListKeysRequest(page_token="garbage!"))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert from_rpc_error(caught.value).reason == Reason.INVALID_PAGE_TOKEN
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Save(state_service_pb2.SaveRequest(key="no-value"))
        assert from_rpc_error(caught.value).reason == Reason.INVALID_VALUE
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Save(
                state_service_pb2.SaveRequest(
                    key="bad-msgpack", value=common_pb2.Value(msgpack=b"\xc1")
                )
            )
        assert from_rpc_error(caught.value).reason == Reason.INVALID_VALUE


def _reflected_services(address: str) -> list[str]:
    with grpc.insecure_channel(address) as channel:
        return sorted(ProtoReflectionDescriptorDatabase(channel).get_services())


async def test_reflection_and_health(address: str) -> None:
    services = await asyncio.to_thread(_reflected_services, address)
    assert "statekeeper.v1.StateService" in services
    assert "grpc.health.v1.Health" in services
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "statekeeper.v1.StateService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_sigterm_drains_gracefully() -> None:
    server = start_server_process("--backend", "memory", "--shutdown-grace", "5")
    async with grpc.aio.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        health_updates = health.Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await anext(aiter(health_updates))).status == health_pb2.HealthCheckResponse.SERVING
        stub = state_service_pb2_grpc.StateServiceStub(channel)
        watch = stub.Watch(state_service_pb2.WatchRequest(pattern="*"))
        watch_messages = aiter(watch)
        assert (await anext(watch_messages)).created
        server.process.send_signal(15)
        status = await anext(aiter(health_updates))
        assert status.status == health_pb2.HealthCheckResponse.NOT_SERVING
        rest = [message async for message in watch_messages]
        assert rest and rest[-1].canceled and rest[-1].cancel_reason.startswith("server_shutdown:")
        assert await watch.code() == grpc.StatusCode.OK
    assert await asyncio.to_thread(server.process.wait, 30) == 0
