"""How the task queue's costs grow with its size (``--parts queue``): the orchestration engine
on the memory, file and Redis backends with 1k, 10k and 100k pending tasks (1k and 10k with
``--quick``).

Each size's queue is built once through the engine on a memory backend and copied in bulk into
a fresh backend of each kind (:mod:`bench.bulk`), where the engine is driven directly, the
sizes in :data:`ROUNDS` interleaved rounds. The queue holds ``TASKS`` tasks requiring
capability ``x``, then :data:`SAMPLES` tasks per round requiring ``y`` at its tail. It
measures:

* **claim + complete, only match at the tail**: p50 of an agent with only ``y`` claiming a
  task and completing it (so it is free for the next claim);
* **claim, no match**: p50 of an agent whose capability no task requires;
* **enqueue**: p50 of one more task into the queue of that size;
* **queue status / team view**: p50 of ``queue_status`` (counts and the first page of each
  state) and ``get_team`` (agents and counts), and the size of the GetQueueStatus response.

Each is timed in wall time and in CPU time (this process's, plus the Redis main thread's on
Redis: :class:`bench.bulk.Meter`); the targets judge the CPU time per call, which a busy machine
does not inflate. The rows go into the scaling table (``results["scaling"]``, one column per
size).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from statekeeper.v1 import common_pb2
from statekeeper_server.engine.domains.orchestration import (
    AgentCoordinationState,
    OrchestrationEngine,
    TaskSpec,
    TeamSettings,
)
from statekeeper_server.engine.storage.backend import Backend
from statekeeper_server.engine.storage.memory import MemoryBackend
from statekeeper_server.servicers.orchestration import queue_message

from bench.bulk import Meter, copies, interleaved
from bench.scaling import row
from bench.targets import Target, flatness

SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)
#: Timed calls per measure in each round.
SAMPLES = 20
#: Interleaved rounds over the sizes (each figure is the median of its rounds' p50s).
ROUNDS = 3


async def _time(
    figures: dict[str, float],
    meter: Meter,
    name: str,
    call: Callable[[], Awaitable[Any]],
    samples: int = SAMPLES,
) -> None:
    """Record the p50 of ``call`` in wall time and in CPU time (:class:`bench.bulk.Meter`:
    this process's, plus the Redis main thread's on Redis)."""
    wall, cpu = await meter.p50(call, samples)
    figures[f"queue: {name}, p50 ms"] = wall
    figures[f"queue: {name}, p50 CPU ms"] = cpu


async def build(store: Backend, tasks: int) -> None:
    """The team ``bench``: two agents, ``tasks`` tasks requiring ``x``, then :data:`SAMPLES`
    per round requiring ``y``."""
    engine = OrchestrationEngine(store)
    agents = [
        AgentCoordinationState(agent_id="tail", capabilities=["y"]),
        AgentCoordinationState(agent_id="nobody", capabilities=["z"]),
    ]
    await engine.create_team("bench", agents, [], TeamSettings())
    for number in range(tasks):
        await engine.enqueue("bench", TaskSpec(task_id=f"x{number}", required_capabilities=["x"]))
    for number in range(SAMPLES * ROUNDS):
        await engine.enqueue("bench", TaskSpec(task_id=f"y{number}", required_capabilities=["y"]))


async def time_operations(store: Backend, tasks: int, meter: Meter) -> dict[str, float]:
    """Every timed figure on a store holding :func:`build`'s queue of ``tasks``."""
    engine = OrchestrationEngine(store)
    figures: dict[str, float] = {}

    async def claim_tail() -> None:
        task = await engine.claim("bench", "tail", 30.0)
        assert task is not None and task.task_id.startswith("y")
        await engine.complete("bench", task.task_id, None)

    await _time(figures, meter, "claim + complete, only match at the tail", claim_tail)
    await _time(figures, meter, "claim, no match", lambda: engine.claim("bench", "nobody", 30.0))
    await _time(
        figures,
        meter,
        "enqueue",
        lambda: engine.enqueue("bench", TaskSpec(required_capabilities=["w"])),
    )
    await _time(
        figures,
        meter,
        "queue status (counts + first pages of 1000)",
        lambda: engine.queue_status("bench"),
        5,
    )
    await _time(figures, meter, "team view (agents + counts)", lambda: engine.get_team("bench"), 5)
    status = await engine.queue_status("bench")
    message = queue_message(status.queue, common_pb2.VALUE_ENCODING_MSGPACK)
    figures["queue: GetQueueStatus response, KB"] = message.ByteSize() / 1024
    assert status.counts.pending >= tasks + SAMPLES
    return figures


