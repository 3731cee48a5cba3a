"""Watch responses never exceed the message limit: replays and large revisions are split by
size (whole revisions, or fragments of one revision), a slow consumer gets every change late,
and the server refuses a configuration in which one event could not be sent.

These tests read the streams with the raw generated stubs, over a channel whose receive limit
is exactly the server's message limit, so a response one byte too large fails the call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statekeeper import values
from statekeeper.errors import InvalidArgumentError, ResourceExhaustedError
from statekeeper.v1 import (
    common_pb2,
    orchestration_service_pb2,
    orchestration_service_pb2_grpc,
    state_service_pb2,
    state_service_pb2_grpc,
    workflow_service_pb2,
    workflow_service_pb2_grpc,
)
from statekeeper_server.cli import main
from statekeeper_server.config import ServerConfig
from statekeeper_server.engine.limits import Limits
from statekeeper_server.engine.storage.factory import BackendOptions, open_backend
from statekeeper_server.runtime import Runtime
from statekeeper_server.server import StatekeeperServer
from statekeeper_server.servicers.batching import RESPONSE_OVERHEAD, pieces

pb = state_service_pb2
DEFAULT_LIMIT = Limits().max_message_bytes


class Watcher:
    """A raw watch stream read the way the contract asks a client to: responses are checked
    against the limit, fragments are reassembled, and a revision counts once its last
    response (fragment false) has arrived."""

    def __init__(self, stub: Any, limit: int, request: pb.WatchRequest) -> None:
        self.call = stub.Watch(request)
        self.limit = limit
        #: Every event delivered, as (mod_revision, key), in the order delivered.
        self.events: list[tuple[int, str]] = []
        self.fragments = 0
        self.responses = 0
        self.largest = 0
        self._partial: list[pb.Event] = []
        self._partial_revision = 0

    async def created(self) -> int:
        """The created response's revision."""
        first = await self.call.read()
        assert first.created
        return int(first.revision)

    async def read_until(
        self, count: int, per_change: Callable[[], Any] | None = None
    ) -> list[tuple[int, str]]:
        """Read until ``count`` events are delivered (awaiting ``per_change()`` after each, the
        consumer's own work)."""
        while len(self.events) < count:
            response = await self.call.read()
            assert response is not grpc.aio.EOF, "the stream ended early"
            assert not response.canceled, response.cancel_reason
            size = response.ByteSize()
            assert size <= self.limit
            self.responses += 1
            self.largest = max(self.largest, size)
            if self._partial and response.revision != self._partial_revision:
                raise AssertionError("a fragmented revision was interrupted by another")
            if response.fragment:
                assert {e.kv.mod_revision for e in response.events} <= {response.revision}
                self.fragments += 1
                self._partial.extend(response.events)
                self._partial_revision = response.revision
                continue
            for event in [*self._partial, *response.events]:
                self.events.append((event.kv.mod_revision, event.kv.key))
                if per_change is not None:
                    await per_change()
            self._partial = []
        return self.events

    def close(self) -> None:
        """Cancel the call."""
        self.call.cancel()


Serve = Callable[..., Any]


@dataclass
class Served:
    """A running test server: a channel whose receive limit is exactly the server's message
    limit, and the runtime (whose servicers the tests call in process for fast bulk writes)."""

    channel: grpc.aio.Channel
    runtime: Runtime
    limit: int
    address: str

    def servicer(self, service: str) -> Any:
        """The in-process servicer of ``statekeeper.v1.<service>``."""
        return self.runtime.servicers[f"statekeeper.v1.{service}"]


@pytest.fixture(params=["memory", "file", "redis"])
def serve(request: pytest.FixtureRequest, tmp_path: Any) -> Serve:
    """``async with serve(**limits) as (stub, servicer, limit)``: a server of the parametrized
    backend with those limits, a raw StateService stub whose receive limit is the server's
    message limit, and the in-process StateService servicer; ``serve(..., served=True)`` yields
    the :class:`Served` instead."""

    @asynccontextmanager
    async def start(served: bool = False, **limits: Any) -> AsyncIterator[Any]:
        options = BackendOptions(kind=request.param, data_dir=str(tmp_path / "data"))
        if request.param == "redis":
            options = BackendOptions(kind="redis", redis_url=request.getfixturevalue("redis_url"))
        runtime = Runtime(open_backend(options), Limits(**limits))
        server = StatekeeperServer(ServerConfig(port=0, shutdown_grace=1.0), runtime)
        port = await server.start()
        limit = runtime.limits.max_message_bytes
        channel = grpc.aio.insecure_channel(
            f"127.0.0.1:{port}",
            options=[("grpc.max_receive_message_length", limit)],
        )
        try:
            if served:
                yield Served(channel, runtime, limit, f"127.0.0.1:{port}")
            else:
                servicer = runtime.servicers["statekeeper.v1.StateService"]
                yield state_service_pb2_grpc.StateServiceStub(channel), servicer, limit
        finally:
            await channel.close()
            await server.stop(0)
            await runtime.close()

    return start


