"""The WorkflowService servicer: validate the request, call the WorkflowEngine, build the
response."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from statekeeper.timestamps import clamped_timestamp
from statekeeper.v1 import workflow_service_pb2 as pb
from statekeeper.v1 import workflow_service_pb2_grpc

from statekeeper_server.engine.domains.workflows import WatchBatch, WorkflowChange, WorkflowEngine
from statekeeper_server.servicers.batching import field_bytes, pieces, responses_of
from statekeeper_server.servicers.convert import (
    document_to_wire,
    enum_suffix,
    optional_document,
    optional_revision,
    optional_unix,
    revision_watch,
    ttl_seconds,
)

if TYPE_CHECKING:
    from statekeeper_server.core import Core

#: How often an idle watch stream reports progress unless the request says otherwise.
DEFAULT_PROGRESS_INTERVAL = 10.0


def status_name(status: int) -> str:
    """The engine's name of a WorkflowStatus value ("" for UNSPECIFIED)."""
    return enum_suffix(pb.WorkflowStatus, status, "status")


def status_value(name: str) -> str:
    """The WorkflowStatus (enum value name) of an engine status name."""
    return "WORKFLOW_STATUS_" + (name or "UNSPECIFIED")


def step_from_proto(step: pb.StepState) -> dict[str, Any]:
    """The engine's form of a requested step."""
    status = enum_suffix(pb.StepStatus, step.status, "step.status")
    return {
        "step_number": step.step_number,
        "name": step.name,
        "status": status,
        "result": optional_document(step, "result", "step.result"),
        "duration_ms": step.duration_ms,
        "error": step.error,
    }


def step_to_proto(step: dict[str, Any], encoding: int) -> pb.StepState:
    """A StepState message for a stored step."""
    message = pb.StepState(
        step_number=step["step_number"],
        name=step["name"],
        status="STEP_STATUS_" + step["status"],
        duration_ms=step["duration_ms"],
        error=step["error"],
        timestamp=clamped_timestamp(step["timestamp"]),
        sequence=step["sequence"],
        superseded=bool(step.get("superseded")),
    )
    if step.get("result") is not None:
        message.result.CopyFrom(document_to_wire(step["result"], encoding))
    return message


def resume_to_proto(resume: dict[str, Any]) -> pb.WorkflowResume:
    """A WorkflowResume message."""
    return pb.WorkflowResume(
        checkpoint_id=resume["checkpoint_id"],
        step=resume["step"],
        timestamp=clamped_timestamp(resume["timestamp"]),
        history_sequence=resume["history_sequence"],
    )


def workflow_to_proto(record: dict[str, Any], encoding: int) -> pb.WorkflowState:
    """A WorkflowState message for a workflow record (with its steps when loaded)."""
    message = pb.WorkflowState(
        workflow_id=record["workflow_id"],
        status=status_value(record["status"]),
        total_steps=record["total_steps"],
        current_step=record["current_step"],
        steps=[step_to_proto(s, encoding) for s in record.get("steps", [])],
        resumes=[resume_to_proto(r) for r in record["resumes"]],
        cancel_reason=record["cancel_reason"],
        error=record["error"],
        checkpoint_interval=record["checkpoint_interval"],
        keep_checkpoints=record["keep_checkpoints"],
        create_time=clamped_timestamp(record["created"]),
        update_time=clamped_timestamp(record["updated"]),
        revision=record.get("revision", 0),
    )
    for name in ("context", "state", "metadata"):
        if record.get(name) is not None:
            getattr(message, name).CopyFrom(document_to_wire(record[name], encoding))
    return message


def checkpoint_to_proto(record: dict[str, Any], encoding: int) -> pb.WorkflowCheckpoint:
    """A WorkflowCheckpoint message for a stored checkpoint."""
    message = pb.WorkflowCheckpoint(
        workflow_id=record["workflow_id"],
        checkpoint_id=record["checkpoint_id"],
        step=record["step"],
        timestamp=clamped_timestamp(record["timestamp"]),
        automatic=bool(record.get("automatic")),
        sequence=record["sequence"],
    )
    for name in ("state", "context"):
        if record.get(name) is not None:
            getattr(message, name).CopyFrom(document_to_wire(record[name], encoding))
    return message


def sized_event(change: WorkflowChange, encoding: int) -> tuple[int, pb.WorkflowEvent, int]:
    """(revision, WorkflowEvent, size in a response) of one change."""
    message = change_to_proto(change, encoding)
    return change.revision, message, field_bytes(message.ByteSize())


