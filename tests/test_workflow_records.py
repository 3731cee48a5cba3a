"""The typed records of the agent and workflow managers: stores written in the previous format
keep opening, history is never rewritten, and the newest recoverable checkpoint is one read."""

from __future__ import annotations

from typing import Any

import pytest
from statekeeper import values
from statekeeper.errors import InvalidArgumentError, Reason
from statekeeper_server.engine.domains.agents import (
    AgentCheckpoint,
    AgentEngine,
    AgentSnapshot,
    RecoveryStatus,
)
from statekeeper_server.engine.domains.checkpoints import order_key, sequence_key
from statekeeper_server.engine.domains.workflows import (
    StepState,
    StepStatus,
    WorkflowCheckpoint,
    WorkflowEngine,
    WorkflowResume,
    WorkflowState,
    WorkflowStatus,
)
from statekeeper_server.engine.storage.backend import Entry
from statekeeper_server.engine.storage.memory import MemoryBackend


async def _put_old(backend: MemoryBackend, key: str, record: dict[str, Any]) -> None:
    """Store ``record`` as the managers stored it before typed records: a plain map."""
    await backend.put(key, values.pack(record))


def _old_agent_checkpoint(checkpoint_id: str, step: int, sequence: int, recoverable: bool) -> Any:
    return {
        "agent_id": "a1",
        "checkpoint_id": checkpoint_id,
        "step": step,
        "state": {"at": step},
        "recoverable": recoverable,
        "timestamp": 100.0 + sequence,
        "metadata": None,
        "sequence": sequence,
    }


async def test_agents_read_records_written_before_typed_records() -> None:
    backend = MemoryBackend()
    base = "agent/a1/"
    await _put_old(
        backend,
        base + "meta",
        {
            "ckpt_seq": 2,
            "snap_seq": 1,
            "attempts": 1,
            "last_attempt": 90.0,
            "last_checkpoint_id": "c1",
            "last_success": None,
            "recoveries": 3,
        },
    )
    await _put_old(
        backend,
        base + "snap/" + sequence_key(1),
        {
            "agent_id": "a1",
            "timestamp": 50.0,
            "memory_state": {"m": 1},
            "tool_state": None,
            "conversation_history": ["hi"],
            "metadata": {"v": "1"},
            "snapshot_id": "1",
            "sequence": 1,
        },
    )
    # c1 is recoverable, the newer c2 is not: the old store kept no pointer to c1.
    for checkpoint_id, step, sequence, recoverable in (("c1", 1, 1, True), ("c2", 2, 2, False)):
        order = order_key(step, sequence)
        await _put_old(
            backend,
            base + "ckpt/" + order,
            _old_agent_checkpoint(checkpoint_id, step, sequence, recoverable),
        )
        await _put_old(backend, base + "cid/" + checkpoint_id, {"order": order})
    engine = AgentEngine(backend)

    assert await engine.get_snapshot("a1") == AgentSnapshot(
        "a1", "1", 50.0, {"m": 1}, None, ["hi"], {"v": "1"}, 1
    )
    status = await engine.recovery_status("a1")
    assert (status.attempts, status.last_attempt_time, status.recoveries) == (1, 90.0, 3)
    assert (await engine.get_checkpoint("a1")).checkpoint_id == "c2"
    assert (await engine.get_checkpoint("a1", recoverable_only=True)).checkpoint_id == "c1"
    chosen, attempt = await engine.begin_recovery("a1")
    assert (chosen.checkpoint_id, chosen.state, attempt) == ("c1", {"at": 1}, 2)
    # The next save continues the old counters and starts keeping the pointer.
    saved, _ = await engine.save_checkpoint(AgentCheckpoint("a1", "c3", step=3))
    assert saved.sequence == 3
    meta = await backend.get(base + "meta")
    assert meta is not None and values.unpack(meta.value)["newest_recoverable"] == order_key(1, 1)
    assert (await engine.get_checkpoint("a1", recoverable_only=True)).checkpoint_id == "c1"
    assert [c.checkpoint_id for c in (await engine.list_checkpoints("a1"))[0]] == [
        "c3",
        "c2",
        "c1",
    ]


