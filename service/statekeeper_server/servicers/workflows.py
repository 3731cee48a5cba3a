"""The WorkflowService servicer: convert the request, call the WorkflowEngine, build the
response (every record converts through :mod:`statekeeper.messages`, documents in the
requested encoding)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from statekeeper.errors import Reason, ResourceExhaustedError
from statekeeper.messages import (
    enum_from_number,
    enum_to_number,
    from_message,
    to_message,
)
from statekeeper.timestamps import clamped_timestamp
from statekeeper.v1 import workflow_service_pb2 as pb
from statekeeper.v1 import workflow_service_pb2_grpc

from statekeeper_server.engine.domains.workflows import (
    StepState,
    WatchBatch,
    WorkflowCheckpoint,
    WorkflowEngine,
    WorkflowEvent,
    WorkflowState,
    WorkflowStatus,
)
from statekeeper_server.servicers.batching import field_bytes, pieces, responses_of
from statekeeper_server.servicers.convert import (
    optional_document,
    optional_revision,
    optional_seconds,
    revision_watch,
)

if TYPE_CHECKING:
    from statekeeper_server.core import Core

STATUS = pb.WorkflowStatus.DESCRIPTOR


def _status(status: WorkflowStatus | None) -> Any:
    """The WorkflowStatus number of an engine status (UNSPECIFIED for None)."""
    return enum_to_number(status, STATUS) if status is not None else 0


def sized_event(change: WorkflowEvent, encoding: int) -> tuple[int, pb.WorkflowEvent, int]:
    """(revision, WorkflowEvent, size in a response) of one change."""
    message = to_message(change, pb.WorkflowEvent, encoding=encoding)
    return change.revision, message, field_bytes(message.ByteSize())


def _too_large(record: WorkflowState, size: int, limit: int) -> ResourceExhaustedError:
    """The error of a GetWorkflow whose history does not fit one response message."""
    return ResourceExhaustedError(
        f"workflow {record.workflow_id!r} with {len(record.steps)} steps is {size} bytes, over "
        f"the {limit}-byte message limit: call GetWorkflow with include_steps=false and page "
        "the steps with ListWorkflowSteps",
        reason=Reason.RESPONSE_TOO_LARGE,
        metadata={
            "workflow_id": record.workflow_id,
            "steps": str(len(record.steps)),
            "bytes": str(size),
            "limit": str(limit),
        },
    )


class WorkflowServicer(workflow_service_pb2_grpc.WorkflowServiceServicer):
    """gRPC front of :class:`~statekeeper_server.engine.domains.workflows.WorkflowEngine`."""

    def __init__(self, runtime: Core) -> None:
        self.runtime = runtime
        self.engine = WorkflowEngine(runtime.backend, runtime.limits)

    async def CreateWorkflow(
        self, request: pb.CreateWorkflowRequest, context: object
    ) -> pb.CreateWorkflowResponse:
        """Create a workflow."""
        workflow = from_message(request.workflow, WorkflowState, field="workflow")
        record = await self.engine.create(workflow)
        return pb.CreateWorkflowResponse(workflow=to_message(record, pb.WorkflowState, encoding=0))

    async def GetWorkflow(
        self, request: pb.GetWorkflowRequest, context: object
    ) -> pb.GetWorkflowResponse:
        """Read a workflow."""
        record = await self.engine.get(request.workflow_id, request.include_steps)
        response = pb.GetWorkflowResponse(
            workflow=to_message(record, pb.WorkflowState, encoding=request.value_encoding)
        )
        limit = self.runtime.limits.max_message_bytes
        if response.ByteSize() > limit:
            raise _too_large(record, response.ByteSize(), limit)
        return response

    async def ListWorkflowSteps(
        self, request: pb.ListWorkflowStepsRequest, context: object
    ) -> pb.ListWorkflowStepsResponse:
        """One page of a workflow's step history, newest first."""
        steps, token = await self.engine.list_steps(
            request.workflow_id, request.page_size, request.page_token
        )
        return pb.ListWorkflowStepsResponse(
            steps=[to_message(s, pb.StepState, encoding=request.value_encoding) for s in steps],
            next_page_token=token,
        )

    async def GetWorkflowStatus(
        self, request: pb.GetWorkflowStatusRequest, context: object
    ) -> pb.GetWorkflowStatusResponse:
        """Read a workflow's status."""
        status = await self.engine.status(request.workflow_id)
        return pb.GetWorkflowStatusResponse(status=_status(status))

    async def ListWorkflows(
        self, request: pb.ListWorkflowsRequest, context: object
    ) -> pb.ListWorkflowsResponse:
        """One page of workflows."""
        records, token = await self.engine.list_workflows(
            enum_from_number(request.status, STATUS, WorkflowStatus),
            request.page_size,
            request.page_token,
        )
        return pb.ListWorkflowsResponse(
            workflows=[
                to_message(r, pb.WorkflowState, encoding=request.value_encoding) for r in records
            ],
            next_page_token=token,
        )

    async def UpdateStep(
        self, request: pb.UpdateStepRequest, context: object
    ) -> pb.UpdateStepResponse:
        """Record a step update."""
        update = await self.engine.update_step(
            request.workflow_id,
            from_message(request.step, StepState, field="step"),
            optional_document(request, "state_patch", "state_patch"),
            optional_document(request, "context_patch", "context_patch"),
        )
        return to_message(update, pb.UpdateStepResponse, encoding=request.value_encoding)

    async def _transition(self, workflow_id: str, operation: str, **options: Any) -> Any:
        record = await self.engine.transition(workflow_id, operation, **options)
        return _status(record.status)

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
        wanted = from_message(request.checkpoint, WorkflowCheckpoint, field="checkpoint")
        stored = await self.engine.checkpoint(wanted)
        return pb.CreateCheckpointResponse(
            sequence=stored.sequence, timestamp=clamped_timestamp(stored.timestamp or 0.0)
        )

    async def GetWorkflowCheckpoint(
        self, request: pb.GetWorkflowCheckpointRequest, context: object
    ) -> pb.GetWorkflowCheckpointResponse:
        """Read one checkpoint, or the newest."""
        record = await self.engine.get_checkpoint(request.workflow_id, request.checkpoint_id)
        return pb.GetWorkflowCheckpointResponse(
            checkpoint=to_message(record, pb.WorkflowCheckpoint, encoding=request.value_encoding)
        )

    async def ListWorkflowCheckpoints(
        self, request: pb.ListWorkflowCheckpointsRequest, context: object
    ) -> pb.ListWorkflowCheckpointsResponse:
        """One page of checkpoints, newest first."""
        records, token = await self.engine.list_checkpoints(
            request.workflow_id, request.page_size, request.page_token
        )
        return pb.ListWorkflowCheckpointsResponse(
            checkpoints=[
                to_message(r, pb.WorkflowCheckpoint, encoding=request.value_encoding)
                for r in records
            ],
            next_page_token=token,
        )

    async def ResumeFromCheckpoint(
        self, request: pb.ResumeFromCheckpointRequest, context: object
    ) -> pb.ResumeFromCheckpointResponse:
        """Restore a checkpoint and run again."""
        resume, record = await self.engine.resume_from(request.workflow_id, request.checkpoint_id)
        return pb.ResumeFromCheckpointResponse(
            resume=to_message(resume, pb.WorkflowResume), status=_status(record.status)
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
        interval = optional_seconds(request, "progress_interval")
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
