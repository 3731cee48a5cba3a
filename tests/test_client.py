"""The Python client's plumbing: managers built anywhere (bound to an event loop on first use),
typed errors for every gRPC status, timeouts, shared transports, lazy imports, and the one
watch loop's reporting of a subscription that ends."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from statekeeper import errors, values
from statekeeper.errors import DeadlineExceededError, InvalidArgumentError, StateKeeperError
from statekeeper.state import (
    StateConfig,
    StateManager,
    WorkflowState,
    WorkflowStateManager,
    WorkflowStatus,
)
from statekeeper.transport import ConnectionOptions, Transport
from statekeeper.v1 import common_pb2
from statekeeper.v1 import state_service_pb2 as pb
from statekeeper_server.config import ServerConfig
from statekeeper_server.engine.storage.memory import MemoryBackend
from statekeeper_server.runtime import Runtime
from statekeeper_server.server import StatekeeperServer

from tests.programs import run_program
from tests.servers import ServerProcess

PROGRAM = Path(__file__).with_name("binding_program.py")
ROOT = Path(__file__).parent.parent

# -- managers built anywhere ----------------------------------------------------------------


@pytest.mark.parametrize("persistence", ["memory", "file", "redis", "grpc"])
async def test_every_manager_is_built_at_module_level_and_used_in_successive_runs(
    persistence: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings: dict[str, Any] = {"persistence": persistence}
    if persistence == "file":
        settings |= {"file_path": str(tmp_path / "store"), "backend_path": str(tmp_path / "b")}
    elif persistence == "redis":
        settings["redis_url"] = request.getfixturevalue("redis_url")
    elif persistence == "grpc":
        (server,) = request.getfixturevalue("spawn_servers")(1, "--backend", "memory")
        settings["address"] = server.address
    output = await run_program(PROGRAM, json.dumps(settings), cwd=tmp_path)
    assert "every manager worked across event loops" in output
    assert "Traceback" not in output


#: A manager of this module, made before any event loop exists; the tests below use it in
#: their own (function-scoped) loops.
MODULE_MANAGER = StateManager(StateConfig(backend="memory"))
MODULE_WORKFLOWS = WorkflowStateManager("memory")
WRITTEN: list[str] = []


@pytest.mark.parametrize("run", range(3))
async def test_a_module_level_manager_keeps_its_data_across_test_loops(run: int) -> None:
    for key in WRITTEN:
        assert await MODULE_MANAGER.get(key) == {"run": key}
        assert await MODULE_WORKFLOWS.get_status(key) is WorkflowStatus.PENDING
    key = f"run-{run}"
    await MODULE_MANAGER.save(key, {"run": key})
    await MODULE_WORKFLOWS.create(WorkflowState(workflow_id=key))
    WRITTEN.append(key)


async def test_a_remote_manager_made_in_one_loop_works_in_the_next(
    spawn_servers: Any,
) -> None:
    (server,) = spawn_servers(1, "--backend", "memory")

    def in_thread() -> Any:
        manager = asyncio.run(make(server))
        asyncio.run(manager.save("k", 1))
        return asyncio.run(manager.get("k"))

    assert await asyncio.to_thread(in_thread) == 1


async def make(server: ServerProcess) -> StateManager:
    """A remote manager made inside a running loop."""
    return StateManager(StateConfig(backend="grpc", address=server.address))


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code", list(grpc.StatusCode), ids=lambda code: code.name)
def test_every_status_code_has_a_typed_error(code: grpc.StatusCode) -> None:
    failure = grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=f"failed with {code.name}"
    )
    error = errors.from_rpc_error(failure)
    if code is grpc.StatusCode.OK:
        assert type(error) is errors.InternalError
        return
    assert type(error).code is code
    assert isinstance(error, StateKeeperError)
    assert error.message == f"failed with {code.name}"
    others = {c for c in grpc.StatusCode if c not in (code, grpc.StatusCode.OK)}
    assert not any(isinstance(error, errors.error_class(other)) for other in others) or (
        # UNKNOWN and DATA_LOSS are kinds of internal error
        code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS)
    )


def test_a_deadline_is_a_timeout_error() -> None:
    error = errors.error_class(grpc.StatusCode.DEADLINE_EXCEEDED)("late")
    assert isinstance(error, TimeoutError) and isinstance(error, StateKeeperError)


class _HoldingHandler(grpc.GenericRpcHandler):
    """Answers no call until ``released`` is set: a server that is slower than any timeout."""

    def __init__(self) -> None:
        self.released = asyncio.Event()

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        async def hold(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            await self.released.wait()
            return b""

        return grpc.unary_unary_rpc_method_handler(hold)


async def test_a_remote_call_past_its_timeout_raises_a_timeout_error() -> None:
    holding = _HoldingHandler()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((holding,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    manager = StateManager(StateConfig(backend="grpc", address=f"127.0.0.1:{port}", timeout=0.2))
    try:
        with pytest.raises(TimeoutError) as caught:
            await manager.save("k", "v")
        assert isinstance(caught.value, DeadlineExceededError)
    finally:
        await manager.close()
        holding.released.set()
        await server.stop(None)


async def test_an_embedded_call_past_its_timeout_raises_a_timeout_error(tmp_path: Path) -> None:
    # A file store acknowledges a save only after its log write: the call waits, and a
    # timeout of a microsecond passes first.
    config = StateConfig(backend="file", file_path=str(tmp_path / "s"), timeout=1e-6)
    manager = StateManager(config)
    with pytest.raises(DeadlineExceededError) as caught:
        await manager.save("k", "v")
    assert "timeout" in caught.value.message
    await manager.close()


# -- shared transports ----------------------------------------------------------------------


async def test_closing_one_manager_never_breaks_another(connection: ConnectionOptions) -> None:
    owner = StateManager(StateConfig(backend=connection.persistence, address=connection.address))
    sharing = WorkflowStateManager(transport=owner.transport)
    second_state = StateManager(transport=owner.transport)
    await owner.save("k", 1)
    await second_state.close()  # not its transport: nothing is closed
    assert await owner.get("k") == 1
    assert await sharing.list_workflows() == []
    await owner.close()  # its own transport: the others open it again on their next call
    assert await second_state.get("k") == 1
    assert await sharing.list_workflows() == []
    other = StateManager(StateConfig(backend=connection.persistence, address=connection.address))
    await other.close()
    assert await second_state.get("k") == 1
    await owner.close()


async def test_a_transport_shared_by_the_caller_stays_open(address: str) -> None:
    transport = Transport(ConnectionOptions(persistence="grpc", address=address))
    first = StateManager(transport=transport)
    second = StateManager(transport=transport)
    await first.save("k", 1)
    await first.close()
    assert await second.get("k") == 1
    await transport.close()


# -- lazy imports ---------------------------------------------------------------------------


def test_importing_the_api_loads_no_server_backend() -> None:
    code = (
        "import sys, statekeeper.state\n"
        "heavy = ('statekeeper_server', 'redis', 'zstandard')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
        "from statekeeper.state import RedisBackend\n"
        "print('redis' in sys.modules, RedisBackend.__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.splitlines() == ["[]", "True RedisBackend"]


# -- the watch loop -------------------------------------------------------------------------


async def test_a_failed_subscription_is_reported_to_its_error_callback(
    connection: ConnectionOptions, caplog: pytest.LogCaptureFixture
) -> None:
    manager = StateManager(StateConfig(backend=connection.persistence, address=connection.address))
    reported: asyncio.Future[StateKeeperError] = asyncio.get_running_loop().create_future()
    calls: list[Any] = []

    async def on_error(error: StateKeeperError) -> None:
        reported.set_result(error)

    manager.subscribe("bad[", lambda *change: calls.append(change), on_error=on_error)
    error = await asyncio.wait_for(reported, 30)
    assert isinstance(error, InvalidArgumentError) and error.reason == "INVALID_PATTERN"
    assert "the subscription to 'bad['" in error.message
    assert any(r.levelno == logging.ERROR and "bad[" in r.getMessage() for r in caplog.records)
    await manager.save("k", 1)  # reported to the callback: the manager's calls go on
    assert calls == []
    await manager.close()


async def test_a_failed_subscription_without_callback_fails_the_next_call(
    connection: ConnectionOptions,
) -> None:
    manager = StateManager(StateConfig(backend=connection.persistence, address=connection.address))
    manager.subscribe("bad[", lambda *change: None)
    with pytest.raises(InvalidArgumentError) as caught:
        await manager.save("k", 1)  # waits for the subscription to start: it fails
        await manager.save("k", 2)
    assert "the subscription to 'bad['" in caught.value.message
    assert await manager.get("k") in (None, 1)  # raised once; the manager goes on
    # Another subscription is not hit by the failure of the first.
    received: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    manager.subscribe("good", lambda key, old, new: received.set_result(new))
    await manager.save("good", 3)
    assert await asyncio.wait_for(received, 30) == 3
    await manager.close()


def test_a_subscription_made_outside_a_loop_starts_with_the_next_call() -> None:
    manager = StateManager(StateConfig(backend="memory"))
    seen: list[tuple[str, Any, Any]] = []
    waiting: list[tuple[int, asyncio.Future[None]]] = []

    def on_change(key: str, old: Any, new: Any) -> None:
        seen.append((key, old, new))
        for count, future in waiting:
            if len(seen) >= count and not future.done():
                future.set_result(None)

    async def received(count: int) -> None:
        future = asyncio.get_running_loop().create_future()
        waiting[:] = [(count, future)]
        if len(seen) < count:
            await asyncio.wait_for(future, 30)

    manager.subscribe("s:*", on_change)

    async def first() -> None:
        await manager.save("s:1", 1)  # the subscription starts before this write
        await manager.save("s:1", 2)
        await received(2)

    async def second() -> None:
        await manager.save("s:1", 3)  # the subscription follows the manager into this loop
        await received(3)
        await manager.close()

    asyncio.run(first())
    asyncio.run(second())
    assert seen == [("s:1", None, 1), ("s:1", 1, 2), ("s:1", 2, 3)]


def put_event(key: str, revision: int, value: int) -> pb.Event:
    """A PUT event as the server sends it."""
    kv = common_pb2.KeyValue(
        key=key,
        mod_revision=revision,
        create_revision=revision,
        version=1,
        value=common_pb2.Value(msgpack=bytes([value])),
    )
    return pb.Event(type=pb.EVENT_TYPE_PUT, kv=kv)


def test_a_revision_split_in_fragments_is_delivered_whole_and_resumed_whole() -> None:
    manager = StateManager(StateConfig(backend="memory"))
    feed = manager._feed("*", 0)
    assert feed.request().start_revision == 0
    feed.receive(pb.WatchResponse(created=True, revision=4))
    feed.commit()
    assert feed.request().start_revision == 5
    fragment = pb.WatchResponse(revision=5, events=[put_event("a", 5, 1)], fragment=True)
    assert feed.receive(fragment) == []
    feed.commit()
    # The stream breaks here: the partial revision is dropped and asked for again.
    assert feed.request().start_revision == 5
    assert feed.receive(fragment) == []
    feed.commit()
    changes = feed.receive(pb.WatchResponse(revision=5, events=[put_event("b", 5, 2)]))
    assert [(change.key, change.new_value) for change in changes] == [("a", 1), ("b", 2)]
    feed.commit()
    assert feed.request().start_revision == 6
    # A progress notification moves the resume point without changes.
    assert feed.receive(pb.WatchResponse(revision=9, progress_notify=True)) == []
    feed.commit()
    assert feed.request().start_revision == 10


async def test_a_watch_resumes_after_the_server_goes_away_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="statekeeper.state")
    runtime = Runtime(MemoryBackend())
    first = StatekeeperServer(ServerConfig(backend="memory", port=0), runtime)
    port = await first.start()
    async with StateManager(StateConfig(backend="grpc", address=f"127.0.0.1:{port}")) as manager:
        changes = manager.watch("w:*", start_revision=await manager.save("w:0", 0))
        assert (await asyncio.wait_for(anext(changes), 30)).key == "w:0"
        await first.stop(0)
        engine = runtime.servicers["statekeeper.v1.StateService"].engine
        await engine.save("w:1", values.pack(1))  # while no server is up
        second = StatekeeperServer(ServerConfig(backend="memory", port=port), runtime)
        await second.start()
        try:
            await manager.save("w:2", 2)
            seen = [(await asyncio.wait_for(anext(changes), 30)).key for _ in range(2)]
        finally:
            await changes.aclose()
            await second.stop(0)
    assert seen == ["w:1", "w:2"]
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "statekeeper.state" and r.levelno == logging.WARNING
    ]
    assert any("watch of 'w:*' interrupted" in m and "reconnecting" in m for m in warnings)
    assert any("watch of 'w:*': resumed" in r.getMessage() for r in caplog.records)
