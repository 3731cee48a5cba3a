"""Workflow and agent costs as their history grows (issue 19): ``python -m bench.workflow_scaling``.

Each measure at 1k, 10k and 100k (``--sizes``; 1k and 10k with ``--quick``), in-process on the
engine (the server's own code path below the gRPC layer), on the memory, file and Redis
backends (``make bench``; ``--backends`` here). Each size's records are built once on a memory
backend in the engine's stored form (:func:`build`: N steps or checkpoints through the engine
would be 4N engine transactions, 24 minutes at 100k on a busy machine) and copied in bulk into
a fresh backend of each kind (:mod:`bench.bulk`):

* ``update_step`` after N resumes: one more step update of a workflow resumed from a checkpoint
  N times (N steps in between); the record is rewritten without its history.
* on a workflow with N steps (and N/100 resumes): ``update_step``; ``get`` with the whole
  history (linear in N by design: it returns all of it); ``ListWorkflowSteps``'s first page and
  a page from the middle of the history (100 steps each, newest first).
* the newest recoverable checkpoint behind N newer ones that are not recoverable
  (``get_checkpoint(recoverable_only=True)``, ``begin_recovery``): one pointer read.

Each figure is the median over :data:`ROUNDS` interleaved rounds of the median of ``--samples``
calls, in wall time and in CPU time (this process's, plus the Redis main thread's on Redis:
:class:`bench.bulk.Meter`). Every measure but ``get`` is an issue-19 target: at 100k its CPU
time per call may be at most :data:`bench.targets.FLAT_FACTOR` times its cost at 1k
(:func:`targets`). The part also runs the record codec's micro-benchmark (:mod:`bench.codec`).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from typing import Any

from statekeeper_server.engine.domains import agents as agent_records
from statekeeper_server.engine.domains.agents import AgentCheckpoint, AgentEngine
from statekeeper_server.engine.domains.checkpoints import (
    POINTER,
    CheckpointPointer,
    now,
    order_key,
)
from statekeeper_server.engine.domains.workflows import (
    NAMESPACE,
    RESUME,
    STEP,
    WORKFLOW,
    StepState,
    StepStatus,
    WorkflowCheckpoint,
    WorkflowEngine,
    WorkflowResume,
    WorkflowState,
    WorkflowStatus,
)
from statekeeper_server.engine.storage.backend import Backend, Put
from statekeeper_server.engine.storage.memory import MemoryBackend
from statekeeper_server.engine.tenancy import tenant_prefix

from bench import codec
from bench.bulk import Meter, copies, interleaved, put_all
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
#: The suffixes of a measure's two figures: wall time and CPU time per call.
WALL, CPU = ", p50 ms", ", p50 CPU ms"


async def _record(backend: Backend, key: str) -> tuple[WorkflowState, int]:
    """The stored workflow record at ``key`` and its size in bytes."""
    entry = await backend.get(key)
    assert entry is not None
    return WORKFLOW.unpack(entry.value), len(entry.value)


def _history(
    base: str, record: WorkflowState, size: int, every: int, step: Callable[[int], StepState]
) -> Iterator[Put]:
    """What ``size`` step updates ``step(0)``, ``step(1)``, ... of the workflow ``record``
    under ``base`` store, with a resume from its checkpoint ``start`` (step 0) before every
    ``every``-th, as the engine stores them (:meth:`WorkflowEngine.update_step`,
    :meth:`WorkflowEngine.resume_from`); the record after them last."""
    sequence, resumes = record.step_sequence, record.resume_count
    current, completed = record.current_step, record.completed_steps
    for number in range(size):
        if number % every == every - 1:
            resumes += 1
            resume = WorkflowResume("start", 0, now(), sequence + 1)
            yield Put(f"{base}resume/{resumes:020d}", RESUME.pack(resume))
            current = 0
        sequence += 1
        stored = replace(step(number), timestamp=now(), sequence=sequence)
        current = max(current, stored.step_number)
        completed += stored.status is StepStatus.COMPLETED
        yield Put(f"{base}step/{sequence:020d}", STEP.pack(stored))
    running = WorkflowStatus.RUNNING
    changed = replace(
        record,
        status=running,
        current_step=current,
        step_sequence=sequence,
        completed_steps=completed,
        resume_count=resumes,
        update_time=now(),
        status_changed=False,
        previous_status=running,
        resumed_from="",
    )
    yield Put(base + "record", WORKFLOW.pack(changed))


def _checkpoints(base: str, meta: agent_records.RecoveryStatus, size: int) -> Iterator[Put]:
    """What ``size`` saves of checkpoints ``c1``, ``c2``, ... at steps 1, 2, ... (not
    recoverable) of the agent whose ``meta`` is given store, as
    :meth:`AgentEngine.save_checkpoint` stores them; ``meta`` after them last."""
    sequence = meta.checkpoint_sequence
    for number in range(1, size + 1):
        sequence += 1
        record = AgentCheckpoint(
            meta.agent_id, f"c{number}", step=number, timestamp=now(), sequence=sequence
        )
        order = order_key(number, sequence)
        yield Put(base + "ckpt/" + order, agent_records.CHECKPOINT.pack(record))
        yield Put(base + f"cid/c{number}", POINTER.pack(CheckpointPointer(order)))
    yield Put(base + "meta", agent_records.META.pack(replace(meta, checkpoint_sequence=sequence)))


async def build(backend: Backend, size: int) -> dict[str, float]:
    """The records every measure reads: workflow ``resumed`` resumed ``size`` times (a step
    update after each), workflow ``long`` with ``size`` steps (a resume every 100), and agent
    ``agent`` with one recoverable checkpoint behind ``size`` newer ones that are not. Each
    starts with its first records written through the engine; the rest are put in the
    engine's stored form (the same keys and records the engine's operations write, but
    timestamps). Returns the record's growth over the resumes."""
    workflows = WorkflowEngine(backend)
    growth = 0
    for workflow_id, every, step in (
        ("resumed", 1, lambda _: StepState(1, status=StepStatus.RUNNING)),
        ("long", 100, lambda number: StepState(number, status=StepStatus.COMPLETED)),
    ):
        await workflows.create(WorkflowState(workflow_id))
        await workflows.checkpoint(WorkflowCheckpoint(workflow_id, "start", step=0))
        base = f"{tenant_prefix()}{NAMESPACE}{workflow_id}/"
        record, first = await _record(backend, base + "record")
        await put_all(backend, _history(base, record, size, every, step))
        if workflow_id == "resumed":
            growth = (await _record(backend, base + "record"))[1] - first
    agents = AgentEngine(backend)
    await agents.save_checkpoint(AgentCheckpoint("agent", "safe", step=0, recoverable=True))
    base = f"{tenant_prefix()}{agent_records.NAMESPACE}agent/"
    meta = await agents.recovery_status("agent")
    await put_all(backend, _checkpoints(base, meta, size))
    return {"workflow record growth over N resumes, bytes": growth}


