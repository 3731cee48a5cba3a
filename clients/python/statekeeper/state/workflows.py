"""``WorkflowStateManager``, ``WorkflowState``, ``WorkflowStatus``, ``StepState`` and
``WorkflowCheckpoint``: workflow execution state with steps, checkpoints and pause/resume.

The status is a state machine kept by the server::

    PENDING -> RUNNING            start(), or the first update_step()
    RUNNING -> PAUSED             pause()
    PAUSED  -> RUNNING            resume()
    RUNNING -> COMPLETED          complete()
    RUNNING | PAUSED -> FAILED    fail()
    PENDING | RUNNING | PAUSED -> CANCELLED   cancel(reason=...)
    any but COMPLETED / CANCELLED -> RUNNING  resume_from(checkpoint)

An illegal transition raises FailedPreconditionError (reason INVALID_WORKFLOW_TRANSITION) and
changes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from statekeeper.errors import NotFoundError
from statekeeper.messages import enum_from_number, enum_to_number, from_message, to_message
from statekeeper.state.client import MSGPACK, ServiceClient, optional_wire
from statekeeper.state.live import LiveStream, RevisionFeed
from statekeeper.statuses import StepStatus, WorkflowEventType, WorkflowStatus
from statekeeper.timestamps import from_timestamp
from statekeeper.v1 import workflow_service_pb2 as pb
from statekeeper.v1 import workflow_service_pb2_grpc

#: The API's field names that differ from the messages'.
_WORKFLOW_NAMES = {"created_at": "create_time", "updated_at": "update_time"}


@dataclass
class StepState:
    """One step update of a workflow's history.

    ``status`` is one of ``"pending"``, ``"running"``, ``"completed"``, ``"failed"``,
    ``"skipped"``. The server fills ``timestamp`` and ``sequence`` (the position in the
    history) and marks ``superseded`` steps: steps after a checkpoint the workflow later
    resumed from.
    """

    step_number: int
    name: str = ""
    status: StepStatus = StepStatus.COMPLETED
    result: Any = None
    duration_ms: int = 0
    error: str | None = None
    timestamp: datetime | None = None
    sequence: int = 0
    superseded: bool = False


@dataclass
class WorkflowResume:
    """One resume of a workflow from a checkpoint."""

    checkpoint_id: str
    step: int
    timestamp: datetime
    history_sequence: int


@dataclass
class WorkflowState:
    """A workflow's execution state.

    ``checkpoint_interval`` (None: the manager's) takes a checkpoint automatically every that
    many completed steps; ``keep_checkpoints`` (None: the manager's ``max_checkpoints``)
    keeps only the newest that many checkpoints. ``steps`` and ``resumes`` are the history,
    filled by :meth:`WorkflowStateManager.get`.
    """

    workflow_id: str
    status: WorkflowStatus = WorkflowStatus.PENDING
    total_steps: int = 0
    current_step: int = 0
    context: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    steps: list[StepState] = field(default_factory=list)
    resumes: list[WorkflowResume] = field(default_factory=list)
    cancel_reason: str | None = None
    error: str | None = None
    checkpoint_interval: int | None = None
    keep_checkpoints: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    revision: int = 0


@dataclass
class WorkflowCheckpoint:
    """A resumable point of a workflow. ``state`` / ``context`` left None take the
    workflow's current ones; ``timestamp`` defaults to the server's clock."""

    workflow_id: str
    checkpoint_id: str
    step: int = 0
    state: Any = None
    context: Any = None
    timestamp: datetime | None = None
    automatic: bool = False
    sequence: int = 0


@dataclass
class WorkflowEvent:
    """One live change of a watched workflow."""

    type: WorkflowEventType
    workflow_id: str = ""
    status: WorkflowStatus | None = None
    revision: int = 0
    previous_status: WorkflowStatus | None = None
    step: StepState | None = None
    checkpoint_id: str | None = None


_STATUS = pb.WorkflowStatus.DESCRIPTOR


def _status(value: int) -> WorkflowStatus | None:
    status: WorkflowStatus | None = enum_from_number(value, _STATUS, WorkflowStatus)
    return status


def _workflow(message: pb.WorkflowState) -> WorkflowState:
    workflow = from_message(message, WorkflowState, _WORKFLOW_NAMES)
    # An unset document reads as an empty one, like a new WorkflowState's.
    for name in ("context", "state", "metadata"):
        if getattr(workflow, name) is None:
            setattr(workflow, name, {})
    return workflow


class WorkflowStateManager(ServiceClient):
    """Tracks workflow execution, steps and checkpoints, and pauses/resumes workflows.

    ``persistence`` is ``"memory"``, ``"file"`` or ``"redis"`` (embedded engine; ``redis_url``
    / ``file_path`` say where) or ``"grpc"`` (a server at ``address``); ``transport`` shares one
    connection between managers. ``checkpoint_interval=N`` makes workflows created by this
    manager take a checkpoint automatically every N completed steps (the interval is stored
    with the workflow, so every process updating it agrees); ``max_checkpoints`` keeps only the
    newest that many checkpoints per workflow (0: all).

    ``get`` returns None and ``delete`` False for an unknown workflow; every other method raises
    NotFoundError.
    """

    _STUB = workflow_service_pb2_grpc.WorkflowServiceStub
    _SERVICE = "statekeeper.v1.WorkflowService"

    def __init__(
        self,
        persistence: Any = "memory",
        checkpoint_interval: int | None = None,
        *,
        max_checkpoints: int = 0,
        **connection: Any,
    ) -> None:
        super().__init__(persistence, **connection)
        self.checkpoint_interval = checkpoint_interval
        self.max_checkpoints = max_checkpoints

    # -- create and read ----------------------------------------------------------------------

    async def create(self, state: WorkflowState) -> WorkflowState:
        """Create the workflow (AlreadyExistsError when the id is taken); fills in and returns
        ``state`` with its timestamps and revision."""
        interval = state.checkpoint_interval
        if interval is None:
            interval = self.checkpoint_interval or 0
        keep = state.keep_checkpoints
        if keep is None:
            keep = self.max_checkpoints
        sent = replace(
            state,
            steps=[],
            resumes=[],
            checkpoint_interval=interval,
            keep_checkpoints=keep,
        )
        request = pb.CreateWorkflowRequest(
            workflow=to_message(sent, pb.WorkflowState, _WORKFLOW_NAMES)
        )
        response = await self._call("CreateWorkflow", request)
        created = _workflow(response.workflow)
        state.checkpoint_interval = created.checkpoint_interval
        state.keep_checkpoints = created.keep_checkpoints
        state.created_at = created.created_at
        state.updated_at = created.updated_at
        state.revision = created.revision
        return state

    async def get(self, workflow_id: str, *, include_steps: bool = True) -> WorkflowState | None:
        """The workflow with its resumes and (unless ``include_steps`` is false) its step
        history, or None when it does not exist. For a long history, read it without steps and
        page the history with :meth:`iter_steps`."""
        request = pb.GetWorkflowRequest(
            workflow_id=workflow_id, include_steps=include_steps, value_encoding=MSGPACK
        )
        try:
            response = await self._call("GetWorkflow", request)
        except NotFoundError:
            return None
        return _workflow(response.workflow)

    async def iter_steps(self, workflow_id: str, page_size: int = 0) -> AsyncIterator[StepState]:
        """The workflow's step history, newest first, fetched page by page (each page costs the
        server the same however long the history is); steps are marked ``superseded`` as in
        :meth:`get`. NotFoundError for an unknown workflow."""
        pages = self._pages(
            "ListWorkflowSteps",
            pb.ListWorkflowStepsRequest,
            "steps",
            workflow_id=workflow_id,
            page_size=page_size,
            value_encoding=MSGPACK,
        )
        async for message in pages:
            yield from_message(message, StepState)

    async def get_status(self, workflow_id: str) -> WorkflowStatus:
        """The workflow's status."""
        response = await self._call(
            "GetWorkflowStatus", pb.GetWorkflowStatusRequest(workflow_id=workflow_id)
        )
        status = _status(response.status)
        assert status is not None
        return status

    async def iter_workflows(
        self, status: WorkflowStatus | None = None, page_size: int = 0
    ) -> AsyncIterator[WorkflowState]:
        """Every workflow (without step history), ordered by id, optionally of one status."""
        pages = self._pages(
            "ListWorkflows",
            pb.ListWorkflowsRequest,
            "workflows",
            status=enum_to_number(status, _STATUS) if status else None,
            page_size=page_size,
            value_encoding=MSGPACK,
        )
        async for message in pages:
            yield _workflow(message)

    async def list_workflows(self, status: WorkflowStatus | None = None) -> list[WorkflowState]:
        """Every workflow (without step history), ordered by id, optionally of one status."""
        return [workflow async for workflow in self.iter_workflows(status)]

    # -- steps and status ---------------------------------------------------------------------

    async def update_step(
        self,
        workflow_id: str,
        step: StepState,
        *,
        state: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
    ) -> StepState:
        """Record ``step`` in the history and advance ``current_step`` to at least its number
        (a PENDING workflow becomes RUNNING; a paused or finished one refuses with
        FailedPreconditionError). ``state`` / ``context`` are merged into the workflow's
        (RFC 7396 merge patch) in the same write. Every ``checkpoint_interval`` completed steps
        a checkpoint ``auto_<completed step count>`` is taken at ``current_step``. Returns the
        recorded step."""
        request = pb.UpdateStepRequest(
            workflow_id=workflow_id,
            step=to_message(step, pb.StepState),
            state_patch=optional_wire(state),
            context_patch=optional_wire(context),
            value_encoding=MSGPACK,
        )
        response = await self._call("UpdateStep", request)
        return from_message(response.step, StepState)

    async def start(self, workflow_id: str) -> WorkflowStatus:
        """PENDING to RUNNING."""
        response = await self._call(
            "StartWorkflow", pb.StartWorkflowRequest(workflow_id=workflow_id)
        )
        return _status(response.status) or WorkflowStatus.RUNNING

    async def pause(
        self, workflow_id: str, *, expected_revision: int | None = None
    ) -> WorkflowStatus:
        """RUNNING to PAUSED. With ``expected_revision`` (a ``WorkflowState.revision`` read
        earlier) the workflow is paused only if it has not changed since (ConflictError,
        reason REVISION_CONFLICT, otherwise; nothing is changed)."""
        request = pb.PauseWorkflowRequest(
            workflow_id=workflow_id, expected_revision=expected_revision
        )
        response = await self._call("PauseWorkflow", request)
        return _status(response.status) or WorkflowStatus.PAUSED

    async def resume(
        self, workflow_id: str, *, expected_revision: int | None = None
    ) -> WorkflowStatus:
        """PAUSED to RUNNING (``expected_revision`` as for :meth:`pause`)."""
        request = pb.ResumeWorkflowRequest(
            workflow_id=workflow_id, expected_revision=expected_revision
        )
        response = await self._call("ResumeWorkflow", request)
        return _status(response.status) or WorkflowStatus.RUNNING

    async def cancel(
        self, workflow_id: str, reason: str = "", *, expected_revision: int | None = None
    ) -> WorkflowStatus:
        """PENDING, RUNNING or PAUSED to CANCELLED; ``reason`` is kept in ``cancel_reason``
        (``expected_revision`` as for :meth:`pause`)."""
        request = pb.CancelWorkflowRequest(
            workflow_id=workflow_id, reason=reason, expected_revision=expected_revision
        )
        response = await self._call("CancelWorkflow", request)
        return _status(response.status) or WorkflowStatus.CANCELLED

    async def complete(
        self, workflow_id: str, state: dict[str, Any] | None = None
    ) -> WorkflowStatus:
        """RUNNING to COMPLETED, merging ``state`` into the workflow's state."""
        request = pb.CompleteWorkflowRequest(
            workflow_id=workflow_id, state_patch=optional_wire(state)
        )
        response = await self._call("CompleteWorkflow", request)
        return _status(response.status) or WorkflowStatus.COMPLETED

    async def fail(self, workflow_id: str, error: str = "") -> WorkflowStatus:
        """RUNNING or PAUSED to FAILED; ``error`` is kept in ``error``."""
        response = await self._call(
            "FailWorkflow", pb.FailWorkflowRequest(workflow_id=workflow_id, error=error)
        )
        return _status(response.status) or WorkflowStatus.FAILED

    # -- checkpoints --------------------------------------------------------------------------

    async def checkpoint(self, checkpoint: WorkflowCheckpoint) -> WorkflowCheckpoint:
        """Store ``checkpoint`` (replacing one with the same id); fills in and returns its
        ``sequence`` and ``timestamp``."""
        request = pb.CreateCheckpointRequest(
            checkpoint=to_message(checkpoint, pb.WorkflowCheckpoint)
        )
        response = await self._call("CreateCheckpoint", request)
        checkpoint.sequence = response.sequence
        checkpoint.timestamp = from_timestamp(response.timestamp)
        return checkpoint

    async def get_checkpoint(
        self, workflow_id: str, checkpoint_id: str | None = None
    ) -> WorkflowCheckpoint | None:
        """The checkpoint ``checkpoint_id`` (None or ``"latest"``: the newest), or None when
        there is none. Raises NotFoundError for an unknown workflow."""
        if checkpoint_id == "latest":
            checkpoint_id = None
        request = pb.GetWorkflowCheckpointRequest(
            workflow_id=workflow_id, checkpoint_id=checkpoint_id or "", value_encoding=MSGPACK
        )
        try:
            response = await self._call("GetWorkflowCheckpoint", request)
        except NotFoundError as error:
            if error.reason == "WORKFLOW_NOT_FOUND":
                raise
            return None
        return from_message(response.checkpoint, WorkflowCheckpoint)

    async def iter_checkpoints(
        self, workflow_id: str, page_size: int = 0
    ) -> AsyncIterator[WorkflowCheckpoint]:
        """Every checkpoint of the workflow, newest first, fetched page by page."""
        pages = self._pages(
            "ListWorkflowCheckpoints",
            pb.ListWorkflowCheckpointsRequest,
            "checkpoints",
            workflow_id=workflow_id,
            page_size=page_size,
            value_encoding=MSGPACK,
        )
        async for message in pages:
            yield from_message(message, WorkflowCheckpoint)

    async def list_checkpoints(self, workflow_id: str) -> list[WorkflowCheckpoint]:
        """Every checkpoint of the workflow, newest first (highest step, then latest)."""
        return [checkpoint async for checkpoint in self.iter_checkpoints(workflow_id)]

    async def resume_from(self, workflow_id: str, checkpoint_id: str) -> WorkflowResume:
        """Restore the workflow's state, context and current step from the checkpoint and set
        it RUNNING. History is kept: the resume is recorded in ``resumes`` and steps after the
        checkpoint stay in ``steps`` marked ``superseded``. Refused (FailedPreconditionError)
        for a COMPLETED or CANCELLED workflow."""
        response = await self._call(
            "ResumeFromCheckpoint",
            pb.ResumeFromCheckpointRequest(workflow_id=workflow_id, checkpoint_id=checkpoint_id),
        )
        return from_message(response.resume, WorkflowResume)

    # -- deletion -----------------------------------------------------------------------------

    async def delete(self, workflow_id: str, force: bool = False) -> bool:
        """Remove the workflow with its step history and checkpoints; returns False when it
        does not exist. A RUNNING or PAUSED workflow is refused (FailedPreconditionError,
        reason WORKFLOW_ACTIVE) unless ``force=True``. Watchers get a DELETED event."""
        request = pb.DeleteWorkflowRequest(workflow_id=workflow_id, force=force)
        try:
            await self._call("DeleteWorkflow", request)
        except NotFoundError:
            return False
        return True

    # -- watching -----------------------------------------------------------------------------

    def watch(self, workflow_id: str, start_revision: int = 0) -> LiveStream[WorkflowEvent]:
        """An async iterator of the workflow's status changes, step updates, checkpoints and
        resumes, live, in order::

            async for event in workflow_state.watch("research_pipeline"):
                print(event.type, event.status)
        """

        def request(revision: int) -> pb.WatchWorkflowRequest:
            return pb.WatchWorkflowRequest(
                workflow_id=workflow_id, start_revision=revision, value_encoding=MSGPACK
            )

        def convert(message: pb.WatchWorkflowResponse) -> list[WorkflowEvent]:
            events = [from_message(event, WorkflowEvent) for event in message.events]
            for event in events:
                event.workflow_id = workflow_id
            return events

        feed: RevisionFeed[Any] = RevisionFeed(request, convert, start_revision)
        return LiveStream(self, "WatchWorkflow", feed, f"watch of workflow {workflow_id!r}")


__all__ = [
    "StepState",
    "WorkflowCheckpoint",
    "WorkflowEvent",
    "WorkflowEventType",
    "WorkflowResume",
    "WorkflowState",
    "WorkflowStateManager",
    "WorkflowStatus",
]
