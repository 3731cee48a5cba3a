"""Watch groups: streams that ask for the same changes share one engine watch and its responses.

A hundred agents watching ``fleet/*`` should cost the server one backend watch, one conversion
and one encoding per change, not a hundred. :class:`WatchGroups` keys each group by everything
that shapes a response (tenant, pattern, value encoding, ...). The group's task reads the engine
watch from the current revision and appends the converted responses to a window; every member
stream yields the same response objects from its own position in that window, and
:func:`encoded_once` lets gRPC serialise each of those objects once for all of them.

**Flushes.** What a member sends is decided per group, not per member: the group's task stages
each update's responses and *flushes* them into the window, waking the members. A flush follows
a staged update at once when the group's previous flush is at least its hold old (a change
after a quiet spell goes out as it comes), and otherwise a hold after the previous one; the
single-response updates staged meanwhile become one merged response (``merge``, up to
``merge_bytes``; staged responses of that size flush at once). The hold is what the group's
last flush measured to cost (``hold_per_send`` times it: the wall time from a flush until every
member had handed it to gRPC, or, while some member has not yet, the time since), at most
``max_hold_s``: a group's sends take at most about half of the loop whatever the write rate, a
change that comes after the last flush was sent goes out at once (at 100 changes/s to 100
members, one message per change, as fast as a bare broadcast), and when the process gets less
CPU than it needs (a loaded machine) or gRPC holds the messages back (flow control), the sends
take longer, so the group holds longer and sends fewer, larger messages. At 1,000 changes/s to
100 members that is 100 to 150 messages a second per member of 7 to 10 changes each rather than
100,000 single-change messages, and all members at the window's end share one merged response
and its encoding; a group of one member holds about what one message costs to send. Deciding
this from the members' own sends alone cannot work: ``grpc.aio`` completes a write as soon as
the message is queued, so no member ever looks behind until the event loop is saturated; what
the group measures is how long the whole group took.

An engine update becomes one or more responses, each within the message limit (see
:mod:`~statekeeper_server.servicers.batching`); the window keeps an update's responses as one
item, so a member sends all of them (the fragments of a large revision included) even when the
window moves on meanwhile. A member behind by several single-response items is sent them merged
into one (up to ``merge_bytes``), and members at the same position share that merge.

A member that falls further behind than the window holds (``window`` items, ``window_bytes``
bytes) is not dropped and loses nothing: it continues on a private engine watch from the
revision after the last one it was sent, exactly as a stream that asked for that start revision
would. A member therefore sees what a private watch would have shown it: a ``created`` response
with the revision it starts after, then every change after that revision in order.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

from statekeeper_server.core import close_iterator
from statekeeper_server.servicers.batching import responses_of

U = TypeVar("U")
R = TypeVar("R")

#: How many responses a group keeps for members that are behind; a member further behind
#: continues on its own engine watch.
DEFAULT_WINDOW = 256
#: The size up to which a member's pending responses are merged into one message.
MERGE_BYTES = 1 << 20
#: The most bytes of responses a group keeps (beyond its newest item); members behind that
#: continue on their own engine watch, so a slow member never makes the server buffer more.
WINDOW_BYTES = 64 << 20
#: The longest a group holds staged changes (seconds).
MAX_HOLD_S = 0.05
#: The hold as a multiple of what the group's last flush took to send (see the module): 1
#: gives the sends at most about half of the loop. Measured at 100 changes/s to 100 members
#: (memory backend, quiet machine): 2 (with a floor of 0.2 ms per member) held every other
#: change, p99 27 ms against the bare broadcast's 10 ms; 1 sent each change alone, p99 9 ms
#: against 9 ms, and 1,000 changes/s still merged 7 changes a message at p99 32-55 ms.
HOLD_PER_SEND = 1.0
#: How many encoded responses :func:`encoded_once` keeps, and their most bytes in all.
ENCODED_ENTRIES = 64
ENCODED_BYTES = 32 << 20

#: ``to_responses(update, first)``: the responses of an engine update with their sizes in bytes.
ToResponses = Callable[[U, bool], Iterable[tuple[R, int]]]
#: A window item: (revision, responses, their size in bytes).
Item = tuple[int, tuple[R, ...], int]


def encoded_once(serialize: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    """``serialize`` for a stream whose response objects are shared by many calls and never
    changed once sent: the bytes of each of the last :data:`ENCODED_ENTRIES` objects (at most
    :data:`ENCODED_BYTES` in all) are kept, so a response sent to a hundred members of a watch
    group is encoded once. Entries are found by identity and hold their object, so an identity
    cannot be reused while its entry lives."""
    entries: dict[int, tuple[Any, bytes]] = {}
    held = 0

    def encode(message: Any) -> bytes:
        nonlocal held
        found = entries.get(id(message))
        if found is not None and found[0] is message:
            return found[1]
        data = serialize(message)
        entries[id(message)] = (message, data)
        held += len(data)
        while len(entries) > ENCODED_ENTRIES or (held > ENCODED_BYTES and len(entries) > 1):
            held -= len(entries.pop(next(iter(entries)))[1])
        return data

    return encode


class WatchGroups(Generic[U, R]):
    """The live watch groups of one kind of stream, by key.

    ``source(start_revision)`` opens an engine watch whose first update is the created marker;
    ``revision_of(update)`` is the store revision an update is current to;
    ``to_responses(update, first)`` converts an update into responses that each fit a message,
    with their sizes (none sends nothing); ``created(revision)`` is the first response of a
    stream that starts after ``revision``; ``merge(responses)`` is one response that says what
    the consecutive ``responses`` say, used up to ``merge_bytes`` (at most the message limit);
    a group flushes at most once per ``hold_per_send`` times its last flush's send time, and
    at least once per ``max_hold_s`` while it has something staged (see the module).
    """

    def __init__(
        self,
        revision_of: Callable[[U], int],
        created: Callable[[int], R],
        merge: Callable[[list[R]], R],
        merge_bytes: int = MERGE_BYTES,
        window: int = DEFAULT_WINDOW,
        window_bytes: int = WINDOW_BYTES,
        max_hold_s: float = MAX_HOLD_S,
        hold_per_send: float = HOLD_PER_SEND,
    ) -> None:
        self._groups: dict[Hashable, _Group[U, R]] = {}
        self._revision_of = revision_of
        self._created = created
        self._merge = merge
        self.merge_bytes = merge_bytes
        self.window = window
        self.window_bytes = window_bytes
        self.max_hold_s = max_hold_s
        self.hold_per_send = hold_per_send

    def __len__(self) -> int:
        return len(self._groups)

    async def join(
        self,
        key: Hashable,
        source: Callable[[int], AsyncIterator[U]],
        to_responses: ToResponses[U, R],
        start_revision: int = 0,
    ) -> AsyncIterator[R]:
        """The responses of a stream of ``key``, shared with the other streams of that key.

        With ``start_revision`` 0 the stream starts after the group's current revision. A
        resuming stream (``start_revision`` > 0) joins the group only where the group's window
        starts exactly after ``start_revision - 1`` (a client reconnecting with the revision
        after the last one it was sent); otherwise it reads its own engine watch from its start
        revision. A member that fell further behind than the window goes on privately from the
        revision after the last one it was sent.
        """
        group = self._groups.get(key)
        if group is None or group.finished:
            group = self._groups[key] = _Group(self, key, source, to_responses)
        member = _Member()
        try:
            revision = await group.admit(member)
            if start_revision > 0:
                member.position = group.position_after(start_revision - 1)
                member.revision = start_revision - 1
            if member.position is not None:
                yield self._created(revision)
                async for response in group.responses(member):
                    yield response
                if not member.fell_behind:
                    return
        finally:
            group.leave(member)
        if member.position is None:
            responses = _private(source(start_revision), to_responses, with_created=True)
        else:
            responses = _private(source(member.revision + 1), to_responses, with_created=False)
        try:
            async for response in responses:
                yield response
        finally:
            await close_iterator(responses)

    def _forget(self, group: _Group[U, R]) -> None:
        if self._groups.get(group.key) is group:
            del self._groups[group.key]


class _Member:
    """One stream of a group: its position in the window (None: it reads a watch of its own),
    the revision of the last response it was sent, whether it fell out of the window, and the
    number of the group's last flush it has sent all of."""

    __slots__ = ("fell_behind", "flush", "position", "revision")

    def __init__(self) -> None:
        self.position: int | None = None
        self.revision = 0
        self.fell_behind = False
        self.flush = 0


