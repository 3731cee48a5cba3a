"""The rules behind two reference calls: who ``assign_task`` may hand a task to, and what
``get_tool_stats`` counts."""

from __future__ import annotations

from typing import Any

import pytest
from statekeeper.errors import FailedPreconditionError
from statekeeper.state import (
    AgentCoordinationState,
    OrchestrationStateManager,
    TeamState,
    ToolExecution,
    ToolStateManager,
)


def team(agents: dict[str, AgentCoordinationState]) -> TeamState:
    """A team of ``agents``."""
    return TeamState(team_id="t", agents=agents)


async def test_assign_is_the_coordinators_decision_within_the_agents_capacity(
    persistence_kwargs: dict[str, Any],
) -> None:
    async with OrchestrationStateManager(**persistence_kwargs) as orch:
        await orch.create_team(
            team(
                {
                    "researcher": AgentCoordinationState("researcher", capabilities=["research"]),
                    "pair": AgentCoordinationState("pair", capabilities=["research"], max_tasks=2),
                    "away": AgentCoordinationState("away", "offline", capabilities=["research"]),
                }
            )
        )
        for task_id in ("t1", "t2", "t3", "t4", "t5"):
            await orch.enqueue_task("t", {"id": task_id, "capability": "research"})
        # A status and current task the coordinator set do not block an assignment ...
        await orch.update_agent_status("t", "researcher", "working", current_task="outside")
        available = await orch.get_available_agents("t", capability="research")
        assert [agent.agent_id for agent in available] == ["pair"]  # only idle agents listed
        assigned = await orch.assign_task("t", "t1", "researcher")
        assert assigned.agent_id == "researcher"
        # ... its capacity of queue tasks (default 1) does, and so does being offline.
        with pytest.raises(FailedPreconditionError) as busy:
            await orch.assign_task("t", "t2", "researcher")
        assert busy.value.reason == "AGENT_BUSY"
        with pytest.raises(FailedPreconditionError) as offline:
            await orch.assign_task("t", "t2", "away")
        assert offline.value.reason == "AGENT_OFFLINE"
        with pytest.raises(FailedPreconditionError) as claim_offline:
            await orch.claim_next_task("t", "away")
        assert claim_offline.value.reason == "AGENT_OFFLINE"
        # An agent with max_tasks=2 holds two.
        await orch.assign_task("t", "t2", "pair")
        claimed = await orch.claim_next_task("t", "pair")
        assert claimed is not None and claimed.id == "t3"
        with pytest.raises(FailedPreconditionError) as full:
            await orch.claim_next_task("t", "pair")
        assert full.value.reason == "AGENT_BUSY"
        snapshot = await orch.get_team("t")
        assert snapshot.agents["pair"].max_tasks == 2
        assert snapshot.agents["pair"].current_task == "t3"
        # Completing frees one place; the agent works on its other task until that ends too.
        await orch.complete_task("t", "t3", {"done": 3})
        after = (await orch.get_team("t")).agents["pair"]
        assert (after.status, after.current_task) == ("working", "t2")
        await orch.complete_task("t", "t2", {"done": 2})
        after = (await orch.get_team("t")).agents["pair"]
        assert (after.status, after.current_task) == ("idle", None)
        await orch.complete_task("t", "t1", {"done": 1})
        researcher = (await orch.get_team("t")).agents["researcher"]
        assert (researcher.status, researcher.current_task) == ("idle", None)
        queue = await orch.get_queue_status("t")
        assert sorted(task.id for task in queue.completed) == ["t1", "t2", "t3"]
        assert [task.id for task in queue.pending] == ["t4", "t5"]


async def test_a_refused_assignment_changes_nothing(persistence_kwargs: dict[str, Any]) -> None:
    async with OrchestrationStateManager(**persistence_kwargs) as orch:
        await orch.create_team(
            team({"w": AgentCoordinationState("w", capabilities=["write"], max_tasks=3)})
        )
        await orch.enqueue_task("t", {"id": "code", "capability": "code"})
        before = await orch.get_team("t")
        with pytest.raises(FailedPreconditionError) as lacking:
            await orch.assign_task("t", "code", "w")
        assert lacking.value.reason == "MISSING_CAPABILITY"
        assert await orch.get_team("t") == before


async def test_tool_stats_count_executions_from_their_start(
    persistence_kwargs: dict[str, Any],
) -> None:
    tools = ToolStateManager(**persistence_kwargs)
    await tools.start_execution(ToolExecution(execution_id="e1", tool_name="search"))
    stats = await tools.get_tool_stats("search")
    assert (stats.total_executions, stats.running_executions) == (1, 1)
    assert (stats.success_rate, stats.error_rate) == (0.0, 0.0)  # none ended yet
    for execution_id in ("e2", "e3", "e4"):
        await tools.start_execution(ToolExecution(execution_id=execution_id, tool_name="search"))
    await tools.complete_execution("e1", {"ok": 1}, duration_ms=10)
    await tools.complete_execution("e2", {"ok": 2}, duration_ms=30)
    await tools.fail_execution("e3", "boom", duration_ms=50)
    stats = await tools.get_tool_stats("search")
    assert stats.total_executions == 4 and stats.running_executions == 1
    assert (stats.successful_executions, stats.failed_executions) == (2, 1)
    assert stats.success_rate == pytest.approx(2 / 3)  # over the three ended ones
    assert stats.error_rate == pytest.approx(1 / 3)
    assert stats.avg_duration_ms == pytest.approx(30)
    await tools.close()
