"""Watch groups: streams that ask for the same changes share one engine watch and its responses.

A hundred agents watching ``fleet/*`` should cost the server one backend watch and one
conversion per change, not a hundred. :class:`WatchGroups` keys each group by everything that
shapes a response (tenant, pattern, value encoding, ...). The group's task reads the engine
watch from the current revision and appends each converted response to a window; every member
stream yields the same response objects from its own position in that window, so a member's
per-message work is a list lookup and a wake-up.

An engine update becomes one or more responses, each within the message limit (see
:mod:`~statekeeper_server.servicers.batching`); the window keeps an update's responses as one
item, so a member sends all of them (the fragments of a large revision included) even when the
window moves on meanwhile. A member that is behind by several single-response items is sent
them merged into one (``merge``, up to ``merge_bytes``): it catches up with fuller messages
rather than one message per change, and members at the same position share the merged response.

A member that falls further behind than the window holds (``window`` items, ``window_bytes``
bytes) is not dropped and loses nothing: it continues on a private engine watch from the
revision after the last one it was sent, exactly as a stream that asked for that start revision
would. A member therefore sees what a private watch would have shown it: a ``created`` response
with the revision it starts after, then every change after that revision in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Hashable, Iterable
from typing import Generic, TypeVar

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

#: ``to_responses(update, first)``: the responses of an engine update with their sizes in bytes.
ToResponses = Callable[[U, bool], Iterable[tuple[R, int]]]


class WatchGroups(Generic[U, R]):
    """The live watch groups of one kind of stream, by key.

    ``source(start_revision)`` opens an engine watch whose first update is the created marker;
    ``revision_of(update)`` is the store revision an update is current to;
    ``to_responses(update, first)`` converts an update into responses that each fit a message,
    with their sizes (none sends nothing); ``created(revision)`` is the first response of a
    stream that starts after ``revision``; ``merge(responses)`` is one response that says what
    the consecutive ``responses`` say, used up to ``merge_bytes`` (at most the message limit).
    """

    def __init__(
        self,
        revision_of: Callable[[U], int],
        created: Callable[[int], R],
        merge: Callable[[list[R]], R],
        merge_bytes: int = MERGE_BYTES,
        window: int = DEFAULT_WINDOW,
        window_bytes: int = WINDOW_BYTES,
    ) -> None:
        self._groups: dict[Hashable, _Group[U, R]] = {}
        self._revision_of = revision_of
        self._created = created
        self._merge = merge
        self.merge_bytes = merge_bytes
        self.window = window
        self.window_bytes = window_bytes

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
        after the last one it was sent); otherwise it reads its own engine watch.
        """
        group = self._groups.get(key)
        if group is None or group.finished:
            group = _Group(self, key, source, to_responses)
            self._groups[key] = group
        member = object()
        position: int | None = None
        try:
            revision = await group.admit(member)
            if start_revision <= 0:
                position = group.next
            else:
                position = group.position_after(start_revision - 1)
            if position is not None:
                group.positions[member] = position
                yield self._created(revision)
                while True:
                    if position < group.first:
                        break
                    if position < group.next:
                        revision, responses, position = group.pending(position)
                        group.positions[member] = position
                        for response in responses:
                            yield response
                        continue
                    if group.error is not None:
                        raise group.error
                    if group.finished:
                        return
                    await group.changed()
        finally:
            group.leave(member)
        # A resumed stream the group cannot start exactly after reads a watch of its own from
        # its start revision; a member that fell further behind than the window goes on
        # privately from the revision after the last one it was sent.
        resumed = position is None
        messages = responses_of(
            source(start_revision if resumed else revision + 1),
            lambda update, first: (response for response, _ in to_responses(update, first)),
        )
        try:
            created = await anext(messages, None)
            if created is None:
                return
            if resumed:
                yield created
            async for message in messages:
                yield message
        finally:
            await close_iterator(messages)

    def _forget(self, group: _Group[U, R]) -> None:
        if self._groups.get(group.key) is group:
            del self._groups[group.key]


