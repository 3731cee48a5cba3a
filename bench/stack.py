"""The cost of the server stack per call, in paired rounds (``--parts stack``).

Four servers run at once: the bare ``grpc.aio`` echo (:mod:`bench.bare_echo_server`), the
product's server with the no-op echo service (:mod:`bench.echo_server`), and two product servers
with the memory backend (one for Save, one for Get). Every client task calls each lane in turn
(bare echo, echo, Save, Get: one plain RPC each, the same 1.3 KB document, Get asking for the
MessagePack form as the Python client does), so that every lane meets the same machine
load at each moment; a round's figure is a server's CPU seconds over its calls. On a shared
machine this pairing is what makes the ratios steady (two instances of the bare server agree
within a few percent), where separate measurements drift by tens of percent.

Issue 15's targets (:data:`TARGETS`): the echo lane costs at most 10% more server CPU per call
than the bare server, and Save and Get each at most 25% more than echo. Each target's ratio is
taken per round (both lanes measured over the same moments) and the verdict is the median of
the rounds' ratios; the run logs each target with its ratio, the rounds' range and PASS/FAIL,
next to the load average.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Awaitable, Callable
from typing import Any

from bench.targets import Target, at_most

#: Concurrent client tasks (each calls every lane in turn).
TASKS = 16
#: Keys each task writes and reads.
KEYS = 16
#: The lanes: (label, server, operation); each lane has a server of its own.
LANES = (
    ("bare grpc.aio echo", "bare", "echo"),
    ("echo", "echo", "echo"),
    ("statekeeper memory", "save", "save"),
    ("statekeeper memory", "get", "get"),
)
#: Issue 15's targets: (what, lane, reference lane, the largest ratio allowed).
TARGETS = (
    ("echo server CPU per call vs bare grpc.aio", "echo", "bare", 1.10),
    ("memory save server CPU per call vs echo", "save", "echo", 1.25),
    ("memory get server CPU per call vs echo", "get", "echo", 1.25),
)
#: Measured rounds (after one warm-up round) and calls per client task and lane in each.
ROUNDS, QUICK_ROUNDS = 11, 5
CALLS, QUICK_CALLS = 200, 60


def _calls(channels: dict[str, Any], task: int) -> list[Callable[[int], Awaitable[Any]]]:
    """One coroutine function per lane for client task ``task``, then the Save that fills the
    Get lane's server."""
    from statekeeper import values
    from statekeeper.v1 import common_pb2, state_service_pb2_grpc
    from statekeeper.v1 import state_service_pb2 as pb

    from bench.stubs import load
    from bench.workload import DOC

    echo_pb2, echo_grpc = load("bench_echo")
    payload = values.pack(DOC)
    keys = [f"stack/{task}/{i}" for i in range(KEYS)]
    bare = echo_grpc.EchoServiceStub(channels["bare"])
    echo = echo_grpc.EchoServiceStub(channels["echo"])
    saves = state_service_pb2_grpc.StateServiceStub(channels["save"])
    gets = state_service_pb2_grpc.StateServiceStub(channels["get"])
    document = common_pb2.Value(msgpack=payload)

    def echo_call(stub: Any) -> Callable[[int], Awaitable[Any]]:
        return lambda i: stub.Echo(echo_pb2.EchoRequest(key=keys[i % KEYS], payload=payload))

    return [
        echo_call(bare),
        echo_call(echo),
        lambda i: saves.Save(pb.SaveRequest(key=keys[i % KEYS], value=document)),
        lambda i: gets.Get(
            pb.GetRequest(key=keys[i % KEYS], value_encoding=common_pb2.VALUE_ENCODING_MSGPACK)
        ),
        lambda i: gets.Save(pb.SaveRequest(key=keys[i % KEYS], value=document)),
    ]


