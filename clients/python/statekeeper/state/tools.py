"""``ToolStateManager``: tool executions, result caching, retries and statistics.

The reference's names and calls are kept::

    tool_state = ToolStateManager(persistence="redis", cache_results=True, cache_ttl=3600)
    await tool_state.start_execution(ToolExecution(execution_id="exec_001", ...))
    await tool_state.complete_execution(execution_id="exec_001", result={...}, duration_ms=1500)

Parameters hash: the server computes it from the parameters (SHA-256 hex of the canonical JSON
described in docs/managers.md and in ``tool_service.proto``), so key order and whitespace never
matter and every language gets the same hash. A :class:`ToolCacheEntry` with ``parameters``
is cached under that computed hash (a ``parameters_hash`` given as well must equal it); an
entry with only ``parameters_hash`` is stored under that string as given, an opaque key that
:meth:`ToolStateManager.get_cached_result` finds with ``parameters_hash=`` (not with
``parameters=``, whose computed hash differs).

``cache_results=True`` makes :meth:`ToolStateManager.complete_execution` also cache the result
under the execution's parameters for ``cache_ttl`` seconds, in the same transaction as the
completion; ``cache_ttl`` is also the TTL of cached entries that do not set one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from statekeeper import values
from statekeeper.errors import NotFoundError
from statekeeper.messages import enum_from_number, enum_to_number
from statekeeper.state.client import (
    MSGPACK,
    ServiceClient,
    optional_document,
    optional_wire,
)
from statekeeper.statuses import ToolExecutionStatus
from statekeeper.timestamps import from_duration, optional_datetime, to_duration, to_timestamp
from statekeeper.v1 import tool_service_pb2 as pb
from statekeeper.v1 import tool_service_pb2_grpc

#: The page size used when the API reads every page of a list.
_PAGE = 1000


#: The wire's execution statuses (an unknown name goes as a number no status has, which the
#: server refuses; unspecified means RUNNING at a start and FAILED at a failure).
_STATUS = pb.ToolExecutionStatus.DESCRIPTOR


@dataclass
class ToolExecution:
    """One call of a tool. ``parameters_hash``, ``completed_at``, ``result``, ``error`` and
    ``duration_ms`` are filled in by the service."""

    execution_id: str
    tool_name: str
    status: ToolExecutionStatus = ToolExecutionStatus.RUNNING
    started_at: datetime | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    completed_at: datetime | None = None
    result: Any = None
    error: str | None = None
    duration_ms: float | None = None
    parameters_hash: str = ""
    metadata: dict[str, Any] | None = None


@dataclass
class ToolCacheEntry:
    """One cached tool result. Set ``parameters`` to have the service compute the hash, or
    ``parameters_hash`` to cache under an explicit key. ``ttl`` is in seconds (None: the
    manager's ``cache_ttl``); ``expires_at`` is filled in by the service."""

    tool_name: str
    parameters_hash: str = ""
    result: Any = None
    created_at: datetime | None = None
    ttl: float | None = None
    parameters: dict[str, Any] | None = None
    expires_at: datetime | None = None


@dataclass
class RetryState:
    """The retry bookkeeping of one execution.

    When ``next_retry_at`` is None the service computes it as now plus
    ``min(max_delay, base_delay * backoff_factor ** max(attempts - 1, 0))`` seconds, shortened
    by up to ``jitter`` (a fraction, 0 to 1) of itself at random.
    """

    execution_id: str
    attempts: int = 0
    max_attempts: int = 3
    last_error: str | None = None
    next_retry_at: datetime | None = None
    backoff_factor: float = 2.0
    tool_name: str = ""
    base_delay: float = 1.0
    max_delay: float = 300.0
    jitter: float = 0.0
    updated_at: datetime | None = None


@dataclass
class ToolStats:
    """The statistics of one tool, counted atomically as executions start and end.

    ``total_executions`` counts every execution from its start (``running_executions`` of
    them have not ended); ``success_rate``, ``error_rate`` and ``avg_duration_ms`` are over
    the ended ones (``successful_executions + failed_executions``), 0 while none has ended.
    """

    tool_name: str
    total_executions: int = 0
    successful_executions: int = 0
    failed_executions: int = 0
    success_rate: float = 0.0
    error_rate: float = 0.0
    avg_duration_ms: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0
    cache_hit_rate: float = 0.0
    last_execution_at: datetime | None = None
    running_executions: int = 0


def _millis(message: Any, name: str) -> float | None:
    return from_duration(getattr(message, name)) * 1000 if message.HasField(name) else None


def _execution(message: pb.ToolExecution) -> ToolExecution:
    return ToolExecution(
        execution_id=message.execution_id,
        tool_name=message.tool_name,
        status=enum_from_number(message.status, _STATUS, ToolExecutionStatus),
        started_at=optional_datetime(message, "started_at"),
        parameters=values.wire_to_python(message.parameters),
        completed_at=optional_datetime(message, "completed_at"),
        result=optional_document(message, "result"),
        error=message.error or None,
        duration_ms=_millis(message, "duration"),
        parameters_hash=message.parameters_hash,
        metadata=optional_document(message, "metadata"),
    )


def _cache_entry(message: pb.ToolCacheEntry, parameters: Any = None) -> ToolCacheEntry:
    return ToolCacheEntry(
        tool_name=message.tool_name,
        parameters_hash=message.parameters_hash,
        result=values.wire_to_python(message.result),
        created_at=optional_datetime(message, "created_at"),
        ttl=from_duration(message.ttl) if message.HasField("ttl") else None,
        parameters=parameters,
        expires_at=optional_datetime(message, "expire_time"),
    )


def _retry(message: pb.RetryState) -> RetryState:
    return RetryState(
        execution_id=message.execution_id,
        attempts=message.attempts,
        max_attempts=message.max_attempts,
        last_error=message.last_error or None,
        next_retry_at=optional_datetime(message, "next_retry_at"),
        backoff_factor=message.backoff_factor,
        tool_name=message.tool_name,
        base_delay=from_duration(message.base_delay),
        max_delay=from_duration(message.max_delay),
        jitter=message.jitter,
        updated_at=optional_datetime(message, "updated_at"),
    )


class ToolStateManager(ServiceClient):
    """Tool execution state, result caching, retry management and statistics.

    ``persistence`` is ``"memory"``, ``"file"`` or ``"redis"`` (the engine runs in this
    process) or ``"grpc"`` with ``address="host:port"`` (a server); ``transport`` shares one
    connection between managers.
    """

    _STUB = tool_service_pb2_grpc.ToolServiceStub
    _SERVICE = "statekeeper.v1.ToolService"

    def __init__(
        self,
        persistence: Any = "memory",
        cache_results: bool = True,
        cache_ttl: float | None = 3600,
        **connection: Any,
    ) -> None:
        super().__init__(persistence, **connection)
        self.cache_results = cache_results
        self.cache_ttl = cache_ttl

    async def _first(
        self,
        limit: int | None,
        method: str,
        request_class: Callable[..., Any],
        items: str,
        **fields: Any,
    ) -> list[Any]:
        """The first ``limit`` items (None: all) of a paginated list, asking for no more than
        are still wanted (at most ``_PAGE``) on each page."""
        found: list[Any] = []
        token = ""
        while limit is None or len(found) < limit:
            size = _PAGE if limit is None else min(limit - len(found), _PAGE)
            request = request_class(page_size=size, page_token=token, **fields)
            response = await self._call(method, request)
            found.extend(getattr(response, items))
            token = response.next_page_token
            if not token:
                break
        return found

    # -- executions -----------------------------------------------------------------------

    async def start_execution(self, execution: ToolExecution) -> ToolExecution:
        """Record a new execution (PENDING or RUNNING); returns it as stored, with its
        ``parameters_hash``. Raises AlreadyExistsError for a known execution id."""
        request = pb.StartExecutionRequest(
            execution=pb.ToolExecution(
                execution_id=execution.execution_id,
                tool_name=execution.tool_name,
                status=enum_to_number(execution.status, _STATUS),  # type: ignore[arg-type]
                started_at=to_timestamp(execution.started_at),
                parameters=values.document_to_wire(execution.parameters or {}),
                metadata=optional_wire(execution.metadata),
            ),
            value_encoding=MSGPACK,
        )
        response = await self._call("StartExecution", request)
        return _execution(response.execution)

    async def complete_execution(
        self, execution_id: str, result: Any = None, duration_ms: float | None = None
    ) -> ToolExecution:
        """Mark an execution COMPLETED with its result (``duration_ms`` defaults to the time
        since it started); with ``cache_results`` the result is also cached for
        ``cache_ttl`` seconds. Raises NotFoundError, or FailedPreconditionError when the
        execution has already ended."""
        request = pb.CompleteExecutionRequest(
            execution_id=execution_id,
            result=values.document_to_wire(result),
            duration=to_duration(None if duration_ms is None else duration_ms / 1000),
            cache_result=self.cache_results,
            cache_ttl=to_duration(self.cache_ttl) if self.cache_results else None,
            value_encoding=MSGPACK,
        )
        response = await self._call("CompleteExecution", request)
        return _execution(response.execution)

    async def fail_execution(
        self,
        execution_id: str,
        error: str,
        duration_ms: float | None = None,
        status: ToolExecutionStatus = ToolExecutionStatus.FAILED,
    ) -> ToolExecution:
        """Mark an execution FAILED (or TIMEOUT, or CANCELLED) with an error message."""
        request = pb.FailExecutionRequest(
            execution_id=execution_id,
            error=error,
            duration=to_duration(None if duration_ms is None else duration_ms / 1000),
            status=enum_to_number(status, _STATUS),  # type: ignore[arg-type]
            value_encoding=MSGPACK,
        )
        response = await self._call("FailExecution", request)
        return _execution(response.execution)

    async def get_execution(self, execution_id: str) -> ToolExecution | None:
        """One execution, or None when it is unknown."""
        try:
            response = await self._call(
                "GetExecution",
                pb.GetExecutionRequest(execution_id=execution_id, value_encoding=MSGPACK),
            )
        except NotFoundError:
            return None
        return _execution(response.execution)

    async def get_execution_history(self, tool_name: str, limit: int = 100) -> list[ToolExecution]:
        """The latest ``limit`` executions of a tool, newest first."""
        messages = await self._first(
            limit,
            "GetExecutionHistory",
            pb.GetExecutionHistoryRequest,
            "executions",
            tool_name=tool_name,
            value_encoding=MSGPACK,
        )
        return [_execution(m) for m in messages]

    # -- result cache -----------------------------------------------------------------------

    async def cache_result(self, entry: ToolCacheEntry) -> ToolCacheEntry:
        """Cache a result; returns the entry as stored (hash and expiry filled in)."""
        ttl = entry.ttl if entry.ttl is not None else self.cache_ttl
        request = pb.CacheResultRequest(
            entry=pb.ToolCacheEntry(
                tool_name=entry.tool_name,
                parameters_hash=entry.parameters_hash,
                result=values.document_to_wire(entry.result),
                created_at=to_timestamp(entry.created_at),
                ttl=to_duration(ttl),
            ),
            parameters=optional_wire(entry.parameters),
        )
        response = await self._call("CacheResult", request)
        return _cache_entry(response.entry, entry.parameters)

    async def get_cached_result(
        self,
        tool_name: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        parameters_hash: str | None = None,
    ) -> ToolCacheEntry | None:
        """The cached result for these parameters (or this explicit hash), or None on a miss;
        the lookup counts as a cache hit or miss in the tool's statistics."""
        request = pb.GetCachedResultRequest(
            tool_name=tool_name,
            parameters=optional_wire(None if parameters is None else dict(parameters)),
            parameters_hash=parameters_hash or "",
            value_encoding=MSGPACK,
        )
        response = await self._call("GetCachedResult", request)
        if not response.found:
            return None
        return _cache_entry(response.entry, None if parameters is None else dict(parameters))

    async def invalidate_cached_result(
        self,
        tool_name: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        parameters_hash: str | None = None,
    ) -> bool:
        """Remove a cached result; True when it existed."""
        request = pb.InvalidateCachedResultRequest(
            tool_name=tool_name,
            parameters=optional_wire(None if parameters is None else dict(parameters)),
            parameters_hash=parameters_hash or "",
        )
        response = await self._call("InvalidateCachedResult", request)
        return bool(response.deleted)

    # -- retries ----------------------------------------------------------------------------

    async def update_retry_state(self, retry_state: RetryState) -> RetryState:
        """Create or replace an execution's retry state; returns it as stored, with
        ``next_retry_at`` computed from the backoff when it was None."""
        request = pb.UpdateRetryStateRequest(
            retry_state=pb.RetryState(
                execution_id=retry_state.execution_id,
                tool_name=retry_state.tool_name,
                attempts=retry_state.attempts,
                max_attempts=retry_state.max_attempts,
                last_error=retry_state.last_error or "",
                next_retry_at=to_timestamp(retry_state.next_retry_at),
                backoff_factor=retry_state.backoff_factor,
                base_delay=to_duration(retry_state.base_delay),
                max_delay=to_duration(retry_state.max_delay),
                jitter=retry_state.jitter,
            )
        )
        response = await self._call("UpdateRetryState", request)
        return _retry(response.retry_state)

    async def get_retry_state(self, execution_id: str) -> RetryState | None:
        """An execution's retry state, or None."""
        try:
            response = await self._call(
                "GetRetryState", pb.GetRetryStateRequest(execution_id=execution_id)
            )
        except NotFoundError:
            return None
        return _retry(response.retry_state)

    async def clear_retry_state(self, execution_id: str) -> bool:
        """Remove an execution's retry state; True when it existed."""
        response = await self._call(
            "DeleteRetryState", pb.DeleteRetryStateRequest(execution_id=execution_id)
        )
        return bool(response.deleted)

    async def get_pending_retries(
        self, due_before: datetime | None = None, limit: int | None = None
    ) -> list[RetryState]:
        """The retries with attempts left (attempts < max_attempts), soonest ``next_retry_at``
        first; only those due at or before ``due_before`` when it is given."""
        messages = await self._first(
            limit,
            "GetPendingRetries",
            pb.GetPendingRetriesRequest,
            "retries",
            due_before=to_timestamp(due_before),
        )
        return [_retry(m) for m in messages]

    # -- statistics -------------------------------------------------------------------------

    async def get_tool_stats(self, tool_name: str) -> ToolStats:
        """The statistics of one tool (all zero when it has no activity)."""
        response = await self._call("GetToolStats", pb.GetToolStatsRequest(tool_name=tool_name))
        stats = response.stats
        return ToolStats(
            tool_name=stats.tool_name,
            total_executions=stats.total_executions,
            successful_executions=stats.successful_executions,
            failed_executions=stats.failed_executions,
            success_rate=stats.success_rate,
            error_rate=stats.error_rate,
            avg_duration_ms=from_duration(stats.average_duration) * 1000,
            cache_hits=stats.cache_hits,
            cache_misses=stats.cache_misses,
            cache_hit_rate=stats.cache_hit_rate,
            last_execution_at=optional_datetime(stats, "last_execution_at"),
            running_executions=stats.running_executions,
        )


__all__ = [
    "RetryState",
    "ToolCacheEntry",
    "ToolExecution",
    "ToolExecutionStatus",
    "ToolStateManager",
    "ToolStats",
]
