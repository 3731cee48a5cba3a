"""The Backend contract, run identically on every backend (see engine/backend.py's docstring).

Add a backend by adding its name to ``BACKENDS`` and a branch to :func:`open_backend`.
"""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
from statekeeper.errors import ConflictError, HistoryCompactedError, InvalidArgumentError, Reason
from statekeeper_server.engine.storage.backend import (
    SCAN_BUDGET,
    Backend,
    Compare,
    Delete,
    Entry,
    Event,
    EventType,
    KeyRange,
    Put,
    Read,
    Transaction,
    TxnResult,
    WatchUpdate,
    prefix_end,
)
from statekeeper_server.engine.storage.file import FileBackend
from statekeeper_server.engine.storage.glob import GlobPattern, parse_pattern
from statekeeper_server.engine.storage.memory import MemoryBackend
from statekeeper_server.engine.storage.redis import RedisBackend

T = TypeVar("T")

#: Every backend the contract runs on.
BACKENDS = ["memory", "file", "redis"]
#: How long a test waits for an event that must come (a failure, not a synchronisation).
WAIT = 10.0

_store_numbers = itertools.count()

OpenBackend = Callable[..., Awaitable[Backend]]


async def open_backend(kind: str, request: pytest.FixtureRequest, **options: Any) -> Backend:
    """A new, empty store of backend ``kind``; ``options`` are constructor keywords such as
    ``history_revisions``."""
    number = next(_store_numbers)
    if kind == "memory":
        return MemoryBackend(**options)
    if kind == "file":
        directory = request.getfixturevalue("tmp_path") / f"store{number}"
        return FileBackend(directory, **options)
    if kind == "redis":
        url = request.getfixturevalue("redis_url")
        return RedisBackend(url, key_prefix=f"contract{number}:", **options)
    raise AssertionError(f"no such backend {kind}")


@pytest.fixture(params=BACKENDS)
async def make_backend(request: pytest.FixtureRequest) -> AsyncIterator[OpenBackend]:
    """``await make_backend(**options)`` opens another store of the parametrized backend."""
    opened: list[Backend] = []

    async def make(**options: Any) -> Backend:
        backend = await open_backend(str(request.param), request, **options)
        opened.append(backend)
        return backend

    yield make
    for backend in opened:
        await backend.close()


@pytest.fixture
async def backend(make_backend: OpenBackend) -> Backend:
    """A new, empty store of the parametrized backend."""
    return await make_backend()


async def step(updates: AsyncIterator[T]) -> T:
    """The next item of ``updates``; fails the test when it does not come within WAIT."""
    return await asyncio.wait_for(anext(updates), WAIT)


async def next_events(updates: AsyncIterator[WatchUpdate]) -> WatchUpdate:
    """The next watch update that carries events (skipping progress updates)."""
    while True:
        update = await step(updates)
        if update.events:
            return update


async def collect(updates: AsyncIterator[WatchUpdate], count: int) -> list[Event]:
    """The next ``count`` events of a watch, across as many updates as they come in."""
    events: list[Event] = []
    while len(events) < count:
        update = await next_events(updates)
        assert update.revision >= update.events[-1].revision
        events += update.events
    assert len(events) == count, events
    return events


async def started_watch(
    backend: Backend, prefix: str = "", pattern: str | None = None, **options: Any
) -> tuple[AsyncIterator[WatchUpdate], WatchUpdate]:
    """A watch and its created marker."""
    glob = GlobPattern(pattern) if pattern is not None else None
    updates = backend.watch(prefix, glob, **options)
    created = await step(updates)
    return updates, created


async def close(updates: AsyncIterator[WatchUpdate]) -> None:
    """End a watch."""
    aclose = getattr(updates, "aclose", None)
    if aclose is not None:
        await aclose()


# -- revisions ---------------------------------------------------------------------------------


async def test_new_store_is_empty_at_revision_zero(backend: Backend) -> None:
    assert await backend.revision() == 0
    assert await backend.get("missing") is None
    page = await backend.range("")
    assert page.entries == [] and page.more is False
    stats = await backend.stats()
    assert (stats.keys, stats.bytes, stats.revision) == (0, 0, 0)


