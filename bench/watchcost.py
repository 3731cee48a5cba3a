"""The watch-cost part of ``make bench`` (``--parts watch``): what open watch streams cost a
write that none of them matches.

* **Idle streams, in paired rounds.** Two servers of the same backend run side by side, one
  with no watch stream and one with :data:`IDLE_STREAMS` streams open, each watching its own
  key (an agent fleet where each agent watches its own state), none of which the saves touch.
  Every client task saves to both in turn, so both servers meet the same machine load at each
  moment; a round first times saves from one task (concurrency 1: p50 latency per server),
  then from :data:`TASKS` tasks (server CPU per save). Issue 19's target: the save with the
  streams open costs at most 1.20 x the one without, as the median of the rounds' ratios (p50
  at c=1, and server CPU per save at c=16 less what the idle streams cost the server with no
  save at all, which is measured before the rounds and shown beside it: their progress
  messages, one per stream every 10 s).

A replay from an old revision is measured by the scaling part at each size (:mod:`bench.replay`).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import TYPE_CHECKING, Any

from bench.servers import Service, start_statekeeper, stop_all
from bench.targets import Target, at_most

if TYPE_CHECKING:
    from bench.run import Harness

#: Watch streams held open beside the saves, each on its own key.
IDLE_STREAMS = 5000
#: Connections the idle streams share (the server admits 100 streams per connection).
IDLE_CONNECTIONS = 50
#: Client tasks of a round's concurrent phase (each saves to both servers in turn).
TASKS = 16
#: Measured rounds (after one warm-up round); saves per server from the one task of a round's
#: first phase, and from each task of its concurrent phase.
ROUNDS, QUICK_ROUNDS = 7, 3
SOLO_CALLS, QUICK_SOLO_CALLS = 400, 120
CALLS, QUICK_CALLS = 150, 40
#: Seconds over which the streams' own cost (no saves) is measured.
IDLE_SECONDS, QUICK_IDLE_SECONDS = 10.0, 5.0
#: The largest cost ratio issue 19 allows.
LIMIT = 1.20


def measure(harness: Harness, redis: Service | None) -> None:
    """Every row of this part, for every backend of the run."""
    from bench.run import _backend_args

    harness.results.setdefault("watch_cost", [])
    for backend in harness.settings.backends:
        if _backend_args(backend, redis, harness.scratch + f"/watch-{backend}") is None:
            continue
        label = f"statekeeper {backend}"
        harness.log(f"watch cost, {backend} backend: paired rounds, 0 vs {IDLE_STREAMS} streams")
        _idle_row(harness, label, backend, redis)
    for target in targets(harness.results):
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[target.met]
        harness.log(f"  {target.name}: {target.measured} {verdict}")


def _idle_row(harness: Harness, label: str, backend: str, redis: Service | None) -> None:
    """The paired rounds of one backend into ``results["watch_cost"]``."""
    from bench.run import _backend_args

    servers = {}
    for name, database in (("none", 1), ("idle", 2)):  # Redis: a database each
        args = _backend_args(backend, redis, harness.scratch + f"/watch-{backend}-{name}")
        assert args is not None
        if backend == "redis":
            args[-1] += f"/{database}"
        servers[name] = start_statekeeper(*args, name=f"statekeeper-{backend}-{name}")
    stop = harness.manager.Event()
    ready = harness.manager.Queue()
    job = {"address": servers["idle"].address, "streams": IDLE_STREAMS, "ready": ready}
    holder = harness.pool.submit(hold_streams, {**job, "stop": stop})
    try:
        ready.get(timeout=300)
        quick = harness.settings.quick
        idle_seconds = QUICK_IDLE_SECONDS if quick else IDLE_SECONDS
        before = {name: server.cpu_seconds() for name, server in servers.items()}
        time.sleep(idle_seconds)
        idle_cores = {n: (s.cpu_seconds() - before[n]) / idle_seconds for n, s in servers.items()}
        rounds = QUICK_ROUNDS if quick else ROUNDS
        calls = (QUICK_SOLO_CALLS, QUICK_CALLS) if quick else (SOLO_CALLS, CALLS)
        figures = asyncio.run(_rounds(servers, idle_cores, rounds, calls))
    finally:
        stop.set()
        errors = holder.result(timeout=120)["errors"]
        stop_all(list(servers.values()))
    row = {
        "label": label,
        "backend": backend,
        "idle_streams": IDLE_STREAMS,
        "stream_errors": errors,
        "idle_cores": idle_cores["idle"] - idle_cores["none"],
        "load_avg": os.getloadavg()[0],
        **figures,
    }
    harness.results["watch_cost"].append(row)
    harness.log(
        f"  {label}: save p50 c=1 {_median(row, 'p50_ms', 'none'):.2f} vs "
        f"{_median(row, 'p50_ms', 'idle'):.2f} ms, server CPU/save c={TASKS} "
        f"{_median(row, 'cpu_us', 'none'):.0f} vs {_median(row, 'cpu_us', 'idle'):.0f} us "
        f"(idle streams alone {row['idle_cores']:.3f} cores), stream errors {errors}"
    )


async def _rounds(
    servers: dict[str, Service],
    idle_cores: dict[str, float],
    rounds: int,
    calls: tuple[int, int],
) -> dict[str, Any]:
    """Per round and server: save p50 (ms) from one task, and server CPU (us) per save from
    :data:`TASKS` tasks less the server's cost with no save (``idle_cores``); ``calls``: the
    saves per server of the one task and of each concurrent task."""
    import grpc
    from statekeeper import values
    from statekeeper.v1 import common_pb2, state_service_pb2_grpc
    from statekeeper.v1 import state_service_pb2 as pb

    from bench.workload import DOC

    names = list(servers)
    channels = {n: grpc.aio.insecure_channel(s.address) for n, s in servers.items()}
    stubs = {n: state_service_pb2_grpc.StateServiceStub(c) for n, c in channels.items()}
    value = common_pb2.Value(msgpack=values.pack(DOC))
    figures: dict[str, Any] = {f"{f}_{n}": [] for f in ("p50_ms", "cpu_us") for n in names}

    async def run(task: int, count: int, latencies: dict[str, list[float]] | None) -> None:
        for i in range(count):
            for name in names:
                began = time.perf_counter()
                await stubs[name].Save(pb.SaveRequest(key=f"w/{task}/{i % 16}", value=value))
                if latencies is not None:
                    latencies[name].append((time.perf_counter() - began) * 1e3)

    try:
        for round_number in range(rounds + 1):
            latencies: dict[str, list[float]] = {name: [] for name in names}
            await run(0, calls[0], latencies)
            before = {n: s.cpu_seconds() for n, s in servers.items()}
            began = time.perf_counter()
            await asyncio.gather(*(run(task, calls[1], None) for task in range(TASKS)))
            spent = time.perf_counter() - began
            after = {n: s.cpu_seconds() for n, s in servers.items()}
            if round_number == 0:
                continue  # warm-up
            for name in names:
                busy = after[name] - before[name] - idle_cores[name] * spent
                figures[f"cpu_us_{name}"].append(busy / (TASKS * calls[1]) * 1e6)
                figures[f"p50_ms_{name}"].append(statistics.median(latencies[name]))
    finally:
        for channel in channels.values():
            await channel.close()
    return figures


def _median(row: dict[str, Any], figure: str, server: str) -> float:
    return statistics.median(row[f"{figure}_{server}"])


def _ratios(row: dict[str, Any], figure: str) -> list[float]:
    """The rounds' ratios of ``figure``: with the streams open over without."""
    pairs = zip(row[f"{figure}_idle"], row[f"{figure}_none"], strict=True)
    return [idle / max(none, 1e-9) for idle, none in pairs]


