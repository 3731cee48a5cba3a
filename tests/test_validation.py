"""Input integrity at the boundary: Timestamp / Duration ranges in every request, stored records
that always convert back, the one key and id rule, and errors that name the caller's keys."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor
from google.protobuf.message import Message
from statekeeper.errors import (
    STATUS_CODES,
    ConflictError,
    InvalidArgumentError,
    Reason,
    StateKeeperError,
    from_rpc_error,
    from_status,
)
from statekeeper.timestamps import (
    MAX_DURATION_SECONDS,
    MAX_TIMESTAMP_SECONDS,
    MIN_TIMESTAMP_SECONDS,
    clamped_duration,
    clamped_timestamp,
)
from statekeeper.v1 import agent_service_pb2 as agent_pb
from statekeeper.v1 import agent_service_pb2_grpc as agent_grpc
from statekeeper.v1 import common_pb2
from statekeeper.v1 import knowledge_service_pb2 as kb_pb
from statekeeper.v1 import state_service_pb2 as state_pb
from statekeeper.v1 import state_service_pb2_grpc as state_grpc
from statekeeper.v1 import workflow_service_pb2 as wf_pb
from statekeeper_server.config import ServerConfig
from statekeeper_server.engine import identifiers
from statekeeper_server.engine.storage.memory import MemoryBackend
from statekeeper_server.runtime import Runtime
from statekeeper_server.server import StatekeeperServer
from statekeeper_server.servicers.boundary import duration_problem, timestamp_problem

from tests.protofuzz import InProcessContext, Rpc, all_rpcs

MSGPACK_DOC = common_pb2.Value(msgpack=b"\x81\xa1n\x01")  # {"n": 1}
TIME_TYPES = {"google.protobuf.Timestamp": "timestamp", "google.protobuf.Duration": "duration"}


async def call(runtime: Runtime, rpc: Rpc, request: Message) -> Any:
    """Call ``rpc`` in process (a stream: its first response)."""
    method = getattr(runtime.servicers[rpc.service], rpc.name)
    if not rpc.server_streaming:
        return await method(request, InProcessContext())
    responses = method(request, InProcessContext())
    try:
        return await anext(responses)
    finally:
        await responses.aclose()


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    instance = Runtime(MemoryBackend())
    yield instance
    await instance.close()


# -- Timestamp and Duration ranges ------------------------------------------------------------


def test_timestamp_range_is_that_of_the_well_known_type() -> None:
    assert timestamp_problem(MIN_TIMESTAMP_SECONDS, 0) is None  # 0001-01-01T00:00:00Z
    assert timestamp_problem(MAX_TIMESTAMP_SECONDS, 999_999_999) is None  # 9999-12-31T23:59:59.9..
    assert timestamp_problem(0, 0) is None
    for seconds, nanos in [
        (MIN_TIMESTAMP_SECONDS - 1, 999_999_999),
        (MAX_TIMESTAMP_SECONDS + 1, 0),
        (2**63 - 1, 0),
        (-(2**63), 0),
        (0, -1),
        (0, 1_000_000_000),
        (-1, -(2**31)),
    ]:
        assert timestamp_problem(seconds, nanos) is not None, (seconds, nanos)


def test_duration_range_and_sign_follow_the_proto_spec() -> None:
    for seconds, nanos in [
        (MAX_DURATION_SECONDS, 999_999_999),
        (-MAX_DURATION_SECONDS, -999_999_999),
        (0, -5),
        (0, 5),
        (3, 0),
    ]:
        assert duration_problem(seconds, nanos) is None, (seconds, nanos)
    for seconds, nanos in [
        (MAX_DURATION_SECONDS + 1, 0),
        (-MAX_DURATION_SECONDS - 1, 0),
        (2**63 - 1, 0),
        (1, -1),
        (-1, 1),
        (0, 1_000_000_000),
        (0, -1_000_000_000),
    ]:
        assert duration_problem(seconds, nanos) is not None, (seconds, nanos)


def _time_fields(
    message_type: descriptor.Descriptor, chain: tuple[descriptor.FieldDescriptor, ...] = ()
) -> Iterator[tuple[descriptor.FieldDescriptor, ...]]:
    """Every chain of fields from ``message_type`` down to a Timestamp or Duration field (each
    message type once per chain, so recursive types end)."""
    seen = {f.message_type.full_name for f in chain if f.message_type is not None}
    for field in message_type.fields:
        target = field.message_type
        if target is None or target.GetOptions().map_entry or target.full_name in seen:
            continue
        if target.full_name in TIME_TYPES:
            yield (*chain, field)
        elif len(chain) < 4 and target.full_name != message_type.full_name:
            yield from _time_fields(target, (*chain, field))


def _with_time(rpc: Rpc, chain: tuple[descriptor.FieldDescriptor, ...]) -> tuple[Message, str]:
    """A request of ``rpc`` whose field at ``chain`` holds an out-of-range value, and the
    field's path."""
    request = rpc.request()
    message: Any = request
    path = []
    for field in chain:
        container = getattr(message, field.name)
        if field.is_repeated:
            message = container.add()
            path.append(f"{field.name}[0]")
        else:
            message = container
            path.append(field.name)
    if chain[-1].message_type.full_name == "google.protobuf.Timestamp":
        message.seconds = 2**63 - 1
    else:
        message.seconds, message.nanos = 1, -1
    return request, ".".join(path)


