"""Every TTL, lease, retention, interval and duration of a request is checked once, by the
engine: a negative or too long value on any path is INVALID_ARGUMENT with its ErrorInfo reason
and a violation naming the field, embedded (the servicers in process, as the Python client's
embedded mode calls them) and over gRPC alike, and the store is left unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from google.protobuf.message import Message
from statekeeper.errors import (
    STATUS_CODES,
    InvalidArgumentError,
    Reason,
    StateKeeperError,
    from_rpc_error,
    from_status,
)
from statekeeper.state import StateConfig, StateManager
from statekeeper.v1 import common_pb2
from statekeeper.v1 import orchestration_service_pb2 as orch_pb
from statekeeper.v1 import speech_service_pb2 as speech_pb
from statekeeper.v1 import state_service_pb2 as state_pb
from statekeeper.v1 import tool_service_pb2 as tool_pb
from statekeeper.v1 import workflow_service_pb2 as wf_pb
from statekeeper_server.engine.limits import MAX_TTL_SECONDS
from statekeeper_server.engine.storage.memory import MemoryBackend
from statekeeper_server.runtime import Runtime
from statekeeper_server.server import StatekeeperServer

from tests.protofuzz import InProcessContext, all_rpcs

DOC = common_pb2.Value(msgpack=b"\x81\xa1n\x01")  # {"n": 1}
#: The bad values every path gets: negative, and one second past the longest accepted.
BAD = {"negative": -5, "too long": MAX_TTL_SECONDS + 1}

STATE = "statekeeper.v1.StateService"
ORCH = "statekeeper.v1.OrchestrationService"
SPEECH = "statekeeper.v1.SpeechService"
TOOLS = "statekeeper.v1.ToolService"
WORKFLOWS = "statekeeper.v1.WorkflowService"


def _retry(**delays: duration_pb2.Duration) -> tool_pb.UpdateRetryStateRequest:
    state = tool_pb.RetryState(execution_id="exec-1", max_attempts=3, **delays)
    return tool_pb.UpdateRetryStateRequest(retry_state=state)


#: (service, method, streams, request for a Duration, reason, the violation's field): every
#: request field that carries a TTL, lease, retention, interval or duration.
PATHS: list[tuple[str, str, bool, Callable[[duration_pb2.Duration], Message], str, str]] = [
    (
        STATE,
        "Save",
        False,
        lambda d: state_pb.SaveRequest(key="k", value=DOC, ttl=d),
        Reason.INVALID_TTL,
        "ttl",
    ),
    (
        STATE,
        "Update",
        False,
        lambda d: state_pb.UpdateRequest(key="k", patch=DOC, ttl=d),
        Reason.INVALID_TTL,
        "ttl",
    ),
    (
        STATE,
        "Transact",
        False,
        lambda d: state_pb.TransactRequest(
            operations=[state_pb.Operation(put=state_pb.PutOperation(key="k", value=DOC, ttl=d))]
        ),
        Reason.INVALID_TTL,
        "operations[0].put.ttl",
    ),
    (
        STATE,
        "Batch",
        False,
        lambda d: state_pb.BatchRequest(
            operations=[
                state_pb.BatchOperation(save=state_pb.SaveRequest(key="k", value=DOC, ttl=d))
            ]
        ),
        Reason.INVALID_TTL,
        "ttl",
    ),
    (
        STATE,
        "Watch",
        True,
        lambda d: state_pb.WatchRequest(pattern="*", progress_interval=d),
        Reason.INVALID_TTL,
        "progress_interval",
    ),
    (
        ORCH,
        "AssignTask",
        False,
        lambda d: orch_pb.AssignTaskRequest(team_id="t", task_id="x", agent_id="a", lease=d),
        Reason.INVALID_TTL,
        "lease",
    ),
    (
        ORCH,
        "ClaimNextTask",
        False,
        lambda d: orch_pb.ClaimNextTaskRequest(team_id="t", agent_id="a", lease=d),
        Reason.INVALID_TTL,
        "lease",
    ),
    (
        ORCH,
        "RenewLease",
        False,
        lambda d: orch_pb.RenewLeaseRequest(team_id="t", task_id="x", agent_id="a", lease=d),
        Reason.INVALID_TTL,
        "lease",
    ),
    (
        ORCH,
        "WatchTeam",
        True,
        lambda d: orch_pb.WatchTeamRequest(team_id="t", progress_interval=d),
        Reason.INVALID_TTL,
        "progress_interval",
    ),
    (
        WORKFLOWS,
        "WatchWorkflow",
        True,
        lambda d: wf_pb.WatchWorkflowRequest(workflow_id="w", progress_interval=d),
        Reason.INVALID_TTL,
        "progress_interval",
    ),
    (
        SPEECH,
        "CreateSession",
        False,
        lambda d: speech_pb.CreateSessionRequest(ended_retention=d),
        Reason.INVALID_TTL,
        "ended_retention",
    ),
    (
        SPEECH,
        "CreateSession",
        False,
        lambda d: speech_pb.CreateSessionRequest(event_retention=d),
        Reason.INVALID_TTL,
        "event_retention",
    ),
    (
        SPEECH,
        "EndSession",
        False,
        lambda d: speech_pb.EndSessionRequest(session_id="s", reason="done", retention=d),
        Reason.INVALID_TTL,
        "retention",
    ),
    (
        TOOLS,
        "CompleteExecution",
        False,
        lambda d: tool_pb.CompleteExecutionRequest(execution_id="exec-1", duration=d),
        Reason.INVALID_ARGUMENT,
        "duration",
    ),
    (
        TOOLS,
        "CompleteExecution",
        False,
        lambda d: tool_pb.CompleteExecutionRequest(
            execution_id="exec-1", cache_result=True, cache_ttl=d
        ),
        Reason.INVALID_TTL,
        "cache_ttl",
    ),
    (
        TOOLS,
        "FailExecution",
        False,
        lambda d: tool_pb.FailExecutionRequest(execution_id="exec-1", error="e", duration=d),
        Reason.INVALID_ARGUMENT,
        "duration",
    ),
    (
        TOOLS,
        "CacheResult",
        False,
        lambda d: tool_pb.CacheResultRequest(
            entry=tool_pb.ToolCacheEntry(tool_name="search", result=DOC, ttl=d), parameters=DOC
        ),
        Reason.INVALID_TTL,
        "entry.ttl",
    ),
    (
        TOOLS,
        "UpdateRetryState",
        False,
        lambda d: _retry(base_delay=d),
        Reason.INVALID_ARGUMENT,
        "retry_state.base_delay",
    ),
    (
        TOOLS,
        "UpdateRetryState",
        False,
        lambda d: _retry(max_delay=d),
        Reason.INVALID_ARGUMENT,
        "retry_state.max_delay",
    ),
]
CASES = [(*path, bad) for path in PATHS for bad in BAD]
IDS = [f"{method}.{field}-{bad}" for _, method, _, _, _, field, bad in CASES]


def _batch_error(response: state_pb.BatchResponse) -> StateKeeperError:
    status = response.results[0].status
    return from_status(STATUS_CODES[status.code], status.message, status.details)


async def _embedded(runtime: Runtime, service: str, method: str, streams: bool, request: Message):
    """The error of calling ``method`` on the runtime's servicer in process."""
    handler = getattr(runtime.servicers[service], method)
    try:
        if streams:
            responses: AsyncIterator[Any] = handler(request, InProcessContext())
            try:
                await anext(responses)
            finally:
                await responses.aclose()
        else:
            response = await handler(request, InProcessContext())
            if method == "Batch":
                return _batch_error(response)
    except StateKeeperError as error:
        return error
    raise AssertionError(f"{method} accepted the request")


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


