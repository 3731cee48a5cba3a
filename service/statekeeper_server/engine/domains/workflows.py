"""The workflow manager (the reference's ``WorkflowStateManager``), written once over a Backend.

Records live in the ``wf/`` namespace (after the tenant prefix), one directory per workflow::

    wf/<workflow_id>/record                         status, counters, context, state, resumes
    wf/<workflow_id>/step/<sequence>                one entry of the step history
    wf/<workflow_id>/ckpt/<inverted step>/<inverted sequence>   one checkpoint
    wf/<workflow_id>/cid/<checkpoint_id>            pointer from a checkpoint id to its order key

``delete`` removes the whole directory; a record marked ``deleting`` (a removal in batches in
progress) reads as an unknown workflow.

Every change rewrites ``record`` in a transaction guarded by its revision (compare-and-set,
retried on conflict), together with the step or checkpoint keys it adds. Two writers, on one
server or on two servers sharing a Redis, are therefore serialised: no step is ever lost and
sequence numbers never repeat.

Status is a state machine (see :data:`TRANSITIONS`); an illegal transition raises
FAILED_PRECONDITION (INVALID_WORKFLOW_TRANSITION) before anything is written.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from statekeeper import values
from statekeeper.errors import (
    AlreadyExistsError,
    ConflictError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    Reason,
)

from statekeeper_server.engine.domains.agents import checkpoint_operations, find_checkpoint
from statekeeper_server.engine.domains.checkpoints import (
    check_count,
    check_step,
    checkpoint_not_found,
    newest_first,
    now,
    pack_record,
)
from statekeeper_server.engine.domains.state import merge_patch
from statekeeper_server.engine.identifiers import check_id
from statekeeper_server.engine.limits import Limits, check_revision
from statekeeper_server.engine.records import (
    batch_size,
    count_removed,
    delete_all,
    delete_batch,
    retry_on_conflict,
)
from statekeeper_server.engine.storage.backend import (
    Backend,
    Compare,
    EventType,
    Operation,
    Put,
)
from statekeeper_server.engine.storage.glob import parse_pattern
from statekeeper_server.engine.tenancy import tenant_prefix
from statekeeper_server.engine.tokens import decode_text, encode_text, invalid_token

T = TypeVar("T")

#: The backend namespace of workflow records.
NAMESPACE = "wf/"
STATUSES = ("PENDING", "RUNNING", "PAUSED", "COMPLETED", "FAILED", "CANCELLED")
STEP_STATUSES = ("PENDING", "RUNNING", "COMPLETED", "FAILED", "SKIPPED")
FINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
#: Statuses DeleteWorkflow refuses without ``force``.
ACTIVE = frozenset({"RUNNING", "PAUSED"})

#: Each status-changing operation: the statuses it is allowed from, and the status it sets.
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "start": (frozenset({"PENDING"}), "RUNNING"),
    "pause": (frozenset({"RUNNING"}), "PAUSED"),
    "resume": (frozenset({"PAUSED"}), "RUNNING"),
    "cancel": (frozenset({"PENDING", "RUNNING", "PAUSED"}), "CANCELLED"),
    "complete": (frozenset({"RUNNING"}), "COMPLETED"),
    "fail": (frozenset({"RUNNING", "PAUSED"}), "FAILED"),
    # A step update starts a pending workflow and is refused once it is paused or finished.
    "update_step": (frozenset({"PENDING", "RUNNING"}), "RUNNING"),
    # Resuming from a checkpoint restarts a failed workflow; cancelled and completed are final.
    "resume_from": (frozenset({"PENDING", "RUNNING", "PAUSED", "FAILED"}), "RUNNING"),
}


@dataclass(frozen=True, slots=True)
class WorkflowChange:
    """One change of a watched workflow (``kind`` is STATUS_CHANGED, STEP_UPDATED,
    CHECKPOINT_CREATED, RESUMED_FROM_CHECKPOINT or DELETED)."""

    kind: str
    revision: int
    status: str
    previous_status: str = ""
    step: dict[str, Any] | None = None
    checkpoint_id: str = ""


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """One update of a workflow watch: the created marker / progress (no changes) or changes."""

    revision: int
    changes: list[WorkflowChange] = field(default_factory=list)


def superseded(step: dict[str, Any], resumes: list[dict[str, Any]]) -> bool:
    """True when a resume recorded after ``step`` went back to a checkpoint before it."""
    return any(
        resume["history_sequence"] > step["sequence"] and step["step_number"] > resume["step"]
        for resume in resumes
    )


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


async def _guarded(
    workflow_id: str, expected_revision: int | None, attempt: Callable[[], Awaitable[T]]
) -> T:
    """Run a read-modify-write of the workflow: retried on conflict, or, when the caller
    pinned ``expected_revision``, once, a conflict reported as the workflow's (never under the
    stored key)."""
    if expected_revision is None:
        return await retry_on_conflict(attempt)
    try:
        return await attempt()
    except ConflictError as error:
        if "workflow_id" in error.metadata:
            raise
        # The record changed between the read and the guarded write.
        actual = int(error.metadata.get("actual_revision", "0"))
        raise _revision_conflict(workflow_id, expected_revision, actual) from None


class WorkflowEngine:
    """Create, read, step, checkpoint, pause, resume, cancel and watch workflows."""

    def __init__(self, backend: Backend, limits: Limits | None = None) -> None:
        self.backend = backend
        self.limits = limits or Limits()

    @staticmethod
    def _dir(workflow_id: str) -> str:
        return f"{tenant_prefix()}{NAMESPACE}{workflow_id}/"

    async def _record(self, workflow_id: str) -> tuple[dict[str, Any], int]:
        entry = await self.backend.get(self._dir(workflow_id) + "record")
        record: dict[str, Any] = values.unpack(entry.value) if entry is not None else {}
        if entry is None or record.get("deleting"):
            raise _not_found(workflow_id)
        record["revision"] = entry.mod_revision
        return record, entry.mod_revision

    def _put_record(
        self, base: str, record: dict[str, Any], previous_status: str, resumed: bool = False
    ) -> Put:
        """The write of ``record``, noting what this write changed for watchers (so a watch
        never needs the previous entry): ``status_changed`` / ``previous_status`` and
        ``resumed``."""
        stored = {k: v for k, v in record.items() if k not in ("revision", "steps")}
        stored["updated"] = now()
        stored["status_changed"] = previous_status != record["status"]
        stored["previous_status"] = previous_status
        stored["resumed"] = resumed
        return Put(base + "record", pack_record(stored, self.limits, "workflow"))

    @staticmethod
    def _check_transition(record: dict[str, Any], operation: str) -> str:
        allowed, target = TRANSITIONS[operation]
        status = record["status"]
        if status not in allowed:
            raise FailedPreconditionError(
                f"cannot {operation.replace('_', ' ')} workflow {record['workflow_id']!r}: it is "
                f"{status} (allowed from {', '.join(sorted(allowed))})",
                reason=Reason.INVALID_WORKFLOW_TRANSITION,
                metadata={
                    "workflow_id": record["workflow_id"],
                    "status": status,
                    "operation": operation,
                },
            )
        return target

    # -- create and read ----------------------------------------------------------------------

    async def create(self, workflow: dict[str, Any]) -> dict[str, Any]:
        """Create a workflow (ALREADY_EXISTS when the id is taken)."""
        workflow_id = check_id(workflow.get("workflow_id", ""), "workflow.workflow_id")
        status = workflow.get("status") or "PENDING"
        if status not in ("PENDING", "RUNNING"):
            raise InvalidArgumentError(
                f"a workflow is created PENDING or RUNNING, not {status}",
                reason=Reason.INVALID_ARGUMENT,
                violations=[("workflow.status", "must be PENDING or RUNNING")],
            )
        total = int(workflow.get("total_steps", 0))
        current = int(workflow.get("current_step", 0))
        check_step(total, "workflow.total_steps")
        check_step(current, "workflow.current_step")
        interval = check_count(
            int(workflow.get("checkpoint_interval", 0)), "workflow.checkpoint_interval"
        )
        keep = check_count(int(workflow.get("keep_checkpoints", 0)), "workflow.keep_checkpoints")
        created = now()
        record: dict[str, Any] = {
            "workflow_id": workflow_id,
            "status": status,
            "total_steps": total,
            "current_step": current,
            "context": workflow.get("context") or {},
            "state": workflow.get("state") or {},
            "metadata": workflow.get("metadata") or {},
            "cancel_reason": "",
            "error": "",
            "checkpoint_interval": interval,
            "keep_checkpoints": keep,
            "created": created,
            "updated": created,
            "step_seq": 0,
            "ckpt_seq": 0,
            "completed_steps": 0,
            "resumes": [],
        }
        base = self._dir(workflow_id)
        try:
            result = await self.backend.txn(
                [Compare(base + "record", 0)], [self._put_record(base, record, "")]
            )
        except ConflictError:
            existing = await self.backend.get(base + "record")
            marked = existing is not None and values.unpack(existing.value).get("deleting")
            raise AlreadyExistsError(
                f"workflow {workflow_id!r} "
                + ("is being deleted: call DeleteWorkflow again" if marked else "already exists"),
                reason=Reason.ALREADY_EXISTS,
                metadata={"workflow_id": workflow_id},
            ) from None
        record["revision"] = result.revision
        return record

    async def get(self, workflow_id: str, include_steps: bool = True) -> dict[str, Any]:
        """A workflow's record, with its step history (each step marked superseded or not)."""
        check_id(workflow_id, "workflow_id")
        record, _ = await self._record(workflow_id)
        record["steps"] = []
        if include_steps:
            prefix = self._dir(workflow_id) + "step/"
            start_after = ""
            while True:
                page = await self.backend.range(prefix, start_after=start_after, limit=1000)
                for entry in page.entries:
                    step = values.unpack(entry.value)
                    step["superseded"] = superseded(step, record["resumes"])
                    record["steps"].append(step)
                if not page.more or not page.entries:
                    break
                start_after = page.entries[-1].key
        return record

    async def status(self, workflow_id: str) -> str:
        """A workflow's status."""
        check_id(workflow_id, "workflow_id")
        record, _ = await self._record(workflow_id)
        return str(record["status"])

    async def list_workflows(
        self, status: str = "", page_size: int = 0, page_token: str = ""
    ) -> tuple[list[dict[str, Any]], str]:
        """One page of workflows ordered by id (without steps), optionally of one status."""
        size = self.limits.check_page_size(page_size)
        prefix = tenant_prefix() + NAMESPACE
        cursor = ""
        if page_token:
            cursor = prefix + check_id(_decode_id_token(page_token), "page_token") + "/record"
        glob = parse_pattern("*/record")
        records: list[dict[str, Any]] = []
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
                record = values.unpack(entry.value)
                if record.get("deleting") or (status and record["status"] != status):
                    continue
                record["revision"] = entry.mod_revision
                record["steps"] = []
                records.append(record)
            if more and len(records) < size:
                cursor = page.cursor  # past the keys examined (a page may end early)
        token = encode_text(cursor[len(prefix) : -len("/record")]) if more and cursor else ""
        return records, token

    # -- steps --------------------------------------------------------------------------------

    async def update_step(
        self,
        workflow_id: str,
        step: dict[str, Any],
        state_patch: Any = None,
        context_patch: Any = None,
    ) -> tuple[dict[str, Any], dict[str, Any], str]:
        """Record a step update; returns the step as stored, the workflow record after it and
        the id of a checkpoint taken automatically ("" when none)."""
        check_id(workflow_id, "workflow_id")
        number = check_step(int(step.get("step_number", -1)), "step.step_number")
        step_status = step.get("status") or ""
        if step_status not in STEP_STATUSES:
            raise InvalidArgumentError(
                f"step.status must be one of {', '.join(s.lower() for s in STEP_STATUSES)}",
                reason=Reason.INVALID_ARGUMENT,
                violations=[("step.status", "required")],
            )
        duration = int(step.get("duration_ms") or 0)
        if duration < 0:
            raise InvalidArgumentError(
                "step.duration_ms must not be negative",
                reason=Reason.INVALID_ARGUMENT,
                violations=[("step.duration_ms", "negative")],
            )
        base = self._dir(workflow_id)

        async def attempt() -> tuple[dict[str, Any], dict[str, Any], str]:
            record, revision = await self._record(workflow_id)
            previous = record["status"]
            record["status"] = self._check_transition(record, "update_step")
            sequence = record["step_seq"] + 1
            record["step_seq"] = sequence
            stored = {
                "step_number": number,
                "name": step.get("name") or "",
                "status": step_status,
                "result": step.get("result"),
                "duration_ms": duration,
                "error": step.get("error") or "",
                "timestamp": now(),
                "sequence": sequence,
            }
            record["current_step"] = max(record["current_step"], number)
            if state_patch is not None:
                record["state"] = merge_patch(record["state"], state_patch)
            if context_patch is not None:
                record["context"] = merge_patch(record["context"], context_patch)
            operations: list[Operation] = [
                Put(base + f"step/{sequence:020d}", pack_record(stored, self.limits, "step"))
            ]
            checkpoint_id = ""
            if step_status == "COMPLETED":
                record["completed_steps"] += 1
                interval = record["checkpoint_interval"]
                if interval and record["completed_steps"] % interval == 0:
                    # Named after the completed-step count, which never repeats (the current step
                    # can: concurrent writers finish steps out of order, resumes go back).
                    checkpoint_id = f"auto_{record['completed_steps']}"
                    operations += await self._checkpoint_ops(
                        base,
                        record,
                        {
                            "checkpoint_id": checkpoint_id,
                            "step": record["current_step"],
                            "state": record["state"],
                            "context": record["context"],
                            "automatic": True,
                        },
                    )
            operations.insert(0, self._put_record(base, record, previous))
            result = await self.backend.txn([Compare(base + "record", revision)], operations)
            record["revision"] = result.revision
            return stored, record, checkpoint_id

        return await retry_on_conflict(attempt)

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
    ) -> dict[str, Any]:
        """Apply a status-changing ``operation`` of :data:`TRANSITIONS` (not update_step or
        resume_from); returns the record after it. With ``expected_revision`` the change is made
        only on that revision of the workflow (ABORTED, REVISION_CONFLICT, otherwise)."""
        check_id(workflow_id, "workflow_id")
        check_revision(expected_revision)
        base = self._dir(workflow_id)

        async def attempt() -> dict[str, Any]:
            record, revision = await self._record(workflow_id)
            if expected_revision is not None and expected_revision != revision:
                raise _revision_conflict(workflow_id, expected_revision, revision)
            previous = record["status"]
            record["status"] = self._check_transition(record, operation)
            if operation == "cancel":
                record["cancel_reason"] = reason
            if operation == "fail":
                record["error"] = error
            if state_patch is not None:
                record["state"] = merge_patch(record["state"], state_patch)
            result = await self.backend.txn(
                [Compare(base + "record", revision)], [self._put_record(base, record, previous)]
            )
            record["revision"] = result.revision
            return record

        return await _guarded(workflow_id, expected_revision, attempt)

    # -- checkpoints --------------------------------------------------------------------------

    async def _checkpoint_ops(
        self, base: str, record: dict[str, Any], checkpoint: dict[str, Any]
    ) -> list[Operation]:
        sequence = record["ckpt_seq"] + 1
        record["ckpt_seq"] = sequence
        stored = {
            "workflow_id": record["workflow_id"],
            "checkpoint_id": checkpoint["checkpoint_id"],
            "step": checkpoint["step"],
            "state": checkpoint.get("state"),
            "context": checkpoint.get("context"),
            "timestamp": checkpoint.get("timestamp") or now(),
            "automatic": bool(checkpoint.get("automatic")),
            "sequence": sequence,
        }
        operations, _ = await checkpoint_operations(
            self.backend, self.limits, base, stored, "checkpoint_id", record["keep_checkpoints"]
        )
        checkpoint.update(stored)
        return operations

    async def checkpoint(self, checkpoint: dict[str, Any]) -> dict[str, Any]:
        """Store (or replace, by id) a checkpoint; an absent state or context takes the
        workflow's current one. Returns the checkpoint as stored."""
        workflow_id = check_id(checkpoint.get("workflow_id", ""), "checkpoint.workflow_id")
        check_id(checkpoint.get("checkpoint_id", ""), "checkpoint.checkpoint_id")
        check_step(int(checkpoint.get("step", 0)), "checkpoint.step")
        base = self._dir(workflow_id)

        async def attempt() -> dict[str, Any]:
            record, revision = await self._record(workflow_id)
            wanted = dict(checkpoint)
            if wanted.get("state") is None:
                wanted["state"] = record["state"]
            if wanted.get("context") is None:
                wanted["context"] = record["context"]
            wanted["automatic"] = False
            operations = await self._checkpoint_ops(base, record, wanted)
            await self.backend.txn(
                [Compare(base + "record", revision)],
                [self._put_record(base, record, record["status"]), *operations],
            )
            return wanted

        return await retry_on_conflict(attempt)

    async def get_checkpoint(self, workflow_id: str, checkpoint_id: str = "") -> dict[str, Any]:
        """One checkpoint by id, or the newest; NOT_FOUND when missing."""
        check_id(workflow_id, "workflow_id")
        check_id(checkpoint_id, "checkpoint_id", required=False)
        await self._record(workflow_id)
        found = await find_checkpoint(self.backend, self._dir(workflow_id), checkpoint_id, False)
        if found is None:
            raise checkpoint_not_found("workflow", workflow_id, checkpoint_id)
        return found

    async def list_checkpoints(
        self, workflow_id: str, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[dict[str, Any]], str]:
        """One page of a workflow's checkpoints, newest first."""
        check_id(workflow_id, "workflow_id")
        await self._record(workflow_id)
        prefix = self._dir(workflow_id) + "ckpt/"
        return await newest_first(self.backend, prefix, self.limits, page_size, page_token, False)

    async def resume_from(
        self, workflow_id: str, checkpoint_id: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Restore state, context and current step from a checkpoint and set RUNNING; the
        resume is appended to ``resumes`` (history is kept: later steps become superseded).
        Returns the resume and the record after it."""
        check_id(workflow_id, "workflow_id")
        check_id(checkpoint_id, "checkpoint_id")
        base = self._dir(workflow_id)

        async def attempt() -> tuple[dict[str, Any], dict[str, Any]]:
            record, revision = await self._record(workflow_id)
            found = await find_checkpoint(self.backend, base, checkpoint_id, False)
            if found is None:
                raise checkpoint_not_found("workflow", workflow_id, checkpoint_id)
            previous = record["status"]
            record["status"] = self._check_transition(record, "resume_from")
            record["state"] = found.get("state")
            record["context"] = found.get("context")
            record["current_step"] = found["step"]
            record["error"] = ""
            resume = {
                "checkpoint_id": checkpoint_id,
                "step": found["step"],
                "timestamp": now(),
                "history_sequence": record["step_seq"] + 1,
            }
            record["resumes"] = [*record["resumes"], resume]
            result = await self.backend.txn(
                [Compare(base + "record", revision)],
                [self._put_record(base, record, previous, resumed=True)],
            )
            record["revision"] = result.revision
            return resume, record

        return await retry_on_conflict(attempt)

    # -- deletion -----------------------------------------------------------------------------

    async def delete(
        self, workflow_id: str, force: bool = False, expected_revision: int | None = None
    ) -> tuple[int, int]:
        """Remove the workflow (``record``, ``step/``, ``ckpt/``, ``cid/``); returns how many
        records went (the workflow, its steps and checkpoints) and the store revision.

        NOT_FOUND for an unknown workflow; FAILED_PRECONDITION (WORKFLOW_ACTIVE) for a RUNNING
        or PAUSED one unless ``force``; ABORTED (REVISION_CONFLICT) when ``expected_revision``
        is set and differs. A workflow that fits one transaction goes in one transaction guarded
        by the record's revision. A larger one is first marked ``deleting`` (guarded the same
        way; from then on it reads as unknown and no write can land), then removed in batches,
        the record last; calling again on a marked workflow finishes the removal.
        """
        check_id(workflow_id, "workflow_id")
        check_revision(expected_revision)
        base = self._dir(workflow_id)
        size = batch_size(self.limits.max_transaction_operations)
        removed = 0

        def counted(name: str) -> bool:
            return name == "record" or name.startswith(("step/", "ckpt/"))

        async def attempt() -> tuple[int, int]:
            nonlocal removed
            while True:
                entry = await self.backend.get(base + "record")
                if entry is None:
                    if removed:  # another call finished the removal this one had begun
                        return removed, await self.backend.revision()
                    raise _not_found(workflow_id)
                record = values.unpack(entry.value)
                revision = entry.mod_revision
                if not record.get("deleting"):
                    if expected_revision is not None and expected_revision != revision:
                        raise _revision_conflict(workflow_id, expected_revision, revision)
                    if record["status"] in ACTIVE and not force:
                        raise FailedPreconditionError(
                            f"workflow {workflow_id!r} is {record['status']}; cancel it first, "
                            "or delete it with force",
                            reason=Reason.WORKFLOW_ACTIVE,
                            metadata={"workflow_id": workflow_id, "status": record["status"]},
                        )
                page = await self.backend.range(base, limit=size)
                keys = [item.key for item in page.entries]
                if not page.more:
                    result = await delete_all(self.backend, base, "record", revision, keys)
                    return removed + count_removed(base, keys, result, counted), result.revision
                if not record.get("deleting"):
                    marked = {**record, "deleting": True}
                    await self.backend.txn(
                        [Compare(base + "record", revision)],
                        [Put(base + "record", pack_record(marked, self.limits, "workflow"))],
                    )
                    continue
                batch = [key for key in keys if key != base + "record"]
                result = await delete_batch(self.backend, batch)
                removed += count_removed(base, batch, result, counted)

        return await _guarded(workflow_id, expected_revision, attempt)

    # -- watching -----------------------------------------------------------------------------

    async def watch(
        self, workflow_id: str, start_revision: int = 0, progress_interval: float | None = None
    ) -> AsyncIterator[WatchBatch]:
        """The created marker, then the workflow's changes in revision order (and progress
        updates without changes when idle)."""
        check_id(workflow_id, "workflow_id")
        check_revision(start_revision, "start_revision")
        base = self._dir(workflow_id)
        status_at: dict[int, str] = {}
        latest = ""
        async for update in self.backend.watch(
            base, start_revision=start_revision, progress_interval=progress_interval
        ):
            changes: list[WorkflowChange] = []
            for event in update.events:
                name = event.key[len(base) :]
                if name == "record" and event.type is not EventType.PUT:
                    changes.append(WorkflowChange("DELETED", event.revision, ""))
                    continue
                if event.type is not EventType.PUT or event.entry is None:
                    continue
                data = values.unpack(event.entry.value)
                if name == "record" and data.get("deleting"):
                    continue  # marked for deletion: DELETED comes when the record goes
                if name == "record":
                    status_at[event.revision] = data["status"]
                    changes.extend(_record_changes(event.revision, data))
                elif name.startswith("step/"):
                    step = {**data, "superseded": False}
                    changes.append(WorkflowChange("STEP_UPDATED", event.revision, "", step=step))
                elif name.startswith("ckpt/"):
                    changes.append(
                        WorkflowChange(
                            "CHECKPOINT_CREATED",
                            event.revision,
                            "",
                            checkpoint_id=data["checkpoint_id"],
                        )
                    )
            if update.events and not changes:
                continue
            if status_at:
                latest = status_at[max(status_at)]
            yield WatchBatch(
                update.revision,
                [
                    c
                    if c.status or c.kind == "DELETED"
                    else replace(c, status=status_at.get(c.revision, latest))
                    for c in changes
                ],
            )
            status_at.clear()


def _decode_id_token(token: str) -> str:
    last = decode_text(token)
    if last is None:
        raise invalid_token("page_token is not a token returned by ListWorkflows")
    return last


def _record_changes(revision: int, data: dict[str, Any]) -> list[WorkflowChange]:
    changes: list[WorkflowChange] = []
    if data.get("resumed"):
        changes.append(
            WorkflowChange(
                "RESUMED_FROM_CHECKPOINT",
                revision,
                data["status"],
                checkpoint_id=data["resumes"][-1]["checkpoint_id"],
            )
        )
    if data.get("status_changed"):
        changes.append(
            WorkflowChange(
                "STATUS_CHANGED",
                revision,
                data["status"],
                previous_status=data.get("previous_status", ""),
            )
        )
    return changes