TIME_CASES = [(rpc, chain) for rpc in all_rpcs() for chain in _time_fields(rpc.request.DESCRIPTOR)]


def test_the_requests_have_time_fields_to_check() -> None:
    names = {f"{rpc.name}:{'.'.join(f.name for f in chain)}" for rpc, chain in TIME_CASES}
    # The fields the fault report named, and a few others, are among them.
    for expected in (
        "SaveCheckpoint:checkpoint.timestamp",
        "SaveSnapshot:snapshot.timestamp",
        "CreateCheckpoint:checkpoint.timestamp",
        "UpdateIndexingProgress:progress.start_time",
        "UpdateIndexingProgress:progress.completion_time",
        "UpdateSourceState:source.last_sync_time",
        "Save:ttl",
        "CreateWorkflow:workflow.steps.timestamp",
    ):
        assert expected in names


@pytest.mark.parametrize(
    ("rpc", "chain"),
    TIME_CASES,
    ids=[f"{rpc.name}:{'.'.join(f.name for f in chain)}" for rpc, chain in TIME_CASES],
)
async def test_every_time_field_of_every_request_is_checked(
    runtime: Runtime, rpc: Rpc, chain: tuple[descriptor.FieldDescriptor, ...]
) -> None:
    request, path = _with_time(rpc, chain)
    before = await runtime.backend.revision()
    if rpc.name == "Batch":
        # A batch fails the operation alone, naming the field of the operation's own request
        # (operations[0].save.ttl -> ttl) as that operation's RPC does.
        response = await call(runtime, rpc, request)
        status = response.results[0].status
        error = from_status(STATUS_CODES[status.code], status.message, status.details)
        path = path.split(".", 2)[2]
    else:
        with pytest.raises(InvalidArgumentError) as raised:
            await call(runtime, rpc, request)
        error = raised.value
    assert isinstance(error, InvalidArgumentError)
    kind = TIME_TYPES[chain[-1].message_type.full_name]
    assert error.reason == (
        Reason.INVALID_TIMESTAMP if kind == "timestamp" else Reason.INVALID_DURATION
    )
    assert error.violations[0][0] == path
    assert error.metadata["field"] == path
    assert await runtime.backend.revision() == before


