"""The benchmark run: start every server, drive each scenario from a pool of client processes,
collect the figures and write the report (``python -m bench [--quick]``)."""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from bench import (
    agents,
    batching,
    file_restart,
    queue_scaling,
    replay,
    report,
    scaling,
    stack,
    watchcost,
    workflow_scaling,
)
from bench.servers import (
    Service,
    loadgen,
    start_etcd,
    start_redis,
    start_statekeeper,
    stop_all,
)
from bench.workload import run_job, warm

OPERATIONS = ("save", "get", "update", "cas", "list")
#: The operations each target implements (etcd has no merge; plain Redis has no CAS here).
TARGET_OPERATIONS = {
    "statekeeper": OPERATIONS,
    "echo": ("echo",),
    "redis-raw": ("save", "get", "update", "list"),
    "etcd": ("save", "get", "cas", "list"),
}
#: The Watch streams of the fan-out share this many client connections (as the load's four
#: client processes do).
FANOUT_CONNECTIONS = 4
#: The subscribers' HTTP/2 flow-control window (per stream and per connection): a merged watch
#: message is 60-160 KB at 1,000 changes/s, and with gRPC's initial 64 KiB each one would wait
#: for the subscriber's window updates (see docs/watch-size.md).
FANOUT_WINDOW = 16 << 20
#: The label of the bare grpc.aio broadcast, the fan-out's ceiling.
BARE = "bare grpc.aio broadcast"
#: The rows behind the issue's throughput targets (label, operation), at concurrency 16.
TARGET_ROWS = (
    ("echo", "echo"),
    ("statekeeper memory", "save"),
    ("statekeeper memory", "get"),
    ("statekeeper file", "save"),
    ("statekeeper redis", "save"),
    ("statekeeper redis", "get"),
    ("etcd", "save"),
)
#: Server processes of the multi-process row (``serve --workers``, Redis backend).
WORKERS = 2
#: Watch history kept by the soak server: the memory backend keeps the last N revisions for
#: watchers (default 100,000), so RSS grows until that history is full; a smaller cap lets the
#: warm-up reach the plateau and the soak measure the steady state.
SOAK_HISTORY = 5000


@dataclass
class Settings:
    """Durations and sizes of one run."""

    quick: bool
    duration: float
    warmup: float
    fanout_seconds: float
    speech_seconds: float
    soak_seconds: float
    soak_warmup: float
    clients: int
    concurrency: tuple[int, ...]
    backends: tuple[str, ...]
    fanouts: tuple[tuple[int, int], ...]
    target_rounds: int
    parts: tuple[str, ...]


#: The fan-out cells of the full run (writes/s, subscribers): the target's 100 x 100, the same
#: at half the subscribers, and ten times the rate.
FANOUTS = ((100, 50), (100, 100), (1000, 100))


def _fanouts(text: str) -> tuple[tuple[int, int], ...]:
    """``--fanouts`` (``RATExSUBSCRIBERS,...``, e.g. ``1000x100``) as (writes/s, subscribers)."""
    cells = []
    for cell in filter(None, text.split(",")):
        rate, _, subscribers = cell.partition("x")
        cells.append((int(rate), int(subscribers)))
    return tuple(cells)


def settings_from(args: argparse.Namespace) -> Settings:
    """Quick mode (under 2 minutes) or the full run."""
    quick = bool(args.quick)
    return Settings(
        quick=quick,
        duration=args.duration or (0.6 if quick else 6.0),
        warmup=0.2 if quick else 1.5,
        fanout_seconds=1.5 if quick else 6.0,
        speech_seconds=1.0 if quick else 5.0,
        soak_seconds=args.soak or (4.0 if quick else 60.0),
        soak_warmup=1.0 if quick else 15.0,
        clients=args.clients,
        concurrency=(1, 16),
        backends=tuple(args.backends.split(",")),
        fanouts=_fanouts(args.fanouts) or (((100, 100),) if quick else FANOUTS),
        # The quick run skips the interleaved target rounds and the multi-process server.
        target_rounds=0 if quick else 3,
        parts=tuple(args.parts.split(",")),
    )


