"""LangGraph in statekeeper: a checkpointer (:class:`StatekeeperSaver`) and a long-term memory
store (:class:`StatekeeperStore`), each a one-line swap for LangGraph's own
(``pip install 'statekeeper[langgraph]'``)."""

from statekeeper.integrations.langgraph.saver import (
    DEFAULT_KEY_PREFIX,
    HEAD_REVISION,
    StatekeeperSaver,
    ThreadForkedError,
)
from statekeeper.integrations.langgraph.store import DEFAULT_STORE_PREFIX, StatekeeperStore

__all__ = [
    "DEFAULT_KEY_PREFIX",
    "DEFAULT_STORE_PREFIX",
    "HEAD_REVISION",
    "StatekeeperSaver",
    "StatekeeperStore",
    "ThreadForkedError",
]
