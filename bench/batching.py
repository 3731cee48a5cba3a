"""The batching part of ``make bench`` (issue 18's throughput targets).

With a statekeeper server per backend (memory, file with its durable log, Redis) and etcd all
running at once, each round measures, from the same client processes (4 processes x 4 tasks):

* statekeeper save and get at concurrency 16 with client-side coalescing on (the default) and
  off, and etcd's put and range (the ``etcd`` rows);
* the latency of a lone call (concurrency 1) on the memory backend, coalescing on and off.

Rounds interleave every row, so a change of the machine's speed meets all of them alike; the
report takes each row's median and gives the ratios of one run: statekeeper / etcd and the p50
with coalescing on / off.
"""

from __future__ import annotations

import os
import statistics
from typing import TYPE_CHECKING, Any

from bench.servers import Service, start_etcd, start_statekeeper, stop_all
from bench.targets import Target, at_least, at_most
from bench.workload import run_job

if TYPE_CHECKING:
    from bench.run import Harness

#: The statekeeper load targets: coalescing on (the client's default) and off.
TARGETS = {"on": "statekeeper", "off": "statekeeper-alone"}
#: About how many lone calls a second one client process makes (sizes the lone-call rows).
LONE_CALLS_PER_S = 500


def _servers(harness: Harness, redis: Service | None) -> dict[str, tuple[Service, list[Service]]]:
    """backend -> (server, servers whose CPU counts) for every backend that can run."""
    scratch = os.path.join(harness.scratch, "batching")
    started: dict[str, tuple[Service, list[Service]]] = {}
    for backend in harness.settings.backends:
        if backend == "memory":
            args = ["--backend", "memory"]
        elif backend == "file":
            args = ["--backend", "file", "--data-dir", os.path.join(scratch, "file-data")]
        elif backend == "redis" and redis is not None:
            args = ["--backend", "redis", "--redis-url", f"redis://{redis.address}"]
        else:
            continue
        server = harness.start(start_statekeeper(*args, name=f"statekeeper-{backend}-batching"))
        assert server is not None
        started[backend] = (server, [server, *([redis] if backend == "redis" and redis else [])])
    return started


def measure(harness: Harness, redis: Service | None) -> None:
    """Every row of every round into ``results["batching"]``."""
    harness.results.setdefault("batching", [])
    servers = _servers(harness, redis)
    etcd = harness.start(start_etcd())
    if etcd is None:
        harness.results["skipped"].append("batching rows vs etcd: etcd not installed")
    rounds = max(1, harness.settings.target_rounds)
    try:
        for number in range(rounds):
            harness.log(f"batching rows, round {number + 1} of {rounds}")
            for backend, (server, counted) in servers.items():
                for op in ("save", "get"):
                    for mode, target in TARGETS.items():
                        row = harness.load(
                            f"statekeeper {backend} batching {mode}",
                            backend,
                            target,
                            server.address,
                            op,
                            16,
                            counted,
                            redis if backend == "redis" else None,
                            "batching",
                        )
                        row.update(round=number, batching=mode)
            if etcd is not None:
                for op in ("save", "get"):
                    row = harness.load(
                        "etcd", "etcd", "etcd", etcd.address, op, 16, [etcd], None, "batching"
                    )
                    row.update(round=number, batching="-")
            if "memory" in servers:
                for op in ("save", "get"):
                    lone(harness, servers["memory"][0], op, number)
    finally:
        stop_all([server for server, _ in servers.values()] + ([etcd] if etcd else []))


def lone(harness: Harness, server: Service, op: str, number: int) -> None:
    """The lone-call latency rows: one client process alternating blocks of calls with
    coalescing on and off (see ``workload._lone``), for about twice a measurement's time."""
    block = 50
    pairs = max(4, int(harness.settings.duration * 2 * LONE_CALLS_PER_S / (2 * block)))
    job = {"kind": "lone", "address": server.address, "op": op, "block": block, "pairs": pairs}
    output = harness.pool.submit(run_job, job).result()
    row: dict[str, Any] = {"label": "statekeeper memory lone", "backend": "memory", "op": op}
    row.update(concurrency=1, round=number, pair_ratios=output["ratios"])
    row.update(on_p50_ms=output["p50_ms"]["on"], off_p50_ms=output["p50_ms"]["off"])
    harness.results["batching"].append(row)
    harness.log(
        f"  lone {op:<4} c=1: p50 on {row['on_p50_ms']:.3f} ms, off {row['off_p50_ms']:.3f} ms, "
        f"median of {len(output['ratios'])} pair ratios {statistics.median(output['ratios']):.3f}"
    )


def _median(rows: list[dict[str, Any]], field: str, **match: Any) -> float | None:
    values = [r[field] for r in rows if all(r.get(k) == v for k, v in match.items())]
    return statistics.median(values) if values else None