class Harness:
    """Servers, the client pool and the collected figures of one run."""

    def __init__(self, settings: Settings, scratch: str) -> None:
        self.settings = settings
        self.scratch = scratch
        self.services: list[Service] = []
        self.context = multiprocessing.get_context("spawn")
        self.manager = self.context.Manager()
        self.pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=settings.clients + 1, mp_context=self.context
        )
        self.results: dict[str, Any] = {
            "meta": {
                "quick": settings.quick,
                "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "python": sys.version.split()[0],
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "load_avg_at_start": list(os.getloadavg()),
                "duration_s": settings.duration,
                "client_processes": settings.clients,
                "load_generator": (
                    f"{settings.clients} Python client processes (multiprocessing, grpc.aio); "
                    "concurrency 16 = 4 processes x 4 tasks, concurrency 1 = 1 task"
                ),
                "fanout_load_generator": (
                    "subscribers: the Go load generator (bench/loadgen), one process with the "
                    f"Watch streams over {FANOUT_CONNECTIONS} connections, "
                    f"{FANOUT_WINDOW >> 20} MiB flow-control windows; writer: one Python "
                    "client process"
                ),
            },
            "load": [],
            "rounds": [],
            "fanout": [],
            "speech": [],
            "soak": {},
            "agents": [],
            "skipped": [],
        }

    def log(self, text: str) -> None:
        """Progress on stderr."""
        print(text, file=sys.stderr, flush=True)

    def start(self, service: Service | None) -> Service | None:
        """Track a service so that it is stopped at the end."""
        if service is not None:
            self.services.append(service)
        return service

    def warm_pool(self) -> None:
        """Start every worker process before the first measurement."""
        workers = self.settings.clients + 1
        pids = set(self.pool.map(warm, [1.0] * workers))
        self.log(f"client pool: {len(pids)} processes")

    # -- closed-loop loads ---------------------------------------------------------------------

    def load(
        self,
        label: str,
        backend: str,
        target: str,
        address: str,
        op: str,
        concurrency: int,
        servers: list[Service],
        redis: Service | None = None,
        table: str = "load",
    ) -> dict[str, Any]:
        """Run one operation at one concurrency and record its row in ``results[table]``."""
        s = self.settings
        processes = 1 if concurrency == 1 else min(s.clients, concurrency)
        tasks = concurrency // processes
        jobs = [
            {
                "kind": "load",
                "target": target,
                "address": address,
                "op": op,
                "tasks": tasks,
                "worker": w,
                "duration": s.duration,
            }
            for w in range(processes)
        ]
        futures, start_at = self._start_loads(jobs, s.warmup)
        sample = _Sampler(servers, redis)
        _sleep_until(start_at)
        sample.begin()
        _sleep_until(start_at + s.duration)
        sample.end()
        outputs = [f.result() for f in futures]
        ops = sum(o["ops"] for o in outputs)
        latencies = report.merge_latencies(o["latencies_ns"] for o in outputs)
        row = {
            "label": label,
            "backend": backend,
            "target": target,
            "op": op,
            "concurrency": concurrency,
            "client_processes": processes,
            "ops": ops,
            "ops_per_s": ops / s.duration,
            "p50_ms": report.percentile(latencies, 50),
            "p99_ms": report.percentile(latencies, 99),
            "errors": sum(o["errors"] for o in outputs),
            "first_error": next((o["first_error"] for o in outputs if o["first_error"]), ""),
            "client_cpu_cores": sum(o["cpu_s"] for o in outputs) / s.duration,
            "batched_calls": sum(o.get("batched_calls", 0) for o in outputs),
            "batches": sum(o.get("batches", 0) for o in outputs),
            **sample.figures(s.duration, ops),
        }
        self.results[table].append(row)
        self.log(
            f"  {label:<22} {op:<6} c={concurrency:<3} {row['ops_per_s']:>9.0f} ops/s  "
            f"p50 {row['p50_ms']:.2f} ms  p99 {row['p99_ms']:.2f} ms  "
            f"server {row['server_cpu_cores']:.2f} cores "
            f"({row['server_cpu_us_per_op'] or 0:.0f} us/op)  client {row['client_cpu_cores']:.2f}"
            + (f"  ERRORS {row['errors']}: {row['first_error']}" if row["errors"] else "")
        )
        return row

    def _start_loads(
        self, jobs: list[dict[str, Any]], warmup: float
    ) -> tuple[list[concurrent.futures.Future[dict[str, Any]]], float]:
        """Submit load jobs, wait until every one has done its setup, then give them one start
        time ``warmup`` seconds ahead (they run unmeasured until then)."""
        ready, go = self.manager.Queue(), self.manager.Queue()
        futures = [self.pool.submit(run_job, {**job, "ready": ready, "go": go}) for job in jobs]
        for _ in jobs:
            ready.get(timeout=120)
        start_at = time.time() + warmup
        for _ in jobs:
            go.put(start_at)
        return futures, start_at

    def loads(
        self,
        label: str,
        backend: str,
        target: str,
        address: str,
        servers: list[Service],
        redis: Service | None = None,
    ) -> None:
        """Every operation of ``target`` at every concurrency."""
        for op in TARGET_OPERATIONS[target]:
            for concurrency in self.settings.concurrency:
                self.load(label, backend, target, address, op, concurrency, servers, redis)

    def target_rounds(self, targets: dict[str, tuple[str, str, Service, list[Service]]]) -> None:
        """The figures the issue's throughput targets compare, measured again in ``target_rounds``
        interleaved rounds (echo, then each target, then echo again...), so that a change of
        the machine's speed during the run hits the ceiling and the targets alike; the report
        takes each row's median. ``targets``: label -> (backend, target, server, servers)."""
        rounds = self.settings.target_rounds
        for round_number in range(rounds):
            self.log(f"target rows, round {round_number + 1} of {rounds}")
            for label, op in TARGET_ROWS:
                if label not in targets:
                    continue
                backend, target, server, servers = targets[label]
                redis = next((s for s in servers if s.name == "redis-server"), None)
                row = self.load(
                    label, backend, target, server.address, op, 16, servers, redis, "rounds"
                )
                row["round"] = round_number

    # -- watch fan-out -------------------------------------------------------------------------

    def fanout(
        self,
        label: str,
        backend: str,
        server: Service,
        rate: int,
        subscribers: int,
        servers: list[Service],
    ) -> None:
        """One writer at ``rate`` saves/s; ``subscribers`` Watch streams of every change, opened
        by the Go load generator over FANOUT_CONNECTIONS connections."""
        s = self.settings
        count = int(rate * s.fanout_seconds)
        deadline = time.time() + 10 + s.fanout_seconds * 2
        latency_file = os.path.join(self.scratch, "fanout-latencies.bin")
        subscriber = subprocess.Popen(
            [
                loadgen(),
                f"-address={server.address}",
                "-pattern=fan/*",
                f"-subscribers={subscribers}",
                f"-connections={FANOUT_CONNECTIONS}",
                f"-expected={count}",
                f"-deadline={deadline}",
                f"-latencies={latency_file}",
                f"-window={FANOUT_WINDOW}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert subscriber.stdout is not None
        if subscriber.stdout.readline().strip() != "ready":
            subscriber.kill()
            raise RuntimeError(f"fan-out subscribers did not start against {label}")
        start_at = time.time() + 0.5
        writer = self.pool.submit(
            run_job,
            {
                "kind": "write",
                "address": server.address,
                "rate": rate,
                "count": count,
                "start_at": start_at,
            },
        )
        sample = _Sampler(servers, None)
        _sleep_until(start_at)
        sample.begin()
        written = writer.result()
        output = json.loads(subscriber.stdout.readline())
        subscriber.wait(timeout=60)
        sample.end()
        with open(latency_file, "rb") as file:
            latencies = report.merge_latencies([file.read()])
        received = output["received"]
        last = max(output["last_receipt"], written["finished"])
        span = max(last - written["first"], 1e-9)
        expected = count * subscribers
        row = {
            "label": label,
            "backend": backend,
            "server_processes": server.processes(),
            "rate": rate,
            "subscribers": subscribers,
            "connections": FANOUT_CONNECTIONS,
            "written": count,
            "write_rate": count / max(written["issued"] - written["first"], 1e-9),
            "writes_acknowledged_s": written["finished"] - written["first"],
            "expected": expected,
            "received": received,
            "delivered_fraction": received / expected if expected else 0.0,
            "delivered_per_s": received / span,
            "events_per_message": received / max(1, output["messages"]),
            "target_delivered_per_s": rate * subscribers,
            "p50_ms": report.percentile(latencies, 50),
            "p99_ms": report.percentile(latencies, 99),
            "errors": output["errors"],
            "first_error": output["first_error"],
            "load_avg": os.getloadavg()[0],
            "subscriber_cpu_cores": output["cpu_s"] / span,
            "client_cpu_cores": (output["cpu_s"] + written["cpu_s"]) / span,
            **sample.figures(span, received),
        }
        self.results["fanout"].append(row)
        self.log(
            f"  fan-out {label:<28} {rate:>5}/s -> {subscribers:>3}: "
            f"{row['delivered_per_s']:>8.0f} ev/s delivered ({row['delivered_fraction']:.0%}, "
            f"{row['events_per_message']:.1f}/msg), "
            f"p50 {row['p50_ms']:.1f} ms  p99 {row['p99_ms']:.1f} ms  "
            f"server {row['server_cpu_cores']:.2f} cores "
            f"({row['server_cpu_us_per_op'] or 0:.0f} us/event)  "
            f"subscribers {row['subscriber_cpu_cores']:.2f} cores"
            + (f"  ERRORS {row['errors']}: {row['first_error']}" if row["errors"] else "")
        )

    def fanouts(self, label: str, backend: str, server: Service, servers: list[Service]) -> None:
        """Every fan-out configuration of the run against one server."""
        for rate, subscribers in self.settings.fanouts:
            self.fanout(label, backend, server, rate, subscribers, servers)
        if label.startswith("statekeeper"):
            mine = {"fanout": [r for r in self.results["fanout"] if r["label"] in (label, BARE)]}
            for target in report.fanout_targets(mine):
                verdict = {True: "PASS", False: "FAIL", None: "n/a"}[target.met]
                self.log(
                    f"  {target.name}: {target.measured} {verdict} (load {os.getloadavg()[0]:.1f})"
                )

    # -- speech session stream -----------------------------------------------------------------

    def speech(self, backend: str, server: Service, subscribers: int) -> None:
        """One session, a writer replacing its STT state back to back, N stream subscribers."""
        session_id = _create_session(server.address, f"bench-{backend}-{subscribers}")
        if session_id is None:
            return
        s = self.settings
        ready = self.manager.Queue()
        processes = min(subscribers, s.clients)
        split = [
            subscribers // processes + (1 if i < subscribers % processes else 0)
            for i in range(processes)
        ]
        count = 200 if s.quick else 1500
        deadline = time.time() + 20 + s.speech_seconds * 4
        futures = [
            self.pool.submit(
                run_job,
                {
                    "kind": "speech_subscribe",
                    "address": server.address,
                    "session_id": session_id,
                    "subscribers": n,
                    "expected": count,
                    "deadline": deadline,
                    "ready": ready,
                },
            )
            for n in split
        ]
        for _ in range(subscribers):
            ready.get(timeout=60)
        start_at = time.time() + 0.3
        writer = self.pool.submit(
            run_job,
            {
                "kind": "speech_write",
                "address": server.address,
                "session_id": session_id,
                "count": count,
                "start_at": start_at,
            },
        )
        sample = _Sampler([server], None)
        _sleep_until(start_at)
        sample.begin()
        written = writer.result()
        outputs = [f.result() for f in futures]
        sample.end()
        received = sum(o["received"] for o in outputs)
        last = max([o["last_receipt"] for o in outputs] + [written["finished"]])
        span = max(last - written["first"], 1e-9)
        latencies = report.merge_latencies(o["latencies_ns"] for o in outputs)
        row = {
            "backend": backend,
            "subscribers": subscribers,
            "written": count,
            "write_rate": count / max(written["finished"] - written["first"], 1e-9),
            "received": received,
            "delivered_fraction": received / (count * subscribers),
            "messages_per_s": received / span,
            "per_subscriber_per_s": received / span / subscribers,
            "p50_ms": report.percentile(latencies, 50),
            "p99_ms": report.percentile(latencies, 99),
            **sample.figures(span, received),
        }
        self.results["speech"].append(row)
        self.log(
            f"  speech {backend:<7} -> {subscribers:>2} subscribers: "
            f"{row['messages_per_s']:>7.0f} msg/s ({row['delivered_fraction']:.0%}), "
            f"p50 {row['p50_ms']:.1f} ms  p99 {row['p99_ms']:.1f} ms"
        )

    # -- sustained load, memory ----------------------------------------------------------------

    def soak(self, server: Service) -> None:
        """Saves at concurrency 16 for the soak duration; server RSS sampled every second."""
        s = self.settings
        processes = min(s.clients, 16)
        total = s.soak_warmup + s.soak_seconds
        jobs = [
            {
                "kind": "load",
                "target": "statekeeper",
                "address": server.address,
                "op": "save",
                "tasks": 16 // processes,
                "worker": w,
                "duration": total,
            }
            for w in range(processes)
        ]
        futures, start_at = self._start_loads(jobs, 0.2)
        samples: list[tuple[float, int]] = []
        _sleep_until(start_at)
        while time.time() < start_at + total:
            samples.append((time.time() - start_at, server.rss_bytes()))
            time.sleep(1.0)
        outputs = [f.result() for f in futures]
        after_warmup = [rss for t, rss in samples if t >= s.soak_warmup]
        base = after_warmup[0] if after_warmup else samples[-1][1]
        self.results["soak"] = {
            "backend": "memory",
            "history_revisions": SOAK_HISTORY,
            "seconds": s.soak_seconds,
            "warmup_seconds": s.soak_warmup,
            "ops_per_s": sum(o["ops"] for o in outputs) / total,
            "rss_mb_after_warmup": base / 2**20,
            "rss_mb_end": samples[-1][1] / 2**20,
            "rss_mb_max": max(after_warmup or [base]) / 2**20,
            "rss_change_pct": 100.0 * (samples[-1][1] - base) / base,
            "rss_max_deviation_pct": 100.0
            * max(abs(r - base) for r in after_warmup or [base])
            / base,
            "samples": [(round(t, 1), round(r / 2**20, 1)) for t, r in samples],
        }
        soak = self.results["soak"]
        self.log(
            f"  soak memory {s.soak_seconds:.0f}s: RSS {soak['rss_mb_after_warmup']:.1f} -> "
            f"{soak['rss_mb_end']:.1f} MB ({soak['rss_change_pct']:+.1f}%), "
            f"{soak['ops_per_s']:.0f} saves/s"
        )

    def close(self) -> None:
        """Stop the pool and every server."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.manager.shutdown()
        stop_all(self.services)


class _Sampler:
    """CPU of the servers (and Redis counters) over a measurement window."""

    def __init__(self, servers: list[Service], redis: Service | None) -> None:
        self.servers = servers
        self.redis = redis
        self.cpu: list[tuple[float, float]] = []
        self.redis_stats: list[dict[str, int]] = []

    def _redis_info(self) -> dict[str, int]:
        import redis

        assert self.redis is not None
        host, port = self.redis.address.rsplit(":", 1)
        client = redis.Redis(host=host, port=int(port))
        try:
            info = client.info("stats")
        finally:
            client.close()
        return {
            "reads": int(info["total_reads_processed"]),
            "commands": int(info["total_commands_processed"]),
        }

    def begin(self) -> None:
        """Sample at the start of the window."""
        if self.redis is not None:
            self.redis_stats.append(self._redis_info())
        self.before = [server.cpu_seconds() for server in self.servers]

    def end(self) -> None:
        """Sample at the end of the window."""
        self.after = [server.cpu_seconds() for server in self.servers]
        if self.redis is not None:
            self.redis_stats.append(self._redis_info())

    def figures(self, seconds: float, ops: int) -> dict[str, Any]:
        """Server CPU in cores (total and per process) and Redis requests per operation."""
        per_server = {
            server.name: (after - before) / seconds
            for server, before, after in zip(self.servers, self.before, self.after, strict=True)
        }
        cores = sum(per_server.values())
        out: dict[str, Any] = {
            "server_cpu_cores": cores,
            "server_cpu_by_process": per_server,
            # CPU per operation is far less sensitive to other load on the machine than rates.
            "server_cpu_us_per_op": cores * seconds / ops * 1e6 if ops else None,
        }
        if self.redis is not None and ops:
            start, end = self.redis_stats
            # Each INFO call is one read and one command of its own.
            out["redis_reads_per_op"] = (end["reads"] - start["reads"] - 1) / ops
            out["redis_commands_per_op"] = (end["commands"] - start["commands"] - 1) / ops
        return out


def _sleep_until(wall: float) -> None:
    delay = wall - time.time()
    if delay > 0:
        time.sleep(delay)


def _create_session(address: str, session_id: str) -> str | None:
    """Create a speech session; None when the server has no SpeechService."""
    import asyncio

    import grpc

    try:
        from statekeeper.v1 import speech_service_pb2 as spb
        from statekeeper.v1 import speech_service_pb2_grpc
    except ImportError:
        return None

    async def create() -> str | None:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = speech_service_pb2_grpc.SpeechServiceStub(channel)
            try:
                reply = await stub.CreateSession(
                    spb.CreateSessionRequest(session_id=session_id, session_type="bench")
                )
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.UNIMPLEMENTED:
                    return None
                raise
            return str(reply.session.session_id)

    return asyncio.run(create())


def _start_target_servers(
    harness: Harness, redis: Service | None, scratch: str
) -> dict[str, tuple[str, str, Service, list[Service]]]:
    """Echo, a server per backend and etcd, all running at once for the interleaved rounds."""
    echo = harness.start(start_statekeeper(module="bench.echo_server", name="echo-server"))
    assert echo is not None
    targets = {"echo": ("-", "echo", echo, [echo])}
    for backend in harness.settings.backends:
        args = _backend_args(backend, redis, os.path.join(scratch, "rounds"))
        if args is None:
            continue
        server = harness.start(start_statekeeper(*args, name=f"statekeeper-{backend}"))
        assert server is not None
        with_redis = [redis] if backend == "redis" and redis is not None else []
        targets[f"statekeeper {backend}"] = (backend, "statekeeper", server, [server, *with_redis])
    etcd = harness.start(start_etcd())
    if etcd is not None:
        targets["etcd"] = ("etcd", "etcd", etcd, [etcd])
    return targets


def _backend_args(backend: str, redis: Service | None, scratch: str) -> list[str] | None:
    if backend == "memory":
        return ["--backend", "memory"]
    if backend == "file":
        return ["--backend", "file", "--data-dir", os.path.join(scratch, "file-data")]
    if backend == "redis" and redis is not None:
        return ["--backend", "redis", "--redis-url", f"redis://{redis.address}"]
    return None


def run(settings: Settings, out_dir: str) -> dict[str, Any]:
    """The whole benchmark; returns every figure."""
    scratch = tempfile.mkdtemp(prefix="bench-")
    harness = Harness(settings, scratch)
    try:
        harness.warm_pool()
        parts = settings.parts
        if "load" in parts:
            harness.log("echo ceiling (same server stack, no-op handler)")
            echo = harness.start(start_statekeeper(module="bench.echo_server", name="echo-server"))
            assert echo is not None
            harness.loads("echo", "-", "echo", echo.address, [echo])
            echo.stop()
        if "load" in parts or "fanout" in parts:
            harness.log("bare grpc.aio (no interceptors, no store: the cost of the stack itself)")
            bare = harness.start(
                start_statekeeper(module="bench.bare_echo_server", name="bare-echo-server")
            )
            assert bare is not None
            if "load" in parts:
                harness.loads("bare grpc.aio echo", "-", "echo", bare.address, [bare])
            if "fanout" in parts:
                harness.fanouts(BARE, "-", bare, [bare])
            bare.stop()
        redis = harness.start(start_redis()) if "redis" in settings.backends else None
        for backend in settings.backends:
            args = _backend_args(backend, redis, scratch)
            if args is None:
                harness.results["skipped"].append(f"backend {backend}: not available")
                continue
            try:
                server = start_statekeeper(*args, name=f"statekeeper-{backend}")
            except RuntimeError as error:
                harness.results["skipped"].append(f"backend {backend}: {error}")
                harness.log(f"backend {backend} skipped: {error}")
                continue
            harness.start(server)
            servers = [server] + ([redis] if backend == "redis" and redis else [])
            harness.log(f"statekeeper, {backend} backend")
            if "load" in parts:
                harness.loads(
                    f"statekeeper {backend}",
                    backend,
                    "statekeeper",
                    server.address,
                    servers,
                    redis if backend == "redis" else None,
                )
            if "fanout" in parts:
                harness.fanouts(f"statekeeper {backend}", backend, server, servers)
            if "speech" in parts:
                for subscribers in (1, 10):
                    harness.speech(backend, server, subscribers)
            server.stop()
        if redis is not None and not settings.quick and ("load" in parts or "fanout" in parts):
            label = f"statekeeper redis, {WORKERS} workers"
            harness.log(label)
            args = _backend_args("redis", redis, scratch) or []
            server = start_statekeeper(*args, "--workers", str(WORKERS), name=label)
            harness.start(server)
            if "load" in parts:
                harness.loads(label, "redis", "statekeeper", server.address, [server, redis], redis)
            if "fanout" in parts:
                harness.fanouts(label, "redis", server, [server, redis])
            server.stop()
        if "speech" in parts and not harness.results["speech"]:
            harness.results["skipped"].append("speech session stream: no SpeechService served")
        if redis is not None and "peers" in parts:
            harness.log("raw redis-py (ceiling of the Redis backend)")
            harness.loads("redis-py raw", "redis", "redis-raw", redis.address, [redis], redis)
        etcd = harness.start(start_etcd()) if "peers" in parts else None
        if etcd is None:
            if "peers" in parts:
                harness.results["skipped"].append("etcd: not installed")
        else:
            harness.log("etcd (peer)")
            harness.loads("etcd", "etcd", "etcd", etcd.address, [etcd])
            etcd.stop()
        if "scaling" in parts:
            if "redis" in settings.backends and (redis is None or redis.process.poll() is not None):
                redis = harness.start(start_redis())
            scaling.measure(harness, redis)
            if "file" in settings.backends:
                file_restart.measure(harness)
            replay.measure(harness, redis)
        if "queue" in parts:
            if "redis" in settings.backends and (redis is None or redis.process.poll() is not None):
                redis = harness.start(start_redis())
            queue_scaling.measure(harness, redis)
        if "watch" in parts:
            if "redis" in settings.backends and (redis is None or redis.process.poll() is not None):
                redis = harness.start(start_redis())
            watchcost.measure(harness, redis)
        if "workflows" in parts:
            harness.log("workflow and agent history (engine in-process)")
            if "redis" in settings.backends and (redis is None or redis.process.poll() is not None):
                redis = harness.start(start_redis())
            workflow_scaling.measure(harness, redis)
        if "agents" in parts:
            harness.log("agent-framework session stores (ADK, OpenAI Agents SDK, LangGraph)")
            if redis is None or redis.process.poll() is not None:
                redis = harness.start(start_redis())
            agents.measure(harness, redis)
        if "targets" in parts and settings.target_rounds:
            targets = _start_target_servers(harness, redis, scratch)
            harness.target_rounds(targets)
            stop_all([server for _, _, server, _ in targets.values()])
        if "stack" in parts:
            stack.measure(harness)
        if "batching" in parts:
            if redis is None and "redis" in settings.backends:
                redis = harness.start(start_redis())
            batching.measure(harness, redis)
        if "soak" in parts and settings.soak_seconds > 0:
            harness.log("sustained load, memory backend")
            soak_server = harness.start(
                start_statekeeper(
                    "--backend",
                    "memory",
                    "--history-revisions",
                    str(SOAK_HISTORY),
                    name="statekeeper-soak",
                )
            )
            assert soak_server is not None
            harness.soak(soak_server)
            soak_server.stop()
    finally:
        harness.close()
    harness.results["meta"]["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    harness.results["meta"]["load_avg_at_end"] = list(os.getloadavg())
    report.write(harness.results, out_dir)
    return harness.results


def main(argv: list[str] | None = None) -> None:
    """``python -m bench``."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short run (under 2 minutes)")
    parser.add_argument("--duration", type=float, default=0.0, help="seconds per measurement")
    parser.add_argument("--soak", type=float, default=0.0, help="seconds of sustained load")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument(
        "--backends", default="memory,file,redis", help="comma-separated backends to measure"
    )
    parser.add_argument(
        "--parts",
        default="load,fanout,speech,peers,scaling,queue,workflows,watch,agents,targets,stack,"
        "batching,soak",
        help="comma-separated parts to run: load, fanout, speech, peers, scaling, queue, "
        "workflows, watch, agents, targets, stack, batching, soak",
    )
    parser.add_argument(
        "--fanouts",
        default="",
        help="fan-out cells to run, RATExSUBSCRIBERS comma-separated (e.g. 1000x100; default: "
        "100x100 quick, else 100x50,100x100,1000x100); with --parts fanout, one cell is a "
        "short hold of the bench lock",
    )
    parser.add_argument(
        "--out", default=os.path.join(os.path.dirname(__file__), "results"), help="output dir"
    )
    args = parser.parse_args(argv)
    run(settings_from(args), args.out)
