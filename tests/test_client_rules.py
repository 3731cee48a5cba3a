"""The Python API does not re-check the server's rules: an invalid value given to any manager
is sent, and the typed error the caller gets is the server's (its ErrorInfo reason). Remote,
the server's own request counter (``/metrics``) shows the refused call for that method;
embedded, the error passes through the server's code running in process."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import statekeeper_server
from statekeeper.errors import InvalidArgumentError
from statekeeper.state import (
    AgentCheckpoint,
    AgentRecoveryManager,
    AgentStateStore,
    IndexingProgress,
    KnowledgeStateManager,
    OrchestrationStateManager,
    SpeechStateManager,
    StateConfig,
    StateManager,
    StepState,
    TeamState,
    ToolExecution,
    ToolStateManager,
    WorkflowState,
    WorkflowStateManager,
)
from statekeeper_server.server import StatekeeperServer

from tests.test_metrics import scrape

#: Where the server's code lives: an embedded error raised here came from the server.
SERVER_CODE = Path(statekeeper_server.__file__).parent


@dataclass(frozen=True)
class Case:
    """One invalid call: the RPC it must reach and the server's reason for refusing it."""

    service: str
    method: str
    reason: str
    call: Callable[[dict[str, Any]], Awaitable[Any]]


async def _state_ttl_beyond_the_duration_range(where: dict[str, Any]) -> None:
    config = StateConfig(backend=where["persistence"], address=where.get("address"))
    async with StateManager(config) as manager:
        await manager.save("k", {"n": 1}, ttl=1e12)  # ~31,700 years: no valid Duration


async def _state_key_with_a_control_character(where: dict[str, Any]) -> None:
    config = StateConfig(backend=where["persistence"], address=where.get("address"))
    async with StateManager(config) as manager:
        await manager.get("bad\x00key")


async def _agent_checkpoint_negative_step(where: dict[str, Any]) -> None:
    async with AgentStateStore(**where) as store:
        await store.save_checkpoint(AgentCheckpoint("agent", "c1", step=-1))


class _Agent:
    """An agent the recovery manager can restore (it never gets that far here)."""

    id = "agent"

    def restore_from_checkpoint(self, state: Any) -> None:
        raise AssertionError("restored despite a negative attempt limit")


async def _recovery_with_a_negative_attempt_limit(where: dict[str, Any]) -> None:
    async with AgentStateStore(**where) as store:
        await store.save_checkpoint(AgentCheckpoint("agent", "c1", step=1))
        recovery = AgentRecoveryManager(store, max_recovery_attempts=-1)
        recovery.register(_Agent())
        await recovery.recover("agent")


async def _workflow_step_of_an_unknown_status(where: dict[str, Any]) -> None:
    async with WorkflowStateManager(**where) as workflows:
        await workflows.create(WorkflowState("wf", total_steps=3))
        await workflows.update_step("wf", StepState(1, "s", status="finished"))  # type: ignore[arg-type]


async def _workflows_filtered_by_an_unknown_status(where: dict[str, Any]) -> None:
    async with WorkflowStateManager(**where) as workflows:
        await workflows.create(WorkflowState("wf", total_steps=3))
        # An unknown name is not "any status": it must not list every workflow.
        await workflows.list_workflows("finished")  # type: ignore[arg-type]


async def _task_priority_not_a_level(where: dict[str, Any]) -> None:
    async with OrchestrationStateManager(**where) as orchestration:
        await orchestration.create_team(TeamState(team_id="team"))
        await orchestration.enqueue_task("team", {"id": "t1", "priority": 1.5})


async def _task_priority_out_of_range(where: dict[str, Any]) -> None:
    async with OrchestrationStateManager(**where) as orchestration:
        await orchestration.create_team(TeamState(team_id="team"))
        await orchestration.enqueue_task("team", {"id": "t1", "priority": 5000})


async def _tasks_of_an_unknown_state(where: dict[str, Any]) -> None:
    async with OrchestrationStateManager(**where) as orchestration:
        await orchestration.create_team(TeamState(team_id="team"))
        async for _ in orchestration.iter_tasks("team", "finished"):
            pass


async def _indexing_more_processed_than_total(where: dict[str, Any]) -> None:
    async with KnowledgeStateManager(**where) as knowledge:
        progress = IndexingProgress("kb", total_documents=1, processed_documents=2)
        await knowledge.update_indexing_progress(progress)


async def _tool_execution_id_with_a_slash(where: dict[str, Any]) -> None:
    async with ToolStateManager(**where) as tools:
        await tools.start_execution(ToolExecution("a/b", "search"))


