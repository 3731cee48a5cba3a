"""Cross-language interoperability: Python, Go and TypeScript through one live server.

The Go and TypeScript runners (see tests/interop) are built once per session by ``make
clients``; every case here runs both of them against the ``server`` fixture and checks what
they print against what the Python client sees.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from statekeeper.errors import ConflictError, NotFoundError
from statekeeper.state import StateConfig, StateManager

from tests.interop import GO, GO_JSON, RUNNERS, TS, Runner, build_runners, same

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
