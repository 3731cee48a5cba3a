"""The typed records of the workflow domain and their stored format.

A workflow's ``record`` (:class:`WorkflowState`), each step (:class:`StepState`), each resume
(:class:`WorkflowResume`) and each checkpoint (:class:`WorkflowCheckpoint`) are dataclasses
named like the proto's messages. Version 0 (the format before typed records: short names,
upper-case statuses, resumes inline in the record, a ``resumed`` flag) is lifted by the
schemas' upgrades, so existing stores keep opening. Also here: what a read derives from the
records (superseded steps, the events of a watch).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from statekeeper.statuses import StepStatus, WorkflowEventType, WorkflowStatus

from statekeeper_server.engine.domains.checkpoints import renamed
from statekeeper_server.engine.records import Schema


@dataclass(slots=True)
class StepState:
    """One entry of a workflow's step history. Not frozen: a history is read in bulk, a frozen
    dataclass costs about four times as much to construct, and a read marks the steps it just
    decoded superseded in place."""

    step_number: int = 0
    name: str = ""
    status: StepStatus | None = None
    result: Any = None
    duration_ms: int = 0
    error: str = ""
    timestamp: float | None = None
    sequence: int = 0
    superseded: bool = False


@dataclass(frozen=True, slots=True)
class WorkflowResume:
    """One resume from a checkpoint; steps recorded before ``history_sequence`` with a higher
    number than ``step`` are superseded by it."""

    checkpoint_id: str = ""
    step: int = 0
    timestamp: float | None = None
    history_sequence: int = 0


@dataclass(frozen=True, slots=True)
class WorkflowState:
    """A workflow. ``steps`` and ``resumes`` are filled by reads, never stored with it (only
    records of version 0 hold their resumes inline)."""

    workflow_id: str = ""
    status: WorkflowStatus | None = None
    total_steps: int = 0
    current_step: int = 0
    context: Any = None
    state: Any = None
    metadata: Any = None
    steps: list[StepState] = field(default_factory=list)
    resumes: list[WorkflowResume] = field(default_factory=list)
    cancel_reason: str = ""
    error: str = ""
    checkpoint_interval: int = 0
    keep_checkpoints: int = 0
    create_time: float | None = None
    update_time: float | None = None
    revision: int = 0
    # Engine-internal: counters, the removal mark, and what this write changed for watchers
    # (so a watch never needs the previous entry).
    step_sequence: int = 0
    checkpoint_sequence: int = 0
    completed_steps: int = 0
    resume_count: int = 0
    deleting: bool = False
    status_changed: bool = False
    previous_status: WorkflowStatus | None = None
    resumed_from: str = ""


@dataclass(frozen=True, slots=True)
class WorkflowCheckpoint:
    """A resumable point of a workflow."""

    workflow_id: str = ""
    checkpoint_id: str = ""
    step: int = 0
    state: Any = None
    context: Any = None
    timestamp: float | None = None
    automatic: bool = False
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class StepUpdate:
    """What a step update returns: the step as stored, the workflow's status and current step
    after it, and the id of a checkpoint taken automatically ("" when none)."""

    step: StepState
    status: WorkflowStatus | None
    current_step: int
    checkpoint_id: str = ""


@dataclass(frozen=True, slots=True)
class WorkflowEvent:
    """One change of a watched workflow."""

    type: WorkflowEventType
    revision: int
    status: WorkflowStatus | None = None
    previous_status: WorkflowStatus | None = None
    step: StepState | None = None
    checkpoint_id: str = ""


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """One update of a workflow watch: the created marker / progress (no changes) or changes."""

    revision: int
    changes: list[WorkflowEvent] = field(default_factory=list)


def _lower(value: Any) -> Any:
    """A status of version 0 (upper-case names, "" for none) in today's form."""
    return value.lower() if isinstance(value, str) and value else None


def _legacy_workflow(data: dict[str, Any]) -> dict[str, Any]:
    """Version 0 of ``record``: short names, upper-case statuses, a ``resumed`` flag."""
    names = {
        "created": "create_time",
        "updated": "update_time",
        "step_seq": "step_sequence",
        "ckpt_seq": "checkpoint_sequence",
    }
    data = renamed(names)(data)
    resumes = data.get("resumes") or []
    resumed = data.pop("resumed", False) and resumes
    return {
        **data,
        "status": _lower(data.get("status")),
        "previous_status": _lower(data.get("previous_status")),
        "resumed_from": resumes[-1]["checkpoint_id"] if resumed else "",
    }


WORKFLOW = Schema(WorkflowState, field="workflow", upgrades={0: _legacy_workflow})
STEP = Schema(
    StepState, field="step", upgrades={0: lambda d: {**d, "status": _lower(d.get("status"))}}
)
RESUME = Schema(WorkflowResume, field="resume")
CHECKPOINT = Schema(WorkflowCheckpoint, field="checkpoint")


def mark_superseded(
    steps: Iterable[StepState], resumes: Sequence[WorkflowResume], lowest: int | None = None
) -> int | None:
    """Set ``superseded`` (in place) on the steps that a later resume went back before: step
    ``s`` is superseded when a resume recorded after it (``history_sequence > s.sequence``)
    restored a step lower than ``s.step_number``.

    ``steps`` and ``resumes`` come newest first; ``lowest`` is the lowest step restored by the
    resumes recorded after all of them (None: none), so a history can be marked one page at a
    time. Returns the lowest step restored by the resumes seen, for the next (older) page.
    Linear in steps + resumes."""
    index = 0
    for step in steps:
        while index < len(resumes) and resumes[index].history_sequence > step.sequence:
            restored = resumes[index].step
            lowest = restored if lowest is None else min(lowest, restored)
            index += 1
        if lowest is not None and step.step_number > lowest:
            step.superseded = True
    for resume in resumes[index:]:
        lowest = resume.step if lowest is None else min(lowest, resume.step)
    return lowest


def changes_of(
    name: str, revision: int, value: bytes, status_at: dict[int, WorkflowStatus | None]
) -> list[WorkflowEvent]:
    """The watch events of one stored record (noting a record's status in ``status_at``)."""
    if name.startswith("step/"):
        return [WorkflowEvent(WorkflowEventType.STEP_UPDATED, revision, step=STEP.unpack(value))]
    if name.startswith("ckpt/"):
        checkpoint_id = CHECKPOINT.unpack(value).checkpoint_id
        return [
            WorkflowEvent(
                WorkflowEventType.CHECKPOINT_CREATED, revision, checkpoint_id=checkpoint_id
            )
        ]
    if name != "record":
        return []
    record = WORKFLOW.unpack(value)
    if record.deleting:
        return []  # marked for deletion: DELETED comes when the record goes
    status_at[revision] = record.status
    changes: list[WorkflowEvent] = []
    if record.resumed_from:
        changes.append(
            WorkflowEvent(
                WorkflowEventType.RESUMED_FROM_CHECKPOINT,
                revision,
                record.status,
                checkpoint_id=record.resumed_from,
            )
        )
    if record.status_changed:
        changes.append(
            WorkflowEvent(
                WorkflowEventType.STATUS_CHANGED,
                revision,
                record.status,
                previous_status=record.previous_status,
            )
        )
    return changes
