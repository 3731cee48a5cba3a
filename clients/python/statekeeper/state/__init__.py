"""The documented async Python API of statekeeper.

Every class of the reference documentation is importable from here::

    from statekeeper.state import StateManager, StateConfig, MemoryBackend, ...
"""

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
from statekeeper.state.backends import FileBackend, MemoryBackend, RedisBackend
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

__all__ = [
    "AgentCoordinationState",
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
]
