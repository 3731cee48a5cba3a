"""Cross-language interoperability: Python, Go and TypeScript through one live server.

The Go and TypeScript runners (see tests/interop) are built once per session by ``make
clients``; every case here runs both of them against the ``server`` fixture and checks what
they print against what the Python client sees.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from statekeeper import values
from statekeeper.errors import ConflictError, FailedPreconditionError, NotFoundError
from statekeeper.state import (
    AgentCoordinationState,
    AgentSnapshot,
    AgentStateStore,
    AudioSessionStatus,
    IndexingStatus,
    KnowledgeStateManager,
    OrchestrationStateManager,
    SpeechStateManager,
    StateConfig,
    StateManager,
    StepState,
    StreamingMode,
    STTState,
    TaskQueueState,
    TaskStatus,
    TeamState,
    ToolExecution,
    ToolExecutionStatus,
    ToolStateManager,
    TranscriptionStatus,
    WorkflowState,
    WorkflowStateManager,
    WorkflowStatus,
)
from statekeeper.v1 import state_service_pb2, state_service_pb2_grpc
from statekeeper_server.config import ServerConfig
from statekeeper_server.engine.storage.memory import MemoryBackend
from statekeeper_server.runtime import Runtime
from statekeeper_server.server import StatekeeperServer

from tests.interop import (
    GO,
    GO_JSON,
    REPO,
    RUNNERS,
    TS,
    Runner,
    RunnerError,
    build_runners,
    same,
)
from tests.pki import Authority, Pair
from tests.programs import child_process

LANGUAGES = sorted(RUNNERS)


@pytest.fixture(scope="session", autouse=True)
def runners() -> None:
    """Build the Go runner and the TypeScript package once per session (skipped when current)."""
    build_runners()


@pytest.fixture
async def manager(address: str) -> AsyncIterator[StateManager]:
    """A Python StateManager on the test server."""
    async with StateManager(StateConfig(backend="grpc", address=address, timeout=30)) as sm:
        yield sm


def unique(prefix: str) -> str:
    """A key prefix no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- the clients' own live tests ---------------------------------------------------------------


async def run_live_suite(argv: list[str], cwd: Path, address: str) -> str:
    """Run a client's live test suite against ``address``; return its output (fails on failure)."""
    async with child_process(
        *argv,
        cwd=cwd,
        env={**os.environ, "STATEKEEPER_TEST_ADDRESS": address},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    ) as process:
        output, _ = await asyncio.wait_for(process.communicate(), 300)
    text = output.decode()
    assert process.returncode == 0, text
    return text


async def test_go_client_live_tests(address: str) -> None:
    output = await run_live_suite(
        ["go", "test", "-count=1", "-v", "-run", "Live", "./statekeeper/"],
        REPO / "clients/go",
        address,
    )
    assert "--- PASS: TestLiveDocumentLifecycle" in output
    assert "--- PASS: TestLiveKeysAndWatch" in output
    assert "--- PASS: TestLiveBatchingCoalescesConcurrentCalls" in output
    assert "--- PASS: TestLiveBatchingKeepsEachCallsOwnError" in output
    assert "SKIP" not in output


async def test_ts_client_live_tests(address: str) -> None:
    output = await run_live_suite(["node", "--test", "dist/live/"], REPO / "clients/ts", address)
    assert "# pass 3" in output and "# fail 0" in output and "# skipped 0" in output


# -- values -----------------------------------------------------------------------------------

#: A document exercising every kind of value. ``whole`` is the float 2.0 and ``big`` the largest
#: integer that every language (TypeScript numbers included) carries exactly.
DOCUMENT: dict[str, Any] = {
    "count": 3,
    "ratio": 0.5,
    "whole": 2.0,
    "negative": -17,
    "tiny": 1.5e-300,
    "big": 2**53 - 1,
    "nothing": None,
    "yes": True,
    "no": False,
    "unicode": 'Zoë 🚀 名前 — \t"quoted" \\ back',
    "nested": {"list": [1, 2.5, "x", None, [True, {"deep": -0.25}]], "empty": {}, "none": []},
}

