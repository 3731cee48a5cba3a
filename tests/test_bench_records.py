"""The workflow scaling benchmark's records built in the engine's stored form are the records the
engine's own operations write (so its 100k rows time what a user's store would hold)."""

from __future__ import annotations

from typing import Any

from statekeeper import values
from statekeeper_server.engine.domains.agents import AgentCheckpoint, AgentEngine
from statekeeper_server.engine.domains.workflows import (
    StepState,
    StepStatus,
    WorkflowCheckpoint,
    WorkflowEngine,
    WorkflowState,
)
from statekeeper_server.engine.records import scan
from statekeeper_server.engine.storage.backend import Backend
from statekeeper_server.engine.storage.memory import MemoryBackend

from bench import workflow_scaling

#: Fields that hold the server clock, which differs between two builds.
CLOCKS = {"timestamp", "create_time", "update_time"}


async def _through_the_engine(backend: Backend, size: int) -> None:
    """The benchmark's records, one engine operation at a time."""
    engine = WorkflowEngine(backend)
    await engine.create(WorkflowState("resumed"))
    await engine.checkpoint(WorkflowCheckpoint("resumed", "start", step=0))
    for _ in range(size):
        await engine.resume_from("resumed", "start")
        await engine.update_step("resumed", StepState(1, status=StepStatus.RUNNING))
    await engine.create(WorkflowState("long"))
    await engine.checkpoint(WorkflowCheckpoint("long", "start", step=0))
    for number in range(size):
        if number % 100 == 99:
            await engine.resume_from("long", "start")
        await engine.update_step("long", StepState(number, status=StepStatus.COMPLETED))
    agents = AgentEngine(backend)
    await agents.save_checkpoint(AgentCheckpoint("agent", "safe", step=0, recoverable=True))
    for number in range(1, size + 1):
        await agents.save_checkpoint(AgentCheckpoint("agent", f"c{number}", step=number))


async def _stored(backend: Backend) -> dict[str, Any]:
    """Every stored record, decoded, without its clock fields."""
    found = {}
    async for entry in scan(backend, ""):
        data = values.unpack(entry.value)
        found[entry.key] = {name: value for name, value in data.items() if name not in CLOCKS}
    return found


async def test_the_bulk_built_records_are_the_engines() -> None:
    size = 250
    engine_built, bulk_built = MemoryBackend(), MemoryBackend()
    await _through_the_engine(engine_built, size)
    await workflow_scaling.build(bulk_built, size)
    expected, got = await _stored(engine_built), await _stored(bulk_built)
    assert len(got) == 5 * size + size // 100 + 9
    assert got.keys() == expected.keys()
    assert [key for key in got if got[key] != expected[key]] == []
    # and the engine reads them as it reads its own
    workflows = WorkflowEngine(bulk_built)
    long = await workflows.get("long")
    assert len(long.steps) == size and len(long.resumes) == size // 100
    found = await AgentEngine(bulk_built).get_checkpoint("agent", recoverable_only=True)
    assert found.checkpoint_id == "safe"
