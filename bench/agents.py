"""Agent-framework session stores side by side (``--parts agents``): a Google ADK turn
(``get_session`` + ``append_event``), an OpenAI Agents SDK turn (``get_items`` + ``add_items``
of two items) and a LangGraph super-step (``put`` + ``put_writes`` + ``get_tuple``, on a small
state and on a 100 KB one) on statekeeper (embedded, over gRPC, embedded on a shared Redis)
and on the frameworks' own stores (ADK's DatabaseSessionService on SQLite; the SDK's
SQLiteSession and RedisSession; LangGraph's AsyncSqliteSaver), from one process and from 4
worker processes sharing one store.

Each client task holds its own conversation (thread) and starts a new one every
:data:`TURNS_PER_SESSION` turns, so every store sees the same session lengths. A failed turn
counts as an error (its first message is reported) and the task goes on.
"""

from __future__ import annotations

import array
import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

#: Turns of one conversation before a task starts the next one.
TURNS_PER_SESSION = 20
#: Client tasks per process.
TASKS = 4
#: A message of a turn (about 300 bytes).
TEXT = "The user asks for a comparison of three vector databases for a RAG system; " * 4

#: framework -> the stores measured; a store is shared by worker processes when its name is in
#: SHARED (a per-process embedded memory store shares nothing, so it has no 4-process row).
STORES = {
    "adk": (
        "statekeeper embedded (memory)",
        "statekeeper gRPC (memory server)",
        "statekeeper embedded (Redis backend)",
        "ADK DatabaseSessionService (SQLite)",
    ),
    "openai": (
        "statekeeper embedded (memory)",
        "statekeeper gRPC (memory server)",
        "statekeeper embedded (Redis backend)",
        "SDK SQLiteSession",
        "SDK RedisSession",
    ),
}
#: LangGraph rows: the framework name -> the bytes of the channel value each super-step changes.
LANGGRAPH_STATE = {"langgraph": len(TEXT), "langgraph-100k": 100_000}
LANGGRAPH_STORES = (
    "statekeeper embedded (memory)",
    "statekeeper gRPC (memory server)",
    "statekeeper embedded (Redis backend)",
    "LangGraph AsyncSqliteSaver",
)
STORES.update({framework: LANGGRAPH_STORES for framework in LANGGRAPH_STATE})
SHARED = {
    "LangGraph AsyncSqliteSaver",
    "statekeeper gRPC (memory server)",
    "statekeeper embedded (Redis backend)",
    "ADK DatabaseSessionService (SQLite)",
    "SDK SQLiteSession",
    "SDK RedisSession",
}

Turn = Callable[[int], Awaitable[None]]


def _manager(job: dict[str, Any]) -> Any:
    from statekeeper.state import StateConfig, StateManager

    store = job["store"]
    if "gRPC" in store:
        return StateManager(StateConfig(backend="grpc", address=job["address"]))
    if "Redis backend" in store:
        return StateManager(StateConfig(backend="redis", redis_url=job["redis_url"]))
    return StateManager(StateConfig(backend="memory"))


async def _adk(job: dict[str, Any]) -> tuple[Callable[[int], Turn], Callable[[], Awaitable[None]]]:
    """The ADK turn of each task, and the closing of the store."""
    from google.adk.events.event import Event
    from google.adk.events.event_actions import EventActions
    from google.genai import types

    closing: Callable[[], Awaitable[None]]
    if job["store"].startswith("ADK DatabaseSessionService"):
        from google.adk.sessions.database_session_service import DatabaseSessionService

        service: Any = DatabaseSessionService(f"sqlite+aiosqlite:///{job['sqlite_path']}")
        closing = service.close
    else:
        from statekeeper.integrations.adk import StatekeeperSessionService

        manager = _manager(job)
        service = StatekeeperSessionService(manager)
        closing = manager.close
    run = uuid.uuid4().hex[:8]

    def turn_of(task: int) -> Turn:
        user = f"w{job['worker']}-t{task}"
        current: dict[str, str] = {}

        async def turn(n: int) -> None:
            if n % TURNS_PER_SESSION == 0 or "id" not in current:
                sid = f"{run}-{user}-{n // TURNS_PER_SESSION}"
                await service.create_session(app_name="bench", user_id=user, session_id=sid)
                current["id"] = sid
            session = await service.get_session(
                app_name="bench", user_id=user, session_id=current["id"]
            )
            event = Event(
                invocation_id=f"inv{n}",
                author="user",
                content=types.Content(role="user", parts=[types.Part(text=TEXT)]),
                actions=EventActions(state_delta={"turn": n, "user:last_turn": n}),
            )
            await service.append_event(session, event)

        return turn

    return turn_of, closing


