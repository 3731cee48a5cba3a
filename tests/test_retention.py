"""Retention: a tool keeps at most ``tool_history_per_tool`` ended executions (statistics
unchanged, running executions kept, exact with two servers on one Redis), and a speech session
idle for ``speech_session_idle_ttl`` ends (its subscribers see the end); 0 disables each."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from statekeeper.errors import FailedPreconditionError, NotFoundError, Reason
from statekeeper.state import (
    AudioSessionStatus,
    SessionEvent,
    SessionEventKind,
    SpeechStateManager,
    ToolExecution,
    ToolExecutionStatus,
    ToolStateManager,
)
from statekeeper_server.engine.domains.speech import (
    IDLE_END_REASON,
    NAMESPACE,
    SpeechEngine,
    WatchStarted,
)
from statekeeper_server.engine.domains.speech_records import AudioSessionStatus as Session
from statekeeper_server.engine.domains.speech_records import SessionEnded
from statekeeper_server.engine.domains.speech_records import SessionEvent as EngineEvent
from statekeeper_server.engine.domains.tools import ToolEngine
from statekeeper_server.engine.domains.tools_records import ToolExecution as Execution
from statekeeper_server.engine.domains.tools_records import ToolExecutionStatus as Tool
from statekeeper_server.engine.limits import Limits
from statekeeper_server.engine.storage.memory import MemoryBackend

from tests.servers import ServerProcess

ACTIVE, PAUSED = Session.ACTIVE, Session.PAUSED
ENDED, INITIALIZING = Session.ENDED, Session.INITIALIZING
RUNNING, COMPLETED, FAILED = Tool.RUNNING, Tool.COMPLETED, Tool.FAILED

# -- tool execution history ------------------------------------------------------------------


def vars_of(record: Any) -> dict[str, Any]:
    """A record's fields by name."""
    return {name: getattr(record, name) for name in record.__dataclass_fields__}


def kind(event: EngineEvent) -> str:
    """Which change a session event holds."""
    changes = ("created", "status_changed", "stt_state", "tts_state", "conversation_state")
    return next((name for name in changes if getattr(event, name) is not None), "ended")


async def start(engine: ToolEngine, execution_id: str, tool: str = "t") -> None:
    await engine.start_execution(Execution(execution_id, tool, RUNNING, parameters={}))


async def run(engine: ToolEngine, execution_id: str, number: int, tool: str = "t") -> None:
    """Start and end one execution: every third one fails; durations are 1, 2, 3... ms."""
    await start(engine, execution_id, tool)
    if number % 3 == 2:
        await engine.fail_execution(execution_id, "boom", duration=number / 1000, status=FAILED)
    else:
        await engine.complete_execution(execution_id, number, duration=number / 1000)


async def history(engine: ToolEngine, tool: str = "t") -> list[Execution]:
    page = await engine.execution_history(tool, page_size=1000)
    return page.records