async def test_revisions_strictly_increase(backend: Backend) -> None:
    seen = []
    for number in range(5):
        entry = await backend.put(f"k{number % 2}", b"v%d" % number)
        seen.append(entry.mod_revision)
    assert seen == sorted(set(seen))
    assert seen[0] == 1
    assert await backend.revision() == seen[-1]


async def test_read_returns_the_entry_with_the_store_revision(backend: Backend) -> None:
    first = await backend.put("a", b"1")
    await backend.put("b", b"2")
    entry, revision = await backend.read("a")
    assert entry == first
    assert revision == await backend.revision() == first.mod_revision + 1
    assert await backend.read("missing") == (None, revision)


async def test_create_mod_revision_and_version(backend: Backend) -> None:
    first = await backend.put("doc", b"1")
    assert (first.create_revision, first.mod_revision, first.version) == (1, 1, 1)
    await backend.put("other", b"x")
    second = await backend.put("doc", b"2")
    assert (second.create_revision, second.mod_revision, second.version) == (1, 3, 2)
    assert second.value == b"2"
    assert await backend.get("doc") == second
    await backend.delete("doc")
    again = await backend.put("doc", b"3")
    assert (again.create_revision, again.version) == (again.mod_revision, 1)


async def test_transaction_shares_one_revision(backend: Backend) -> None:
    await backend.put("gone", b"old")
    result = await backend.txn((), (Put("a", b"1"), Put("b", b"2"), Delete("gone")))
    assert result.revision == 2
    a, b, gone = result.results
    assert a is not None and b is not None and gone is not None
    assert a.mod_revision == b.mod_revision == 2
    assert gone.value == b"old" and gone.mod_revision == 1
    assert await backend.get("gone") is None
    assert await backend.revision() == 2


async def test_delete_of_missing_key_does_not_advance_revision(backend: Backend) -> None:
    await backend.put("a", b"1")
    result = await backend.delete("missing")
    assert result.results == (None,)
    assert result.revision == 1
    assert await backend.revision() == 1
    empty = await backend.txn((), ())
    assert empty.revision == 1 and empty.results == ()


# -- compare-and-set ---------------------------------------------------------------------------


async def test_compare_zero_means_must_not_exist(backend: Backend) -> None:
    created = await backend.put("k", b"1", expected_revision=0)
    assert created.version == 1
    with pytest.raises(ConflictError) as caught:
        await backend.put("k", b"2", expected_revision=0)
    assert caught.value.reason == Reason.REVISION_CONFLICT
    assert caught.value.metadata == {
        "key": "k",
        "expected_revision": "0",
        "actual_revision": str(created.mod_revision),
    }
    assert (await backend.get("k")) == created


async def test_conflict_names_key_and_revisions_and_writes_nothing(backend: Backend) -> None:
    first = await backend.put("k", b"1")
    await backend.put("k", b"2")
    revision = await backend.revision()
    with pytest.raises(ConflictError) as caught:
        await backend.put("k", b"3", expected_revision=first.mod_revision)
    assert caught.value.metadata == {
        "key": "k",
        "expected_revision": str(first.mod_revision),
        "actual_revision": str(revision),
    }
    with pytest.raises(ConflictError) as missing:
        await backend.delete("absent", expected_revision=7)
    assert missing.value.metadata["actual_revision"] == "0"
    assert await backend.revision() == revision
    entry = await backend.get("k")
    assert entry is not None and entry.value == b"2"


async def test_matching_compare_writes(backend: Backend) -> None:
    entry = await backend.put("k", b"1")
    updated = await backend.put("k", b"2", expected_revision=entry.mod_revision)
    assert updated.version == 2
    removed = await backend.delete("k", expected_revision=updated.mod_revision)
    assert removed.results[0] == updated


async def test_multi_key_transaction_is_all_or_nothing(backend: Backend) -> None:
    a = await backend.put("a", b"1")
    b = await backend.put("b", b"1")
    await backend.put("b", b"2")  # b moved on: the transaction below must fail whole
    before = await backend.revision()
    with pytest.raises(ConflictError) as caught:
        await backend.txn(
            (Compare("a", a.mod_revision), Compare("b", b.mod_revision)),
            (Put("a", b"new"), Put("c", b"new"), Delete("b")),
        )
    assert caught.value.metadata["key"] == "b"
    assert await backend.revision() == before
    assert (await backend.get("a")) == a
    assert await backend.get("c") is None
    current_b = await backend.get("b")
    assert current_b is not None and current_b.value == b"2"
    result = await backend.txn(
        (Compare("a", a.mod_revision), Compare("b", current_b.mod_revision), Compare("c", 0)),
        (Put("a", b"new"), Put("c", b"new"), Delete("b")),
    )
    assert result.revision == before + 1
    assert [e.key for e in (await backend.range("")).entries] == ["a", "c"]