async def test_workflows_read_records_written_before_typed_records() -> None:
    backend = MemoryBackend()
    base = "wf/wf/"
    await _put_old(
        backend,
        base + "record",
        {
            "workflow_id": "wf",
            "status": "PAUSED",
            "total_steps": 5,
            "current_step": 2,
            "context": {"c": 1},
            "state": {"s": 1},
            "metadata": {},
            "cancel_reason": "",
            "error": "",
            "checkpoint_interval": 0,
            "keep_checkpoints": 0,
            "created": 10.0,
            "updated": 20.0,
            "step_seq": 3,
            "ckpt_seq": 1,
            "completed_steps": 3,
            "resumes": [
                {"checkpoint_id": "cp", "step": 1, "timestamp": 15.0, "history_sequence": 3}
            ],
            "status_changed": True,
            "previous_status": "RUNNING",
            "resumed": False,
        },
    )
    for sequence, number in ((1, 1), (2, 2), (3, 2)):
        await _put_old(
            backend,
            base + f"step/{sequence:020d}",
            {
                "step_number": number,
                "name": f"s{number}",
                "status": "COMPLETED",
                "result": {"n": number},
                "duration_ms": 5,
                "error": "",
                "timestamp": 10.0 + sequence,
                "sequence": sequence,
            },
        )
    order = order_key(1, 1)
    await _put_old(
        backend,
        base + "ckpt/" + order,
        {
            "workflow_id": "wf",
            "checkpoint_id": "cp",
            "step": 1,
            "state": {"s": 0},
            "context": {"c": 0},
            "timestamp": 12.0,
            "automatic": False,
            "sequence": 1,
        },
    )
    await _put_old(backend, base + "cid/cp", {"order": order})
    engine = WorkflowEngine(backend)

    workflow = await engine.get("wf")
    assert (workflow.status, workflow.create_time, workflow.current_step) == (
        WorkflowStatus.PAUSED,
        10.0,
        2,
    )
    assert workflow.resumes == [WorkflowResume("cp", 1, 15.0, 3)]
    # Step 2 (sequence 2) was recorded before the resume to step 1: superseded; the later one
    # is not.
    assert [(s.step_number, s.status, s.superseded) for s in workflow.steps] == [
        (1, StepStatus.COMPLETED, False),
        (2, StepStatus.COMPLETED, True),
        (2, StepStatus.COMPLETED, False),
    ]
    assert (await engine.status("wf")) is WorkflowStatus.PAUSED
    assert [w.workflow_id for w in (await engine.list_workflows(WorkflowStatus.PAUSED))[0]] == [
        "wf"
    ]
    # Writes continue the old counters; a new resume is a record of its own, added to the
    # inline ones.
    await engine.transition("wf", "resume")
    update = await engine.update_step("wf", StepState(3, status=StepStatus.COMPLETED))
    assert (update.step.sequence, update.status) == (4, WorkflowStatus.RUNNING)
    resume, _ = await engine.resume_from("wf", "cp")
    assert resume.history_sequence == 5
    workflow = await engine.get("wf")
    assert [r.history_sequence for r in workflow.resumes] == [3, 5]
    assert workflow.state == {"s": 0}
    assert (await engine.get_checkpoint("wf")).checkpoint_id == "cp"
    # The step listing marks steps from the inline resume and the stored one alike, page by page.
    await engine.update_step("wf", StepState(2, status=StepStatus.COMPLETED))
    listed, token = await engine.list_steps("wf", page_size=2)
    while token:
        page, token = await engine.list_steps("wf", page_size=2, page_token=token)
        listed += page
    marks = [(s.sequence, s.step_number, s.superseded) for s in listed]
    assert marks == [(5, 2, False), (4, 3, True), (3, 2, True), (2, 2, True), (1, 1, False)]
    assert marks == [
        (s.sequence, s.step_number, s.superseded) for s in reversed((await engine.get("wf")).steps)
    ]


async def _record_size(backend: MemoryBackend, key: str) -> int:
    entry = await backend.get(key)
    assert entry is not None
    return len(entry.value)


async def test_a_workflow_write_does_not_rewrite_its_history() -> None:
    backend = MemoryBackend()
    engine = WorkflowEngine(backend)
    await engine.create(WorkflowState("wf"))
    await engine.checkpoint(WorkflowCheckpoint("wf", "cp", step=0))
    await engine.update_step("wf", StepState(1, status=StepStatus.COMPLETED))
    first = await _record_size(backend, "wf/wf/record")
    for _ in range(30):
        await engine.resume_from("wf", "cp")
        await engine.update_step("wf", StepState(1, status=StepStatus.COMPLETED))
    # The record holds counters, not the history: 30 resumes and 31 steps later it is the same
    # size (give or take the digits of the counters).
    assert await _record_size(backend, "wf/wf/record") <= first + 8
    workflow = await engine.get("wf")
    assert len(workflow.resumes) == 30 and len(workflow.steps) == 31
    # Each step 1 but the last was followed by a resume to the checkpoint at step 0.
    assert [s.superseded for s in workflow.steps] == [True] * 30 + [False]


