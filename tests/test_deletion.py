"""Deleting an agent's state (AgentStateStore.delete_agent / DeleteAgent) and a workflow
(WorkflowStateManager.delete / DeleteWorkflow): everything goes, the store's key count returns to
where it was, active workflows are refused without force, large directories go in atomic
batches that can be retried, and a delete racing step updates leaves all or nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from statekeeper.errors import (
    AlreadyExistsError,
    ConflictError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    Reason,
)
from statekeeper.state import (
    AgentCheckpoint,
    AgentRecoveryManager,
    AgentSnapshot,
    AgentStateStore,
    StateManager,
    StepState,
    WorkflowCheckpoint,
    WorkflowEvent,
    WorkflowEventType,
    WorkflowState,
    WorkflowStateManager,
    WorkflowStatus,
)
from statekeeper_server.engine import records
from statekeeper_server.engine.domains.agents import AgentCheckpoint as AgentCheckpointRecord
from statekeeper_server.engine.domains.agents import AgentEngine
from statekeeper_server.engine.domains.agents import AgentSnapshot as AgentSnapshotRecord
from statekeeper_server.engine.domains.workflows import StepState as StepRecord
from statekeeper_server.engine.domains.workflows import StepStatus, WorkflowEngine
from statekeeper_server.engine.domains.workflows import (
    WorkflowCheckpoint as WorkflowCheckpointRecord,
)
from statekeeper_server.engine.domains.workflows import WorkflowState as WorkflowRecord
from statekeeper_server.engine.limits import Limits
from statekeeper_server.engine.storage.backend import Backend
from statekeeper_server.engine.storage.factory import BackendOptions, open_backend

from tests.servers import ServerProcess


def unique(name: str) -> str:
    """An id no other test uses (the embedded memory store is shared by the process)."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def key_count(manager: AgentStateStore | WorkflowStateManager) -> int:
    """The store's key count (GetStats) through the manager's connection."""
    return (await StateManager(transport=manager.transport).get_stats()).keys


class _Restorable:
    """The smallest agent AgentRecoveryManager can recover."""

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id

    def restore_from_checkpoint(self, checkpoint: AgentCheckpoint) -> None:
        """Accept any checkpoint."""


# -- agents -------------------------------------------------------------------------------------


async def test_delete_agent_removes_snapshots_checkpoints_and_recovery_status(
    persistence_kwargs: dict[str, str],
) -> None:
    store = AgentStateStore(**persistence_kwargs)
    agent_id, neighbour = unique("agent"), unique("agent")
    before = await key_count(store)
    for n in range(3):
        await store.save_snapshot(AgentSnapshot(agent_id=agent_id, memory_state={"n": n}))
    for step in (1, 2):
        await store.save_checkpoint(
            AgentCheckpoint(agent_id=agent_id, checkpoint_id=f"c{step}", step=step, state={})
        )
    recovery = AgentRecoveryManager(agent_store=store)
    recovery.register(_Restorable(agent_id))
    assert await recovery.recover(agent_id)
    # A neighbour whose id starts with the deleted one is untouched.
    await store.save_snapshot(AgentSnapshot(agent_id=agent_id + "0", memory_state={}))
    await store.save_snapshot(AgentSnapshot(agent_id=neighbour, memory_state={}))
    with_neighbours = await key_count(store)

    assert await store.delete_agent(agent_id) == 3 + 2 + 1

    assert await store.list_snapshots(agent_id) == []
    assert await store.list_checkpoints(agent_id) == []
    assert await store.get_latest_snapshot(agent_id) is None
    assert await store.get_latest_checkpoint(agent_id) is None
    assert await store.get_checkpoint(agent_id, "c1") is None
    status = await recovery.get_status(agent_id)
    assert (status.attempts, status.recoveries, status.last_checkpoint_id) == (0, 0, None)
    assert len(await store.list_snapshots(agent_id + "0")) == 1
    assert len(await store.list_snapshots(neighbour)) == 1
    # meta + 3 snapshots + 2 checkpoints with their id pointers went; the neighbours stay.
    assert await key_count(store) == with_neighbours - 8
    assert await store.delete_agent(agent_id + "0") == 2
    assert await store.delete_agent(neighbour) == 2
    assert await key_count(store) == before

    # Deleting again, or an agent that never existed, is not an error.
    assert await store.delete_agent(agent_id) == 0
    assert await store.delete_agent(unique("never")) == 0
    # The agent can start over: sequence numbers restart with its counters.
    again = await store.save_snapshot(AgentSnapshot(agent_id=agent_id, memory_state={}))
    assert again.snapshot_id == "1"
    assert await store.delete_agent(agent_id) == 2


