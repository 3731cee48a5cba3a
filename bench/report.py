"""The report of a run: a markdown table (printed and written), JSON with every figure and a
PNG chart of each operation's throughput relative to the echo ceiling."""

from __future__ import annotations

import array
import json
import os
import statistics
from collections.abc import Iterable
from typing import Any

from bench import (
    batching,
    queue_scaling,
    scaling,
    stack,
    targets,
    watchcost,
    workflow_scaling,
)
from bench.agents import best_own

#: The issue's targets, checked against the run's figures.
TARGETS = (
    "memory save/get at concurrency 16 >= 80% of echo",
    "file save at concurrency 16 >= 50% of echo, and more writes/s than etcd put",
    "redis save/get >= 60% of echo, one Redis round trip per save",
    "watch fan-out to 100 subscribers at 100 events/s: p99 < 20 ms",
    "server memory flat (+/-10%) over 1 minute of sustained load after warm-up",
)


def merge_latencies(chunks: Iterable[bytes]) -> list[int]:
    """Sorted latencies (ns) from the packed arrays of several processes."""
    merged = array.array("q")
    for chunk in chunks:
        merged.frombytes(chunk)
    return sorted(merged)


def percentile(ordered: list[int], pct: float) -> float:
    """The ``pct`` percentile of sorted nanoseconds, in milliseconds (nearest rank)."""
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank] / 1e6


