"""How costs grow with the data (``--parts scaling``): the memory, file and Redis backends at
10k, 100k and 1M keys of 1 KB (2k and 10k with ``--quick``).

Each (backend, size) runs in a fresh process (``python -m bench.scaling BACKEND KEYS ...``)
that talks to the backend directly, so its memory and garbage-collector figures are those of a
store of that size and nothing else. It measures, in this order:

* **bulk load**: keys/s over the whole load (transactions of :data:`LOAD_BATCH` puts) and over
  its last tenth (a rate that falls with the size shows a cost that grows with it);
* **memory per key**: the process's RSS growth over the load divided by the keys (for Redis:
  the server's ``used_memory`` growth, and the change-log stream's share of it);
* **get / save**: p50 and p99 of single-key reads and overwrites of random keys;
* **listing page**: the slowest page of ``range("*:4242")``, a glob without a literal prefix
  (every page examines a bounded number of keys), over the first :data:`LIST_PAGES` pages, in
  wall time and in this process's CPU time (which a busy machine does not inflate), and for
  Redis the longest command Redis ran meanwhile (its SLOWLOG);
* **gen-2 GC**: count, median and longest pause of the full garbage collections during the
  load and during :data:`UPDATES` overwrites (fewer when the store is smaller), measured with
  ``gc.callbacks`` in thread CPU time, and the time of one full collection forced after the
  overwrites (what a gen-2 pause costs at this size, even when none happened meanwhile);
* **earlier revision**: one page of 100 keys read at the oldest retained revision, after the
  overwrites (so the whole retained history lies after it), and for Redis the longest command
  meanwhile (SLOWLOG).

Other modules add rows of their own (the file backend's restart time, say) with :func:`row`
into ``results["scaling"]``; :func:`table` shows every row, one column per size.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import psutil

from bench.targets import Target, at_most, flatness

#: Puts per transaction of the bulk load.
LOAD_BATCH = 100
#: Overwrites during which the gen-2 collections are counted (at most the store size).
UPDATES = 100_000
#: Single-key reads and writes timed per size.
SAMPLES = 2000
#: Pages of the sparse listing that are timed.
LIST_PAGES = 50
#: The listing pattern: a glob whose first character is a wildcard (no literal prefix).
SPARSE_GLOB = "*:4242"
#: The key namespace of the rows.
PREFIX = "kv/"
SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (2_000, 10_000)


def row(results: dict[str, Any], backend: str, measure: str, keys: int, value: float | str) -> None:
    """Record one figure of the scaling table (``measure`` names its unit)."""
    results.setdefault("scaling", []).append(
        {"backend": backend, "measure": measure, "keys": keys, "value": value}
    )


def load_row(cell: str) -> str:
    """The name of the row that records the machine's load average (1 min) at the end of a
    cell (``cell`` says which: a part may run several per backend and size)."""
    return f"load average (1 min) after the {cell}"


def _key(index: int) -> str:
    return f"{PREFIX}agent:{index}"


def _value(index: int) -> bytes:
    """A distinct 1 KB value (a shared bytes object would hide the cost of storing it)."""
    return (b"%010d" % index) * 100 + b"0" * 24


def _percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class _Gen2Pauses:
    """Thread CPU time of every gen-2 collection while it is entered (wall time would count
    other processes); on leaving, adds the count, median and longest pause to ``figures``."""

    def __init__(self, figures: dict[str, float], during: str) -> None:
        self.figures = figures
        self.during = during
        self.pauses: list[float] = []
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._start = time.thread_time()
        else:
            self.pauses.append(time.thread_time() - self._start)

    def __enter__(self) -> None:
        gc.callbacks.append(self)

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self)
        pauses, during = self.pauses, self.during
        self.figures[f"gen-2 GCs during {during}"] = len(pauses)
        median = statistics.median(pauses) * 1000 if pauses else 0.0
        self.figures[f"gen-2 GC median pause during {during}, ms"] = median
        self.figures[f"gen-2 GC longest pause during {during}, ms"] = max(pauses, default=0) * 1000


async def _open(backend: str, redis_url: str, data_dir: str) -> Any:
    from statekeeper_server.engine.storage.factory import BackendOptions, open_backend

    options = BackendOptions(kind=backend, data_dir=data_dir, redis_url=redis_url)
    return open_backend(options)


async def _redis_memory(redis_url: str) -> tuple[int, int]:
    """Redis ``used_memory`` and the change-log stream's bytes."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        info = await client.info("memory")
        log = await client.memory_usage("statekeeper:log", samples=0) or 0
        return int(info["used_memory"]), int(log)
    finally:
        await client.aclose()