#: Limits small enough for CI-sized tests to need many messages.
SMALL = {"max_value_bytes": 64 * 1024, "max_message_bytes": 256 * 1024}


def blob(size: int, tag: int = 0) -> common_pb2.Value:
    """A msgpack value of about ``size`` bytes."""
    return common_pb2.Value(msgpack=values.pack({"t": tag, "s": "x" * size}))


async def transact(servicer: Any, puts: list[tuple[str, common_pb2.Value]]) -> int:
    """One transaction of puts, written in process; its revision."""
    operations = [pb.Operation(put=pb.PutOperation(key=k, value=v)) for k, v in puts]
    response = await servicer.Transact(pb.TransactRequest(operations=operations), None)
    return int(response.revision)


def msgpack_watch(start_revision: int = 0, prev_kv: bool = True) -> pb.WatchRequest:
    return pb.WatchRequest(
        pattern="k*",
        start_revision=start_revision,
        prev_kv=prev_kv,
        value_encoding=common_pb2.VALUE_ENCODING_MSGPACK,
    )


async def test_a_replay_of_6000_changes_of_1_kb_arrives_in_messages_within_the_limit(serve):
    async with serve() as (stub, servicer, limit):
        written = []
        for first in range(0, 6000, 100):
            revision = await transact(
                servicer, [(f"k{i:05}", blob(1024, i)) for i in range(first, first + 100)]
            )
            written += [(revision, f"k{i:05}") for i in range(first, first + 100)]
        watcher = Watcher(stub, limit, msgpack_watch(start_revision=1, prev_kv=False))
        await watcher.created()
        assert await watcher.read_until(6000) == written
        assert watcher.largest <= min(limit, 1 << 20) + 1024
        watcher.close()


async def test_four_puts_of_1_mb_in_one_transaction_reach_a_prev_kv_watcher_in_fragments(serve):
    async with serve() as (stub, servicer, limit):
        keys = [f"k{i}" for i in range(4)]
        watcher = Watcher(stub, limit, msgpack_watch())
        await watcher.created()
        created = await transact(servicer, [(k, blob(1_000_000, 1)) for k in keys])
        replaced = await transact(servicer, [(k, blob(1_000_000, 2)) for k in keys])
        events = await watcher.read_until(8)
        assert events == [(created, k) for k in keys] + [(replaced, k) for k in keys]
        assert watcher.fragments >= 1  # 8 MB of values and previous values: not one message
        watcher.close()


async def test_a_128_put_transaction_of_32_kb_values_is_delivered_whole(serve):
    async with serve() as (stub, servicer, limit):
        keys = [f"k{i:03}" for i in range(128)]
        await transact(servicer, [(k, blob(32 * 1024, 1)) for k in keys])
        watcher = Watcher(stub, limit, msgpack_watch())
        start = await watcher.created()
        replaced = await transact(servicer, [(k, blob(32 * 1024, 2)) for k in keys])
        assert await watcher.read_until(128) == [(replaced, k) for k in keys]
        assert watcher.fragments >= 1
        watcher.close()
        replay = Watcher(stub, limit, msgpack_watch(start_revision=start + 1))
        await replay.created()
        assert await replay.read_until(128) == [(replaced, k) for k in keys]
        replay.close()


