"""Workflow and agent costs as their history grows (issue 19): ``python -m bench.workflow_scaling``.

Each measure at 1k, 10k and 100k (``--sizes``; 1k and 10k with ``--quick``), in-process on the
engine (the server's own code path below the gRPC layer), on the memory, file and Redis
backends (``make bench``; ``--backends`` here). Each size's records are built once through the
engine on a memory backend and copied in bulk into a fresh backend of each kind
(:mod:`bench.bulk`):

* ``update_step`` after N resumes: one more step update of a workflow resumed from a checkpoint
  N times (N steps in between); the record is rewritten without its history.
* on a workflow with N steps (and N/100 resumes): ``update_step``; ``get`` with the whole
  history (linear in N by design: it returns all of it); ``ListWorkflowSteps``'s first page and
  a page from the middle of the history (100 steps each, newest first).
* the newest recoverable checkpoint behind N newer ones that are not recoverable
  (``get_checkpoint(recoverable_only=True)``, ``begin_recovery``): one pointer read.

Each latency is the median over :data:`ROUNDS` interleaved rounds of the median of
``--samples`` calls. Every measure but ``get`` is an issue-19 target: at 100k it may cost at
most :data:`bench.targets.FLAT_FACTOR` times its cost at 1k (:func:`targets`). The part also
runs the record codec's micro-benchmark (:mod:`bench.codec`).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from statekeeper_server.engine.domains.agents import AgentCheckpoint, AgentEngine
from statekeeper_server.engine.domains.workflows import (
    StepState,
    StepStatus,
    WorkflowCheckpoint,
    WorkflowEngine,
    WorkflowState,
)
from statekeeper_server.engine.storage.backend import Backend
from statekeeper_server.engine.storage.memory import MemoryBackend

from bench import codec
from bench.bulk import copies, interleaved
from bench.targets import Target, flatness

SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)
SAMPLES = 50
#: Interleaved rounds over the sizes (each figure is the median of its rounds' medians).
ROUNDS = 3
#: The steps of one ListWorkflowSteps page.
PAGE = 100
#: The measure that returns the whole history, so grows with it by design (not a target).
WHOLE = "get of a workflow with N steps (all of them)"


async def _median_ms(call: Callable[[], Awaitable[Any]], samples: int) -> float:
    """The median latency of ``call`` in milliseconds."""
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 3)


async def _record_bytes(backend: Backend, key: str) -> int:
    entry = await backend.get(key)
    return len(entry.value) if entry is not None else 0


async def build(backend: Backend, size: int) -> dict[str, float]:
    """The records every measure reads: workflow ``resumed`` resumed ``size`` times (a step
    update after each), workflow ``long`` with ``size`` steps (a resume every 100), and agent
    ``agent`` with one recoverable checkpoint behind ``size`` newer ones that are not. Returns
    the record's growth over the resumes."""
    engine = WorkflowEngine(backend)
    await engine.create(WorkflowState("resumed"))
    await engine.checkpoint(WorkflowCheckpoint("resumed", "start", step=0))
    first = await _record_bytes(backend, "wf/resumed/record")
    for _ in range(size):
        await engine.resume_from("resumed", "start")
        await engine.update_step("resumed", StepState(1, status=StepStatus.RUNNING))
    grown = await _record_bytes(backend, "wf/resumed/record") - first
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
    return {"workflow record growth over N resumes, bytes": grown}


async def resumes_rows(backend: Backend, size: int, samples: int) -> dict[str, float]:
    """update_step on the workflow resumed ``size`` times."""
    engine = WorkflowEngine(backend)
    number = 0

    async def step() -> None:
        nonlocal number
        number += 1
        await engine.update_step("resumed", StepState(number, status=StepStatus.RUNNING))

    return {"update_step after N resumes": await _median_ms(step, samples)}


