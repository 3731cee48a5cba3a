"""The typed records of tool state (see :mod:`statekeeper_server.engine.domains.tools`) and
how the format before typed records (version 0: proto enum numbers for statuses) is read."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from statekeeper import values
from statekeeper.statuses import ToolExecutionStatus

from statekeeper_server.engine.records import Schema

Status = ToolExecutionStatus
_INT_FLOAT_BOUND = 2**53
#: The statuses of an execution that has ended.
ENDED_STATUSES = frozenset({Status.COMPLETED, Status.FAILED, Status.TIMEOUT, Status.CANCELLED})
#: The statuses FailExecution accepts.
ERROR_STATUSES = frozenset({Status.FAILED, Status.TIMEOUT, Status.CANCELLED})


@dataclass(frozen=True, slots=True)
class ToolExecution:
    """One execution of a tool."""

    execution_id: str = ""
    tool_name: str = ""
    status: ToolExecutionStatus | None = None
    started_at: float | None = None
    parameters: Any = None
    parameters_hash: str = ""
    completed_at: float | None = None
    result: Any = None
    error: str = ""
    duration: float | None = None
    metadata: Any = None


@dataclass(frozen=True, slots=True)
class ToolCacheEntry:
    """A cached result; ``expire_time`` is the backend's expiry of the entry (not stored)."""

    tool_name: str = ""
    parameters_hash: str = ""
    result: Any = None
    created_at: float | None = None
    ttl: float | None = None
    expire_time: float | None = None


@dataclass(frozen=True, slots=True)
class RetryState:
    """The retry state of an execution."""

    execution_id: str = ""
    tool_name: str = ""
    attempts: int = 0
    max_attempts: int = 0
    last_error: str = ""
    next_retry_at: float | None = None
    backoff_factor: float = 0.0
    base_delay: float | None = None
    max_delay: float | None = None
    jitter: float = 0.0
    updated_at: float | None = None


@dataclass(frozen=True, slots=True)
class StatsShard:
    """One counter record of a tool's statistics: executions started, ended ok / with an
    error, their summed duration in µs, cache hits and misses, the last end time, and the
    shard's share of the count of retained ended executions."""

    started: int = 0
    ok: int = 0
    err: int = 0
    dur_us: int = 0
    hits: int = 0
    misses: int = 0
    last: float | None = None
    kept: int = 0


@dataclass(frozen=True, slots=True)
class Pointer:
    """An execution id's pointer to its history record (``h``)."""

    h: str = ""


@dataclass(frozen=True, slots=True)
class Done:
    """A retention index entry of an ended execution: its history key and id."""

    h: str = ""
    id: str = ""


@dataclass(frozen=True, slots=True)
class ToolStats:
    """A tool's statistics: every started execution counts in ``total_executions``; the rates
    and the mean duration are over the ended ones."""

    tool_name: str
    total_executions: int
    successful_executions: int
    failed_executions: int
    success_rate: float
    error_rate: float
    average_duration: float
    cache_hits: int
    cache_misses: int
    cache_hit_rate: float
    last_execution_at: float | None
    running_executions: int

    @classmethod
    def of(cls, tool_name: str, total: StatsShard) -> ToolStats:
        """The statistics of a tool from the sum of its shards."""
        ended = total.ok + total.err
        lookups = total.hits + total.misses
        started = max(total.started, ended)
        return cls(
            tool_name=tool_name,
            total_executions=started,
            successful_executions=total.ok,
            failed_executions=total.err,
            success_rate=total.ok / ended if ended else 0.0,
            error_rate=total.err / ended if ended else 0.0,
            average_duration=total.dur_us / ended / 1e6 if ended else 0.0,
            cache_hits=total.hits,
            cache_misses=total.misses,
            cache_hit_rate=total.hits / lookups if lookups else 0.0,
            last_execution_at=total.last,
            running_executions=started - ended,
        )


_V0_STATUS = dict(enumerate(("", *Status)))


def _v0_execution(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "status": _V0_STATUS.get(data.get("status", 0)) or None}


EXECUTION = Schema(ToolExecution, field="execution", upgrades={0: _v0_execution})
CACHE_ENTRY = Schema(ToolCacheEntry, field="entry.result")
RETRY = Schema(RetryState, field="retry_state")
SHARD = Schema(StatsShard, field="stats")
POINTER = Schema(Pointer, field="pointer")
DONE = Schema(Done, field="index")


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
