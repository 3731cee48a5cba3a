"""Agent-framework session stores side by side (``--parts agents``): a Google ADK turn
(``get_session`` + ``append_event``), an OpenAI Agents SDK turn (``get_items`` + ``add_items``
of two items) and a LangGraph super-step (``put`` + ``put_writes`` + ``get_tuple``, on a small
state and on a 100 KB one) on statekeeper (embedded, over gRPC to a memory and to a file
server, embedded on a shared Redis) and on the frameworks' own stores (ADK's
DatabaseSessionService on SQLite; the SDK's SQLiteSession and RedisSession; LangGraph's SQLite,
Postgres and Redis savers), from one process and from 4 worker processes sharing one store.

Each client task holds its own conversation (thread) and starts a new one every
:data:`TURNS_PER_SESSION` turns, so every store sees the same session lengths. A failed turn
counts as an error (its first message is reported) and the task goes on. After the rows, the
statekeeper row furthest behind its framework's fastest own store is run again under py-spy
(:func:`profile_worst`).
"""

from __future__ import annotations

import array
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
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

#: Frames left out of a profile's inclusive list: what every sample runs inside.
PLUMBING = (
    "asyncio/",
    "multiprocessing/",
    "concurrent/futures/",
    "threading.py",
    "<frozen runpy>",
    "<module>",
    "bench/agents.py",
    "statekeeper_server/cli.py",
)
#: The statekeeper stores every framework is measured on.
STATEKEEPER = (
    "statekeeper embedded (memory)",
    "statekeeper gRPC (memory server)",
    "statekeeper gRPC (file server)",
    "statekeeper embedded (Redis backend)",
)
#: framework -> the stores measured: statekeeper's, then the framework's own.
STORES = {
    "adk": (*STATEKEEPER, "ADK DatabaseSessionService (SQLite)"),
    "openai": (*STATEKEEPER, "SDK SQLiteSession", "SDK RedisSession"),
}
#: LangGraph rows: the framework name -> the bytes of the channel value each super-step changes.
LANGGRAPH_STATE = {"langgraph": len(TEXT), "langgraph-100k": 100_000}
LANGGRAPH_STORES = (
    *STATEKEEPER,
    "LangGraph AsyncSqliteSaver",
    "LangGraph AsyncPostgresSaver",
    "LangGraph AsyncRedisSaver",
)
STORES.update({framework: LANGGRAPH_STORES for framework in LANGGRAPH_STATE})
#: A per-process embedded memory store shares nothing, so it has no 4-process row; every other
#: store is shared by the worker processes.
UNSHARED = {"statekeeper embedded (memory)"}

Turn = Callable[[int], Awaitable[None]]
#: What a builder returns: the turn of each task (by task number), the closing of the store,
#: and its setup (run before the window, like the first turn; an error there is the row's).
Store = tuple[Callable[[int], Turn], Callable[[], Awaitable[None]], Callable[[], Awaitable[Any]]]


async def _nothing() -> None:
    return None


def _manager(job: dict[str, Any]) -> Any:
    from statekeeper.state import StateConfig, StateManager

    store = job["store"]
    if "gRPC" in store:
        return StateManager(StateConfig(backend="grpc", address=job["address"]))
    if "Redis backend" in store:
        return StateManager(StateConfig(backend="redis", redis_url=job["redis_url"]))
    return StateManager(StateConfig(backend="memory"))


async def _adk(job: dict[str, Any]) -> Store:
    """The ADK turn of each task, the closing of the store, no setup (the first turn creates
    DatabaseSessionService's tables)."""
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

    return turn_of, closing, _nothing


async def _openai(job: dict[str, Any]) -> Store:
    """The OpenAI Agents SDK turn of each task, the closing of the store, no setup."""
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

    return turn_of, closing, _nothing


async def _langgraph(job: dict[str, Any]) -> Store:
    """The LangGraph super-step of each task (put + put_writes + get_tuple), the closing of
    the saver and its setup (tables, indexes)."""
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.base.id import uuid6

    closing: Callable[[], Awaitable[None]]
    store = job["store"]
    if store == "LangGraph AsyncSqliteSaver":
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        connection = await aiosqlite.connect(job["sqlite_path"])
        saver: Any = AsyncSqliteSaver(connection)
        closing, setup = connection.close, saver.setup
    elif store == "LangGraph AsyncPostgresSaver":
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        # A connection per task, as LangGraph's documentation sets the saver up for
        # concurrent runs (one shared connection would serialize them).
        options = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
        pool = AsyncConnectionPool(job["postgres_url"], max_size=TASKS, kwargs=options, open=False)
        await pool.open()
        saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
        closing, setup = pool.close, saver.setup
    elif store == "LangGraph AsyncRedisSaver":
        from langgraph.checkpoint.redis.aio import AsyncRedisSaver

        saver = AsyncRedisSaver(redis_url=job["redis_url"])

        async def closing() -> None:
            await saver.__aexit__(None, None, None)

        # Needs the RediSearch and RedisJSON modules; a setup error is the row's error.
        setup = saver.asetup
    else:
        from statekeeper.integrations.langgraph import StatekeeperSaver

        manager = _manager(job)
        saver = StatekeeperSaver(manager)
        closing, setup = manager.close, _nothing
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

    return turn_of, closing, setup


