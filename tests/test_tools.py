"""ToolStateManager: the reference's examples (embedded and remote), hashing, caching, retries,
statistics, bad input, and exact statistics under concurrent writers on two servers."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sys
import textwrap
from datetime import datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from statekeeper import values
from statekeeper.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    Reason,
    StateKeeperError,
)
from statekeeper.state import (
    RetryState,
    ToolCacheEntry,
    ToolExecution,
    ToolExecutionStatus,
    ToolStateManager,
    ToolStats,
)
from statekeeper.v1 import common_pb2, tool_service_pb2, tool_service_pb2_grpc
from statekeeper_server.engine.domains import tools_records as records
from statekeeper_server.engine.domains.tools import ToolEngine
from statekeeper_server.engine.domains.tools_records import canonical_json, parameters_hash
from statekeeper_server.engine.storage.backend import EventType
from statekeeper_server.engine.storage.memory import MemoryBackend

from tests.programs import child_processes

logger = logging.getLogger(__name__)


class FakeTool:
    """Stands in for the example's ``tool``: records the parameters it was executed with."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def execute(self, parameters: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(parameters)
        return {"results": ["fresh"]}


async def tracking_example(persistence_kwargs: dict[str, str]) -> ToolStateManager:
    """The reference's "Tool Execution Tracking" example; returns its ``tool_state``.

    Verbatim but for the import line, ``persistence="redis"`` (the test's mode instead) and
    the placeholder ``[...]`` in the result, which is not a document (a concrete list here).
    """
    from statekeeper.state import (
        ToolExecution,
        ToolExecutionStatus,
        ToolStateManager,
    )

    # Initialize tool state manager
    tool_state = ToolStateManager(
        **persistence_kwargs,
        cache_results=True,
        cache_ttl=3600,
    )

    # Track tool execution
    execution = ToolExecution(
        execution_id="exec_001",
        tool_name="search_web",
        status=ToolExecutionStatus.RUNNING,
        started_at=datetime.now(),
        parameters={"query": "AI news"},
    )

    await tool_state.start_execution(execution)

    # Update execution
    await tool_state.complete_execution(
        execution_id="exec_001",
        result={"results": ["AI news 1", "AI news 2"]},
        duration_ms=1500,
    )

    # Get execution history
    history = await tool_state.get_execution_history(
        tool_name="search_web",
        limit=100,
    )
    assert [e.execution_id for e in history] == ["exec_001"]
    assert history[0].status is ToolExecutionStatus.COMPLETED
    assert history[0].result == {"results": ["AI news 1", "AI news 2"]}
    assert history[0].duration_ms == 1500
    assert history[0].parameters == {"query": "AI news"}
    return tool_state


async def caching_example(tool_state: ToolStateManager, tool: FakeTool) -> Any:
    """The reference's "Result Caching" example (``[...]`` made concrete); returns ``result``."""
    from statekeeper.state import ToolCacheEntry

    # Cache tool result
    cache_entry = ToolCacheEntry(
        tool_name="search_web",
        parameters_hash="abc123",
        result={"results": ["cached"]},
        created_at=datetime.now(),
        ttl=3600,
    )

    await tool_state.cache_result(cache_entry)

    # Check cache before execution
    cached = await tool_state.get_cached_result(
        tool_name="search_web",
        parameters={"query": "AI news"},
    )

    if cached:
        logger.info("Using cached result")
        result = cached.result
    else:
        result = await tool.execute({"query": "AI news"})
    return result


async def retry_example(tool_state: ToolStateManager, retried: list[RetryState]) -> None:
    """The reference's "Retry Management" example (``retry_tool`` records its argument)."""
    from statekeeper.state import RetryState

    async def retry_tool(retry: RetryState) -> None:
        retried.append(retry)

    # Track retry state
    retry_state = RetryState(
        execution_id="exec_002",
        attempts=2,
        max_attempts=5,
        last_error="Connection timeout",
        next_retry_at=datetime.now() + timedelta(seconds=30),
        backoff_factor=2.0,
    )

    await tool_state.update_retry_state(retry_state)

    # Get tools needing retry
    pending_retries = await tool_state.get_pending_retries()
    for retry in pending_retries:
        if retry.next_retry_at <= datetime.now():
            await retry_tool(retry)


