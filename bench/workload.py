"""What the client processes run: closed-loop operation loads, the watch fan-out and the speech
session stream. Every function here runs in a worker process of the harness's pool and returns
plain data (counts, CPU seconds, latencies as packed int64 nanoseconds)."""

from __future__ import annotations

import array
import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

#: The benchmark document: an agent's state of about 1.3 KB (MessagePack), like DESIGN.md's.
DOC: dict[str, Any] = {
    "agent_id": "agent-0042",
    "status": "running",
    "step": 17,
    "temperature": 0.7,
    "budget": {"tokens_used": 18234, "tokens_limit": 200000, "cost_usd": 0.4231},
    "tools": ["search", "calculator", "code_interpreter", "browser", "memory"],
    "memory": {
        "summary": "The user wants a comparison of three vector databases for a RAG system. "
        "Collected pricing and latency figures; waiting for the benchmark numbers.",
        "facts": [f"fact number {i}: a short sentence that the agent keeps" for i in range(8)],
    },
    "messages": [
        {"role": "user" if i % 2 == 0 else "assistant", "content": "message text " * 6, "n": i}
        for i in range(6)
    ],
    "flags": {"verbose": False, "streaming": True, "retries": 3},
    "scores": [0.12, 0.5, 0.93, 1.0, 0.0, 0.33],
}

#: Keys each client task cycles through (its own, so writes of different tasks never conflict).
KEYS_PER_TASK = 16
#: Keys that the list operation returns.
LIST_KEYS = 100

Op = Callable[[int], Awaitable[Any]]


def _now_ns() -> int:
    return time.perf_counter_ns()


# -- clients -------------------------------------------------------------------------------------


class _Client:
    """One process's connection to a target, and the operations it can run."""

    async def setup(self, prefix: str, tasks: int, list_owner: bool) -> None:
        """Write what the operations read before the measurement starts."""

    def op(self, name: str, task: int, prefix: str) -> Op:
        """The coroutine function of one operation for one client task."""
        raise NotImplementedError

    def batched(self) -> tuple[int, int]:
        """How many calls went in coalesced batches so far, and in how many batches."""
        return 0, 0

    async def close(self) -> None:
        """Close connections."""


class _StatekeeperClient(_Client):
    """The documented Python API (``StateManager`` in remote mode), coalescing concurrent calls
    (its default) unless ``batching`` is False."""

    def __init__(self, address: str, batching: bool = True) -> None:
        from statekeeper.state import StateConfig, StateManager

        config = StateConfig(backend="grpc", address=address, batching=batching)
        self.manager = StateManager(config)
        self.revisions: dict[str, int] = {}

    async def setup(self, prefix: str, tasks: int, list_owner: bool) -> None:
        for task in range(tasks):
            for j in range(KEYS_PER_TASK):
                key = f"{prefix}/{task}/{j}"
                self.revisions[key] = await self.manager.save(key, DOC)
        if list_owner:
            for j in range(LIST_KEYS):
                await self.manager.save(f"list/{j:03d}", {"n": j})

    def op(self, name: str, task: int, prefix: str) -> Op:
        manager = self.manager
        keys = [f"{prefix}/{task}/{j}" for j in range(KEYS_PER_TASK)]
        revisions = self.revisions

        async def save(i: int) -> Any:
            return await manager.save(keys[i % KEYS_PER_TASK], DOC)

        async def get(i: int) -> Any:
            return await manager.get(keys[i % KEYS_PER_TASK])

        async def update(i: int) -> Any:
            return await manager.update(keys[i % KEYS_PER_TASK], {"step": i, "status": "running"})

        async def cas(i: int) -> Any:
            key = keys[i % KEYS_PER_TASK]
            revisions[key] = await manager.transaction(
                compare={key: revisions[key]}, put={key: DOC}
            )

        async def list_keys(i: int) -> Any:
            found = await manager.list_keys("list/*")
            if len(found) != LIST_KEYS:
                raise RuntimeError(f"list returned {len(found)} keys")

        return {"save": save, "get": get, "update": update, "cas": cas, "list": list_keys}[name]

    def batched(self) -> tuple[int, int]:
        """How many calls went in Batch RPCs so far, and in how many."""
        manager = self.manager
        found = manager.transport.coalescer(manager._SERVICE, manager._coalescer)
        return (found.batched_calls, found.batches) if found is not None else (0, 0)

    async def close(self) -> None:
        await self.manager.close()