async def _run(job: dict[str, Any]) -> dict[str, Any]:
    framework = job["framework"]
    builder = _adk if framework == "adk" else _openai if framework == "openai" else _langgraph
    turn_of, closing, setup = await builder(job)
    turns = [turn_of(task) for task in range(TASKS)]
    errors: list[str] = []
    try:  # the setup and the first call open connections and create tables, before the window
        await setup()
        await turns[0](0)
    except Exception as error:
        errors.append(f"setup: {type(error).__name__}: {error}"[:200])
    job["ready"].put(os.getpid())  # the process a profiler samples
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
    ``harness.results["agents"]``, then the profile of the worst statekeeper row into
    ``harness.results["agents_profile"]``. Starts its own statekeeper servers (memory, file)
    and PostgreSQL server; ``redis`` serves the Redis rows (they are skipped without it)."""
    from bench.servers import start_postgres, start_statekeeper

    datadir = tempfile.mkdtemp(prefix="bench-agents-file-", dir=harness.scratch)
    servers = {
        "statekeeper gRPC (memory server)": harness.start(
            start_statekeeper("--backend", "memory", name="statekeeper-agents")
        ),
        "statekeeper gRPC (file server)": harness.start(
            start_statekeeper("--backend", "file", "--data-dir", datadir, name="agents-file")
        ),
    }
    postgres = harness.start(start_postgres())
    if postgres is None:
        harness.results["skipped"].append("LangGraph AsyncPostgresSaver: PostgreSQL not installed")
    try:
        for framework, stores in STORES.items():
            for store in stores:
                if "Redis" in store and redis is None:
                    harness.results["skipped"].append(f"{store}: no redis-server")
                    continue
                if "Postgres" in store and postgres is None:
                    continue
                server = servers.get(store) or (
                    redis if "Redis" in store else postgres if "Postgres" in store else None
                )
                for processes in (1, 4):
                    if processes == 1 or store not in UNSHARED:
                        row = _row(harness, framework, store, processes, server, redis, postgres)
                        harness.results["agents"].append(row)
        harness.results["agents_profile"] = profile_worst(
            harness, harness.results["agents"], servers, redis, postgres
        )
    finally:
        for service in [*servers.values(), postgres]:
            if service is not None:
                service.stop()


def _job(
    harness: Any, framework: str, store: str, worker: int, address: str, redis: Any, postgres: Any
) -> dict[str, Any]:
    """What one worker process of a row is told."""
    slug = "".join(c if c.isalnum() else "-" for c in store)
    return {
        "framework": framework,
        "store": store,
        "worker": worker,
        "duration": harness.settings.duration,
        "address": address,
        "redis_url": f"redis://{redis.address}/0" if redis else "",
        "postgres_url": postgres.address if postgres else "",
        # One file per store: the 1-process row creates its tables.
        "sqlite_path": os.path.join(harness.scratch, f"{framework}-{slug}.db"),
    }


def _row(
    harness: Any,
    framework: str,
    store: str,
    processes: int,
    server: Any | None,
    redis: Any | None,
    postgres: Any | None,
) -> dict[str, Any]:
    """Measure one row: ``processes`` worker processes on ``store``; ``server`` is the process
    whose CPU is the row's server CPU (the statekeeper server, Redis or PostgreSQL)."""
    from bench import report

    address = server.address if server is not None and "gRPC" in store else ""
    jobs = [
        _job(harness, framework, store, worker, address, redis, postgres)
        for worker in range(processes)
    ]
    outputs, seconds = _run_jobs(harness, jobs, server)
    duration = harness.settings.duration
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
        "first_error": next((o["first_error"] for o in outputs if o["first_error"]), ""),
        "client_cpu_cores": sum(o["cpu_s"] for o in outputs) / duration,
        "server_cpu_cores": seconds,
    }
    harness.log(
        f"  {framework:<14} {store:<38} x{processes}: "
        f"{row['turns_per_s']:>7.0f} turns/s  p50 {row['p50_ms']:.2f} ms  "
        f"p99 {row['p99_ms']:.2f} ms"
        + (f"  ERRORS {row['errors']}: {row['first_error']}" if row["errors"] else "")
    )
    return row


