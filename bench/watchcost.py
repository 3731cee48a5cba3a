"""The watch-cost part of ``make bench`` (``--parts watch``): what open watch streams cost a
write that none of them matches, and what a replay from an old revision costs the other calls.

* **Idle streams.** Save at concurrency 1 and 16 on a server with no watch stream open, then
  again with :data:`IDLE_STREAMS` streams open, each watching its own key (an agent fleet where
  each agent watches its own state), none of which the saves touch.
* **Replay.** :data:`REPLAY_KEYS` documents of 1 KB are loaded into a server without a byte
  bound on its history (``--history-bytes 0``), then one stream watches every key from
  revision 1 while a probe client reads one key every :data:`PROBE_INTERVAL` seconds: the
  time the replay takes, the probe's worst and 99th percentile latency meanwhile, and the
  server's resident memory before, at its peak and after.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from bench import report
from bench.servers import Service, start_statekeeper

if TYPE_CHECKING:
    from bench.run import Harness

#: Watch streams held open beside the saves, each on its own key.
IDLE_STREAMS = 5000
#: Connections the idle streams share (the server admits 100 streams per connection).
IDLE_CONNECTIONS = 50
#: Documents loaded before the replay (the quick run loads a tenth).
REPLAY_KEYS = 100_000
#: Puts per loading transaction.
LOAD_BATCH = 100
#: Seconds between two reads of the replay's probe.
PROBE_INTERVAL = 0.002
#: The replayed document: about 1 KB.
BLOB = {"blob": "x" * 1000}


def measure(harness: Harness, redis: Service | None) -> None:
    """Every row of this part, for every backend of the run."""
    from bench.run import _backend_args

    for table in ("watch_cost", "replay"):
        harness.results.setdefault(table, [])
    for backend in harness.settings.backends:
        args = _backend_args(backend, redis, harness.scratch + f"/watch-{backend}")
        if args is None:
            continue
        label = f"statekeeper {backend}"
        servers = [harness.start(start_statekeeper(*args, name=f"statekeeper-{backend}-watch"))]
        server = servers[0]
        assert server is not None
        with_redis = [redis] if backend == "redis" and redis is not None else []
        watched: list[Service] = [server, *with_redis]
        harness.log(f"watch cost, {backend} backend")
        _idle_rows(harness, label, backend, server, watched, redis if with_redis else None)
        server.stop()
        # No byte bound on the history: the replay reads every revision since the first.
        replaying = [*args, "--history-bytes", "0"]
        server = harness.start(start_statekeeper(*replaying, name=f"statekeeper-{backend}-replay"))
        assert server is not None
        _replay_row(harness, label, backend, server)
        server.stop()


def _idle_rows(
    harness: Harness,
    label: str,
    backend: str,
    server: Service,
    servers: list[Service],
    redis: Service | None,
) -> None:
    rows = {}
    for streams in (0, IDLE_STREAMS):
        holder = None
        stop = harness.manager.Event()
        if streams:
            ready = harness.manager.Queue()
            job = {"address": server.address, "streams": streams, "ready": ready, "stop": stop}
            holder = harness.pool.submit(hold_streams, job)
            ready.get(timeout=300)
        for concurrency in (1, 16):
            row = harness.load(
                f"{label}, {streams} idle streams",
                backend,
                "statekeeper",
                server.address,
                "save",
                concurrency,
                servers,
                redis,
                table="watch_cost",
            )
            row["idle_streams"] = streams
            rows[(streams, concurrency)] = row
        if holder is not None:
            stop.set()
            held = holder.result(timeout=120)
            rows[(streams, 1)]["stream_errors"] = held["errors"]
    for concurrency in (1, 16):
        base, loaded = rows[(0, concurrency)], rows[(IDLE_STREAMS, concurrency)]
        loaded["p50_vs_no_streams"] = loaded["p50_ms"] / base["p50_ms"] if base["p50_ms"] else None
        loaded["ops_vs_no_streams"] = (
            loaded["ops_per_s"] / base["ops_per_s"] if base["ops_per_s"] else None
        )


def _replay_row(harness: Harness, label: str, backend: str, server: Service) -> None:
    keys = REPLAY_KEYS // 10 if harness.settings.quick else REPLAY_KEYS
    rss_empty = server.rss_bytes()
    harness.pool.submit(load_documents, {"address": server.address, "keys": keys}).result()
    rss_loaded = server.rss_bytes()
    stop = harness.manager.Event()
    probe = harness.pool.submit(probe_reads, {"address": server.address, "stop": stop})
    replay = harness.pool.submit(replay_all, {"address": server.address, "keys": keys})
    peak = rss_loaded
    while not replay.done():
        peak = max(peak, server.rss_bytes())
        time.sleep(0.05)
    stop.set()
    replayed, probed = replay.result(), probe.result()
    latencies = report.merge_latencies([probed["latencies_ns"]])
    row = {
        "label": label,
        "backend": backend,
        "keys": keys,
        "events": replayed["events"],
        "messages": replayed["messages"],
        "largest_message_bytes": replayed["largest"],
        "replay_s": replayed["seconds"],
        "error": replayed["error"],
        "probe_reads": len(latencies),
        "probe_p99_ms": report.percentile(latencies, 99),
        "probe_max_ms": latencies[-1] / 1e6 if latencies else None,
        "rss_empty_mb": rss_empty / 1e6,
        "rss_loaded_mb": rss_loaded / 1e6,
        "rss_peak_mb": max(peak, _peak_rss(server)) / 1e6,
        "rss_after_mb": server.rss_bytes() / 1e6,
    }
    harness.results["replay"].append(row)
    harness.log(
        f"  replay {label:<20} {keys} keys: {row['replay_s']:.1f} s, {row['events']} events in "
        f"{row['messages']} messages; probe get p99 {row['probe_p99_ms']:.1f} ms, max "
        f"{row['probe_max_ms'] or 0:.1f} ms; RSS {row['rss_loaded_mb']:.0f} MB loaded, "
        f"{row['rss_peak_mb']:.0f} MB peak" + (f"  ERROR {row['error']}" if row["error"] else "")
    )


def _peak_rss(server: Service) -> int:
    """The process's peak resident memory (Linux), 0 where unknown."""
    try:
        with open(f"/proc/{server.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def markdown(results: dict[str, Any]) -> list[str]:
    """The report's section of this part (nothing when the part did not run)."""
    lines: list[str] = []
    idle = [r for r in results.get("watch_cost", []) if r.get("idle_streams")]
    if idle:
        lines += [
            "",
            f"Watch cost: save with {IDLE_STREAMS} idle Watch streams open, each on its own key "
            "that no save touches, against the same server with none open:",
            "",
            "| server | concurrency | ops/s (vs none) | p50 ms (vs none) | p99 ms | server us/op |",
            "|---|--:|--:|--:|--:|--:|",
        ]
        for row in idle:
            lines.append(
                f"| {row['label']} | {row['concurrency']} | {row['ops_per_s']:,.0f} "
                f"({_times(row.get('ops_vs_no_streams'))}) | {row['p50_ms']:.2f} "
                f"({_times(row.get('p50_vs_no_streams'))}) | {row['p99_ms']:.2f} | "
                f"{row['server_cpu_us_per_op'] or 0:.0f} |"
            )
    replays = results.get("replay", [])
    if replays:
        lines += [
            "",
            "Replay: Watch of every key from revision 1 after loading 1 KB documents, with a "
            f"probe Get every {PROBE_INTERVAL * 1000:.0f} ms meanwhile:",
            "",
            "| server | keys | replay s | messages (largest) | probe p99 ms | probe max ms "
            "| RSS loaded / peak / after MB |",
            "|---|--:|--:|--:|--:|--:|--:|",
        ]
        for row in replays:
            lines.append(
                f"| {row['label']} | {row['keys']:,} | {row['replay_s']:.1f} | "
                f"{row['messages']:,} ({row['largest_message_bytes'] / 1e3:.0f} KB) | "
                f"{row['probe_p99_ms']:.1f} | {row['probe_max_ms'] or 0:.1f} | "
                f"{row['rss_loaded_mb']:.0f} / {row['rss_peak_mb']:.0f} / "
                f"{row['rss_after_mb']:.0f} |" + (f" error: {row['error']}" if row["error"] else "")
            )
    return lines


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


# -- client processes (run in the harness's pool) --------------------------------------------


def hold_streams(job: dict[str, Any]) -> dict[str, Any]:
    """Open ``streams`` Watch streams on keys of their own, report ready, hold them until
    ``stop`` is set; the number of streams that failed."""
    return asyncio.run(_hold_streams(job))


async def _hold_streams(job: dict[str, Any]) -> dict[str, Any]:
    import grpc
    from statekeeper.v1 import state_service_pb2 as pb
    from statekeeper.v1 import state_service_pb2_grpc

    # A local subchannel pool per channel: channels to one address would share one connection.
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [
        grpc.aio.insecure_channel(job["address"], options=options) for _ in range(IDLE_CONNECTIONS)
    ]
    errors = 0
    created = asyncio.Event()
    opened = 0
    # Streams open a few hundred at a time: a burst of thousands of new calls at once is more
    # than the server accepts (it cancels calls it could not take up soon enough).
    opening = asyncio.Semaphore(200)
    stopping = False

    async def one(number: int) -> None:
        nonlocal errors, opened
        stub = state_service_pb2_grpc.StateServiceStub(channels[number % IDLE_CONNECTIONS])
        await opening.acquire()
        call = stub.Watch(pb.WatchRequest(pattern=f"idle/agent-{number}/state"))
        try:
            async for message in call:
                if message.created:
                    opening.release()
                    opened += 1
                    if opened == job["streams"]:
                        created.set()
        except grpc.aio.AioRpcError:
            if not stopping:
                errors += 1
                created.set()

    tasks = [asyncio.create_task(one(number)) for number in range(job["streams"])]
    await created.wait()
    job["ready"].put(opened)
    await asyncio.get_running_loop().run_in_executor(None, job["stop"].wait)
    stopping = True
    for channel in channels:
        await channel.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"errors": errors}