# -- TTL ---------------------------------------------------------------------------------------


async def test_expired_entries_are_invisible(backend: Backend) -> None:
    await backend.put("live", b"1", expire_at=time.time() + 3600)
    await backend.put("dead", b"1", expire_at=time.time() - 1)
    await backend.put("plain", b"1")
    live = await backend.get("live")
    assert live is not None and live.expire_at is not None
    assert await backend.get("dead") is None
    assert [e.key for e in (await backend.range("")).entries] == ["live", "plain"]
    stats = await backend.stats()
    assert stats.keys == 2


async def test_expired_key_counts_as_missing_for_compare(backend: Backend) -> None:
    await backend.put("k", b"1", expire_at=time.time() - 1)
    entry = await backend.put("k", b"2", expected_revision=0)
    assert entry.version == 1 and entry.create_revision == entry.mod_revision
    assert entry.expire_at is None


async def test_put_without_ttl_clears_expiry(backend: Backend) -> None:
    await backend.put("k", b"1", expire_at=time.time() + 0.3)
    entry = await backend.put("k", b"2")
    assert entry.expire_at is None
    stored = await backend.get("k")
    assert stored is not None and stored.expire_at is None


async def test_reaper_expires_without_reads_and_emits_expire(backend: Backend) -> None:
    updates, _ = await started_watch(backend, "t/", progress_interval=None)
    try:
        # The long-lived key first, so that the order of the events does not depend on how
        # long a put takes on a loaded machine.
        await backend.put("t/long", b"v", expire_at=time.time() + 3600)
        put = await backend.put("t/short", b"v", expire_at=time.time() + 0.2)
        # Nobody reads: the backend's own reaper must expire the key and tell the watcher.
        events = await collect(updates, 3)
        assert [(e.type, e.key) for e in events] == [
            (EventType.PUT, "t/long"),
            (EventType.PUT, "t/short"),
            (EventType.EXPIRE, "t/short"),
        ]
        event = events[-1]
        assert event.entry is None and event.prev == put
        assert event.revision > put.mod_revision  # the expiry is a revision of its own
    finally:
        await close(updates)
    assert await backend.get("t/short") is None
    assert [e.key for e in (await backend.range("t/")).entries] == ["t/long"]


# -- list: glob, order, pagination -------------------------------------------------------------

KEYS = ["a/b", "a/bb", "a/c", "a/x/y", "a/Z", "ab/b", "a/é", "a/ä", "a/[", "b/a"]


async def _fill(backend: Backend) -> None:
    for key in KEYS:
        await backend.put(key, key.encode())


async def _keys(backend: Backend, prefix: str, pattern: str | None) -> list[str]:
    glob = GlobPattern(pattern) if pattern is not None else None
    return [e.key for e in (await backend.range(prefix, glob)).entries]


@pytest.mark.parametrize(
    ("prefix", "pattern", "expected"),
    [
        ("a/", None, ["a/Z", "a/[", "a/b", "a/bb", "a/c", "a/x/y", "a/ä", "a/é"]),
        ("a/", "*", ["a/Z", "a/[", "a/b", "a/bb", "a/c", "a/x/y", "a/ä", "a/é"]),
        ("a/", "?", ["a/Z", "a/[", "a/b", "a/c", "a/ä", "a/é"]),
        ("a/", "b*", ["a/b", "a/bb"]),
        ("a/", "[a-c]", ["a/b", "a/c"]),
        ("a/", "[!b]", ["a/Z", "a/[", "a/c", "a/ä", "a/é"]),
        ("a/", "*y", ["a/x/y"]),
        ("a/", "x/*", ["a/x/y"]),
        ("a/", "[[]", ["a/["]),
        ("a/", "z", []),
        ("", "a*b", ["a/b", "a/bb", "ab/b"]),
        ("ab/", "*", ["ab/b"]),
        ("b/", None, ["b/a"]),
    ],
)
async def test_glob_semantics_and_prefix_isolation(
    backend: Backend, prefix: str, pattern: str | None, expected: list[str]
) -> None:
    await _fill(backend)
    assert await _keys(backend, prefix, pattern) == expected


