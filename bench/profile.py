"""Profile the server's hot path: ``python -m bench.profile --op save`` drives one operation at
concurrency 16 against a memory-backend server and samples the server with py-spy.

Writes ``bench/results/profile-<op>.txt`` (the functions with the most samples, inclusive and
self) and the collapsed stacks (``.folded``, for flame graph tools); prints the summary.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import multiprocessing
import os
import shutil
import subprocess
import sys
import time

from bench.servers import start_statekeeper
from bench.workload import run_job


def summarize(folded: str, top: int = 25, skip: tuple[str, ...] = ()) -> str:
    """Inclusive and self sample counts per function from py-spy's collapsed stacks; frames
    containing one of ``skip`` (the event loop, process and thread plumbing) are left out of
    the inclusive list."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        for frame in set(frames):
            if not any(part in frame for part in skip):
                inclusive[frame] += count
        own[frames[-1]] += count
    lines = [f"{total} samples", "", "inclusive:"]
    lines += [f"{100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    lines += ["", "self:"]
    lines += [f"{100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    """Run the load, sample the server, write and print the summary."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument(
        "--op", default="save", choices=["save", "get", "update", "cas", "list", "echo"]
    )
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--backend", default="memory")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    module = "bench.echo_server" if args.op == "echo" else "statekeeper_server"
    server = start_statekeeper("--backend", args.backend, module=module, name="statekeeper")
    context = multiprocessing.get_context("spawn")
    manager = context.Manager()
    ready, go = manager.Queue(), manager.Queue()
    os.makedirs(args.out, exist_ok=True)
    folded_path = os.path.join(args.out, f"profile-{args.op}.folded")
    try:
        with concurrent.futures.ProcessPoolExecutor(args.clients, mp_context=context) as pool:
            jobs = [
                {
                    "kind": "load",
                    "target": "echo" if args.op == "echo" else "statekeeper",
                    "address": server.address,
                    "op": args.op,
                    "tasks": 16 // args.clients,
                    "worker": w,
                    "duration": args.seconds + 2,
                    "ready": ready,
                    "go": go,
                }
                for w in range(args.clients)
            ]
            futures = [pool.submit(run_job, job) for job in jobs]
            for _ in jobs:
                ready.get(timeout=120)
            for _ in jobs:
                go.put(time.time())
            time.sleep(1.0)
            sampling = ["--duration", str(int(args.seconds)), "--rate", "200", "--format", "raw"]
            output = ["--output", folded_path, "--nonblocking"]
            subprocess.run(
                [py_spy, "record", "--pid", str(server.pid), *sampling, *output],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            ops = sum(f.result()["ops"] for f in futures)
    finally:
        server.stop()
        manager.shutdown()
    with open(folded_path, encoding="utf-8") as handle:
        summary = summarize(handle.read())
    text = f"{args.op} at c=16, {ops / (args.seconds + 2):.0f} ops/s while sampled\n{summary}\n"
    with open(os.path.join(args.out, f"profile-{args.op}.txt"), "w", encoding="utf-8") as handle:
        handle.write(text)
    print(text)


if __name__ == "__main__":
    main()
