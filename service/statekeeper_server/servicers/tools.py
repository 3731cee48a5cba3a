"""The ToolService servicer: validate the request, call the ToolEngine, build the response."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from statekeeper import values
from statekeeper.messages import from_message, read_field, to_message
from statekeeper.v1 import common_pb2, tool_service_pb2_grpc
from statekeeper.v1 import tool_service_pb2 as pb

from statekeeper_server.engine.domains.tools import ToolEngine
from statekeeper_server.engine.domains.tools_records import (
    RetryState,
    ToolCacheEntry,
    ToolExecution,
    ToolExecutionStatus,
)
from statekeeper_server.servicers.convert import (
    document_to_wire,
    optional_document,
    optional_seconds,
)

if TYPE_CHECKING:
    from statekeeper_server.core import Core


def _execution(record: ToolExecution, encoding: int) -> pb.ToolExecution:
    """The message of an execution; an ended execution always carries its result (a null
    document when there is none)."""
    message = to_message(record, pb.ToolExecution, encoding=encoding)
    if record.completed_at is not None and record.result is None:
        message.result.CopyFrom(document_to_wire(None, encoding))
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
        record = await self.engine.start_execution(from_message(request.execution, ToolExecution))
        return pb.StartExecutionResponse(execution=_execution(record, request.value_encoding))

    async def CompleteExecution(
        self, request: pb.CompleteExecutionRequest, context: object
    ) -> pb.CompleteExecutionResponse:
        """Complete an execution with its result."""
        record = await self.engine.complete_execution(
            request.execution_id,
            optional_document(request, "result", "result"),
            read_field(request, "duration", float),
            cache=request.cache_result,
            cache_ttl=optional_seconds(request, "cache_ttl"),
        )
        return pb.CompleteExecutionResponse(execution=_execution(record, request.value_encoding))

    async def FailExecution(
        self, request: pb.FailExecutionRequest, context: object
    ) -> pb.FailExecutionResponse:
        """Fail an execution with an error."""
        record = await self.engine.fail_execution(
            request.execution_id,
            request.error,
            read_field(request, "duration", float),
            read_field(request, "status", ToolExecutionStatus),
        )
        return pb.FailExecutionResponse(execution=_execution(record, request.value_encoding))

    async def GetExecution(
        self, request: pb.GetExecutionRequest, context: object
    ) -> pb.GetExecutionResponse:
        """Read one execution."""
        record = await self.engine.get_execution(request.execution_id)
        return pb.GetExecutionResponse(execution=_execution(record, request.value_encoding))

    async def GetExecutionHistory(
        self, request: pb.GetExecutionHistoryRequest, context: object
    ) -> pb.GetExecutionHistoryResponse:
        """One page of a tool's executions, newest first."""
        page = await self.engine.execution_history(
            request.tool_name, request.page_size, request.page_token
        )
        return pb.GetExecutionHistoryResponse(
            executions=[_execution(r, request.value_encoding) for r in page.records],
            next_page_token=page.next_page_token,
        )

    async def CacheResult(
        self, request: pb.CacheResultRequest, context: object
    ) -> pb.CacheResultResponse:
        """Store a result in the cache."""
        entry = request.entry
        result = values.wire_to_document(entry.result, "entry.result")  # required
        record = await self.engine.cache_result(
            replace(from_message(entry, ToolCacheEntry), result=result),
            optional_document(request, "parameters", "parameters"),
        )
        # The result comes back in the form it was sent in.
        msgpack = entry.result.WhichOneof("kind") == "msgpack"
        encoding = common_pb2.VALUE_ENCODING_MSGPACK if msgpack else common_pb2.VALUE_ENCODING_JSON
        return pb.CacheResultResponse(
            entry=to_message(record, pb.ToolCacheEntry, encoding=encoding)
        )

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
            found=True,
            entry=to_message(record, pb.ToolCacheEntry, encoding=request.value_encoding),
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
        record = await self.engine.update_retry_state(from_message(request.retry_state, RetryState))
        return pb.UpdateRetryStateResponse(retry_state=to_message(record, pb.RetryState))

    async def GetRetryState(
        self, request: pb.GetRetryStateRequest, context: object
    ) -> pb.GetRetryStateResponse:
        """Read one retry state."""
        record = await self.engine.get_retry_state(request.execution_id)
        return pb.GetRetryStateResponse(retry_state=to_message(record, pb.RetryState))

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
            read_field(request, "due_before", float), request.page_size, request.page_token
        )
        return pb.GetPendingRetriesResponse(
            retries=[to_message(r, pb.RetryState) for r in page.records],
            next_page_token=page.next_page_token,
        )

    async def GetToolStats(
        self, request: pb.GetToolStatsRequest, context: object
    ) -> pb.GetToolStatsResponse:
        """The statistics of one tool."""
        stats = await self.engine.tool_stats(request.tool_name)
        return pb.GetToolStatsResponse(stats=to_message(stats, pb.ToolStats))