async def stats_example(tool_state: ToolStateManager) -> ToolStats:
    """The reference's "Tool Statistics" example; returns ``stats``."""
    from statekeeper.state import ToolStats  # noqa: F401 - the example imports it

    # Get tool statistics
    stats = await tool_state.get_tool_stats("search_web")

    logger.info(f"Total Executions: {stats.total_executions}")
    logger.info(f"Success Rate: {stats.success_rate:.2%}")
    logger.info(f"Avg Duration: {stats.avg_duration_ms}ms")
    logger.info(f"Cache Hit Rate: {stats.cache_hit_rate:.2%}")
    logger.info(f"Error Rate: {stats.error_rate:.2%}")
    return stats


# -- the reference examples ------------------------------------------------------------------


async def test_reference_examples_in_sequence(persistence_kwargs: dict[str, str]) -> None:
    tool_state = await tracking_example(persistence_kwargs)
    tool = FakeTool()
    # cache_results=True cached exec_001's result under its parameters: a hit.
    result = await caching_example(tool_state, tool)
    assert result == {"results": ["AI news 1", "AI news 2"]}
    assert tool.calls == []

    retried: list[RetryState] = []
    await retry_example(tool_state, retried)
    assert retried == []  # the retry is due in 30 seconds
    pending = await tool_state.get_pending_retries()
    assert [r.execution_id for r in pending] == ["exec_002"]
    assert pending[0].attempts == 2 and pending[0].last_error == "Connection timeout"

    stats = await stats_example(tool_state)
    assert stats.total_executions == 1
    assert stats.success_rate == 1.0 and stats.error_rate == 0.0
    assert stats.avg_duration_ms == 1500
    assert stats.cache_hits == 1 and stats.cache_misses == 0 and stats.cache_hit_rate == 1.0
    await tool_state.close()


async def test_caching_example_alone_misses_and_executes(
    persistence_kwargs: dict[str, str],
) -> None:
    tool_state = ToolStateManager(**persistence_kwargs, cache_results=True, cache_ttl=3600)
    tool = FakeTool()
    # "abc123" is an explicit hash, not the hash of {"query": "AI news"}: a miss.
    result = await caching_example(tool_state, tool)
    assert result == {"results": ["fresh"]}
    assert tool.calls == [{"query": "AI news"}]
    explicit = await tool_state.get_cached_result("search_web", parameters_hash="abc123")
    assert explicit is not None and explicit.result == {"results": ["cached"]}
    stats = await tool_state.get_tool_stats("search_web")
    assert (stats.cache_hits, stats.cache_misses, stats.cache_hit_rate) == (1, 1, 0.5)


async def test_retry_example_retries_what_is_due(persistence_kwargs: dict[str, str]) -> None:
    tool_state = ToolStateManager(**persistence_kwargs)
    await tool_state.update_retry_state(
        RetryState(
            execution_id="exec_due",
            attempts=1,
            max_attempts=3,
            last_error="503",
            next_retry_at=datetime.now() - timedelta(seconds=1),
        )
    )
    retried: list[RetryState] = []
    await retry_example(tool_state, retried)
    assert [r.execution_id for r in retried] == ["exec_due"]


# -- executions ------------------------------------------------------------------------------


async def test_history_is_newest_first_and_limited(persistence_kwargs: dict[str, str]) -> None:
    tool_state = ToolStateManager(**persistence_kwargs)
    base = datetime.now() - timedelta(hours=1)
    for number in range(5):
        await tool_state.start_execution(
            ToolExecution(
                execution_id=f"e{number}",
                tool_name="calc",
                started_at=base + timedelta(minutes=number),
                parameters={"n": number},
            )
        )
    await tool_state.start_execution(ToolExecution(execution_id="other", tool_name="calc2"))
    history = await tool_state.get_execution_history("calc", limit=3)
    assert [e.execution_id for e in history] == ["e4", "e3", "e2"]
    assert all(e.status is ToolExecutionStatus.RUNNING for e in history)
    assert [e.execution_id for e in await tool_state.get_execution_history("calc")] == [
        "e4",
        "e3",
        "e2",
        "e1",
        "e0",
    ]