@pytest.mark.parametrize("bad", ["", "a/b", "tab\there", "x" * 257])
async def test_delete_agent_rejects_bad_ids(persistence_kwargs: dict[str, str], bad: str) -> None:
    store = AgentStateStore(**persistence_kwargs)
    with pytest.raises(InvalidArgumentError) as caught:
        await store.delete_agent(bad)
    assert caught.value.reason == Reason.INVALID_ARGUMENT
    assert [field for field, _ in caught.value.violations] == ["agent_id"]


# -- workflows ----------------------------------------------------------------------------------


async def _busy_workflow(manager: WorkflowStateManager, workflow_id: str, steps: int) -> None:
    """A workflow with ``steps`` completed steps, an automatic checkpoint every two and one
    manual checkpoint."""
    await manager.create(WorkflowState(workflow_id, total_steps=steps, checkpoint_interval=2))
    for number in range(1, steps + 1):
        await manager.update_step(workflow_id, StepState(number, f"s{number}", "completed"))
    await manager.checkpoint(WorkflowCheckpoint(workflow_id, "manual", step=1))


async def test_delete_workflow_removes_steps_and_checkpoints(
    persistence_kwargs: dict[str, str],
) -> None:
    manager = WorkflowStateManager(**persistence_kwargs)
    workflow_id, other = unique("wf"), unique("wf")
    before = await key_count(manager)
    await _busy_workflow(manager, workflow_id, 4)
    await manager.complete(workflow_id)
    await manager.create(WorkflowState(other))
    assert len(await manager.list_checkpoints(workflow_id)) == 3

    assert await manager.delete(workflow_id) is True

    assert await manager.get(workflow_id) is None
    assert workflow_id not in [w.workflow_id for w in await manager.list_workflows()]
    with pytest.raises(NotFoundError):
        await manager.list_checkpoints(workflow_id)
    with pytest.raises(NotFoundError):
        await manager.get_checkpoint(workflow_id, "manual")
    with pytest.raises(NotFoundError):
        await manager.update_step(workflow_id, StepState(5, "late", "completed"))
    assert await manager.get(other) is not None
    assert await manager.delete(other) is True  # PENDING needs no force
    assert await key_count(manager) == before

    # Deleting twice: the second time there is nothing to delete.
    assert await manager.delete(workflow_id) is False
    assert await manager.delete(unique("never"), force=True) is False
    # The id can be used again, from scratch.
    await manager.create(WorkflowState(workflow_id))
    assert (await manager.get(workflow_id)).steps == []  # type: ignore[union-attr]
    assert await manager.delete(workflow_id) is True


async def test_delete_refuses_running_and_paused_workflows_without_force(
    persistence_kwargs: dict[str, str],
) -> None:
    manager = WorkflowStateManager(**persistence_kwargs)
    running, paused = unique("running"), unique("paused")
    before = await key_count(manager)
    await _busy_workflow(manager, running, 2)
    await _busy_workflow(manager, paused, 2)
    await manager.pause(paused)
    populated = await key_count(manager)

    for workflow_id, status in ((running, "RUNNING"), (paused, "PAUSED")):
        with pytest.raises(FailedPreconditionError) as caught:
            await manager.delete(workflow_id)
        assert caught.value.reason == Reason.WORKFLOW_ACTIVE
        assert caught.value.metadata == {"workflow_id": workflow_id, "status": status}
    assert await key_count(manager) == populated
    kept = await manager.get(running)
    assert kept is not None and len(kept.steps) == 2

    assert await manager.delete(running, force=True) is True
    assert await manager.delete(paused, force=True) is True
    assert await manager.get(running) is None and await manager.get(paused) is None
    assert await key_count(manager) == before


