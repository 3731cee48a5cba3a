"""WorkflowStateManager: the reference examples and every rule of issue 4, embedded and against
a live server, plus concurrent writers in several processes and two servers on one Redis."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
from datetime import datetime
from typing import Any

import grpc
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
    StepState,
    WorkflowCheckpoint,
    WorkflowEvent,
    WorkflowEventType,
    WorkflowState,
    WorkflowStateManager,
    WorkflowStatus,
)
from statekeeper.v1 import workflow_service_pb2 as wpb
from statekeeper.v1 import workflow_service_pb2_grpc as wgrpc

from tests.servers import ServerProcess

# -- the reference examples, verbatim apart from the import line and the persistence -------------


async def test_reference_tracking_example(persistence_kwargs: dict[str, str]) -> None:
    logger = logging.getLogger(__name__)

    from statekeeper.state import (
        StepState,
        WorkflowState,
        WorkflowStateManager,
        WorkflowStatus,
    )

    # Initialize workflow state manager
    workflow_state = WorkflowStateManager(
        **persistence_kwargs,
        checkpoint_interval=5,  # Checkpoint every 5 steps
    )

    # Create workflow state
    state = WorkflowState(
        workflow_id="research_pipeline",
        status=WorkflowStatus.PENDING,
        total_steps=10,
        current_step=0,
        context={},
    )

    await workflow_state.create(state)

    # Update step progress
    await workflow_state.update_step(
        workflow_id="research_pipeline",
        step=StepState(
            step_number=1,
            name="data_collection",
            status="completed",
            result={"documents": 150},
            duration_ms=5400,
        ),
    )

    # Get current state
    current = await workflow_state.get("research_pipeline")
    logger.info(f"Progress: {current.current_step}/{current.total_steps}")  # type: ignore[union-attr]

    assert current is not None
    assert (current.current_step, current.total_steps) == (1, 10)
    assert current.status is WorkflowStatus.RUNNING
    [step] = current.steps
    assert (step.step_number, step.name, step.status) == (1, "data_collection", "completed")
    assert step.result == {"documents": 150} and step.duration_ms == 5400
    assert isinstance(step.timestamp, datetime) and step.timestamp <= datetime.now()
    assert current.checkpoint_interval == 5
    await workflow_state.close()


async def _pipeline(manager: WorkflowStateManager, workflow_id: str = "research_pipeline") -> None:
    await manager.create(WorkflowState(workflow_id=workflow_id, total_steps=10))
    for number in range(1, 6):
        await manager.update_step(workflow_id, StepState(number, f"step{number}", "completed"))


async def test_reference_checkpointing_example(persistence_kwargs: dict[str, str]) -> None:
    workflow_state = WorkflowStateManager(**persistence_kwargs)
    await _pipeline(workflow_state)
    current_state = {"documents": 150, "summaries": ["a", "b"]}
    workflow_context = {"topic": "boiling points", "budget": 2.5}

    from statekeeper.state import WorkflowCheckpoint

    # Create checkpoint
    checkpoint = WorkflowCheckpoint(
        workflow_id="research_pipeline",
        checkpoint_id="step_5_complete",
        step=5,
        state=current_state,
        context=workflow_context,
        timestamp=datetime.now(),
    )

    await workflow_state.checkpoint(checkpoint)

    # List checkpoints
    checkpoints = await workflow_state.list_checkpoints("research_pipeline")

    # Resume from checkpoint
    await workflow_state.resume_from(
        workflow_id="research_pipeline", checkpoint_id="step_5_complete"
    )

    assert [c.checkpoint_id for c in checkpoints] == ["step_5_complete"]
    assert checkpoints[0].state == current_state and checkpoints[0].context == workflow_context
    assert abs((checkpoints[0].timestamp - checkpoint.timestamp).total_seconds()) < 0.001  # type: ignore[operator]
    current = await workflow_state.get("research_pipeline")
    assert current is not None
    assert current.status is WorkflowStatus.RUNNING
    assert current.state == current_state and current.context == workflow_context
    assert current.current_step == 5
    assert [r.checkpoint_id for r in current.resumes] == ["step_5_complete"]


async def test_reference_pause_and_resume_example(persistence_kwargs: dict[str, str]) -> None:
    workflow_state = WorkflowStateManager(**persistence_kwargs)
    await _pipeline(workflow_state)
    logger = logging.getLogger(__name__)

    # Pause workflow
    await workflow_state.pause("research_pipeline")
    status = await workflow_state.get_status("research_pipeline")
    logger.info(f"Status: {status}")  # WorkflowStatus.PAUSED

    assert status is WorkflowStatus.PAUSED
    assert f"Status: {status}" == "Status: WorkflowStatus.PAUSED"

    # Resume workflow
    await workflow_state.resume("research_pipeline")

    assert await workflow_state.get_status("research_pipeline") is WorkflowStatus.RUNNING

    # Cancel workflow
    await workflow_state.cancel(
        workflow_id="research_pipeline", reason="User requested cancellation"
    )

    current = await workflow_state.get("research_pipeline")
    assert current is not None and current.status is WorkflowStatus.CANCELLED
    assert current.cancel_reason == "User requested cancellation"


# -- the state machine --------------------------------------------------------------------------


async def _workflow_in(manager: WorkflowStateManager, workflow_id: str, status: str) -> None:
    await manager.create(WorkflowState(workflow_id=workflow_id, total_steps=3))
    if status == "pending":
        return
    await manager.start(workflow_id)
    if status == "paused":
        await manager.pause(workflow_id)
    elif status == "completed":
        await manager.complete(workflow_id)
    elif status == "failed":
        await manager.fail(workflow_id, "boom")
    elif status == "cancelled":
        await manager.cancel(workflow_id, "stop")


LEGAL = {
    ("pending", "start"): WorkflowStatus.RUNNING,
    ("pending", "cancel"): WorkflowStatus.CANCELLED,
    ("running", "pause"): WorkflowStatus.PAUSED,
    ("running", "complete"): WorkflowStatus.COMPLETED,
    ("running", "fail"): WorkflowStatus.FAILED,
    ("running", "cancel"): WorkflowStatus.CANCELLED,
    ("paused", "resume"): WorkflowStatus.RUNNING,
    ("paused", "fail"): WorkflowStatus.FAILED,
    ("paused", "cancel"): WorkflowStatus.CANCELLED,
}
STATUSES = ("pending", "running", "paused", "completed", "failed", "cancelled")
OPERATIONS = ("start", "pause", "resume", "complete", "fail", "cancel")


async def test_status_is_a_state_machine(persistence_kwargs: dict[str, str]) -> None:
    manager = WorkflowStateManager(**persistence_kwargs)
    for status in STATUSES:
        for operation in OPERATIONS:
            workflow_id = f"{status}-{operation}"
            await _workflow_in(manager, workflow_id, status)
            before = await manager.get(workflow_id)
            assert before is not None and before.status.value == status
            call = getattr(manager, operation)(workflow_id)
            expected = LEGAL.get((status, operation))
            if expected is None:
                with pytest.raises(FailedPreconditionError) as caught:
                    await call
                assert caught.value.reason == "INVALID_WORKFLOW_TRANSITION"
                assert await manager.get(workflow_id) == before  # nothing changed
            else:
                assert await call is expected
                assert await manager.get_status(workflow_id) is expected


async def test_illegal_step_updates_and_resumes_change_nothing(
    persistence_kwargs: dict[str, str],
) -> None:
    manager = WorkflowStateManager(**persistence_kwargs)
    await _workflow_in(manager, "done", "running")
    await manager.checkpoint(WorkflowCheckpoint("done", "c0", step=0))
    await manager.complete("done")
    await _workflow_in(manager, "stopped", "cancelled")
    await _workflow_in(manager, "held", "paused")
    for workflow_id in ("done", "stopped", "held"):
        before = await manager.get(workflow_id)
        with pytest.raises(FailedPreconditionError):
            await manager.update_step(workflow_id, StepState(1, "x", "completed"))
        assert await manager.get(workflow_id) == before
    for workflow_id in ("done", "stopped"):
        if workflow_id == "stopped":
            await manager.checkpoint(WorkflowCheckpoint("stopped", "c0", step=0))
        before = await manager.get(workflow_id)
        with pytest.raises(FailedPreconditionError):
            await manager.resume_from(workflow_id, "c0")
        assert await manager.get(workflow_id) == before


# -- steps, checkpoints, resume -----------------------------------------------------------------


async def test_update_step_records_history_and_advances(persistence_kwargs: dict[str, str]) -> None:
    manager = WorkflowStateManager(**persistence_kwargs)
    await manager.create(WorkflowState("wf", total_steps=4))
    await manager.update_step("wf", StepState(1, "fetch", "running"), context={"url": "x"})
    await manager.update_step("wf", StepState(1, "fetch", "completed", result={"n": 3}))
    await manager.update_step("wf", StepState(3, "rank", "completed", duration_ms=7))
    recorded = await manager.update_step(
        "wf", StepState(2, "parse", "failed", error="bad html"), state={"pages": 2}
    )
    assert recorded.sequence == 4 and recorded.error == "bad html"
    current = await manager.get("wf")
    assert current is not None
    assert current.current_step == 3  # the highest step recorded
    assert [(s.step_number, s.status) for s in current.steps] == [
        (1, "running"),
        (1, "completed"),
        (3, "completed"),
        (2, "failed"),
    ]
    assert [s.sequence for s in current.steps] == [1, 2, 3, 4]
    assert current.context == {"url": "x"} and current.state == {"pages": 2}


async def test_checkpoint_interval_takes_checkpoints_every_n_completed_steps(
    persistence_kwargs: dict[str, str],
) -> None:
    manager = WorkflowStateManager(**persistence_kwargs, checkpoint_interval=2)
    await manager.create(WorkflowState("wf", total_steps=6))
    for number in range(1, 6):
        await manager.update_step("wf", StepState(number, "work", "running"))
        await manager.update_step(
            "wf", StepState(number, "work", "completed"), state={"done": number}
        )
    checkpoints = await manager.list_checkpoints("wf")
    assert [(c.checkpoint_id, c.step, c.automatic) for c in checkpoints] == [
        ("auto_4", 4, True),
        ("auto_2", 2, True),
    ]
    assert checkpoints[0].state == {"done": 4}
    # A workflow created with an explicit interval keeps it, whoever updates it.
    other = WorkflowStateManager(**persistence_kwargs)
    await other.create(WorkflowState("never", checkpoint_interval=0))
    await other.update_step("never", StepState(1, "w", "completed"))
    assert await other.list_checkpoints("never") == []


async def test_checkpoints_are_ordered_by_step_and_paginated(
    persistence_kwargs: dict[str, str],
) -> None:
    manager = WorkflowStateManager(**persistence_kwargs, max_checkpoints=4)
    await manager.create(WorkflowState("wf", total_steps=20, state={"s": 0}))
    for step in (9, 10, 11, 2, 12, 13):
        await manager.checkpoint(WorkflowCheckpoint("wf", f"cp{step}", step=step))
    listed = [c.checkpoint_id async for c in manager.iter_checkpoints("wf", page_size=3)]
    assert listed == ["cp13", "cp12", "cp11", "cp10"]  # retention kept the newest 4
    latest = await manager.get_checkpoint("wf")
    assert latest is not None and latest.checkpoint_id == "cp13"
    assert latest.state == {"s": 0}  # an unset state takes the workflow's
    assert await manager.get_checkpoint("wf", "cp2") is None


async def test_resume_from_keeps_history_and_marks_superseded_steps(
    persistence_kwargs: dict[str, str],
) -> None:
    manager = WorkflowStateManager(**persistence_kwargs)
    await manager.create(WorkflowState("wf", total_steps=5, context={"c": 0}, state={"s": 0}))
    for number in (1, 2):
        await manager.update_step(
            "wf", StepState(number, "w", "completed"), state={"s": number}, context={"c": number}
        )
    await manager.checkpoint(WorkflowCheckpoint("wf", "after_2", step=2))
    for number in (3, 4):
        await manager.update_step("wf", StepState(number, "w", "completed"), state={"s": number})
    await manager.fail("wf", "step 4 produced garbage")

    resume = await manager.resume_from("wf", "after_2")
    assert (resume.checkpoint_id, resume.step) == ("after_2", 2)
    await manager.update_step("wf", StepState(3, "w", "completed"))

    current = await manager.get("wf")
    assert current is not None
    assert current.status is WorkflowStatus.RUNNING and current.error is None
    assert current.state == {"s": 2} and current.context == {"c": 2}
    assert current.current_step == 3
    assert [(s.step_number, s.superseded) for s in current.steps] == [
        (1, False),
        (2, False),
        (3, True),
        (4, True),
        (3, False),
    ]
    assert [r.checkpoint_id for r in current.resumes] == ["after_2"]
    assert isinstance(current.resumes[0].timestamp, datetime)


async def test_a_long_history_is_paged_newest_first(persistence_kwargs: dict[str, str]) -> None:
    manager = WorkflowStateManager(**persistence_kwargs)
    await manager.create(WorkflowState("wf", total_steps=9))
    await manager.checkpoint(WorkflowCheckpoint("wf", "at_3", step=3))
    for number in range(1, 25):
        if number % 8 == 0:
            await manager.resume_from("wf", "at_3")
        await manager.update_step("wf", StepState(3 + number % 6, "w", "completed"))
    whole = await manager.get("wf")
    assert whole is not None and len(whole.steps) == 24
    paged = [step async for step in manager.iter_steps("wf", page_size=5)]
    assert paged == whole.steps[::-1]
    assert [s.sequence for s in paged] == list(range(24, 0, -1))
    assert {s.superseded for s in paged} == {True, False}
    bare = await manager.get("wf", include_steps=False)
    assert bare is not None and bare.steps == [] and len(bare.resumes) == 3
    with pytest.raises(NotFoundError):
        [step async for step in manager.iter_steps("nope")]


async def test_list_workflows(persistence_kwargs: dict[str, str]) -> None:
    manager = WorkflowStateManager(**persistence_kwargs)
    for workflow_id in ("w1", "w10", "w2"):
        await manager.create(WorkflowState(workflow_id))
    await manager.checkpoint(WorkflowCheckpoint("w1", "record", step=0))  # not a workflow
    await manager.start("w10")
    assert [w.workflow_id for w in await manager.list_workflows()] == ["w1", "w10", "w2"]
    running = await manager.list_workflows(WorkflowStatus.RUNNING)
    assert [w.workflow_id for w in running] == ["w10"]
    paged = [w.workflow_id async for w in manager.iter_workflows(page_size=1)]
    assert paged == ["w1", "w10", "w2"]


# -- watching -----------------------------------------------------------------------------------


async def test_watch_delivers_status_and_step_changes(persistence_kwargs: dict[str, str]) -> None:
    manager = WorkflowStateManager(**persistence_kwargs)
    watch = manager.watch("wf")
    wanted = 7

    async def collect() -> list[WorkflowEvent]:
        seen: list[WorkflowEvent] = []
        async for event in watch:
            seen.append(event)
            if len(seen) == wanted:
                break
        return seen

    task = asyncio.ensure_future(collect())
    await watch.started()
    await manager.create(WorkflowState("wf", total_steps=2))
    await manager.create(WorkflowState("wf1"))  # another workflow: not seen
    await manager.update_step("wf", StepState(1, "a", "completed", result={"k": 1}))
    await manager.checkpoint(WorkflowCheckpoint("wf", "cp1", step=1))
    await manager.pause("wf")
    await manager.resume_from("wf", "cp1")
    events = await asyncio.wait_for(task, 30)
    await watch.aclose()
    summary = [
        (e.type, e.status, e.previous_status, e.step.step_number if e.step else e.checkpoint_id)
        for e in events
    ]
    assert summary == [
        (WorkflowEventType.STATUS_CHANGED, WorkflowStatus.PENDING, None, None),
        (WorkflowEventType.STATUS_CHANGED, WorkflowStatus.RUNNING, WorkflowStatus.PENDING, None),
        (WorkflowEventType.STEP_UPDATED, WorkflowStatus.RUNNING, None, 1),
        (WorkflowEventType.CHECKPOINT_CREATED, WorkflowStatus.RUNNING, None, "cp1"),
        (WorkflowEventType.STATUS_CHANGED, WorkflowStatus.PAUSED, WorkflowStatus.RUNNING, None),
        (WorkflowEventType.RESUMED_FROM_CHECKPOINT, WorkflowStatus.RUNNING, None, "cp1"),
        (WorkflowEventType.STATUS_CHANGED, WorkflowStatus.RUNNING, WorkflowStatus.PAUSED, None),
    ]
    assert events[2].step is not None and events[2].step.result == {"k": 1}
    revisions = [e.revision for e in events]
    assert revisions == sorted(revisions)


# -- bad input ----------------------------------------------------------------------------------


async def test_unknown_ids_are_not_found(persistence_kwargs: dict[str, str]) -> None:
    manager = WorkflowStateManager(**persistence_kwargs)
    assert await manager.get("ghost") is None
    calls = [
        manager.get_status("ghost"),
        manager.update_step("ghost", StepState(1, "a", "completed")),
        manager.pause("ghost"),
        manager.resume("ghost"),
        manager.cancel("ghost", "x"),
        manager.checkpoint(WorkflowCheckpoint("ghost", "c", step=1)),
        manager.list_checkpoints("ghost"),
        manager.get_checkpoint("ghost", "c"),
        manager.resume_from("ghost", "c"),
    ]
    for call in calls:
        with pytest.raises(NotFoundError) as caught:
            await call
        assert caught.value.reason == "WORKFLOW_NOT_FOUND"
    await manager.create(WorkflowState("real"))
    await manager.start("real")
    before = await manager.get("real")
    with pytest.raises(NotFoundError) as caught:
        await manager.resume_from("real", "no_such_checkpoint")
    assert caught.value.reason == "CHECKPOINT_NOT_FOUND"
    assert await manager.get("real") == before


async def test_duplicate_create_is_already_exists(persistence_kwargs: dict[str, str]) -> None:
    manager = WorkflowStateManager(**persistence_kwargs)
    await manager.create(WorkflowState("wf", total_steps=3, context={"v": 1}))
    before = await manager.get("wf")
    with pytest.raises(AlreadyExistsError):
        await manager.create(WorkflowState("wf", total_steps=9, context={"v": 2}))
    assert await manager.get("wf") == before


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda m: m.update_step("wf", StepState(-1, "a", "completed")), "step.step_number"),
        (lambda m: m.update_step("wf", StepState(1, "a", "done")), "step.status"),
        (lambda m: m.update_step("wf", StepState(1, "a", "completed", duration_ms=-5)), None),
        (lambda m: m.update_step("", StepState(1, "a", "completed")), "workflow_id"),
        (lambda m: m.checkpoint(WorkflowCheckpoint("wf", "c", step=-2)), "checkpoint.step"),
        (lambda m: m.checkpoint(WorkflowCheckpoint("wf", "", step=1)), "checkpoint.checkpoint_id"),
        (lambda m: m.create(WorkflowState("")), "workflow.workflow_id"),
        (lambda m: m.create(WorkflowState("a/b")), "workflow.workflow_id"),
        (lambda m: m.create(WorkflowState("new", status=WorkflowStatus.PAUSED)), None),
        (lambda m: m.create(WorkflowState("new", total_steps=-1)), "workflow.total_steps"),
    ],
)
async def test_bad_input_is_invalid_argument_and_changes_nothing(
    persistence_kwargs: dict[str, str], call: Any, field: str | None
) -> None:
    manager = WorkflowStateManager(**persistence_kwargs)
    await manager.create(WorkflowState("wf", total_steps=3))
    before = await manager.get("wf")
    with pytest.raises(InvalidArgumentError) as caught:
        await call(manager)
    if field is not None:
        assert caught.value.violations[0][0] == field
    assert await manager.get("wf") == before
    assert await manager.get("new") is None


# -- concurrency --------------------------------------------------------------------------------


async def test_concurrent_step_updates_in_one_process_lose_nothing(
    persistence_kwargs: dict[str, str],
) -> None:
    managers = [WorkflowStateManager(**persistence_kwargs) for _ in range(2)]
    await managers[0].create(WorkflowState("wf", total_steps=40))
    await asyncio.gather(
        *(
            managers[n % 2].update_step("wf", StepState(n, f"s{n}", "completed"))
            for n in range(1, 41)
        )
    )
    current = await managers[0].get("wf")
    assert current is not None
    assert sorted(s.step_number for s in current.steps) == list(range(1, 41))
    assert [s.sequence for s in current.steps] == list(range(1, 41))
    assert current.current_step == 40


_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from statekeeper.state import StepState, WorkflowStateManager

    async def main(address, first, count):
        manager = WorkflowStateManager(persistence="grpc", address=address)
        await asyncio.gather(*(
            manager.update_step("shared", StepState(n, f"s{n}", "completed"))
            for n in range(first, first + count)
        ))
        await manager.close()

    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
    """
)


