"""Tool execution state (the reference's ``ToolStateManager``), written once over a Backend.

Records live under ``<tenant>tool/`` (see :mod:`~statekeeper_server.engine.tenancy`):

* ``tool/exec/<execution_id>`` — a small immutable pointer to the history key (:class:`Pointer`);
* ``tool/hist/<tool_name>/<inverted started_at µs>/<execution_id>`` — the execution record,
  so a range read of ``tool/hist/<tool_name>/`` lists a tool's executions newest first;
* ``tool/stats/<tool_name>/<shard>`` — :data:`STATS_SHARDS` counter documents whose sum is the
  tool's statistics. An execution's end commits its record and one shard (chosen at random,
  so concurrent writers rarely collide) in one compare-and-set transaction, so the statistics
  are exact under any number of writers on any number of server instances;
* ``tool/done/<tool_name>/<completed_at µs>/<execution_id>`` — the retention index of ended
  executions, oldest first, ``{"h": <history key>, "id": <execution_id>}``. Each stats shard
  also holds ``kept``, its share of the count of these entries (a shard's share may be
  negative; the sum over the shards is exact because every index write and delete adjusts one
  shard in the same transaction). After an execution ends, when the sum exceeds
  ``Limits.tool_history_per_tool`` (0: keep everything), one follow-up transaction that
  compares every shard removes up to :data:`PRUNE_BATCH` of the oldest ended executions
  (index entry, record and pointer): a tool keeps its newest ended executions and every
  running one, at O(1) cost per write. Every writer prunes after its own end commits, so
  once writers pause the cap holds exactly; while several end executions of one tool at once
  it may be exceeded by at most one per concurrent writer. The statistics counters are not
  changed by pruning: they count every execution ever ended;
* ``tool/cache/<tool_name>/<parameters_hash>`` — a cached result with a backend TTL;
* ``tool/retry/<execution_id>`` — a retry state, and, while it has attempts left, a copy under
  ``tool/retryq/<next_retry_at µs>/<execution_id>`` so pending retries list soonest first.

Ids, tool names and explicit parameters hashes follow the one id rule of
:mod:`~statekeeper_server.engine.identifiers` (1 to 256 UTF-8 bytes, no ``/``, no control
characters), so one id is never a prefix path of another (``a1`` never matches ``a10``).
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, fields, replace
from typing import Any

from statekeeper.errors import (
    AlreadyExistsError,
    ConflictError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    Reason,
)

from statekeeper_server.engine.domains.tools_records import (
    CACHE_ENTRY,
    DONE,
    ENDED_STATUSES,
    ERROR_STATUSES,
    EXECUTION,
    POINTER,
    RETRY,
    SHARD,
    Done,
    Pointer,
    RetryState,
    StatsShard,
    ToolCacheEntry,
    ToolExecution,
    ToolExecutionStatus,
    ToolStats,
    parameters_hash,
)
from statekeeper_server.engine.identifiers import check_id, invalid
from statekeeper_server.engine.limits import (
    Limits,
    check_duration,
    check_ttl,
)
from statekeeper_server.engine.records import Txn, transact
from statekeeper_server.engine.storage.backend import Backend, Entry
from statekeeper_server.engine.tenancy import tenant_prefix
from statekeeper_server.engine.tokens import decode_text, encode_text, invalid_token

log = logging.getLogger(__name__)

#: The backend namespace of the tool records (after the tenant prefix).
NAMESPACE = "tool/"
#: How many counter documents make up one tool's statistics.
STATS_SHARDS = 8
#: The most old ended executions one prune removes: more than one, so that the excess left by
#: concurrent writers or by lowering ``tool_history_per_tool`` drains as a tool is used, and
#: few enough that one transaction stays small.
PRUNE_BATCH = 16
#: Times are stored in sort keys as microseconds below this bound (the year 5138).
_TIME_BOUND_US = 10**17

Status = ToolExecutionStatus

#: Backoff defaults of a retry state that does not set them.
DEFAULT_BACKOFF_FACTOR = 2.0
DEFAULT_BASE_DELAY = 1.0
DEFAULT_MAX_DELAY = 300.0


def check_time(seconds: float, field: str) -> float:
    """Return a Unix time that fits a sort key (1970 to the year 5138), else INVALID_ARGUMENT."""
    if not math.isfinite(seconds) or not 0 <= seconds * 1e6 < _TIME_BOUND_US:
        raise invalid(field, "out of range")
    return seconds


def _time_key(seconds: float) -> str:
    return f"{round(seconds * 1e6):017d}"


def _inverted_time_key(seconds: float) -> str:
    return f"{_TIME_BOUND_US - 1 - round(seconds * 1e6):017d}"


def _decode_token(token: str) -> str:
    last = decode_text(token) if token else ""
    if last is None:
        raise invalid_token("page_token is not a token returned by this list call")
    return last


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of executions or retries, with the token of the next page."""

    records: list[Any]
    next_page_token: str


