"""The LangGraph checkpointer in statekeeper: LangGraph's own conformance suite
(``langgraph-checkpoint-conformance``, every base and extended capability), and what it does
beyond the suite: the key layout, fencing, retention and the synchronous API."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES
from langgraph.checkpoint.conformance.report import ProgressCallbacks
from langgraph.types import Command
from statekeeper.integrations.langgraph import StatekeeperSaver, ThreadForkedError
from statekeeper.state import StateConfig, StateManager

from tests.agent_stores import manager
from tests.langgraph_graphs import review_graph

__all__ = ["manager"]


async def test_conformance_suite_passes_every_capability(manager: StateManager) -> None:
    @checkpointer_test(name="StatekeeperSaver")
    async def fresh_saver() -> AsyncIterator[StatekeeperSaver]:
        # Each capability's suite gets a saver of its own key space (a fresh store).
        yield StatekeeperSaver(manager, key_prefix=f"conformance/{uuid.uuid4().hex}/")

    report = await validate(fresh_saver, progress=ProgressCallbacks.verbose())
    report.print_report()
    failures = {name: r.failures for name, r in report.results.items() if r.failures}
    assert failures == {}
    assert {name for name, r in report.results.items() if r.detected and r.passed} == {
        capability.value for capability in ALL_CAPABILITIES
    }
    assert report.conformance_level() == "FULL"


def config_of(thread: str, checkpoint_id: str | None = None, ns: str = "") -> dict[str, Any]:
    configurable: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ns}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


async def put_step(
    saver: StatekeeperSaver,
    config: dict[str, Any],
    values: dict[str, Any],
    versions: dict[str, Any],
    changed: list[str],
    step: int,
) -> dict[str, Any]:
    """Store the next checkpoint of ``config``'s thread, where ``changed`` channels got new
    versions."""
    for channel in changed:
        versions[channel] = saver.get_next_version(versions.get(channel), None)
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = dict(values)
    checkpoint["channel_versions"] = dict(versions)
    new_versions = {channel: versions[channel] for channel in changed}
    return await saver.aput(config, checkpoint, {"source": "loop", "step": step}, new_versions)


async def test_one_key_per_channel_version_so_a_large_state_fits(manager: StateManager) -> None:
    saver = StatekeeperSaver(manager)
    big = {name: "x" * 600_000 for name in ("a", "b", "c")}  # 1.8 MB: over the value limit
    versions: dict[str, Any] = {}
    first = await put_step(saver, config_of("big"), big, versions, ["a", "b", "c"], 0)
    assert len(await manager.list_keys("langgraph/blob/big/*")) == 3

    # The next super-step changes one channel: one more value is written, none rewritten.
    revisions = {k: (await manager.get_entry(k)).mod_revision for k in await manager.list_keys(
        "langgraph/blob/big/*"
    )}  # fmt: skip
    second = await put_step(saver, first, {**big, "a": "y" * 600_000}, versions, ["a"], 1)
    blobs = await manager.list_keys("langgraph/blob/big/*")
    assert len(blobs) == 4
    for key, revision in revisions.items():
        assert (await manager.get_entry(key)).mod_revision == revision

    latest = await saver.aget_tuple(config_of("big"))
    assert latest is not None
    assert latest.config["configurable"]["checkpoint_id"] == second["configurable"]["checkpoint_id"]
    assert latest.checkpoint["channel_values"] == {**big, "a": "y" * 600_000}
    older = await saver.aget_tuple(first)
    assert older is not None and older.checkpoint["channel_values"] == big


async def test_list_is_newest_first_with_before_and_limit(manager: StateManager) -> None:
    saver = StatekeeperSaver(manager)
    config = config_of("paged")
    ids = []
    versions: dict[str, Any] = {}
    for step in range(7):
        config = await put_step(saver, config, {"n": step}, versions, ["n"], step)
        ids.append(config["configurable"]["checkpoint_id"])
    listed = [t.checkpoint["id"] async for t in saver.alist(config_of("paged"))]
    assert listed == ids[::-1]
    page = [
        t.checkpoint["id"]
        async for t in saver.alist(config_of("paged"), before=config_of("paged", ids[4]), limit=2)
    ]
    assert page == [ids[3], ids[2]]
    assert [t.checkpoint["channel_values"] async for t in saver.alist(None, limit=1)] == [{"n": 6}]


async def test_fencing_refuses_a_put_from_a_stale_read(manager: StateManager) -> None:
    first, second = StatekeeperSaver(manager, fencing=True), StatekeeperSaver(manager, fencing=True)
    versions: dict[str, Any] = {}
    base = await put_step(first, config_of("fenced"), {"n": 0}, versions, ["n"], 0)

    read_by_first = await first.aget_tuple(config_of("fenced"))
    read_by_second = await second.aget_tuple(config_of("fenced"))
    assert read_by_first is not None and read_by_second is not None
    moved = await put_step(first, read_by_first.config, {"n": 1}, dict(versions), ["n"], 1)
    with pytest.raises(ThreadForkedError):
        await put_step(second, read_by_second.config, {"n": 2}, dict(versions), ["n"], 1)
    latest = await second.aget_tuple(config_of("fenced"))
    assert latest is not None
    assert latest.checkpoint["id"] == moved["configurable"]["checkpoint_id"]
    assert len(await manager.list_keys("langgraph/ckpt/fenced/*")) == 2

    # A put with no read at all may only start a thread, never continue one.
    with pytest.raises(ThreadForkedError):
        await put_step(second, config_of("fenced"), {"n": 3}, dict(versions), ["n"], 2)
    # Time travel: a run that read an older checkpoint while nobody else wrote may fork from it.
    old = await second.aget_tuple(base)
    assert old is not None
    forked = await put_step(second, old.config, {"n": 4}, dict(versions), ["n"], 1)
    latest = await first.aget_tuple(config_of("fenced"))
    assert latest is not None and latest.checkpoint["id"] == forked["configurable"]["checkpoint_id"]
    assert latest.parent_config == config_of("fenced", base["configurable"]["checkpoint_id"])


async def test_keep_last_retains_the_newest_checkpoints_and_what_they_use(
    manager: StateManager,
) -> None:
    saver = StatekeeperSaver(manager, keep_last=2)
    config = config_of("retained")
    versions: dict[str, Any] = {}
    configs = []
    for step in range(5):
        # "fixed" never changes after the first step: its value must survive the pruning.
        changed = ["n", "fixed"] if step == 0 else ["n"]
        config = await put_step(
            saver, config, {"n": step, "fixed": "kept"}, versions, changed, step
        )
        await saver.aput_writes(config, [("n", step)], f"task-{step}")
        configs.append(config)
    listed = [t async for t in saver.alist(config_of("retained"))]
    assert [t.checkpoint["channel_values"] for t in listed] == [
        {"n": 4, "fixed": "kept"},
        {"n": 3, "fixed": "kept"},
    ]
    assert [t.pending_writes for t in listed] == [[("task-4", "n", 4)], [("task-3", "n", 3)]]
    assert len(await manager.list_keys("langgraph/blob/retained/*")) == 3  # n@3, n@4, fixed
    assert len(await manager.list_keys("langgraph/write/retained/*")) == 2
    assert await saver.aget_tuple(configs[0]) is None


async def test_ttl_expires_history_and_keeps_values_as_long_as_checkpoints_use_them(
    manager: StateManager,
) -> None:
    ttl = 3600.0
    saver = StatekeeperSaver(manager, ttl=ttl)
    versions: dict[str, Any] = {}
    first = await put_step(
        saver, config_of("ttl"), {"n": 0, "fixed": 1}, versions, ["n", "fixed"], 0
    )
    record = await manager.get_entry(
        f"langgraph/ckpt/ttl//{first['configurable']['checkpoint_id']}"
    )
    fixed_key = f"langgraph/blob/ttl//fixed/{versions['fixed']}"
    blob = await manager.get_entry(fixed_key)
    assert record is not None and record.expires_at is not None
    assert blob is not None and blob.expires_at is not None
    lifetime = blob.expires_at - record.expires_at
    assert 0.9 * ttl < lifetime.total_seconds() < 1.1 * ttl  # values live ttl longer

    # While "fixed" was written recently, later steps do not write it again...
    second = await put_step(saver, first, {"n": 1, "fixed": 1}, versions, ["n"], 1)
    assert (await manager.get_entry(fixed_key)).mod_revision == blob.mod_revision
    # ...once it was written more than ttl ago (the head notes when), the next step does.
    head = await manager.get_entry("langgraph/head/ttl/")
    assert head is not None
    aged = {
        **head.value,
        "blobs": {k: [v[0], v[1] - 2 * ttl] for k, v in head.value["blobs"].items()},
    }
    await manager.save("langgraph/head/ttl/", aged)
    await put_step(saver, second, {"n": 2, "fixed": 1}, versions, ["n"], 2)
    refreshed = await manager.get_entry(fixed_key)
    assert refreshed is not None and refreshed.mod_revision > blob.mod_revision
    latest = await saver.aget_tuple(config_of("ttl"))
    assert latest is not None and latest.checkpoint["channel_values"] == {"n": 2, "fixed": 1}


def test_synchronous_api_runs_a_graph_with_interrupt_and_resume() -> None:
    # An application's event loop runs in one thread; LangGraph's sync API is called from
    # another, and the saver runs each call on the application's loop.
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def open_saver() -> StatekeeperSaver:
        saver = StatekeeperSaver(StateManager(StateConfig(backend="memory")))
        assert await saver.aget_tuple(config_of("sync")) is None
        return saver

    try:
        saver = asyncio.run_coroutine_threadsafe(open_saver(), loop).result()
        graph = review_graph(saver)
        config: dict[str, Any] = {"configurable": {"thread_id": "sync"}}
        paused = graph.invoke({"topic": "sync", "log": []}, config)
        assert "__interrupt__" in paused
        assert graph.get_state(config).next == ("review",)
        done = graph.invoke(Command(resume="yes"), config)
        assert done["log"] == ["write", "review:yes", "published"]
        assert len(list(graph.get_state_history(config))) == 5
        saver.delete_thread("sync")
        assert graph.get_state(config).values == {}
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


async def test_synchronous_api_inside_its_own_loop_is_refused(manager: StateManager) -> None:
    saver = StatekeeperSaver(manager)
    assert await saver.aget_tuple(config_of("none")) is None
    with pytest.raises(RuntimeError, match="use the async API"):
        saver.get_tuple(config_of("none"))
