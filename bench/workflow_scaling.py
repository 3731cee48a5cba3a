"""Workflow and agent costs as their history grows (issue 19): ``python -m bench.workflow_scaling``.

Three measures, each at 1k, 10k and 100k (``--sizes``), in-process on the engine (the server's
own code path below the gRPC layer), on the memory and file backends:

* ``update_step`` after N resumes: the latency of one more step update of a workflow that was
  resumed from a checkpoint N times (N steps in between). Before steps and resumes were records
  of their own, every write rewrote the resumes with the workflow record.
* ``get`` of a workflow with N steps (and N/100 resumes): the whole history comes back, so this
  one is linear in N by design; the superseded marks cost O(steps + resumes), not their product.
* the newest recoverable checkpoint behind N newer checkpoints that are not recoverable
  (``get_checkpoint(recoverable_only=True)`` and ``begin_recovery``): one pointer read.

Each latency is the median of ``--samples`` calls; the record sizes show what a write rewrites.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
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
from statekeeper_server.engine.storage.factory import BackendOptions, open_backend

from bench import codec

SIZES = (1_000, 10_000, 100_000)
SAMPLES = 50


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


async def resumes_row(backend: Backend, size: int, samples: int) -> dict[str, Any]:
    """update_step latency on a workflow resumed ``size`` times."""
    engine = WorkflowEngine(backend)
    await engine.create(WorkflowState("resumed"))
    await engine.checkpoint(WorkflowCheckpoint("resumed", "start", step=0))
    first = await _record_bytes(backend, "wf/resumed/record")
    for _ in range(size):
        await engine.resume_from("resumed", "start")
        await engine.update_step("resumed", StepState(1, status=StepStatus.RUNNING))
    number = 0

    async def step() -> None:
        nonlocal number
        number += 1
        await engine.update_step("resumed", StepState(number, status=StepStatus.RUNNING))

    return {
        "measure": "update_step after N resumes",
        "n": size,
        "p50_ms": await _median_ms(step, samples),
        "record_bytes_at_start": first,
        "record_bytes_after": await _record_bytes(backend, "wf/resumed/record"),
    }


async def steps_row(backend: Backend, size: int, samples: int) -> dict[str, Any]:
    """get latency of a workflow with ``size`` steps and ``size // 100`` resumes."""
    engine = WorkflowEngine(backend)
    await engine.create(WorkflowState("long"))
    await engine.checkpoint(WorkflowCheckpoint("long", "start", step=0))
    for number in range(size):
        if number % 100 == 99:
            await engine.resume_from("long", "start")
        await engine.update_step("long", StepState(number, status=StepStatus.COMPLETED))
    got = await engine.get("long")
    assert len(got.steps) == size
    return {
        "measure": "get of a workflow with N steps",
        "n": size,
        "resumes": len(got.resumes),
        "p50_ms": await _median_ms(lambda: engine.get("long"), max(3, samples // 10)),
        "update_step_p50_ms": await _median_ms(
            lambda: engine.update_step("long", StepState(size, status=StepStatus.RUNNING)),
            samples,
        ),
    }


async def recoverable_row(backend: Backend, size: int, samples: int) -> dict[str, Any]:
    """Finding the newest recoverable checkpoint behind ``size`` newer unrecoverable ones."""
    engine = AgentEngine(backend)
    await engine.save_checkpoint(AgentCheckpoint("agent", "safe", step=0, recoverable=True))
    for number in range(1, size + 1):
        await engine.save_checkpoint(AgentCheckpoint("agent", f"c{number}", step=number))

    async def find() -> None:
        found = await engine.get_checkpoint("agent", recoverable_only=True)
        assert found.checkpoint_id == "safe"

    return {
        "measure": "newest recoverable checkpoint behind N others",
        "n": size,
        "p50_ms": await _median_ms(find, samples),
        "begin_recovery_p50_ms": await _median_ms(lambda: engine.begin_recovery("agent"), samples),
    }


ROWS = (resumes_row, steps_row, recoverable_row)


async def measure_all(
    sizes: tuple[int, ...] = SIZES, samples: int = SAMPLES, kinds: tuple[str, ...] = ("memory",)
) -> list[dict[str, Any]]:
    """Every row at every size, each on a fresh backend of each kind."""
    rows = []
    for kind in kinds:
        for size in sizes:
            for row in ROWS:
                with tempfile.TemporaryDirectory() as directory:
                    backend = open_backend(BackendOptions(kind=kind, data_dir=directory))
                    try:
                        started = time.perf_counter()
                        result = await row(backend, size, samples)
                    finally:
                        await backend.close()
                result = {"backend": kind, **result}
                result["setup_s"] = round(time.perf_counter() - started, 1)
                print(json.dumps(result), file=sys.stderr, flush=True)
                rows.append(result)
    return rows


def table(rows: list[dict[str, Any]]) -> list[str]:
    """The rows as markdown lines, one column per N (none when not run), then the codec's."""
    codec_rows = [row for row in rows if "records_per_s" in row]
    rows = [row for row in rows if "records_per_s" not in row]
    if not rows:
        return codec.table(codec_rows)
    sizes = sorted({row["n"] for row in rows})
    lines = [
        "",
        "Workflow and agent history (bench/workflow_scaling.py, engine in-process, p50 ms):",
        "",
        "| backend | measure | " + " | ".join(f"N = {size:,}" for size in sizes) + " |",
        "|---|---|" + "--:|" * len(sizes),
    ]
    cells: dict[tuple[str, str], dict[int, Any]] = {}
    for row in rows:
        cells.setdefault((row["backend"], row["measure"]), {})[row["n"]] = row["p50_ms"]
    for (backend, name), by_size in cells.items():
        shown = " | ".join(str(by_size.get(size, "")) for size in sizes)
        lines.append(f"| {backend} | {name} | {shown} |")
    return lines + codec.table(codec_rows)


def measure(harness: Any) -> None:
    """The ``workflows`` part of ``make bench``: rows in ``harness.results["workflows"]``."""
    harness.results["workflows"] = codec.measure_codec() + asyncio.run(measure_all())


def main(argv: list[str] | None = None) -> None:
    """Run the rows and print them as JSON lines."""
    parser = argparse.ArgumentParser(prog="python -m bench.workflow_scaling", description=__doc__)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--samples", type=int, default=SAMPLES)
    parser.add_argument("--backends", default="memory", help="memory,file")
    args = parser.parse_args(argv)
    sizes = tuple(int(size) for size in args.sizes.split(","))
    kinds = tuple(args.backends.split(","))
    for row in asyncio.run(measure_all(sizes, args.samples, kinds)):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