class CountingBackend(MemoryBackend):
    """The memory backend, counting the entries its reads return."""

    def __init__(self) -> None:
        super().__init__()
        self.read = 0

    async def get(self, key: str) -> Entry | None:
        """Count one entry read."""
        self.read += 1
        return await super().get(key)

    async def range(self, prefix: str, *args: Any, **kwargs: Any) -> Any:
        """Count the entries a range read returns."""
        page = await super().range(prefix, *args, **kwargs)
        self.read += len(page.entries)
        return page

    async def scan(self, span: Any, **kwargs: Any) -> Any:
        """Count the entries a scan returns."""
        page = await super().scan(span, **kwargs)
        self.read += len(page.entries)
        return page


async def test_the_newest_recoverable_checkpoint_is_found_without_a_scan() -> None:
    backend = CountingBackend()
    engine = AgentEngine(backend)
    await engine.save_checkpoint(AgentCheckpoint("a", "safe", step=1, recoverable=True))
    for step in range(2, 60):
        await engine.save_checkpoint(AgentCheckpoint("a", f"c{step}", step=step))
    backend.read = 0
    found = await engine.get_checkpoint("a", recoverable_only=True)
    assert found.checkpoint_id == "safe"
    assert backend.read <= 2  # the agent's meta and the checkpoint, not the 58 newer ones
    backend.read = 0
    chosen, _ = await engine.begin_recovery("a")
    assert chosen.checkpoint_id == "safe" and backend.read <= 2
    # Replacing the newest recoverable one by a checkpoint that is not recoverable moves the
    # pointer to the next one; so does retention removing it.
    await engine.save_checkpoint(AgentCheckpoint("a", "older", step=0, recoverable=True))
    await engine.save_checkpoint(AgentCheckpoint("a", "safe", step=1, recoverable=False))
    assert (await engine.get_checkpoint("a", recoverable_only=True)).checkpoint_id == "older"
    for number in range(3):  # each save prunes a bounded number of the oldest
        await engine.save_checkpoint(
            AgentCheckpoint("a", f"last{number}", step=99 + number), keep_latest=3
        )
    status: RecoveryStatus = await engine.recovery_status("a")
    assert status.newest_recoverable == ""
    assert [c.checkpoint_id for c in (await engine.list_checkpoints("a"))[0]] == [
        "last2",
        "last1",
        "last0",
    ]


async def test_a_page_of_steps_reads_that_page_not_the_history() -> None:
    backend = CountingBackend()
    engine = WorkflowEngine(backend)
    await engine.create(WorkflowState("wf"))
    await engine.checkpoint(WorkflowCheckpoint("wf", "cp", step=2))
    for number in range(300):
        if number % 7 == 6:
            await engine.resume_from("wf", "cp")
        await engine.update_step("wf", StepState(number % 10, status=StepStatus.COMPLETED))
    whole = (await engine.get("wf")).steps[::-1]
    listed: list[StepState] = []
    token, reads = "", []
    while True:
        backend.read = 0
        page, token = await engine.list_steps("wf", page_size=20, page_token=token)
        reads.append(backend.read)
        listed += page
        if not token:
            break
    assert listed == whole  # the same steps, newest first, marked superseded alike
    assert any(s.superseded for s in listed) and not all(s.superseded for s in listed)
    # Each page reads the record, its 20 steps and the resumes among them (one in 7 steps,
    # read ahead by at most a page), not the 300 steps and 42 resumes of the history.
    assert max(reads) <= 1 + 20 + 21


async def test_a_step_listing_is_as_of_its_first_page() -> None:
    engine = WorkflowEngine(MemoryBackend())
    await engine.create(WorkflowState("wf"))
    await engine.checkpoint(WorkflowCheckpoint("wf", "cp", step=1))
    for number in range(1, 7):
        await engine.update_step("wf", StepState(number, status=StepStatus.COMPLETED))
    first, token = await engine.list_steps("wf", page_size=3)
    # A resume to step 1 and a step after the first page change neither the later pages nor
    # their marks; a new listing sees both.
    await engine.resume_from("wf", "cp")
    await engine.update_step("wf", StepState(2, status=StepStatus.COMPLETED))
    rest, last = await engine.list_steps("wf", page_size=3, page_token=token)
    assert last == ""
    assert [(s.step_number, s.superseded) for s in first + rest] == [
        (n, False) for n in range(6, 0, -1)
    ]
    fresh, _ = await engine.list_steps("wf", page_size=10)
    assert [(s.step_number, s.superseded) for s in fresh] == [(2, False)] + [
        (n, n > 1) for n in range(6, 0, -1)
    ]
    other_token = (await engine.list_steps("wf", page_size=1))[1]
    await engine.create(WorkflowState("other"))
    with pytest.raises(InvalidArgumentError) as refused:
        await engine.list_steps("other", page_token=other_token)
    assert refused.value.reason == Reason.INVALID_PAGE_TOKEN