async def test_history_pages_through_the_engine() -> None:
    engine = ToolEngine(MemoryBackend())
    for number in range(7):
        await engine.start_execution(
            records.ToolExecution(
                execution_id=f"x{number}", tool_name="t", started_at=1_700_000_000 + number
            )
        )
    seen: list[str] = []
    token = ""
    while True:
        page = await engine.execution_history("t", page_size=3, page_token=token)
        seen += [r.execution_id for r in page.records]
        token = page.next_page_token
        if not token:
            break
    assert seen == [f"x{n}" for n in range(6, -1, -1)]


async def test_fail_execution_counts_errors(persistence_kwargs: dict[str, str]) -> None:
    tool_state = ToolStateManager(**persistence_kwargs)
    for number, outcome in enumerate(["ok", "fail", "timeout", "ok"]):
        execution_id = f"run{number}"
        await tool_state.start_execution(ToolExecution(execution_id=execution_id, tool_name="t"))
        if outcome == "ok":
            await tool_state.complete_execution(execution_id, {"n": number}, duration_ms=100)
        elif outcome == "fail":
            failed = await tool_state.fail_execution(execution_id, "boom", duration_ms=300)
            assert failed.status is ToolExecutionStatus.FAILED and failed.error == "boom"
        else:
            timed_out = await tool_state.fail_execution(
                execution_id, "too slow", duration_ms=500, status=ToolExecutionStatus.TIMEOUT
            )
            assert timed_out.status is ToolExecutionStatus.TIMEOUT
    stats = await tool_state.get_tool_stats("t")
    assert stats.total_executions == 4
    assert (stats.successful_executions, stats.failed_executions) == (2, 2)
    assert stats.success_rate == 0.5 and stats.error_rate == 0.5
    assert stats.avg_duration_ms == pytest.approx(250)
    assert stats.last_execution_at is not None
    empty = await tool_state.get_tool_stats("never_used")
    assert empty.total_executions == 0 and empty.success_rate == 0.0
    assert empty.last_execution_at is None


async def test_ending_twice_and_unknown_ids_are_rejected(
    persistence_kwargs: dict[str, str],
) -> None:
    tool_state = ToolStateManager(**persistence_kwargs)
    await tool_state.start_execution(ToolExecution(execution_id="once", tool_name="t"))
    with pytest.raises(AlreadyExistsError):
        await tool_state.start_execution(ToolExecution(execution_id="once", tool_name="t"))
    await tool_state.complete_execution("once", {"ok": True}, duration_ms=5)
    with pytest.raises(FailedPreconditionError) as ended:
        await tool_state.complete_execution("once", {"ok": False})
    assert ended.value.reason == Reason.EXECUTION_ENDED
    with pytest.raises(FailedPreconditionError):
        await tool_state.fail_execution("once", "late")
    with pytest.raises(NotFoundError) as missing:
        await tool_state.complete_execution("nope", {})
    assert missing.value.reason == Reason.EXECUTION_NOT_FOUND
    assert await tool_state.get_execution("nope") is None
    stored = await tool_state.get_execution("once")
    assert stored is not None and stored.result == {"ok": True}
    stats = await tool_state.get_tool_stats("t")
    assert stats.total_executions == 1


async def test_ids_never_match_by_prefix(persistence_kwargs: dict[str, str]) -> None:
    tool_state = ToolStateManager(**persistence_kwargs)
    await tool_state.start_execution(ToolExecution(execution_id="a1", tool_name="tool"))
    await tool_state.start_execution(ToolExecution(execution_id="a10", tool_name="tool1"))
    await tool_state.complete_execution("a10", 1, duration_ms=1)
    assert [e.execution_id for e in await tool_state.get_execution_history("tool")] == ["a1"]
    # "tool" counts its own running a1 only (issue 13: counted from the start), nothing of tool1.
    stats = await tool_state.get_tool_stats("tool")
    assert (stats.total_executions, stats.successful_executions) == (1, 0)
    assert (await tool_state.get_tool_stats("tool1")).total_executions == 1


# -- parameters hash and cache ---------------------------------------------------------------