class _EchoClient(_Client):
    """The bench echo service through the same channel, stub and error mapping as the API;
    the client packs the document per call as ``StateManager.save`` does."""

    def __init__(self, address: str) -> None:
        import grpc
        from statekeeper import values

        from bench.stubs import load

        self.pb, grpc_module = load("bench_echo")
        self.channel = grpc.aio.insecure_channel(address)
        self.stub = grpc_module.EchoServiceStub(self.channel)
        self.pack = values.pack

    def op(self, name: str, task: int, prefix: str) -> Op:
        from statekeeper.transport import unary

        stub, pb, pack = self.stub, self.pb, self.pack
        keys = [f"{prefix}/{task}/{j}" for j in range(KEYS_PER_TASK)]

        async def echo(i: int) -> Any:
            request = pb.EchoRequest(key=keys[i % KEYS_PER_TASK], payload=pack(DOC))
            return await unary(stub.Echo, request)

        return echo

    async def close(self) -> None:
        await self.channel.close()


class _EtcdClient(_Client):
    """etcd's KV gRPC API (bench-written proto subset) over a grpc.aio channel."""

    def __init__(self, address: str) -> None:
        import grpc
        from statekeeper import values

        from bench.stubs import load

        self.pb, grpc_module = load("etcd_kv")
        self.channel = grpc.aio.insecure_channel(address)
        self.stub = grpc_module.KVStub(self.channel)
        self.pack = values.pack
        self.revisions: dict[bytes, int] = {}

    async def setup(self, prefix: str, tasks: int, list_owner: bool) -> None:
        pb = self.pb
        for task in range(tasks):
            for j in range(KEYS_PER_TASK):
                key = f"{prefix}/{task}/{j}".encode()
                reply = await self.stub.Put(pb.PutRequest(key=key, value=self.pack(DOC)))
                self.revisions[key] = reply.header.revision
        if list_owner:
            for j in range(LIST_KEYS):
                await self.stub.Put(pb.PutRequest(key=f"list/{j:03d}".encode(), value=b"\x81"))

    def op(self, name: str, task: int, prefix: str) -> Op:
        from statekeeper import values
        from statekeeper.transport import unary

        stub, pb, pack = self.stub, self.pb, self.pack
        keys = [f"{prefix}/{task}/{j}".encode() for j in range(KEYS_PER_TASK)]
        revisions = self.revisions

        async def save(i: int) -> Any:
            request = pb.PutRequest(key=keys[i % KEYS_PER_TASK], value=pack(DOC))
            return await unary(stub.Put, request)

        async def get(i: int) -> Any:
            reply = await unary(stub.Range, pb.RangeRequest(key=keys[i % KEYS_PER_TASK]))
            return values.unpack(reply.kvs[0].value)

        async def cas(i: int) -> Any:
            key = keys[i % KEYS_PER_TASK]
            request = pb.TxnRequest(
                compare=[
                    pb.Compare(
                        result=pb.Compare.EQUAL,
                        target=pb.Compare.MOD,
                        key=key,
                        mod_revision=revisions[key],
                    )
                ],
                success=[pb.RequestOp(request_put=pb.PutRequest(key=key, value=pack(DOC)))],
            )
            reply = await unary(stub.Txn, request)
            if not reply.succeeded:
                raise RuntimeError("etcd txn comparison failed")
            revisions[key] = reply.header.revision

        async def list_keys(i: int) -> Any:
            reply = await unary(
                stub.Range, pb.RangeRequest(key=b"list/", range_end=b"list0", keys_only=True)
            )
            if len(reply.kvs) != LIST_KEYS:
                raise RuntimeError(f"etcd range returned {len(reply.kvs)} keys")

        return {"save": save, "get": get, "cas": cas, "list": list_keys}[name]

    async def close(self) -> None:
        await self.channel.close()


class _RedisRawClient(_Client):
    """redis-py (asyncio, hiredis) doing the plain Redis equivalent of each operation."""

    def __init__(self, address: str) -> None:
        import redis.asyncio as redis
        from statekeeper import values

        host, port = address.rsplit(":", 1)
        self.redis = redis.Redis(host=host, port=int(port), max_connections=64)
        self.pack = values.pack
        self.unpack = values.unpack

    async def setup(self, prefix: str, tasks: int, list_owner: bool) -> None:
        for task in range(tasks):
            for j in range(KEYS_PER_TASK):
                await self.redis.set(f"raw:{prefix}/{task}/{j}", self.pack(DOC))
        if list_owner:
            await self.redis.zadd("raw:list", {f"list/{j:03d}": 0 for j in range(LIST_KEYS)})

    def op(self, name: str, task: int, prefix: str) -> Op:
        r, pack, unpack = self.redis, self.pack, self.unpack
        keys = [f"raw:{prefix}/{task}/{j}" for j in range(KEYS_PER_TASK)]

        async def save(i: int) -> Any:
            return await r.set(keys[i % KEYS_PER_TASK], pack(DOC))

        async def get(i: int) -> Any:
            return unpack(await r.get(keys[i % KEYS_PER_TASK]))

        async def update(i: int) -> Any:
            key = keys[i % KEYS_PER_TASK]
            document = unpack(await r.get(key))
            document.update({"step": i, "status": "running"})
            return await r.set(key, pack(document))

        async def list_keys(i: int) -> Any:
            found = await r.zrangebylex("raw:list", b"[list/", b"(list0")
            if len(found) != LIST_KEYS:
                raise RuntimeError(f"zrangebylex returned {len(found)} keys")

        return {"save": save, "get": get, "update": update, "list": list_keys}[name]

    async def close(self) -> None:
        await self.redis.aclose()