#: What the JSON form (Go in JSON mode, TypeScript) stores for DOCUMENT: JSON has one number
#: type, so the integral float 2.0 becomes the integer 2 by the documented rule.
DOCUMENT_VIA_JSON = {**DOCUMENT, "whole": 2}


async def read_in(language: str, address: str, manager: StateManager, key: str) -> Any:
    """Read ``key`` in one language and return the document as that language printed it."""
    if language == "python":
        return await manager.get(key)
    printed = await RUNNERS[language].one("get", address, "--key", key)
    return printed["value"]


@pytest.mark.parametrize("reader", ["python", *LANGUAGES])
async def test_value_written_in_python_is_read_everywhere(
    address: str, manager: StateManager, reader: str
) -> None:
    key = unique("values/py")
    await manager.save(key, DOCUMENT)
    value = await read_in(reader, address, manager, key)
    # TypeScript has a single number type: compare numbers by value there, kinds elsewhere.
    same(value, DOCUMENT, exact=reader != "ts")


@pytest.mark.parametrize("writer", [GO, GO_JSON, TS], ids=lambda r: r.language)
@pytest.mark.parametrize("reader", ["python", *LANGUAGES])
async def test_value_written_in_go_or_ts_is_read_everywhere(
    address: str, manager: StateManager, writer: Runner, reader: str
) -> None:
    key = unique(f"values/{writer.language}")
    saved = await writer.one("save", address, "--key", key, "--value", json.dumps(DOCUMENT))
    entry = await manager.get_entry(key)
    assert entry is not None and entry.mod_revision == saved["revision"]
    # The Go runner in its default (msgpack) mode is exact; the JSON form applies the rule.
    expected = DOCUMENT if writer is GO else DOCUMENT_VIA_JSON
    value = await read_in(reader, address, manager, key)
    same(value, expected, exact=reader != "ts")


async def test_json_from_go_reads_in_python_with_an_int_count(
    address: str, manager: StateManager
) -> None:
    key = unique("values/go-json")
    await GO_JSON.one("save", address, "--key", key, "--value", '{"count": 3, "ratio": 0.5}')
    value = await manager.get(key)
    assert value == {"count": 3, "ratio": 0.5}
    assert type(value["count"]) is int and type(value["ratio"]) is float


async def test_exact_64_bit_integers_between_python_and_go(
    address: str, manager: StateManager
) -> None:
    key = unique("values/int64")
    document = {"max": 2**63 - 1, "min": -(2**63), "float": 1e300, "one": 1.0}
    await manager.save(key, document)
    same(await read_in("go", address, manager, key), document)
    key2 = unique("values/int64-go")
    await GO.one("save", address, "--key", key2, "--value", json.dumps(document))
    same(await manager.get(key2), document)


#: Binary data nested in a document, and the same document in the JSON form's {"$bytes"} shape.
BINARY = {"raw": b"\x00\xff\x10", "list": [b"", {"deep": b"abc"}], "n": 1}
BINARY_AS_JSON = {
    "raw": {"$bytes": "AP8Q"},
    "list": [{"$bytes": ""}, {"deep": {"$bytes": "YWJj"}}],
    "n": 1,
}


@pytest.mark.parametrize("reader", [GO, GO_JSON, TS], ids=lambda r: r.language)
async def test_bytes_written_in_python_are_read_as_bytes_in_go_and_ts(
    address: str, manager: StateManager, reader: Runner
) -> None:
    key = unique("values/bytes-py")
    await manager.save(key, BINARY)
    # The runners print the bytes they decoded ([]byte, Uint8Array) as {"$bytes": base64}.
    printed = await reader.one("get", address, "--key", key)
    assert printed["value"] == BINARY_AS_JSON


@pytest.mark.parametrize("writer", [GO, GO_JSON, TS], ids=lambda r: r.language)
async def test_bytes_written_in_go_or_ts_read_as_bytes_in_python(
    address: str, manager: StateManager, writer: Runner
) -> None:
    key = unique("values/bytes-other")
    await writer.one("save", address, "--key", key, "--value", json.dumps(BINARY_AS_JSON))
    value = await manager.get(key)
    assert value == BINARY and type(value["raw"]) is bytes