async def test_range_is_ordered_by_code_point(backend: Backend) -> None:
    await _fill(backend)
    assert await _keys(backend, "", None) == sorted(KEYS)


async def test_range_pages_with_start_after_limit_and_more(backend: Backend) -> None:
    keys = [f"p/{number:03d}" for number in range(25)]
    for key in reversed(keys):
        await backend.put(key, b"v")
    await backend.put("q/000", b"v")
    pages: list[list[str]] = []
    start_after = ""
    while True:
        page = await backend.range("p/", start_after=start_after, limit=10)
        pages.append([e.key for e in page.entries])
        assert page.revision == 26
        if not page.more:
            break
        start_after = page.entries[-1].key
    assert pages == [keys[0:10], keys[10:20], keys[20:25]]
    exact = await backend.range("p/", limit=25)
    assert len(exact.entries) == 25 and exact.more is False
    odd = await backend.range("p/", GlobPattern("*[13579]"), start_after="p/010", limit=3)
    assert [e.key for e in odd.entries] == ["p/011", "p/013", "p/015"] and odd.more


# -- scan: key ranges, reverse, cursors, earlier revisions -------------------------------------


async def _scan_all(
    backend: Backend, span: KeyRange, *, reverse: bool = False, limit: int = 3, revision: int = 0
) -> list[Entry]:
    """Every entry of ``span``, page after page (each page at most ``limit``)."""
    entries: list[Entry] = []
    after = None
    while True:
        page = await backend.scan(
            span, after=after, reverse=reverse, limit=limit, revision=revision
        )
        assert len(page.entries) <= limit
        entries += page.entries
        if not page.more:
            return entries
        after = page.cursor


def _span(
    prefix: str, low: str = "", high: str | None = None, pattern: str | None = None
) -> KeyRange:
    bound = prefix_end(prefix)
    if high is None or (bound is not None and bound < high):
        high = bound
    glob = GlobPattern(pattern) if pattern is not None else None
    return KeyRange(prefix, max(prefix, low), high, glob)


@pytest.mark.parametrize("reverse", [False, True])
async def test_scan_reads_a_key_range_in_both_directions_page_by_page(
    backend: Backend, reverse: bool
) -> None:
    await _fill(backend)
    under_a = sorted(k for k in KEYS if k.startswith("a/"))
    for limit in (1, 2, 3, 100):
        keys = [e.key for e in await _scan_all(backend, _span("a/"), reverse=reverse, limit=limit)]
        assert keys == (under_a[::-1] if reverse else under_a)
    span = _span("a/", low="a/b", high="a/x")
    keys = [e.key for e in await _scan_all(backend, span, reverse=reverse)]
    expected = ["a/b", "a/bb", "a/c"]
    assert keys == (expected[::-1] if reverse else expected)
    values = [e.value for e in await _scan_all(backend, span)]
    assert values == [b"a/b", b"a/bb", b"a/c"]
    keys = [e.key for e in await _scan_all(backend, _span("a/", pattern="[!b]"), reverse=reverse)]
    expected = ["a/Z", "a/[", "a/c", "a/ä", "a/é"]
    assert keys == (expected[::-1] if reverse else expected)
    assert await _scan_all(backend, _span("nothing/")) == []


async def test_scan_globs_mean_what_fnmatch_means(backend: Backend) -> None:
    keys = ["k/" + "".join(chars) for chars in itertools.product("ab-!]é^", repeat=2)]
    await backend.txn([], [Put(key, b"") for key in keys])
    rng = random.Random(16)
    for _ in range(60):
        text = "".join(rng.choice("ab-!]é^*?[") for _ in range(rng.randint(1, 6)))
        try:
            pattern = parse_pattern(text)
        except InvalidArgumentError:
            continue
        span = KeyRange("k/", "k/", prefix_end("k/"), pattern)
        page = await backend.scan(span, limit=1000)
        expected = [k for k in sorted(keys) if fnmatch.fnmatchcase(k[2:], text)]
        assert [e.key for e in page.entries] == expected, text