async def _openai(
    job: dict[str, Any],
) -> tuple[Callable[[int], Turn], Callable[[], Awaitable[None]]]:
    """The OpenAI Agents SDK turn of each task, and the closing of the store."""
    store = job["store"]
    make: Callable[[str], Any]
    closing: Callable[[], Awaitable[None]]
    if store == "SDK SQLiteSession":
        from agents import SQLiteSession

        def make(sid: str) -> Any:
            return SQLiteSession(sid, job["sqlite_path"])

        async def closing() -> None:
            return None

    elif store == "SDK RedisSession":
        import redis.asyncio as aioredis
        from agents.extensions.memory import RedisSession

        client = aioredis.Redis.from_url(job["redis_url"])

        def make(sid: str) -> Any:
            return RedisSession(sid, redis_client=client)

        async def closing() -> None:
            await client.aclose()

    else:
        from statekeeper.integrations.openai_agents import StatekeeperSession

        manager = _manager(job)

        def make(sid: str) -> Any:
            return StatekeeperSession(sid, manager)

        closing = manager.close
    run = uuid.uuid4().hex[:8]
    pair = [{"role": "user", "content": TEXT}, {"role": "assistant", "content": TEXT}]

    def turn_of(task: int) -> Turn:
        current: dict[str, Any] = {}

        async def turn(n: int) -> None:
            if n % TURNS_PER_SESSION == 0 or "session" not in current:
                old = current.get("session")
                if old is not None and hasattr(old, "close") and store == "SDK SQLiteSession":
                    old.close()
                sid = f"{run}-w{job['worker']}-t{task}-{n // TURNS_PER_SESSION}"
                current["session"] = make(sid)
            session = current["session"]
            await session.get_items()
            await session.add_items(pair)

        return turn

    return turn_of, closing


async def _langgraph(
    job: dict[str, Any],
) -> tuple[Callable[[int], Turn], Callable[[], Awaitable[None]]]:
    """The LangGraph super-step of each task (put + put_writes + get_tuple), and the closing
    of the saver."""
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.base.id import uuid6

    closing: Callable[[], Awaitable[None]]
    if job["store"] == "LangGraph AsyncSqliteSaver":
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        connection = await aiosqlite.connect(job["sqlite_path"])
        saver: Any = AsyncSqliteSaver(connection)
        await saver.setup()
        closing = connection.close
    else:
        from statekeeper.integrations.langgraph import StatekeeperSaver

        manager = _manager(job)
        saver = StatekeeperSaver(manager)
        closing = manager.close
    run = uuid.uuid4().hex[:8]
    size = LANGGRAPH_STATE[job["framework"]]

    def turn_of(task: int) -> Turn:
        current: dict[str, Any] = {}

        async def turn(n: int) -> None:
            if n % TURNS_PER_SESSION == 0 or "config" not in current:
                thread = f"{run}-w{job['worker']}-t{task}-{n // TURNS_PER_SESSION}"
                current.update(config={"configurable": {"thread_id": thread, "checkpoint_ns": ""}})
                current["versions"] = {}
            versions = current["versions"]
            for channel in ("doc", "step"):
                versions[channel] = saver.get_next_version(versions.get(channel), None)
            checkpoint = empty_checkpoint()
            checkpoint["id"] = str(uuid6(clock_seq=n))
            checkpoint["channel_values"] = {"doc": f"{n:08d}" + "x" * (size - 8), "step": n}
            checkpoint["channel_versions"] = dict(versions)
            config = await saver.aput(
                current["config"], checkpoint, {"source": "loop", "step": n}, dict(versions)
            )
            current["config"] = config
            await saver.aput_writes(config, [("step", n + 1)], f"task-{n}")
            latest = await saver.aget_tuple({"configurable": {**config["configurable"]}})
            assert latest is not None and latest.checkpoint["channel_values"]["step"] == n

        return turn

    return turn_of, closing