@pytest.mark.parametrize("reader", [GO, GO_JSON, TS], ids=lambda r: r.language)
async def test_range_pages_reverse_and_earlier_revisions_from_go_and_ts(
    address: str, manager: StateManager, reader: Runner
) -> None:
    base = unique("range")
    await manager.transaction(put={f"{base}/{n}": {"n": n, "raw": b"\x01"} for n in range(5)})
    before = (await manager.get_stats()).revision
    await manager.delete(f"{base}/4")
    await manager.save(f"{base}/0", {"n": 100, "raw": b"\x01"})
    printed = await reader.one(
        "range", address, "--prefix", f"{base}/", "--reverse", "--page-size", "2"
    )
    assert [(e["key"], e["value"]["n"]) for e in printed["entries"]] == [
        (f"{base}/{n}", 100 if n == 0 else n) for n in (3, 2, 1, 0)
    ]
    assert printed["entries"][0]["value"]["raw"] == {"$bytes": "AQ=="}
    then = await reader.one(
        "range", address, "--prefix", f"{base}/", "--page-size", "3", "--revision", str(before)
    )
    assert [(e["key"], e["value"]["n"]) for e in then["entries"]] == [
        (f"{base}/{n}", n) for n in range(5)
    ]


@pytest.mark.parametrize("language", LANGUAGES)
async def test_invalid_documents_are_refused_by_the_client(address: str, language: str) -> None:
    with pytest.raises(AssertionError, match="exited 1"):
        await RUNNERS[language].one("save", address, "--key", "bad", "--value", "[1e999]")


# -- errors -----------------------------------------------------------------------------------


async def test_compare_and_set_conflict_has_the_same_reason_everywhere(
    address: str, manager: StateManager
) -> None:
    key = unique("cas/py")
    first = await manager.save(key, {"step": 1})
    await manager.save(key, {"step": 2}, expected_revision=first)
    python_errors = []
    for attempt in (
        manager.save(key, {"step": 3}, expected_revision=first),
        manager.save(key, {"step": 3}, expected_revision=0),
        manager.delete(key, expected_revision=first),
    ):
        with pytest.raises(ConflictError) as raised:
            await attempt
        python_errors.append({"code": raised.value.code.name, "reason": raised.value.reason})
    expected = {"code": "ABORTED", "reason": "REVISION_CONFLICT"}
    assert python_errors == [expected] * 3
    for language in LANGUAGES:
        result = await RUNNERS[language].one("cas-conflict", address, "--key", unique("cas"))
        assert result == {
            "stale_save": expected,
            "create": expected,
            "stale_delete": expected,
            "is_conflict": True,
        }, language


async def test_not_found_has_the_same_reason_everywhere(
    address: str, manager: StateManager
) -> None:
    key = unique("missing")
    with pytest.raises(NotFoundError) as raised:
        await manager.update(key, {"a": 1})
    assert raised.value.reason == "KEY_NOT_FOUND"
    for language in LANGUAGES:
        result = await RUNNERS[language].one("not-found", address, "--key", key)
        assert result == {"code": "NOT_FOUND", "reason": "KEY_NOT_FOUND", "is_not_found": True}


# -- listing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
async def test_glob_list_with_pagination(
    address: str, manager: StateManager, language: str
) -> None:
    base = unique("list")
    for name in ["a1", "a10", "a2", "b1", "a[x]", "ab/c"]:
        await manager.save(f"{base}/{name}", {"name": name})
    await manager.save(f"{base}x/a1", {"name": "elsewhere"})
    runner = RUNNERS[language]

    listed = await runner.one("list", address, "--pattern", f"{base}/a*", "--page-size", "2")
    expected = [f"{base}/{n}" for n in ["a1", "a10", "a2", "a[x]", "ab/c"]]
    assert listed["keys"] == expected == await manager.list_keys(f"{base}/a*")
    assert listed["pages"] == [expected[0:2], expected[2:4], expected[4:]]

    single = await runner.one("list", address, "--pattern", f"{base}/a?", "--page-size", "1")
    assert single["keys"] == [f"{base}/a1", f"{base}/a2"]
    assert single["pages"] == [[f"{base}/a1"], [f"{base}/a2"]]

    escaped = await runner.one("list", address, "--pattern", f"{base}/a[[]x]")
    assert escaped["keys"] == [f"{base}/a[x]"]
    none = await runner.one("list", address, "--pattern", f"{base}/zzz*")
    assert none == {"keys": [], "pages": [[]]}


