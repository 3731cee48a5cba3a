"""The documented async Python API of statekeeper.

Every class of the reference documentation is importable from here::

    from statekeeper.state import StateManager, StateConfig, MemoryBackend, ...
"""

from typing import TYPE_CHECKING, Any

from statekeeper.errors import (
    AlreadyExistsError,
    ConflictError,
    FailedPreconditionError,
    HistoryCompactedError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    StateKeeperError,
    UnavailableError,
)
from statekeeper.state.agents import (
    AgentCheckpoint,
    AgentRecoveryManager,
    AgentSnapshot,
    AgentStateStore,
    RecoveryStatus,
)
from statekeeper.state.backends import BACKEND_MODULES, backend_class
from statekeeper.state.changes import ChangeType, StateChange, StateEntry
from statekeeper.state.knowledge import (
    IndexingProgress,
    IndexingStatus,
    KnowledgeBaseState,
    KnowledgeStateManager,
    SourceState,
    SyncStatus,
)
from statekeeper.state.orchestration import (
    AgentCoordinationState,
    OrchestrationStateManager,
    QueuedTask,
    TaskQueueState,
    TaskStatus,
    TeamChange,
    TeamChangeType,
    TeamState,
)
from statekeeper.state.speech import (
    AudioSession,
    AudioSessionStatus,
    SessionEvent,
    SessionEventKind,
    SpeechStateManager,
    StreamingMode,
    STTState,
    TranscriptionStatus,
    TTSState,
    VoiceConversationState,
)
from statekeeper.state.state_manager import StateConfig, StateManager, StateStats
from statekeeper.state.tools import (
    RetryState,
    ToolCacheEntry,
    ToolExecution,
    ToolExecutionStatus,
    ToolStateManager,
    ToolStats,
)
from statekeeper.state.workflows import (
    StepState,
    WorkflowCheckpoint,
    WorkflowEvent,
    WorkflowEventType,
    WorkflowResume,
    WorkflowState,
    WorkflowStateManager,
    WorkflowStatus,
)

if TYPE_CHECKING:
    from statekeeper_server.engine.storage.file import FileBackend
    from statekeeper_server.engine.storage.memory import MemoryBackend
    from statekeeper_server.engine.storage.redis import RedisBackend


def __getattr__(name: str) -> Any:
    """The backend classes, imported on first access (see :mod:`statekeeper.state.backends`)."""
    if name in BACKEND_MODULES:
        return backend_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AgentCheckpoint",
    "AgentCoordinationState",
    "AgentRecoveryManager",
    "AgentSnapshot",
    "AgentStateStore",
    "AlreadyExistsError",
    "AudioSession",
    "AudioSessionStatus",
    "ChangeType",
    "ConflictError",
    "FailedPreconditionError",
    "FileBackend",
    "HistoryCompactedError",
    "IndexingProgress",
    "IndexingStatus",
    "InvalidArgumentError",
    "KnowledgeBaseState",
    "KnowledgeStateManager",
    "MemoryBackend",
    "NotFoundError",
    "OrchestrationStateManager",
    "QueuedTask",
    "RecoveryStatus",
    "RedisBackend",
    "ResourceExhaustedError",
    "RetryState",
    "STTState",
    "SessionEvent",
    "SessionEventKind",
    "SourceState",
    "SpeechStateManager",
    "StateChange",
    "StateConfig",
    "StateEntry",
    "StateKeeperError",
    "StateManager",
    "StateStats",
    "StepState",
    "StreamingMode",
    "SyncStatus",
    "TTSState",
    "TaskQueueState",
    "TaskStatus",
    "TeamChange",
    "TeamChangeType",
    "TeamState",
    "ToolCacheEntry",
    "ToolExecution",
    "ToolExecutionStatus",
    "ToolStateManager",
    "ToolStats",
    "TranscriptionStatus",
    "UnavailableError",
    "VoiceConversationState",
    "WorkflowCheckpoint",
    "WorkflowEvent",
    "WorkflowEventType",
    "WorkflowResume",
    "WorkflowState",
    "WorkflowStateManager",
    "WorkflowStatus",
]