def _run_writers(addresses: list[str], per_writer: int) -> None:
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, address, str(1 + index * per_writer), str(per_writer)]
        )
        for index, address in enumerate(addresses)
    ]
    for writer in writers:
        assert writer.wait(timeout=120) == 0


async def test_concurrent_step_updates_from_two_processes_lose_nothing(address: str) -> None:
    manager = WorkflowStateManager(persistence="grpc", address=address)
    await manager.create(WorkflowState("shared", total_steps=60))
    await asyncio.to_thread(_run_writers, [address, address], 30)
    current = await manager.get("shared")
    assert current is not None
    assert sorted(s.step_number for s in current.steps) == list(range(1, 61))
    assert [s.sequence for s in current.steps] == list(range(1, 61))
    assert current.current_step == 60


async def test_two_servers_on_one_redis_serve_one_workflow(
    redis_instances: list[ServerProcess],
) -> None:
    a, b = redis_instances
    via_a = WorkflowStateManager(persistence="grpc", address=a.address, checkpoint_interval=10)
    via_b = WorkflowStateManager(persistence="grpc", address=b.address)
    await via_a.create(WorkflowState("shared", total_steps=60))
    with pytest.raises(AlreadyExistsError):
        await via_b.create(WorkflowState("shared"))

    watch = via_a.watch("shared")

    async def first_pause() -> WorkflowEvent:
        async for event in watch:
            if event.status is WorkflowStatus.PAUSED:
                return event
        raise AssertionError("watch ended")

    paused = asyncio.ensure_future(first_pause())
    await watch.started()
    # Writers in two processes, one through each server, at the same time.
    await asyncio.to_thread(_run_writers, [a.address, b.address], 30)
    current = await via_b.get("shared")
    assert current is not None
    assert sorted(s.step_number for s in current.steps) == list(range(1, 61))
    assert [s.sequence for s in current.steps] == list(range(1, 61))
    checkpoints = await via_b.list_checkpoints("shared")
    assert len(checkpoints) == 6 and all(c.automatic for c in checkpoints)

    await via_b.pause("shared")
    event = await asyncio.wait_for(paused, 30)  # seen live through the other server
    assert event.previous_status is WorkflowStatus.RUNNING
    await watch.aclose()
    assert await via_a.get_status("shared") is WorkflowStatus.PAUSED
    with pytest.raises(FailedPreconditionError):
        await via_a.pause("shared")
    await via_a.resume_from("shared", checkpoints[-1].checkpoint_id)
    assert await via_b.get_status("shared") is WorkflowStatus.RUNNING
    await via_a.close()
    await via_b.close()