async def _rounds(
    servers: dict[str, Any], rounds: int, calls_per_task: int
) -> dict[int, list[float]]:
    """Server CPU microseconds per call of each lane, per round (a warm-up round first)."""
    import grpc

    channels = {name: grpc.aio.insecure_channel(s.address) for name, s in servers.items()}
    try:
        calls = [_calls(channels, task) for task in range(TASKS)]
        for task in range(TASKS):  # every key exists before Get is measured
            for i in range(KEYS):
                await calls[task][-1](i)
        lanes = [task_calls[: len(LANES)] for task_calls in calls]
        per_lane: dict[int, list[float]] = {index: [] for index in range(len(LANES))}
        for round_number in range(rounds + 1):

            async def run(task: int) -> None:
                for i in range(calls_per_task):
                    for call in lanes[task]:
                        await call(i)

            before = {name: s.cpu_seconds() for name, s in servers.items()}
            await asyncio.gather(*(run(task) for task in range(TASKS)))
            after = {name: s.cpu_seconds() for name, s in servers.items()}
            if round_number == 0:
                continue
            for index, (_, server, _) in enumerate(LANES):
                spent = after[server] - before[server]
                per_lane[index].append(spent / (TASKS * calls_per_task) * 1e6)
        return per_lane
    finally:
        for channel in channels.values():
            await channel.close()


def measure(harness: Any) -> None:
    """Run the paired rounds into ``harness.results["stack"]``."""
    import os

    from bench.servers import start_statekeeper, stop_all

    quick = harness.settings.quick
    harness.log("server stack per call, paired rounds (bare echo, echo, save, get)")
    load_before = os.getloadavg()
    servers = {
        "bare": start_statekeeper(module="bench.bare_echo_server", name="stack-bare"),
        "echo": start_statekeeper("--backend", "memory", module="bench.echo_server", name="echo"),
        "save": start_statekeeper("--backend", "memory", name="stack-save"),
        "get": start_statekeeper("--backend", "memory", name="stack-get"),
    }
    try:
        rounds, calls = (QUICK_ROUNDS, QUICK_CALLS) if quick else (ROUNDS, CALLS)
        per_lane = asyncio.run(_rounds(servers, rounds, calls))
    finally:
        stop_all(list(servers.values()))
    rows = []
    for index, (label, _, op) in enumerate(LANES):
        rows.append(
            {
                "label": label,
                "op": op,
                "us_per_call": per_lane[index],
                "median": statistics.median(per_lane[index]),
            }
        )
    harness.results["stack"] = rows
    harness.results["stack_load"] = [load_before[0], os.getloadavg()[0]]
    for target in targets(harness.results):
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[target.met]
        harness.log(f"  {target.name}: {target.measured} {verdict}")


def markdown(results: dict[str, Any]) -> list[str]:
    """The paired rows as markdown lines (none when not run; verdicts: :func:`targets`)."""
    rows = results.get("stack") or []
    if not rows:
        return []
    medians = {(r["label"], r["op"]): r["median"] for r in rows}
    bare = medians[("bare grpc.aio echo", "echo")]
    echo = medians[("echo", "echo")]
    lines = [
        "",
        "Server CPU per call in paired rounds (every client task calls each row in turn, one "
        "plain RPC each; see bench/stack.py):",
        "",
        "| target | op | us per call, per round | median | vs bare | vs echo |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for row in rows:
        rounds = ", ".join(f"{v:.0f}" for v in row["us_per_call"])
        lines.append(
            f"| {row['label']} | {row['op']} | {rounds} | {row['median']:.0f} | "
            f"{row['median'] / bare:.2f} | {row['median'] / echo:.2f} |"
        )
    return lines


def targets(results: dict[str, Any]) -> list[Target]:
    """Issue 15's server-CPU targets (:data:`TARGETS`), each the median of the rounds'
    ratios, with their range and the load average of the run."""
    rows = results.get("stack") or []
    if not rows:
        return []
    lanes = {server: row["us_per_call"] for row, (_, server, _) in zip(rows, LANES, strict=True)}
    load = results.get("stack_load") or [float("nan")] * 2
    found = []
    for what, lane, reference, limit in TARGETS:
        ratios = [a / b for a, b in zip(lanes[lane], lanes[reference], strict=True)]
        ratio = statistics.median(ratios)
        found.append(
            Target(
                15,
                f"{what} <= {limit:.2f} x",
                f"{ratio:.2f} x (rounds {min(ratios):.2f}-{max(ratios):.2f}; "
                f"{statistics.median(lanes[lane]):.0f} vs "
                f"{statistics.median(lanes[reference]):.0f} us; load {load[0]:.1f}-{load[1]:.1f})",
                at_most(ratio, limit),
            )
        )
    return found
