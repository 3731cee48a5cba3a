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


class CountingBackend(MemoryBackend):
    """A memory backend that counts the entries its range reads return."""

    def __init__(self) -> None:
        super().__init__()
        self.read = 0

    async def range(self, *args: Any, **kwargs: Any) -> Any:
        page = await super().range(*args, **kwargs)
        self.read += len(page.entries)
        return page


async def test_claim_reads_the_index_heads_not_the_queue() -> None:
    backend = CountingBackend()
    engine = OrchestrationEngine(backend)
    agents = [
        AgentCoordinationState(agent_id="x-worker", capabilities=["x"]),
        AgentCoordinationState(agent_id="y-worker", capabilities=["y", "x"], max_tasks=3),
        AgentCoordinationState(agent_id="z-worker", capabilities=["z"]),
        AgentCoordinationState(agent_id="y-only", capabilities=["y"]),
    ]
    await engine.create_team("t", agents, [], TeamSettings())
    for number in range(1500):
        await engine.enqueue("t", TaskSpec(task_id=f"x{number}", required_capabilities=["x"]))
    await engine.enqueue("t", TaskSpec(task_id="tail", required_capabilities=["y"]))
    await engine.enqueue(
        "t", TaskSpec(task_id="urgent", required_capabilities=["x", "y"], priority_name="high")
    )
    backend.read = 0
    # The only task for z is none at all: the claim reads the capability sets and nothing else.
    assert await engine.claim("t", "z-worker", 30.0) is None
    assert backend.read <= 3
    backend.read = 0
    # The only task for y alone is at the queue's tail, behind 1,500 others.
    tail = await engine.claim("t", "y-only", 30.0)
    assert tail is not None and tail.task_id == "tail"
    assert backend.read <= 10
    backend.read = 0
    # An agent with both gets the most urgent task first, then the oldest of its priority.
    first = await engine.claim("t", "y-worker", 30.0)
    second = await engine.claim("t", "y-worker", 30.0)
    third = await engine.claim("t", "y-worker", 30.0)
    assert [t.task_id for t in (first, second, third) if t] == ["urgent", "x0", "x1"]
    assert backend.read <= 3 * 10
    backend.read = 0
    # ... while the x-worker never sees what it cannot do.
    claimed = await engine.claim("t", "x-worker", 30.0)
    assert claimed is not None and claimed.task_id == "x2"
    assert backend.read <= 10
    view = await engine.get_team("t")
    assert (view.queue_counts.pending, view.queue_counts.in_progress) == (1497, 5)


async def test_queue_status_is_counts_and_first_pages() -> None:
    engine = OrchestrationEngine(MemoryBackend())
    agents = [AgentCoordinationState(agent_id="w", max_tasks=10)]
    await engine.create_team("t", agents, [], TeamSettings(completed_retention=3))
    for number in range(7):
        await engine.enqueue("t", TaskSpec(task_id=f"t{number}"))
    for _ in range(5):
        task = await engine.claim("t", "w", 30.0)
        assert task is not None
        await engine.complete("t", task.task_id, {"ok": True})
    await engine.claim("t", "w", 30.0)
    status = await engine.queue_status("t", page_size=2)
    # Retention keeps the newest three completed tasks; the counts say so.
    assert (status.counts.pending, status.counts.in_progress) == (1, 1)
    assert (status.counts.completed, status.counts.dead_lettered) == (3, 0)
    assert [t.task_id for t in status.queue.completed] == ["t2", "t3"]
    assert status.next_page_tokens.completed and not status.next_page_tokens.pending
    rest, token = await engine.list_tasks(
        "t", TaskState.COMPLETED, 2, status.next_page_tokens.completed
    )
    assert ([t.task_id for t in rest], token) == (["t4"], "")
    assert (await engine.get_team("t")).queue_counts == status.counts