async def test_globs_with_lua_magic_characters_mean_what_fnmatch_means(backend: Backend) -> None:
    keys = ["p/" + "".join(chars) for chars in itertools.product("a%.(+$-^é", repeat=2)]
    await backend.txn([], [Put(key, b"") for key in keys])
    rng = random.Random(19)
    for _ in range(80):
        text = "".join(rng.choice("a%.(+$-^é*?[]!") for _ in range(rng.randint(1, 6)))
        try:
            pattern = parse_pattern(text)
        except InvalidArgumentError:
            continue
        page = await backend.range("p/", pattern, limit=1000)
        expected = [k for k in sorted(keys) if fnmatch.fnmatchcase(k[2:], text)]
        assert [e.key for e in page.entries] == expected, text


async def test_a_sparse_page_stops_after_a_bounded_number_of_keys(backend: Backend) -> None:
    keys = [f"z/{number:05d}" for number in range(SCAN_BUDGET + 500)]
    for start in range(0, len(keys), 1000):
        await backend.txn([], [Put(key, b"") for key in keys[start : start + 1000]])
    for reverse, wanted in ((False, keys[-1]), (True, keys[0])):
        span = _span("z/", pattern="*" + wanted[2:])
        page = await backend.scan(span, reverse=reverse, limit=10)
        assert page.entries == [] and page.more  # stopped early, before the one match
        found, pages = [], 1
        while page.more:
            page = await backend.scan(span, after=page.cursor, reverse=reverse, limit=10)
            found += [e.key for e in page.entries]
            pages += 1
        assert found == [wanted] and pages >= 2
    pattern = GlobPattern("*" + keys[-1][2:])
    listed = await backend.range("z/", pattern, limit=10)
    assert listed.entries == [] and listed.more and listed.cursor
    found = []
    while listed.more:
        listed = await backend.range("z/", pattern, start_after=listed.cursor, limit=10)
        found += [e.key for e in listed.entries]
    assert found == [keys[-1]]


async def test_a_sparse_glob_over_many_keys_pages_completely(backend: Backend) -> None:
    keys = [f"s/{number:05d}" for number in range(6000)]
    for start in range(0, len(keys), 1000):
        await backend.txn([], [Put(key, b"") for key in keys[start : start + 1000]])
    entries = await _scan_all(backend, _span("s/", pattern="*7"), limit=1000)
    assert [e.key for e in entries] == [k for k in keys if k.endswith("7")]
    entries = await _scan_all(backend, _span("s/", pattern="*7"), limit=1000, reverse=True)
    assert [e.key for e in entries] == [k for k in keys if k.endswith("7")][::-1]


async def test_scan_at_an_earlier_revision_sees_the_store_as_it_was(backend: Backend) -> None:
    first = await backend.put("h/a", b"a1")
    await backend.put("h/b", b"b1")
    await backend.put("h/gone", b"g1")
    before = await backend.revision()
    await backend.put("h/a", b"a2")
    await backend.delete("h/gone")
    await backend.put("h/new", b"n1")
    await backend.put("other", b"x")
    then = await _scan_all(backend, _span("h/"), revision=before, limit=1)
    assert [(e.key, e.value) for e in then] == [("h/a", b"a1"), ("h/b", b"b1"), ("h/gone", b"g1")]
    assert then[0].mod_revision == first.mod_revision and then[0].version == 1
    reverse = await _scan_all(backend, _span("h/"), revision=before, reverse=True, limit=2)
    assert [e.key for e in reverse] == ["h/gone", "h/b", "h/a"]
    page = await backend.scan(_span("h/"), revision=before)
    assert page.revision == before
    now = await _scan_all(backend, _span("h/"))
    assert [(e.key, e.value) for e in now] == [("h/a", b"a2"), ("h/b", b"b1"), ("h/new", b"n1")]
    at_first = await _scan_all(backend, _span("h/", pattern="[ag]*"), revision=first.mod_revision)
    assert [e.key for e in at_first] == ["h/a"]


