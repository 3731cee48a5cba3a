"""Bounded work per Redis call: every script call (and every read of the change log) handles
a bounded number of operations, bytes or entries, whatever the calls in flight and the data, and
what a caller gets stays exactly what one unbounded call would have given. The bounds are
counted (items per script call, bytes unpacked, entries read), never timed."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections import Counter
from typing import Any

import pytest
from statekeeper.errors import ConflictError, Reason, UnavailableError
from statekeeper_server.engine.storage.backend import (
    BatchItem,
    Compare,
    Delete,
    EventType,
    Put,
    Read,
    Transaction,
    TxnResult,
    range_span,
)
from statekeeper_server.engine.storage.redis import REPLY_BYTES, UNPACK_BYTES, RedisBackend
from statekeeper_server.engine.storage.redis_batch import (
    GATHER_BYTES,
    GATHER_OPERATIONS,
    Gatherer,
    weight,
)


class Recorder:
    """A ``send`` for a :class:`Gatherer` that records the items of each call and holds the
    first call until released, so that the batches issued meanwhile queue up."""

    def __init__(self) -> None:
        self.calls: list[list[BatchItem]] = []
        self.release = asyncio.Event()

    async def __call__(self, items: list[BatchItem]) -> list[Any]:
        self.calls.append(items)
        await self.release.wait()
        return [f"reply {id(item)}" for item in items]


def _put(key: str, size: int = 1) -> Transaction:
    return Transaction((), (Put(key, b"v" * size),))


async def _gathered(batches: list[list[BatchItem]]) -> tuple[Recorder, list[list[Any]]]:
    """Run ``batches`` at once through one Gatherer: the calls made and each batch's replies."""
    send = Recorder()
    gatherer = Gatherer(send)
    first = asyncio.ensure_future(gatherer.run([Read("first")]))
    await asyncio.sleep(0)  # the first call is in flight: the others queue behind it
    rest = [asyncio.ensure_future(gatherer.run(batch)) for batch in batches]
    await asyncio.sleep(0)
    send.release.set()
    replies = await asyncio.gather(first, *rest)
    await gatherer.close()
    return send, replies[1:]