def test_parameters_hash_rule() -> None:
    text = '{"a":[1,2.5,"é"],"b":{"x":null,"y":true}}'
    assert canonical_json({"b": {"y": True, "x": None}, "a": [1.0, 2.5, "é"]}) == text
    assert parameters_hash({"b": {"y": True, "x": None}, "a": [1, 2.5, "é"]}) == (
        hashlib.sha256(text.encode()).hexdigest()
    )
    assert parameters_hash({"n": 1}) == parameters_hash({"n": 1.0})
    assert parameters_hash({"n": 1}) != parameters_hash({"n": "1"})


async def test_hash_ignores_key_order_and_matches_the_json_form(address: str) -> None:
    tool_state = ToolStateManager(persistence="grpc", address=address)
    first = await tool_state.start_execution(
        ToolExecution(execution_id="h1", tool_name="t", parameters={"q": "x", "limit": 10})
    )
    second = await tool_state.start_execution(
        ToolExecution(execution_id="h2", tool_name="t", parameters={"limit": 10.0, "q": "x"})
    )
    expected = hashlib.sha256(b'{"limit":10,"q":"x"}').hexdigest()
    assert first.parameters_hash == second.parameters_hash == expected
    # A client that speaks JSON (Go, TypeScript, grpcurl) gets the same hash.
    json_parameters = struct_pb2.Value()
    json_parameters.struct_value.update({"q": "x", "limit": 10})
    async with grpc.aio.insecure_channel(address) as channel:
        stub = tool_service_pb2_grpc.ToolServiceStub(channel)
        response = await stub.StartExecution(
            tool_service_pb2.StartExecutionRequest(
                execution=tool_service_pb2.ToolExecution(
                    execution_id="h3",
                    tool_name="t",
                    parameters=common_pb2.Value(json=json_parameters),
                )
            )
        )
    assert response.execution.parameters_hash == expected
    # ... and a cache lookup by parameters finds a result cached by parameters.
    await tool_state.cache_result(
        ToolCacheEntry(tool_name="t", parameters={"limit": 10, "q": "x"}, result=[1])
    )
    hit = await tool_state.get_cached_result("t", {"q": "x", "limit": 10})
    assert hit is not None and hit.parameters_hash == expected and hit.result == [1]


async def test_cache_ttl_and_cache_results_off(persistence_kwargs: dict[str, str]) -> None:
    tool_state = ToolStateManager(**persistence_kwargs, cache_results=False, cache_ttl=60)
    await tool_state.start_execution(
        ToolExecution(execution_id="c1", tool_name="t", parameters={"p": 1})
    )
    await tool_state.complete_execution("c1", {"r": 1})
    assert await tool_state.get_cached_result("t", {"p": 1}) is None  # not cached
    before = datetime.now()
    stored = await tool_state.cache_result(
        ToolCacheEntry(tool_name="t", parameters={"p": 1}, result={"r": 2})
    )
    after = datetime.now()
    assert stored.ttl == 60  # the manager's cache_ttl
    assert stored.expires_at is not None
    assert before + timedelta(seconds=59) <= stored.expires_at <= after + timedelta(seconds=61)
    explicit = await tool_state.cache_result(
        ToolCacheEntry(tool_name="t", parameters={"p": 2}, result={"r": 3}, ttl=5)
    )
    assert explicit.expires_at is not None and explicit.expires_at <= after + timedelta(seconds=6)
    assert await tool_state.invalidate_cached_result("t", {"p": 2}) is True
    assert await tool_state.get_cached_result("t", {"p": 2}) is None
    hit = await tool_state.get_cached_result("t", {"p": 1})
    assert hit is not None and hit.result == {"r": 2}


async def test_cache_results_without_ttl_never_expire(persistence_kwargs: dict[str, str]) -> None:
    tool_state = ToolStateManager(**persistence_kwargs, cache_results=True, cache_ttl=None)
    await tool_state.start_execution(
        ToolExecution(execution_id="k", tool_name="t", parameters={"p": [1, 2]})
    )
    await tool_state.complete_execution("k", "value")
    cached = await tool_state.get_cached_result("t", {"p": [1, 2]})
    assert cached is not None and cached.result == "value"
    assert cached.ttl is None and cached.expires_at is None