@pytest.mark.parametrize("bad", ["", "a/b", "nul\x00", "x" * 257])
async def test_delete_workflow_rejects_bad_ids(
    persistence_kwargs: dict[str, str], bad: str
) -> None:
    manager = WorkflowStateManager(**persistence_kwargs)
    with pytest.raises(InvalidArgumentError) as caught:
        await manager.delete(bad)
    assert [field for field, _ in caught.value.violations] == ["workflow_id"]


async def test_watch_sees_the_deletion(persistence_kwargs: dict[str, str]) -> None:
    manager = WorkflowStateManager(**persistence_kwargs)
    workflow_id = unique("watched")
    watch = manager.watch(workflow_id)

    async def collect() -> list[WorkflowEvent]:
        seen: list[WorkflowEvent] = []
        async for event in watch:
            seen.append(event)
            if event.type is WorkflowEventType.DELETED:
                break
        return seen

    task = asyncio.ensure_future(collect())
    await watch.started()
    await manager.create(WorkflowState(workflow_id))
    await manager.update_step(workflow_id, StepState(1, "a", "completed"))
    await manager.delete(workflow_id, force=True)
    events = await asyncio.wait_for(task, 30)
    await watch.aclose()
    assert [(e.type, e.status) for e in events] == [
        (WorkflowEventType.STATUS_CHANGED, WorkflowStatus.PENDING),
        (WorkflowEventType.STATUS_CHANGED, WorkflowStatus.RUNNING),
        (WorkflowEventType.STEP_UPDATED, WorkflowStatus.RUNNING),
        (WorkflowEventType.DELETED, None),
    ]


async def test_expected_revision_guards_the_delete(connection: Any) -> None:
    """The RPC's optional expected_revision: a stale revision is ABORTED and removes nothing."""
    from statekeeper.transport import Transport, unary
    from statekeeper.v1 import workflow_service_pb2 as pb
    from statekeeper.v1 import workflow_service_pb2_grpc

    transport = Transport(connection)
    manager = WorkflowStateManager(transport=transport)
    stub = transport.stub(workflow_service_pb2_grpc.WorkflowServiceStub, manager._SERVICE)
    workflow_id = unique("guarded")
    created = await manager.create(WorkflowState(workflow_id))
    await manager.cancel(workflow_id, "stale")
    request = pb.DeleteWorkflowRequest(workflow_id=workflow_id, expected_revision=created.revision)
    with pytest.raises(ConflictError) as caught:
        await unary(stub.DeleteWorkflow, request)
    assert caught.value.reason == Reason.REVISION_CONFLICT
    current = await manager.get(workflow_id)
    assert current is not None
    request = pb.DeleteWorkflowRequest(workflow_id=workflow_id, expected_revision=current.revision)
    response = await unary(stub.DeleteWorkflow, request)
    assert response.deleted == 1 and response.revision > current.revision
    with pytest.raises(NotFoundError) as missing:
        await unary(stub.DeleteWorkflow, pb.DeleteWorkflowRequest(workflow_id=workflow_id))
    assert missing.value.reason == Reason.WORKFLOW_NOT_FOUND
    await transport.close()


# -- large directories: atomic batches, and a removal that stopped midway -----------------------


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """A fresh memory backend, or a Redis backend over the (flushed) session redis-server."""
    if request.param == "memory":
        store = open_backend(BackendOptions(kind="memory"))
    else:
        url = request.getfixturevalue("redis_url")
        store = open_backend(BackendOptions(kind="redis", redis_url=url))
    yield store
    await store.close()


