"""LangGraph's synchronous API from a plain script: no event loop runs anywhere in it.

``python tests/langgraph_sync_script.py THREAD grpc ADDRESS TOKEN NAMESPACE`` (a server) or
``python tests/langgraph_sync_script.py THREAD file DATA_DIR`` (embedded, the file backend)
builds the manager and the saver at module level, runs a compiled ``StateGraph`` once more on
``THREAD`` with ``graph.invoke``, reads ``graph.get_state`` and the thread's history, and
prints them as one JSON line.
"""

from __future__ import annotations

import json
import operator
import sys
from typing import Annotated, TypedDict

from langgraph.graph import END, START, StateGraph
from statekeeper.integrations.langgraph import StatekeeperSaver
from statekeeper.state import StateConfig, StateManager


class Steps(TypedDict, total=False):
    """How many runs the thread has seen, and what each wrote."""

    count: int
    log: Annotated[list[str], operator.add]


def count(state: Steps) -> Steps:
    """Add one to the count and log it."""
    number = state.get("count", 0) + 1
    return {"count": number, "log": [f"run {number}"]}


THREAD, TARGET, *ARGS = sys.argv[1:]
if TARGET == "grpc":
    ADDRESS, TOKEN, NAMESPACE = ARGS
    CONFIG = StateConfig(backend="grpc", address=ADDRESS, token=TOKEN, namespace=NAMESPACE)
else:
    CONFIG = StateConfig(backend="file", file_path=ARGS[0])
# Built at module level, as agent code does: no I/O and no event loop needed.
saver = StatekeeperSaver(StateManager(CONFIG))
builder = StateGraph(Steps)
builder.add_node("count", count)
builder.add_edge(START, "count")
builder.add_edge("count", END)
graph = builder.compile(checkpointer=saver)

run = {"configurable": {"thread_id": THREAD}}
result = graph.invoke({"log": ["start"]}, run)
state = graph.get_state(run)
history = list(graph.get_state_history(run))
saver.close()
print(
    json.dumps(
        {
            "result": result,
            "values": state.values,
            "next": list(state.next),
            "checkpoint_id": state.config["configurable"]["checkpoint_id"],
            "history": len(history),
        }
    )
)