async def test_cached_result_expires_after_its_ttl() -> None:
    backend = MemoryBackend()
    engine = ToolEngine(backend)
    updates = backend.watch("tool/cache/")
    await anext(updates)  # the watch is created
    await engine.cache_result(records.ToolCacheEntry("t", result="r", ttl=0.05), {"q": 1})
    assert await engine.get_cached_result("t", {"q": 1}, "") is not None
    kinds: list[EventType] = []
    async for update in updates:
        kinds += [event.type for event in update.events]
        if EventType.EXPIRE in kinds:
            break
    assert await engine.get_cached_result("t", {"q": 1}, "") is None
    totals = await engine.tool_stats("t")
    assert (totals.cache_hits, totals.cache_misses) == (1, 1)
    await backend.close()


# -- retries ---------------------------------------------------------------------------------


async def test_backoff_formula_cap_and_jitter(persistence_kwargs: dict[str, str]) -> None:
    tool_state = ToolStateManager(**persistence_kwargs)

    async def delay_of(**fields: Any) -> float:
        stored = await tool_state.update_retry_state(RetryState(execution_id="r", **fields))
        assert stored.next_retry_at is not None and stored.updated_at is not None
        return (stored.next_retry_at - stored.updated_at).total_seconds()

    assert await delay_of(attempts=1, max_attempts=9) == pytest.approx(1.0, abs=1e-3)
    assert await delay_of(attempts=3, max_attempts=9) == pytest.approx(4.0, abs=1e-3)
    assert await delay_of(attempts=3, max_attempts=9, backoff_factor=3.0, base_delay=0.5) == (
        pytest.approx(4.5, abs=1e-3)
    )
    assert await delay_of(attempts=40, max_attempts=99) == pytest.approx(300.0, abs=1e-3)
    assert await delay_of(attempts=5000, max_attempts=9999, max_delay=60) == pytest.approx(
        60.0, abs=1e-3
    )
    for _ in range(5):
        jittered = await delay_of(attempts=5, max_attempts=9, max_delay=10, jitter=0.5)
        assert 5.0 - 1e-3 <= jittered <= 10.0 + 1e-3


async def test_pending_retries_order_filter_and_exhaustion(
    persistence_kwargs: dict[str, str],
) -> None:
    tool_state = ToolStateManager(**persistence_kwargs)
    now = datetime.now()
    offsets = {"late": 300, "soon": 10, "overdue": -10, "middle": 60}
    for execution_id, seconds in offsets.items():
        await tool_state.update_retry_state(
            RetryState(
                execution_id=execution_id,
                attempts=1,
                max_attempts=3,
                next_retry_at=now + timedelta(seconds=seconds),
            )
        )
    await tool_state.update_retry_state(
        RetryState(execution_id="spent", attempts=3, max_attempts=3, next_retry_at=now)
    )
    pending = await tool_state.get_pending_retries()
    assert [r.execution_id for r in pending] == ["overdue", "soon", "middle", "late"]
    due = await tool_state.get_pending_retries(due_before=now + timedelta(seconds=60))
    assert [r.execution_id for r in due] == ["overdue", "soon", "middle"]
    assert [r.execution_id for r in await tool_state.get_pending_retries(limit=2)] == [
        "overdue",
        "soon",
    ]
    # Rescheduling moves a retry; running out of attempts removes it from the pending list.
    await tool_state.update_retry_state(
        RetryState(
            execution_id="late", attempts=2, max_attempts=3, next_retry_at=now - timedelta(60)
        )
    )
    await tool_state.update_retry_state(
        RetryState(execution_id="soon", attempts=3, max_attempts=3, last_error="gave up")
    )
    pending = await tool_state.get_pending_retries()
    assert [r.execution_id for r in pending] == ["late", "overdue", "middle"]
    spent = await tool_state.get_retry_state("soon")
    assert spent is not None and spent.last_error == "gave up"
    assert await tool_state.clear_retry_state("middle") is True
    assert await tool_state.clear_retry_state("middle") is False
    assert await tool_state.get_retry_state("middle") is None
    assert [r.execution_id for r in await tool_state.get_pending_retries()] == ["late", "overdue"]


