"""The workflow manager (the reference's ``WorkflowStateManager``): its records
(:mod:`.records`), the reads of its step history (:mod:`.history`) and its engine
(:mod:`.engine`)."""

from statekeeper_server.engine.domains.workflows.engine import (
    ACTIVE,
    NAMESPACE,
    TRANSITIONS,
    WorkflowEngine,
)
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
    mark_superseded,
)

__all__ = [
    "ACTIVE",
    "CHECKPOINT",
    "NAMESPACE",
    "RESUME",
    "STEP",
    "TRANSITIONS",
    "WORKFLOW",
    "StepState",
    "StepStatus",
    "StepUpdate",
    "WatchBatch",
    "WorkflowCheckpoint",
    "WorkflowEngine",
    "WorkflowEvent",
    "WorkflowEventType",
    "WorkflowResume",
    "WorkflowState",
    "WorkflowStatus",
    "mark_superseded",
]