async def test_a_time_at_the_ends_of_the_range_is_kept(runtime: Runtime) -> None:
    agents = runtime.servicers["statekeeper.v1.AgentService"]
    for seconds, nanos in [(MAX_TIMESTAMP_SECONDS, 999_999_999), (MIN_TIMESTAMP_SECONDS, 0)]:
        checkpoint = agent_pb.AgentCheckpoint(agent_id="a", checkpoint_id=f"c{seconds}", step=1)
        checkpoint.timestamp.seconds = seconds
        checkpoint.timestamp.nanos = nanos
        await agents.SaveCheckpoint(
            agent_pb.SaveCheckpointRequest(checkpoint=checkpoint), InProcessContext()
        )
        got = await agents.GetCheckpoint(
            agent_pb.GetCheckpointRequest(agent_id="a", checkpoint_id=f"c{seconds}"),
            InProcessContext(),
        )
        assert got.checkpoint.timestamp.seconds == seconds
        # Stored as float Unix seconds: the nanoseconds of a time so far out are approximate.
        assert abs(got.checkpoint.timestamp.nanos - nanos) < 10**6


async def test_the_reported_timestamp_is_refused_over_grpc_with_a_field_violation() -> None:
    """The fault report: SaveCheckpoint with seconds = 2**63-1 returned INTERNAL after storing
    the record, and every later read of it INTERNAL too."""
    server = StatekeeperServer(ServerConfig(backend="memory", port=0, shutdown_grace=1.0))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = agent_grpc.AgentServiceStub(channel)
            checkpoint = agent_pb.AgentCheckpoint(agent_id="a", checkpoint_id="c")
            checkpoint.timestamp.seconds = 2**63 - 1
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.SaveCheckpoint(agent_pb.SaveCheckpointRequest(checkpoint=checkpoint))
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            error = from_rpc_error(raised.value)
            assert error.reason == Reason.INVALID_TIMESTAMP
            assert error.violations == [
                (
                    "checkpoint.timestamp",
                    "seconds must be from -62135596800 (0001-01-01T00:00:00Z) to 253402300799 "
                    "(9999-12-31T23:59:59Z), got 9223372036854775807",
                )
            ]
            listed = await stub.ListCheckpoints(agent_pb.ListCheckpointsRequest(agent_id="a"))
            assert list(listed.checkpoints) == []
    finally:
        await server.stop(0)


# -- records stored before the check still read back ------------------------------------------


def test_stored_times_out_of_range_clamp_to_the_ends() -> None:
    top = (MAX_TIMESTAMP_SECONDS, 999_999_999)
    for seconds in (9.223372036854776e18, float("inf"), MAX_TIMESTAMP_SECONDS + 0.9999999999):
        stamp = clamped_timestamp(seconds)
        assert (stamp.seconds, stamp.nanos) == top
    for seconds in (-9.2e18, float("-inf"), float("nan")):
        stamp = clamped_timestamp(seconds)
        assert (stamp.seconds, stamp.nanos) == (MIN_TIMESTAMP_SECONDS, 0)
    assert (clamped_timestamp(1.5).seconds, clamped_timestamp(1.5).nanos) == (1, 500_000_000)
    assert clamped_duration(1e30).seconds == MAX_DURATION_SECONDS
    assert clamped_duration(-1e30).seconds == -MAX_DURATION_SECONDS
    assert (clamped_duration(float("nan")).seconds, clamped_duration(2.25).nanos) == (
        0,
        250_000_000,
    )


