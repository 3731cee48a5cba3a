"""Real LangGraph ``StateGraph`` runs on the statekeeper checkpointer against a server process
with a token and a tenant: interrupt, resume from a second process, time travel, and fencing
between two processes continuing one thread."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.types import Command
from statekeeper.integrations.langgraph import StatekeeperSaver, ThreadForkedError
from statekeeper.state import StateConfig, StateManager

from tests.agent_stores import TOKENS
from tests.langgraph_graphs import counter_graph, review_graph
from tests.programs import child_process
from tests.servers import ServerProcess, start_server_process

TOKEN, TENANT = "agents-a", "team-a"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A file-backend server process of its own data directory that requires a token."""
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    process = start_server_process(
        "--backend", "file", "--data-dir", str(tmp_path / "data"),
        "--auth-tokens-file", str(tokens),
    )  # fmt: skip
    yield process
    process.terminate()


@pytest.fixture
async def manager(server: ServerProcess) -> AsyncIterator[StateManager]:
    """A StateManager of the server, as tenant ``team-a``."""
    config = StateConfig(backend="grpc", address=server.address, token=TOKEN, namespace=TENANT)
    async with StateManager(config) as instance:
        yield instance


async def second_process(server: ServerProcess, thread: str, action: str, *flags: str) -> Any:
    """Run ``action`` on ``thread`` in another Python process (tests/langgraph_graphs.py, with
    LangGraph's synchronous API) and return what it printed."""
    async with child_process(
        sys.executable, "-m", "tests.langgraph_graphs",
        server.address, TOKEN, TENANT, thread, action, *flags,
        stdout=asyncio.subprocess.PIPE,
    ) as process:  # fmt: skip
        out, _ = await process.communicate()
    assert process.returncode == 0, out
    return json.loads(out.decode().strip().splitlines()[-1])


def thread_config(thread: str, **extra: Any) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread, **extra}}


async def test_interrupt_then_resume_in_a_second_process_then_time_travel(
    server: ServerProcess, manager: StateManager
) -> None:
    graph = review_graph(StatekeeperSaver(manager))
    config = thread_config("post-1")

    first = await graph.ainvoke({"topic": "checkpoints", "log": []}, config)
    assert first["__interrupt__"][0].value == {
        "question": "publish?",
        "draft": "a post about checkpoints",
    }
    paused = await graph.aget_state(config)
    assert paused.next == ("review",)

    resumed = await second_process(server, "post-1", "resume:yes")
    assert resumed["result"]["log"] == ["write", "review:yes", "published"]
    done = await graph.aget_state(config)
    assert done.next == ()
    assert done.values["log"] == ["write", "review:yes", "published"]

    # Time travel: replay from the checkpoint that waited for the review (a fork that asks
    # again), then answer differently.
    history = [snapshot async for snapshot in graph.aget_state_history(config)]
    assert [s.next for s in history] == [(), ("publish",), ("review",), ("write",), ("__start__",)]
    waiting = history[2]
    replayed = await graph.ainvoke(None, waiting.config)
    assert replayed["log"] == ["write"]
    assert "__interrupt__" in replayed
    forked = await graph.ainvoke(Command(resume="no"), config)
    assert forked["log"] == ["write", "review:no", "discarded"]

    latest = await graph.aget_state(config)
    assert latest.values["log"] == ["write", "review:no", "discarded"]
    assert latest.parent_config is not None
    # Both branches stay in the history: the published run is still reachable by its id.
    published = await graph.aget_state(done.config)
    assert published.values["log"] == ["write", "review:yes", "published"]
    branches = [s async for s in graph.aget_state_history(config)]
    children_of_waiting = [
        s
        for s in branches
        if s.parent_config
        and s.parent_config["configurable"]["checkpoint_id"]
        == waiting.config["configurable"]["checkpoint_id"]
    ]
    assert len(children_of_waiting) == 2


