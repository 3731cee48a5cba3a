"""How the task queue's costs grow with its size (``--parts queue``): the orchestration engine
on the memory, file and Redis backends with 1k, 10k and 100k pending tasks (1k and 10k with
``--quick``).

Each (backend, size) runs in a fresh process (``python -m bench.queue_scaling BACKEND TASKS
...``) that drives the engine directly. The queue holds ``TASKS`` tasks requiring capability
``x``, then :data:`SAMPLES` tasks requiring ``y`` at its tail. It measures:

* **enqueue**: tasks/s over the load;
* **claim + complete, only match at the tail**: p50 of an agent with only ``y`` claiming a
  task and completing it (so it is free for the next claim);
* **claim, no match**: p50 of an agent whose capability no task requires;
* **queue status / team view**: p50 of ``queue_status`` (counts and the first page of each
  state) and ``get_team`` (agents and counts), and the size of the GetQueueStatus response.

The rows go into the scaling table (``results["scaling"]``, one column per size).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.scaling import run_cells
from bench.targets import Target, flatness

SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)
#: Timed calls per measure.
SAMPLES = 20


async def _time(
    figures: dict[str, float],
    name: str,
    call: Callable[[], Awaitable[Any]],
    samples: int = SAMPLES,
) -> None:
    """Record the p50 of ``call`` in wall time and in this process's CPU time (which a busy
    machine does not inflate; for Redis it leaves out the server's share)."""
    walls, cpus = [], []
    for _ in range(samples):
        started, cpu = time.perf_counter(), time.process_time()
        await call()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    figures[f"queue: {name}, p50 ms"] = statistics.median(walls) * 1000
    figures[f"queue: {name}, p50 CPU ms here"] = statistics.median(cpus) * 1000


async def measure_one(backend: str, tasks: int, redis_url: str) -> dict[str, float]:
    """Every figure of one backend at one queue size (run in a fresh process)."""
    from statekeeper.v1 import common_pb2
    from statekeeper_server.engine.domains.orchestration import (
        AgentCoordinationState,
        OrchestrationEngine,
        TaskSpec,
        TeamSettings,
    )
    from statekeeper_server.engine.storage.factory import BackendOptions, open_backend
    from statekeeper_server.servicers.orchestration import queue_message

    data_dir = tempfile.mkdtemp(prefix="bench-queue-")
    figures: dict[str, float] = {}
    store = open_backend(BackendOptions(kind=backend, data_dir=data_dir, redis_url=redis_url))
    try:
        engine = OrchestrationEngine(store)
        agents = [
            AgentCoordinationState(agent_id="tail", capabilities=["y"]),
            AgentCoordinationState(agent_id="nobody", capabilities=["z"]),
        ]
        await engine.create_team("bench", agents, [], TeamSettings())
        started = time.perf_counter()
        for number in range(tasks):
            await engine.enqueue(
                "bench", TaskSpec(task_id=f"x{number}", required_capabilities=["x"])
            )
        figures["queue: enqueue, tasks/s"] = tasks / (time.perf_counter() - started)
        for number in range(SAMPLES):
            await engine.enqueue(
                "bench", TaskSpec(task_id=f"y{number}", required_capabilities=["y"])
            )

        async def claim_tail() -> None:
            task = await engine.claim("bench", "tail", 30.0)
            assert task is not None and task.task_id.startswith("y")
            await engine.complete("bench", task.task_id, None)

        await _time(figures, "claim + complete, only match at the tail", claim_tail)
        await _time(figures, "claim, no match", lambda: engine.claim("bench", "nobody", 30.0))
        await _time(
            figures,
            "queue status (counts + first pages of 1000)",
            lambda: engine.queue_status("bench"),
            5,
        )
        await _time(figures, "team view (agents + counts)", lambda: engine.get_team("bench"), 5)
        status = await engine.queue_status("bench")
        message = queue_message(status.queue, common_pb2.VALUE_ENCODING_MSGPACK)
        figures["queue: GetQueueStatus response, KB"] = message.ByteSize() / 1024
        assert status.counts.pending == tasks
        await engine.delete_team("bench")
    finally:
        await store.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    return figures


def measure(harness: Any, redis: Any | None) -> None:
    """Run every (backend, size) of the settings in its own process; add the rows."""
    sizes = QUICK_SIZES if harness.settings.quick else SIZES
    run_cells(harness, redis, "bench.queue_scaling", sizes, "queue scaling", "tasks")


#: The issue-19 operations judged flat: (measure name, label).
FLAT = (
    ("claim + complete, only match at the tail", "claim, match at the tail"),
    ("claim, no match", "claim, no match"),
    ("queue status (counts + first pages of 1000)", "queue status"),
    ("team view (agents + counts)", "team view"),
)


def targets(results: dict[str, Any]) -> list[Target]:
    """Issue 19: each queue operation's p50 at 100k pending tasks against 1k, per backend."""
    rows = results.get("scaling") or []
    found = []
    for backend in sorted({r["backend"] for r in rows}):
        for measure_name, label in FLAT:
            wanted = f"queue: {measure_name}, p50 ms"
            cells = {
                r["keys"]: r["value"]
                for r in rows
                if (r["backend"], r["measure"]) == (backend, wanted)
            }
            if cells:
                found.append(flatness(19, f"{label} ({backend})", cells, SIZES[0], SIZES[-1]))
    return found


def main(argv: list[str]) -> None:
    """``python -m bench.queue_scaling BACKEND TASKS [REDIS_URL]``: one JSON line of figures."""
    backend, tasks = argv[0], int(argv[1])
    redis_url = argv[2] if len(argv) > 2 else ""
    print(json.dumps(asyncio.run(measure_one(backend, tasks, redis_url))))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