def _run_jobs(
    harness: Any,
    jobs: list[dict[str, Any]],
    server: Any | None,
    started: Callable[[list[int]], Any] | None = None,
) -> tuple[list[dict[str, Any]], float | None]:
    """Run the jobs of one row in the harness's pool with one common start; the outputs and
    the CPU (cores) of ``server`` over the window when there is one. ``started`` (if given)
    is called with the worker processes' ids once they are ready, before the start, and what
    it returns is waited for (``.wait()``) after the window."""
    ready, go = harness.manager.Queue(), harness.manager.Queue()
    futures = [
        harness.pool.submit(run_agents_job, {**job, "ready": ready, "go": go}) for job in jobs
    ]
    pids = [ready.get(timeout=180) for _ in jobs]
    watchers = started(pids) if started is not None else []
    start_at = time.time() + 0.3
    for _ in jobs:
        go.put(start_at)
    before = server.cpu_seconds() if server is not None else 0.0
    outputs = [future.result() for future in futures]
    cores = None
    if server is not None:
        cores = (server.cpu_seconds() - before) / jobs[0]["duration"]
    for watcher in watchers:
        watcher.wait()
    return outputs, cores


def best_own(rows: list[dict[str, Any]], framework: str, processes: int) -> dict[str, Any] | None:
    """The fastest row of ``framework``'s own stores (not statekeeper) at ``processes`` that
    ran without errors, or None."""
    own = [
        row
        for row in rows
        if row["framework"] == framework
        and row["processes"] == processes
        and not row["store"].startswith("statekeeper")
        and not row["errors"]
        and row["turns"]
    ]
    return max(own, key=lambda row: row["turns_per_s"], default=None)


def worst_row(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The 1-process statekeeper row with the lowest rate relative to :func:`best_own` of its
    framework, and that row."""
    pairs = []
    for row in rows:
        best = best_own(rows, row["framework"], 1)
        if row["processes"] == 1 and row["store"].startswith("statekeeper") and best:
            pairs.append((row["turns_per_s"] / best["turns_per_s"], row, best))
    if not pairs:
        return None
    _, row, best = min(pairs, key=lambda pair: pair[0])
    return row, best


def profile_worst(
    harness: Any,
    rows: list[dict[str, Any]],
    servers: dict[str, Any],
    redis: Any | None,
    postgres: Any | None,
) -> dict[str, Any] | None:
    """Run the :func:`worst_row` again from one process while py-spy samples that client
    process (the adapter and, embedded, the engine) and the statekeeper server it talks to
    (gRPC rows): the row, its rate while sampled, and the summary of each profile
    (``bench.profile.summarize``: the functions with the most samples)."""
    from bench.profile import summarize

    found = worst_row(rows)
    if found is None:
        return None
    row, best = found
    py_spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    server = servers.get(row["store"])
    seconds = max(2, int(harness.settings.duration))
    folded: dict[str, str] = {}

    def sample(pids: list[int]) -> list[subprocess.Popen[bytes]]:
        targets = {"client": pids[0], **({"server": server.pid} if server else {})}
        watchers = []
        for name, pid in targets.items():
            folded[name] = os.path.join(harness.scratch, f"agents-profile-{name}.folded")
            command = [py_spy, "record", "--pid", str(pid), "--duration", str(seconds)]
            options = ["--rate", "200", "--format", "raw", "--nonblocking"]
            watchers.append(
                subprocess.Popen(
                    [*command, *options, "--output", folded[name]],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        return watchers

    address = server.address if server is not None else ""
    job = _job(harness, row["framework"], row["store"], 0, address, redis, postgres)
    job["duration"] = seconds + 1.0
    harness.log(f"  profiling {row['framework']} {row['store']} (behind {best['store']})")
    outputs, _ = _run_jobs(harness, [job], None, sample)
    profiles = {}
    for name, path in folded.items():
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                profiles[name] = summarize(handle.read(), top=15, skip=PLUMBING)
    return {
        "framework": row["framework"],
        "store": row["store"],
        "compared_with": best["store"],
        "ratio": row["turns_per_s"] / best["turns_per_s"],
        "turns_per_s_sampled": outputs[0]["turns"] / job["duration"],
        "profiles": profiles,
    }


__all__ = [
    "STATEKEEPER",
    "STORES",
    "TASKS",
    "TURNS_PER_SESSION",
    "UNSHARED",
    "best_own",
    "measure",
    "profile_worst",
    "run_agents_job",
    "worst_row",
]