# -- watching ---------------------------------------------------------------------------------


@pytest.mark.parametrize("watcher", LANGUAGES)
async def test_watch_delivers_writes_made_from_other_languages(
    address: str, manager: StateManager, watcher: str
) -> None:
    base = unique("watch")
    other = RUNNERS["ts" if watcher == "go" else "go"]
    running = await RUNNERS[watcher].start(
        "watch", address, "--pattern", f"{base}/*", "--count", "4"
    )
    try:
        started = await running.line()
        assert started["started"] >= 0
        # Writes made after the watch is registered, from three languages.
        r1 = await manager.save(f"{base}/py", {"from": "python", "n": 1})
        r2 = (await other.one("save", address, "--key", f"{base}/other", "--value", '{"n": 2}'))[
            "revision"
        ]
        await manager.save(f"{base}-outside/x", {"ignored": True})
        r3 = await manager.save(f"{base}/py", {"from": "python", "n": 3})
        assert await manager.delete(f"{base}/other")
        events = [await running.line() for _ in range(4)]
        assert await running.finish() == 0
    finally:
        await running.kill()
    assert [(e["type"], e["key"]) for e in events] == [
        ("put", f"{base}/py"),
        ("put", f"{base}/other"),
        ("put", f"{base}/py"),
        ("delete", f"{base}/other"),
    ]
    assert [e["revision"] for e in events[:3]] == [r1, r2, r3]
    assert events[3]["revision"] > r3
    assert events[0]["value"] == {"from": "python", "n": 1}
    assert events[1]["value"] == {"n": 2}
    assert events[2]["prev_value"] == {"from": "python", "n": 1}
    assert events[3]["value"] is None and events[3]["prev_value"] == {"n": 2}


@pytest.mark.parametrize("watcher", LANGUAGES)
async def test_watch_replays_history_from_a_start_revision(
    address: str, manager: StateManager, watcher: str
) -> None:
    base = unique("replay")
    revisions = [await manager.save(f"{base}/k{i}", {"i": i}) for i in range(3)]
    events = await RUNNERS[watcher].run(
        "watch",
        address,
        "--pattern",
        f"{base}/*",
        "--count",
        "2",
        "--start-revision",
        str(revisions[1]),
    )
    assert events[0] == {"started": events[0]["started"]}
    assert [(e["key"], e["revision"], e["value"]) for e in events[1:]] == [
        (f"{base}/k1", revisions[1], {"i": 1}),
        (f"{base}/k2", revisions[2], {"i": 2}),
    ]


@pytest.mark.parametrize("watcher", LANGUAGES)
async def test_watch_reassembles_revisions_sent_in_fragments(watcher: str) -> None:
    """Under a 512 KiB message limit, a transaction that replaces four 100 KB values (800 KB in
    one revision with the previous values) reaches the Go and TypeScript watchers in fragments;
    each change arrives once, in order."""
    limits = {"max_value_bytes": 128 * 1024, "max_message_bytes": 512 * 1024}
    server = StatekeeperServer(ServerConfig(backend="memory", port=0, **limits))
    port = await server.start()
    try:
        address = f"127.0.0.1:{port}"
        keys = [f"big/k{i}" for i in range(4)]
        async with grpc.aio.insecure_channel(address) as channel:
            stub = state_service_pb2_grpc.StateServiceStub(channel)
            written = []
            for round_ in range(2):
                value = values.document_to_wire({"r": round_, "s": "x" * 100_000})
                puts = [state_service_pb2.PutOperation(key=k, value=value) for k in keys]
                operations = [state_service_pb2.Operation(put=put) for put in puts]
                request = state_service_pb2.TransactRequest(operations=operations)
                revision = (await stub.Transact(request)).revision
                written += [(k, revision, round_) for k in keys]
        events = await RUNNERS[watcher].run(
            "watch", address, "--pattern", "big/*", "--count", "8", "--start-revision", "1"
        )
        assert [(e["key"], e["revision"], e["value"]["r"]) for e in events[1:]] == written
        assert [e["prev_value"]["r"] for e in events[5:]] == [0, 0, 0, 0]
    finally:
        await server.stop(0)