async def _time(
    figures: dict[str, float],
    meter: Meter,
    name: str,
    call: Callable[[], Awaitable[Any]],
    samples: int,
) -> None:
    """Record the p50 of ``call`` in wall and in CPU time (:class:`bench.bulk.Meter`)."""
    figures[name + WALL], figures[name + CPU] = await meter.p50(call, samples)


async def resumes_rows(backend: Backend, size: int, samples: int, meter: Meter) -> dict[str, float]:
    """update_step on the workflow resumed ``size`` times."""
    engine = WorkflowEngine(backend)
    number = 0

    async def step() -> None:
        nonlocal number
        number += 1
        await engine.update_step("resumed", StepState(number, status=StepStatus.RUNNING))

    figures: dict[str, float] = {}
    await _time(figures, meter, "update_step after N resumes", step, samples)
    return figures


async def steps_rows(backend: Backend, size: int, samples: int, meter: Meter) -> dict[str, float]:
    """Reads and writes of the workflow with ``size`` steps and ``size // 100`` resumes."""
    engine = WorkflowEngine(backend)
    got = await engine.get("long")
    assert len(got.steps) >= size  # and the steps earlier rounds added
    token = ""
    for _ in range(size // PAGE // 2):  # to the middle of the history
        _, token = await engine.list_steps("long", PAGE, token)
    middle, _ = await engine.list_steps("long", PAGE, token)
    assert middle == got.steps[::-1][size // PAGE // 2 * PAGE :][:PAGE]
    figures: dict[str, float] = {}
    await _time(
        figures,
        meter,
        "update_step with N steps",
        lambda: engine.update_step("long", StepState(size, status=StepStatus.RUNNING)),
        samples,
    )
    await _time(figures, meter, WHOLE, lambda: engine.get("long"), max(3, samples // 10))
    await _time(
        figures,
        meter,
        f"ListWorkflowSteps, first page of {PAGE}",
        lambda: engine.list_steps("long", PAGE),
        samples,
    )
    await _time(
        figures,
        meter,
        f"ListWorkflowSteps, a page of {PAGE} from the middle",
        lambda: engine.list_steps("long", PAGE, token),
        samples,
    )
    return figures


async def recoverable_rows(
    backend: Backend, size: int, samples: int, meter: Meter
) -> dict[str, float]:
    """Finding the newest recoverable checkpoint behind ``size`` newer unrecoverable ones."""
    engine = AgentEngine(backend)

    async def find() -> None:
        found = await engine.get_checkpoint("agent", recoverable_only=True)
        assert found.checkpoint_id == "safe"

    figures: dict[str, float] = {}
    await _time(figures, meter, "newest recoverable checkpoint behind N others", find, samples)
    await _time(
        figures,
        meter,
        "begin_recovery behind N others",
        lambda: engine.begin_recovery("agent"),
        samples,
    )
    return figures


ROWS = (resumes_rows, steps_rows, recoverable_rows)


async def _timed(backend: Backend, size: int, samples: int, meter: Meter) -> dict[str, float]:
    figures: dict[str, float] = {}
    for group in ROWS:
        figures.update(await group(backend, size, samples, meter))
    return figures


async def measure_all(
    sizes: tuple[int, ...] = SIZES,
    samples: int = SAMPLES,
    kinds: tuple[str, ...] = ("memory",),
    redis_url: str = "",
) -> list[dict[str, Any]]:
    """Every measure at every size: the records built once per size (:func:`build`), copied
    into a backend of each kind (:mod:`bench.bulk`) and timed there in :data:`ROUNDS`
    interleaved rounds: one row (backend, measure, n, value) per figure; times in ms."""
    log = functools.partial(print, file=sys.stderr, flush=True)
    built: dict[int, Backend] = {}
    grown = {}
    for size in sizes:
        started = time.perf_counter()
        built[size] = MemoryBackend()
        grown[size] = await build(built[size], size)
        log(f"workflow scaling: {size:,} built in {time.perf_counter() - started:.1f} s")
    rows = []
    for kind in kinds:
        started = time.perf_counter()
        meter = Meter(redis_url if kind == "redis" else "")
        async with copies(built, kind, redis_url) as stores:
            log(f"workflow scaling: {kind}, copied in {time.perf_counter() - started:.0f} s")
            timed = functools.partial(_timed, samples=samples, meter=meter)
            figures = await interleaved(stores, timed, ROUNDS, log)
        meter.close()
        log(f"workflow scaling: {kind} done in {time.perf_counter() - started:.0f} s")
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
    """Issue 19: the CPU time per call of every measure but the whole-history ``get`` stays
    flat from 1k to 100k."""
    found = []
    for (backend, name), by_size in _cells(results.get("workflows") or []).items():
        if name.endswith(CPU) and not name.startswith(WHOLE):
            label = f"{name.removesuffix(CPU)} ({backend}, CPU per call)"
            found.append(flatness(19, label, by_size, SIZES[0], SIZES[-1]))
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
        "Workflow and agent history (bench/workflow_scaling.py, engine in-process; p50 wall and "
        "CPU ms, CPU including the Redis main thread's on Redis):",
        "",
        "| backend | measure | " + " | ".join(f"N = {size:,}" for size in sizes) + " |",
        "|---|---|" + "--:|" * len(sizes),
    ]
    for (backend, name), by_size in cells.items():
        shown = " | ".join(_shown(by_size.get(size, "")) for size in sizes)
        lines.append(f"| {backend} | {name} | {shown} |")
    return lines + codec.table(codec_rows)


def _shown(value: float | str) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


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