async def test_gathered_calls_carry_at_most_the_operation_bound_and_keep_every_order() -> None:
    batches: list[list[BatchItem]] = [
        [_put(f"a{n}") for n in range(GATHER_OPERATIONS + 5)],
        [Read("b"), _put("b")],
        [_put(f"c{n}") for n in range(2 * GATHER_OPERATIONS)],
    ]
    send, replies = await _gathered(batches)
    sent = send.calls[1:]
    assert all(sum(weight(item)[0] for item in call) <= GATHER_OPERATIONS for call in sent)
    # Every item once, in the order issued, and each caller gets its own replies in order.
    assert [item for call in sent for item in call] == [item for b in batches for item in b]
    assert replies == [[f"reply {id(item)}" for item in batch] for batch in batches]
    # A call is full before the next one starts: no more calls than the bound requires.
    total = sum(len(batch) for batch in batches)
    assert len(sent) == -(-total // GATHER_OPERATIONS)


async def test_a_transaction_above_the_bounds_goes_whole_and_alone() -> None:
    big = Transaction((Compare("k", 0),), tuple(Put(f"k{n}", b"") for n in range(200)))
    large = _put("large", GATHER_BYTES + 1)
    batches: list[list[BatchItem]] = [[Read("x")], [big], [Read("y"), large, Read("z")]]
    send, _ = await _gathered(batches)
    assert send.calls[1:] == [[Read("x")], [big], [Read("y")], [large], [Read("z")]]


async def test_gathered_calls_carry_at_most_the_byte_bound() -> None:
    quarter = GATHER_BYTES // 4
    batches: list[list[BatchItem]] = [[_put(f"v{n}", quarter) for n in range(10)]]
    send, _ = await _gathered(batches)
    assert [len(call) for call in send.calls[1:]] == [4, 4, 2]


async def test_a_caller_cancelled_while_queued_never_runs_its_items() -> None:
    send = Recorder()
    gatherer = Gatherer(send)
    first = asyncio.ensure_future(gatherer.run([Read("first")]))
    await asyncio.sleep(0)
    gone = asyncio.ensure_future(gatherer.run([_put("gone")]))
    kept = asyncio.ensure_future(gatherer.run([_put("kept")]))
    await asyncio.sleep(0)
    gone.cancel()
    send.release.set()
    await first
    await kept
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert send.calls[1:] == [[_put("kept")]]
    await gatherer.close()


async def test_a_redis_batch_larger_than_a_call_runs_in_order_with_its_own_results(
    redis_url: str,
) -> None:
    """Items of one batch that go in several script calls still see the items before them (a
    read and a comparison after a write of an earlier call) and commit at consecutive
    revisions."""
    backend = RedisBackend(redis_url, key_prefix="split:")
    try:
        start = (await backend.put("warm", b"0")).mod_revision
        count = 2 * GATHER_OPERATIONS + 10
        items: list[BatchItem] = [_put(f"k{n:04d}") for n in range(count)]
        items += [
            Read("k0000"),
            Transaction((Compare("k0001", start + 2),), (Delete("k0001"),)),
            Transaction((Compare("k0002", 1),), (Delete("k0002"),)),
        ]
        outcomes = await backend.batch(items)
        revisions = [o.revision for o in outcomes[:count] if isinstance(o, TxnResult)]
        assert revisions == list(range(start + 1, start + 1 + count))
        read = outcomes[count]
        assert isinstance(read, tuple) and read[0] is not None and read[0].mod_revision == start + 1
        assert isinstance(outcomes[count + 1], TxnResult)
        assert isinstance(outcomes[count + 2], ConflictError)
        assert await backend.get("k0001") is None and await backend.get("k0002") is not None
    finally:
        await backend.close()


async def test_a_split_redis_batch_whose_later_call_fails_keeps_what_the_earlier_one_did(
    redis_url: str,
) -> None:
    """The items of the calls that ran report their own outcomes; only those of the call that
    failed, and after it, report UNAVAILABLE."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    backend = RedisBackend(redis_url, key_prefix="halfway:")
    try:
        await backend.put("warm", b"0")
        calls = 0
        send = backend._send_batch

        async def second_call_fails(items: list[BatchItem]) -> list[Any]:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise RedisConnectionError("the connection dropped")
            return await send(items)

        backend._batches = Gatherer(second_call_fails)
        outcomes = await backend.batch([_put(f"k{n:04d}") for n in range(GATHER_OPERATIONS + 3)])
        ran, failed = outcomes[:GATHER_OPERATIONS], outcomes[GATHER_OPERATIONS:]
        assert all(isinstance(outcome, TxnResult) for outcome in ran)
        assert [type(outcome) for outcome in failed] == [UnavailableError] * 3
        assert all(outcome.reason == Reason.BACKEND_UNAVAILABLE for outcome in failed)
        assert await backend.get(f"k{GATHER_OPERATIONS - 1:04d}") is not None
        assert await backend.get(f"k{GATHER_OPERATIONS:04d}") is None
    finally:
        await backend.close()


async def test_a_redis_reaper_step_expires_at_most_the_byte_bound_of_values(
    redis_url: str,
) -> None:
    backend = RedisBackend(redis_url, key_prefix="reap:")
    try:
        size = GATHER_BYTES // 2 + 1
        written = await backend.txn(
            [], [Put(f"big/{n}", b"v" * size, time.time() - 1) for n in range(6)]
        )
        assert (await backend.stats()).keys == 0  # every step taken: all six are gone
        page = await backend.history(
            range_span("big/", None), written.revision + 1, await backend.revision(), 100
        )
        by_revision = Counter(event.revision for event in page.events)
        assert sorted(event.key for event in page.events) == [f"big/{n}" for n in range(6)]
        assert {event.type for event in page.events} == {EventType.EXPIRE}
        assert max(by_revision.values()) == 2  # the second brings the values past the bound
    finally:
        await backend.close()


def _recording(target: Any, name: str, sizes: list[int], reply_size: Any) -> None:
    """Wrap ``target.name`` so that the size of each reply is appended to ``sizes``."""
    original = getattr(target, name)

    async def call(*args: Any, **kwargs: Any) -> Any:
        reply = await original(*args, **kwargs)
        sizes.append(reply_size(reply))
        return reply

    setattr(target, name, call)


def _packed(entries: list[Any]) -> int:
    return sum(len(fields[b"e"]) for _, fields in entries)


async def test_a_redis_page_at_an_earlier_revision_unpacks_a_bounded_log_per_call(
    redis_url: str,
) -> None:
    """Each key changed since the page's revision is found in a log entry of its own: a script
    call stops after the one that brings what it unpacked past UNPACK_BYTES."""
    backend = RedisBackend(redis_url, key_prefix="unpack:")
    try:
        keys = [f"e/k{n:02d}" for n in range(24)]
        then = (await backend.txn([], [Put(key, key.encode()) for key in keys])).revision
        size = 64 * 1024
        for key in keys:
            await backend.put(key, b"n" * size)
        found: list[int] = []
        _recording(backend, "_scan", found, lambda reply: (len(reply) - 6) // 6)
        page = await backend.scan(range_span("e/", None), limit=len(keys), revision=then)
        assert [(e.key, e.value, e.mod_revision) for e in page.entries] == [
            (key, key.encode(), then) for key in keys
        ]
        assert not page.more
        assert max(found) <= UNPACK_BYTES // size + 1 and len(found) > 1
    finally:
        await backend.close()


async def test_a_redis_replay_reads_about_read_bytes_of_the_log_at_a_time(
    redis_url: str,
) -> None:
    backend = RedisBackend(redis_url, key_prefix="replay:")
    try:
        first = await backend.revision() + 1
        for n in range(40):
            await backend.put(f"big/{n}", b"v" * 100_000)
        read: list[int] = []
        _recording(backend._redis, "xrange", read, _packed)
        page = await backend.history(range_span("none/", None), first, first + 39, 64)
        assert page.events == () and page.last == first + 39
        assert max(read) <= REPLY_BYTES and len(read) > 3
    finally:
        await backend.close()


async def test_a_redis_watch_that_fell_behind_reads_about_read_bytes_at_a_time(
    redis_url: str,
) -> None:
    """The change-log reader, many large revisions behind, catches up in reads of about
    REPLY_BYTES each and delivers every revision."""
    backend = RedisBackend(redis_url, key_prefix="behind:")

    async def write() -> int:
        writer = RedisBackend(redis_url, key_prefix="behind:")
        try:
            for n in range(30):
                await writer.put(f"big/{n}", b"v" * 100_000)
            return await writer.revision()
        finally:
            await writer.close()

    try:
        start = await backend.put("big/start", b"0")
        updates = backend.watch("big/")
        assert (await anext(updates)).events == ()  # established
        read: list[int] = []
        # The reader's only commands are its log reads: XREAD replies, [[stream, entries]]
        # (None when a read timed out), each entry [id, [field, value, ...]].
        _recording(
            backend,
            "_command",
            read,
            lambda reply: sum(len(fields[1]) for _, fields in reply[0][1]) if reply else 0,
        )
        # The writes land while this loop is held, so the reader finds all of them at once.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            last = pool.submit(asyncio.run, write()).result()
        revisions: list[int] = []
        async for update in updates:
            revisions += [event.revision for event in update.events]
            if update.revision >= last:
                break
        assert revisions == list(range(start.mod_revision + 1, last + 1))
        assert max(read) <= REPLY_BYTES and len(read) > 3
    finally:
        await backend.close()


async def test_a_redis_page_of_large_values_is_read_in_calls_of_about_reply_bytes(
    redis_url: str,
) -> None:
    backend = RedisBackend(redis_url, key_prefix="large:")
    try:
        size = 300_000
        keys = [f"v/{n:02d}" for n in range(10)]
        for key in keys:
            await backend.put(key, key.encode() * (size // 4))
        found: list[int] = []
        _recording(backend, "_scan", found, lambda reply: (len(reply) - 6) // 6)
        page = await backend.range("v/", limit=len(keys))
        assert [(e.key, e.value) for e in page.entries] == [
            (key, key.encode() * (size // 4)) for key in keys
        ]
        assert not page.more
        assert max(found) <= REPLY_BYTES // size + 1 and len(found) > 2
    finally:
        await backend.close()
