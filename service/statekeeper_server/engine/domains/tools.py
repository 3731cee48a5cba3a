"""Tool execution state (the reference's ``ToolStateManager``), written once over a Backend.

Records live under ``<tenant>tool/`` (see :mod:`~statekeeper_server.engine.tenancy`):

* ``tool/exec/<execution_id>`` — a small immutable pointer ``{"h": <history key>}``;
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

import base64
import hashlib
import json
import logging
import math
import random
import time
from dataclasses import dataclass
from typing import Any

from statekeeper import values
from statekeeper.errors import (
    AlreadyExistsError,
    ConflictError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    Reason,
)
from statekeeper.v1 import tool_service_pb2 as pb

from statekeeper_server.engine.identifiers import check_id, invalid
from statekeeper_server.engine.limits import Limits, check_ttl
from statekeeper_server.engine.records import retry_on_conflict
from statekeeper_server.engine.storage.backend import (
    Backend,
    Compare,
    Delete,
    Entry,
    Operation,
    Put,
)
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
_INT_FLOAT_BOUND = 2**53

PENDING = pb.TOOL_EXECUTION_STATUS_PENDING
RUNNING = pb.TOOL_EXECUTION_STATUS_RUNNING
COMPLETED = pb.TOOL_EXECUTION_STATUS_COMPLETED
FAILED = pb.TOOL_EXECUTION_STATUS_FAILED
TIMEOUT = pb.TOOL_EXECUTION_STATUS_TIMEOUT
CANCELLED = pb.TOOL_EXECUTION_STATUS_CANCELLED
#: The statuses of an execution that has ended.
ENDED_STATUSES = frozenset({COMPLETED, FAILED, TIMEOUT, CANCELLED})
#: The statuses FailExecution accepts.
ERROR_STATUSES = frozenset({FAILED, TIMEOUT, CANCELLED})

#: Backoff defaults of a retry state that does not set them.
DEFAULT_BACKOFF_FACTOR = 2.0
DEFAULT_BASE_DELAY = 1.0
DEFAULT_MAX_DELAY = 300.0


def check_time(seconds: float, field: str) -> float:
    """Return a Unix time that fits a sort key (1970 to the year 5138), else INVALID_ARGUMENT."""
    if not math.isfinite(seconds) or not 0 <= seconds * 1e6 < _TIME_BOUND_US:
        raise invalid(field, "out of range")
    return seconds


def check_duration(seconds: float | None, field: str) -> float | None:
    """Return a non-negative finite duration in seconds (or None), else INVALID_ARGUMENT."""
    if seconds is not None and (not math.isfinite(seconds) or seconds < 0):
        raise invalid(field, "must not be negative")
    return seconds


def _canonical(document: Any) -> Any:
    kind = type(document)
    if kind is float and document.is_integer() and abs(document) <= _INT_FLOAT_BOUND:
        return int(document)
    if kind is dict:
        return {key: _canonical(item) for key, item in document.items()}
    if kind is list or kind is tuple:
        return [_canonical(item) for item in document]
    if kind is bytes or kind is bytearray:
        return {values.BYTES_MEMBER: base64.b64encode(document).decode()}
    return document


def canonical_json(parameters: Any) -> str:
    """The canonical text of a parameters document (see :func:`parameters_hash`)."""
    return json.dumps(
        _canonical(parameters),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


def parameters_hash(parameters: Any) -> str:
    """The parameters hash: lowercase hex SHA-256 of the UTF-8 canonical JSON.

    Canonical JSON: integral floats within +/-2**53 become integers (the rule by which the JSON
    form of a Value is read, so every language gets the same hash), bytes become their JSON form
    ``{"$bytes": "<base64>"}``, object members are sorted
    by key in code point order, no whitespace, non-ASCII characters written as themselves,
    integers in decimal, other numbers in the shortest form that reads back to the same double.
    """
    return hashlib.sha256(canonical_json(parameters).encode("utf-8")).hexdigest()


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

    records: list[dict[str, Any]]
    next_page_token: str


def _empty_stats() -> dict[str, Any]:
    """A stats shard: executions started, ended ok / with an error, their summed duration,
    cache hits and misses, the last end time."""
    return {"started": 0, "ok": 0, "err": 0, "dur_us": 0, "hits": 0, "misses": 0, "last": None}


class ToolEngine:
    """Executions, result cache, retries and statistics of tools."""

    def __init__(self, backend: Backend, limits: Limits | None = None) -> None:
        self.backend = backend
        self.limits = limits or Limits()

    @staticmethod
    def _ns() -> str:
        return tenant_prefix() + NAMESPACE

    def _pack(self, document: Any, field: str = "value") -> bytes:
        return self.limits.check_value_size(values.pack(document), field)

    # -- executions -----------------------------------------------------------------------

    async def start_execution(
        self,
        *,
        execution_id: str,
        tool_name: str,
        status: int,
        started_at: float | None,
        parameters: Any,
        metadata: Any,
    ) -> dict[str, Any]:
        """Record a new execution (status PENDING or RUNNING; unspecified means RUNNING)."""
        check_id(execution_id, "execution.execution_id")
        check_id(tool_name, "execution.tool_name")
        if status == pb.TOOL_EXECUTION_STATUS_UNSPECIFIED:
            status = RUNNING
        if status not in (PENDING, RUNNING):
            raise invalid("execution.status", "must be PENDING or RUNNING")
        now = time.time()
        started = check_time(started_at if started_at is not None else now, "execution.started_at")
        if parameters is None:
            parameters = {}
        record = {
            "execution_id": execution_id,
            "tool_name": tool_name,
            "status": status,
            "started_at": started,
            "parameters": parameters,
            "parameters_hash": parameters_hash(parameters),
            "completed_at": None,
            "result": None,
            "error": "",
            "duration": None,
            "metadata": metadata,
        }
        ns = self._ns()
        history_key = f"{ns}hist/{tool_name}/{_inverted_time_key(started)}/{execution_id}"
        pointer_key = f"{ns}exec/{execution_id}"
        data = self._pack(record, "execution")

        async def attempt() -> None:
            # The start is counted in one stats shard in the same transaction.
            shard_key = f"{ns}stats/{tool_name}/{random.randrange(STATS_SHARDS)}"
            shard_entry = await self.backend.get(shard_key)
            stats = values.unpack(shard_entry.value) if shard_entry else _empty_stats()
            stats["started"] = stats.get("started", 0) + 1
            try:
                await self.backend.txn(
                    [
                        Compare(pointer_key, 0),
                        Compare(shard_key, shard_entry.mod_revision if shard_entry else 0),
                    ],
                    [
                        Put(pointer_key, values.pack({"h": history_key})),
                        Put(history_key, data),
                        Put(shard_key, values.pack(stats)),
                    ],
                )
            except ConflictError:
                if await self.backend.get(pointer_key) is None:
                    raise  # another start or end took the shard: try again
                raise AlreadyExistsError(
                    f"execution {execution_id!r} already exists",
                    reason=Reason.ALREADY_EXISTS,
                    metadata={"execution_id": execution_id},
                ) from None

        await retry_on_conflict(attempt)
        return record

    async def _locate(self, execution_id: str) -> tuple[str, Entry]:
        """The history key and entry of an execution, or EXECUTION_NOT_FOUND."""
        pointer = await self.backend.get(f"{self._ns()}exec/{execution_id}")
        entry = None
        if pointer is not None:
            history_key = values.unpack(pointer.value)["h"]
            entry = await self.backend.get(history_key)
        if pointer is None or entry is None:
            raise NotFoundError(
                f"execution {execution_id!r} not found",
                reason=Reason.EXECUTION_NOT_FOUND,
                metadata={"execution_id": execution_id},
            )
        return history_key, entry

    async def get_execution(self, execution_id: str) -> dict[str, Any]:
        """One execution record."""
        check_id(execution_id, "execution_id")
        _, entry = await self._locate(execution_id)
        record: dict[str, Any] = values.unpack(entry.value)
        return record

    async def _end(
        self,
        execution_id: str,
        *,
        status: int,
        result: Any,
        error: str,
        duration: float | None,
        cache: bool,
        cache_ttl: float | None,
    ) -> dict[str, Any]:
        """End an execution and count it in one shard of its tool's statistics, atomically
        (with ``cache``, also cache the result for ``cache_ttl`` seconds, None: forever); then
        remove the tool's oldest ended executions beyond its history cap."""
        ns = self._ns()

        async def attempt() -> dict[str, Any]:
            history_key, entry = await self._locate(execution_id)
            record = values.unpack(entry.value)
            if record["status"] in ENDED_STATUSES:
                raise FailedPreconditionError(
                    f"execution {execution_id!r} has already ended",
                    reason=Reason.EXECUTION_ENDED,
                    metadata={"execution_id": execution_id},
                )
            now = time.time()
            took = duration if duration is not None else max(0.0, now - record["started_at"])
            record.update(
                status=status, completed_at=now, result=result, error=error, duration=took
            )
            tool_name = record["tool_name"]
            shard_key = f"{ns}stats/{tool_name}/{random.randrange(STATS_SHARDS)}"
            shard_entry = await self.backend.get(shard_key)
            stats = values.unpack(shard_entry.value) if shard_entry else _empty_stats()
            stats["ok" if status == COMPLETED else "err"] += 1
            stats["dur_us"] += round(took * 1e6)
            stats["last"] = now if stats["last"] is None else max(stats["last"], now)
            stats["kept"] = stats.get("kept", 0) + 1
            done_key = f"{ns}done/{tool_name}/{_time_key(now)}/{execution_id}"
            operations: list[Operation] = [
                Put(history_key, self._pack(record, "result")),
                Put(shard_key, values.pack(stats)),
                Put(done_key, values.pack({"h": history_key, "id": execution_id})),
            ]
            compares = [
                Compare(history_key, entry.mod_revision),
                Compare(shard_key, shard_entry.mod_revision if shard_entry else 0),
            ]
            if cache and status == COMPLETED:
                entry_document = {
                    "tool_name": record["tool_name"],
                    "parameters_hash": record["parameters_hash"],
                    "result": result,
                    "created_at": now,
                    "ttl": cache_ttl,
                }
                cache_key = f"{ns}cache/{record['tool_name']}/{record['parameters_hash']}"
                expire_at = None if cache_ttl is None else now + cache_ttl
                operations.append(Put(cache_key, values.pack(entry_document), expire_at))
            await self.backend.txn(compares, operations)
            return record

        ended = await retry_on_conflict(attempt)
        if self.limits.tool_history_per_tool > 0:
            try:
                await self.prune_history(ended["tool_name"])
            except ConflictError:
                # Under sustained contention: the next execution's end prunes instead.
                log.debug("pruning the history of %r gave way to other writers", ended["tool_name"])
        return ended

    async def prune_history(self, tool_name: str) -> int:
        """Remove up to :data:`PRUNE_BATCH` of the tool's oldest ended executions while it
        keeps more than ``Limits.tool_history_per_tool`` of them; returns how many went.

        One transaction compares every stats shard (so the count it saw is the count it
        changes) and every removed index entry; the statistics counters are left as they are.
        """
        cap = self.limits.tool_history_per_tool
        ns = self._ns()
        shards_prefix = f"{ns}stats/{tool_name}/"

        async def attempt() -> int:
            shards = await self.backend.range(shards_prefix, limit=STATS_SHARDS * 2)
            kept = sum(values.unpack(shard.value).get("kept", 0) for shard in shards.entries)
            if cap <= 0 or kept <= cap or not shards.entries:
                return 0
            oldest = await self.backend.range(
                f"{ns}done/{tool_name}/", limit=min(kept - cap, PRUNE_BATCH)
            )
            if not oldest.entries:
                return 0
            compares = [Compare(shard.key, shard.mod_revision) for shard in shards.entries]
            target = random.choice(shards.entries)
            stats = values.unpack(target.value)
            stats["kept"] = stats.get("kept", 0) - len(oldest.entries)
            operations: list[Operation] = [Put(target.key, values.pack(stats))]
            for old in oldest.entries:
                pointer = values.unpack(old.value)
                compares.append(Compare(old.key, old.mod_revision))
                operations += [
                    Delete(old.key),
                    Delete(pointer["h"]),
                    Delete(f"{ns}exec/{pointer['id']}"),
                ]
            await self.backend.txn(compares, operations)
            return len(oldest.entries)

        return await retry_on_conflict(attempt)

    async def complete_execution(
        self,
        execution_id: str,
        result: Any,
        duration: float | None = None,
        cache: bool = False,
        cache_ttl: float | None = None,
    ) -> dict[str, Any]:
        """Mark an execution COMPLETED with ``result`` (with ``cache``, also cache the result
        for ``cache_ttl`` seconds; None: the entry never expires)."""
        check_id(execution_id, "execution_id")
        check_duration(duration, "duration")
        cache_ttl = check_ttl(cache_ttl, "cache_ttl")
        return await self._end(
            execution_id,
            status=COMPLETED,
            result=result,
            error="",
            duration=duration,
            cache=cache,
            cache_ttl=cache_ttl,
        )

    async def fail_execution(
        self, execution_id: str, error: str, duration: float | None = None, status: int = FAILED
    ) -> dict[str, Any]:
        """Mark an execution FAILED, TIMEOUT or CANCELLED with an error message."""
        check_id(execution_id, "execution_id")
        check_duration(duration, "duration")
        if status == pb.TOOL_EXECUTION_STATUS_UNSPECIFIED:
            status = FAILED
        if status not in ERROR_STATUSES:
            raise invalid("status", "must be FAILED, TIMEOUT or CANCELLED")
        return await self._end(
            execution_id,
            status=status,
            result=None,
            error=error,
            duration=duration,
            cache=False,
            cache_ttl=None,
        )

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
        records = [values.unpack(entry.value) for entry in page.entries]
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

    async def cache_result(
        self,
        *,
        tool_name: str,
        parameters: Any,
        parameters_hash: str,
        result: Any,
        created_at: float | None,
        ttl: float | None,
    ) -> dict[str, Any]:
        """Store a result under its tool and parameters hash; it expires after ``ttl``."""
        check_id(tool_name, "entry.tool_name")
        digest = self._cache_hash(parameters, parameters_hash, "entry.parameters_hash")
        ttl = check_ttl(ttl, "entry.ttl")
        now = time.time()
        if created_at is not None:
            check_time(created_at, "entry.created_at")
        record = {
            "tool_name": tool_name,
            "parameters_hash": digest,
            "result": result,
            "created_at": created_at if created_at is not None else now,
            "ttl": ttl,
        }
        expire_at = now + ttl if ttl is not None else None
        key = f"{self._ns()}cache/{tool_name}/{digest}"
        entry = await self.backend.put(key, self._pack(record, "entry.result"), expire_at=expire_at)
        record["expire_at"] = entry.expire_at
        return record

    async def get_cached_result(
        self, tool_name: str, parameters: Any, parameters_hash: str
    ) -> dict[str, Any] | None:
        """The cached entry (or None), counting a hit or a miss in the tool's statistics."""
        check_id(tool_name, "tool_name")
        digest = self._cache_hash(parameters, parameters_hash, "parameters_hash")
        ns = self._ns()
        entry = await self.backend.get(f"{ns}cache/{tool_name}/{digest}")
        await self._count(tool_name, "hits" if entry is not None else "misses")
        if entry is None:
            return None
        record: dict[str, Any] = values.unpack(entry.value)
        record["expire_at"] = entry.expire_at
        return record

    async def _count(self, tool_name: str, counter: str) -> None:
        shard_key = f"{self._ns()}stats/{tool_name}/{random.randrange(STATS_SHARDS)}"

        async def attempt() -> None:
            entry = await self.backend.get(shard_key)
            stats = values.unpack(entry.value) if entry else _empty_stats()
            stats[counter] += 1
            await self.backend.put(
                shard_key, values.pack(stats), expected_revision=entry.mod_revision if entry else 0
            )

        await retry_on_conflict(attempt)

    async def invalidate_cached_result(
        self, tool_name: str, parameters: Any, parameters_hash: str
    ) -> bool:
        """Remove one cached result; True when it existed."""
        check_id(tool_name, "tool_name")
        digest = self._cache_hash(parameters, parameters_hash, "parameters_hash")
        result = await self.backend.delete(f"{self._ns()}cache/{tool_name}/{digest}")
        return result.results[0] is not None

    # -- retries ----------------------------------------------------------------------------

    async def update_retry_state(
        self,
        *,
        execution_id: str,
        tool_name: str,
        attempts: int,
        max_attempts: int,
        last_error: str,
        next_retry_at: float | None,
        backoff_factor: float,
        base_delay: float | None,
        max_delay: float | None,
        jitter: float,
    ) -> dict[str, Any]:
        """Create or replace a retry state, computing ``next_retry_at`` from the backoff when it
        is not given: ``min(max_delay, base_delay * backoff_factor ** max(attempts - 1, 0))``,
        shortened by ``jitter * u`` of itself (``u`` uniform in [0, 1))."""
        check_id(execution_id, "retry_state.execution_id")
        if tool_name:
            check_id(tool_name, "retry_state.tool_name")
        if attempts < 0:
            raise invalid("retry_state.attempts", "must not be negative")
        if max_attempts < 1:
            raise invalid("retry_state.max_attempts", "must be at least 1")
        factor = backoff_factor or DEFAULT_BACKOFF_FACTOR
        if not math.isfinite(factor) or factor < 1:
            raise invalid("retry_state.backoff_factor", "must be at least 1")
        base = DEFAULT_BASE_DELAY if base_delay is None else base_delay
        cap = DEFAULT_MAX_DELAY if max_delay is None else max_delay
        if not math.isfinite(base) or base <= 0:
            raise invalid("retry_state.base_delay", "must be positive")
        if not math.isfinite(cap) or cap < base:
            raise invalid("retry_state.max_delay", "must be at least base_delay")
        if not math.isfinite(jitter) or not 0 <= jitter <= 1:
            raise invalid("retry_state.jitter", "must be between 0 and 1")
        now = time.time()
        if next_retry_at is None:
            delay = backoff_delay(attempts, factor, base, cap, jitter)
            next_retry_at = now + delay
        check_time(next_retry_at, "retry_state.next_retry_at")
        record = {
            "execution_id": execution_id,
            "tool_name": tool_name,
            "attempts": attempts,
            "max_attempts": max_attempts,
            "last_error": last_error,
            "next_retry_at": next_retry_at,
            "backoff_factor": factor,
            "base_delay": base,
            "max_delay": cap,
            "jitter": jitter,
            "updated_at": now,
        }
        data = self._pack(record, "retry_state")
        ns = self._ns()
        key = f"{ns}retry/{execution_id}"
        queue_key = f"{ns}retryq/{_time_key(next_retry_at)}/{execution_id}"
        pending = attempts < max_attempts

        async def attempt() -> None:
            current = await self.backend.get(key)
            operations: list[Operation] = [Put(key, data)]
            if current is not None:
                old = values.unpack(current.value)
                old_queue = f"{ns}retryq/{_time_key(old['next_retry_at'])}/{execution_id}"
                if old_queue != queue_key or not pending:
                    operations.append(Delete(old_queue))
            if pending:
                operations.append(Put(queue_key, data))
            revision = current.mod_revision if current is not None else 0
            await self.backend.txn([Compare(key, revision)], operations)

        await retry_on_conflict(attempt)
        return record

    async def get_retry_state(self, execution_id: str) -> dict[str, Any]:
        """One retry state, or RETRY_NOT_FOUND."""
        check_id(execution_id, "execution_id")
        entry = await self.backend.get(f"{self._ns()}retry/{execution_id}")
        if entry is None:
            raise NotFoundError(
                f"no retry state for execution {execution_id!r}",
                reason=Reason.RETRY_NOT_FOUND,
                metadata={"execution_id": execution_id},
            )
        record: dict[str, Any] = values.unpack(entry.value)
        return record

    async def delete_retry_state(self, execution_id: str) -> bool:
        """Remove a retry state (and its queue entry); True when it existed."""
        check_id(execution_id, "execution_id")
        ns = self._ns()
        key = f"{ns}retry/{execution_id}"

        async def attempt() -> bool:
            current = await self.backend.get(key)
            if current is None:
                return False
            old = values.unpack(current.value)
            queue_key = f"{ns}retryq/{_time_key(old['next_retry_at'])}/{execution_id}"
            await self.backend.txn(
                [Compare(key, current.mod_revision)], [Delete(key), Delete(queue_key)]
            )
            return True

        return await retry_on_conflict(attempt)

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
        records: list[dict[str, Any]] = []
        more = page.more
        for entry in page.entries:
            if bound is not None and entry.key[len(prefix) :].split("/", 1)[0] > bound:
                more = False
                break
            records.append(values.unpack(entry.value))
        token = ""
        if more and records:
            last_record = records[-1]
            token = encode_text(
                f"{_time_key(last_record['next_retry_at'])}/{last_record['execution_id']}"
            )
        return HistoryPage(records, token)

    # -- statistics -------------------------------------------------------------------------

    async def tool_stats(self, tool_name: str) -> dict[str, Any]:
        """The sum of a tool's counter shards (all zero for a tool with no activity).

        ``started`` counts every execution from its start (shards written before starts were
        counted hold none: then at least the ended ones count)."""
        check_id(tool_name, "tool_name")
        prefix = f"{self._ns()}stats/{tool_name}/"
        page = await self.backend.range(prefix, limit=STATS_SHARDS * 2)
        total = _empty_stats()
        for entry in page.entries:
            shard = values.unpack(entry.value)
            for name in ("started", "ok", "err", "dur_us", "hits", "misses"):
                total[name] += shard.get(name, 0)
            if shard["last"] is not None:
                total["last"] = max(total["last"] or 0.0, shard["last"])
        total["started"] = max(total["started"], total["ok"] + total["err"])
        return total


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
