"""OpenAI Agents SDK sessions kept in statekeeper: ``StatekeeperSession`` implements the SDK's
``Session`` protocol (``get_items``, ``add_items``, ``pop_item``, ``clear_session``).

Swap it in where ``SQLiteSession`` or ``RedisSession`` was::

    session = StatekeeperSession("conversation-1", StateManager(StateConfig(backend="grpc",
                                 address="localhost:50051")))
    result = await Runner.run(agent, "Hello", session=session)

Layout (every key under ``key_prefix``): one head document per session,
``<session>`` = ``{"first": F, "next": N, "tail": [...]}``, holding the newest items itself
(up to :data:`TAIL_BYTES`, so a usual turn reads and writes one key), and the older items in
numbered slots ``<session>/<seq>`` = ``{"items": [...]}`` for ``F <= seq < N``: when the tail
grows past :data:`TAIL_BYTES`, the same transaction moves it into new slots. Every change of a
session (add, pop, clear) rewrites its head in one transaction guarded by the head's revision,
so concurrent writers in any number of processes never lose or reorder items: a writer that
lost the race reads again and retries. ``clear_session`` empties the head (``first`` = ``N``)
in one transaction and then deletes the unreachable slots in batches; a clear that is
interrupted leaves only slots nothing reads, removed by the next clear.

``ttl`` (seconds) is a retention window: every slot expires ``ttl`` after it was written and
the head (with the newest items) ``ttl`` after the session's last change, so a long-running
session keeps its latest items and an idle one disappears (``RedisSession`` instead expires a
session as a whole).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgpack
from agents.memory.session_settings import (
    SessionSettings,
    coerce_session_settings,
    resolve_session_limit,
)

from statekeeper.errors import ConflictError
from statekeeper.integrations.storage import RANGE_PAGE, delete_matching, segment
from statekeeper.state import StateEntry, StateManager

if TYPE_CHECKING:
    from agents.items import TResponseInputItem

#: The newest items stay in the session's head up to this many encoded bytes.
TAIL_BYTES = 32 * 1024
#: A slot holds older items up to this many encoded bytes (well under the server's default
#: 1 MiB value limit); an item larger than that gets a slot of its own.
SLOT_BYTES = 256 * 1024
#: The key prefix of the sessions when none is given.
DEFAULT_KEY_PREFIX = "openai-agents/"


class StatekeeperSession:
    """The conversation history of one OpenAI Agents SDK session, in statekeeper.

    ``manager`` is any :class:`~statekeeper.state.StateManager` (embedded or remote; its
    owner closes it). ``ttl`` is the optional retention in seconds (see the module docstring);
    ``session_settings`` (or a dict of them) gives the default ``limit`` of ``get_items``."""

    session_settings: SessionSettings | None = None

    def __init__(
        self,
        session_id: str,
        manager: StateManager,
        *,
        ttl: float | None = None,
        session_settings: SessionSettings | dict[str, Any] | None = None,
        key_prefix: str = DEFAULT_KEY_PREFIX,
    ) -> None:
        self.session_id = session_id
        self.manager = manager
        self.ttl = ttl
        self.session_settings = coerce_session_settings(session_settings or SessionSettings())
        self._head = key_prefix + segment(session_id)
        # The head as this object last read or wrote it: add_items starts from it, so a turn
        # (get_items, add_items) reads the head once; the transaction's guard on its revision
        # finds out when another writer has changed it since.
        self._known: tuple[int, int, list[Any], int] | None = None

    def _slot(self, seq: int) -> str:
        return f"{self._head}/{seq:012d}"

    async def _read_head(self) -> tuple[int, int, list[Any], int]:
        """``(first, next, tail, revision)`` of the head (revision 0: no session yet)."""
        entry = await self.manager.get_entry(self._head)
        if entry is None:
            self._known = (0, 0, [], 0)
        else:
            head = entry.value
            self._known = (int(head["first"]), int(head["next"]), head["tail"], entry.mod_revision)
        first, next_seq, tail, revision = self._known
        return first, next_seq, list(tail), revision

    def _write_head(self, first: int, next_seq: int, tail: list[Any]) -> dict[str, Any]:
        return {self._head: {"first": first, "next": next_seq, "tail": tail}}

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The latest ``limit`` items (all when None; ``session_settings.limit`` when not
        given) in the order they were added."""
        limit = resolve_session_limit(limit, self.session_settings)
        if limit is not None and limit <= 0:
            return []
        while True:
            first, next_seq, tail, revision = await self._read_head()
            newest_first: list[list[Any]] = [tail]
            count = len(tail)
            expected = next_seq - 1
            torn = False
            if next_seq > first and (limit is None or count < limit):
                slots = self.manager.range(
                    start=self._slot(first),
                    end=self._slot(next_seq),
                    reverse=True,
                    page_size=RANGE_PAGE if limit is None else min(limit, RANGE_PAGE),
                )
                async for entry in slots:
                    if entry.key != self._slot(expected):
                        # A slot is gone: either the older ones expired (the head is
                        # unchanged), or a clear ran meanwhile (the head moved): read again.
                        torn = (await self._read_head())[3] != revision
                        break
                    newest_first.append(entry.value["items"])
                    count += len(entry.value["items"])
                    expected -= 1
                    if limit is not None and count >= limit:
                        break
                else:
                    if expected >= first:  # the oldest slots are gone
                        torn = (await self._read_head())[3] != revision
            if not torn:
                items = [item for slot in reversed(newest_first) for item in slot]
                return items if limit is None else items[-limit:]

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append ``items`` after every item already stored, in one transaction."""
        if not items:
            return
        added = list(items)
        while True:
            if self._known is None:
                first, next_seq, tail, revision = await self._read_head()
            else:
                first, next_seq, known_tail, revision = self._known
                tail = list(known_tail)
            tail += added
            put: dict[str, Any] = {}
            if len(msgpack.packb(tail)) > TAIL_BYTES:
                slots = _pack(tail)
                put = {self._slot(next_seq + i): {"items": slot} for i, slot in enumerate(slots)}
                next_seq += len(slots)
                tail = []
            put.update(self._write_head(first, next_seq, tail))
            try:
                written = await self.manager.transaction(
                    compare={self._head: revision}, put=put, ttl=self.ttl
                )
            except ConflictError:
                self._known = None  # outdated: read the head again
                continue
            self._known = (first, next_seq, tail, written)
            return

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the most recent item (None when the session is empty), by
        compare-and-set on the session's head."""
        while True:
            first, next_seq, tail, revision = await self._read_head()
            put: dict[str, Any] = {}
            delete: list[str] = []
            if tail:
                item = tail.pop()
                put = self._write_head(first, next_seq, tail)
            elif next_seq > first:
                slot_key = self._slot(next_seq - 1)
                entry: StateEntry | None = await self.manager.get_entry(slot_key)
                if entry is None:
                    if (await self._read_head())[3] == revision:
                        return None  # every slot expired
                    continue
                *rest, item = entry.value["items"]
                # The rest of the slot becomes the tail; the slot goes.
                delete.append(slot_key)
                put = self._write_head(first, next_seq - 1, rest)
            else:
                return None
            try:
                await self.manager.transaction(
                    compare={self._head: revision}, put=put, delete=delete, ttl=self.ttl
                )
            except ConflictError:
                continue
            self._known = None
            return item  # type: ignore[no-any-return]

    async def clear_session(self) -> None:
        """Remove every item: one guarded transaction empties the session, then the
        unreachable slots are deleted in batches."""
        while True:
            first, next_seq, tail, revision = await self._read_head()
            if revision == 0:
                return
            if first == next_seq and not tail:
                break
            try:
                await self.manager.transaction(
                    compare={self._head: revision},
                    put=self._write_head(next_seq, next_seq, []),
                    ttl=self.ttl,
                )
                self._known = None
                break
            except ConflictError:
                continue
        prefix = f"{self._head}/"
        await delete_matching(
            self.manager, prefix + "*", keep=lambda key: int(key[len(prefix) :]) >= next_seq
        )


def _pack(items: list[Any]) -> list[list[Any]]:
    """``items`` split, in order, into slots of at most :data:`SLOT_BYTES` encoded bytes
    (an item larger than that gets a slot of its own)."""
    slots: list[list[Any]] = [[]]
    size = 0
    for item in items:
        item_size = len(msgpack.packb(item))
        if slots[-1] and size + item_size > SLOT_BYTES:
            slots.append([])
            size = 0
        slots[-1].append(item)
        size += item_size
    return slots


__all__ = ["DEFAULT_KEY_PREFIX", "SLOT_BYTES", "TAIL_BYTES", "StatekeeperSession"]