def _client(target: str, address: str) -> _Client:
    if target == "statekeeper":
        return _StatekeeperClient(address)
    if target == "statekeeper-alone":
        return _StatekeeperClient(address, batching=False)
    if target == "echo":
        return _EchoClient(address)
    if target == "etcd":
        return _EtcdClient(address)
    if target == "redis-raw":
        return _RedisRawClient(address)
    raise ValueError(target)


# -- closed-loop load ----------------------------------------------------------------------------


async def _sleep_until(wall: float) -> None:
    delay = wall - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def _load(job: dict[str, Any]) -> dict[str, Any]:
    client = _client(job["target"], job["address"])
    prefix = f"b{job['worker']}"
    await client.setup(prefix, job["tasks"], job["worker"] == 0)
    # Every process reports ready after its setup and gets the common start time back, so a
    # slow setup never eats into the measurement window.
    job["ready"].put(1)
    start_at = job["go"].get(timeout=120)
    end_at = start_at + job["duration"]
    start_ns = _now_ns() + int((start_at - time.time()) * 1e9)
    end_ns = start_ns + int(job["duration"] * 1e9)
    latencies = array.array("q")
    errors: list[str] = []

    async def run(task: int) -> int:
        op = client.op(job["op"], task, prefix)
        i = done = 0
        while True:
            t0 = _now_ns()
            if t0 >= end_ns:
                return done
            try:
                await op(i)
            except Exception as error:
                errors.append(repr(error))
                if len(errors) > 100:
                    raise
            t1 = _now_ns()
            if t0 >= start_ns:
                latencies.append(t1 - t0)
                done += 1
            i += 1

    async def cpu_window() -> float:
        await _sleep_until(start_at)
        before = time.process_time()
        await _sleep_until(end_at)
        return time.process_time() - before

    try:
        calls_before, batches_before = client.batched()
        results = await asyncio.gather(cpu_window(), *(run(t) for t in range(job["tasks"])))
        calls, batches = client.batched()
        calls, batches = calls - calls_before, batches - batches_before
    finally:
        await client.close()
    return {
        "batched_calls": calls,
        "batches": batches,
        "ops": sum(results[1:]),
        "cpu_s": results[0],
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "latencies_ns": latencies.tobytes(),
    }


