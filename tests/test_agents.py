"""AgentStateStore and AgentRecoveryManager: the reference examples and every rule of issue 4,
embedded and against a live server."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

import pytest
from statekeeper.errors import InvalidArgumentError, NotFoundError
from statekeeper.state import (
    AgentCheckpoint,
    AgentRecoveryManager,
    AgentSnapshot,
    AgentStateStore,
)

from tests.servers import start_server_process


class FakeMemory:
    """The memory of a fake agent."""

    def export(self) -> dict[str, Any]:
        return {"facts": ["water boils at 100C"], "embeddings": 12}


class FakeTools:
    """The tools of a fake agent."""

    def get_state(self) -> dict[str, Any]:
        return {"web_search": {"calls": 3, "last_query": "boiling point"}}


class FakeAgent:
    """An agent with what the reference examples touch; ``run`` fails ``failures`` times."""

    def __init__(self, agent_id: str = "researcher_01", failures: int = 1) -> None:
        self.id = agent_id
        self.memory = FakeMemory()
        self.tools = FakeTools()
        self.conversation_history = [{"role": "user", "content": "research boiling points"}]
        self.failures = failures
        self.restored: list[Any] = []
        self.resumed = 0

    def restore_from_checkpoint(self, state: Any) -> None:
        self.restored.append(state)

    async def run(self, task: str) -> str:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("the agent crashed")
        return f"finished {task}"

    async def resume(self) -> str:
        self.resumed += 1
        return "resumed"


class BrokenAgent(FakeAgent):
    """An agent whose restore always fails."""

    def restore_from_checkpoint(self, state: Any) -> None:
        raise RuntimeError("cannot restore")


# -- the reference examples, verbatim apart from the import line and the persistence -------------


async def test_reference_snapshots_example(persistence_kwargs: dict[str, str]) -> None:
    agent = FakeAgent()

    logger = logging.getLogger(__name__)

    from statekeeper.state import (
        AgentCheckpoint,  # noqa: F401
        AgentSnapshot,
        AgentStateStore,
    )

    # Initialize agent state store
    agent_store = AgentStateStore(**persistence_kwargs)

    # Create a snapshot of agent state
    snapshot = AgentSnapshot(
        agent_id="researcher_01",
        timestamp=datetime.now(),
        memory_state=agent.memory.export(),
        tool_state=agent.tools.get_state(),
        conversation_history=agent.conversation_history,
        metadata={
            "version": "1.0",
            "task_count": 42,
        },
    )

    # Save snapshot
    await agent_store.save_snapshot(snapshot)

    # List available snapshots
    snapshots = await agent_store.list_snapshots("researcher_01")
    for snap in snapshots:
        logger.info(f"Snapshot: {snap.timestamp} - {snap.metadata}")

    assert len(snapshots) == 1
    snap = snapshots[0]
    assert snap.agent_id == "researcher_01"
    assert snap.metadata == {"version": "1.0", "task_count": 42}
    assert snap.memory_state == agent.memory.export()
    assert snap.tool_state == agent.tools.get_state()
    assert snap.conversation_history == agent.conversation_history
    assert isinstance(snap.timestamp, datetime) and snap.timestamp.tzinfo is None
    assert abs((snap.timestamp - snapshot.timestamp).total_seconds()) < 0.001
    await agent_store.close()


async def test_reference_checkpointing_example(persistence_kwargs: dict[str, str]) -> None:
    agent = FakeAgent()
    results = [{"source": "paper-1", "score": 0.75}]
    agent_store = AgentStateStore(**persistence_kwargs)

    # Create checkpoint during long-running tasks
    checkpoint = AgentCheckpoint(
        agent_id="researcher_01",
        checkpoint_id="task_step_5",
        step=5,
        state={
            "current_task": "data_analysis",
            "intermediate_results": results,
            "tokens_used": 15000,
        },
        recoverable=True,
    )

    await agent_store.save_checkpoint(checkpoint)

    # Resume from checkpoint
    checkpoint = await agent_store.get_checkpoint(
        agent_id="researcher_01", checkpoint_id="task_step_5"
    )

    if checkpoint:
        agent.restore_from_checkpoint(checkpoint.state)

    assert agent.restored == [
        {"current_task": "data_analysis", "intermediate_results": results, "tokens_used": 15000}
    ]
    assert isinstance(agent.restored[0]["tokens_used"], int)
    assert checkpoint is not None and checkpoint.step == 5 and checkpoint.recoverable
    assert await agent_store.get_checkpoint("researcher_01", "no_such_checkpoint") is None
    await agent_store.close()


async def test_reference_recovery_example(persistence_kwargs: dict[str, str]) -> None:
    agent = FakeAgent()
    task = "summarise"
    agent_store = AgentStateStore(**persistence_kwargs)
    await agent_store.save_checkpoint(
        AgentCheckpoint("researcher_01", "task_step_5", step=5, state={"progress": 5})
    )
    result = None

    logger = logging.getLogger(__name__)

    from statekeeper.state import AgentRecoveryManager

    recovery_manager = AgentRecoveryManager(
        agent_store=agent_store,
        auto_recover=True,
        max_recovery_attempts=3,
    )

    # Register agent for recovery
    recovery_manager.register(agent)

    # Manual recovery
    try:
        result = await agent.run(task)
    except Exception as e:  # noqa: F841
        # Attempt recovery
        recovered = await recovery_manager.recover(
            agent_id=agent.id,
            from_checkpoint="latest",
        )

        if recovered:
            logger.info("Agent recovered successfully")
            result = await agent.resume()

    assert result == "resumed"
    assert agent.restored == [{"progress": 5}]
    status = await recovery_manager.get_status(agent.id)
    assert status.attempts == 0 and status.recoveries == 1
    assert status.last_checkpoint_id == "task_step_5"
    await agent_store.close()


# -- ordering, listing, retention, isolation -----------------------------------------------------


async def test_latest_checkpoint_is_ordered_by_step_not_by_id_text(
    persistence_kwargs: dict[str, str],
) -> None:
    store = AgentStateStore(**persistence_kwargs)
    for step in (9, 10, 11):
        await store.save_checkpoint(AgentCheckpoint("a1", f"step_{step}", step=step))
    latest = await store.get_latest_checkpoint("a1")
    assert latest is not None and latest.checkpoint_id == "step_11"
    assert (await store.get_checkpoint("a1", "latest")).checkpoint_id == "step_11"  # type: ignore[union-attr]
    assert [c.step for c in await store.list_checkpoints("a1")] == [11, 10, 9]


async def test_same_step_checkpoints_are_ordered_by_when_they_were_saved(
    persistence_kwargs: dict[str, str],
) -> None:
    store = AgentStateStore(**persistence_kwargs)
    for name in ("z_first", "a_second", "m_third"):
        await store.save_checkpoint(AgentCheckpoint("a1", name, step=3))
    listed = await store.list_checkpoints("a1")
    assert [c.checkpoint_id for c in listed] == ["m_third", "a_second", "z_first"]
    assert [c.sequence for c in listed] == [3, 2, 1]


async def test_listing_is_paginated_newest_first(persistence_kwargs: dict[str, str]) -> None:
    store = AgentStateStore(**persistence_kwargs)
    for step in range(7):
        await store.save_checkpoint(AgentCheckpoint("a1", f"c{step}", step=step))
        await store.save_snapshot(AgentSnapshot("a1", metadata={"n": step}))
    pages = [c.step async for c in store.iter_checkpoints("a1", page_size=3)]
    assert pages == [6, 5, 4, 3, 2, 1, 0]
    snaps = [s.metadata["n"] async for s in store.iter_snapshots("a1", page_size=2)]
    assert snaps == [6, 5, 4, 3, 2, 1, 0]
    latest = await store.get_latest_snapshot("a1")
    assert latest is not None and latest.metadata == {"n": 6}


async def test_saving_an_existing_checkpoint_id_replaces_it(
    persistence_kwargs: dict[str, str],
) -> None:
    store = AgentStateStore(**persistence_kwargs)
    await store.save_checkpoint(AgentCheckpoint("a1", "progress", step=1, state={"v": 1}))
    await store.save_checkpoint(AgentCheckpoint("a1", "progress", step=2, state={"v": 2}))
    listed = await store.list_checkpoints("a1")
    assert [(c.checkpoint_id, c.step, c.state) for c in listed] == [("progress", 2, {"v": 2})]


async def test_retention_keeps_the_newest_n(persistence_kwargs: dict[str, str]) -> None:
    store = AgentStateStore(**persistence_kwargs, max_checkpoints=3, max_snapshots=2)
    for step in range(1, 8):
        await store.save_checkpoint(AgentCheckpoint("a1", f"s{step}", step=step))
        await store.save_snapshot(AgentSnapshot("a1", metadata={"n": step}))
    assert [c.step for c in await store.list_checkpoints("a1")] == [7, 6, 5]
    assert await store.get_checkpoint("a1", "s1") is None
    assert [s.metadata["n"] for s in await store.list_snapshots("a1")] == [7, 6]


async def test_retention_never_prunes_the_newest_nor_the_one_just_saved(
    persistence_kwargs: dict[str, str],
) -> None:
    store = AgentStateStore(**persistence_kwargs, max_checkpoints=1)
    await store.save_checkpoint(AgentCheckpoint("a1", "s10", step=10))
    await store.save_checkpoint(AgentCheckpoint("a1", "s2", step=2))
    assert [c.checkpoint_id for c in await store.list_checkpoints("a1")] == ["s10", "s2"]
    await store.save_checkpoint(AgentCheckpoint("a1", "s11", step=11))
    assert [c.checkpoint_id for c in await store.list_checkpoints("a1")] == ["s11"]


async def test_ids_are_isolated(persistence_kwargs: dict[str, str]) -> None:
    store = AgentStateStore(**persistence_kwargs, max_checkpoints=1)
    await store.save_checkpoint(AgentCheckpoint("a10", "ten", step=1, state={"who": "a10"}))
    await store.save_snapshot(AgentSnapshot("a10", metadata={"who": "a10"}))
    assert await store.list_checkpoints("a1") == []
    assert await store.list_snapshots("a1") == []
    assert await store.get_latest_checkpoint("a1") is None
    assert await store.get_checkpoint("a1", "ten") is None
    # Saving (and pruning) a1's checkpoints leaves a10's alone.
    await store.save_checkpoint(AgentCheckpoint("a1", "one", step=1))
    await store.save_checkpoint(AgentCheckpoint("a1", "two", step=2))
    assert [c.checkpoint_id for c in await store.list_checkpoints("a10")] == ["ten"]
    # Recovery of a1 never picks a10's checkpoint.
    plain = AgentStateStore(**persistence_kwargs)
    agent = FakeAgent("a1")
    manager = AgentRecoveryManager(agent_store=plain)
    manager.register(agent)
    await plain.save_checkpoint(AgentCheckpoint("a1", "three", step=3, recoverable=False))
    assert await manager.recover("a1") is True
    assert agent.restored == [{}]
    assert (await manager.get_status("a10")).attempts == 0


async def test_numbering_continues_after_a_server_restart(tmp_path: Any) -> None:
    data = str(tmp_path / "data")
    first = start_server_process("--backend", "file", "--data-dir", data)
    try:
        store = AgentStateStore(persistence="grpc", address=first.address)
        for step in (9, 10):
            await store.save_checkpoint(AgentCheckpoint("a1", f"s{step}", step=step))
        await store.close()
    finally:
        first.terminate()
    second = start_server_process("--backend", "file", "--data-dir", data)
    try:
        store = AgentStateStore(persistence="grpc", address=second.address)
        await store.save_checkpoint(AgentCheckpoint("a1", "s11", step=11))
        await store.save_checkpoint(AgentCheckpoint("a1", "s11b", step=11))
        listed = await store.list_checkpoints("a1")
        assert [(c.checkpoint_id, c.sequence) for c in listed] == [
            ("s11b", 4),
            ("s11", 3),
            ("s10", 2),
            ("s9", 1),
        ]
        await store.close()
    finally:
        second.terminate()


# -- recovery -----------------------------------------------------------------------------------


async def test_recovery_uses_only_recoverable_checkpoints(
    persistence_kwargs: dict[str, str],
) -> None:
    store = AgentStateStore(**persistence_kwargs)
    agent = FakeAgent("a1")
    manager = AgentRecoveryManager(agent_store=store, max_recovery_attempts=3)
    manager.register(agent)
    assert await manager.recover("a1") is False  # nothing to recover from
    await store.save_checkpoint(AgentCheckpoint("a1", "good", step=4, state={"s": 4}))
    await store.save_checkpoint(
        AgentCheckpoint("a1", "torn", step=5, state={"s": 5}, recoverable=False)
    )
    assert await manager.recover("a1", from_checkpoint="latest") is True
    assert agent.restored == [{"s": 4}]
    assert await manager.recover("a1", from_checkpoint="torn") is False
    assert await manager.recover("a1", from_checkpoint="good") is True
    with pytest.raises(NotFoundError):
        await manager.recover("a1", from_checkpoint="missing")
    with pytest.raises(NotFoundError):
        await manager.recover("unregistered")


async def test_attempts_are_counted_on_the_server_and_reset_on_success(
    persistence_kwargs: dict[str, str],
) -> None:
    store = AgentStateStore(**persistence_kwargs)
    await store.save_checkpoint(AgentCheckpoint("a1", "c1", step=1, state={"s": 1}))
    broken = AgentRecoveryManager(agent_store=store, max_recovery_attempts=2)
    broken.register(BrokenAgent("a1"))
    assert await broken.recover("a1") is False
    # A new manager (as in a restarted agent process) sees the same count.
    restarted = AgentRecoveryManager(agent_store=AgentStateStore(**persistence_kwargs))
    restarted.max_recovery_attempts = 2
    restarted.register(BrokenAgent("a1"))
    assert (await restarted.get_status("a1")).attempts == 1
    assert await restarted.recover("a1") is False
    healthy = FakeAgent("a1")
    restarted.register(healthy)
    assert await restarted.recover("a1") is False  # exhausted: 2 of 2 used
    assert healthy.restored == []
    assert (await restarted.get_status("a1")).attempts == 2
    # With a higher limit the attempt succeeds and the count resets.
    restarted.max_recovery_attempts = 3
    assert await restarted.recover("a1") is True
    status = await restarted.get_status("a1")
    assert status.attempts == 0 and status.recoveries == 1
    assert status.last_success_at is not None and status.last_success_at <= datetime.now()


async def test_auto_recover_runs_recovers_and_resumes(persistence_kwargs: dict[str, str]) -> None:
    store = AgentStateStore(**persistence_kwargs)
    await store.save_checkpoint(AgentCheckpoint("a1", "c1", step=1, state={"s": 1}))
    agent = FakeAgent("a1", failures=1)
    manager = AgentRecoveryManager(agent_store=store, auto_recover=True)
    assert await manager.run(agent, "task") == "resumed"
    assert agent.restored == [{"s": 1}] and agent.resumed == 1

    manual = AgentRecoveryManager(agent_store=store, auto_recover=False)
    with pytest.raises(RuntimeError):
        await manual.run(FakeAgent("a1", failures=1), "task")

    # Without a recoverable checkpoint auto recovery gives up and re-raises.
    with pytest.raises(RuntimeError):
        await manager.run(FakeAgent("b1", failures=1), "task")


# -- watching -----------------------------------------------------------------------------------


async def test_watch_delivers_new_checkpoints(persistence_kwargs: dict[str, str]) -> None:
    store = AgentStateStore(**persistence_kwargs)
    await store.save_checkpoint(AgentCheckpoint("a1", "before", step=1))
    watch = store.watch_checkpoints("a1")

    async def collect() -> list[AgentCheckpoint]:
        seen: list[AgentCheckpoint] = []
        async for checkpoint in watch:
            seen.append(checkpoint)
            if len(seen) == 2:
                break
        return seen

    task = asyncio.ensure_future(collect())
    await watch.started()
    await store.save_checkpoint(AgentCheckpoint("a10", "other agent", step=1))
    await store.save_checkpoint(AgentCheckpoint("a1", "c2", step=2, state={"n": 2}))
    await store.save_checkpoint(AgentCheckpoint("a1", "c3", step=3))
    seen = await asyncio.wait_for(task, 30)
    await watch.aclose()
    assert [(c.checkpoint_id, c.state) for c in seen] == [("c2", {"n": 2}), ("c3", {})]


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("checkpoint", "field"),
    [
        (AgentCheckpoint("a1", "c", step=-1), "checkpoint.step"),
        (AgentCheckpoint("", "c", step=1), "checkpoint.agent_id"),
        (AgentCheckpoint("a1", "", step=1), "checkpoint.checkpoint_id"),
        (AgentCheckpoint("a/1", "c", step=1), "checkpoint.agent_id"),
        (AgentCheckpoint("a1", "latest", step=1), "checkpoint.checkpoint_id"),
    ],
)
async def test_bad_checkpoints_are_rejected_and_change_nothing(
    persistence_kwargs: dict[str, str], checkpoint: AgentCheckpoint, field: str
) -> None:
    store = AgentStateStore(**persistence_kwargs)
    await store.save_checkpoint(AgentCheckpoint("a1", "kept", step=1))
    with pytest.raises(InvalidArgumentError) as caught:
        await store.save_checkpoint(checkpoint)
    assert caught.value.violations[0][0] == field
    assert [c.checkpoint_id for c in await store.list_checkpoints("a1")] == ["kept"]


async def test_bad_snapshot_and_unknown_ids(persistence_kwargs: dict[str, str]) -> None:
    store = AgentStateStore(**persistence_kwargs)
    with pytest.raises(InvalidArgumentError):
        await store.save_snapshot(AgentSnapshot(""))
    with pytest.raises(InvalidArgumentError):
        await store.save_snapshot(AgentSnapshot("a1", metadata={"bad": {1, 2}}))  # type: ignore[dict-item]
    assert await store.list_snapshots("a1") == []
    assert await store.get_snapshot("a1", "99") is None
    assert await store.get_latest_snapshot("nobody") is None
    with pytest.raises(InvalidArgumentError):
        await store.list_checkpoints("bad/id")


async def test_reference_constructor_with_redis(redis_url: str) -> None:
    agent_store = AgentStateStore(
        persistence="redis",
        redis_url=redis_url,
    )
    await agent_store.save_checkpoint(AgentCheckpoint("researcher_01", "task_step_5", step=5))
    again = AgentStateStore(persistence="redis", redis_url=redis_url)
    checkpoint = await again.get_checkpoint("researcher_01", "task_step_5")
    assert checkpoint is not None and checkpoint.step == 5