async def _remote(address: str, service: str, method: str, streams: bool, request: Message):
    """The error of calling ``method`` over gRPC, as the typed error the client would raise."""
    path = f"/{service}/{method}"
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            if streams:
                call = channel.unary_stream(path, request_serializer=_serialize)
                async for _ in call(request):
                    break
            else:
                deserialize = state_pb.BatchResponse.FromString if method == "Batch" else None
                unary = channel.unary_unary(
                    path,
                    request_serializer=_serialize,
                    response_deserializer=deserialize,
                )
                response = await unary(request)
                if method == "Batch":
                    return _batch_error(response)
        except grpc.aio.AioRpcError as error:
            return from_rpc_error(error)
    raise AssertionError(f"{method} accepted the request")


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    instance = Runtime(MemoryBackend())
    yield instance
    await instance.close()


@pytest.mark.parametrize(
    ("service", "method", "streams", "build", "reason", "field", "bad"), CASES, ids=IDS
)
async def test_a_bad_duration_is_refused_by_the_engine_and_changes_nothing(
    runtime: Runtime,
    server: StatekeeperServer,
    service: str,
    method: str,
    streams: bool,
    build: Callable[[duration_pb2.Duration], Message],
    reason: str,
    field: str,
    bad: str,
) -> None:
    request = build(duration_pb2.Duration(seconds=BAD[bad]))
    for backend, call in (
        (runtime.backend, lambda: _embedded(runtime, service, method, streams, request)),
        (
            server.runtime.backend,
            lambda: _remote(f"127.0.0.1:{server.port}", service, method, streams, request),
        ),
    ):
        before = await backend.revision()
        error = await call()
        assert isinstance(error, InvalidArgumentError), error
        assert error.reason == reason
        assert error.violations[0][0] == field
        assert await backend.revision() == before