async def test_history_keeps_the_newest_ended_and_every_running_execution() -> None:
    engine = ToolEngine(MemoryBackend(), Limits(tool_history_per_tool=3))
    uncapped = ToolEngine(MemoryBackend(), Limits(tool_history_per_tool=0))
    await start(engine, "running-1")
    for number in range(1, 11):
        await run(engine, f"e{number}", number)
        await run(uncapped, f"e{number}", number)
    await start(engine, "running-2")
    await run(engine, "other-1", 1, tool="other")

    records = await history(engine)
    assert sorted(r.execution_id for r in records) == sorted(
        ["running-1", "running-2", "e8", "e9", "e10"]
    )
    assert {r.execution_id: r.status for r in records}["running-1"] == RUNNING
    for pruned in ("e1", "e7"):
        with pytest.raises(NotFoundError):
            await engine.get_execution(pruned)
    assert (await engine.get_execution("e9")).status == COMPLETED
    # The statistics count every execution ever ended, as without a cap.
    stats = await engine.tool_stats("t")
    reference = await uncapped.tool_stats("t")
    # (Starts are counted too, issue 13: this engine also started running-1 and running-2.)
    ignored = ("last_execution_at", "total_executions", "running_executions")
    assert {k: v for k, v in vars_of(stats).items() if k not in ignored} == {
        k: v for k, v in vars_of(reference).items() if k not in ignored
    }
    assert (stats.total_executions, reference.total_executions) == (12, 10)
    assert (stats.successful_executions, stats.failed_executions) == (7, 3)
    assert stats.average_duration * 10 == pytest.approx(sum(range(1, 11)) / 1000)
    # Another tool's history is its own.
    assert [r.execution_id for r in await history(engine, "other")] == ["other-1"]
    # Zero keeps everything.
    assert len(await history(uncapped)) == 10

    # A running execution that ends joins the history; the oldest ended one goes.
    await engine.complete_execution("running-1", "late")
    records = await history(engine)
    ended = {r.execution_id for r in records if r.status != RUNNING}
    assert ended == {"e9", "e10", "running-1"}


async def test_a_lowered_cap_drains_in_bounded_steps() -> None:
    backend = MemoryBackend()
    for number in range(40):
        await run(ToolEngine(backend, Limits(tool_history_per_tool=0)), f"e{number}", number)
    engine = ToolEngine(backend, Limits(tool_history_per_tool=5))
    await run(engine, "next-1", 1)
    # One end removes at most PRUNE_BATCH (16) old executions.
    assert len(await history(engine)) == 41 - 16
    await run(engine, "next-2", 2)
    await run(engine, "next-3", 3)
    assert len(await history(engine)) == 5
    stats = await engine.tool_stats("t")
    assert stats.successful_executions + stats.failed_executions == 43


WRITERS = 6


async def test_cap_and_stats_exact_with_two_servers_on_one_redis(
    redis_url: str, spawn_servers: Callable[..., list[ServerProcess]]
) -> None:
    servers = spawn_servers(
        2, "--backend", "redis", "--redis-url", redis_url, "--tool-history-per-tool", "25"
    )
    managers = [
        ToolStateManager(persistence="grpc", address=server.address, cache_results=False)
        for server in servers
    ]
    await managers[0].start_execution(ToolExecution(execution_id="still-running", tool_name="s"))

    async def writer(worker: int) -> None:
        manager = managers[worker % 2]
        for number in range(40):
            execution_id = f"w{worker}-{number}"
            await manager.start_execution(
                ToolExecution(execution_id=execution_id, tool_name="s", parameters={})
            )
            if number % 4 == 3:
                await manager.fail_execution(execution_id, "boom", duration_ms=3)
            else:
                await manager.complete_execution(execution_id, number, duration_ms=2)

    await asyncio.gather(*(writer(worker) for worker in range(WRITERS)))
    total = WRITERS * 40
    failures = WRITERS * 10
    for manager in managers:
        stats = await manager.get_tool_stats("s")
        # "still-running" counts from its start (issue 13); the rates are over the ended ones.
        assert (stats.total_executions, stats.running_executions) == (total + 1, 1)
        assert stats.failed_executions == failures
        assert stats.avg_duration_ms == pytest.approx(
            ((total - failures) * 2 + failures * 3) / total
        )
    # Each writer pruned after its last end: the cap holds exactly once they all stopped.
    listed = await managers[1].get_execution_history("s", limit=1000)
    ended = [e for e in listed if e.status is not ToolExecutionStatus.RUNNING]
    assert len(ended) == 25
    assert [e.execution_id for e in listed if e.status is ToolExecutionStatus.RUNNING] == [
        "still-running"
    ]
    for manager in managers:
        await manager.close()


# -- idle speech sessions --------------------------------------------------------------------


async def create(engine: SpeechEngine, session_id: str) -> None:
    await engine.create_session(
        session_id=session_id,
        session_type="call",
        streaming_mode=None,
        config={},
        ended_retention=None,
        event_retention=None,
    )