# -- workflows --------------------------------------------------------------------------------


async def test_workflow_pause_and_resume_across_languages(address: str) -> None:
    """Python creates and starts a workflow, Go pauses it, TypeScript resumes it; steps are
    recorded from every language and each sees the others' changes."""
    workflow_id = unique("wf")
    async with WorkflowStateManager(persistence="grpc", address=address) as workflows:
        await workflows.create(
            WorkflowState(workflow_id=workflow_id, total_steps=3, context={"user": "zoë", "n": 1})
        )
        assert await workflows.start(workflow_id) is WorkflowStatus.RUNNING
        await workflows.update_step(workflow_id, StepState(step_number=1, name="py", result=1.5))

        assert await GO.one(
            "workflow-transition", address, "--id", workflow_id, "--action", "pause"
        ) == {"status": "paused"}
        assert await workflows.get_status(workflow_id) is WorkflowStatus.PAUSED
        # A paused workflow refuses steps and a second pause, the same way in every language.
        for runner in (GO, TS):
            refused = await runner.one(
                "workflow-step", address, "--id", workflow_id, "--step", "2", "--value", "{}"
            )
            assert refused["error"]["code"] == "FAILED_PRECONDITION", runner.language
        with pytest.raises(FailedPreconditionError) as raised:
            await workflows.pause(workflow_id)
        go_refusal = await GO.one(
            "workflow-transition", address, "--id", workflow_id, "--action", "pause"
        )
        ts_refusal = await TS.one(
            "workflow-transition", address, "--id", workflow_id, "--action", "pause"
        )
        expected = {
            "code": "FAILED_PRECONDITION",
            "reason": raised.value.reason,
            "is_failed_precondition": True,
        }
        assert go_refusal == ts_refusal == {"error": expected}

        assert await TS.one(
            "workflow-transition", address, "--id", workflow_id, "--action", "resume"
        ) == {"status": "running"}
        assert await workflows.get_status(workflow_id) is WorkflowStatus.RUNNING
        assert await GO.one(
            "workflow-step",
            address,
            "--id",
            workflow_id,
            "--step",
            "2",
            "--name",
            "go",
            "--value",
            '{"count": 3, "ratio": 0.5}',
        ) == {"status": "running", "current_step": 2}
        assert await TS.one(
            "workflow-step",
            address,
            "--id",
            workflow_id,
            "--step",
            "3",
            "--name",
            "ts",
            "--value",
            '["done"]',
        ) == {"status": "running", "current_step": 3}

        state = await workflows.get(workflow_id)
        assert state is not None and state.current_step == 3
        assert [(s.step_number, s.name, s.result) for s in state.steps] == [
            (1, "py", 1.5),
            (2, "go", {"count": 3, "ratio": 0.5}),
            (3, "ts", ["done"]),
        ]
        assert type(state.steps[1].result["count"]) is int
        for runner in (GO, TS):
            seen = await runner.one("workflow-get", address, "--id", workflow_id)
            assert seen["status"] == "running" and seen["current_step"] == 3
            assert seen["context"] == {"user": "zoë", "n": 1}
            assert [(s["step_number"], s["name"], s["status"]) for s in seen["steps"]] == [
                (1, "py", "completed"),
                (2, "go", "completed"),
                (3, "ts", "completed"),
            ]
            same(seen["steps"][1]["result"], {"count": 3, "ratio": 0.5}, exact=runner is GO)