async def test_scan_stops_a_page_at_max_bytes_and_refuses_a_future_revision(
    backend: Backend,
) -> None:
    for number in range(6):
        await backend.put(f"m/{number}", b"x" * 100)
    page = await backend.scan(_span("m/"), limit=100, max_bytes=250)
    assert [e.key for e in page.entries] == ["m/0", "m/1", "m/2"] and page.more
    assert page.cursor == "m/2"
    with pytest.raises(InvalidArgumentError) as caught:
        await backend.scan(_span("m/"), revision=await backend.revision() + 1)
    assert caught.value.reason == Reason.INVALID_REVISION


async def test_scan_of_a_compacted_revision_raises_with_the_oldest_revision(
    make_backend: OpenBackend,
) -> None:
    backend = await make_backend(history_revisions=4)
    for number in range(30):
        await backend.put(f"k{number % 3}", b"%d" % number)
    oldest = (await backend.stats()).oldest_revision
    with pytest.raises(HistoryCompactedError) as caught:
        await backend.scan(_span(""), revision=1)
    assert caught.value.compact_revision == oldest
    page = await backend.scan(_span(""), revision=oldest)
    assert page.revision == oldest and len(page.entries) == 3


# -- watch -------------------------------------------------------------------------------------


async def test_watch_created_marker_has_current_revision(backend: Backend) -> None:
    await backend.put("a", b"1")
    await backend.put("a", b"2")
    updates, created = await started_watch(backend)
    try:
        assert created.events == () and created.revision == 2
        await backend.put("a", b"3")
        update = await next_events(updates)
        assert [(e.type, e.key, e.revision) for e in update.events] == [(EventType.PUT, "a", 3)]
    finally:
        await close(updates)


async def test_watch_from_revision_replays_then_follows_without_loss_or_dup(
    backend: Backend,
) -> None:
    for number in range(1, 6):
        await backend.put(f"w/{number % 2}", b"%d" % number)
    updates, created = await started_watch(backend, "w/", start_revision=3)
    assert created.revision == 5
    try:
        for number in range(6, 31):
            await backend.put(f"w/{number % 2}", b"%d" % number)
        events = await collect(updates, 28)
        assert [e.revision for e in events] == list(range(3, 31))
    finally:
        await close(updates)


async def test_watch_events_carry_entries_and_previous_entries(backend: Backend) -> None:
    first = await backend.put("k", b"1")
    updates, _ = await started_watch(backend)
    try:
        await backend.put("k", b"2")
        await backend.delete("k")
        put, delete = await collect(updates, 2)
        assert put.type is EventType.PUT and put.prev == first
        assert put.entry is not None and put.entry.value == b"2" and put.entry.version == 2
        assert delete.type is EventType.DELETE and delete.entry is None
        assert delete.prev == put.entry
    finally:
        await close(updates)


async def test_watch_delivers_a_transaction_as_one_revision(backend: Backend) -> None:
    updates, _ = await started_watch(backend)
    try:
        await backend.txn((), (Put("x", b"1"), Put("y", b"1")))
        update = await next_events(updates)
        assert [(e.key, e.revision) for e in update.events] == [("x", 1), ("y", 1)]
        assert update.revision == 1
    finally:
        await close(updates)


async def test_watch_filters_by_prefix_and_pattern(backend: Backend) -> None:
    updates, _ = await started_watch(backend, "a/", "x*")
    try:
        for key in ["a/y", "ab/x", "b/x", "a/xz", "x", "a/x"]:
            await backend.put(key, b"v")
        assert [e.key for e in await collect(updates, 2)] == ["a/xz", "a/x"]
    finally:
        await close(updates)


async def test_idle_watch_yields_progress(backend: Backend) -> None:
    await backend.put("other", b"1")
    updates, created = await started_watch(backend, "w/", progress_interval=0.05)
    try:
        progress = await step(updates)
        assert progress.events == () and progress.revision == created.revision == 1
        await backend.put("w/a", b"1")
        update = await next_events(updates)
        assert update.revision == 2
        progress = await step(updates)
        assert progress.events == () and progress.revision == 2
    finally:
        await close(updates)


async def test_compacted_history_raises_with_oldest_watchable_revision(
    make_backend: OpenBackend,
) -> None:
    backend = await make_backend(history_revisions=4)
    for number in range(30):
        await backend.put("k", b"%d" % number)
    with pytest.raises(HistoryCompactedError) as caught:
        updates = backend.watch("", None, start_revision=1)
        await step(updates)
    oldest = caught.value.compact_revision
    assert 1 < oldest <= 27
    assert caught.value.reason == Reason.HISTORY_COMPACTED
    assert (await backend.stats()).oldest_revision == oldest
    updates, _ = await started_watch(backend, start_revision=oldest)
    try:
        events = await collect(updates, 31 - oldest)
        assert [e.revision for e in events] == list(range(oldest, 31))
    finally:
        await close(updates)


