"""Real LangGraph graphs for the checkpointer tests, and a second process that runs them.

``python -m tests.langgraph_graphs ADDRESS TOKEN NAMESPACE THREAD ACTION [fencing]`` runs one
graph on one thread of a statekeeper server (``graph.ainvoke``) and prints the outcome as one
JSON line:

- ``resume:<answer>``: resume the review graph's interrupt with ``<answer>``;
- ``count``: run the counter graph once more on the thread.
"""

from __future__ import annotations

import asyncio
import json
import operator
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, interrupt
from statekeeper.integrations.langgraph import StatekeeperSaver, ThreadForkedError
from statekeeper.state import StateConfig, StateManager


class Review(TypedDict, total=False):
    """A draft that a person must approve before it is published."""

    topic: str
    draft: str
    verdict: str
    log: Annotated[list[str], operator.add]


def _write(state: Review) -> Review:
    return {"draft": f"a post about {state['topic']}", "log": ["write"]}


def _review(state: Review) -> Review:
    answer = interrupt({"question": "publish?", "draft": state["draft"]})
    return {"verdict": answer, "log": [f"review:{answer}"]}


def _publish(state: Review) -> Review:
    return {"log": ["published" if state["verdict"] == "yes" else "discarded"]}


def review_graph(saver: StatekeeperSaver) -> CompiledStateGraph[Any, Any, Any, Any]:
    """write -> review (interrupts for a verdict) -> publish."""
    builder = StateGraph(Review)
    builder.add_node("write", _write)
    builder.add_node("review", _review)
    builder.add_node("publish", _publish)
    builder.add_edge(START, "write")
    builder.add_edge("write", "review")
    builder.add_edge("review", "publish")
    builder.add_edge("publish", END)
    return builder.compile(checkpointer=saver)


class Counter(TypedDict, total=False):
    """A count and who incremented it."""

    count: int
    by: Annotated[list[str], operator.add]
    who: str


def counter_graph(
    saver: StatekeeperSaver, before_step: Callable[[], Awaitable[None]] | None = None
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """One node that adds 1 to ``count``; ``before_step`` (if given) is awaited inside the
    node first, so a test can hold a run in the middle of its super-step."""

    async def increment(state: Counter) -> Counter:
        if before_step is not None:
            await before_step()
        return {"count": state.get("count", 0) + 1, "by": [state["who"]]}

    builder = StateGraph(Counter)
    builder.add_node("increment", increment)
    builder.add_edge(START, "increment")
    builder.add_edge("increment", END)
    return builder.compile(checkpointer=saver)


async def main(
    address: str, token: str, namespace: str, thread: str, action: str, *flags: str
) -> None:
    """Run ``action`` on ``thread`` and print the outcome."""
    config = StateConfig(backend="grpc", address=address, token=token, namespace=namespace)
    async with StateManager(config) as manager:
        saver = StatekeeperSaver(manager, fencing="fencing" in flags)
        run_config: dict[str, Any] = {"configurable": {"thread_id": thread}}
        try:
            if action.startswith("resume:"):
                graph = review_graph(saver)
                result = await graph.ainvoke(Command(resume=action[7:]), run_config)
            else:
                graph = counter_graph(saver)
                result = await graph.ainvoke({"who": "second process"}, run_config)
            print(json.dumps({"result": result}))
        except ThreadForkedError as error:
            print(json.dumps({"error": type(error).__name__, "message": error.message}))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