@pytest.mark.parametrize("language", LANGUAGES)
async def test_workflow_created_in_go_or_ts_is_driven_from_python(
    address: str, language: str
) -> None:
    workflow_id = unique(f"wf-{language}")
    runner = RUNNERS[language]
    created = await runner.one(
        "workflow-create", address, "--id", workflow_id, "--count", "2", "--value", '{"k": [1, 2]}'
    )
    assert created == {"status": "pending"}
    async with WorkflowStateManager(persistence="grpc", address=address) as workflows:
        state = await workflows.get(workflow_id)
        assert state is not None and state.total_steps == 2 and state.context == {"k": [1, 2]}
        assert await workflows.start(workflow_id) is WorkflowStatus.RUNNING
        assert await workflows.cancel(workflow_id, "stop") is WorkflowStatus.CANCELLED
    # Resuming a cancelled workflow is an illegal transition everywhere.
    refused = await runner.one(
        "workflow-transition", address, "--id", workflow_id, "--action", "resume"
    )
    assert refused["error"]["code"] == "FAILED_PRECONDITION"
    assert refused["error"]["is_failed_precondition"] is True


# -- tasks ------------------------------------------------------------------------------------


async def test_tasks_claimed_and_completed_by_go_and_ts_workers(address: str) -> None:
    """Go and TypeScript workers drain one team's queue at the same time: every task is
    completed exactly once, with its result, and completing it again is refused. Tasks that
    need the "go" or "ts" capability can only go to that worker, so both surely work; the
    "sum" tasks go to whichever claims first."""
    team_id = unique("team")
    needs = {f"t{i}": ["go", "ts", "sum"][i % 3] for i in range(9)}
    async with OrchestrationStateManager(persistence="grpc", address=address) as orchestration:
        await orchestration.create_team(
            TeamState(
                team_id=team_id,
                agents={
                    f"{language}-worker": AgentCoordinationState(
                        agent_id=f"{language}-worker", status="idle", capabilities=["sum", language]
                    )
                    for language in ("go", "ts")
                },
                task_queue=TaskQueueState(pending=[], in_progress=[], completed=[]),
            )
        )
        for index, (task_id, capability) in enumerate(needs.items()):
            await orchestration.enqueue_task(
                team_id,
                {
                    "id": task_id,
                    "type": "sum",
                    "priority": "normal",
                    "data": {"a": index, "b": 10},
                    "required_capabilities": [capability],
                },
            )
        go_lines, ts_lines = await asyncio.gather(
            GO.run("task-work", address, "--team", team_id, "--agent", "go-worker"),
            TS.run("task-work", address, "--team", team_id, "--agent", "ts-worker"),
        )
        queue = await orchestration.get_queue_status(team_id)

    worked = {"go": go_lines[:-1], "ts": ts_lines[:-1]}
    assert go_lines[-1] == {"done": len(worked["go"])}
    assert ts_lines[-1] == {"done": len(worked["ts"])}
    done_ids = sorted(line["task"] for lines in worked.values() for line in lines)
    assert done_ids == sorted(needs)  # each task exactly once
    for language, lines in worked.items():
        mine = {line["task"] for line in lines}
        assert {t for t, need in needs.items() if need == language} <= mine
        assert all(needs[t] in (language, "sum") for t in mine)
        for line in lines:
            assert line["claimed_state"] == "in_progress"
            assert line["state"] == "completed"
            assert line["agent"] == f"{language}-worker"
            assert line["again"]["code"] == "FAILED_PRECONDITION"
            assert line["again"]["is_failed_precondition"] is True
    assert not queue.pending and not queue.in_progress
    results = {task.id: task for task in queue.completed}
    assert sorted(results) == done_ids
    for index, task_id in enumerate(needs):
        task = results[task_id]
        assert task.status is TaskStatus.COMPLETED
        assert task.result["sum"] == index + 10 and type(task.result["sum"]) is int
        assert task.result["by"] == task.agent_id.split("-")[0]


# -- speech sessions --------------------------------------------------------------------------


