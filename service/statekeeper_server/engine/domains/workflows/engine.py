"""The workflow manager (the reference's ``WorkflowStateManager``), written once over a Backend.

Records live in the ``wf/`` namespace (after the tenant prefix), one directory per workflow::

    wf/<workflow_id>/record                         status, counters, context and state
    wf/<workflow_id>/step/<sequence>                one entry of the step history
    wf/<workflow_id>/resume/<number>                one resume from a checkpoint
    wf/<workflow_id>/ckpt/<inverted step>/<inverted sequence>   one checkpoint
    wf/<workflow_id>/cid/<checkpoint_id>            pointer from a checkpoint id to its order key

``delete`` removes the whole directory; a record marked ``deleting`` (a removal in batches in
progress) reads as an unknown workflow.

Every change is one :func:`~statekeeper_server.engine.records.transact`: it reads ``record``
(and what else it needs), rewrites it and adds the step, resume or checkpoint keys, committed
guarded by everything it read. Two writers, on one server or on two servers sharing a Redis,
are therefore serialised: no step is ever lost and sequence numbers never repeat. History is
never rewritten: steps and resumes are records of their own, so a write costs the same however
long the history is (records written before typed records keep their resumes inline; they are
read, never added to).

Status is a state machine (see :data:`TRANSITIONS`); an illegal transition raises
FAILED_PRECONDITION (INVALID_WORKFLOW_TRANSITION) before anything is written.
The records are in :mod:`.records`, the reads of the step history in :mod:`.history`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace
from typing import Any, TypeVar

from statekeeper.errors import (
    AlreadyExistsError,
    ConflictError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    Reason,
)

from statekeeper_server.engine.domains.checkpoints import (
    check_count,
    check_step,
    checkpoint_not_found,
    delete_directory,
    find_checkpoint,
    newest_first,
    now,
    store_checkpoint,
)
from statekeeper_server.engine.domains.workflows.history import steps_page, whole_history
from statekeeper_server.engine.domains.workflows.records import (
    CHECKPOINT,
    RESUME,
    STEP,
    WORKFLOW,
    StepState,
    StepStatus,
    StepUpdate,
    WatchBatch,
    WorkflowCheckpoint,
    WorkflowEvent,
    WorkflowEventType,
    WorkflowResume,
    WorkflowState,
    WorkflowStatus,
    changes_of,
)
from statekeeper_server.engine.identifiers import check_id
from statekeeper_server.engine.limits import (
    Limits,
    check_duration,
    check_progress_interval,
    check_revision,
)
from statekeeper_server.engine.patches import merge_patch
from statekeeper_server.engine.records import Txn, transact, transact_with_result
from statekeeper_server.engine.storage.backend import Backend, Entry, EventType
from statekeeper_server.engine.storage.glob import parse_pattern
from statekeeper_server.engine.tenancy import tenant_prefix
from statekeeper_server.engine.tokens import decode_text, encode_text, invalid_token

T = TypeVar("T")

#: The backend namespace of workflow records.
NAMESPACE = "wf/"

S = WorkflowStatus
#: Statuses DeleteWorkflow refuses without ``force``.
ACTIVE = frozenset({S.RUNNING, S.PAUSED})

#: Each status-changing operation: the statuses it is allowed from, and the status it sets.
TRANSITIONS: dict[str, tuple[frozenset[WorkflowStatus], WorkflowStatus]] = {
    "start": (frozenset({S.PENDING}), S.RUNNING),
    "pause": (frozenset({S.RUNNING}), S.PAUSED),
    "resume": (frozenset({S.PAUSED}), S.RUNNING),
    "cancel": (frozenset({S.PENDING, S.RUNNING, S.PAUSED}), S.CANCELLED),
    "complete": (frozenset({S.RUNNING}), S.COMPLETED),
    "fail": (frozenset({S.RUNNING, S.PAUSED}), S.FAILED),
    # A step update starts a pending workflow and is refused once it is paused or finished.
    "update_step": (frozenset({S.PENDING, S.RUNNING}), S.RUNNING),
    # Resuming from a checkpoint restarts a failed workflow; cancelled and completed are final.
    "resume_from": (frozenset({S.PENDING, S.RUNNING, S.PAUSED, S.FAILED}), S.RUNNING),
}


def _not_found(workflow_id: str) -> NotFoundError:
    return NotFoundError(
        f"workflow {workflow_id!r} not found",
        reason=Reason.WORKFLOW_NOT_FOUND,
        metadata={"workflow_id": workflow_id},
    )


def _revision_conflict(workflow_id: str, expected: int, actual: int) -> ConflictError:
    """REVISION_CONFLICT for a workflow whose record is not at the ``expected`` revision."""
    return ConflictError(
        f"workflow {workflow_id!r} has revision {actual}, expected {expected}",
        reason=Reason.REVISION_CONFLICT,
        metadata={
            "workflow_id": workflow_id,
            "expected_revision": str(expected),
            "actual_revision": str(actual),
        },
    )


class _Stale(Exception):
    """Carries a REVISION_CONFLICT for a pinned ``expected_revision`` out of a transaction's
    body, so that it is reported as it is instead of being retried like a lost race."""

    def __init__(self, error: ConflictError) -> None:
        super().__init__(error.message)
        self.error = error


async def _pinned(call: Awaitable[T]) -> T:
    """The result of a read-modify-write whose body may raise :class:`_Stale`."""
    try:
        return await call
    except _Stale as stale:
        raise stale.error from None


def _check_transition(record: WorkflowState, operation: str) -> WorkflowStatus:
    allowed, target = TRANSITIONS[operation]
    if record.status not in allowed:
        status = _name(record.status)
        raise FailedPreconditionError(
            f"cannot {operation.replace('_', ' ')} workflow {record.workflow_id!r}: it is "
            f"{status} (allowed from {', '.join(sorted(s.name for s in allowed))})",
            reason=Reason.INVALID_WORKFLOW_TRANSITION,
            metadata={"workflow_id": record.workflow_id, "status": status, "operation": operation},
        )
    return target


def _name(status: WorkflowStatus | None) -> str:
    """A status as errors name it: the proto value's name without its prefix (``RUNNING``)."""
    return status.name if status is not None else "UNSPECIFIED"


