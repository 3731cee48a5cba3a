"""LangGraph in statekeeper: a checkpointer (:class:`StatekeeperSaver`) and a long-term memory
store (:class:`StatekeeperStore`), each a one-line swap for LangGraph's own
(``pip install 'statekeeper[langgraph]'``)."""

from statekeeper.integrations.langgraph.saver import (
    DEFAULT_KEY_PREFIX,
    HEAD_REVISION,
    StatekeeperSaver,
    ThreadForkedError,
)

__all__ = ["DEFAULT_KEY_PREFIX", "HEAD_REVISION", "StatekeeperSaver", "ThreadForkedError"]