async def test_records_stored_with_an_edge_timestamp_by_the_old_code_read_back(
    runtime: Runtime,
) -> None:
    """A record stored before the boundary check existed (the servicer's own method, unguarded,
    is what the old code ran) reads back with the time clamped to 9999-12-31T23:59:59.999999999Z
    by every RPC that returns it."""
    agents = runtime.servicers["statekeeper.v1.AgentService"]
    workflows = runtime.servicers["statekeeper.v1.WorkflowService"]
    knowledge = runtime.servicers["statekeeper.v1.KnowledgeService"]
    ctx = InProcessContext()

    def edge(message: Any, field: str) -> None:
        getattr(message, field).seconds = 2**63 - 1

    snapshot = agent_pb.AgentSnapshot(agent_id="a", memory_state=MSGPACK_DOC)
    edge(snapshot, "timestamp")
    checkpoint = agent_pb.AgentCheckpoint(agent_id="a", checkpoint_id="c", step=1, recoverable=True)
    edge(checkpoint, "timestamp")
    wf_checkpoint = wf_pb.WorkflowCheckpoint(workflow_id="w", checkpoint_id="c", step=1)
    edge(wf_checkpoint, "timestamp")
    progress = kb_pb.IndexingProgress(
        knowledge_base_id="kb", status=kb_pb.INDEXING_STATUS_IN_PROGRESS, total_documents=1
    )
    edge(progress, "start_time")
    edge(progress, "completion_time")
    source = kb_pb.SourceState(
        knowledge_base_id="kb", source_id="s", sync_status=kb_pb.SYNC_STATUS_SYNCED
    )
    edge(source, "last_sync_time")
    old = type(agents), type(workflows), type(knowledge)
    await old[0].SaveSnapshot(agents, agent_pb.SaveSnapshotRequest(snapshot=snapshot), ctx)
    await old[0].SaveCheckpoint(agents, agent_pb.SaveCheckpointRequest(checkpoint=checkpoint), ctx)
    await workflows.CreateWorkflow(
        wf_pb.CreateWorkflowRequest(workflow=wf_pb.WorkflowState(workflow_id="w")), ctx
    )
    await old[1].CreateCheckpoint(
        workflows, wf_pb.CreateCheckpointRequest(checkpoint=wf_checkpoint), ctx
    )
    await old[2].UpdateIndexingProgress(
        knowledge, kb_pb.UpdateIndexingProgressRequest(progress=progress), ctx
    )
    await old[2].UpdateSourceState(knowledge, kb_pb.UpdateSourceStateRequest(source=source), ctx)

    top = (MAX_TIMESTAMP_SECONDS, 999_999_999)

    def at_top(stamp: Any) -> None:
        assert (stamp.seconds, stamp.nanos) == top

    at_top(
        (
            await agents.GetSnapshot(agent_pb.GetSnapshotRequest(agent_id="a"), ctx)
        ).snapshot.timestamp
    )
    listed = await agents.ListSnapshots(agent_pb.ListSnapshotsRequest(agent_id="a"), ctx)
    at_top(listed.snapshots[0].timestamp)
    got = await agents.GetCheckpoint(agent_pb.GetCheckpointRequest(agent_id="a"), ctx)
    at_top(got.checkpoint.timestamp)
    page = await agents.ListCheckpoints(agent_pb.ListCheckpointsRequest(agent_id="a"), ctx)
    at_top(page.checkpoints[0].timestamp)
    recovery = await agents.BeginRecovery(agent_pb.BeginRecoveryRequest(agent_id="a"), ctx)
    at_top(recovery.checkpoint.timestamp)
    watch = agents.WatchCheckpoints(agent_pb.WatchCheckpointsRequest(agent_id="a"), ctx)
    try:
        first = await anext(watch)
    finally:
        await watch.aclose()
    assert first is not None
    wf_page = await workflows.ListWorkflowCheckpoints(
        wf_pb.ListWorkflowCheckpointsRequest(workflow_id="w"), ctx
    )
    at_top(wf_page.checkpoints[0].timestamp)
    wf_got = await workflows.GetWorkflowCheckpoint(
        wf_pb.GetWorkflowCheckpointRequest(workflow_id="w", checkpoint_id="c"), ctx
    )
    at_top(wf_got.checkpoint.timestamp)
    got_progress = await knowledge.GetIndexingProgress(
        kb_pb.GetIndexingProgressRequest(knowledge_base_id="kb"), ctx
    )
    at_top(got_progress.progress.start_time)
    at_top(got_progress.progress.completion_time)
    sources = await knowledge.ListSources(kb_pb.ListSourcesRequest(knowledge_base_id="kb"), ctx)
    at_top(sources.sources[0].last_sync_time)
    await knowledge.GetKnowledgeBaseState(
        kb_pb.GetKnowledgeBaseStateRequest(knowledge_base_id="kb"), ctx
    )