async def _run(job: dict[str, Any]) -> dict[str, Any]:
    framework = job["framework"]
    builder = _adk if framework == "adk" else _openai if framework == "openai" else _langgraph
    turn_of, closing = await builder(job)
    turns = [turn_of(task) for task in range(TASKS)]
    errors: list[str] = []
    try:  # the first call opens connections and creates tables, before the window
        await turns[0](0)
    except Exception as error:
        errors.append(f"setup: {type(error).__name__}: {error}"[:200])
    job["ready"].put(1)
    start_at = job["go"].get(timeout=180)
    delay = start_at - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    end = time.perf_counter() + job["duration"]
    latencies = array.array("q")
    cpu_before = time.process_time()

    async def loop(turn: Turn, first: int) -> int:
        done = 0
        n = first
        while time.perf_counter() < end:
            began = time.perf_counter_ns()
            try:
                await turn(n)
            except Exception as error:  # reported, not hidden: the row shows the count
                errors.append(f"{type(error).__name__}: {error}"[:200])
            else:
                latencies.append(time.perf_counter_ns() - began)
                done += 1
            n += 1
        return done

    counts = await asyncio.gather(*(loop(t, 1 if i == 0 else 0) for i, t in enumerate(turns)))
    cpu = time.process_time() - cpu_before
    await closing()
    return {
        "turns": sum(counts),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "latencies_ns": latencies.tobytes(),
        "cpu_s": cpu,
    }


def run_agents_job(job: dict[str, Any]) -> dict[str, Any]:
    """One worker process's share of an agent-store row (a fresh event loop)."""
    os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")
    return asyncio.run(_run(job))


def measure(harness: Any, redis: Any | None) -> None:
    """Every row of :data:`STORES`, from 1 process and (shared stores) from 4, into
    ``harness.results["agents"]``; starts its own memory-backend statekeeper server."""
    from bench import report
    from bench.servers import start_statekeeper

    server = harness.start(start_statekeeper("--backend", "memory", name="statekeeper-agents"))
    duration = harness.settings.duration
    try:
        for framework, stores in STORES.items():
            for store in stores:
                for processes in (1, 4):
                    if processes > 1 and store not in SHARED:
                        continue
                    if "Redis" in store and redis is None:
                        harness.results["skipped"].append(f"{store}: no redis-server")
                        continue
                    slug = "".join(c if c.isalnum() else "-" for c in store)
                    jobs = [
                        {
                            "framework": framework,
                            "store": store,
                            "worker": worker,
                            "duration": duration,
                            "address": server.address,
                            "redis_url": f"redis://{redis.address}/0" if redis else "",
                            # One file per store: the 1-process row creates its tables.
                            "sqlite_path": os.path.join(harness.scratch, f"{framework}-{slug}.db"),
                        }
                        for worker in range(processes)
                    ]
                    outputs, seconds = _run_jobs(harness, jobs, server if "gRPC" in store else None)
                    latencies = report.merge_latencies(o["latencies_ns"] for o in outputs)
                    turns = sum(o["turns"] for o in outputs)
                    row = {
                        "framework": framework,
                        "store": store,
                        "processes": processes,
                        "tasks": processes * TASKS,
                        "turns": turns,
                        "turns_per_s": turns / duration,
                        "p50_ms": report.percentile(latencies, 50),
                        "p99_ms": report.percentile(latencies, 99),
                        "errors": sum(o["errors"] for o in outputs),
                        "first_error": next(
                            (o["first_error"] for o in outputs if o["first_error"]), ""
                        ),
                        "client_cpu_cores": sum(o["cpu_s"] for o in outputs) / duration,
                        "server_cpu_cores": seconds,
                    }
                    harness.results["agents"].append(row)
                    harness.log(
                        f"  {framework:<6} {store:<38} x{processes}: "
                        f"{row['turns_per_s']:>7.0f} turns/s  p50 {row['p50_ms']:.2f} ms  "
                        f"p99 {row['p99_ms']:.2f} ms"
                        + (
                            f"  ERRORS {row['errors']}: {row['first_error']}"
                            if row["errors"]
                            else ""
                        )
                    )
    finally:
        server.stop()


def _run_jobs(
    harness: Any, jobs: list[dict[str, Any]], server: Any | None
) -> tuple[list[dict[str, Any]], float | None]:
    """Run the jobs of one row in the harness's pool with one common start; the outputs and
    the statekeeper server's CPU (cores) over the window when a server takes part."""
    ready, go = harness.manager.Queue(), harness.manager.Queue()
    futures = [
        harness.pool.submit(run_agents_job, {**job, "ready": ready, "go": go}) for job in jobs
    ]
    for _ in jobs:
        ready.get(timeout=180)
    start_at = time.time() + 0.3
    for _ in jobs:
        go.put(start_at)
    before = server.cpu_seconds() if server is not None else 0.0
    outputs = [future.result() for future in futures]
    cores = None
    if server is not None:
        cores = (server.cpu_seconds() - before) / jobs[0]["duration"]
    return outputs, cores


__all__ = ["SHARED", "STORES", "TASKS", "TURNS_PER_SESSION", "measure", "run_agents_job"]