async def test_reference_constructor_with_redis(redis_url: str) -> None:
    workflow_state = WorkflowStateManager(
        persistence="redis",
        redis_url=redis_url,
        checkpoint_interval=5,  # Checkpoint every 5 steps
    )
    await _pipeline(workflow_state)
    checkpoints = await workflow_state.list_checkpoints("research_pipeline")
    assert [(c.checkpoint_id, c.step) for c in checkpoints] == [("auto_5", 5)]


async def test_status_changes_pinned_to_a_revision_refuse_a_stale_one(address: str) -> None:
    """PauseWorkflow / ResumeWorkflow / CancelWorkflow with expected_revision (what the console
    sends): the revision GetWorkflow returned changes the status; any other is ABORTED
    (REVISION_CONFLICT) and changes nothing."""
    manager = WorkflowStateManager(persistence="grpc", address=address)
    await manager.create(WorkflowState(workflow_id="pinned", total_steps=3))
    await manager.update_step("pinned", StepState(1, "a", "running"))
    async with grpc.aio.insecure_channel(address) as channel:
        stub = wgrpc.WorkflowServiceStub(channel)

        async def revision() -> int:
            response = await stub.GetWorkflow(wpb.GetWorkflowRequest(workflow_id="pinned"))
            return response.workflow.revision

        shown = await revision()
        await manager.update_step("pinned", StepState(1, "a", "completed"))
        for call in (
            stub.PauseWorkflow(
                wpb.PauseWorkflowRequest(workflow_id="pinned", expected_revision=shown)
            ),
            stub.CancelWorkflow(
                wpb.CancelWorkflowRequest(workflow_id="pinned", reason="x", expected_revision=shown)
            ),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call
            assert refused.value.code() == grpc.StatusCode.ABORTED
            assert "REVISION_CONFLICT" in str(refused.value.trailing_metadata())
        assert await manager.get_status("pinned") is WorkflowStatus.RUNNING
        pause = wpb.PauseWorkflowRequest(workflow_id="pinned", expected_revision=await revision())
        assert (await stub.PauseWorkflow(pause)).status == wpb.WORKFLOW_STATUS_PAUSED
        stale = wpb.ResumeWorkflowRequest(workflow_id="pinned", expected_revision=shown)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ResumeWorkflow(stale)
        assert refused.value.code() == grpc.StatusCode.ABORTED
        resume = wpb.ResumeWorkflowRequest(workflow_id="pinned", expected_revision=await revision())
        assert (await stub.ResumeWorkflow(resume)).status == wpb.WORKFLOW_STATUS_RUNNING
        bad = wpb.PauseWorkflowRequest(workflow_id="pinned", expected_revision=-1)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.PauseWorkflow(bad)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await manager.get_status("pinned") is WorkflowStatus.RUNNING
    await manager.close()


async def test_the_python_api_pins_pause_resume_and_cancel_to_a_revision(
    persistence_kwargs: dict[str, str],
) -> None:
    """``pause`` / ``resume`` / ``cancel`` with ``expected_revision``: the revision ``get``
    returned changes the status; a stale one is a ConflictError (REVISION_CONFLICT) that changes
    nothing."""
    manager = WorkflowStateManager(**persistence_kwargs)
    await manager.create(WorkflowState("pinned-api", total_steps=3))
    await manager.update_step("pinned-api", StepState(1, "a", "running"))
    shown = await manager.get("pinned-api")
    assert shown is not None
    await manager.update_step("pinned-api", StepState(1, "a", "completed"))
    for stale_call in (
        manager.pause("pinned-api", expected_revision=shown.revision),
        manager.cancel("pinned-api", "x", expected_revision=shown.revision),
    ):
        with pytest.raises(ConflictError) as refused:
            await stale_call
        assert refused.value.reason == Reason.REVISION_CONFLICT
        assert refused.value.metadata["workflow_id"] == "pinned-api"
    after = await manager.get("pinned-api")
    assert after is not None and after.status is WorkflowStatus.RUNNING
    assert after.revision != shown.revision
    assert await manager.pause("pinned-api", expected_revision=after.revision) is (
        WorkflowStatus.PAUSED
    )
    with pytest.raises(ConflictError):
        await manager.resume("pinned-api", expected_revision=after.revision)
    paused = await manager.get("pinned-api")
    assert paused is not None and paused.status is WorkflowStatus.PAUSED
    assert await manager.resume("pinned-api", expected_revision=paused.revision) is (
        WorkflowStatus.RUNNING
    )
    running = await manager.get("pinned-api")
    assert running is not None
    assert await manager.cancel("pinned-api", "done", expected_revision=running.revision) is (
        WorkflowStatus.CANCELLED
    )
    # Without a revision the calls behave as before.
    await manager.create(WorkflowState("unpinned"))
    await manager.start("unpinned")
    assert await manager.pause("unpinned") is WorkflowStatus.PAUSED
    await manager.close()