@pytest.mark.parametrize("bad", sorted(BAD))
async def test_a_bad_step_duration_ms_is_refused_and_changes_nothing(
    runtime: Runtime, server: StatekeeperServer, bad: str
) -> None:
    """A workflow step's ``duration_ms`` (milliseconds in an int64, not a Duration) has the
    bounds of every other duration: 0 to 100 years."""
    step = wf_pb.StepState(
        step_number=1,
        status=wf_pb.STEP_STATUS_COMPLETED,
        duration_ms=BAD[bad] * 1000,
    )
    request = wf_pb.UpdateStepRequest(workflow_id="wf", step=step)
    create = wf_pb.CreateWorkflowRequest(workflow=wf_pb.WorkflowState(workflow_id="wf"))
    for backend, call, servicers in (
        (
            runtime.backend,
            lambda: _embedded(runtime, WORKFLOWS, "UpdateStep", False, request),
            runtime,
        ),
        (
            server.runtime.backend,
            lambda: _remote(f"127.0.0.1:{server.port}", WORKFLOWS, "UpdateStep", False, request),
            server.runtime,
        ),
    ):
        await servicers.servicers[WORKFLOWS].CreateWorkflow(create, InProcessContext())
        before = await backend.revision()
        error = await call()
        assert isinstance(error, InvalidArgumentError), error
        assert error.reason == Reason.INVALID_ARGUMENT
        assert error.violations[0][0] == "step.duration_ms"
        assert await backend.revision() == before


async def test_a_non_finite_ttl_from_the_python_api_is_refused_and_changes_nothing() -> None:
    async with StateManager(StateConfig(backend=MemoryBackend())) as manager:  # type: ignore[arg-type]
        for ttl in (float("inf"), float("nan")):
            with pytest.raises(InvalidArgumentError):
                await manager.save("k", {"n": 1}, ttl=ttl)
        assert await manager.list_keys("*") == []


def test_every_request_duration_field_has_a_path() -> None:
    """A new Duration field in a request must join PATHS (the output-only ones are named)."""
    output_only = {("StartExecution", "execution.duration")}
    covered = {(method, field) for _, method, _, _, _, field in PATHS}
    covered |= {
        ("Batch", "operations.save.ttl"),
        ("Batch", "operations.transact.operations.put.ttl"),
    }
    found = set()
    for rpc in all_rpcs():
        for path in _duration_fields(rpc.request.DESCRIPTOR):
            found.add((rpc.name, path))
    normalised = {(m, f.replace("[0]", "")) for m, f in covered}
    assert found - normalised - output_only == set()


def _duration_fields(message_type: Any, prefix: str = "", depth: int = 0) -> list[str]:
    paths = []
    for field in message_type.fields:
        target = field.message_type
        if target is None or target.GetOptions().map_entry:
            continue
        if target.full_name == "google.protobuf.Duration":
            paths.append(prefix + field.name)
        elif depth < 3 and target.full_name.startswith("statekeeper."):
            paths += _duration_fields(target, f"{prefix}{field.name}.", depth + 1)
    return paths