async def test_speech_session_stream_followed_from_go_and_ts_while_python_produces(
    address: str,
) -> None:
    async with SpeechStateManager(persistence="grpc", address=address) as speech:
        session_id = await speech.create_session(
            "voice", StreamingMode.BIDIRECTIONAL, {"lang": "fr"}, session_id=unique("voice")
        )
        followers = [
            await runner.start("speech-follow", address, "--id", session_id) for runner in (GO, TS)
        ]
        try:
            for follower in followers:
                assert "started" in await follower.line()
            # Python produces while both followers are subscribed.
            await speech.update_session_status(session_id, AudioSessionStatus.ACTIVE)
            for text in ("bon", "bonjour", "bonjour à tous 🎙"):
                await speech.update_stt_state(
                    STTState(
                        session_id=session_id,
                        status=TranscriptionStatus.TRANSCRIBING,
                        interim_transcript=text,
                        confidence=0.75,
                    )
                )
            await speech.end_session(session_id, "caller hung up")
            streams = []
            for follower in followers:
                events = []
                while not events or events[-1]["kind"] != "ended":
                    events.append(await follower.line())
                assert await follower.finish() == 0
                streams.append(events)
        finally:
            for follower in followers:
                await follower.kill()
        replay = [event async for event in speech.watch_session(session_id, from_sequence=1)]

    go_events, ts_events = streams
    assert go_events == ts_events
    assert [e["kind"] for e in go_events] == [
        "status_changed",
        "stt_state",
        "stt_state",
        "stt_state",
        "ended",
    ]
    assert go_events[0]["status"] == "active"
    assert [e["transcript"] for e in go_events[1:4]] == ["bon", "bonjour", "bonjour à tous 🎙"]
    assert go_events[-1]["reason"] == "caller hung up"
    sequences = [e["sequence"] for e in go_events]
    assert sequences == sorted(set(sequences))
    # Python's own replay from the start has the same events after the creation.
    assert [e.sequence for e in replay][1:] == sequences
    assert [e.kind.value for e in replay][1:] == [e["kind"] for e in go_events]


# -- TLS --------------------------------------------------------------------------------------


@pytest.fixture
async def mtls_address(tmp_path: Path) -> AsyncIterator[tuple[str, Authority, Pair]]:
    """A server that requires client certificates signed by a test CA."""
    authority = Authority(tmp_path, "interop-ca")
    server_pair = authority.issue("server", server=True)
    instance = StatekeeperServer(
        ServerConfig(
            backend="memory",
            port=0,
            shutdown_grace=1.0,
            tls_cert=server_pair.cert,
            tls_key=server_pair.key,
            tls_client_ca=authority.ca_file,
        )
    )
    await instance.start()
    yield f"127.0.0.1:{instance.port}", authority, authority.issue("client", server=False)
    await instance.stop(0)


@pytest.mark.parametrize("language", LANGUAGES)
async def test_mutual_tls(mtls_address: tuple[str, Authority, Pair], language: str) -> None:
    address, authority, client = mtls_address
    runner = RUNNERS[language]
    credentials = ("--ca", authority.ca_file, "--cert", client.cert, "--client-key", client.key)
    key = unique("tls")
    await runner.one("save", address, *credentials, "--key", key, "--value", '{"secure": true}')
    got = await runner.one("get", address, *credentials, "--key", key)
    assert got["value"] == {"secure": True}
    # Without a client certificate the server refuses the connection.
    with pytest.raises(RunnerError):
        await runner.one("get", address, "--ca", authority.ca_file, "--key", key)


# -- agents, tools and knowledge bases --------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
async def test_agent_snapshot_from_go_or_ts_restores_in_python(address: str, language: str) -> None:
    agent_id = unique(f"agent-{language}")
    async with AgentStateStore(persistence="grpc", address=address) as agents:
        older = await agents.save_snapshot(AgentSnapshot(agent_id=agent_id, memory_state={"v": 1}))
        printed = await RUNNERS[language].one(
            "agent-snapshot", address, "--id", agent_id, "--value", json.dumps(DOCUMENT)
        )
        latest = await agents.get_latest_snapshot(agent_id)
    assert latest is not None and latest.snapshot_id == printed["snapshot_id"]
    assert printed["latest_id"] == printed["snapshot_id"] != older.snapshot_id
    expected = DOCUMENT if language == "go" else DOCUMENT_VIA_JSON
    same(latest.memory_state, expected)
    same(printed["memory_state"], expected, exact=language == "go")