def targets(results: dict[str, Any]) -> list[Target]:
    """Issue 19's watch-cost target per backend: the median of the rounds' ratios, with their
    range, for save p50 at c=1 and for server CPU per save (see the module)."""
    found = []
    for row in results.get("watch_cost", []):
        if "p50_ms_idle" not in row:
            continue
        for figure, what in (("p50_ms", "save p50 at c=1"), ("cpu_us", "server CPU per save")):
            ratios = _ratios(row, figure)
            ratio = statistics.median(ratios)
            extra = ""
            if figure == "cpu_us":
                extra = f"; the idle streams alone: {row['idle_cores']:.3f} cores"
            found.append(
                Target(
                    19,
                    f"{row['label']}, {IDLE_STREAMS} idle streams on other keys: {what} "
                    f"<= {LIMIT:.2f} x none",
                    f"{ratio:.2f} x (rounds {min(ratios):.2f}-{max(ratios):.2f}; "
                    f"{_median(row, figure, 'idle'):.2f} vs {_median(row, figure, 'none'):.2f}"
                    f"{extra}; load {row['load_avg']:.1f}; stream errors {row['stream_errors']})",
                    at_most(ratio, LIMIT) if not row["stream_errors"] else False,
                )
            )
    return found


def markdown(results: dict[str, Any]) -> list[str]:
    """The report's section of this part (nothing when the part did not run)."""
    lines: list[str] = []
    idle = [r for r in results.get("watch_cost", []) if "p50_ms_idle" in r]
    if idle:
        lines += [
            "",
            f"Watch cost: saves to two servers in turn, one with {IDLE_STREAMS} idle Watch "
            "streams open (each on its own key that no save touches), one with none; per "
            f"round, p50 from one task and server CPU per save from {TASKS} tasks (less the "
            "server's cost with no save):",
            "",
            "| server | p50 ms none / idle, per round | CPU us/save none / idle, per round "
            "| idle streams alone (cores) |",
            "|---|---|---|--:|",
        ]
        for row in idle:
            cells = [
                ", ".join(
                    f"{none:.2f}/{busy:.2f}"
                    for none, busy in zip(row[f"{f}_none"], row[f"{f}_idle"], strict=True)
                )
                for f in ("p50_ms", "cpu_us")
            ]
            lines.append(f"| {row['label']} | {cells[0]} | {cells[1]} | {row['idle_cores']:.3f} |")
    return lines