async def race(server: ServerProcess, manager: StateManager, thread: str, *flags: str) -> Any:
    """This process starts a counter run and holds it inside its node while a second process
    runs the counter graph on the same thread to the end; then this run continues."""
    entered, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        entered.set()
        await release.wait()

    graph = counter_graph(StatekeeperSaver(manager, fencing="fencing" in flags), hold)
    run = asyncio.ensure_future(graph.ainvoke({"who": "first process"}, thread_config(thread)))
    await entered.wait()
    other = await second_process(server, thread, "count", *flags)
    release.set()
    try:
        return other, await run
    except ThreadForkedError as error:
        return other, error


async def test_fencing_stops_the_second_writer_of_a_thread(
    server: ServerProcess, manager: StateManager
) -> None:
    other, mine = await race(server, manager, "counter-fenced", "fencing")
    assert other["result"]["count"] == 1
    assert isinstance(mine, ThreadForkedError)
    # Nothing of the stale run was stored: the thread is the second process's run.
    state = await counter_graph(StatekeeperSaver(manager)).aget_state(
        thread_config("counter-fenced")
    )
    assert state.values["by"] == ["second process"]

    # A fenced run that reads the thread afresh continues it.
    graph = counter_graph(StatekeeperSaver(manager, fencing=True))
    again = await graph.ainvoke({"who": "first process"}, thread_config("counter-fenced"))
    assert again["count"] == 2
    assert again["by"] == ["second process", "first process"]


async def test_without_fencing_the_same_race_forks_the_thread_silently(
    server: ServerProcess, manager: StateManager
) -> None:
    other, mine = await race(server, manager, "counter-unfenced")
    assert other["result"]["count"] == 1
    assert mine["count"] == 1  # both runs counted from the same checkpoint
    graph = counter_graph(StatekeeperSaver(manager))
    history = [s async for s in graph.aget_state_history(thread_config("counter-unfenced"))]
    parents = [s.parent_config["configurable"]["checkpoint_id"] for s in history if s.parent_config]
    assert len(parents) != len(set(parents))  # one checkpoint has two children: a fork


SYNC_SCRIPT = Path(__file__).with_name("langgraph_sync_script.py")


async def sync_script(thread: str, *target: str) -> Any:
    """Run tests/langgraph_sync_script.py (``graph.invoke`` from a plain script with no event
    loop) on ``thread``; what it printed, after checking it wrote nothing to stderr."""
    async with child_process(
        sys.executable, str(SYNC_SCRIPT), thread, *target,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    ) as process:  # fmt: skip
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert err.decode() == ""
    return json.loads(out.decode().strip().splitlines()[-1])


async def test_sync_invoke_from_a_plain_script_against_a_server(
    server: ServerProcess, manager: StateManager
) -> None:
    target = ("grpc", server.address, TOKEN, TENANT)
    first = await sync_script("sync-1", *target)
    assert first["result"] == {"count": 1, "log": ["start", "run 1"]}
    assert first["values"] == first["result"] and first["next"] == []
    second = await sync_script("sync-1", *target)  # another process continues the thread
    assert second["result"] == {"count": 2, "log": ["start", "run 1", "start", "run 2"]}
    assert second["history"] == 2 * first["history"]
    # What the scripts stored is what the async API of this process reads.
    stored = await StatekeeperSaver(manager).aget_tuple(thread_config("sync-1"))
    assert stored is not None
    assert stored.checkpoint["id"] == second["checkpoint_id"]
    assert stored.checkpoint["channel_values"]["count"] == 2


async def test_sync_invoke_from_a_plain_script_embedded(tmp_path: Path) -> None:
    target = ("file", str(tmp_path / "store"))
    first = await sync_script("sync-2", *target)
    assert first["values"] == {"count": 1, "log": ["start", "run 1"]}
    second = await sync_script("sync-2", *target)  # the thread survived the first process
    assert second["values"] == {"count": 2, "log": ["start", "run 1", "start", "run 2"]}
    assert second["history"] == 2 * first["history"]