def change_to_proto(change: WorkflowChange, encoding: int) -> pb.WorkflowEvent:
    """A WorkflowEvent message for one change."""
    message = pb.WorkflowEvent(
        type="WORKFLOW_EVENT_TYPE_" + change.kind,
        status=status_value(change.status),
        previous_status=status_value(change.previous_status),
        checkpoint_id=change.checkpoint_id,
        revision=change.revision,
    )
    if change.step is not None:
        message.step.CopyFrom(step_to_proto(change.step, encoding))
    return message


class WorkflowServicer(workflow_service_pb2_grpc.WorkflowServiceServicer):
    """gRPC front of :class:`~statekeeper_server.engine.domains.workflows.WorkflowEngine`."""

    def __init__(self, runtime: Core) -> None:
        self.runtime = runtime
        self.engine = WorkflowEngine(runtime.backend, runtime.limits)

    async def CreateWorkflow(
        self, request: pb.CreateWorkflowRequest, context: object
    ) -> pb.CreateWorkflowResponse:
        """Create a workflow."""
        wf = request.workflow
        record = await self.engine.create(
            {
                "workflow_id": wf.workflow_id,
                "status": status_name(wf.status),
                "total_steps": wf.total_steps,
                "current_step": wf.current_step,
                "context": optional_document(wf, "context", "workflow.context"),
                "state": optional_document(wf, "state", "workflow.state"),
                "metadata": optional_document(wf, "metadata", "workflow.metadata"),
                "checkpoint_interval": wf.checkpoint_interval,
                "keep_checkpoints": wf.keep_checkpoints,
            }
        )
        return pb.CreateWorkflowResponse(workflow=workflow_to_proto(record, 0))

    async def GetWorkflow(
        self, request: pb.GetWorkflowRequest, context: object
    ) -> pb.GetWorkflowResponse:
        """Read a workflow."""
        record = await self.engine.get(request.workflow_id, request.include_steps)
        return pb.GetWorkflowResponse(workflow=workflow_to_proto(record, request.value_encoding))

    async def GetWorkflowStatus(
        self, request: pb.GetWorkflowStatusRequest, context: object
    ) -> pb.GetWorkflowStatusResponse:
        """Read a workflow's status."""
        status = await self.engine.status(request.workflow_id)
        return pb.GetWorkflowStatusResponse(status=status_value(status))

    async def ListWorkflows(
        self, request: pb.ListWorkflowsRequest, context: object
    ) -> pb.ListWorkflowsResponse:
        """One page of workflows."""
        records, token = await self.engine.list_workflows(
            status_name(request.status), request.page_size, request.page_token
        )
        return pb.ListWorkflowsResponse(
            workflows=[workflow_to_proto(r, request.value_encoding) for r in records],
            next_page_token=token,
        )

    async def UpdateStep(
        self, request: pb.UpdateStepRequest, context: object
    ) -> pb.UpdateStepResponse:
        """Record a step update."""
        step, record, checkpoint_id = await self.engine.update_step(
            request.workflow_id,
            step_from_proto(request.step),
            optional_document(request, "state_patch", "state_patch"),
            optional_document(request, "context_patch", "context_patch"),
        )
        return pb.UpdateStepResponse(
            step=step_to_proto(step, request.value_encoding),
            status=status_value(record["status"]),
            current_step=record["current_step"],
            checkpoint_id=checkpoint_id,
        )

    async def _transition(self, workflow_id: str, operation: str, **options: Any) -> Any:
        record = await self.engine.transition(workflow_id, operation, **options)
        return status_value(record["status"])

    async def StartWorkflow(
        self, request: pb.StartWorkflowRequest, context: object
    ) -> pb.StartWorkflowResponse:
        """PENDING to RUNNING."""
        return pb.StartWorkflowResponse(status=await self._transition(request.workflow_id, "start"))

    async def PauseWorkflow(
        self, request: pb.PauseWorkflowRequest, context: object
    ) -> pb.PauseWorkflowResponse:
        """RUNNING to PAUSED."""
        status = await self._transition(
            request.workflow_id, "pause", expected_revision=optional_revision(request)
        )
        return pb.PauseWorkflowResponse(status=status)

    async def ResumeWorkflow(
        self, request: pb.ResumeWorkflowRequest, context: object
    ) -> pb.ResumeWorkflowResponse:
        """PAUSED to RUNNING."""
        status = await self._transition(
            request.workflow_id, "resume", expected_revision=optional_revision(request)
        )
        return pb.ResumeWorkflowResponse(status=status)

    async def CancelWorkflow(
        self, request: pb.CancelWorkflowRequest, context: object
    ) -> pb.CancelWorkflowResponse:
        """To CANCELLED, with a reason."""
        status = await self._transition(
            request.workflow_id,
            "cancel",
            reason=request.reason,
            expected_revision=optional_revision(request),
        )
        return pb.CancelWorkflowResponse(status=status)

    async def CompleteWorkflow(
        self, request: pb.CompleteWorkflowRequest, context: object
    ) -> pb.CompleteWorkflowResponse:
        """RUNNING to COMPLETED."""
        patch = optional_document(request, "state_patch", "state_patch")
        status = await self._transition(request.workflow_id, "complete", state_patch=patch)
        return pb.CompleteWorkflowResponse(status=status)

    async def FailWorkflow(
        self, request: pb.FailWorkflowRequest, context: object
    ) -> pb.FailWorkflowResponse:
        """To FAILED, with an error."""
        status = await self._transition(request.workflow_id, "fail", error=request.error)
        return pb.FailWorkflowResponse(status=status)

    async def CreateCheckpoint(
        self, request: pb.CreateCheckpointRequest, context: object
    ) -> pb.CreateCheckpointResponse:
        """Store a checkpoint."""
        ckpt = request.checkpoint
        stored = await self.engine.checkpoint(
            {
                "workflow_id": ckpt.workflow_id,
                "checkpoint_id": ckpt.checkpoint_id,
                "step": ckpt.step,
                "state": optional_document(ckpt, "state", "checkpoint.state"),
                "context": optional_document(ckpt, "context", "checkpoint.context"),
                "timestamp": optional_unix(ckpt, "timestamp"),
            }
        )
        return pb.CreateCheckpointResponse(
            sequence=stored["sequence"], timestamp=clamped_timestamp(stored["timestamp"])
        )

    async def GetWorkflowCheckpoint(
        self, request: pb.GetWorkflowCheckpointRequest, context: object
    ) -> pb.GetWorkflowCheckpointResponse:
        """Read one checkpoint, or the newest."""
        record = await self.engine.get_checkpoint(request.workflow_id, request.checkpoint_id)
        return pb.GetWorkflowCheckpointResponse(
            checkpoint=checkpoint_to_proto(record, request.value_encoding)
        )

    async def ListWorkflowCheckpoints(
        self, request: pb.ListWorkflowCheckpointsRequest, context: object
    ) -> pb.ListWorkflowCheckpointsResponse:
        """One page of checkpoints, newest first."""
        records, token = await self.engine.list_checkpoints(
            request.workflow_id, request.page_size, request.page_token
        )
        return pb.ListWorkflowCheckpointsResponse(
            checkpoints=[checkpoint_to_proto(r, request.value_encoding) for r in records],
            next_page_token=token,
        )

    async def ResumeFromCheckpoint(
        self, request: pb.ResumeFromCheckpointRequest, context: object
    ) -> pb.ResumeFromCheckpointResponse:
        """Restore a checkpoint and run again."""
        resume, record = await self.engine.resume_from(request.workflow_id, request.checkpoint_id)
        return pb.ResumeFromCheckpointResponse(
            resume=resume_to_proto(resume), status=status_value(record["status"])
        )

    async def DeleteWorkflow(
        self, request: pb.DeleteWorkflowRequest, context: object
    ) -> pb.DeleteWorkflowResponse:
        """Remove a workflow with its steps and checkpoints."""
        deleted, revision = await self.engine.delete(
            request.workflow_id, request.force, optional_revision(request)
        )
        return pb.DeleteWorkflowResponse(deleted=deleted, revision=revision)

    async def WatchWorkflow(
        self, request: pb.WatchWorkflowRequest, context: object
    ) -> AsyncIterator[pb.WatchWorkflowResponse]:
        """Stream a workflow's changes."""
        interval = ttl_seconds(request, "progress_interval") or DEFAULT_PROGRESS_INTERVAL
        updates = self.engine.watch(request.workflow_id, request.start_revision, interval)

        limit = self.runtime.limits.max_message_bytes

        def to_responses(batch: WatchBatch, first: bool) -> Iterator[pb.WatchWorkflowResponse]:
            if first or not batch.changes:
                yield pb.WatchWorkflowResponse(created=first, revision=batch.revision)
                return
            events = (sized_event(c, request.value_encoding) for c in batch.changes)
            for piece in pieces(events, batch.revision, limit, fragments=False):
                yield pb.WatchWorkflowResponse(revision=piece.revision, events=piece.items)

        async for response in revision_watch(
            self.runtime, responses_of(updates, to_responses), pb.WatchWorkflowResponse
        ):
            yield response
