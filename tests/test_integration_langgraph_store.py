"""The LangGraph store in statekeeper: put, get, delete, search with filters, list_namespaces,
TTL, and a graph node that remembers across threads, embedded and against a token/tenant
server."""

from __future__ import annotations

import operator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypedDict

from langgraph.graph import START, StateGraph
from langgraph.store.base import BaseStore
from statekeeper.integrations.langgraph import StatekeeperSaver, StatekeeperStore
from statekeeper.state import StateManager

from tests.agent_stores import manager

__all__ = ["manager"]


async def test_put_get_overwrite_and_delete(manager: StateManager) -> None:
    store = StatekeeperStore(manager)
    await store.aput(("users", "u1"), "prefs", {"theme": "dark", "n": 1})
    first = await store.aget(("users", "u1"), "prefs")
    assert first is not None
    assert (first.namespace, first.key, first.value) == (
        ("users", "u1"),
        "prefs",
        {"theme": "dark", "n": 1},
    )
    await store.aput(("users", "u1"), "prefs", {"theme": "light"})
    second = await store.aget(("users", "u1"), "prefs")
    assert second is not None and second.value == {"theme": "light"}
    assert second.created_at == first.created_at
    assert second.updated_at >= first.updated_at
    assert await store.aget(("users", "u10"), "prefs") is None  # no prefix match
    await store.adelete(("users", "u1"), "prefs")
    assert await store.aget(("users", "u1"), "prefs") is None


async def test_search_by_namespace_prefix_and_filter(manager: StateManager) -> None:
    store = StatekeeperStore(manager)
    docs = {
        ("docs", "a"): {"kind": "report", "score": 5, "meta": {"lang": "en"}},
        ("docs", "b"): {"kind": "report", "score": 2, "meta": {"lang": "de"}},
        ("docs", "c"): {"kind": "memo", "score": 9, "meta": {"lang": "en"}},
    }
    for (_, key), value in docs.items():
        await store.aput(("docs",), key, value)
    await store.aput(("docs", "archive"), "old", {"kind": "report", "score": 7})
    await store.aput(("docsx",), "other", {"kind": "report", "score": 7})

    everything = await store.asearch(("docs",), limit=10)
    assert [(i.namespace, i.key) for i in everything] == [
        (("docs",), "a"), (("docs",), "b"), (("docs",), "c"), (("docs", "archive"), "old"),
    ]  # fmt: skip
    reports = await store.asearch(("docs",), filter={"kind": "report", "score": {"$gte": 5}})
    assert sorted(i.key for i in reports) == ["a", "old"]
    assert [i.key for i in await store.asearch(("docs",), filter={"meta": {"lang": "en"}})] == [
        "a",
        "c",
    ]
    assert [i.key for i in await store.asearch(("docs",), filter={"kind": {"$ne": "report"}})] == [
        "c"
    ]
    page = await store.asearch(("docs",), limit=2, offset=1)
    assert [i.key for i in page] == ["b", "c"]
    assert [i.key for i in await store.asearch((), filter={"score": {"$lt": 3}})] == ["b"]


async def test_list_namespaces_with_conditions_and_depth(manager: StateManager) -> None:
    store = StatekeeperStore(manager)
    for namespace in [("a", "x", "v1"), ("a", "y", "v1"), ("a", "y", "v2"), ("b", "x", "v1")]:
        await store.aput(namespace, "k", {"n": 1})
    assert await store.alist_namespaces() == [
        ("a", "x", "v1"), ("a", "y", "v1"), ("a", "y", "v2"), ("b", "x", "v1"),
    ]  # fmt: skip
    assert await store.alist_namespaces(prefix=("a",)) == [
        ("a", "x", "v1"), ("a", "y", "v1"), ("a", "y", "v2"),
    ]  # fmt: skip
    assert await store.alist_namespaces(suffix=("v1",)) == [
        ("a", "x", "v1"), ("a", "y", "v1"), ("b", "x", "v1"),
    ]  # fmt: skip
    assert await store.alist_namespaces(prefix=("*", "x")) == [("a", "x", "v1"), ("b", "x", "v1")]
    assert await store.alist_namespaces(max_depth=2) == [("a", "x"), ("a", "y"), ("b", "x")]
    assert await store.alist_namespaces(limit=1, offset=1) == [("a", "y", "v1")]


async def test_ttl_expires_items_and_a_read_refreshes_it(manager: StateManager) -> None:
    store = StatekeeperStore(manager, ttl={"default_ttl": 60, "refresh_on_read": True})
    await store.aput(("s",), "short", {"n": 1})
    await store.aput(("s",), "long", {"n": 2}, ttl=120)
    key = "langgraph-store/s/=short"
    entry = await manager.get_entry(key)
    assert entry is not None and entry.expires_at is not None
    soon = datetime.now(UTC) + timedelta(minutes=60)
    expires = entry.expires_at.replace(tzinfo=entry.expires_at.tzinfo or UTC)
    assert abs((expires - soon).total_seconds()) < 600
    long = await manager.get_entry("langgraph-store/s/=long")
    assert long is not None and long.expires_at is not None and long.expires_at > entry.expires_at

    assert await store.aget(("s",), "short") is not None  # refresh_on_read: written again
    refreshed = await manager.get_entry(key)
    assert refreshed is not None and refreshed.mod_revision > entry.mod_revision
    assert await store.aget(("s",), "short", refresh_ttl=False) is not None
    assert (await manager.get_entry(key)).mod_revision == refreshed.mod_revision

    no_ttl = StatekeeperStore(manager)
    await no_ttl.aput(("s",), "forever", {"n": 3})
    assert (await manager.get_entry("langgraph-store/s/=forever")).expires_at is None


class Chat(TypedDict):
    user: str
    said: Annotated[list[str], operator.add]


async def test_a_graph_remembers_across_threads(manager: StateManager) -> None:
    async def remember(state: Chat, *, store: BaseStore) -> dict[str, Any]:
        namespace = ("memories", state["user"])
        seen = [item.value["text"] for item in await store.asearch(namespace)]
        await store.aput(namespace, f"m{len(seen)}", {"text": state["said"][-1]})
        return {"said": [f"I remember {seen}"]}

    builder = StateGraph(Chat)
    builder.add_node("remember", remember)
    builder.add_edge(START, "remember")
    graph = builder.compile(checkpointer=StatekeeperSaver(manager), store=StatekeeperStore(manager))
    await graph.ainvoke(
        {"user": "ann", "said": ["I like tea"]}, {"configurable": {"thread_id": "1"}}
    )
    answer = await graph.ainvoke(
        {"user": "ann", "said": ["hello"]}, {"configurable": {"thread_id": "2"}}
    )
    assert answer["said"] == ["hello", "I remember ['I like tea']"]