async def steps_rows(backend: Backend, size: int, samples: int) -> dict[str, float]:
    """Reads and writes of the workflow with ``size`` steps and ``size // 100`` resumes."""
    engine = WorkflowEngine(backend)
    got = await engine.get("long")
    assert len(got.steps) >= size  # and the steps earlier rounds added
    token = ""
    for _ in range(size // PAGE // 2):  # to the middle of the history
        _, token = await engine.list_steps("long", PAGE, token)
    middle, _ = await engine.list_steps("long", PAGE, token)
    assert middle == got.steps[::-1][size // PAGE // 2 * PAGE :][:PAGE]
    return {
        "update_step with N steps": await _median_ms(
            lambda: engine.update_step("long", StepState(size, status=StepStatus.RUNNING)),
            samples,
        ),
        WHOLE: await _median_ms(lambda: engine.get("long"), max(3, samples // 10)),
        f"ListWorkflowSteps, first page of {PAGE}": await _median_ms(
            lambda: engine.list_steps("long", PAGE), samples
        ),
        f"ListWorkflowSteps, a page of {PAGE} from the middle": await _median_ms(
            lambda: engine.list_steps("long", PAGE, token), samples
        ),
    }


async def recoverable_rows(backend: Backend, size: int, samples: int) -> dict[str, float]:
    """Finding the newest recoverable checkpoint behind ``size`` newer unrecoverable ones."""
    engine = AgentEngine(backend)

    async def find() -> None:
        found = await engine.get_checkpoint("agent", recoverable_only=True)
        assert found.checkpoint_id == "safe"

    return {
        "newest recoverable checkpoint behind N others": await _median_ms(find, samples),
        "begin_recovery behind N others": await _median_ms(
            lambda: engine.begin_recovery("agent"), samples
        ),
    }


ROWS = (resumes_rows, steps_rows, recoverable_rows)


async def _timed(backend: Backend, size: int, samples: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    for group in ROWS:
        figures.update(await group(backend, size, samples))
    return figures


async def measure_all(
    sizes: tuple[int, ...] = SIZES,
    samples: int = SAMPLES,
    kinds: tuple[str, ...] = ("memory",),
    redis_url: str = "",
) -> list[dict[str, Any]]:
    """Every measure at every size: the records built once per size (:func:`build`), copied
    into a backend of each kind (:mod:`bench.bulk`) and timed there in :data:`ROUNDS`
    interleaved rounds: one row (backend, measure, n, value) per figure; latencies in ms."""
    built: dict[int, Backend] = {}
    grown = {}
    for size in sizes:
        started = time.perf_counter()
        built[size] = MemoryBackend()
        grown[size] = await build(built[size], size)
        setup = round(time.perf_counter() - started, 1)
        print(json.dumps({"n": size, "built_s": setup}), file=sys.stderr, flush=True)
    log = functools.partial(print, file=sys.stderr, flush=True)
    rows = []
    for kind in kinds:
        async with copies(built, kind, redis_url) as stores:
            log(f"workflow scaling: {kind}, ratios over {ROUNDS} rounds")
            timed = functools.partial(_timed, samples=samples)
            figures = await interleaved(stores, timed, ROUNDS, log)
        for size, by_name in figures.items():
            for measure_name, value in {**grown[size], **by_name}.items():
                rows.append({"backend": kind, "measure": measure_name, "n": size, "value": value})
    for store in built.values():
        await store.close()
    return rows


def _cells(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[int, Any]]:
    cells: dict[tuple[str, str], dict[int, Any]] = {}
    for row in rows:
        if "measure" in row:
            cells.setdefault((row["backend"], row["measure"]), {})[row["n"]] = row["value"]
    return cells


def targets(results: dict[str, Any]) -> list[Target]:
    """Issue 19: every latency measure but the whole-history ``get`` stays flat from 1k to
    100k."""
    found = []
    for (backend, name), by_size in _cells(results.get("workflows") or []).items():
        if name != WHOLE and "bytes" not in name:
            found.append(flatness(19, f"{name} ({backend})", by_size, SIZES[0], SIZES[-1]))
    return found


def table(rows: list[dict[str, Any]]) -> list[str]:
    """The rows as markdown lines, one column per N (none when not run), then the codec's."""
    codec_rows = [row for row in rows if "records_per_s" in row]
    cells = _cells(rows)
    if not cells:
        return codec.table(codec_rows)
    sizes = sorted({size for by_size in cells.values() for size in by_size})
    lines = [
        "",
        "Workflow and agent history (bench/workflow_scaling.py, engine in-process, p50 ms):",
        "",
        "| backend | measure | " + " | ".join(f"N = {size:,}" for size in sizes) + " |",
        "|---|---|" + "--:|" * len(sizes),
    ]
    for (backend, name), by_size in cells.items():
        shown = " | ".join(str(by_size.get(size, "")) for size in sizes)
        lines.append(f"| {backend} | {name} | {shown} |")
    return lines + codec.table(codec_rows)


def measure(harness: Any, redis: Any | None) -> None:
    """The ``workflows`` part of ``make bench`` (1k and 10k with ``--quick``) on every backend
    of the settings (Redis skipped when no server runs): rows in
    ``harness.results["workflows"]``."""
    sizes = QUICK_SIZES if harness.settings.quick else SIZES
    kinds = tuple(k for k in harness.settings.backends if k != "redis" or redis is not None)
    if len(kinds) < len(harness.settings.backends):
        harness.results["skipped"].append("workflow scaling, redis: no redis-server")
    url = f"redis://{redis.address}" if redis is not None else ""
    rows = asyncio.run(measure_all(sizes, SAMPLES, kinds, url))
    harness.results["workflows"] = codec.measure_codec() + rows


def main(argv: list[str] | None = None) -> None:
    """Run the rows and print them as JSON lines."""
    parser = argparse.ArgumentParser(prog="python -m bench.workflow_scaling", description=__doc__)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--samples", type=int, default=SAMPLES)
    parser.add_argument("--backends", default="memory", help="memory,file,redis")
    parser.add_argument("--redis-url", default="", help="a Redis for the redis cells (emptied)")
    args = parser.parse_args(argv)
    sizes = tuple(int(size) for size in args.sizes.split(","))
    kinds = tuple(args.backends.split(","))
    for row in asyncio.run(measure_all(sizes, args.samples, kinds, args.redis_url)):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