def load_documents(job: dict[str, Any]) -> None:
    """Write ``keys`` documents of about 1 KB under ``rp/``, LOAD_BATCH per transaction."""
    asyncio.run(_load_documents(job))


async def _load_documents(job: dict[str, Any]) -> None:
    import grpc
    from statekeeper import values
    from statekeeper.v1 import state_service_pb2 as pb
    from statekeeper.v1 import state_service_pb2_grpc

    async with grpc.aio.insecure_channel(job["address"]) as channel:
        stub = state_service_pb2_grpc.StateServiceStub(channel)
        value = values.document_to_wire(BLOB)
        limit = asyncio.Semaphore(4)

        async def batch(start: int) -> None:
            async with limit:
                operations = [
                    pb.Operation(put=pb.PutOperation(key=f"rp/{number:08d}", value=value))
                    for number in range(start, min(start + LOAD_BATCH, job["keys"]))
                ]
                await stub.Transact(pb.TransactRequest(operations=operations))

        await asyncio.gather(*(batch(start) for start in range(0, job["keys"], LOAD_BATCH)))


def replay_all(job: dict[str, Any]) -> dict[str, Any]:
    """Watch every key from revision 1 until ``keys`` events arrived (or the stream failed)."""
    return asyncio.run(_replay_all(job))


