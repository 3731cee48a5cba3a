"""A program that builds every manager of the reference page at module level, before any
event loop exists, and uses them in two successive ``asyncio.run`` calls (the second reads
what the first wrote); then builds a second set inside one ``asyncio.run`` and uses it in the
next. Run by tests/test_client.py as ``python binding_program.py '<json settings>'``.

Settings: ``persistence`` ("memory", "file", "redis", "grpc") and its ``address`` /
``redis_url`` / ``file_path``, plus ``backend_path`` for the file backend object.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from statekeeper.state import (
    AgentCheckpoint,
    AgentCoordinationState,
    AgentRecoveryManager,
    AgentStateStore,
    FileBackend,
    IndexingProgress,
    KnowledgeStateManager,
    MemoryBackend,
    OrchestrationStateManager,
    RedisBackend,
    SpeechStateManager,
    StateConfig,
    StateManager,
    TeamState,
    ToolExecution,
    ToolStateManager,
    WorkflowState,
    WorkflowStateManager,
)

SETTINGS: dict[str, Any] = json.loads(sys.argv[1])
PERSISTENCE = SETTINGS["persistence"]
KWARGS = {k: v for k, v in SETTINGS.items() if k in ("address", "redis_url", "file_path")}


class Agent:
    """The smallest recoverable agent."""

    id = "agent_1"
    restored: Any = None

    def restore_from_checkpoint(self, state: Any) -> None:
        self.restored = state


def build(name: str) -> dict[str, Any]:
    """Every manager of the page, and a StateManager over each kind of backend object (a file
    backend object in its own directory ``name``)."""
    config = StateConfig(backend=PERSISTENCE, **KWARGS)
    agent_store = AgentStateStore(PERSISTENCE, **KWARGS)
    recovery = AgentRecoveryManager(agent_store=agent_store, max_recovery_attempts=100)
    recovery.register(Agent())
    managers: dict[str, Any] = {
        "state": StateManager(config=config),
        "agents": agent_store,
        "recovery": recovery,
        "workflows": WorkflowStateManager(PERSISTENCE, **KWARGS),
        "orchestration": OrchestrationStateManager(PERSISTENCE, **KWARGS),
        "knowledge": KnowledgeStateManager(PERSISTENCE, **KWARGS),
        "tools": ToolStateManager(PERSISTENCE, **KWARGS),
        "speech": SpeechStateManager(PERSISTENCE, **KWARGS),
    }
    if PERSISTENCE == "memory":
        managers["backend"] = StateManager(StateConfig(backend=MemoryBackend()))
    elif PERSISTENCE == "file":
        backend = FileBackend(
            base_path=f"{SETTINGS['backend_path']}/{name}", format="json", compression=True
        )
        managers["backend"] = StateManager(StateConfig(backend=backend))
    elif PERSISTENCE == "redis":
        backend = RedisBackend(url=SETTINGS["redis_url"], db=0, key_prefix="objects:")
        managers["backend"] = StateManager(StateConfig(backend=backend))
    return managers


async def write(m: dict[str, Any], tag: str) -> None:
    """One write with every manager."""
    await m["state"].save(f"k-{tag}", {"tag": tag})
    await m["agents"].save_checkpoint(
        AgentCheckpoint(agent_id="agent_1", checkpoint_id=f"c-{tag}", step=1, state={"t": tag})
    )
    await m["workflows"].create(WorkflowState(workflow_id=f"w-{tag}", total_steps=2))
    await m["orchestration"].create_team(
        TeamState(team_id=f"t-{tag}", agents={"a": AgentCoordinationState(agent_id="a")})
    )
    await m["knowledge"].update_indexing_progress(
        IndexingProgress(knowledge_base_id=f"kb-{tag}", total_documents=3)
    )
    await m["tools"].start_execution(ToolExecution(execution_id=f"e-{tag}", tool_name=tag))
    await m["speech"].create_session("voice", session_id=f"s-{tag}")
    if "backend" in m:
        await m["backend"].save(f"b-{tag}", tag)


async def read(m: dict[str, Any], tag: str) -> None:
    """Read back, with every manager, what :func:`write` wrote."""
    assert await m["state"].get(f"k-{tag}") == {"tag": tag}
    checkpoint = await m["agents"].get_checkpoint("agent_1", f"c-{tag}")
    assert checkpoint is not None and checkpoint.state == {"t": tag}
    assert await m["recovery"].recover("agent_1", from_checkpoint=f"c-{tag}")
    assert m["recovery"].agents["agent_1"].restored == {"t": tag}
    workflow = await m["workflows"].get(f"w-{tag}")
    assert workflow is not None and workflow.total_steps == 2
    team = await m["orchestration"].get_team(f"t-{tag}")
    assert team is not None and list(team.agents) == ["a"]
    progress = await m["knowledge"].get_indexing_progress(f"kb-{tag}")
    assert progress is not None and progress.total_documents == 3
    assert (await m["tools"].get_execution(f"e-{tag}")) is not None
    assert (await m["speech"].get_session(f"s-{tag}")) is not None
    if "backend" in m:
        assert await m["backend"].get(f"b-{tag}") == tag


MODULE_LEVEL = build("module")


async def build_inside() -> dict[str, Any]:
    """The managers made inside one loop (and used in the next)."""
    return build("inside")


def main() -> None:
    asyncio.run(write(MODULE_LEVEL, "first"))
    asyncio.run(read(MODULE_LEVEL, "first"))
    inside = asyncio.run(build_inside())
    asyncio.run(write(inside, "second"))
    asyncio.run(read(inside, "second"))
    print("every manager worked across event loops")


if __name__ == "__main__":
    main()