def _find(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    for row in rows:
        if all(row.get(k) == v for k, v in match.items()):
            return row
    return None


def _ratio(row: dict[str, Any], base: dict[str, Any] | None) -> float | None:
    if base is None or not base["ops_per_s"]:
        return None
    return float(row["ops_per_s"] / base["ops_per_s"])


def add_ratios(results: dict[str, Any]) -> None:
    """Ratio of each row to the echo ceiling (same concurrency) and, for the Redis backend, to
    raw redis-py (same operation and concurrency)."""
    rows = results["load"]
    for row in rows:
        echo = _find(rows, label="echo", concurrency=row["concurrency"])
        row["vs_echo"] = _ratio(row, echo)
        # The same comparison by server CPU per operation (echo's / this row's): on a machine
        # shared with other work this is the steadier figure.
        mine, base = row.get("server_cpu_us_per_op"), echo and echo.get("server_cpu_us_per_op")
        row["cpu_vs_echo"] = base / mine if mine and base else None
        raw = None
        if row["target"] == "statekeeper" and row["backend"] == "redis":
            raw = _find(rows, target="redis-raw", op=row["op"], concurrency=row["concurrency"])
        row["vs_raw_redis"] = _ratio(row, raw)
        etcd = None
        if row["target"] == "statekeeper":
            etcd = _find(rows, target="etcd", op=row["op"], concurrency=row["concurrency"])
        row["vs_etcd"] = _ratio(row, etcd)


def round_medians(results: dict[str, Any]) -> dict[tuple[str, str], float]:
    """The median ops/s of each (label, op) over the interleaved target rounds."""
    by_row: dict[tuple[str, str], list[float]] = {}
    for row in results.get("rounds", []):
        by_row.setdefault((row["label"], row["op"]), []).append(row["ops_per_s"])
    return {key: statistics.median(rates) for key, rates in by_row.items()}


def check_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured figures and whether it is met."""
    rows = results["load"]

    medians = round_medians(results)
    echo_median = medians.get(("echo", "echo"))

    def ratio(backend: str, op: str) -> float | None:
        median = medians.get((f"statekeeper {backend}", op))
        if median is not None and echo_median:
            return median / echo_median
        row = _find(rows, target="statekeeper", backend=backend, op=op, concurrency=16)
        return row["vs_echo"] if row else None

    def cpu(backend: str, op: str) -> str:
        row = _find(rows, target="statekeeper", backend=backend, op=op, concurrency=16)
        return _pct(row["cpu_vs_echo"]) if row and row["cpu_vs_echo"] else "?"

    def rate(target: str, backend: str, op: str) -> float | None:
        label = "etcd" if target == "etcd" else f"{target} {backend}"
        if (label, op) in medians:
            return medians[(label, op)]
        row = _find(rows, target=target, backend=backend, op=op, concurrency=16)
        return row["ops_per_s"] if row else None

    out: list[dict[str, Any]] = []
    basis = "; ops/s: medians of the interleaved rounds" if medians else ""

    def add(name: str, measured: str, met: bool | None) -> None:
        out.append({"target": name, "measured": measured, "met": met})

    ms, mg = ratio("memory", "save"), ratio("memory", "get")
    if ms is not None and mg is not None:
        text = f"save {ms:.0%}, get {mg:.0%} of echo ops/s"
        text += f" (by server CPU/op: save {cpu('memory', 'save')}, get {cpu('memory', 'get')})"
        add(TARGETS[0], text + basis, ms >= 0.8 and mg >= 0.8)
    fs, fput, eput = ratio("file", "save"), rate("statekeeper", "file", "save"), None
    eput = rate("etcd", "etcd", "save")
    if fs is not None and fput is not None:
        text = f"save {fs:.0%} of echo (CPU/op {cpu('file', 'save')}), {fput:.0f}/s"
        met = fs >= 0.5
        if eput is not None:
            text += f" vs etcd put {eput:.0f}/s"
            met = met and fput > eput
        add(TARGETS[1], text + basis, met)
    rs, rg = ratio("redis", "save"), ratio("redis", "get")
    save_row = _find(rows, target="statekeeper", backend="redis", op="save", concurrency=1)
    if rs is not None and rg is not None:
        trips = save_row.get("redis_reads_per_op") if save_row else None
        text = f"save {rs:.0%}, get {rg:.0%} of echo (CPU/op: {cpu('redis', 'save')}, "
        text += f"{cpu('redis', 'get')}; server + redis-server)"
        met = rs >= 0.6 and rg >= 0.6
        if trips is not None:
            text += f"; {trips:.2f} Redis requests per save (c=1)"
            met = met and trips <= 1.05
        add(TARGETS[2], text + basis, met)
    fans = [r for r in results["fanout"] if r["rate"] == 100 and r["subscribers"] == 100]
    mine = [r for r in fans if r["label"].startswith("statekeeper")]
    if mine:
        best = min(mine, key=lambda r: r["p99_ms"])
        text = "; ".join(f"{r['label']} p99 {r['p99_ms']:.1f} ms" for r in fans)
        add(TARGETS[3], text, best["p99_ms"] < 20)
    soak = results.get("soak") or {}
    if soak:
        add(
            TARGETS[4],
            f"{soak['seconds']:.0f} s: RSS {soak['rss_mb_after_warmup']:.0f} -> "
            f"{soak['rss_mb_end']:.0f} MB, max deviation {soak['rss_max_deviation_pct']:.1f}%",
            soak["rss_max_deviation_pct"] <= 10 if soak["seconds"] >= 60 else None,
        )
    return out


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"


def markdown(results: dict[str, Any]) -> str:
    """The report as markdown."""
    meta = results["meta"]
    lines = [
        f"### statekeeper benchmark ({'quick' if meta['quick'] else 'full'} run, "
        f"{meta['started']})",
        "",
        f"Machine: {meta['machine']}, Python {meta['python']}; load average at start "
        f"{meta['load_avg_at_start'][0]:.2f}. Load generator: {meta['load_generator']}. "
        f"{meta['duration_s']:g} s per measurement after warm-up. Latencies are per call "
        "as the client sees them. CPU is in cores (1.00 = one core busy) over the window.",
        *targets.markdown([targets.Target(**t) for t in results.get("issue_targets", [])]),
    ]
    rows = results["load"]
    if rows:
        lines += [
            "",
            "| target | op | c=1 ops/s | c=1 p50 / p99 ms | c=16 ops/s | c=16 p50 / p99 ms "
            "| c=16 vs echo: ops/s (CPU/op) | c=16 vs raw Redis / etcd "
            "| c=16 server CPU (us/op) | c=16 client CPU |",
            "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
    seen: list[tuple[str, str]] = []
    for row in rows:
        if (row["label"], row["op"]) not in seen:
            seen.append((row["label"], row["op"]))
    for label, op in seen:
        one = _find(rows, label=label, op=op, concurrency=1)
        many = _find(rows, label=label, op=op, concurrency=16)
        peer = ""
        if many and many.get("vs_raw_redis") is not None:
            peer = f"{many['vs_raw_redis']:.0%} of raw"
        elif many and many.get("vs_etcd") is not None:
            peer = f"{many['vs_etcd']:.0%} of etcd"

        def cell(row: dict[str, Any] | None) -> tuple[str, str]:
            if row is None:
                return "", ""
            errors = f" ({row['errors']} errors)" if row["errors"] else ""
            return (
                f"{row['ops_per_s']:,.0f}{errors}",
                f"{row['p50_ms']:.2f} / {row['p99_ms']:.2f}",
            )

        c1, l1 = cell(one)
        c16, l16 = cell(many)
        lines.append(
            f"| {label} | {op} | {c1} | {l1} | {c16} | {l16} | "
            f"{_pct(many['vs_echo'])} ({_pct(many['cpu_vs_echo'])}) | {peer} | "
            f"{many['server_cpu_cores']:.2f} ({many['server_cpu_us_per_op'] or 0:.0f}) | "
            f"{many['client_cpu_cores']:.2f} |"
            if many
            else f"| {label} | {op} | {c1} | {l1} | | | | | | |"
        )
    redis_rows = [r for r in rows if r.get("redis_reads_per_op") is not None]
    if redis_rows:
        lines += [
            "",
            "Redis requests per operation (read events and commands counted by redis-server, "
            "c=1; commands include those run inside Lua scripts):",
            "",
            "| target | op | requests (round trips) / op | commands / op |",
            "|---|---|--:|--:|",
        ]
        for row in redis_rows:
            if row["concurrency"] == 1:
                lines.append(
                    f"| {row['label']} | {row['op']} | {row['redis_reads_per_op']:.2f} | "
                    f"{row['redis_commands_per_op']:.2f} |"
                )
    if results["fanout"]:
        lines += [
            "",
            "Watch fan-out (1 writer saving the document with its send time; every subscriber "
            "watching `fan/*` with prev_kv; latency = receipt - send, wall clock; "
            f"{results['meta'].get('fanout_load_generator', '')}):",
            "",
            "| server | processes | writes/s target (achieved) | subscribers | delivered "
            "events/s (target) | delivered | events/message | p50 ms | p99 ms | server CPU "
            "(us/event) | subscriber CPU |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for row in results["fanout"]:
            lines.append(
                f"| {row['label']} | {row['server_processes']} | {row['rate']} "
                f"({row['write_rate']:.0f}) | {row['subscribers']} | "
                f"{row['delivered_per_s']:,.0f} ({row['target_delivered_per_s']:,}) | "
                f"{row['delivered_fraction']:.0%} | {row['events_per_message']:.2f} | "
                f"{row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row['server_cpu_cores']:.2f} "
                f"({row['server_cpu_us_per_op'] or 0:.0f}) | {row['subscriber_cpu_cores']:.2f} |"
            )
    if results["speech"]:
        lines += [
            "",
            "Speech session stream (one session; a writer replaces its STT state back to back; "
            "subscribers on WatchSession):",
            "",
            "| backend | subscribers | updates/s | messages/s delivered (per subscriber) "
            "| delivered | p50 ms | p99 ms | server CPU |",
            "|---|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for row in results["speech"]:
            lines.append(
                f"| {row['backend']} | {row['subscribers']} | {row['write_rate']:.0f} | "
                f"{row['messages_per_s']:,.0f} ({row['per_subscriber_per_s']:,.0f}) | "
                f"{row['delivered_fraction']:.0%} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | "
                f"{row['server_cpu_cores']:.2f} |"
            )
    soak = results.get("soak") or {}
    if soak:
        lines += [
            "",
            f"Sustained load (memory backend with --history-revisions "
            f"{soak.get('history_revisions', '?')}, saves at c=16, "
            f"{soak['ops_per_s']:.0f}/s): server "
            f"RSS {soak['rss_mb_after_warmup']:.1f} MB after {soak['warmup_seconds']:.0f} s "
            f"warm-up, {soak['rss_mb_end']:.1f} MB after {soak['seconds']:.0f} s more "
            f"({soak['rss_change_pct']:+.1f}%, max deviation "
            f"{soak['rss_max_deviation_pct']:.1f}%).",
        ]
    rounds = results.get("rounds") or []
    if rounds:
        count = 1 + max(row["round"] for row in rounds)
        medians = round_medians(results)
        echo = medians.get(("echo", "echo"))
        lines += [
            "",
            f"Target rows again, c=16, in {count} interleaved rounds with every server up "
            "(echo, then each row in turn, then the next round), so that a change of the "
            "machine's speed meets the ceiling and the targets alike; the targets below use "
            "the medians:",
            "",
            "| target | op | ops/s per round | median | median vs echo |",
            "|---|---|--:|--:|--:|",
        ]
        for (label, op), median in medians.items():
            rates = [r["ops_per_s"] for r in rounds if (r["label"], r["op"]) == (label, op)]
            per_round = ", ".join(f"{rate:,.0f}" for rate in rates)
            share = f"{median / echo:.0%}" if echo else ""
            lines.append(f"| {label} | {op} | {per_round} | {median:,.0f} | {share} |")
    issue8 = results.get("targets") or []
    if issue8:
        lines += ["", "| target (issue 8) | measured | met |", "|---|---|---|"]
        for item in issue8:
            met = {True: "yes", False: "**no**", None: "n/a"}[item["met"]]
            lines.append(f"| {item['target']} | {item['measured']} | {met} |")
    lines += scaling.table(results.get("scaling") or [])
    lines += workflow_scaling.table(results.get("workflows") or [])
    lines += watchcost.markdown(results)
    lines += agents_table(results.get("agents") or [], results.get("agents_profile"))
    lines += batching.markdown(results)
    lines += stack.markdown(results)
    for note in results.get("skipped", []):
        lines.append(f"\nNot measured: {note}.")
    return "\n".join(lines) + "\n"


def agents_table(rows: list[dict[str, Any]], profile: dict[str, Any] | None = None) -> list[str]:
    """The agent-framework rows (bench/agents.py) as markdown lines (none when not run): each
    rate relative to the fastest of the framework's own stores that ran without errors at the
    same process count; then the profile of the worst statekeeper row."""
    if not rows:
        return []
    lines = [
        "",
        "Agent-framework session stores: one turn = ADK get_session + append_event, OpenAI "
        "Agents SDK get_items + add_items (2 items), or a LangGraph super-step (put + "
        "put_writes + get_tuple; langgraph-100k: a 100 KB channel value changed every step); "
        "4 tasks per process, a new conversation "
        "every 20 turns; 4 processes share one store where the store can be shared. "
        "Server CPU: the statekeeper server, Redis or PostgreSQL process:",
        "",
        "| framework | store | processes | turns/s | p50 / p99 ms | vs best own store "
        "| errors (first) | server CPU |",
        "|---|---|--:|--:|--:|--:|---|--:|",
    ]
    for row in rows:
        best = best_own(rows, row["framework"], row["processes"])
        ratio = f"{row['turns_per_s'] / best['turns_per_s']:.2f}x" if best else ""
        latency = f"{row['p50_ms']:.2f} / {row['p99_ms']:.2f}" if row["turns"] else "n/a"
        errors = f"{row['errors']} ({row['first_error']})" if row["errors"] else "0"
        cpu = "" if row["server_cpu_cores"] is None else f"{row['server_cpu_cores']:.2f}"
        lines.append(
            f"| {row['framework']} | {row['store']} | {row['processes']} | "
            f"{row['turns_per_s']:,.0f} | {latency} | {ratio} | "
            f"{errors.replace('|', '/')} | {cpu} |"
        )
    if profile:
        lines += [
            "",
            f"Profile of the worst statekeeper row: {profile['framework']} on {profile['store']} "
            f"({profile['ratio']:.2f}x {profile['compared_with']}; "
            f"{profile['turns_per_s_sampled']:,.0f} turns/s while sampled by py-spy):",
        ]
        for name, summary in profile["profiles"].items():
            lines += ["", f"{name} process:", "", "```", summary, "```"]
    return lines


def chart(results: dict[str, Any], path: str) -> bool:
    """Bars: throughput at concurrency 16 relative to echo, per operation and backend; False
    (and no file) when the run measured no operation load."""
    rows = [r for r in results["load"] if r["concurrency"] == 16 and r["target"] != "echo"]
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = []
    for row in rows:
        if row["label"] not in labels:
            labels.append(row["label"])
    ops = ["save", "get", "update", "cas", "list"]
    width = 0.8 / max(1, len(labels))
    figure, panels = plt.subplots(1, 2, figsize=(14, 5))
    titles = {
        "vs_echo": "throughput / echo throughput (c=16)",
        "cpu_vs_echo": "echo server CPU per op / server CPU per op (c=16)",
    }
    for axes, field in zip(panels, ("vs_echo", "cpu_vs_echo"), strict=True):
        for index, label in enumerate(labels):
            heights = []
            for op in ops:
                row = _find(rows, label=label, op=op)
                value = row.get(field) if row else None
                heights.append(value if value is not None else 0.0)
            positions = [i + index * width for i in range(len(ops))]
            axes.bar(positions, heights, width, label=label)
        axes.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        axes.set_xticks([i + width * (len(labels) - 1) / 2 for i in range(len(ops))], ops)
        axes.set_yscale("log")
        axes.set_title(titles[field], fontsize=10)
        axes.legend(fontsize=7)
    started = results["meta"]["started"]
    figure.suptitle(f"statekeeper relative to a no-op gRPC echo on the same stack ({started})")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return True


def fanout_targets(results: dict[str, Any]) -> list[targets.Target]:
    """Issue 18's fan-out targets: every statekeeper row at 1,000/s x 100 delivers everything
    with p99 < 200 ms; at 100/s x 100 its p99 is within 1.2 x the bare broadcast's."""
    rows = results.get("fanout") or []
    found: list[targets.Target] = []
    bare = next(
        (
            r
            for r in rows
            if r["label"].startswith("bare") and (r["rate"], r["subscribers"]) == (100, 100)
        ),
        None,
    )
    for row in rows:
        if not row["label"].startswith("statekeeper") or row["subscribers"] != 100:
            continue
        shown = (
            f"{row['label']}: {row['delivered_fraction']:.1%} delivered, p99 {row['p99_ms']:.0f} ms"
        )
        if row["rate"] == 1000:
            met = row["delivered_fraction"] >= 1.0 and row["p99_ms"] < 200
            found.append(
                targets.Target(18, "fan-out 1,000/s x 100: all delivered, p99 < 200 ms", shown, met)
            )
        elif row["rate"] == 100 and bare is not None:
            ratio = row["p99_ms"] / max(bare["p99_ms"], 1e-9)
            found.append(
                targets.Target(
                    18,
                    "fan-out 100/s x 100: p99 <= 1.2 x the bare broadcast's",
                    f"{shown}, bare p99 {bare['p99_ms']:.0f} ms ({ratio:.2f} x)",
                    row["delivered_fraction"] >= 1.0 and ratio <= 1.2,
                )
            )
    return found


#: Every part's ``targets`` function, in the order the report lists them.
TARGET_PARTS = (
    stack.targets,
    batching.targets,
    fanout_targets,
    scaling.targets,
    queue_scaling.targets,
    workflow_scaling.targets,
    watchcost.targets,
)


def write(results: dict[str, Any], out_dir: str) -> str:
    """Write ``bench-<mode>.md/.json/.png`` under ``out_dir``, print the markdown, return it."""
    add_ratios(results)
    results["targets"] = check_targets(results)
    results["issue_targets"] = [vars(t) for t in targets.collect(results, TARGET_PARTS)]
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, "bench-quick" if results["meta"]["quick"] else "bench-full")
    text = markdown(results)
    with open(stem + ".md", "w", encoding="utf-8") as handle:
        handle.write(text)
    with open(stem + ".json", "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=1, default=str)
    charted = chart(results, stem + ".png")
    print(text)
    print(f"written: {stem}.md, {stem}.json" + (f", {stem}.png" if charted else ""))
    return text