async def test_pending_retries_page_through_the_engine() -> None:
    engine = ToolEngine(MemoryBackend())
    for number in range(5):
        await engine.update_retry_state(
            records.RetryState(
                execution_id=f"r{number}", max_attempts=2, next_retry_at=1_800_000_000 + number
            )
        )
    seen: list[str] = []
    token = ""
    while True:
        page = await engine.pending_retries(page_size=2, page_token=token)
        seen += [r.execution_id for r in page.records]
        token = page.next_page_token
        if not token:
            break
    assert seen == [f"r{n}" for n in range(5)]


# -- bad input -------------------------------------------------------------------------------


async def test_bad_input_is_rejected_and_changes_nothing(
    persistence_kwargs: dict[str, str],
) -> None:
    tool_state = ToolStateManager(**persistence_kwargs)
    await tool_state.start_execution(ToolExecution(execution_id="good", tool_name="t"))
    cases: list[tuple[Any, type[StateKeeperError], str, str]] = [
        (
            lambda: tool_state.start_execution(ToolExecution(execution_id="a/b", tool_name="t")),
            InvalidArgumentError,
            Reason.INVALID_ARGUMENT,
            "execution.execution_id",
        ),
        (
            lambda: tool_state.start_execution(ToolExecution(execution_id="x", tool_name="")),
            InvalidArgumentError,
            Reason.INVALID_ARGUMENT,
            "execution.tool_name",
        ),
        (
            lambda: tool_state.start_execution(
                ToolExecution(execution_id="x", tool_name="t", status=ToolExecutionStatus.COMPLETED)
            ),
            InvalidArgumentError,
            Reason.INVALID_ARGUMENT,
            "execution.status",
        ),
        (
            lambda: tool_state.complete_execution("good", {"r": 1}, duration_ms=-1),
            InvalidArgumentError,
            Reason.INVALID_ARGUMENT,
            "duration",
        ),
        (
            lambda: tool_state.fail_execution("good", "e", status=ToolExecutionStatus.COMPLETED),
            InvalidArgumentError,
            Reason.INVALID_ARGUMENT,
            "status",
        ),
        (
            lambda: tool_state.cache_result(ToolCacheEntry(tool_name="t", result=1)),
            InvalidArgumentError,
            Reason.INVALID_ARGUMENT,
            "entry.parameters_hash",
        ),
        (
            lambda: tool_state.cache_result(
                ToolCacheEntry(tool_name="t", parameters={"a": 1}, parameters_hash="x", result=1)
            ),
            InvalidArgumentError,
            Reason.PARAMETERS_HASH_MISMATCH,
            "entry.parameters_hash",
        ),
        (
            lambda: tool_state.cache_result(
                ToolCacheEntry(tool_name="t", parameters={"a": 1}, result=1, ttl=-5)
            ),
            InvalidArgumentError,
            Reason.INVALID_TTL,
            "entry.ttl",
        ),
        (
            lambda: tool_state.update_retry_state(RetryState(execution_id="r", max_attempts=0)),
            InvalidArgumentError,
            Reason.INVALID_ARGUMENT,
            "retry_state.max_attempts",
        ),
        (
            lambda: tool_state.update_retry_state(RetryState(execution_id="r", attempts=-1)),
            InvalidArgumentError,
            Reason.INVALID_ARGUMENT,
            "retry_state.attempts",
        ),
        (
            lambda: tool_state.update_retry_state(RetryState(execution_id="r", backoff_factor=0.5)),
            InvalidArgumentError,
            Reason.INVALID_ARGUMENT,
            "retry_state.backoff_factor",
        ),
        (
            lambda: tool_state.update_retry_state(RetryState(execution_id="r", jitter=2)),
            InvalidArgumentError,
            Reason.INVALID_ARGUMENT,
            "retry_state.jitter",
        ),
        (
            lambda: tool_state.update_retry_state(
                RetryState(execution_id="r", base_delay=10, max_delay=1)
            ),
            InvalidArgumentError,
            Reason.INVALID_ARGUMENT,
            "retry_state.max_delay",
        ),
        (
            lambda: tool_state.get_execution_history("t/x"),
            InvalidArgumentError,
            Reason.INVALID_ARGUMENT,
            "tool_name",
        ),
    ]
    for call, error_type, reason, field in cases:
        with pytest.raises(error_type) as caught:
            await call()
        assert caught.value.reason == reason, field
        assert [v[0] for v in caught.value.violations] == [field]
    # Nothing changed.
    history = await tool_state.get_execution_history("t")
    assert [(e.execution_id, e.status) for e in history] == [("good", ToolExecutionStatus.RUNNING)]
    assert await tool_state.get_retry_state("r") is None
    assert await tool_state.get_pending_retries() == []
    stats = await tool_state.get_tool_stats("t")
    # Only "good" started (issue 13: counted from its start); no refused call counted.
    assert (stats.total_executions, stats.running_executions) == (1, 1)
    assert (stats.cache_hits, stats.cache_misses) == (0, 0)