async def _lone(job: dict[str, Any]) -> dict[str, Any]:
    """Lone calls (concurrency 1) with coalescing on and off, alternated: ``pairs`` times a
    block of ``block`` calls each way, in ABBA order, against the same server from this one
    process. Per pair the ratio of the blocks' p50s (on / off), and each mode's p50 (ms) over
    all its calls."""
    clients = {
        "on": _StatekeeperClient(job["address"]),
        "off": _StatekeeperClient(job["address"], batching=False),
    }
    ops: dict[str, Op] = {}
    for mode, client in clients.items():
        prefix = f"lone-{mode}"
        await client.setup(prefix, 1, False)
        ops[mode] = client.op(job["op"], 0, prefix)
    latencies: dict[str, list[int]] = {mode: [] for mode in clients}
    ratios: list[float] = []
    i = 0

    async def block(mode: str) -> float:
        nonlocal i
        taken: list[int] = []
        for _ in range(job["block"]):
            t0 = _now_ns()
            await ops[mode](i)
            taken.append(_now_ns() - t0)
            i += 1
        latencies[mode].extend(taken)
        return float(sorted(taken)[len(taken) // 2])

    try:
        for mode in clients:  # warm both channels
            await block(mode)
            latencies[mode].clear()
        for pair in range(job["pairs"]):
            order = ("on", "off") if pair % 2 == 0 else ("off", "on")
            p50 = {mode: await block(mode) for mode in order}
            ratios.append(p50["on"] / p50["off"])
    finally:
        for client in clients.values():
            await client.close()
    p50_ms = {mode: sorted(taken)[len(taken) // 2] / 1e6 for mode, taken in latencies.items()}
    return {"ratios": ratios, "p50_ms": p50_ms}


# -- watch fan-out (the subscribers are the Go load generator, bench/loadgen) ---------------------


async def _write(job: dict[str, Any]) -> dict[str, Any]:
    """Open-loop writer: a save every 1/rate seconds, whatever the latency of earlier ones. The
    send time ``t`` is the document's first entry, so that subscribers decode only that."""
    from statekeeper.state import StateConfig, StateManager

    manager = StateManager(StateConfig(backend="grpc", address=job["address"]))
    await manager.save("warmup/writer", DOC)
    rate, count = job["rate"], job["count"]
    in_flight: set[asyncio.Task[Any]] = set()
    limit = asyncio.Semaphore(256)
    start = job["start_at"]
    await _sleep_until(start)
    cpu_before = time.process_time()

    async def write(i: int) -> None:
        try:
            await manager.save(f"fan/k{i % 10}", {"t": time.time(), "i": i, **DOC})
        finally:
            limit.release()

    for i in range(count):
        await _sleep_until(start + i / rate)
        await limit.acquire()
        task = asyncio.create_task(write(i))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    issued = time.time()
    await asyncio.gather(*in_flight)
    finished = time.time()
    cpu = time.process_time() - cpu_before
    await manager.close()
    return {
        "written": count,
        "first": start,
        "issued": issued,
        "finished": finished,
        "cpu_s": cpu,
    }


# -- speech session stream -----------------------------------------------------------------------


async def _speech_subscribe(job: dict[str, Any]) -> dict[str, Any]:
    import grpc
    from statekeeper.v1 import speech_service_pb2 as spb
    from statekeeper.v1 import speech_service_pb2_grpc

    channel = grpc.aio.insecure_channel(job["address"])
    stub = speech_service_pb2_grpc.SpeechServiceStub(channel)
    latencies = array.array("q")
    counts: list[int] = []
    last_receipt = [0.0]
    deadline = job["deadline"]

    async def one() -> None:
        call = stub.WatchSession(
            spb.WatchSessionRequest(session_id=job["session_id"]),
            timeout=max(1.0, deadline - time.time()),
        )
        received = 0
        try:
            async for message in call:
                if message.WhichOneof("kind") == "started":
                    job["ready"].put(1)
                    continue
                event = message.event
                if event.WhichOneof("change") == "stt_state":
                    now = time.time()
                    latencies.append(int((now - float(event.stt_state.interim_transcript)) * 1e9))
                    last_receipt[0] = max(last_receipt[0], now)
                    received += 1
                    if received >= job["expected"]:
                        break
                elif event.WhichOneof("change") == "ended":
                    break
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
        finally:
            call.cancel()
            counts.append(received)

    before = time.process_time()
    await asyncio.gather(*(one() for _ in range(job["subscribers"])))
    cpu = time.process_time() - before
    await channel.close()
    return {
        "received": sum(counts),
        "last_receipt": last_receipt[0],
        "cpu_s": cpu,
        "latencies_ns": latencies.tobytes(),
    }


async def _speech_write(job: dict[str, Any]) -> dict[str, Any]:
    """Replace the session's STT state ``count`` times, one update in flight at a time (as a
    recogniser streaming interim transcripts does); the transcript carries the send time."""
    import grpc
    from statekeeper.transport import unary
    from statekeeper.v1 import speech_service_pb2 as spb
    from statekeeper.v1 import speech_service_pb2_grpc

    channel = grpc.aio.insecure_channel(job["address"])
    stub = speech_service_pb2_grpc.SpeechServiceStub(channel)
    await _sleep_until(job["start_at"])
    cpu_before = time.process_time()
    start = time.time()
    for i in range(job["count"]):
        state = spb.SttState(
            status=spb.TRANSCRIPTION_STATUS_TRANSCRIBING,
            audio_received_bytes=3200 * (i + 1),
            transcription_progress=0.5,
            interim_transcript=repr(time.time()),
            confidence=0.9,
        )
        await unary(
            stub.UpdateSttState,
            spb.UpdateSttStateRequest(session_id=job["session_id"], stt_state=state),
        )
    finished = time.time()
    cpu = time.process_time() - cpu_before
    await channel.close()
    return {"written": job["count"], "first": start, "finished": finished, "cpu_s": cpu}


# -- entry point ---------------------------------------------------------------------------------

_KINDS: dict[str, Callable[[dict[str, Any]], Coroutine[Any, Any, dict[str, Any]]]] = {
    "load": _load,
    "lone": _lone,
    "write": _write,
    "speech_subscribe": _speech_subscribe,
    "speech_write": _speech_write,
}


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job in this worker process (a fresh event loop per job)."""
    return asyncio.run(_KINDS[job["kind"]](job))


def warm(seconds: float) -> int:
    """Import what the jobs use, then hold the worker briefly so that each one gets a job."""
    import os

    import grpc  # noqa: F401
    import statekeeper.state  # noqa: F401

    from bench.stubs import load

    load("bench_echo")
    load("etcd_kv")
    time.sleep(seconds)
    return os.getpid()