def _calls_per_batch(rows: list[dict[str, Any]], backend: str, op: str) -> float | None:
    """The calls a Batch RPC carried on average in the coalescing-on rows."""
    chosen = [
        r
        for r in rows
        if (r.get("backend"), r["op"], r.get("batching"), r["concurrency"])
        == (backend, op, "on", 16)
    ]
    batches = sum(r.get("batches", 0) for r in chosen)
    calls = sum(r.get("batched_calls", 0) for r in chosen)
    return calls / batches if batches else None


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """The medians and same-run ratios the issue's targets compare (also kept in the JSON)."""
    rows = results.get("batching") or []
    out: dict[str, Any] = {"throughput": [], "latency": []}
    for op in ("save", "get"):
        etcd = _median(rows, "ops_per_s", label="etcd", op=op, concurrency=16)
        for backend in ("memory", "file", "redis"):
            match = {"backend": backend, "op": op, "concurrency": 16}
            on = _median(rows, "ops_per_s", **match, batching="on")
            off = _median(rows, "ops_per_s", **match, batching="off")
            if on is None:
                continue
            out["throughput"].append(
                {
                    "backend": backend,
                    "op": op,
                    "on_ops_per_s": on,
                    "off_ops_per_s": off,
                    "etcd_ops_per_s": etcd,
                    "on_vs_etcd": on / etcd if etcd else None,
                    "on_vs_off": on / off if off else None,
                    "calls_per_batch": _calls_per_batch(rows, backend, op),
                    "server_us_per_op": _median(
                        rows, "server_cpu_us_per_op", **match, batching="on"
                    ),
                }
            )
        lone_rows = [r for r in rows if r["concurrency"] == 1 and r["op"] == op]
        ratios = [ratio for r in lone_rows for ratio in r["pair_ratios"]]
        if ratios:
            out["latency"].append(
                {
                    "op": op,
                    "on_p50_ms": statistics.median(r["on_p50_ms"] for r in lone_rows),
                    "off_p50_ms": statistics.median(r["off_p50_ms"] for r in lone_rows),
                    "ratio": statistics.median(ratios),
                    "pairs": len(ratios),
                }
            )
    return out


def markdown(results: dict[str, Any]) -> list[str]:
    """The report's lines for this part (none when it did not run)."""
    if not results.get("batching"):
        return []
    figures = results["batching_summary"] = summary(results)
    rounds = 1 + max(row["round"] for row in results["batching"])
    lines = [
        "",
        f"Batching (issue 18), c=16 from the same 4 client processes, medians of {rounds} "
        "interleaved rounds; coalescing on is the client's default:",
        "",
        "| backend | op | coalescing on, ops/s | off, ops/s | etcd, ops/s | on / etcd | on / off "
        "| calls per Batch | server CPU on, us/op |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]

    def number(value: float | None, form: str) -> str:
        return "" if value is None else format(value, form)

    for item in figures["throughput"]:
        lines.append(
            f"| {item['backend']} | {item['op']} | {number(item['on_ops_per_s'], ',.0f')} | "
            f"{number(item['off_ops_per_s'], ',.0f')} | {number(item['etcd_ops_per_s'], ',.0f')} | "
            f"{number(item['on_vs_etcd'], '.2f')} | {number(item['on_vs_off'], '.2f')} | "
            f"{number(item['calls_per_batch'], '.1f')} | "
            f"{number(item['server_us_per_op'], '.0f')} |"
        )
    lines += [
        "",
        "| lone call (c=1, memory) | p50 on, ms | p50 off, ms | on / off |",
        "|---|--:|--:|--:|",
    ]
    for item in figures["latency"]:
        lines.append(
            f"| {item['op']} | {item['on_p50_ms']:.3f} | {item['off_p50_ms']:.3f} | "
            f"{item['ratio']:.2f} |"
        )
    return lines


def targets(results: dict[str, Any]) -> list[Target]:
    """Issue 18's throughput and latency targets, from the medians of the interleaved rounds."""
    if not results.get("batching"):
        return []
    figures = summary(results)
    found: list[Target] = []
    for item in figures["throughput"]:
        ratio = item["on_vs_etcd"]
        etcd_op = "put" if item["op"] == "save" else "range"
        measured = "" if ratio is None else f"{ratio:.2f} x ({item['on_ops_per_s']:,.0f}/s vs "
        measured += "" if ratio is None else f"{item['etcd_ops_per_s']:,.0f}/s)"
        found.append(
            Target(
                18,
                f"{item['backend']} {item['op']} ops/s at c=16 >= etcd {etcd_op}",
                measured or "no etcd row",
                at_least(ratio, 1.0),
            )
        )
    for item in figures["latency"]:
        found.append(
            Target(
                18,
                f"coalescing adds <= 10% to p50 at c=1 ({item['op']}, memory)",
                f"on / off {item['ratio']:.2f}, median of {item['pairs']} alternating pairs "
                f"({item['on_p50_ms']:.3f} vs {item['off_p50_ms']:.3f} ms)",
                at_most(item["ratio"], 1.10),
            )
        )
    rates = {(i["backend"], i["op"]): i["on_ops_per_s"] for i in figures["throughput"]}
    file_save, memory_save = rates.get(("file", "save")), rates.get(("memory", "save"))
    if file_save is not None and memory_save:
        found.append(
            Target(
                18,
                "file save at c=16 >= 80% of memory save",
                f"{file_save / memory_save:.0%} ({file_save:,.0f} vs {memory_save:,.0f}/s)",
                at_least(file_save / memory_save, 0.8),
            )
        )
    return found
