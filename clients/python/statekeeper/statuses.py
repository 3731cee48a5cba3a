"""The status vocabularies that the Python API and the server's engine share (one definition
each). Member names are the proto enum value names without their prefix
(``INDEXING_STATUS_IN_PROGRESS`` is ``IndexingStatus.IN_PROGRESS``); values are lower-case.
Importing this module loads neither the client API nor the server."""

from __future__ import annotations

import enum


class IndexingStatus(enum.StrEnum):
    """The phase of a knowledge base's indexing run."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    PAUSED = "paused"
    CANCELLED = "cancelled"


class SyncStatus(enum.StrEnum):
    """The synchronisation phase of a source."""

    PENDING = "pending"
    SYNCING = "syncing"
    SYNCED = "synced"
    FAILED = "failed"


class AudioSessionStatus(enum.Enum):
    """The lifecycle state of a speech session."""

    INITIALIZING = "initializing"
    ACTIVE = "active"
    PAUSED = "paused"
    ERROR = "error"
    ENDED = "ended"


class StreamingMode(enum.Enum):
    """In which directions a session streams audio."""

    NONE = "none"
    INPUT = "input"
    OUTPUT = "output"
    BIDIRECTIONAL = "bidirectional"


class TranscriptionStatus(enum.Enum):
    """The state of speech-to-text in a session."""

    IDLE = "idle"
    LISTENING = "listening"
    TRANSCRIBING = "transcribing"
    COMPLETED = "completed"
    FAILED = "failed"


class ToolExecutionStatus(enum.Enum):
    """The lifecycle state of a tool execution."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


class StepStatus(enum.StrEnum):
    """Where one step of a workflow is; equal to its string value, so ``status="completed"``
    works too."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"


class WorkflowStatus(enum.Enum):
    """Where a workflow is in its life cycle. A plain Enum rather than a StrEnum because the
    reference prints it as ``WorkflowStatus.PAUSED``."""

    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class WorkflowEventType(enum.Enum):
    """What a watched change of a workflow is."""

    STATUS_CHANGED = "status_changed"
    STEP_UPDATED = "step_updated"
    CHECKPOINT_CREATED = "checkpoint_created"
    RESUMED_FROM_CHECKPOINT = "resumed_from_checkpoint"
    DELETED = "deleted"