async def _replay_all(job: dict[str, Any]) -> dict[str, Any]:
    import grpc
    from statekeeper.v1 import state_service_pb2 as pb
    from statekeeper.v1 import state_service_pb2_grpc

    options = [("grpc.max_receive_message_length", (1 << 31) - 1)]
    events = messages = largest = 0
    error = ""
    start = time.perf_counter()
    async with grpc.aio.insecure_channel(job["address"], options=options) as channel:
        stub = state_service_pb2_grpc.StateServiceStub(channel)
        call = stub.Watch(pb.WatchRequest(pattern="rp/*", start_revision=1))
        try:
            async for message in call:
                messages += 1
                largest = max(largest, message.ByteSize())
                events += len(message.events)
                if message.canceled:
                    error = message.cancel_reason
                    break
                if events >= job["keys"]:
                    break
        except grpc.aio.AioRpcError as failure:
            error = f"{failure.code().name}: {failure.details()}"
        call.cancel()
    return {
        "events": events,
        "messages": messages,
        "largest": largest,
        "seconds": time.perf_counter() - start,
        "error": error,
    }


def probe_reads(job: dict[str, Any]) -> dict[str, Any]:
    """Get one key every PROBE_INTERVAL until ``stop`` is set; the latencies."""
    return asyncio.run(_probe_reads(job))


async def _probe_reads(job: dict[str, Any]) -> dict[str, Any]:
    import array

    import grpc
    from statekeeper.v1 import state_service_pb2 as pb
    from statekeeper.v1 import state_service_pb2_grpc

    latencies = array.array("q")
    async with grpc.aio.insecure_channel(job["address"]) as channel:
        stub = state_service_pb2_grpc.StateServiceStub(channel)
        await stub.Get(pb.GetRequest(key="rp/00000000"))
        while not job["stop"].is_set():
            began = time.perf_counter_ns()
            await stub.Get(pb.GetRequest(key="rp/00000000"))
            latencies.append(time.perf_counter_ns() - began)
            await asyncio.sleep(PROBE_INTERVAL)
    return {"latencies_ns": latencies.tobytes()}