def _invalid(message: str, field_name: str, problem: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        message, reason=Reason.INVALID_ARGUMENT, violations=[(field_name, problem)]
    )


def _check_new(workflow: WorkflowState) -> str:
    """Validate a workflow to create; its id."""
    workflow_id = check_id(workflow.workflow_id, "workflow.workflow_id")
    if workflow.status not in (None, S.PENDING, S.RUNNING):
        raise _invalid(
            f"a workflow is created PENDING or RUNNING, not {_name(workflow.status)}",
            "workflow.status",
            "must be PENDING or RUNNING",
        )
    check_step(workflow.total_steps, "workflow.total_steps")
    check_step(workflow.current_step, "workflow.current_step")
    check_count(workflow.checkpoint_interval, "workflow.checkpoint_interval")
    check_count(workflow.keep_checkpoints, "workflow.keep_checkpoints")
    return workflow_id


def _check_step(step: StepState) -> None:
    check_step(step.step_number, "step.step_number")
    if step.status is None:
        raise _invalid(
            f"step.status must be one of {', '.join(StepStatus)}", "step.status", "required"
        )
    check_duration(step.duration_ms / 1000, "step.duration_ms")


class WorkflowEngine:
    """Create, read, step, checkpoint, pause, resume, cancel and watch workflows."""

    def __init__(self, backend: Backend, limits: Limits | None = None) -> None:
        self.backend = backend
        self.limits = limits or Limits()

    @staticmethod
    def _dir(workflow_id: str) -> str:
        return f"{tenant_prefix()}{NAMESPACE}{workflow_id}/"

    async def _load(self, txn: Txn, workflow_id: str) -> WorkflowState:
        """The workflow's record as stored (with its revision), guarding ``txn``'s commit."""
        entry = await txn.entry(self._dir(workflow_id) + "record")
        record = WORKFLOW.unpack(entry.value) if entry is not None else None
        if entry is None or record is None or record.deleting:
            raise _not_found(workflow_id)
        return replace(record, revision=entry.mod_revision)

    def _put(
        self,
        txn: Txn,
        record: WorkflowState,
        previous: WorkflowStatus | None,
        resumed_from: str = "",
    ) -> WorkflowState:
        """Stage the write of ``record``, noting what this write changed for watchers."""
        stored = replace(
            record,
            steps=[],
            revision=0,
            update_time=now(),
            status_changed=previous != record.status,
            previous_status=previous,
            resumed_from=resumed_from,
        )
        txn.put(self._dir(record.workflow_id) + "record", stored, WORKFLOW)
        return stored

    # -- create and read ----------------------------------------------------------------------

    async def create(self, workflow: WorkflowState) -> WorkflowState:
        """Create a workflow (ALREADY_EXISTS when the id is taken)."""
        workflow_id = _check_new(workflow)
        created = now()
        record = WorkflowState(
            workflow_id=workflow_id,
            status=workflow.status or S.PENDING,
            total_steps=workflow.total_steps,
            current_step=workflow.current_step,
            context=workflow.context if workflow.context is not None else {},
            state=workflow.state if workflow.state is not None else {},
            metadata=workflow.metadata if workflow.metadata is not None else {},
            checkpoint_interval=workflow.checkpoint_interval,
            keep_checkpoints=workflow.keep_checkpoints,
            create_time=created,
        )

        async def body(txn: Txn) -> WorkflowState:
            existing = await txn.get(self._dir(workflow_id) + "record", WORKFLOW)
            if existing is not None:
                state = "is being deleted: call DeleteWorkflow again"
                raise AlreadyExistsError(
                    f"workflow {workflow_id!r} "
                    + (state if existing.deleting else "already exists"),
                    reason=Reason.ALREADY_EXISTS,
                    metadata={"workflow_id": workflow_id},
                )
            return self._put(txn, record, None)

        stored, result = await transact_with_result(self.backend, body, limits=self.limits)
        return replace(stored, revision=result.revision if result is not None else 0)

    async def get(self, workflow_id: str, include_steps: bool = True) -> WorkflowState:
        """A workflow's record with its resumes and step history (each step marked superseded
        or not)."""
        check_id(workflow_id, "workflow_id")
        record = await self._load(Txn(self.backend), workflow_id)
        resumes, steps = await whole_history(
            self.backend, self._dir(workflow_id), record, include_steps
        )
        return replace(record, resumes=resumes, steps=steps)

    async def list_steps(
        self, workflow_id: str, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[StepState], str]:
        """One page of a workflow's step history, newest first (see
        :func:`~.history.steps_page`), and the next page's token ("" on the last page)."""
        check_id(workflow_id, "workflow_id")
        size = self.limits.check_page_size(page_size)
        record = await self._load(Txn(self.backend), workflow_id)
        return await steps_page(self.backend, self._dir(workflow_id), record, size, page_token)

    async def status(self, workflow_id: str) -> WorkflowStatus | None:
        """A workflow's status."""
        check_id(workflow_id, "workflow_id")
        return (await self._load(Txn(self.backend), workflow_id)).status

    async def list_workflows(
        self, status: WorkflowStatus | None = None, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[WorkflowState], str]:
        """One page of workflows ordered by id (without steps or resumes), optionally of one
        status."""
        size = self.limits.check_page_size(page_size)
        prefix = tenant_prefix() + NAMESPACE
        cursor = ""
        if page_token:
            cursor = prefix + check_id(_decode_id_token(page_token), "page_token") + "/record"
        glob = parse_pattern("*/record")
        records: list[WorkflowState] = []
        more = True
        while more and len(records) < size:
            page = await self.backend.range(prefix, glob, start_after=cursor, limit=size)
            more = page.more
            for entry in page.entries:
                if len(records) == size:
                    more = True
                    break
                cursor = entry.key
                if entry.key[len(prefix) :].count("/") != 1:
                    continue  # a checkpoint named "record", not a workflow record
                record = WORKFLOW.unpack(entry.value)
                if record.deleting or (status and record.status != status):
                    continue
                records.append(replace(record, revision=entry.mod_revision, resumes=[]))
            if more and len(records) < size:
                cursor = page.cursor  # past the keys examined (a page may end early)
        token = encode_text(cursor[len(prefix) : -len("/record")]) if more and cursor else ""
        return records, token

    # -- steps --------------------------------------------------------------------------------

    async def update_step(
        self,
        workflow_id: str,
        step: StepState,
        state_patch: Any = None,
        context_patch: Any = None,
    ) -> StepUpdate:
        """Record a step update (a new record of the history; the workflow's record is rewritten
        without the history)."""
        check_id(workflow_id, "workflow_id")
        _check_step(step)
        base = self._dir(workflow_id)

        async def body(txn: Txn) -> StepUpdate:
            record = await self._load(txn, workflow_id)
            previous = record.status
            sequence = record.step_sequence + 1
            stored = StepState(
                step_number=step.step_number,
                name=step.name,
                status=step.status,
                result=step.result,
                duration_ms=step.duration_ms,
                error=step.error,
                timestamp=now(),
                sequence=sequence,
            )
            record = replace(
                record,
                status=_check_transition(record, "update_step"),
                step_sequence=sequence,
                current_step=max(record.current_step, step.step_number),
                state=merge_patch(record.state, state_patch)
                if state_patch is not None
                else record.state,
                context=merge_patch(record.context, context_patch)
                if context_patch is not None
                else record.context,
            )
            txn.put(base + f"step/{sequence:020d}", stored, STEP)
            checkpoint_id = ""
            if step.status is StepStatus.COMPLETED:
                record, checkpoint_id = await self._completed(txn, record)
            record = self._put(txn, record, previous)
            return StepUpdate(stored, record.status, record.current_step, checkpoint_id)

        return await transact(self.backend, body, limits=self.limits)

    async def _completed(self, txn: Txn, record: WorkflowState) -> tuple[WorkflowState, str]:
        """Count a completed step; every ``checkpoint_interval`` of them stage a checkpoint.
        The record after it, and the id of the checkpoint ("" when none was taken)."""
        record = replace(record, completed_steps=record.completed_steps + 1)
        interval = record.checkpoint_interval
        if not interval or record.completed_steps % interval:
            return record, ""
        # Named after the completed-step count, which never repeats (the current step can:
        # concurrent writers finish steps out of order, resumes go back).
        checkpoint_id = f"auto_{record.completed_steps}"
        automatic = WorkflowCheckpoint(
            checkpoint_id=checkpoint_id,
            step=record.current_step,
            state=record.state,
            context=record.context,
            automatic=True,
        )
        record, _ = await self._stage_checkpoint(txn, record, automatic)
        return record, checkpoint_id

    # -- status changes -----------------------------------------------------------------------

    async def transition(
        self,
        workflow_id: str,
        operation: str,
        *,
        reason: str = "",
        error: str = "",
        state_patch: Any = None,
        expected_revision: int | None = None,
    ) -> WorkflowState:
        """Apply a status-changing ``operation`` of :data:`TRANSITIONS` (not update_step or
        resume_from); returns the record after it. With ``expected_revision`` the change is made
        only on that revision of the workflow (ABORTED, REVISION_CONFLICT, otherwise)."""
        check_id(workflow_id, "workflow_id")
        check_revision(expected_revision)

        async def body(txn: Txn) -> WorkflowState:
            record = await self._load(txn, workflow_id)
            if expected_revision is not None and expected_revision != record.revision:
                raise _Stale(_revision_conflict(workflow_id, expected_revision, record.revision))
            changed = replace(record, status=_check_transition(record, operation))
            if operation == "cancel":
                changed = replace(changed, cancel_reason=reason)
            if operation == "fail":
                changed = replace(changed, error=error)
            if state_patch is not None:
                changed = replace(changed, state=merge_patch(record.state, state_patch))
            return self._put(txn, changed, record.status)

        stored, result = await _pinned(transact_with_result(self.backend, body, limits=self.limits))
        return replace(stored, revision=result.revision if result is not None else 0)

    # -- checkpoints --------------------------------------------------------------------------

    async def _stage_checkpoint(
        self, txn: Txn, record: WorkflowState, checkpoint: WorkflowCheckpoint
    ) -> tuple[WorkflowState, WorkflowCheckpoint]:
        """Stage ``checkpoint`` with the workflow's next checkpoint sequence; the record with
        that sequence (to be written by the caller) and the checkpoint as stored."""
        sequence = record.checkpoint_sequence + 1
        stored = replace(
            checkpoint,
            workflow_id=record.workflow_id,
            sequence=sequence,
            timestamp=checkpoint.timestamp or now(),
        )
        base = self._dir(record.workflow_id)
        await store_checkpoint(txn, base, stored, CHECKPOINT, record.keep_checkpoints)
        return replace(record, checkpoint_sequence=sequence), stored

    async def checkpoint(self, checkpoint: WorkflowCheckpoint) -> WorkflowCheckpoint:
        """Store (or replace, by id) a checkpoint; an absent state or context takes the
        workflow's current one. Returns the checkpoint as stored."""
        workflow_id = check_id(checkpoint.workflow_id, "checkpoint.workflow_id")
        check_id(checkpoint.checkpoint_id, "checkpoint.checkpoint_id")
        check_step(checkpoint.step, "checkpoint.step")

        async def body(txn: Txn) -> WorkflowCheckpoint:
            record = await self._load(txn, workflow_id)
            wanted = replace(
                checkpoint,
                state=record.state if checkpoint.state is None else checkpoint.state,
                context=record.context if checkpoint.context is None else checkpoint.context,
                automatic=False,
            )
            record, stored = await self._stage_checkpoint(txn, record, wanted)
            self._put(txn, record, record.status)
            return stored

        return await transact(self.backend, body, limits=self.limits)

    async def get_checkpoint(self, workflow_id: str, checkpoint_id: str = "") -> WorkflowCheckpoint:
        """One checkpoint by id, or the newest; NOT_FOUND when missing."""
        check_id(workflow_id, "workflow_id")
        check_id(checkpoint_id, "checkpoint_id", required=False)
        txn = Txn(self.backend)  # read only: never committed
        await self._load(txn, workflow_id)
        found = await find_checkpoint(txn, self._dir(workflow_id), CHECKPOINT, checkpoint_id)
        if found is None:
            raise checkpoint_not_found("workflow", workflow_id, checkpoint_id)
        return found

    async def list_checkpoints(
        self, workflow_id: str, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[WorkflowCheckpoint], str]:
        """One page of a workflow's checkpoints, newest first."""
        check_id(workflow_id, "workflow_id")
        await self._load(Txn(self.backend), workflow_id)
        prefix = self._dir(workflow_id) + "ckpt/"
        return await newest_first(
            self.backend, prefix, CHECKPOINT, self.limits, page_size, page_token, False
        )

    async def resume_from(
        self, workflow_id: str, checkpoint_id: str
    ) -> tuple[WorkflowResume, WorkflowState]:
        """Restore state, context and current step from a checkpoint and set RUNNING; the
        resume is stored as a record of its own (history is kept: later steps become
        superseded). Returns the resume and the record after it."""
        check_id(workflow_id, "workflow_id")
        check_id(checkpoint_id, "checkpoint_id")
        base = self._dir(workflow_id)

        async def body(txn: Txn) -> tuple[WorkflowResume, WorkflowState]:
            record = await self._load(txn, workflow_id)
            found = await find_checkpoint(txn, base, CHECKPOINT, checkpoint_id)
            if found is None:
                raise checkpoint_not_found("workflow", workflow_id, checkpoint_id)
            resume = WorkflowResume(
                checkpoint_id=checkpoint_id,
                step=found.step,
                timestamp=now(),
                history_sequence=record.step_sequence + 1,
            )
            number = record.resume_count + 1
            changed = replace(
                record,
                status=_check_transition(record, "resume_from"),
                state=found.state,
                context=found.context,
                current_step=found.step,
                error="",
                resume_count=number,
            )
            txn.put(base + f"resume/{number:020d}", resume, RESUME)
            return resume, self._put(txn, changed, record.status, resumed_from=checkpoint_id)

        return await transact(self.backend, body, limits=self.limits)

    # -- deletion -----------------------------------------------------------------------------

    async def delete(
        self, workflow_id: str, force: bool = False, expected_revision: int | None = None
    ) -> tuple[int, int]:
        """Remove the workflow (``record``, ``step/``, ``resume/``, ``ckpt/``, ``cid/``);
        returns how many records went (the workflow, its steps and checkpoints) and the store
        revision.

        NOT_FOUND for an unknown workflow; FAILED_PRECONDITION (WORKFLOW_ACTIVE) for a RUNNING
        or PAUSED one unless ``force``; ABORTED (REVISION_CONFLICT) when ``expected_revision``
        is set and differs. A workflow that fits one transaction goes in one transaction guarded
        by the record's revision. A larger one is first marked ``deleting`` (guarded the same
        way; from then on it reads as unknown and no write can land), then removed in batches,
        the record last; calling again on a marked workflow finishes the removal.
        """
        check_id(workflow_id, "workflow_id")
        check_revision(expected_revision)

        def check(entry: Entry | None) -> None:
            if entry is None:
                raise _not_found(workflow_id)
            record = WORKFLOW.unpack(entry.value)
            if record.deleting:
                return
            if expected_revision is not None and expected_revision != entry.mod_revision:
                raise _Stale(_revision_conflict(workflow_id, expected_revision, entry.mod_revision))
            if record.status in ACTIVE and not force:
                raise FailedPreconditionError(
                    f"workflow {workflow_id!r} is {_name(record.status)}; cancel it first, "
                    "or delete it with force",
                    reason=Reason.WORKFLOW_ACTIVE,
                    metadata={"workflow_id": workflow_id, "status": _name(record.status)},
                )

        def mark(txn: Txn, entry: Entry | None) -> bool:
            assert entry is not None  # check() refused a missing record
            record = WORKFLOW.unpack(entry.value)
            if record.deleting:
                return False
            txn.put(entry.key, replace(record, deleting=True), WORKFLOW)
            return True

        base = self._dir(workflow_id)
        return await _pinned(
            delete_directory(self.backend, self.limits, base, "record", _counted, check, mark)
        )

    # -- watching -----------------------------------------------------------------------------

    async def watch(
        self, workflow_id: str, start_revision: int = 0, progress_interval: float | None = None
    ) -> AsyncIterator[WatchBatch]:
        """The created marker, then the workflow's changes in revision order (and progress
        updates without changes when idle)."""
        check_id(workflow_id, "workflow_id")
        check_revision(start_revision, "start_revision")
        progress_interval = check_progress_interval(progress_interval)
        base = self._dir(workflow_id)
        status_at: dict[int, WorkflowStatus | None] = {}
        latest: WorkflowStatus | None = None
        async for update in self.backend.watch(
            base, start_revision=start_revision, progress_interval=progress_interval
        ):
            ranked: list[tuple[int, bool, WorkflowEvent]] = []
            for event in update.events:
                name = event.key[len(base) :]
                if name == "record" and event.type is not EventType.PUT:
                    deleted = WorkflowEvent(WorkflowEventType.DELETED, event.revision)
                    ranked.append((event.revision, False, deleted))
                elif event.type is EventType.PUT and event.entry is not None:
                    found = changes_of(name, event.revision, event.entry.value, status_at)
                    ranked.extend((event.revision, name != "record", c) for c in found)
            # Within one transaction the workflow's own changes come first, then what it added.
            changes = [change for _, _, change in sorted(ranked, key=lambda r: r[:2])]
            if update.events and not changes:
                continue
            if status_at:
                latest = status_at[max(status_at)]
            yield WatchBatch(
                update.revision,
                [
                    c
                    if c.status or c.type is WorkflowEventType.DELETED
                    else replace(c, status=status_at.get(c.revision, latest))
                    for c in changes
                ],
            )
            status_at.clear()


def _counted(name: str) -> bool:
    """Whether the removed record ``name`` (after the workflow's directory) is counted."""
    return name == "record" or name.startswith(("step/", "ckpt/"))


def _decode_id_token(token: str) -> str:
    last = decode_text(token)
    if last is None:
        raise invalid_token("page_token is not a token returned by ListWorkflows")
    return last
