"""The orchestration engine opens a store written before typed records, and its records carry
the format version."""

from __future__ import annotations

from typing import Any

from statekeeper import values
from statekeeper_server.engine.domains.orchestration import (
    AgentCoordinationState,
    OrchestrationEngine,
    TaskSpec,
    TaskState,
    TeamSettings,
)
from statekeeper_server.engine.storage.memory import MemoryBackend

BASE = "orch/old/"


def old_task(task_id: str, state: str, seq: int, **fields: Any) -> dict[str, Any]:
    """A task map as the format before typed records stored it."""
    task: dict[str, Any] = {
        "id": task_id,
        "type": "analysis",
        "priority": 30,
        "data": {"topic": task_id},
        "caps": ["research"],
        "state": state,
        "agent": "",
        "deliveries": 0,
        "failures": 0,
        "max_retries": 2,
        "error": "",
        "result": None,
        "seq": seq,
        "enqueued": 100.0 + seq,
        "started": None,
        "lease": None,
        "finished": None,
    }
    task.update(fields)
    return task


async def write_old_store(backend: MemoryBackend) -> None:
    """A team with one agent, a pending, a dead-lettered and a completed task, stored with
    plain ``values.pack`` of the maps the previous format wrote."""
    puts = {
        "team": {
            "id": "old",
            "created": 50.0,
            "retention": 100,
            "max_retries": 2,
            "max_deliveries": 4,
        },
        "seq": 3,
        "agent/r": {
            "id": "r",
            "status": "idle",
            "caps": ["research"],
            "task": None,
            "max_tasks": 1,
            "held": [],
            "updated": 60.0,
        },
        "q/p/0970/0000000000000001/p1": old_task("p1", "pending", 1),
        "task/p1": {"at": "q/p/0970/0000000000000001/p1"},
        "q/d/00000000000200000000/d1": old_task(
            "d1", "dead", 2, agent="r", deliveries=3, failures=3, error="boom", finished=200.0
        ),
        "task/d1": {"at": "q/d/00000000000200000000/d1"},
        "q/c/00000000000300000000/c1": old_task(
            "c1", "completed", 3, agent="r", deliveries=1, result={"ok": True}, finished=300.0
        ),
        "task/c1": {"at": "q/c/00000000000300000000/c1"},
    }
    for key, value in puts.items():
        await backend.put(BASE + key, values.pack(value))


async def test_orchestration_reads_records_written_before_typed_records() -> None:
    backend = MemoryBackend()
    await write_old_store(backend)
    engine = OrchestrationEngine(backend)
    view = await engine.get_team("old")
    assert (view.team_id, view.create_time) == ("old", 50.0)
    assert view.settings == TeamSettings(100, 2, 4)
    assert view.agents == {
        "r": AgentCoordinationState(
            agent_id="r",
            status="idle",
            capabilities=["research"],
            current_task=None,
            update_time=60.0,
            max_tasks=1,
        )
    }
    assert (view.queue_counts.pending, view.queue_counts.dead_lettered) == (1, 1)
    assert view.queue_counts.completed == 1
    dead = await engine.get_task("old", "d1")
    assert (dead.state, dead.delivery_count, dead.failure_count, dead.last_error) == (
        TaskState.DEAD_LETTERED,
        3,
        3,
        "boom",
    )
    done = await engine.get_task("old", "c1")
    assert (done.state, done.result, done.finish_time) == (TaskState.COMPLETED, {"ok": True}, 300.0)
    # The old records take part in the transitions: claim the pending one, requeue the dead one.
    claimed = await engine.claim("old", "r", 30.0)
    assert claimed is not None
    assert (claimed.task_id, claimed.priority_name, claimed.required_capabilities) == (
        "p1",
        "high",
        ["research"],
    )
    assert (claimed.sequence, claimed.enqueue_time, claimed.data) == (1, 101.0, {"topic": "p1"})
    requeued = await engine.requeue("old", "d1")
    assert (requeued.state, requeued.failure_count, requeued.sequence) == (TaskState.PENDING, 0, 2)
    # A new task continues the old sequence; what is written now carries the format version.
    task, created = await engine.enqueue("old", TaskSpec(task_id="n1"))
    assert created and task.sequence == 4
    stored = await backend.get(BASE + "agent/r")
    assert stored is not None and values.unpack(stored.value)["_v"] == 1
    assert values.unpack(stored.value)["current_task"] == "p1"