async def measure_all(
    sizes: tuple[int, ...], kinds: tuple[str, ...], redis_url: str, log: Callable[[str], None]
) -> list[tuple[str, str, int, float]]:
    """(backend, measure, size, value) of every figure: each size's queue built once, copied
    into a backend of each kind, and timed there in :data:`ROUNDS` interleaved rounds."""
    built = {}
    for size in sizes:
        started = time.perf_counter()
        built[size] = MemoryBackend()
        await build(built[size], size)
        log(f"queue scaling: {size:,} tasks built in {time.perf_counter() - started:.0f} s")
    found = []
    for kind in kinds:
        started = time.perf_counter()
        meter = Meter(redis_url if kind == "redis" else "")
        async with copies(built, kind, redis_url) as stores:
            log(f"queue scaling: {kind}, copied in {time.perf_counter() - started:.0f} s")
            timed = functools.partial(time_operations, meter=meter)
            figures = await interleaved(stores, timed, ROUNDS, log)
        meter.close()
        log(f"queue scaling: {kind} done in {time.perf_counter() - started:.0f} s")
        for size, by_name in figures.items():
            found += [(kind, name, size, value) for name, value in by_name.items()]
    for store in built.values():
        await store.close()
    return found


def measure(harness: Any, redis: Any | None) -> None:
    """The ``queue`` part: every size of the settings on every backend; rows in the scaling
    table (Redis skipped when no server runs)."""
    sizes = QUICK_SIZES if harness.settings.quick else SIZES
    kinds = tuple(k for k in harness.settings.backends if k != "redis" or redis is not None)
    if len(kinds) < len(harness.settings.backends):
        harness.results["skipped"].append("queue scaling, redis: no redis-server")
    url = f"redis://{redis.address}" if redis is not None else ""
    for kind, name, size, value in asyncio.run(measure_all(sizes, kinds, url, harness.log)):
        row(harness.results, kind, name, size, value)


#: The issue-19 operations judged flat: (measure name, label).
FLAT = (
    ("claim + complete, only match at the tail", "claim, match at the tail"),
    ("claim, no match", "claim, no match"),
    ("enqueue", "enqueue"),
    ("queue status (counts + first pages of 1000)", "queue status"),
    ("team view (agents + counts)", "team view"),
)


def targets(results: dict[str, Any]) -> list[Target]:
    """Issue 19: each queue operation's CPU time per call (p50) at 100k pending tasks against
    1k, per backend."""
    rows = results.get("scaling") or []
    found = []
    for backend in sorted({r["backend"] for r in rows}):
        for measure_name, label in FLAT:
            wanted = f"queue: {measure_name}, p50 CPU ms"
            cells = {
                r["keys"]: r["value"]
                for r in rows
                if (r["backend"], r["measure"]) == (backend, wanted)
            }
            if cells:
                name = f"{label} ({backend}, CPU per call)"
                found.append(flatness(19, name, cells, SIZES[0], SIZES[-1]))
    return found


def main(argv: list[str] | None = None) -> None:
    """Run the rows and print them as JSON lines."""
    parser = argparse.ArgumentParser(prog="python -m bench.queue_scaling", description=__doc__)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--backends", default="memory,file", help="memory,file,redis")
    parser.add_argument("--redis-url", default="", help="a Redis for the redis cells (emptied)")
    args = parser.parse_args(argv)
    sizes = tuple(int(size) for size in args.sizes.split(","))
    kinds = tuple(args.backends.split(","))
    log = functools.partial(print, file=sys.stderr, flush=True)
    for kind, name, size, value in asyncio.run(measure_all(sizes, kinds, args.redis_url, log)):
        print(json.dumps({"backend": kind, "measure": name, "tasks": size, "value": value}))


if __name__ == "__main__":
    main()