async def test_watch_from_current_plus_one_after_start_zero(backend: Backend) -> None:
    await backend.put("a", b"1")
    updates, created = await started_watch(backend, start_revision=0)
    try:
        assert created.revision == 1
        await backend.put("a", b"2")
        update = await next_events(updates)
        assert [e.revision for e in update.events] == [2]
    finally:
        await close(updates)


# -- stats -------------------------------------------------------------------------------------


async def test_stats_count_keys_bytes_and_revisions(backend: Backend) -> None:
    await backend.put("a", b"12345")
    await backend.put("b", b"123")
    await backend.put("a", b"1")
    await backend.delete("b")
    await backend.put("c", b"xy")
    stats = await backend.stats()
    assert stats.keys == 2
    assert stats.bytes == 3
    assert stats.revision == 5
    assert stats.oldest_revision == 1
    assert stats.backend == type(backend).name


async def test_entries_compare_equal_across_reads(backend: Backend) -> None:
    written = await backend.put("k", b"\x00\xff binary", expire_at=time.time() + 3600)
    read = await backend.get("k")
    listed = (await backend.range("")).entries
    assert read == written
    assert listed == [written]
    assert isinstance(read, Entry)


# -- batch -------------------------------------------------------------------------------------


async def test_batch_runs_items_in_order_each_at_its_own_revision(backend: Backend) -> None:
    first = await backend.put("b/x", b"\x01")
    outcomes = await backend.batch(
        [
            Transaction((), (Put("b/a", b"\x02"),)),
            Read("b/a"),
            Transaction((Compare("b/x", first.mod_revision),), (Put("b/x", b"\x03"),)),
            Transaction((Compare("b/x", first.mod_revision),), (Put("b/x", b"\x04"),)),
            Transaction((), (Delete("b/missing"),)),
            Read("b/missing"),
            Transaction((), (Delete("b/a"),)),
        ]
    )
    saved, read, swapped, stale, no_op, missing, deleted = outcomes
    assert isinstance(saved, TxnResult) and isinstance(swapped, TxnResult)
    assert isinstance(no_op, TxnResult) and isinstance(deleted, TxnResult)
    assert saved.revision == first.mod_revision + 1
    # A read sees the items before it, with a store revision at least theirs.
    assert isinstance(read, tuple)
    entry, revision = read
    assert entry is not None and entry.value == b"\x02" and revision >= saved.revision
    assert swapped.revision == saved.revision + 1
    # A failed comparison fails that item alone, naming its key and both revisions.
    assert isinstance(stale, ConflictError)
    assert stale.metadata == {
        "key": "b/x",
        "expected_revision": str(first.mod_revision),
        "actual_revision": str(swapped.revision),
    }
    assert no_op.revision == swapped.revision and no_op.results == (None,)
    assert missing == (None, swapped.revision)
    assert deleted.revision == swapped.revision + 1
    assert deleted.results[0] is not None and deleted.results[0].value == b"\x02"
    assert await backend.revision() == deleted.revision
    stored = await backend.get("b/x")
    assert stored is not None and stored.value == b"\x03"
    assert await backend.get("b/a") is None


async def test_batch_writes_are_watched_one_revision_each(backend: Backend) -> None:
    updates, created = await started_watch(backend, "w/")
    outcomes = await backend.batch(
        [Transaction((), (Put(f"w/{n}", bytes([n])),)) for n in range(5)] + [Read("w/0")]
    )
    revisions = [outcome.revision for outcome in outcomes[:5] if isinstance(outcome, TxnResult)]
    assert revisions == list(range(created.revision + 1, created.revision + 6))
    events = await collect(updates, 5)
    assert [(e.key, e.revision) for e in events] == [(f"w/{n}", r) for n, r in enumerate(revisions)]
    await close(updates)


async def test_an_empty_batch_returns_nothing(backend: Backend) -> None:
    assert await backend.batch([]) == []
    assert await backend.revision() == 0
