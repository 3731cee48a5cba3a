"""The file backend as the data grows (``--parts scaling``, rows added with
:func:`bench.scaling.row`): restarts, memory and pauses at 10k, 100k and 1M keys of 1 KB.

``python -m bench.file_restart KEYS`` measures one size in a fresh process and prints one JSON
line; :func:`measure` runs every size of the settings and records the rows. In this order:

* **probe while loading**: the store is loaded in this process (transactions of
  :data:`LOAD_BATCH` puts, compactions included) while a probe task reads a random key every
  :data:`PROBE_INTERVAL` seconds; the probe's p99 and worst latency show how long a call waits
  behind the load's own housekeeping (flushes, log rotations);
* **open in process**: opening the loaded store in this process and reading one key (the
  store's own share of a restart);
* **restart to first call**: a ``statekeeper serve`` process is started on the empty directory
  first (what starting the server costs with no data, on this machine), then on the loaded one
  and timed from its start to the first answered Get, then stopped with SIGTERM and timed
  again; then, while 16 writers save, it is killed with SIGKILL and timed once more, and every
  write it acknowledged before the kill is read back (the count of missing ones must be 0);
* **server RSS**: the serving process's resident memory after the first call and after
  :data:`READS` random reads.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from typing import Any

import msgpack
import psutil

from bench import scaling
from bench.servers import Service, start_statekeeper

#: Puts per transaction of the bulk load.
LOAD_BATCH = 1000
#: Seconds between two probe reads during the load.
PROBE_INTERVAL = 0.005
#: Random reads before the second RSS figure.
READS = 2000
#: Concurrent writers while the server is killed.
WRITERS = 16
#: Acknowledged writes gathered before the kill.
KILL_AFTER = 2000


def _document(number: int) -> bytes:
    """A distinct 1 KB document as the server stores it (MessagePack bytes)."""
    return msgpack.packb(scaling._value(number))


async def _load_with_probe(data_dir: str, keys: int) -> dict[str, float]:
    """Load ``keys`` keys into a file store at ``data_dir``, probing reads meanwhile."""
    from statekeeper_server.engine.storage.backend import Put
    from statekeeper_server.engine.storage.file import FileBackend

    store = FileBackend(data_dir)
    latencies: list[float] = []
    loading = True

    async def probe() -> None:
        while loading:
            await asyncio.sleep(PROBE_INTERVAL)
            started = time.perf_counter()
            await store.get(scaling._key(random.randrange(keys)))
            latencies.append(time.perf_counter() - started)

    prober = asyncio.create_task(probe())
    started = time.perf_counter()
    for first in range(0, keys, LOAD_BATCH):
        numbers = range(first, min(keys, first + LOAD_BATCH))
        await store.txn([], [Put(scaling._key(n), _document(n)) for n in numbers])
    elapsed = time.perf_counter() - started
    loading = False
    await prober
    await store.close()
    return {
        "load, keys/s": keys / elapsed,
        "probe Get during load p99, ms": 1000 * scaling._percentile(latencies, 0.99),
        "probe Get during load max, ms": 1000 * max(latencies),
    }


async def _open_in_process(data_dir: str, keys: int) -> float:
    """Seconds to open the loaded store in this process and read one key."""
    from statekeeper_server.engine.storage.file import FileBackend

    started = time.perf_counter()
    store = FileBackend(data_dir)
    await store.get(scaling._key(keys // 2))
    seconds = time.perf_counter() - started
    await store.close()
    return seconds


async def _first_call(address: str) -> None:
    from statekeeper.state import StateConfig, StateManager

    async with StateManager(StateConfig(backend="grpc", address=address, timeout=120)) as manager:
        await manager.get("agent:0")


def _start(data_dir: str) -> tuple[Service, float]:
    """A server on ``data_dir`` and the seconds from its start to its first answered call."""
    started = time.perf_counter()
    service = start_statekeeper("--backend", "file", "--data-dir", data_dir)
    asyncio.run(_first_call(service.address))
    return service, time.perf_counter() - started


async def _reads_and_rss(address: str, keys: int, pid: int) -> float:
    from statekeeper.state import StateConfig, StateManager

    async with StateManager(StateConfig(backend="grpc", address=address)) as manager:
        for _ in range(READS):
            await manager.get(f"agent:{random.randrange(keys)}")
    return psutil.Process(pid).memory_info().rss / 2**20


async def _kill_while_writing(service: Service) -> dict[str, Any]:
    """Save from 16 writers, SIGKILL the server mid-way; the acknowledged writes."""
    from statekeeper.errors import StateKeeperError
    from statekeeper.state import StateConfig, StateManager

    acknowledged: dict[str, int] = {}
    enough = asyncio.Event()
    config = StateConfig(backend="grpc", address=service.address, timeout=30)
    async with StateManager(config) as manager:

        async def writer(number: int) -> None:
            for count in range(10**9):
                key = f"killed/{number}/{count}"
                try:
                    acknowledged[key] = await manager.save(key, {"n": count})
                except StateKeeperError:
                    return
                if len(acknowledged) >= KILL_AFTER:
                    enough.set()

        tasks = [asyncio.create_task(writer(n)) for n in range(WRITERS)]
        await enough.wait()
        service.process.send_signal(signal.SIGKILL)
        await asyncio.gather(*tasks)
    service.process.wait()
    return acknowledged


async def _missing(address: str, acknowledged: dict[str, int]) -> int:
    from statekeeper.state import StateConfig, StateManager

    missing = 0
    async with StateManager(StateConfig(backend="grpc", address=address)) as manager:
        for key, revision in acknowledged.items():
            entry = await manager.get_entry(key)
            missing += entry is None or entry.mod_revision != revision
    return missing


def measure_one(keys: int) -> dict[str, float]:
    """Every figure of the file backend at one size."""
    data_dir = tempfile.mkdtemp(prefix="bench-file-restart-")
    services: list[Service] = []

    def start() -> tuple[Service, float]:
        service, seconds = _start(data_dir)
        services.append(service)
        return service, seconds

    try:
        service, figures_empty = start()  # what starting a server costs with no data yet
        _stop(service)
        figures = asyncio.run(_load_with_probe(data_dir, keys))
        figures["open + first get in process, s"] = asyncio.run(_open_in_process(data_dir, keys))
        figures["restart to first call, empty store, s"] = figures_empty
        service, figures["restart to first call (first open), s"] = start()
        pid = service.process.pid
        figures["server RSS after first call, MB"] = psutil.Process(pid).memory_info().rss / 2**20
        figures[f"server RSS after {READS} random reads, MB"] = asyncio.run(
            _reads_and_rss(service.address, keys, pid)
        )
        _stop(service)
        service, figures["restart to first call after SIGTERM, s"] = start()
        acknowledged = asyncio.run(_kill_while_writing(service))
        service, figures["restart to first call after SIGKILL, s"] = start()
        figures["acknowledged writes missing after SIGKILL"] = asyncio.run(
            _missing(service.address, acknowledged)
        )
        _stop(service)
        sizes = (entry.stat().st_size for entry in os.scandir(data_dir))
        figures["store on disk, MB"] = sum(sizes) / 2**20
    finally:
        for service in services:
            if service.process.poll() is None:
                service.process.kill()
                service.process.wait()
        shutil.rmtree(data_dir, ignore_errors=True)
    return figures


def _stop(service: Service) -> None:
    service.process.send_signal(signal.SIGTERM)
    service.process.wait(timeout=120)


def measure(harness: Any) -> None:
    """Run every size of the settings in its own process; add the rows as backend "file"."""
    sizes = scaling.QUICK_SIZES if harness.settings.quick else scaling.SIZES
    for keys in sizes:
        harness.log(f"scaling: file restarts at {keys:,} keys")
        command = [sys.executable, "-m", "bench.file_restart", str(keys)]
        done = _run(command)
        if done is None:
            harness.results["skipped"].append(f"file restarts at {keys}: failed")
            continue
        done[scaling.load_row("restart cell")] = os.getloadavg()[0]
        for name, value in done.items():
            scaling.row(harness.results, "file", name, keys, value)


def _run(command: list[str]) -> dict[str, float] | None:
    import subprocess

    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not done.stdout.strip():
        sys.stderr.write(done.stderr[-2000:])
        return None
    figures: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return figures


if __name__ == "__main__":
    print(json.dumps(measure_one(int(sys.argv[1]))))