def _merge_run(
    item: Callable[[int], Item[R]], start: int, stop: int, limit: int
) -> tuple[int, int]:
    """(end, bytes) of the items from ``start`` (before ``stop``) that are sent as one
    message: a run of single-response items up to ``limit`` bytes, or the item alone."""
    _, responses, size = item(start)
    end = start + 1
    if len(responses) != 1:
        return end, size
    while end < stop:
        _, following, following_size = item(end)
        if len(following) != 1 or size + following_size > limit:
            break
        size += following_size
        end += 1
    return end, size


async def _private(
    updates: AsyncIterator[U], to_responses: ToResponses[U, R], with_created: bool
) -> AsyncIterator[R]:
    """The responses of a stream's own engine watch; its created response only when
    ``with_created`` (a member that fell behind was sent one already)."""
    messages = responses_of(
        updates, lambda update, first: (response for response, _ in to_responses(update, first))
    )
    try:
        created = await anext(messages, None)
        if created is None:
            return
        if with_created:
            yield created
        async for message in messages:
            yield message
    finally:
        await close_iterator(messages)


class _Group(Generic[U, R]):
    """One shared engine watch, its staged and flushed responses and its members' positions."""

    def __init__(
        self,
        groups: WatchGroups[U, R],
        key: Hashable,
        source: Callable[[int], AsyncIterator[U]],
        to_responses: ToResponses[U, R],
    ) -> None:
        self.groups = groups
        self.key = key
        #: The flushed window by sequence number, ``first`` to ``next - 1``.
        self.items: dict[int, Item[R]] = {}
        #: The bytes of the responses in the window.
        self.bytes = 0
        #: The latest merge of the responses from a position: (end position, revision, merged).
        self._merged: dict[int, tuple[int, int, R]] = {}
        self.first = 0
        self.next = 0
        #: The revision the window's end is current to, and the one before ``items[first]``.
        self.revision = -1
        self.floor = -1
        #: Updates read but not yet flushed, and the revision they bring the window to.
        self._staged: list[Item[R]] = []
        self._staged_bytes = 0
        self._staged_revision = -1
        self._last_flush = -math.inf
        #: Flushes so far; members that have not sent all of the last one; what the last
        #: flush that every member sent took (seconds from the flush to the last member).
        self.flushes = 0
        self._sending = 0
        self.send_cost = 0.0
        self._flush_timer: asyncio.TimerHandle | None = None
        self.members: dict[_Member, None] = {}
        self.error: BaseException | None = None
        self.finished = False
        self._waiters: list[asyncio.Future[None]] = []
        self._loop = asyncio.get_running_loop()
        self._started = self._loop.create_future()
        self._task = asyncio.create_task(self._run(source(0), to_responses))

    async def admit(self, member: _Member) -> int:
        """Register ``member`` at the end of the window; the revision that end is current to
        (what the member's created response says it starts after)."""
        self.members[member] = None
        member.position = self.next
        member.flush = self.flushes
        if not self._started.done():
            await asyncio.shield(self._started)
        if self.error is not None:
            raise self.error
        member.position, member.revision = self.next, self.revision
        return self.revision

    def position_after(self, revision: int) -> int | None:
        """The position whose responses are exactly the changes after ``revision``, or None
        when the window has no such position."""
        if revision == self.revision:
            return self.next
        if revision == self.floor:
            return self.first
        low, high = self.first, self.next
        while low < high:
            middle = (low + high) // 2
            if self.items[middle][0] < revision:
                low = middle + 1
            else:
                high = middle
        if low < self.next and self.items[low][0] == revision:
            return low + 1
        return None

    async def responses(self, member: _Member) -> AsyncIterator[R]:
        """What ``member`` is sent from its position on, until the group ends or the member
        falls out of the window (then ``member.fell_behind``)."""
        while True:
            position = member.position
            assert position is not None
            if position < self.first:
                member.fell_behind = True
                return
            if position < self.next:
                member.revision, responses, member.position = self.pending(position)
                for response in responses:
                    yield response
                continue
            if self.error is not None:
                raise self.error
            if self.finished:
                return
            if member.flush != self.flushes:
                self._sent(member)
            waiter = self._loop.create_future()
            self._waiters.append(waiter)
            await waiter

    def pending(self, position: int) -> tuple[int, tuple[R, ...], int]:
        """What a member at ``position`` is sent next: (revision, responses, next position);
        several pending single-response items are merged, and the merge is shared."""
        revision, responses, _ = self.items[position]
        end, _ = _merge_run(self.items.__getitem__, position, self.next, self.groups.merge_bytes)
        if end == position + 1:
            return revision, responses, end
        cached = self._merged.get(position)
        if cached is None or cached[0] != end:
            merged = self.groups._merge([self.items[i][1][0] for i in range(position, end)])
            cached = (end, self.items[end - 1][0], merged)
            self._merged[position] = cached
        return cached[1], (cached[2],), end

    def leave(self, member: _Member) -> None:
        """Forget ``member``; the last one to leave stops the group's watch."""
        if self.members.pop(member, False) is None and member.flush != self.flushes:
            self._sent(member)
        if not self.members and not self.finished:
            self.finished = True
            self.groups._forget(self)
            self._cancel_flush()
            self._task.cancel()

    async def _run(self, updates: AsyncIterator[U], to_responses: ToResponses[U, R]) -> None:
        revision_of = self.groups._revision_of
        try:
            self.revision = self.floor = self._staged_revision = revision_of(await anext(updates))
            self._started.set_result(None)
            async for update in updates:
                sized = tuple(to_responses(update, False))
                self._staged_revision = revision_of(update)
                if sized:
                    responses = tuple(response for response, _ in sized)
                    self._stage((self._staged_revision, responses, sum(s for _, s in sized)))
                elif not self._staged:
                    self.revision = self._staged_revision
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            self.error = error
        finally:
            self.finished = True
            self.groups._forget(self)
            self._cancel_flush()
            if not self._started.done():
                self._started.set_result(None)
            self._wake()
            await close_iterator(updates)

    def _stage(self, item: Item[R]) -> None:
        """Stage ``item`` for the next flush, scheduled now if none is (see the module)."""
        self._staged.append(item)
        self._staged_bytes += item[2]
        groups = self.groups
        if self._staged_bytes >= groups.merge_bytes:
            self._flush()  # a full message gains nothing by waiting
            return
        if self._flush_timer is not None:
            return
        hold = min(groups.max_hold_s, groups.hold_per_send * self.send_cost)
        delay = self._last_flush + hold - self._loop.time()
        if delay <= 0:
            self._flush()
        else:
            self._flush_timer = self._loop.call_later(delay, self._flush)

    def _cancel_flush(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None

    def _flush(self) -> None:
        """Move the staged items into the window (runs of single-response items merged into
        one) and wake the members."""
        self._cancel_flush()
        now = self._loop.time()
        if self._sending:  # some member has not sent the previous flush yet
            self.send_cost = max(self.send_cost, now - self._last_flush)
        self._last_flush = now
        self.flushes += 1
        self._sending = len(self.members)
        staged, self._staged, self._staged_bytes = self._staged, [], 0
        start = 0
        while start < len(staged):
            end, size = _merge_run(staged.__getitem__, start, len(staged), self.groups.merge_bytes)
            if end == start + 1:
                self._append(staged[start])
            else:
                merged = self.groups._merge([item[1][0] for item in staged[start:end]])
                self._append((staged[end - 1][0], (merged,), size))
            start = end
        self.revision = self._staged_revision
        self._wake()

    def _sent(self, member: _Member) -> None:
        """``member`` has sent (or left before sending) all of the last flush; the last one
        to do so measures what the flush cost."""
        member.flush = self.flushes
        self._sending -= 1
        if self._sending == 0:
            self.send_cost = self._loop.time() - self._last_flush

    def _append(self, item: Item[R]) -> None:
        self.items[self.next] = item
        self.bytes += item[2]
        self.next += 1
        positions = (m.position for m in self.members if m.position is not None)
        keep_from = min(min(positions, default=self.next), self.next)
        keep_from = max(keep_from, self.next - self.groups.window)
        while self.first < keep_from or (
            self.bytes > self.groups.window_bytes and self.first < self.next - 1
        ):
            self.floor, _, dropped = self.items.pop(self.first)
            self.bytes -= dropped
            self._merged.pop(self.first, None)
            self.first += 1

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