def _sum_shards(shards: list[StatsShard]) -> StatsShard:
    counters = {
        f.name: sum(getattr(s, f.name) for s in shards)
        for f in fields(StatsShard)
        if f.name != "last"
    }
    stamps = [s.last for s in shards if s.last is not None]
    return StatsShard(**counters, last=max(stamps) if stamps else None)


class ToolEngine:
    """Executions, result cache, retries and statistics of tools."""

    def __init__(self, backend: Backend, limits: Limits | None = None) -> None:
        self.backend = backend
        self.limits = limits or Limits()

    @staticmethod
    def _ns() -> str:
        return tenant_prefix() + NAMESPACE

    async def _shard(self, txn: Txn, tool_name: str) -> tuple[str, StatsShard]:
        """One stats shard of the tool, chosen at random so concurrent writers rarely collide."""
        key = f"{self._ns()}stats/{tool_name}/{random.randrange(STATS_SHARDS)}"
        return key, await txn.get(key, SHARD) or StatsShard()

    # -- executions -----------------------------------------------------------------------

    async def start_execution(self, execution: ToolExecution) -> ToolExecution:
        """Record a new execution (status PENDING or RUNNING; unspecified means RUNNING)."""
        execution_id = check_id(execution.execution_id, "execution.execution_id")
        tool_name = check_id(execution.tool_name, "execution.tool_name")
        status = execution.status or Status.RUNNING
        if status not in (Status.PENDING, Status.RUNNING):
            raise invalid("execution.status", "must be PENDING or RUNNING")
        started = execution.started_at if execution.started_at is not None else time.time()
        parameters = {} if execution.parameters is None else execution.parameters
        record = ToolExecution(
            execution_id=execution_id,
            tool_name=tool_name,
            status=status,
            started_at=check_time(started, "execution.started_at"),
            parameters=parameters,
            parameters_hash=parameters_hash(parameters),
            metadata=execution.metadata,
        )
        ns = self._ns()
        history_key = f"{ns}hist/{tool_name}/{_inverted_time_key(started)}/{execution_id}"
        pointer_key = f"{ns}exec/{execution_id}"
        EXECUTION.pack(record, self.limits)  # the size error names the execution

        async def body(txn: Txn) -> ToolExecution:
            if await txn.entry(pointer_key) is not None:
                raise AlreadyExistsError(
                    f"execution {execution_id!r} already exists",
                    reason=Reason.ALREADY_EXISTS,
                    metadata={"execution_id": execution_id},
                )
            # The start is counted in one stats shard in the same transaction.
            shard_key, stats = await self._shard(txn, tool_name)
            txn.put(pointer_key, Pointer(history_key), POINTER)
            txn.put(history_key, record, EXECUTION)
            txn.put(shard_key, replace(stats, started=stats.started + 1), SHARD)
            return record

        return await transact(self.backend, body, limits=self.limits)

    async def _locate(self, execution_id: str, txn: Txn | None = None) -> tuple[str, Entry]:
        """The history key and entry of an execution (read through ``txn`` when given, so its
        commit is guarded by them), or EXECUTION_NOT_FOUND."""
        read = txn.entry if txn is not None else self.backend.get
        pointer = await read(f"{self._ns()}exec/{execution_id}")
        entry = None
        if pointer is not None:
            history_key = POINTER.unpack(pointer.value).h
            entry = await read(history_key)
        if pointer is None or entry is None:
            raise NotFoundError(
                f"execution {execution_id!r} not found",
                reason=Reason.EXECUTION_NOT_FOUND,
                metadata={"execution_id": execution_id},
            )
        return history_key, entry

    async def get_execution(self, execution_id: str) -> ToolExecution:
        """One execution record."""
        check_id(execution_id, "execution_id")
        _, entry = await self._locate(execution_id)
        return EXECUTION.unpack(entry.value)

    async def _end(
        self, execution_id: str, ending: ToolExecution, cache: bool, cache_ttl: float | None
    ) -> ToolExecution:
        """End an execution with the status, result, error and duration of ``ending`` (no
        duration: the time since its start) and count it in one shard of its tool's
        statistics, atomically (with ``cache``, also cache the result for ``cache_ttl``
        seconds, None: forever); then remove the tool's oldest ended executions beyond its
        history cap."""
        ns = self._ns()

        async def body(txn: Txn) -> ToolExecution:
            history_key, entry = await self._locate(execution_id, txn)
            record = EXECUTION.unpack(entry.value)
            if record.status in ENDED_STATUSES:
                raise FailedPreconditionError(
                    f"execution {execution_id!r} has already ended",
                    reason=Reason.EXECUTION_ENDED,
                    metadata={"execution_id": execution_id},
                )
            now = time.time()
            record = _ended(record, ending, now)
            tool_name = record.tool_name
            shard_key, stats = await self._shard(txn, tool_name)
            ok = ending.status is Status.COMPLETED
            txn.put(history_key, record, EXECUTION)
            txn.put(shard_key, _counted(stats, ok, record.duration or 0.0, now), SHARD)
            done_key = f"{ns}done/{tool_name}/{_time_key(now)}/{execution_id}"
            txn.put(done_key, Done(history_key, execution_id), DONE)
            if cache and ok:
                cached = ToolCacheEntry(
                    tool_name, record.parameters_hash, ending.result, now, cache_ttl
                )
                cache_key = f"{ns}cache/{tool_name}/{record.parameters_hash}"
                expire_at = None if cache_ttl is None else now + cache_ttl
                txn.put(cache_key, cached, CACHE_ENTRY, expire_at)
            return record

        ended = await transact(self.backend, body, limits=self.limits)
        if self.limits.tool_history_per_tool > 0:
            try:
                await self.prune_history(ended.tool_name)
            except ConflictError:
                # Under sustained contention: the next execution's end prunes instead.
                log.debug("pruning the history of %r gave way to other writers", ended.tool_name)
        return ended

    async def prune_history(self, tool_name: str) -> int:
        """Remove up to :data:`PRUNE_BATCH` of the tool's oldest ended executions while it
        keeps more than ``Limits.tool_history_per_tool`` of them; returns how many went.

        One transaction is guarded by every stats shard (so the count it saw is the count it
        changes) and every removed index entry; the statistics counters are left as they are.
        """
        cap = self.limits.tool_history_per_tool
        ns = self._ns()

        async def body(txn: Txn) -> int:
            shards = await txn.range(f"{ns}stats/{tool_name}/", SHARD, guard=True)
            kept = sum(shard.kept for _, shard in shards)
            if cap <= 0 or kept <= cap or not shards:
                return 0
            oldest = await txn.range(
                f"{ns}done/{tool_name}/", DONE, limit=min(kept - cap, PRUNE_BATCH), guard=True
            )
            if not oldest:
                return 0
            target, stats = random.choice(shards)
            txn.put(target.key, replace(stats, kept=stats.kept - len(oldest)), SHARD)
            for index, done in oldest:
                txn.delete(index.key)
                txn.delete(done.h)
                txn.delete(f"{ns}exec/{done.id}")
            return len(oldest)

        return await transact(self.backend, body, limits=self.limits)

    async def complete_execution(
        self,
        execution_id: str,
        result: Any,
        duration: float | None = None,
        cache: bool = False,
        cache_ttl: float | None = None,
    ) -> ToolExecution:
        """Mark an execution COMPLETED with ``result`` (with ``cache``, also cache the result
        for ``cache_ttl`` seconds; None: the entry never expires)."""
        check_id(execution_id, "execution_id")
        check_duration(duration, "duration")
        cache_ttl = check_ttl(cache_ttl, "cache_ttl")
        ending = ToolExecution(status=Status.COMPLETED, result=result, duration=duration)
        return await self._end(execution_id, ending, cache, cache_ttl)

    async def fail_execution(
        self,
        execution_id: str,
        error: str,
        duration: float | None = None,
        status: ToolExecutionStatus | None = None,
    ) -> ToolExecution:
        """Mark an execution FAILED (the default), TIMEOUT or CANCELLED with an error."""
        check_id(execution_id, "execution_id")
        check_duration(duration, "duration")
        status = status or Status.FAILED
        if status not in ERROR_STATUSES:
            raise invalid("status", "must be FAILED, TIMEOUT or CANCELLED")
        ending = ToolExecution(status=status, error=error, duration=duration)
        return await self._end(execution_id, ending, False, None)

    async def execution_history(
        self, tool_name: str, page_size: int = 0, page_token: str = ""
    ) -> HistoryPage:
        """One page of a tool's executions, newest first."""
        check_id(tool_name, "tool_name")
        size = self.limits.check_page_size(page_size)
        prefix = f"{self._ns()}hist/{tool_name}/"
        last = _decode_token(page_token)
        page = await self.backend.range(
            prefix, start_after=prefix + last if last else "", limit=size
        )
        records = [EXECUTION.unpack(entry.value) for entry in page.entries]
        token = ""
        if page.more and page.entries:
            token = encode_text(page.entries[-1].key[len(prefix) :])
        return HistoryPage(records, token)

    # -- result cache -----------------------------------------------------------------------

    def _cache_hash(self, parameters: Any, explicit: str, field: str) -> str:
        if parameters is not None:
            computed = parameters_hash(parameters)
            if explicit and explicit != computed:
                raise InvalidArgumentError(
                    f"{field} {explicit!r} is not the hash of the parameters ({computed})",
                    reason=Reason.PARAMETERS_HASH_MISMATCH,
                    metadata={"computed": computed},
                    violations=[(field, "differs from the hash of parameters")],
                )
            return computed
        if not explicit:
            raise invalid(field, "set parameters or parameters_hash")
        return check_id(explicit, field)

    async def cache_result(self, entry: ToolCacheEntry, parameters: Any) -> ToolCacheEntry:
        """Store a result under its tool and parameters hash; it expires after ``entry.ttl``."""
        check_id(entry.tool_name, "entry.tool_name")
        digest = self._cache_hash(parameters, entry.parameters_hash, "entry.parameters_hash")
        ttl = check_ttl(entry.ttl, "entry.ttl")
        now = time.time()
        if entry.created_at is not None:
            check_time(entry.created_at, "entry.created_at")
        record = ToolCacheEntry(
            tool_name=entry.tool_name,
            parameters_hash=digest,
            result=entry.result,
            created_at=entry.created_at if entry.created_at is not None else now,
            ttl=ttl,
        )
        key = f"{self._ns()}cache/{entry.tool_name}/{digest}"
        stored = await self.backend.put(
            key,
            CACHE_ENTRY.pack(record, self.limits),
            expire_at=now + ttl if ttl is not None else None,
        )
        return replace(record, expire_time=stored.expire_at)

    async def get_cached_result(
        self, tool_name: str, parameters: Any, parameters_hash: str
    ) -> ToolCacheEntry | None:
        """The cached entry (or None), counting a hit or a miss in the tool's statistics."""
        check_id(tool_name, "tool_name")
        digest = self._cache_hash(parameters, parameters_hash, "parameters_hash")
        entry = await self.backend.get(f"{self._ns()}cache/{tool_name}/{digest}")
        await self._count(tool_name, hit=entry is not None)
        if entry is None:
            return None
        return replace(CACHE_ENTRY.unpack(entry.value), expire_time=entry.expire_at)

    async def _count(self, tool_name: str, *, hit: bool) -> None:
        async def body(txn: Txn) -> None:
            key, stats = await self._shard(txn, tool_name)
            counted = replace(stats, hits=stats.hits + hit, misses=stats.misses + (not hit))
            txn.put(key, counted, SHARD)

        await transact(self.backend, body, limits=self.limits)

    async def invalidate_cached_result(
        self, tool_name: str, parameters: Any, parameters_hash: str
    ) -> bool:
        """Remove one cached result; True when it existed."""
        check_id(tool_name, "tool_name")
        digest = self._cache_hash(parameters, parameters_hash, "parameters_hash")
        result = await self.backend.delete(f"{self._ns()}cache/{tool_name}/{digest}")
        return result.results[0] is not None

    # -- retries ----------------------------------------------------------------------------

    async def update_retry_state(self, state: RetryState) -> RetryState:
        """Create or replace a retry state, computing ``next_retry_at`` from the backoff when it
        is not given: ``min(max_delay, base_delay * backoff_factor ** max(attempts - 1, 0))``,
        shortened by ``jitter * u`` of itself (``u`` uniform in [0, 1))."""
        record = _checked_retry(state)
        ns = self._ns()
        key = f"{ns}retry/{record.execution_id}"
        assert record.next_retry_at is not None
        queue_key = f"{ns}retryq/{_time_key(record.next_retry_at)}/{record.execution_id}"
        pending = record.attempts < record.max_attempts
        RETRY.pack(record, self.limits)  # the size error names the retry state

        async def body(txn: Txn) -> RetryState:
            current = await txn.get(key, RETRY)
            txn.put(key, record, RETRY)
            if current is not None and current.next_retry_at is not None:
                old_queue = f"{ns}retryq/{_time_key(current.next_retry_at)}/{record.execution_id}"
                if old_queue != queue_key or not pending:
                    txn.delete(old_queue)
            if pending:
                txn.put(queue_key, record, RETRY)
            return record

        return await transact(self.backend, body, limits=self.limits)

    async def get_retry_state(self, execution_id: str) -> RetryState:
        """One retry state, or RETRY_NOT_FOUND."""
        check_id(execution_id, "execution_id")
        entry = await self.backend.get(f"{self._ns()}retry/{execution_id}")
        if entry is None:
            raise NotFoundError(
                f"no retry state for execution {execution_id!r}",
                reason=Reason.RETRY_NOT_FOUND,
                metadata={"execution_id": execution_id},
            )
        return RETRY.unpack(entry.value)

    async def delete_retry_state(self, execution_id: str) -> bool:
        """Remove a retry state (and its queue entry); True when it existed."""
        check_id(execution_id, "execution_id")
        ns = self._ns()
        key = f"{ns}retry/{execution_id}"

        async def body(txn: Txn) -> bool:
            current = await txn.get(key, RETRY)
            if current is None:
                return False
            txn.delete(key)
            if current.next_retry_at is not None:
                txn.delete(f"{ns}retryq/{_time_key(current.next_retry_at)}/{execution_id}")
            return True

        return await transact(self.backend, body, limits=self.limits)

    async def pending_retries(
        self, due_before: float | None = None, page_size: int = 0, page_token: str = ""
    ) -> HistoryPage:
        """One page of the retries with attempts left, soonest first, optionally only those
        due at or before ``due_before``."""
        size = self.limits.check_page_size(page_size)
        prefix = f"{self._ns()}retryq/"
        last = _decode_token(page_token)
        bound = _time_key(check_time(due_before, "due_before")) if due_before is not None else None
        page = await self.backend.range(
            prefix, start_after=prefix + last if last else "", limit=size
        )
        records: list[RetryState] = []
        more = page.more
        for entry in page.entries:
            if bound is not None and entry.key[len(prefix) :].split("/", 1)[0] > bound:
                more = False
                break
            records.append(RETRY.unpack(entry.value))
        token = ""
        if more and records:
            last_record = records[-1]
            assert last_record.next_retry_at is not None
            token = encode_text(
                f"{_time_key(last_record.next_retry_at)}/{last_record.execution_id}"
            )
        return HistoryPage(records, token)

    # -- statistics -------------------------------------------------------------------------

    async def tool_stats(self, tool_name: str) -> ToolStats:
        """A tool's statistics, summed over its counter shards (all zero for a tool with no
        activity). ``total_executions`` counts every execution from its start (shards written
        before starts were counted hold none: then at least the ended ones count)."""
        check_id(tool_name, "tool_name")
        page = await self.backend.range(f"{self._ns()}stats/{tool_name}/", limit=STATS_SHARDS * 2)
        return ToolStats.of(tool_name, _sum_shards([SHARD.unpack(e.value) for e in page.entries]))