async def events_until_end(engine: SpeechEngine, session_id: str) -> list[EngineEvent]:
    """Every event of a session from its creation until its stream ends."""
    events: list[EngineEvent] = []

    async def follow() -> None:
        async for item in engine.watch_session(session_id, 1):
            if not isinstance(item, WatchStarted):
                events.append(item)

    await asyncio.wait_for(follow(), timeout=60)
    return events


async def test_an_idle_session_ends_and_its_subscriber_sees_the_end() -> None:
    backend = MemoryBackend()
    engine = SpeechEngine(backend, Limits(speech_session_idle_ttl=0.3))
    await create(engine, "s1")
    await engine.update_status("s1", ACTIVE)
    events = await events_until_end(engine, "s1")
    assert [kind(e) for e in events] == ["created", "status_changed", "ended"]
    assert events[-1].ended == SessionEnded(IDLE_END_REASON, ACTIVE)
    meta = await engine.get_session("s1")
    assert (meta.status, meta.end_reason, meta.last_sequence) == (ENDED, IDLE_END_REASON, 3)
    with pytest.raises(FailedPreconditionError) as caught:
        await engine.update_status("s1", PAUSED)
    assert caught.value.reason == Reason.SESSION_ENDED
    await backend.close()


async def test_an_updated_session_lives_and_zero_disables_expiry() -> None:
    backend = MemoryBackend()
    engine = SpeechEngine(backend, Limits(speech_session_idle_ttl=0.5))
    never = SpeechEngine(backend, Limits(speech_session_idle_ttl=0))
    await create(engine, "probe")
    await create(engine, "busy")
    await create(never, "forever")
    probe = asyncio.create_task(events_until_end(engine, "probe"))
    updates = 0
    while not probe.done():
        # Paces the updates; the test waits for the probe's end, not for a time.
        await asyncio.sleep(0.02)
        await engine.update_status("busy", ACTIVE if updates % 2 else PAUSED)
        updates += 1
    assert kind((await probe)[-1]) == "ended"
    # The idle TTL has passed since "busy" and "forever" were created: neither ended.
    assert (await engine.get_session("busy")).status in (ACTIVE, PAUSED)
    assert (await never.get_session("forever")).status == INITIALIZING
    entry = await backend.get(f"{NAMESPACE}forever/meta")
    assert entry is not None and entry.expire_at is None
    assert await backend.get(f"{NAMESPACE}forever/idle") is None
    # An ended session is kept for its ended_retention, with no idle lease.
    await engine.end_session("busy", "done", None)
    assert await backend.get(f"{NAMESPACE}busy/idle") is None
    await backend.close()


async def test_idle_session_ends_for_a_subscriber_on_another_server_over_redis(
    redis_url: str, spawn_servers: Callable[..., list[ServerProcess]]
) -> None:
    first, second = spawn_servers(
        2, "--backend", "redis", "--redis-url", redis_url, "--speech-session-idle-ttl", "0.5"
    )
    writer = SpeechStateManager(persistence="grpc", address=first.address)
    reader = SpeechStateManager(persistence="grpc", address=second.address)
    session_id = await writer.create_session("call")
    await writer.update_session_status(session_id, AudioSessionStatus.ACTIVE)

    async def follow() -> list[SessionEvent]:
        return [event async for event in reader.watch_session(session_id, 1)]

    events = await asyncio.wait_for(follow(), timeout=60)
    assert [e.kind for e in events] == [
        SessionEventKind.CREATED,
        SessionEventKind.STATUS_CHANGED,
        SessionEventKind.ENDED,
    ]
    assert events[-1].end_reason == IDLE_END_REASON
    session = await writer.get_session(session_id)
    assert session is not None and session.status is AudioSessionStatus.ENDED
    await writer.close()
    await reader.close()
