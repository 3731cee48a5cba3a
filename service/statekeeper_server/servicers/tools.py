"""The ToolService servicer: validate the request, call the ToolEngine, build the response."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from statekeeper import values
from statekeeper.timestamps import clamped_duration, clamped_timestamp, from_duration
from statekeeper.v1 import common_pb2, tool_service_pb2_grpc
from statekeeper.v1 import tool_service_pb2 as pb

from statekeeper_server.engine.domains.tools import ToolEngine
from statekeeper_server.servicers.convert import (
    document_to_wire,
    optional_document,
    optional_unix,
    ttl_seconds,
)

if TYPE_CHECKING:
    from statekeeper_server.core import Core


def optional_seconds(message: Any, field: str) -> float | None:
    """A Duration field in seconds, or None when unset."""
    return from_duration(getattr(message, field)) if message.HasField(field) else None


def execution_to_proto(record: dict[str, Any], encoding: int) -> pb.ToolExecution:
    """A ToolExecution message for an execution record."""
    message = pb.ToolExecution(
        execution_id=record["execution_id"],
        tool_name=record["tool_name"],
        status=record["status"],
        started_at=clamped_timestamp(record["started_at"]),
        parameters=document_to_wire(record["parameters"], encoding),
        parameters_hash=record["parameters_hash"],
        error=record["error"],
    )
    if record["completed_at"] is not None:
        message.completed_at.CopyFrom(clamped_timestamp(record["completed_at"]))
        message.result.CopyFrom(document_to_wire(record["result"], encoding))
    if record["duration"] is not None:
        message.duration.FromNanoseconds(round(record["duration"] * 1e9))
    if record["metadata"] is not None:
        message.metadata.CopyFrom(document_to_wire(record["metadata"], encoding))
    return message


def cache_to_proto(record: dict[str, Any], encoding: int) -> pb.ToolCacheEntry:
    """A ToolCacheEntry message for a cache record."""
    message = pb.ToolCacheEntry(
        tool_name=record["tool_name"],
        parameters_hash=record["parameters_hash"],
        result=document_to_wire(record["result"], encoding),
        created_at=clamped_timestamp(record["created_at"]),
    )
    if record["ttl"] is not None:
        message.ttl.FromNanoseconds(round(record["ttl"] * 1e9))
    if record.get("expire_at") is not None:
        message.expire_time.CopyFrom(clamped_timestamp(record["expire_at"]))
    return message


def retry_to_proto(record: dict[str, Any]) -> pb.RetryState:
    """A RetryState message for a retry record."""
    return pb.RetryState(
        execution_id=record["execution_id"],
        tool_name=record["tool_name"],
        attempts=record["attempts"],
        max_attempts=record["max_attempts"],
        last_error=record["last_error"],
        next_retry_at=clamped_timestamp(record["next_retry_at"]),
        backoff_factor=record["backoff_factor"],
        base_delay=clamped_duration(record["base_delay"]),
        max_delay=clamped_duration(record["max_delay"]),
        jitter=record["jitter"],
        updated_at=clamped_timestamp(record["updated_at"]),
    )


def stats_to_proto(tool_name: str, totals: dict[str, Any]) -> pb.ToolStats:
    """A ToolStats message for summed counters: every started execution counts in
    ``total_executions``; the rates and the mean duration are over the ended ones."""
    ended = totals["ok"] + totals["err"]
    lookups = totals["hits"] + totals["misses"]
    message = pb.ToolStats(
        tool_name=tool_name,
        total_executions=totals["started"],
        successful_executions=totals["ok"],
        failed_executions=totals["err"],
        success_rate=totals["ok"] / ended if ended else 0.0,
        error_rate=totals["err"] / ended if ended else 0.0,
        average_duration=clamped_duration(totals["dur_us"] / ended / 1e6 if ended else 0.0),
        running_executions=totals["started"] - ended,
        cache_hits=totals["hits"],
        cache_misses=totals["misses"],
        cache_hit_rate=totals["hits"] / lookups if lookups else 0.0,
    )
    if totals["last"] is not None:
        message.last_execution_at.CopyFrom(clamped_timestamp(totals["last"]))
    return message


class ToolServicer(tool_service_pb2_grpc.ToolServiceServicer):
    """gRPC front of :class:`~statekeeper_server.engine.domains.tools.ToolEngine`."""

    def __init__(self, runtime: Core) -> None:
        self.runtime = runtime
        self.engine = ToolEngine(runtime.backend, runtime.limits)

    async def StartExecution(
        self, request: pb.StartExecutionRequest, context: object
    ) -> pb.StartExecutionResponse:
        """Record a new execution."""
        execution = request.execution
        record = await self.engine.start_execution(
            execution_id=execution.execution_id,
            tool_name=execution.tool_name,
            status=execution.status,
            started_at=optional_unix(execution, "started_at"),
            parameters=optional_document(execution, "parameters", "execution.parameters"),
            metadata=optional_document(execution, "metadata", "execution.metadata"),
        )
        return pb.StartExecutionResponse(
            execution=execution_to_proto(record, request.value_encoding)
        )

    async def CompleteExecution(
        self, request: pb.CompleteExecutionRequest, context: object
    ) -> pb.CompleteExecutionResponse:
        """Complete an execution with its result."""
        record = await self.engine.complete_execution(
            request.execution_id,
            optional_document(request, "result", "result"),
            optional_seconds(request, "duration"),
            cache=request.cache_result,
            cache_ttl=ttl_seconds(request, "cache_ttl"),
        )
        return pb.CompleteExecutionResponse(
            execution=execution_to_proto(record, request.value_encoding)
        )

    async def FailExecution(
        self, request: pb.FailExecutionRequest, context: object
    ) -> pb.FailExecutionResponse:
        """Fail an execution with an error."""
        record = await self.engine.fail_execution(
            request.execution_id,
            request.error,
            optional_seconds(request, "duration"),
            request.status,
        )
        return pb.FailExecutionResponse(
            execution=execution_to_proto(record, request.value_encoding)
        )

    async def GetExecution(
        self, request: pb.GetExecutionRequest, context: object
    ) -> pb.GetExecutionResponse:
        """Read one execution."""
        record = await self.engine.get_execution(request.execution_id)
        return pb.GetExecutionResponse(execution=execution_to_proto(record, request.value_encoding))

    async def GetExecutionHistory(
        self, request: pb.GetExecutionHistoryRequest, context: object
    ) -> pb.GetExecutionHistoryResponse:
        """One page of a tool's executions, newest first."""
        page = await self.engine.execution_history(
            request.tool_name, request.page_size, request.page_token
        )
        return pb.GetExecutionHistoryResponse(
            executions=[execution_to_proto(r, request.value_encoding) for r in page.records],
            next_page_token=page.next_page_token,
        )

    async def CacheResult(
        self, request: pb.CacheResultRequest, context: object
    ) -> pb.CacheResultResponse:
        """Store a result in the cache."""
        entry = request.entry
        result = values.wire_to_document(entry.result, "entry.result")  # required
        record = await self.engine.cache_result(
            tool_name=entry.tool_name,
            parameters=optional_document(request, "parameters", "parameters"),
            parameters_hash=entry.parameters_hash,
            result=result,
            created_at=optional_unix(entry, "created_at"),
            ttl=optional_seconds(entry, "ttl"),
        )
        # The result comes back in the form it was sent in.
        msgpack = entry.result.WhichOneof("kind") == "msgpack"
        encoding = common_pb2.VALUE_ENCODING_MSGPACK if msgpack else common_pb2.VALUE_ENCODING_JSON
        return pb.CacheResultResponse(entry=cache_to_proto(record, encoding))

    async def GetCachedResult(
        self, request: pb.GetCachedResultRequest, context: object
    ) -> pb.GetCachedResultResponse:
        """Look a cached result up, counting a hit or a miss."""
        record = await self.engine.get_cached_result(
            request.tool_name,
            optional_document(request, "parameters", "parameters"),
            request.parameters_hash,
        )
        if record is None:
            return pb.GetCachedResultResponse(found=False)
        return pb.GetCachedResultResponse(
            found=True, entry=cache_to_proto(record, request.value_encoding)
        )

    async def InvalidateCachedResult(
        self, request: pb.InvalidateCachedResultRequest, context: object
    ) -> pb.InvalidateCachedResultResponse:
        """Remove one cached result."""
        deleted = await self.engine.invalidate_cached_result(
            request.tool_name,
            optional_document(request, "parameters", "parameters"),
            request.parameters_hash,
        )
        return pb.InvalidateCachedResultResponse(deleted=deleted)

    async def UpdateRetryState(
        self, request: pb.UpdateRetryStateRequest, context: object
    ) -> pb.UpdateRetryStateResponse:
        """Create or replace a retry state."""
        state = request.retry_state
        record = await self.engine.update_retry_state(
            execution_id=state.execution_id,
            tool_name=state.tool_name,
            attempts=state.attempts,
            max_attempts=state.max_attempts,
            last_error=state.last_error,
            next_retry_at=optional_unix(state, "next_retry_at"),
            backoff_factor=state.backoff_factor,
            base_delay=optional_seconds(state, "base_delay"),
            max_delay=optional_seconds(state, "max_delay"),
            jitter=state.jitter,
        )
        return pb.UpdateRetryStateResponse(retry_state=retry_to_proto(record))

    async def GetRetryState(
        self, request: pb.GetRetryStateRequest, context: object
    ) -> pb.GetRetryStateResponse:
        """Read one retry state."""
        record = await self.engine.get_retry_state(request.execution_id)
        return pb.GetRetryStateResponse(retry_state=retry_to_proto(record))

    async def DeleteRetryState(
        self, request: pb.DeleteRetryStateRequest, context: object
    ) -> pb.DeleteRetryStateResponse:
        """Remove one retry state."""
        deleted = await self.engine.delete_retry_state(request.execution_id)
        return pb.DeleteRetryStateResponse(deleted=deleted)

    async def GetPendingRetries(
        self, request: pb.GetPendingRetriesRequest, context: object
    ) -> pb.GetPendingRetriesResponse:
        """One page of pending retries, soonest first."""
        page = await self.engine.pending_retries(
            optional_unix(request, "due_before"), request.page_size, request.page_token
        )
        return pb.GetPendingRetriesResponse(
            retries=[retry_to_proto(r) for r in page.records],
            next_page_token=page.next_page_token,
        )

    async def GetToolStats(
        self, request: pb.GetToolStatsRequest, context: object
    ) -> pb.GetToolStatsResponse:
        """The statistics of one tool."""
        totals = await self.engine.tool_stats(request.tool_name)
        return pb.GetToolStatsResponse(stats=stats_to_proto(request.tool_name, totals))