async def _speech_status_unknown(where: dict[str, Any]) -> None:
    async with SpeechStateManager(**where) as speech:
        session_id = await speech.create_session("voice")
        await speech.update_session_status(session_id, "talking")  # type: ignore[arg-type]


async def _speech_streaming_mode_unknown(where: dict[str, Any]) -> None:
    async with SpeechStateManager(**where) as speech:
        await speech.create_session("voice", "sideways")  # type: ignore[arg-type]


async def _tool_started_in_an_unknown_status(where: dict[str, Any]) -> None:
    async with ToolStateManager(**where) as tools:
        await tools.start_execution(ToolExecution("e1", "search", status="flying"))  # type: ignore[arg-type]


CASES = {
    "state-ttl": Case(
        "StateService", "Save", "INVALID_DURATION", _state_ttl_beyond_the_duration_range
    ),
    "state-key": Case("StateService", "Get", "INVALID_KEY", _state_key_with_a_control_character),
    "agent-step": Case(
        "AgentService", "SaveCheckpoint", "INVALID_ARGUMENT", _agent_checkpoint_negative_step
    ),
    "recovery-attempts": Case(
        "AgentService", "BeginRecovery", "INVALID_ARGUMENT", _recovery_with_a_negative_attempt_limit
    ),
    "workflow-status": Case(
        "WorkflowService", "UpdateStep", "INVALID_ARGUMENT", _workflow_step_of_an_unknown_status
    ),
    "workflow-filter": Case(
        "WorkflowService",
        "ListWorkflows",
        "INVALID_ARGUMENT",
        _workflows_filtered_by_an_unknown_status,
    ),
    "task-priority-type": Case(
        "OrchestrationService", "EnqueueTask", "INVALID_PRIORITY", _task_priority_not_a_level
    ),
    "task-priority-range": Case(
        "OrchestrationService", "EnqueueTask", "INVALID_PRIORITY", _task_priority_out_of_range
    ),
    "task-state": Case(
        "OrchestrationService", "ListTasks", "INVALID_ARGUMENT", _tasks_of_an_unknown_state
    ),
    "knowledge-counts": Case(
        "KnowledgeService",
        "UpdateIndexingProgress",
        "INVALID_ARGUMENT",
        _indexing_more_processed_than_total,
    ),
    "tool-id": Case(
        "ToolService", "StartExecution", "INVALID_ARGUMENT", _tool_execution_id_with_a_slash
    ),
    "speech-mode": Case(
        "SpeechService", "CreateSession", "INVALID_ARGUMENT", _speech_streaming_mode_unknown
    ),
    "tool-status": Case(
        "ToolService", "StartExecution", "INVALID_ARGUMENT", _tool_started_in_an_unknown_status
    ),
    "speech-status": Case(
        "SpeechService", "UpdateSessionStatus", "INVALID_ARGUMENT", _speech_status_unknown
    ),
}


async def refused_calls(server: StatekeeperServer, service: str, method: str) -> float:
    """The server's count of ``service.method`` calls that ended INVALID_ARGUMENT (scraped
    from another thread: the server's loop answers the store gauges meanwhile)."""
    text = await asyncio.to_thread(scrape, server.metrics_port)
    labels = f'code="INVALID_ARGUMENT",method="{method}",service="statekeeper.v1.{service}"'
    for line in text.splitlines():
        if line.startswith("statekeeper_requests_total{") and labels in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize("name", CASES)
async def test_an_invalid_value_is_refused_by_the_server(
    name: str, metrics_server: StatekeeperServer
) -> None:
    case = CASES[name]
    before = await refused_calls(metrics_server, case.service, case.method)
    address = f"127.0.0.1:{metrics_server.port}"
    with pytest.raises(InvalidArgumentError) as refused:
        await case.call({"persistence": "grpc", "address": address})
    assert refused.value.reason == case.reason
    assert await refused_calls(metrics_server, case.service, case.method) == before + 1


@pytest.mark.parametrize("name", CASES)
async def test_an_invalid_value_is_refused_by_the_embedded_server_code(name: str) -> None:
    case = CASES[name]
    with pytest.raises(InvalidArgumentError) as refused:
        await case.call({"persistence": "memory"})
    assert refused.value.reason == case.reason
    # The refusal passed through the server's code (its servicer converting the request, or
    # the engine): a check in the client would raise before any server frame ran.
    frames = [Path(frame.filename) for frame in traceback.extract_tb(refused.value.__traceback__)]
    assert any(frame.is_relative_to(SERVER_CODE) for frame in frames), frames
