"""The record codec's speed (``python -m bench.codec``; also part of ``--parts workflows``).

Packs and unpacks typical records (a workflow step, a workflow record, a queued task) through
their :class:`~statekeeper_server.engine.records.Schema`, in this process's CPU time (which a
busy machine inflates less than wall time), and reports microseconds per record and records/s:
the best of :data:`ROUNDS` rounds of :data:`COUNT` records each.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from statekeeper_server.engine.domains.orchestration.records import TASK, Task, TaskState
from statekeeper_server.engine.domains.workflows import (
    STEP,
    WORKFLOW,
    StepState,
    StepStatus,
    WorkflowState,
    WorkflowStatus,
)
from statekeeper_server.engine.records import Schema

COUNT = 5_000
ROUNDS = 5


def _records() -> list[tuple[str, Schema[Any], Any]]:
    step = StepState(7, "fetch", StepStatus.COMPLETED, {"rows": 12}, 35, "", 1.7e9, 8)
    workflow = WorkflowState(
        "wf-1",
        WorkflowStatus.RUNNING,
        total_steps=20,
        current_step=7,
        context={"user": "u1"},
        state={"cursor": 7, "seen": [1, 2, 3]},
        metadata={},
        create_time=1.7e9,
        update_time=1.7e9,
        step_sequence=8,
    )
    task = Task(
        "t1", "index", data={"doc": 42}, required_capabilities=["x"], state=TaskState.PENDING
    )
    return [("step", STEP, step), ("workflow", WORKFLOW, workflow), ("task", TASK, task)]


def _best_us(call: Callable[[], Any]) -> float:
    """The best per-call CPU time of ``call`` in microseconds over the rounds."""
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(COUNT):
            call()
        best = min(best, (time.process_time() - started) / COUNT * 1e6)
    return best


def measure_codec() -> list[dict[str, Any]]:
    """One row per (record, direction): microseconds per record and records/s."""
    rows = []
    for name, schema, record in _records():
        stored = schema.pack(record)
        for direction, call in (
            ("pack", lambda s=schema, r=record: s.pack(r)),
            ("unpack", lambda s=schema, b=stored: s.unpack(b)),
        ):
            micros = _best_us(call)
            rows.append(
                {
                    "record": name,
                    "direction": direction,
                    "bytes": len(stored),
                    "us_per_record": round(micros, 2),
                    "records_per_s": round(1e6 / micros),
                }
            )
    return rows


def table(rows: list[dict[str, Any]]) -> list[str]:
    """The codec rows as markdown lines (none when not run)."""
    if not rows:
        return []
    lines = [
        "",
        "Record codec (bench/codec.py, CPU time per record, best of rounds):",
        "",
        "| record | bytes | direction | µs / record | records/s |",
        "|---|--:|---|--:|--:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['record']} | {row['bytes']} | {row['direction']} | "
            f"{row['us_per_record']} | {row['records_per_s']:,} |"
        )
    return lines


if __name__ == "__main__":
    for line in measure_codec():
        print(json.dumps(line))