class _Group(Generic[U, R]):
    """One shared engine watch, its window of converted responses and its members' positions."""

    def __init__(
        self,
        groups: WatchGroups[U, R],
        key: Hashable,
        source: Callable[[int], AsyncIterator[U]],
        to_responses: ToResponses[U, R],
    ) -> None:
        self.groups = groups
        self.key = key
        #: Window of (revision, responses, size) by sequence number, ``first`` to ``next - 1``.
        self.items: dict[int, tuple[int, tuple[R, ...], int]] = {}
        #: The bytes of the responses in the window.
        self.bytes = 0
        #: The latest merge of the responses from a position: (end position, revision, merged).
        self._merged: dict[int, tuple[int, int, R]] = {}
        self.first = 0
        self.next = 0
        #: The revision the group is current to, and the one before ``items[first]``.
        self.revision = -1
        self.floor = -1
        self.positions: dict[object, int] = {}
        self.error: BaseException | None = None
        self.finished = False
        self._waiters: list[asyncio.Future[None]] = []
        self._started = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(source(0), to_responses))

    async def admit(self, member: object) -> int:
        """Register ``member`` (at the end of the window until it says otherwise); the
        group's current revision."""
        self.positions[member] = self.next
        if not self._started.done():
            await asyncio.shield(self._started)
        if self.error is not None:
            raise self.error
        self.positions[member] = self.next
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

    def pending(self, position: int) -> tuple[int, tuple[R, ...], int]:
        """What a member at ``position`` is sent next: (revision, responses, next position);
        several pending single-response items are merged, and the merge is shared."""
        revision, responses, size = self.items[position]
        end = position + 1
        if len(responses) == 1:
            limit = self.groups.merge_bytes
            while end < self.next:
                _, following, following_size = self.items[end]
                if len(following) != 1 or size + following_size > limit:
                    break
                size += following_size
                end += 1
        if end == position + 1:
            return revision, responses, end
        cached = self._merged.get(position)
        if cached is None or cached[0] != end:
            merged = self.groups._merge([self.items[i][1][0] for i in range(position, end)])
            cached = (end, self.items[end - 1][0], merged)
            self._merged[position] = cached
        return cached[1], (cached[2],), end

    async def changed(self) -> None:
        """Wait until a response is appended or the group ends."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def leave(self, member: object) -> None:
        """Forget ``member``; the last one to leave stops the group's watch."""
        self.positions.pop(member, None)
        if not self.positions and not self.finished:
            self.finished = True
            self.groups._forget(self)
            self._task.cancel()

    async def _run(self, updates: AsyncIterator[U], to_responses: ToResponses[U, R]) -> None:
        revision_of = self.groups._revision_of
        try:
            self.revision = self.floor = revision_of(await anext(updates))
            self._started.set_result(None)
            async for update in updates:
                sized = tuple(to_responses(update, False))
                self.revision = revision_of(update)
                if sized:
                    responses = tuple(response for response, _ in sized)
                    self._append(self.revision, responses, sum(size for _, size in sized))
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            self.error = error
        finally:
            self.finished = True
            self.groups._forget(self)
            if not self._started.done():
                self._started.set_result(None)
            self._wake()
            await close_iterator(updates)

    def _append(self, revision: int, responses: tuple[R, ...], size: int) -> None:
        self.items[self.next] = (revision, responses, size)
        self.bytes += size
        self.next += 1
        keep_from = min(min(self.positions.values(), default=self.next), self.next)
        keep_from = max(keep_from, self.next - self.groups.window)
        while self.first < keep_from or (
            self.bytes > self.groups.window_bytes and self.first < self.next - 1
        ):
            self.floor, _, dropped = self.items.pop(self.first)
            self.bytes -= dropped
            self._merged.pop(self.first, None)
            self.first += 1
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
