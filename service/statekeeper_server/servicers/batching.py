"""Stream responses that fit the message limit: whole revisions per response, and a revision
too large for one response split into fragments at event boundaries.

Sizes are counted, never measured on a built response: each event's encoded size is known once,
when it is converted (see ``StateServicer._event_message``), and a response's size is the sum of
its events' field sizes plus :data:`RESPONSE_OVERHEAD`, a bound on its other fields.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from statekeeper.errors import ResourceExhaustedError

from statekeeper_server.core import close_iterator

T = TypeVar("T")
U = TypeVar("U")
R = TypeVar("R")

#: A bound on the bytes of a response's fields other than its events (created, revision, the
#: flags; a canceled response's reason is short text); the events' own framing is counted.
RESPONSE_OVERHEAD = 64
#: The size up to which several revisions are sent in one response (a revision larger than
#: this, up to the message limit, goes alone).
BATCH_BYTES = 1 << 20


def field_bytes(size: int) -> int:
    """The bytes a message of ``size`` bytes takes as an element of a repeated field (a
    one-byte tag, the varint length, the body)."""
    return 1 + max(1, (size.bit_length() + 6) // 7) + size


@dataclass(frozen=True, slots=True)
class Piece(Generic[T]):
    """The events of one response, the revision it is current to, whether more events of the
    same revision follow (``fragment``), and its size bound in bytes."""

    items: list[T]
    revision: int
    fragment: bool
    size: int


def pieces(
    events: Iterable[tuple[int, T, int]],
    revision: int,
    limit: int,
    batch: int = BATCH_BYTES,
    fragments: bool = True,
) -> Iterator[Piece[T]]:
    """Split ``events`` ((revision, item, field size) in revision order, of an update current
    to ``revision``) into responses of at most ``limit`` bytes.

    Consecutive whole revisions share a response up to ``batch`` bytes; a revision larger than
    ``limit`` is split at event boundaries into fragments. The last piece is current to
    ``revision``. One event larger than ``limit`` cannot be sent, nor, with ``fragments`` False
    (a stream without a fragment flag), one revision: RESOURCE_EXHAUSTED (the server's startup
    check rules this out for msgpack values; a JSON form can be larger).
    Events are read lazily, one revision ahead of what has been yielded.
    """
    budget = limit - RESPONSE_OVERHEAD
    batch = min(batch, budget)
    pending: list[T] = []
    pending_size = 0
    pending_revision = 0
    sealed = False  # pending is the last part of a fragmented revision: it goes alone
    for group_revision, group, sizes in _revisions(events):
        group_size = sum(sizes)
        if pending and (sealed or pending_size + group_size > batch or group_size > budget):
            yield Piece(pending, pending_revision, False, pending_size + RESPONSE_OVERHEAD)
            pending, pending_size = [], 0
        pending_revision, sealed = group_revision, group_size > budget
        if not sealed:
            pending.extend(group)
            pending_size += group_size
            continue
        if not fragments:
            raise _too_large("one revision of a watch", group_size, limit)
        *parts, (pending, pending_size) = _fragments(group, sizes, budget)
        for part, part_size in parts:
            yield Piece(part, group_revision, True, part_size + RESPONSE_OVERHEAD)
    if pending:
        yield Piece(pending, revision, False, pending_size + RESPONSE_OVERHEAD)


def _revisions(events: Iterable[tuple[int, T, int]]) -> Iterator[tuple[int, list[T], list[int]]]:
    """``events`` grouped by revision: (revision, items, sizes), read one revision ahead."""
    items: list[T] = []
    sizes: list[int] = []
    current = 0
    for revision, item, size in events:
        if revision != current and items:
            yield current, items, sizes
            items, sizes = [], []
        current = revision
        items.append(item)
        sizes.append(size)
    if items:
        yield current, items, sizes


def _fragments(items: list[T], sizes: list[int], budget: int) -> list[tuple[list[T], int]]:
    """``items`` in consecutive parts of at most ``budget`` bytes, with their sizes."""
    parts: list[tuple[list[T], int]] = []
    part: list[T] = []
    part_size = 0
    for item, size in zip(items, sizes, strict=True):
        if size > budget:
            raise _too_large("a watch event", size, budget + RESPONSE_OVERHEAD)
        if part and part_size + size > budget:
            parts.append((part, part_size))
            part, part_size = [], 0
        part.append(item)
        part_size += size
    parts.append((part, part_size))
    return parts


def _too_large(what: str, size: int, limit: int) -> ResourceExhaustedError:
    return ResourceExhaustedError(
        f"{what} is {size} bytes encoded, more than the server's max message size allows "
        f"({limit}); watch with the msgpack encoding, without prev_kv, or raise "
        "--max-message-bytes"
    )


async def responses_of(
    updates: AsyncIterator[U], to_responses: Callable[[U, bool], Iterable[R]]
) -> AsyncIterator[R]:
    """The responses ``to_responses(update, first)`` of each engine update, converted as they
    are sent; closing this closes ``updates``."""
    first = True
    try:
        async for update in updates:
            for response in to_responses(update, first):
                yield response
            first = False
    finally:
        await close_iterator(updates)
