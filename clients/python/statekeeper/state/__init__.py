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
from statekeeper.state.state_manager import StateConfig, StateManager, StateStats

__all__ = [
    "AlreadyExistsError",
    "ChangeType",
    "ConflictError",
    "FailedPreconditionError",
    "FileBackend",
    "HistoryCompactedError",
    "InvalidArgumentError",
    "MemoryBackend",
    "NotFoundError",
    "RedisBackend",
    "ResourceExhaustedError",
    "StateChange",
    "StateConfig",
    "StateEntry",
    "StateKeeperError",
    "StateManager",
    "StateStats",
    "UnavailableError",
]