async def test_a_slow_consumer_and_a_replay_get_every_change_exactly_once_in_order(serve):
    """A writer at full speed (transactions of 20 puts), a fast and a slow consumer (3 ms per
    change) on the same watch, then a replay of the whole history (about 4 MB with previous
    values, under a 256 KiB message limit). The watch group keeps a window of 8 updates, so
    the slow consumer falls behind it and goes on from history."""
    async with serve(served=True, **SMALL) as served:
        limit = served.limit
        stub = state_service_pb2_grpc.StateServiceStub(served.channel)
        served.servicer("StateService")._watch_groups.window = 8
        # The slow consumer's connection buffers little (no BDP window growth), so what it has
        # not read yet stays with the server.
        options = [
            ("grpc.max_receive_message_length", limit),
            ("grpc.http2.bdp_probe", 0),
            ("grpc.http2.lookahead_bytes", 16 * 1024),
        ]
        slow_channel = grpc.aio.insecure_channel(served.address, options=options)
        count = 1000
        fast = Watcher(stub, limit, msgpack_watch())
        slow = Watcher(
            state_service_pb2_grpc.StateServiceStub(slow_channel), limit, msgpack_watch()
        )
        await fast.created(), await slow.created()

        async def write() -> list[tuple[int, str]]:
            written = []
            for first in range(0, count, 20):
                keys = [f"k{i % 50:02}" for i in range(first, first + 20)]
                operations = [
                    pb.Operation(put=pb.PutOperation(key=k, value=blob(2000, first))) for k in keys
                ]
                revision = (await stub.Transact(pb.TransactRequest(operations=operations))).revision
                written += [(revision, k) for k in keys]
            return written

        async def work() -> None:
            await asyncio.sleep(0.003)  # the consumer's own work on each change

        written, fast_events, slow_events = await asyncio.gather(
            write(), fast.read_until(count), slow.read_until(count, work)
        )
        assert fast_events == written
        assert slow_events == written
        # It was behind, and caught up in messages of several revisions each (the fast one may
        # get such messages too, when the writer outpaces it).
        assert slow.responses < count // 20
        replay = Watcher(stub, limit, msgpack_watch(start_revision=1))
        await replay.created()
        assert await replay.read_until(count) == written
        assert replay.largest > limit // 2  # the replay was batched up to the limit
        for watcher in (fast, slow, replay):
            watcher.close()
        await slow_channel.close()


async def test_a_json_event_too_large_for_a_message_ends_the_stream_with_resource_exhausted():
    """The startup check counts values in their stored (msgpack) form; a JSON watcher of a
    value whose JSON form cannot fit one message gets RESOURCE_EXHAUSTED, not a cut stream."""
    limits = Limits(max_value_bytes=64 * 1024, max_message_bytes=192 * 1024)
    runtime = Runtime(open_backend(BackendOptions(kind="memory")), limits)
    servicer = runtime.servicers["statekeeper.v1.StateService"]
    request = pb.WatchRequest(pattern="k", value_encoding=common_pb2.VALUE_ENCODING_JSON)
    stream = servicer.Watch(request, None)
    assert (await anext(stream)).created
    zeros = common_pb2.Value(msgpack=values.pack([0] * 60000))  # 60 KB as msgpack, 780 as JSON
    await servicer.Save(pb.SaveRequest(key="k", value=zeros), None)
    with pytest.raises(ResourceExhaustedError) as failure:
        await anext(stream)
    assert "--max-message-bytes" in failure.value.message
    await stream.aclose()
    await runtime.close()


def test_the_server_refuses_limits_under_which_one_event_cannot_fit_a_message():
    config = ServerConfig(port=0, max_value_bytes=4 << 20, max_message_bytes=4 << 20)
    with pytest.raises(InvalidArgumentError) as refused:
        StatekeeperServer(config)
    assert "--max-message-bytes" in refused.value.message
    assert "--max-value-bytes" in refused.value.message
    StatekeeperServer(ServerConfig(port=0, backend="memory", max_value_bytes=1 << 20))


# -- the managers' streams --------------------------------------------------------------------


async def read_within(call: Any, limit: int, done: Callable[[list[Any]], bool]) -> list[Any]:
    """Responses of ``call``, each checked against ``limit``, until ``done(responses)``."""
    responses: list[Any] = []
    while not done(responses):
        response = await call.read()
        assert response is not grpc.aio.EOF, "the stream ended early"
        assert response.ByteSize() <= limit
        responses.append(response)
    return responses


