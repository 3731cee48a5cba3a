"""OrchestrationStateManager: the reference examples, queue order, leases, bad input, and
exactly-once hand-out across two servers on one Redis."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import sys
import textwrap
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from statekeeper.state import (
    AgentCoordinationState,
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    OrchestrationStateManager,
    TaskQueueState,
    TaskStatus,
    TeamChangeType,
    TeamState,
)

from tests.programs import child_processes
from tests.servers import ServerProcess


def worker_team(team_id: str, agents: dict[str, list[str]]) -> TeamState:
    """A team whose agents are all idle, with the given capabilities."""
    return TeamState(
        team_id=team_id,
        agents={
            agent_id: AgentCoordinationState(agent_id=agent_id, status="idle", capabilities=caps)
            for agent_id, caps in agents.items()
        },
        task_queue=TaskQueueState(pending=[], in_progress=[], completed=[]),
    )


async def test_reference_examples(persistence_kwargs: dict[str, Any]) -> None:
    # -- Team State Management (verbatim; persistence="redis" swapped for the test mode) --
    from statekeeper.state import (
        AgentCoordinationState,
        OrchestrationStateManager,
        TaskQueueState,
        TeamState,
    )

    # Initialize orchestration state
    orch_state = OrchestrationStateManager(
        **persistence_kwargs,
        sync_interval=1.0,
    )

    # Create team state
    team_state = TeamState(
        team_id="research_team",
        agents={
            "researcher": AgentCoordinationState(
                agent_id="researcher",
                status="idle",
                capabilities=["research", "analysis"],
                current_task=None,
            ),
            "writer": AgentCoordinationState(
                agent_id="writer",
                status="idle",
                capabilities=["writing", "editing"],
                current_task=None,
            ),
        },
        task_queue=TaskQueueState(
            pending=[],
            in_progress=[],
            completed=[],
        ),
    )

    await orch_state.create_team(team_state)

    # -- Agent Coordination (verbatim) --
    logger = logging.getLogger(__name__)

    # Update agent status
    await orch_state.update_agent_status(
        team_id="research_team",
        agent_id="researcher",
        status="working",
        current_task="task_001",
    )

    # Get team overview
    team = await orch_state.get_team("research_team")
    for agent_id, agent_state in team.agents.items():
        logger.info(f"{agent_id}: {agent_state.status}")

    # Get available agents
    available = await orch_state.get_available_agents(
        team_id="research_team", capability="research"
    )

    assert {a: s.status for a, s in team.agents.items()} == {
        "researcher": "working",
        "writer": "idle",
    }
    assert team.agents["researcher"].current_task == "task_001"
    assert available == []  # the only researcher is working
    writers = await orch_state.get_available_agents("research_team", capability="writing")
    assert [a.agent_id for a in writers] == ["writer"]
    # The researcher finishes task_001 and becomes available again.
    await orch_state.update_agent_status("research_team", "researcher", "idle", None)

    # -- Task Queue Management (verbatim) --
    # Add task to queue
    await orch_state.enqueue_task(
        team_id="research_team",
        task={
            "id": "task_002",
            "type": "analysis",
            "priority": "high",
            "data": {"topic": "AI trends"},
        },
    )

    # Assign task to agent
    await orch_state.assign_task(
        team_id="research_team",
        task_id="task_002",
        agent_id="researcher",
    )

    busy = await orch_state.get_team("research_team")
    assert busy.agents["researcher"].status == "working"
    assert busy.agents["researcher"].current_task == "task_002"
    assert [t.id for t in busy.task_queue.in_progress] == ["task_002"]

    # Complete task
    await orch_state.complete_task(
        team_id="research_team",
        task_id="task_002",
        result={"analysis": "..."},
    )

    # Get queue status
    queue = await orch_state.get_queue_status("research_team")
    logger.info(f"Pending: {len(queue.pending)}")
    logger.info(f"In Progress: {len(queue.in_progress)}")
    logger.info(f"Completed: {len(queue.completed)}")

    assert (len(queue.pending), len(queue.in_progress), len(queue.completed)) == (0, 0, 1)
    done = queue.completed[0]
    assert (done.id, done.status, done.priority, done.data) == (
        "task_002",
        TaskStatus.COMPLETED,
        "high",
        {"topic": "AI trends"},
    )
    assert done.result == {"analysis": "..."}
    assert done.agent_id == "researcher"
    after = await orch_state.get_team("research_team")
    assert after.agents["researcher"].status == "idle"
    assert after.agents["researcher"].current_task is None
    await orch_state.close()


async def test_priority_order_and_fifo_under_concurrent_enqueues(
    persistence_kwargs: dict[str, Any],
) -> None:
    async with OrchestrationStateManager(**persistence_kwargs) as orch:
        await orch.create_team(worker_team("t", {"w": []}))
        priorities: list[str | int] = ["low", "normal", "high", "critical", 25, 1000, 0]
        # Three waves; inside a wave 21 enqueues run concurrently. A wave starts after the
        # previous one returned, so its tasks must come after the earlier ones of equal rank.
        waves = []
        for wave in range(3):
            tasks = [
                {"id": f"w{wave}-{i}", "priority": priorities[i % len(priorities)]}
                for i in range(21)
            ]
            waves.append(await asyncio.gather(*(orch.enqueue_task("t", task) for task in tasks)))
        queued = [t for wave in waves for t in wave]
        assert len({t.sequence for t in queued}) == len(queued)
        level = {"low": 10, "normal": 20, "high": 30, "critical": 40}

        def rank(priority: str | int) -> int:
            return level[priority] if isinstance(priority, str) else priority

        pending = (await orch.get_queue_status("t")).pending
        claimed = []
        while (task := await orch.claim_next_task("t", "w", lease=60)) is not None:
            claimed.append(task)
            await orch.complete_task("t", task.id, agent_id="w")
        assert [t.id for t in claimed] == [t.id for t in pending]
        assert len(claimed) == len(queued)
        keys = [(-rank(t.priority), t.sequence) for t in claimed]
        assert keys == sorted(keys)
        wave_of = {t.id: int(t.id[1]) for t in claimed}
        for a, b in itertools.pairwise(claimed):
            if rank(a.priority) == rank(b.priority):
                assert wave_of[a.id] <= wave_of[b.id]
        assert all(t.delivery_count == 1 for t in claimed)


async def test_claimed_task_of_a_dead_worker_is_redelivered_after_its_lease(
    persistence_kwargs: dict[str, Any],
) -> None:
    async with OrchestrationStateManager(**persistence_kwargs) as orch:
        await orch.create_team(worker_team("t", {"doomed": ["x"], "survivor": ["x"]}))
        await orch.enqueue_task("t", {"id": "job", "capability": "x", "data": {"n": 1}})
        first = await orch.claim_next_task("t", "doomed", lease=0.2)
        assert first is not None and first.id == "job" and first.delivery_count == 1
        # The doomed worker dies here: it never completes, fails or renews. The survivor polls
        # for work until the lease has run out and the task is handed out again.
        for _ in itertools.count():
            second = await orch.claim_next_task("t", "survivor", lease=30)
            if second is not None:
                break
            await asyncio.sleep(0.02)
        assert second.id == "job"
        assert second.delivery_count == 2
        assert second.agent_id == "survivor"
        assert "expired" in second.last_error
        team = await orch.get_team("t")
        assert team.agents["doomed"].status == "idle"
        assert team.agents["doomed"].current_task is None
        # The dead worker's late completion is refused; the survivor's counts.
        with pytest.raises(FailedPreconditionError):
            await orch.complete_task("t", "job", {"by": "doomed"}, agent_id="doomed")
        done = await orch.complete_task("t", "job", {"by": "survivor"}, agent_id="survivor")
        assert done.result == {"by": "survivor"}


async def test_fail_task_retries_then_dead_letters(persistence_kwargs: dict[str, Any]) -> None:
    async with OrchestrationStateManager(**persistence_kwargs) as orch:
        await orch.create_team(worker_team("t", {"w": []}))
        await orch.enqueue_task("t", {"id": "flaky", "max_retries": 1})
        await orch.enqueue_task("t", {"id": "later"})
        task = await orch.claim_next_task("t", "w")
        assert task is not None and task.id == "flaky"
        again = await orch.fail_task("t", "flaky", "timeout talking to tool", agent_id="w")
        assert (again.status, again.failure_count, again.last_error) == (
            TaskStatus.PENDING,
            1,
            "timeout talking to tool",
        )
        # A retried task keeps its place at the head of its priority.
        task = await orch.claim_next_task("t", "w")
        assert task is not None and task.id == "flaky" and task.delivery_count == 2
        dead = await orch.fail_task("t", "flaky", "still failing", agent_id="w")
        assert dead.status is TaskStatus.DEAD_LETTERED
        queue = await orch.get_queue_status("t")
        assert [t.id for t in queue.dead_lettered] == ["flaky"]
        assert [t.id for t in queue.pending] == ["later"]
        assert (await orch.get_team("t")).agents["w"].status == "idle"
        with pytest.raises(FailedPreconditionError):
            await orch.fail_task("t", "flaky", "dead tasks cannot fail again")


async def test_requeue_task_returns_a_dead_lettered_task_once(
    persistence_kwargs: dict[str, Any],
) -> None:
    async with OrchestrationStateManager(**persistence_kwargs) as orch:
        await orch.create_team(worker_team("t", {"w": []}))
        await orch.enqueue_task("t", {"id": "first", "max_retries": 0, "data": {"n": 1}})
        await orch.enqueue_task("t", {"id": "second"})
        claimed = await orch.claim_next_task("t", "w")
        assert claimed is not None and claimed.id == "first"
        dead = await orch.fail_task("t", "first", "broken tool", agent_id="w")
        assert dead.status is TaskStatus.DEAD_LETTERED
        requeued = await orch.requeue_task("t", "first")
        assert (requeued.status, requeued.failure_count, requeued.delivery_count) == (
            TaskStatus.PENDING,
            0,
            0,
        )
        assert (requeued.data, requeued.sequence) == ({"n": 1}, dead.sequence)
        # Back at the head of its priority, ahead of the task enqueued after it.
        queue = await orch.get_queue_status("t")
        assert [t.id for t in queue.pending] == ["first", "second"]
        assert queue.dead_lettered == []
        with pytest.raises(FailedPreconditionError):
            await orch.requeue_task("t", "first")  # a second requeue changes nothing
        with pytest.raises(NotFoundError):
            await orch.requeue_task("t", "ghost")
        assert [t.id for t in (await orch.get_queue_status("t")).pending] == ["first", "second"]
        again = await orch.claim_next_task("t", "w")
        assert again is not None and (again.id, again.delivery_count) == ("first", 1)


async def test_enqueue_is_idempotent_by_task_id(persistence_kwargs: dict[str, Any]) -> None:
    async with OrchestrationStateManager(**persistence_kwargs) as orch:
        await orch.create_team(worker_team("t", {"w": []}))
        first = await orch.enqueue_task("t", {"id": "once", "data": {"v": 1}})
        second = await orch.enqueue_task("t", {"id": "once", "data": {"v": 2}})
        assert second.data == {"v": 1} and second.sequence == first.sequence
        assert [t.id for t in (await orch.get_queue_status("t")).pending] == ["once"]


async def test_completed_retention_is_bounded(persistence_kwargs: dict[str, Any]) -> None:
    orch = OrchestrationStateManager(**persistence_kwargs, completed_retention=5)
    await orch.create_team(worker_team("t", {"w": []}))
    for number in range(12):
        await orch.enqueue_task("t", {"id": f"task{number:02d}"})
        task = await orch.claim_next_task("t", "w")
        assert task is not None
        await orch.complete_task("t", task.id, {"n": number})
    queue = await orch.get_queue_status("t")
    assert [t.id for t in queue.completed] == [f"task{n:02d}" for n in range(7, 12)]
    with pytest.raises(NotFoundError):
        await orch.get_task("t", "task00")
    assert len([t async for t in orch.iter_tasks("t", "completed", page_size=2)]) == 5
    await orch.close()


async def test_bad_input_changes_nothing(persistence_kwargs: dict[str, Any]) -> None:
    async with OrchestrationStateManager(**persistence_kwargs) as orch:
        await orch.create_team(worker_team("t", {"coder": ["code"], "writer": ["write"]}))
        await orch.enqueue_task("t", {"id": "code-it", "capability": "code", "priority": 35})
        await orch.enqueue_task("t", {"id": "other", "capability": "code"})
        await orch.assign_task("t", "other", "coder")
        before = await orch.get_team("t")

        failures: list[tuple[type[Exception], Callable[[], Any]]] = [
            (NotFoundError, lambda: orch.get_team("nope")),
            (NotFoundError, lambda: orch.enqueue_task("nope", {"id": "x"})),
            (NotFoundError, lambda: orch.update_agent_status("t", "ghost", "idle")),
            (NotFoundError, lambda: orch.assign_task("t", "ghost-task", "writer")),
            (NotFoundError, lambda: orch.assign_task("t", "code-it", "ghost")),
            (NotFoundError, lambda: orch.complete_task("t", "ghost-task", {})),
            (NotFoundError, lambda: orch.claim_next_task("t", "ghost")),
            (
                InvalidArgumentError,
                lambda: orch.enqueue_task("t", {"id": "p", "priority": "urgent"}),
            ),
            (InvalidArgumentError, lambda: orch.enqueue_task("t", {"id": "p", "priority": 5000})),
            (InvalidArgumentError, lambda: orch.enqueue_task("t", {"id": "p", "priority": -1})),
            (InvalidArgumentError, lambda: orch.enqueue_task("t", {"id": "p", "priority": 1.5})),
            (InvalidArgumentError, lambda: orch.enqueue_task("t", {"id": "a/b"})),
            (InvalidArgumentError, lambda: orch.update_agent_status("t", "coder", "")),
            # Illegal transitions: task already assigned, agent busy, capability missing,
            # completing a pending task, claiming while holding a task.
            (FailedPreconditionError, lambda: orch.assign_task("t", "other", "writer")),
            (FailedPreconditionError, lambda: orch.assign_task("t", "code-it", "coder")),
            (FailedPreconditionError, lambda: orch.assign_task("t", "code-it", "writer")),
            (FailedPreconditionError, lambda: orch.complete_task("t", "code-it", {})),
            (FailedPreconditionError, lambda: orch.complete_task("t", "other", {}, "writer")),
            (FailedPreconditionError, lambda: orch.claim_next_task("t", "coder")),
            (AlreadyExistsError, lambda: orch.create_team(worker_team("t", {}))),
        ]
        for error, call in failures:
            with pytest.raises(error):
                await call()
        after = await orch.get_team("t")
        assert after == before
        with pytest.raises(InvalidArgumentError) as info:
            await orch.enqueue_task("t", {"id": "p", "priority": "urgent"})
        assert info.value.reason == "INVALID_PRIORITY"
        with pytest.raises(FailedPreconditionError) as busy:
            await orch.assign_task("t", "code-it", "coder")
        assert busy.value.reason == "AGENT_BUSY"
        with pytest.raises(FailedPreconditionError) as lacking:
            await orch.assign_task("t", "code-it", "writer")
        assert lacking.value.reason == "MISSING_CAPABILITY"
        # The writer cannot claim the code task either: nothing it can do is pending.
        assert await orch.claim_next_task("t", "writer") is None


async def test_watch_team_streams_snapshot_then_changes(
    persistence_kwargs: dict[str, Any],
) -> None:
    async with OrchestrationStateManager(**persistence_kwargs) as orch:
        await orch.create_team(worker_team("t", {"w": []}))
        await orch.enqueue_task("t", {"id": "before"})
        changes = orch.watch_team("t")
        snapshot = await anext(changes)
        assert snapshot.type is TeamChangeType.SNAPSHOT and snapshot.team is not None
        assert [t.id for t in snapshot.team.task_queue.pending] == ["before"]
        await orch.claim_next_task("t", "w")
        seen = []
        async for change in changes:
            seen.append(change)
            if change.type is TeamChangeType.AGENT_UPDATED:
                break
        task_change = next(c for c in seen if c.type is TeamChangeType.TASK_UPDATED)
        assert task_change.task is not None and task_change.task.status is TaskStatus.IN_PROGRESS
        assert seen[-1].agent is not None and seen[-1].agent.current_task == "before"
        assert await orch.delete_team("t")
        async for change in changes:
            if change.type is TeamChangeType.TEAM_DELETED:
                break
        await changes.aclose()


WORKER = textwrap.dedent(
    """
    import asyncio, json, sys
    from statekeeper.state import OrchestrationStateManager

    async def main(address, agent):
        orch = OrchestrationStateManager(persistence="grpc", address=address)
        done = []
        while (task := await orch.claim_next_task("fleet", agent, lease=60)) is not None:
            await orch.complete_task("fleet", task.id, {"by": agent}, agent_id=agent)
            done.append(task.id)
        await orch.close()
        print(json.dumps(done))

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_exactly_once_with_two_servers_on_one_redis_and_eight_workers(
    redis_instances: list[ServerProcess],
) -> None:
    first, second = redis_instances
    workers = [f"worker{n}" for n in range(8)]
    orch = OrchestrationStateManager(
        persistence="grpc", address=first.address, completed_retention=2000
    )
    await orch.create_team(worker_team("fleet", {w: [] for w in workers}))
    for n in range(1000):
        await orch.enqueue_task("fleet", {"id": f"task{n:04d}", "data": {"n": n}})
    async with child_processes(
        [
            (sys.executable, "-c", WORKER, (first, second)[n % 2].address, agent)
            for n, agent in enumerate(workers)
        ],
        stdout=asyncio.subprocess.PIPE,
    ) as processes:
        outputs = [(await p.communicate())[0].decode() for p in processes]
    assert all(p.returncode == 0 for p in processes)
    completions = Counter(task for out in outputs for task in json.loads(out))
    assert len(completions) == 1000 and set(completions.values()) == {1}
    assert sum(1 for out in outputs if json.loads(out)) >= 2  # the work was shared
    queue = await orch.get_queue_status("fleet")
    assert (len(queue.pending), len(queue.in_progress), len(queue.completed)) == (0, 0, 1000)
    by_worker = {t.id: t.result["by"] for t in queue.completed}
    for out in outputs:
        agent_tasks = json.loads(out)
        for task_id in agent_tasks:
            assert by_worker[task_id] in workers
    assert all(t.delivery_count == 1 for t in queue.completed)
    await orch.close()