@pytest.mark.parametrize("language", LANGUAGES)
async def test_tool_execution_from_go_or_ts_is_seen_in_python(address: str, language: str) -> None:
    execution_id = unique(f"exec-{language}")
    parameters = {"query": "météo", "limit": 5}
    printed = await RUNNERS[language].one(
        "tool-execution",
        address,
        "--id",
        execution_id,
        "--name",
        "search",
        "--value",
        json.dumps(parameters),
    )
    assert printed["started"] == "running" and printed["status"] == "completed"
    async with ToolStateManager(persistence="grpc", address=address) as tools:
        execution = await tools.get_execution(execution_id)
        # The same parameters from Python hash the same way (the server computes the hash).
        twin = await tools.start_execution(
            ToolExecution(execution_id=unique("twin"), tool_name="search", parameters=parameters)
        )
    assert execution is not None
    assert execution.status is ToolExecutionStatus.COMPLETED
    assert execution.parameters == parameters and type(execution.parameters["limit"]) is int
    assert execution.result == {"by": language, "echo": parameters}
    assert execution.duration_ms == 1500
    assert printed["parameters_hash"] == execution.parameters_hash == twin.parameters_hash


@pytest.mark.parametrize("language", LANGUAGES)
async def test_indexing_progress_from_go_or_ts_is_seen_in_python(
    address: str, language: str
) -> None:
    knowledge_base_id = unique(f"kb-{language}")
    printed = await RUNNERS[language].one(
        "knowledge-progress", address, "--id", knowledge_base_id, "--count", "40"
    )
    assert printed == {"status": "in_progress", "total_documents": 40, "processed_documents": 20}
    async with KnowledgeStateManager(persistence="grpc", address=address) as knowledge:
        progress = await knowledge.get_indexing_progress(knowledge_base_id)
    assert progress.status is IndexingStatus.IN_PROGRESS
    assert (progress.total_documents, progress.processed_documents) == (40, 20)


@pytest.mark.parametrize("watcher", LANGUAGES)
async def test_watch_resumes_across_a_server_restart(watcher: str) -> None:
    """The Go and TypeScript watch helpers reconnect after the server goes away and resume
    after the last delivered revision: no change lost, none repeated."""
    backend = MemoryBackend()  # outlives both servers, like a shared Redis would
    first = StatekeeperServer(
        ServerConfig(backend="memory", port=0, shutdown_grace=1.0), runtime=Runtime(backend)
    )
    port = await first.start()
    address = f"127.0.0.1:{port}"
    base = unique("restart")
    running = await RUNNERS[watcher].start(
        "watch", address, "--pattern", f"{base}/*", "--count", "6"
    )
    second: StatekeeperServer | None = None
    try:
        assert "started" in await running.line()
        async with StateManager(StateConfig(backend="grpc", address=address)) as manager:
            before = [await manager.save(f"{base}/k", {"n": n}) for n in range(3)]
        events = [await running.line() for _ in range(3)]
        await first.stop(0)  # the stream breaks; the watcher keeps trying to resume
        second = StatekeeperServer(
            ServerConfig(backend="memory", port=port, shutdown_grace=1.0),
            runtime=Runtime(backend),
        )
        await second.start()
        async with StateManager(StateConfig(backend="grpc", address=address)) as manager:
            after = [await manager.save(f"{base}/k", {"n": n}) for n in range(3, 6)]
        events += [await running.line() for _ in range(3)]
        assert await running.finish() == 0
    finally:
        await running.kill()
        if second is not None:
            await second.stop(0)
    assert [e["revision"] for e in events] == before + after
    assert [e["value"] for e in events] == [{"n": n} for n in range(6)]


# -- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
async def test_bearer_tokens_and_namespaces(auth_address: str, language: str) -> None:
    runner = RUNNERS[language]
    await runner.one("save", auth_address, "--token", "token-a", "--key", "k", "--value", "1")
    got = await runner.one("get", auth_address, "--token", "token-a", "--key", "k")
    assert got["value"] == 1
    # Another tenant does not see team-a's key, from any language.
    missing = await runner.one("not-found", auth_address, "--token", "token-b", "--key", "k")
    assert missing["reason"] == "KEY_NOT_FOUND"
    async with StateManager(
        StateConfig(backend="grpc", address=auth_address, token="token-a")
    ) as manager:
        assert await manager.get("k") == 1
    # Without a token the call is refused with UNAUTHENTICATED.
    with pytest.raises(RunnerError, match=r"(?i)unauthenticated"):
        await runner.one("get", auth_address, "--key", "k")