# -- exact statistics under concurrency ------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from statekeeper.state import ToolExecution, ToolStateManager

    async def main(address: str, worker: int, count: int) -> None:
        tool_state = ToolStateManager(persistence="grpc", address=address, cache_results=False)
        semaphore = asyncio.Semaphore(4)

        async def one(number: int) -> None:
            async with semaphore:
                execution_id = f"w{worker}-{number}"
                await tool_state.start_execution(
                    ToolExecution(execution_id=execution_id, tool_name="shared", parameters={})
                )
                if number % 4 == 3:
                    await tool_state.fail_execution(execution_id, "boom", duration_ms=3)
                else:
                    await tool_state.complete_execution(execution_id, number, duration_ms=2)

        await asyncio.gather(*(one(n) for n in range(count)))
        await tool_state.close()

    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
    """
)


async def test_stats_exact_with_four_processes_on_two_servers(
    redis_instances: list[Any],
) -> None:
    first, second = redis_instances
    async with child_processes(
        (sys.executable, "-c", WORKER, server.address, str(worker), "250")
        for worker, server in enumerate([first, second, first, second])
    ) as workers:
        for worker in workers:
            assert await asyncio.wait_for(worker.wait(), timeout=240) == 0
    for server in (first, second):
        tool_state = ToolStateManager(persistence="grpc", address=server.address)
        stats = await tool_state.get_tool_stats("shared")
        assert stats.total_executions == 1000
        failures = 4 * sum(1 for n in range(250) if n % 4 == 3)  # 248
        assert stats.failed_executions == failures
        assert stats.successful_executions == 1000 - failures
        assert stats.error_rate == failures / 1000
        assert stats.success_rate == (1000 - failures) / 1000
        assert stats.avg_duration_ms == pytest.approx(((1000 - failures) * 2 + failures * 3) / 1000)
        history = await tool_state.get_execution_history("shared", limit=2000)
        assert len(history) == 1000
        assert len({e.execution_id for e in history}) == 1000
        await tool_state.close()


def test_canonical_json_is_plain_json() -> None:
    document = {"z": [1, {"b": 2, "a": 1.5}], "a": "x y"}
    assert json.loads(canonical_json(document)) == document
    assert " " not in canonical_json({"a": [1, 2]})


async def test_executions_written_before_typed_records_keep_working() -> None:
    """Records of the previous format (proto status numbers, no format version) are read,
    ended and counted by the typed engine."""
    backend = MemoryBackend()
    history_key = "tool/hist/t/00000000000000001/old"
    await backend.put("tool/exec/old", values.pack({"h": history_key}))
    await backend.put(
        history_key,
        values.pack(
            {
                "execution_id": "old",
                "tool_name": "t",
                "status": 2,
                "started_at": 1_700_000_000.0,
                "parameters": {"q": 1},
                "parameters_hash": parameters_hash({"q": 1}),
                "completed_at": None,
                "result": None,
                "error": "",
                "duration": None,
                "metadata": None,
            }
        ),
    )
    shard = {"ok": 1, "err": 0, "dur_us": 2_000, "hits": 0, "misses": 0, "last": 1.0}
    await backend.put("tool/stats/t/0", values.pack(shard))
    engine = ToolEngine(backend)
    running = await engine.get_execution("old")
    assert running.status is records.ToolExecutionStatus.RUNNING
    assert running.parameters == {"q": 1}
    ended = await engine.complete_execution("old", {"a": 1}, duration=0.004)
    assert ended.status is records.ToolExecutionStatus.COMPLETED and ended.result == {"a": 1}
    stats = await engine.tool_stats("t")
    assert (stats.successful_executions, stats.total_executions) == (2, 2)
    assert stats.average_duration == pytest.approx(0.003)