# -- one rule for keys and ids ----------------------------------------------------------------

CONTROL = [chr(c) for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)]]


@pytest.mark.parametrize("char", CONTROL, ids=[f"U+{ord(c):04X}" for c in CONTROL])
def test_every_c0_and_c1_control_character_is_refused_in_keys_and_ids(char: str) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        identifiers.check_key(f"a{char}b", "key", 512)
    assert raised.value.reason == Reason.INVALID_KEY
    with pytest.raises(InvalidArgumentError) as raised:
        identifiers.check_id(f"a{char}b", "agent_id")
    assert raised.value.violations == [("agent_id", "control characters are not allowed")]


def test_the_length_of_keys_and_ids_is_counted_in_utf8_bytes() -> None:
    identifiers.check_id("é" * 128, "team_id")  # 256 bytes
    with pytest.raises(InvalidArgumentError) as raised:
        identifiers.check_id("é" * 128 + "x", "team_id")
    assert raised.value.violations == [("team_id", "longer than 256 bytes")]
    identifiers.check_key("é" * 256, "key", 512)
    with pytest.raises(InvalidArgumentError) as raised:
        identifiers.check_key("é" * 256 + "x", "key", 512)
    assert raised.value.reason == Reason.KEY_TOO_LONG
    # Characters beyond the control ranges are fine: U+00A0 (no-break space), emoji.
    identifiers.check_id("a\u00a0b\U0001f600", "task_id")
    with pytest.raises(InvalidArgumentError):
        identifiers.check_id("a/b", "task_id")
    with pytest.raises(InvalidArgumentError):
        identifiers.check_id("", "task_id")


def _id_fields(message_type: descriptor.Descriptor, prefix: str = "") -> Iterator[str]:
    """Paths of the string fields of a request that name a key or an id (``key``, ``*_id``),
    one message level down included."""
    for field in message_type.fields:
        if field.is_repeated:
            continue
        if field.type == field.TYPE_STRING and (field.name == "key" or field.name.endswith("_id")):
            yield prefix + field.name
        elif field.message_type is not None and not prefix:
            if not field.message_type.full_name.startswith("google.protobuf"):
                yield from _id_fields(field.message_type, f"{field.name}.")


def _set(request: Message, path: str, text: str) -> None:
    target: Any = request
    *parents, name = path.split(".")
    for parent in parents:
        target = getattr(target, parent)
    setattr(target, name, text)


#: Fields a server assigns, which a request may carry but the server ignores.
IGNORED = {"SaveSnapshot:snapshot.snapshot_id"}
ID_CASES = [
    (rpc, path)
    for rpc in all_rpcs()
    for path in _id_fields(rpc.request.DESCRIPTOR)
    if f"{rpc.name}:{path}" not in IGNORED
]


@pytest.mark.parametrize(
    ("rpc", "path"), ID_CASES, ids=[f"{rpc.name}:{path}" for rpc, path in ID_CASES]
)
async def test_a_c1_character_in_any_key_or_id_of_any_request_is_refused(
    runtime: Runtime, rpc: Rpc, path: str
) -> None:
    """Every key and id field with U+0085 (NEXT LINE, a C1 control) gets INVALID_ARGUMENT and
    nothing is stored; when the same request with a plain id passes validation, the violation
    names that field (or a field that must hold the same id)."""
    name = path.rsplit(".", 1)[-1]
    same = [p for p in _id_fields(rpc.request.DESCRIPTOR) if p.rsplit(".", 1)[-1] == name]

    def request_with(text: str) -> Message:
        request = rpc.request()
        for other in _id_fields(rpc.request.DESCRIPTOR):
            _set(request, other, text if other in same else "x")
        return request

    before = await runtime.backend.revision()
    with pytest.raises(InvalidArgumentError) as raised:
        await call(runtime, rpc, request_with("a\u0085b"))
    assert await runtime.backend.revision() == before
    try:
        await call(runtime, rpc, request_with("plain"))
    except InvalidArgumentError:
        return  # another field of this bare request is invalid and may be checked first
    except StateKeeperError:
        pass
    assert raised.value.violations[0][0] in same