class _Stop(Exception):
    """Raised to stop a removal after its first batch, as a crash would."""


def _stop_after_first_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    real = records.delete_batch
    calls = 0

    async def flaky(backend: Backend, keys: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise _Stop
        return await real(backend, keys)

    monkeypatch.setattr("statekeeper_server.engine.domains.checkpoints.delete_batch", flaky)


async def test_large_workflow_goes_in_batches_and_a_stopped_removal_finishes(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = WorkflowEngine(backend, Limits(max_transaction_operations=4))
    before = (await backend.stats()).keys
    await engine.create(WorkflowRecord("big", checkpoint_interval=3))
    for number in range(1, 13):
        await engine.update_step("big", StepRecord(number, status=StepStatus.COMPLETED))
    await engine.checkpoint(WorkflowCheckpointRecord("big", "m", step=2))
    # record + 12 steps + 5 checkpoints with their id pointers: far more than 4 per transaction.
    assert (await backend.stats()).keys - before == 1 + 12 + 5 * 2
    await engine.transition("big", "complete")

    _stop_after_first_batch(monkeypatch)
    with pytest.raises(_Stop):
        await engine.delete("big")
    # Marked deleted, partly removed: it reads as unknown, and nothing can be written to it.
    with pytest.raises(NotFoundError):
        await engine.get("big")
    with pytest.raises(NotFoundError):
        await engine.update_step("big", StepRecord(13, status=StepStatus.COMPLETED))
    assert [w.workflow_id for w in (await engine.list_workflows())[0]] == []
    assert 0 < (await backend.stats()).keys - before < 1 + 12 + 5 * 2
    with pytest.raises(AlreadyExistsError, match="being deleted"):
        await engine.create(WorkflowRecord("big"))

    monkeypatch.undo()
    deleted, revision = await engine.delete("big")  # the retry finishes the removal
    assert deleted == 1 + 12 + 5  # the first batch held only checkpoint id pointers
    assert revision == await backend.revision()
    assert (await backend.stats()).keys == before
    with pytest.raises(NotFoundError):
        await engine.delete("big")

    # Without interruption the count covers everything.
    await engine.create(WorkflowRecord("big2"))
    for number in range(1, 10):
        await engine.update_step("big2", StepRecord(number, status=StepStatus.RUNNING))
    assert await engine.delete("big2", force=True) == (10, await backend.revision())
    assert (await backend.stats()).keys == before


async def test_large_agent_goes_in_batches_and_a_stopped_removal_finishes(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = AgentEngine(backend, Limits(max_transaction_operations=4))
    before = (await backend.stats()).keys
    for n in range(7):
        await engine.save_snapshot(AgentSnapshotRecord("big", memory_state={"n": n}))
        await engine.save_checkpoint(AgentCheckpointRecord("big", f"c{n}", step=n))
    assert (await backend.stats()).keys - before == 1 + 7 + 7 * 2

    _stop_after_first_batch(monkeypatch)
    with pytest.raises(_Stop):
        await engine.delete_agent("big")
    # The first batch removed three checkpoint id pointers (they sort first): every checkpoint
    # is still listed, only looking one up by id misses.
    assert len((await engine.list_checkpoints("big"))[0]) == 7
    monkeypatch.undo()
    deleted, _ = await engine.delete_agent("big")  # the retry finishes the removal
    assert deleted == 7 + 7 + 1
    assert (await backend.stats()).keys == before
    assert await engine.delete_agent("big") == (0, await backend.revision())

    for n in range(5):
        await engine.save_snapshot(AgentSnapshotRecord("big", memory_state={"n": n}))
    assert (await engine.delete_agent("big"))[0] == 5 + 1
    assert (await backend.stats()).keys == before


# -- a delete racing step updates: all or nothing -----------------------------------------------


async def _race(
    deleter: WorkflowStateManager, updaters: list[WorkflowStateManager], force: bool, rounds: int
) -> tuple[int, int]:
    """``rounds`` times: a PENDING workflow (auto-checkpoint every step), one delete against
    six concurrent step updates. Returns how many rounds ended deleted and how many kept."""
    gone = kept = 0
    for round_number in range(rounds):
        workflow_id = unique(f"race{round_number}")
        before = await key_count(deleter)
        await deleter.create(WorkflowState(workflow_id, checkpoint_interval=1))

        async def update(number: int, via: WorkflowStateManager, workflow_id: str) -> bool:
            try:
                await via.update_step(workflow_id, StepState(number, f"s{number}", "completed"))
            except NotFoundError:
                return False
            return True

        async def delete(workflow_id: str) -> bool:
            try:
                return await deleter.delete(workflow_id, force=force)
            except FailedPreconditionError as error:
                assert error.reason == Reason.WORKFLOW_ACTIVE
                return False

        # The delete is sent first in even rounds and among the updates in odd ones.
        calls = [update(n, updaters[n % len(updaters)], workflow_id) for n in range(1, 7)]
        calls.insert(0 if round_number % 2 == 0 else 3, delete(workflow_id))
        outcomes = await asyncio.gather(*calls)
        position = 0 if round_number % 2 == 0 else 3
        deleted = outcomes[position]
        flags = outcomes[:position] + outcomes[position + 1 :]
        updated = [n for n, ok in enumerate(flags, 1) if ok]
        current = await deleter.get(workflow_id)
        if deleted:
            gone += 1
            assert current is None
            assert await key_count(deleter) == before  # no orphan step or checkpoint keys
            if not force:
                assert updated == []  # any update would have made it RUNNING, refusing the delete
        else:
            kept += 1
            assert current is not None and current.status is WorkflowStatus.RUNNING
            assert sorted(step.step_number for step in current.steps) == updated
            checkpoints = await deleter.list_checkpoints(workflow_id)
            assert len(checkpoints) == len(updated)
            # record + one step, one checkpoint and one id pointer per update
            assert await key_count(deleter) == before + 1 + 3 * len(updated)
            assert await deleter.delete(workflow_id, force=True)
            assert await key_count(deleter) == before
    return gone, kept


async def test_delete_racing_updates_leaves_all_or_nothing(
    persistence_kwargs: dict[str, str],
) -> None:
    manager = WorkflowStateManager(**persistence_kwargs)
    gone, kept = await _race(manager, [manager], force=False, rounds=8)
    assert gone + kept == 8
    gone, _ = await _race(manager, [manager], force=True, rounds=4)
    assert gone == 4


async def test_delete_racing_updates_on_two_servers_sharing_redis(
    redis_instances: list[ServerProcess],
) -> None:
    a, b = redis_instances
    via_a = WorkflowStateManager(persistence="grpc", address=a.address)
    via_b = WorkflowStateManager(persistence="grpc", address=b.address)
    gone, kept = await _race(via_a, [via_a, via_b], force=False, rounds=8)
    assert gone + kept == 8
    gone, _ = await _race(via_b, [via_a, via_b], force=True, rounds=4)
    assert gone == 4
    await via_a.close()
    await via_b.close()


async def test_redis_server_with_a_small_transaction_limit_deletes_in_batches(
    redis_url: str, spawn_servers: Callable[..., list[ServerProcess]]
) -> None:
    (server,) = spawn_servers(
        1, "--backend", "redis", "--redis-url", redis_url, "--max-transaction-operations", "4"
    )
    store = AgentStateStore(persistence="grpc", address=server.address)
    workflows = WorkflowStateManager(transport=store.transport)
    before = await key_count(store)
    for n in range(6):
        await store.save_checkpoint(AgentCheckpoint(agent_id="a", checkpoint_id=f"c{n}", step=n))
    await _busy_workflow(workflows, "w", 6)
    assert await store.delete_agent("a") == 6 + 1
    assert await workflows.delete("w", force=True) is True
    assert await workflows.get("w") is None
    assert await key_count(store) == before
    await store.close()