async def test_a_workflow_replay_arrives_in_messages_within_the_limit(serve):
    wf = workflow_service_pb2
    async with serve(served=True, **SMALL) as served:
        servicer = served.servicer("WorkflowService")
        workflow = wf.WorkflowState(workflow_id="wf")
        await servicer.CreateWorkflow(wf.CreateWorkflowRequest(workflow=workflow), None)
        for number in range(1, 61):
            step = wf.StepState(
                step_number=number,
                name=f"s{number}",
                status=wf.STEP_STATUS_COMPLETED,
                result=blob(20_000, number),
            )
            await servicer.UpdateStep(wf.UpdateStepRequest(workflow_id="wf", step=step), None)
        stub = workflow_service_pb2_grpc.WorkflowServiceStub(served.channel)
        call = stub.WatchWorkflow(wf.WatchWorkflowRequest(workflow_id="wf", start_revision=1))

        def steps(responses: list[Any]) -> list[int]:
            return [
                e.step.step_number
                for r in responses
                for e in r.events
                if e.type == wf.WORKFLOW_EVENT_TYPE_STEP_UPDATED
            ]

        responses = await read_within(call, served.limit, lambda rs: len(steps(rs)) >= 60)
        assert steps(responses) == list(range(1, 61))
        assert sum(1 for r in responses if r.events) > 4  # 1.2 MB under a 256 KiB limit
        call.cancel()


async def test_a_team_snapshot_too_large_for_one_message_sends_its_tasks_as_changes(serve):
    orch = orchestration_service_pb2
    async with serve(served=True, **SMALL) as served:
        servicer = served.servicer("OrchestrationService")
        await servicer.CreateTeam(orch.CreateTeamRequest(team_id="t"), None)
        ids = [f"task{i:02}" for i in range(40)]
        for task_id in ids:
            task = orch.TaskSpec(task_id=task_id, type="work", data=blob(20_000))
            await servicer.EnqueueTask(orch.EnqueueTaskRequest(team_id="t", task=task), None)
        stub = orchestration_service_pb2_grpc.OrchestrationServiceStub(served.channel)
        call = stub.WatchTeam(orch.WatchTeamRequest(team_id="t"))

        def tasks(responses: list[Any]) -> list[str]:
            return [c.task_id for r in responses for c in r.changes]

        responses = await read_within(call, served.limit, lambda rs: len(tasks(rs)) >= 40)
        snapshot = responses[0]
        assert snapshot.HasField("snapshot") and snapshot.snapshot.queue_counts.pending == 40
        assert not snapshot.snapshot.task_queue.pending  # 800 KB of tasks: sent as changes
        assert sorted(tasks(responses)) == ids
        assert {r.revision for r in responses} == {snapshot.revision}
        extra = orch.TaskSpec(task_id="late", type="work", data=blob(10))
        await servicer.EnqueueTask(orch.EnqueueTaskRequest(team_id="t", task=extra), None)
        later = await read_within(call, served.limit, lambda rs: "late" in tasks(rs))
        assert tasks(later)[-1] == "late"
        call.cancel()


def test_statekeeper_serve_exits_naming_both_settings(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["serve", "--backend", "memory", "--port", "0", "--max-value-bytes", str(4 << 20)]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line
    assert "--max-message-bytes" in line and "--max-value-bytes" in line


@settings(max_examples=150, deadline=None)
@given(
    sizes=st.lists(st.tuples(st.integers(1, 4), st.integers(1, 900)), min_size=1, max_size=60),
    limit=st.integers(1000, 5000),
)
def test_pieces_keep_whole_revisions_within_the_limit_and_lose_nothing(
    sizes: list[tuple[int, int]], limit: int
) -> None:
    """Any run of events: every piece fits, holds whole revisions unless it is a fragment (then
    one revision, continued by the next piece), and the pieces hold the events in order."""
    events, revision = [], 0
    for step, size in sizes:
        revision += step if step > 2 else 0  # several events share a revision
        revision = max(revision, 1)
        events.append((revision, (revision, len(events)), size))
    last = events[-1][0] + 3
    split = list(pieces(iter(events), last, limit, batch=limit // 2))
    assert [item for piece in split for item in piece.items] == [e[1] for e in events]
    sizes_of = {e[1]: e[2] for e in events}
    for index, piece in enumerate(split):
        assert sum(sizes_of[item] for item in piece.items) + RESPONSE_OVERHEAD <= limit
        assert piece.size <= limit
        revisions = [item[0] for item in piece.items]
        if piece.fragment:
            assert set(revisions) == {piece.revision}
            assert split[index + 1].items[0][0] == piece.revision
        else:
            assert piece.revision >= revisions[-1]
            previous = split[index - 1] if index else None
            if previous is not None and not previous.fragment:
                assert previous.items[-1][0] < revisions[0]  # no revision cut between pieces
    assert split[-1].revision == last and not split[-1].fragment