# -- errors name the caller's keys ------------------------------------------------------------

TOKENS = {"token-a": {"name": "alice", "namespaces": ["team-a"], "role": "admin"}}


@pytest.fixture(params=["auth off", "auth on"])
async def conflict_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[StatekeeperServer, tuple[tuple[str, str], ...]]]:
    config: dict[str, Any] = {"backend": "memory", "port": 0, "shutdown_grace": 1.0}
    metadata: tuple[tuple[str, str], ...] = ()
    if request.param == "auth on":
        tokens = tmp_path / "tokens.json"
        tokens.write_text(json.dumps(TOKENS))
        config["auth_tokens_file"] = str(tokens)
        metadata = (("authorization", "Bearer token-a"),)
    server = StatekeeperServer(ServerConfig(**config))
    await server.start()
    yield server, metadata
    await server.stop(0)


def _assert_names_only_the_callers_key(error: StateKeeperError, key: str) -> None:
    assert isinstance(error, ConflictError)
    assert error.reason == Reason.REVISION_CONFLICT
    assert error.metadata["key"] == key
    assert f"'{key}'" in error.message
    for text in (error.message, *error.metadata.values()):
        assert "kv/" not in text and "tenants/" not in text, text


async def test_revision_conflicts_name_the_callers_key(
    conflict_server: tuple[StatekeeperServer, tuple[tuple[str, str], ...]],
) -> None:
    server, metadata = conflict_server
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = state_grpc.StateServiceStub(channel)
        saved = await stub.Save(
            state_pb.SaveRequest(key="cas", value=MSGPACK_DOC), metadata=metadata
        )
        stale = saved.kv.mod_revision + 5
        calls = [
            stub.Save(
                state_pb.SaveRequest(key="cas", value=MSGPACK_DOC, expected_revision=stale),
                metadata=metadata,
            ),
            stub.Save(
                state_pb.SaveRequest(key="cas", value=MSGPACK_DOC, expected_revision=0),
                metadata=metadata,
            ),
            stub.Delete(
                state_pb.DeleteRequest(key="cas", expected_revision=stale), metadata=metadata
            ),
            stub.Update(
                state_pb.UpdateRequest(key="cas", patch=MSGPACK_DOC, expected_revision=stale),
                metadata=metadata,
            ),
            stub.Transact(
                state_pb.TransactRequest(
                    comparisons=[state_pb.Comparison(key="cas", expected_revision=stale)],
                    operations=[
                        state_pb.Operation(put=state_pb.PutOperation(key="cas", value=MSGPACK_DOC))
                    ],
                ),
                metadata=metadata,
            ),
        ]
        for pending in calls:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await pending
            assert raised.value.code() == grpc.StatusCode.ABORTED
            _assert_names_only_the_callers_key(from_rpc_error(raised.value), "cas")


async def test_workflow_conflicts_name_the_workflow(runtime: Runtime) -> None:
    workflows = runtime.servicers["statekeeper.v1.WorkflowService"]
    created = await workflows.CreateWorkflow(
        wf_pb.CreateWorkflowRequest(workflow=wf_pb.WorkflowState(workflow_id="w")),
        InProcessContext(),
    )
    stale = created.workflow.revision + 3
    for method, request in [
        (
            workflows.DeleteWorkflow,
            wf_pb.DeleteWorkflowRequest(workflow_id="w", expected_revision=stale),
        ),
        (
            workflows.CancelWorkflow,
            wf_pb.CancelWorkflowRequest(workflow_id="w", expected_revision=stale),
        ),
    ]:
        with pytest.raises(ConflictError) as raised:
            await method(request, InProcessContext())
        assert raised.value.metadata["workflow_id"] == "w"
        assert "record" not in raised.value.message and "wf/" not in raised.value.message