async def _slowest_script_ms(redis_url: str, reset: bool) -> float:
    """The longest command in Redis's SLOWLOG (ms), or reset it and log every command."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        if reset:
            await client.config_set("slowlog-log-slower-than", 0)
            await client.config_set("slowlog-max-len", 1024)
            await client.slowlog_reset()
            return 0.0
        entries = await client.slowlog_get(1024)
        return max((entry["duration"] for entry in entries), default=0) / 1000
    finally:
        await client.aclose()


async def _load(store: Any, keys: int, figures: dict[str, float]) -> None:
    from statekeeper_server.engine.storage.backend import Put

    started = time.perf_counter()
    tail_from, tail_started = keys - keys // 10, started
    for start in range(0, keys, LOAD_BATCH):
        if start >= tail_from and tail_started is started:
            tail_started = time.perf_counter()
        end = min(start + LOAD_BATCH, keys)
        await store.txn((), [Put(_key(i), _value(i)) for i in range(start, end)])
    done = time.perf_counter()
    figures["bulk load, keys/s"] = keys / (done - started)
    figures["bulk load, last tenth, keys/s"] = (keys - tail_from) / (done - tail_started)


async def _latencies(store: Any, keys: int, figures: dict[str, float]) -> None:
    chooser = random.Random(7)
    gets, saves = [], []
    for _ in range(SAMPLES):
        index = chooser.randrange(keys)
        started = time.perf_counter()
        await store.get(_key(index))
        gets.append(time.perf_counter() - started)
        started = time.perf_counter()
        await store.put(_key(index), _value(index))
        saves.append(time.perf_counter() - started)
    figures["get p50, us"] = _percentile(gets, 0.5) * 1e6
    figures["get p99, us"] = _percentile(gets, 0.99) * 1e6
    figures["save p50, us"] = _percentile(saves, 0.5) * 1e6
    figures["save p99, us"] = _percentile(saves, 0.99) * 1e6


async def _listing(store: Any, figures: dict[str, float]) -> None:
    from statekeeper_server.engine.storage.glob import parse_pattern

    pattern = parse_pattern(SPARSE_GLOB)
    after, slowest, slowest_cpu = "", 0.0, 0.0
    for _ in range(LIST_PAGES):
        started, cpu = time.perf_counter(), time.thread_time()
        page = await store.range(PREFIX, pattern, start_after=after, limit=100)
        slowest = max(slowest, time.perf_counter() - started)
        slowest_cpu = max(slowest_cpu, time.thread_time() - cpu)
        if not page.more:
            break
        after = page.cursor
    figures["listing page *:4242, slowest, ms"] = slowest * 1000
    figures["listing page *:4242, slowest, CPU ms here"] = slowest_cpu * 1000


async def _gen2(store: Any, keys: int, updates: int, figures: dict[str, float]) -> None:
    chooser = random.Random(11)
    figures["overwrites timed for gen-2 GCs"] = updates
    with _Gen2Pauses(figures, "the overwrites"):
        for _ in range(updates):
            index = chooser.randrange(keys)
            await store.put(_key(index), _value(index))


async def _earlier_page(store: Any, figures: dict[str, float]) -> None:
    """One page of 100 keys read at the oldest retained revision (after the overwrites, so
    the whole retained history lies after it)."""
    from statekeeper_server.engine.storage.backend import range_span

    oldest = (await store.stats()).oldest_revision
    started, cpu = time.perf_counter(), time.thread_time()
    await store.scan(range_span(PREFIX, None), limit=100, revision=oldest)
    figures["page at the oldest retained revision, ms"] = (time.perf_counter() - started) * 1000
    figures["page at the oldest retained revision, CPU ms here"] = (time.thread_time() - cpu) * 1000


async def measure_one(backend: str, keys: int, updates: int, redis_url: str) -> dict[str, float]:
    """Every figure of one backend at one size (run in a fresh process)."""
    data_dir = tempfile.mkdtemp(prefix="bench-scaling-")
    figures: dict[str, float] = {}
    process = psutil.Process()
    try:
        store = await _open(backend, redis_url, data_dir)
        gc.collect()
        rss_before = process.memory_info().rss
        redis_before = await _redis_memory(redis_url) if backend == "redis" else (0, 0)
        with _Gen2Pauses(figures, "the load"):
            await _load(store, keys, figures)
        gc.collect()
        if backend != "redis":
            rss_growth = process.memory_info().rss - rss_before
            figures["memory per key (process RSS growth), bytes"] = rss_growth / keys
        else:
            used, log = await _redis_memory(redis_url)
            figures["Redis memory per key, bytes"] = (used - redis_before[0]) / keys
            figures["Redis change log share, %"] = 100 * log / max(1, used - redis_before[0])
        await _latencies(store, keys, figures)
        if backend == "redis":
            await _slowest_script_ms(redis_url, reset=True)
        await _listing(store, figures)
        if backend == "redis":
            figures["Redis longest command during listing, ms"] = await _slowest_script_ms(
                redis_url, reset=False
            )
        await _gen2(store, keys, updates, figures)
        started = time.thread_time()
        gc.collect()
        figures["a forced full collection after the overwrites, ms"] = (
            time.thread_time() - started
        ) * 1000
        if backend == "redis":
            await _slowest_script_ms(redis_url, reset=True)
        await _earlier_page(store, figures)
        if backend == "redis":
            figures["Redis longest command during the earlier page, ms"] = await _slowest_script_ms(
                redis_url, reset=False
            )
        await store.close()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return figures


def measure(harness: Any, redis: Any | None) -> None:
    """Run every (backend, size) of the settings in its own process; add the rows."""
    sizes = QUICK_SIZES if harness.settings.quick else SIZES
    run_cells(harness, redis, "bench.scaling", sizes, "scaling", "keys")


def run_cells(
    harness: Any, redis: Any | None, module: str, sizes: tuple[int, ...], what: str, unit: str
) -> None:
    """``python -m MODULE BACKEND SIZE [REDIS_URL]`` for every backend of the settings and
    every size, each in a fresh process on an emptied Redis; the figures of its last output
    line become rows (a failed cell is listed as skipped)."""
    for backend in harness.settings.backends:
        if backend == "redis" and redis is None:
            harness.results["skipped"].append(f"{what}, redis: no redis-server")
            continue
        url = f"redis://{redis.address}" if redis is not None else ""
        for size in sizes:
            harness.log(f"{what}: {backend} at {size:,} {unit}")
            if redis is not None:
                flush_redis(url)
            command = [sys.executable, "-m", module, backend, str(size), url]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                harness.results["skipped"].append(
                    f"{what}, {backend} at {size}: {done.stderr.strip()[-300:]}"
                )
                continue
            for measure_name, value in json.loads(done.stdout.splitlines()[-1]).items():
                row(harness.results, backend, measure_name, size, value)
            row(harness.results, backend, load_row(f"{what} cell"), size, os.getloadavg()[0])


#: Seconds a FLUSHALL may take.
FLUSH_TIMEOUT = 300


def flush_redis(redis_url: str) -> None:
    """Empty the Redis at ``redis_url`` (every database; a million keys on a busy machine take
    longer than the client's default timeout of 5 s)."""
    import redis as syncredis

    client = syncredis.Redis.from_url(redis_url, socket_timeout=FLUSH_TIMEOUT)
    try:
        client.flushall()
    finally:
        client.close()


def _cell(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def table(rows: list[dict[str, Any]]) -> list[str]:
    """The scaling rows as markdown lines, one column per size (none when not run)."""
    if not rows:
        return []
    sizes = sorted({item["keys"] for item in rows})
    lines = [
        "",
        "Costs as the data grows (1 KB values; bench/scaling.py, one process per cell):",
        "",
        "| backend | measure | " + " | ".join(f"{size:,} keys" for size in sizes) + " |",
        "|---|---|" + "--:|" * len(sizes),
    ]
    seen: dict[tuple[str, str], dict[int, Any]] = {}
    for item in rows:
        seen.setdefault((item["backend"], item["measure"]), {})[item["keys"]] = item["value"]
    for (backend, measure_name), cells in seen.items():
        values = " | ".join(_cell(cells[size]) if size in cells else "" for size in sizes)
        lines.append(f"| {backend} | {measure_name} | {values} |")
    return lines


#: Issue 19's ceilings on the rows of this table: (backend, measure, ceiling, what it asks).
#: The pauses and the replay's memory are judged at every size measured (:data:`EVERY_SIZE`),
#: the rest at 1M keys only.
CEILINGS = (
    ("file", "restart to first call after SIGTERM, s", 5.0, "file restart after SIGTERM <= 5 s"),
    ("file", "restart to first call after SIGKILL, s", 5.0, "file restart after SIGKILL <= 5 s"),
    ("file", "acknowledged writes missing after SIGKILL", 0, "no acknowledged write lost"),
    ("redis", "Redis longest command during listing, ms", 10.0, "Redis: no script over 10 ms"),
    (
        "redis",
        "Redis longest command during the earlier page, ms",
        10.0,
        "Redis: no script over 10 ms at an earlier revision",
    ),
)
#: The backends whose pauses, replays and listings are judged.
BACKENDS = ("memory", "file", "redis")
#: The most a server's resident memory may rise while it streams a replay of everything from
#: revision 1 (a bound that does not grow with the store: 1M keys of 1 KB are 1 GB).
REPLAY_RSS_RISE_MB = 64.0
EVERY_SIZE = (
    ("file", "probe Get during load max, ms", 50.0, "file: worst probe Get during a load <= 50 ms"),
    *(
        (backend, f"probe Get during {during} max, ms", 50.0, f"{backend}: {what} <= 50 ms")
        for backend in BACKENDS
        for during, what in (
            ("the server's bulk load", "worst probe Get during a gRPC bulk load"),
            ("a replay from revision 1", "worst probe Get during a replay from revision 1"),
        )
    ),
    *(
        (
            backend,
            "server RSS rise during the replay, MB",
            REPLAY_RSS_RISE_MB,
            f"{backend}: server RSS rise during a replay from revision 1 "
            f"<= {REPLAY_RSS_RISE_MB:.0f} MB",
        )
        for backend in BACKENDS
    ),
    *(
        (backend, "replay events missing", 0, f"{backend}: a replay from revision 1 is whole")
        for backend in BACKENDS
    ),
    *(
        (
            backend,
            "listing page *:4242, slowest, CPU ms here",
            50.0,
            f"{backend}: a page of a glob without literal prefix <= 50 ms CPU",
        )
        for backend in BACKENDS
    ),
    *(
        (
            backend,
            f"gen-2 GC longest pause during {during}, ms",
            50.0,
            f"{backend}: gen-2 GC pause during {during} <= 50 ms",
        )
        for backend in BACKENDS
        for during in ("the load", "the overwrites")
    ),
    *(
        (
            backend,
            "a forced full collection after the overwrites, ms",
            50.0,
            f"{backend}: a full (gen-2) collection <= 50 ms",
        )
        for backend in BACKENDS
    ),
)


#: Rows whose cost at 1M keys may be at most :data:`bench.targets.FLAT_FACTOR` times that at
#: 10k: (backend, measure, what it asks).
FLAT = (
    *(
        (
            backend,
            "listing page *:4242, slowest, CPU ms here",
            f"{backend}: a *:4242 page, CPU",
            "ms",
        )
        for backend in BACKENDS
    ),
    (
        "file",
        "server RSS after 2000 random reads, MB",
        "file: server RSS follows the working set",
        "MB",
    ),
)


def _cells(rows: list[dict[str, Any]], backend: str, measure_name: str) -> dict[int, float]:
    """The numeric values of one row of the table, by size."""
    return {
        r["keys"]: r["value"]
        for r in rows
        if (r["backend"], r["measure"]) == (backend, measure_name)
        and isinstance(r["value"], (int, float))
    }


def targets(results: dict[str, Any]) -> list[Target]:
    """Issue 19's ceilings: the pauses at every size measured, the rest at the largest size
    measured (decided only at 1M keys), and the rows that must stay flat from 10k to 1M."""
    rows = results.get("scaling") or []
    found: list[Target] = []
    for backend, measure_name, ceiling, name in EVERY_SIZE:
        for item in rows:
            if (item["backend"], item["measure"]) != (backend, measure_name):
                continue
            if isinstance(item["value"], (int, float)):
                keys, value = item["keys"], item["value"]
                shown = f"{_cell(value)} at {keys:,} keys"
                found.append(Target(19, f"{name} at {keys:,} keys", shown, at_most(value, ceiling)))
    for backend, measure_name, ceiling, name in CEILINGS:
        cells = _cells(rows, backend, measure_name)
        if not cells:
            continue
        keys = max(cells)
        found.append(
            Target(
                19,
                f"{name} at 1M keys",
                f"{_cell(cells[keys])} at {keys:,} keys",
                at_most(cells[keys], ceiling, decided=keys >= SIZES[-1]),
            )
        )
    for backend, measure_name, name, unit in FLAT:
        cells = _cells(rows, backend, measure_name)
        if cells:
            found.append(flatness(19, name, cells, SIZES[0], SIZES[-1], unit))
    return found


def main(argv: list[str]) -> None:
    """``python -m bench.scaling BACKEND KEYS [REDIS_URL]``: one JSON line of figures."""
    backend, keys = argv[0], int(argv[1])
    redis_url = argv[2] if len(argv) > 2 else ""
    updates = min(UPDATES, keys)
    figures = asyncio.run(measure_one(backend, keys, updates, redis_url))
    print(json.dumps(figures))
    sys.stdout.flush()
    os._exit(0)  # skip the interpreter's teardown of a million objects


if __name__ == "__main__":
    main(sys.argv[1:])
