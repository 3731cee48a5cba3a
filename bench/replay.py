"""A server loaded and then replayed from revision 1 at each size of the scaling part
(``--parts scaling``; rows added with :func:`bench.scaling.row`): what a bulk load and a
replay from an old revision cost the other calls, and the server's memory meanwhile.

For every backend and size, a fresh ``statekeeper serve`` without a byte bound on its history
(``--history-bytes 0``, so the replay reads every revision since the first):

* **probe while loading**: ``KEYS`` documents of about 1 KB are written over gRPC
  (:data:`LOAD_BATCH` puts per transaction, 4 in flight) while a probe client reads one key
  every :data:`PROBE_INTERVAL` seconds: the probe's p99 and worst latency;
* **replay**: one stream watches every key from revision 1 until it has every event, while
  the probe reads again: the time the replay takes, the largest message, the probe's p99 and
  worst latency, and how far the server's resident memory rose above what it held loaded
  (its peak during the replay, from the kernel's high-water mark reset before it).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any

from bench import scaling
from bench.servers import Service, start_statekeeper

if TYPE_CHECKING:
    from bench.run import Harness

#: Puts per loading transaction.
LOAD_BATCH = 100
#: Seconds between two reads of the probe.
PROBE_INTERVAL = 0.002
#: The replayed document: about 1 KB.
BLOB = {"blob": "x" * 1000}
#: The key the probe writes once, then reads.
PROBE_KEY = "probe/0"


def measure(harness: Harness, redis: Service | None) -> None:
    """Every backend of the settings at every size of the scaling part; adds the rows."""
    from bench.run import _backend_args

    sizes = scaling.QUICK_SIZES if harness.settings.quick else scaling.SIZES
    for backend in harness.settings.backends:
        for keys in sizes:
            args = _backend_args(backend, redis, f"{harness.scratch}/replay-{backend}-{keys}")
            if args is None:
                continue
            if redis is not None and backend == "redis":
                scaling.flush_redis(f"redis://{redis.address}")
            harness.log(f"scaling: {backend} server, load and replay of {keys:,} keys")
            server = harness.start(
                start_statekeeper(*args, "--history-bytes", "0", name=f"replay-{backend}")
            )
            assert server is not None
            try:
                figures = _load_and_replay(harness, server, keys)
            finally:
                server.stop()
            figures[scaling.load_row("load and replay cell")] = os.getloadavg()[0]
            for name, value in figures.items():
                scaling.row(harness.results, backend, name, keys, value)


def _load_and_replay(harness: Harness, server: Service, keys: int) -> dict[str, Any]:
    from bench import report  # the report lists this part's targets: imported when run

    figures: dict[str, Any] = {}
    job = {"address": server.address, "keys": keys}

    def probed(during: str, work: Any) -> Any:
        stop = harness.manager.Event()
        probe = harness.pool.submit(probe_reads, {"address": server.address, "stop": stop})
        started = harness.pool.submit(work, job)
        outcome = started.result()
        stop.set()
        latencies = report.merge_latencies([probe.result()["latencies_ns"]])
        figures[f"probe Get during {during} p99, ms"] = report.percentile(latencies, 99)
        figures[f"probe Get during {during} max, ms"] = latencies[-1] / 1e6
        return outcome

    started = time.perf_counter()
    probed("the server's bulk load", load_documents)
    figures["server bulk load, keys/s"] = keys / (time.perf_counter() - started)
    loaded = server.rss_bytes()
    figures["server RSS loaded, MB"] = loaded / 2**20
    _reset_peak_rss(server)
    replayed = probed("a replay from revision 1", replay_all)
    figures["replay from revision 1, s"] = replayed["seconds"]
    figures["replay largest message, KB"] = replayed["largest"] / 1024
    figures["replay events missing"] = keys - replayed["events"]
    peak = max(_peak_rss(server), server.rss_bytes())
    figures["server RSS rise during the replay, MB"] = max(0, peak - loaded) / 2**20
    if replayed["error"]:
        figures["replay error"] = replayed["error"]
    return figures


def _reset_peak_rss(server: Service) -> None:
    """Reset the process's resident-memory high-water mark (Linux; ignored elsewhere)."""
    try:
        with open(f"/proc/{server.pid}/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


def _peak_rss(server: Service) -> int:
    """The process's peak resident memory since the last reset (Linux), 0 where unknown."""
    try:
        with open(f"/proc/{server.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


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
    events = largest = 0
    error = ""
    start = time.perf_counter()
    async with grpc.aio.insecure_channel(job["address"], options=options) as channel:
        stub = state_service_pb2_grpc.StateServiceStub(channel)
        call = stub.Watch(pb.WatchRequest(pattern="rp/*", start_revision=1))
        try:
            async for message in call:
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
        "largest": largest,
        "seconds": time.perf_counter() - start,
        "error": error,
    }


def probe_reads(job: dict[str, Any]) -> dict[str, Any]:
    """Save :data:`PROBE_KEY`, then Get it every PROBE_INTERVAL until ``stop`` is set; the
    latencies of the Gets."""
    return asyncio.run(_probe_reads(job))


async def _probe_reads(job: dict[str, Any]) -> dict[str, Any]:
    import array

    import grpc
    from statekeeper import values
    from statekeeper.v1 import state_service_pb2 as pb
    from statekeeper.v1 import state_service_pb2_grpc

    latencies = array.array("q")
    async with grpc.aio.insecure_channel(job["address"]) as channel:
        stub = state_service_pb2_grpc.StateServiceStub(channel)
        value = values.document_to_wire(BLOB)
        await stub.Save(pb.SaveRequest(key=PROBE_KEY, value=value))  # outside the replay's rp/
        while not job["stop"].is_set():
            began = time.perf_counter_ns()
            await stub.Get(pb.GetRequest(key=PROBE_KEY))
            latencies.append(time.perf_counter_ns() - began)
            await asyncio.sleep(PROBE_INTERVAL)
    return {"latencies_ns": latencies.tobytes()}