def _ended(record: ToolExecution, ending: ToolExecution, now: float) -> ToolExecution:
    """``record`` ended at ``now`` with the status, result, error and duration of ``ending``
    (no duration: the time since its start)."""
    started = record.started_at or now
    took = ending.duration if ending.duration is not None else max(0.0, now - started)
    return replace(
        record,
        status=ending.status,
        completed_at=now,
        result=ending.result,
        error=ending.error,
        duration=took,
    )


def _counted(stats: StatsShard, ok: bool, took: float, now: float) -> StatsShard:
    """A stats shard that also counts one execution ended (ok or not) after ``took`` seconds,
    retained in the history."""
    return replace(
        stats,
        ok=stats.ok + ok,
        err=stats.err + (not ok),
        dur_us=stats.dur_us + round(took * 1e6),
        last=now if stats.last is None else max(stats.last, now),
        kept=stats.kept + 1,
    )


def _checked_retry(state: RetryState) -> RetryState:
    """A validated retry state with its defaults and ``next_retry_at`` filled in."""
    check_id(state.execution_id, "retry_state.execution_id")
    if state.tool_name:
        check_id(state.tool_name, "retry_state.tool_name")
    if state.attempts < 0:
        raise invalid("retry_state.attempts", "must not be negative")
    if state.max_attempts < 1:
        raise invalid("retry_state.max_attempts", "must be at least 1")
    factor = state.backoff_factor or DEFAULT_BACKOFF_FACTOR
    if not math.isfinite(factor) or factor < 1:
        raise invalid("retry_state.backoff_factor", "must be at least 1")
    base = DEFAULT_BASE_DELAY if state.base_delay is None else state.base_delay
    cap = DEFAULT_MAX_DELAY if state.max_delay is None else state.max_delay
    if not math.isfinite(base) or base <= 0:
        raise invalid("retry_state.base_delay", "must be positive")
    check_duration(base, "retry_state.base_delay")
    if not math.isfinite(cap) or cap < base:
        raise invalid("retry_state.max_delay", "must be at least base_delay")
    check_duration(cap, "retry_state.max_delay")
    if not math.isfinite(state.jitter) or not 0 <= state.jitter <= 1:
        raise invalid("retry_state.jitter", "must be between 0 and 1")
    now = time.time()
    next_retry_at = state.next_retry_at
    if next_retry_at is None:
        next_retry_at = now + backoff_delay(state.attempts, factor, base, cap, state.jitter)
    check_time(next_retry_at, "retry_state.next_retry_at")
    return replace(
        state,
        next_retry_at=next_retry_at,
        backoff_factor=factor,
        base_delay=base,
        max_delay=cap,
        updated_at=now,
    )


def backoff_delay(attempts: int, factor: float, base: float, cap: float, jitter: float) -> float:
    """``min(cap, base * factor ** max(attempts - 1, 0))`` shortened by ``jitter * u`` of
    itself, ``u`` uniform in [0, 1)."""
    try:
        delay = min(cap, base * factor ** max(attempts - 1, 0))
    except OverflowError:
        delay = cap
    if jitter:
        delay *= 1 - jitter * random.random()
    return delay