# -- client processes (run in the harness's pool) --------------------------------------------


def hold_streams(job: dict[str, Any]) -> dict[str, Any]:
    """Open ``streams`` Watch streams on keys of their own, report ready, hold them until
    ``stop`` is set; the number of streams that failed."""
    return asyncio.run(_hold_streams(job))


async def _hold_streams(job: dict[str, Any]) -> dict[str, Any]:
    import grpc
    from statekeeper.v1 import state_service_pb2 as pb
    from statekeeper.v1 import state_service_pb2_grpc

    # A local subchannel pool per channel: channels to one address would share one connection.
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [
        grpc.aio.insecure_channel(job["address"], options=options) for _ in range(IDLE_CONNECTIONS)
    ]
    errors = 0
    created = asyncio.Event()
    opened = 0
    # Streams open a few hundred at a time: a burst of thousands of new calls at once is more
    # than the server accepts (it cancels calls it could not take up soon enough).
    opening = asyncio.Semaphore(200)
    stopping = False

    async def one(number: int) -> None:
        nonlocal errors, opened
        stub = state_service_pb2_grpc.StateServiceStub(channels[number % IDLE_CONNECTIONS])
        await opening.acquire()
        call = stub.Watch(pb.WatchRequest(pattern=f"idle/agent-{number}/state"))
        try:
            async for message in call:
                if message.created:
                    opening.release()
                    opened += 1
                    if opened == job["streams"]:
                        created.set()
        except grpc.aio.AioRpcError:
            if not stopping:
                errors += 1
                created.set()

    tasks = [asyncio.create_task(one(number)) for number in range(job["streams"])]
    await created.wait()
    job["ready"].put(opened)
    await asyncio.get_running_loop().run_in_executor(None, job["stop"].wait)
    stopping = True
    for channel in channels:
        await channel.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"errors": errors}
