"""``StatekeeperStore``: LangGraph's long-term memory store (``BaseStore``) kept in statekeeper.

Swap it in where ``InMemoryStore``, ``PostgresStore`` or ``RedisStore`` was::

    store = StatekeeperStore(StateManager(StateConfig(backend="grpc", address="localhost:50051")))
    graph = builder.compile(checkpointer=saver, store=store)

An item ``(namespace, key)`` is one document at ``<prefix><label>/<label>/.../=<key>`` (each
label and the key percent-encoded, so no label contains ``/`` or ``=``):
``{"value": {...}, "created_at": ISO time, "updated_at": ISO time, "ttl": minutes or None}``.
A namespace's items and those of every namespace under it share a key prefix, so ``search``
is one range read. ``put`` keeps ``created_at`` by compare-and-set on the item's revision.

TTL (``supports_ttl``): an item with a ``ttl`` (minutes, LangGraph's unit; ``ttl=`` of the
store is LangGraph's ``TTLConfig`` with ``default_ttl`` and ``refresh_on_read``) expires that
long after it was last written, or read with ``refresh_ttl`` (then it is written again with
the same value, unless it changed meanwhile). ``search`` matches ``filter`` on the stored
values (LangGraph's operators ``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``, nested
maps and lists as in ``InMemoryStore``); a natural-language ``query`` needs a vector index,
which this store does not have: it is ignored and the results are in key order.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
)

from statekeeper.errors import ConflictError
from statekeeper.integrations.langgraph.bridge import LoopBridge
from statekeeper.integrations.storage import segment
from statekeeper.state import StateEntry, StateManager

#: The key prefix of the store's items when none is given.
DEFAULT_STORE_PREFIX = "langgraph-store/"
_KEY_MARK = "="
_OPERATORS = {
    "$eq": lambda a, b: a == b,
    "$ne": lambda a, b: a != b,
    "$gt": lambda a, b: float(a) > float(b),
    "$gte": lambda a, b: float(a) >= float(b),
    "$lt": lambda a, b: float(a) < float(b),
    "$lte": lambda a, b: float(a) <= float(b),
}


def matches(value: Any, wanted: Any) -> bool:
    """Whether a stored value satisfies one filter value (an operator map, a nested map or
    list compared member by member, or an exact value)."""
    if isinstance(wanted, dict):
        if any(str(name).startswith("$") for name in wanted):
            # A missing value is only equal or unequal, never greater or less.
            return all(
                (value is not None or op in ("$eq", "$ne")) and _OPERATORS[op](value, arg)
                for op, arg in wanted.items()
            )
        return isinstance(value, dict) and all(
            matches(value.get(name), item) for name, item in wanted.items()
        )
    if isinstance(wanted, (list, tuple)):
        return (
            isinstance(value, (list, tuple))
            and len(value) == len(wanted)
            and all(matches(v, w) for v, w in zip(value, wanted, strict=True))
        )
    return bool(value == wanted)


def _condition_holds(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    part = namespace[: len(path)] if condition.match_type == "prefix" else namespace[-len(path) :]
    return all(want == "*" or have == want for have, want in zip(part, path, strict=True))


class StatekeeperStore(BaseStore):
    """LangGraph store items kept in statekeeper through ``manager`` (its owner closes it);
    ``key_prefix`` starts every key and ``ttl`` is LangGraph's ``TTLConfig``."""

    supports_ttl = True

    def __init__(
        self,
        manager: StateManager,
        *,
        key_prefix: str = DEFAULT_STORE_PREFIX,
        ttl: TTLConfig | None = None,
    ) -> None:
        self.manager = manager
        self.prefix = key_prefix
        self.ttl_config = ttl
        self._bridge = LoopBridge()

    def _namespace_prefix(self, namespace: Iterable[str]) -> str:
        return self.prefix + "".join(segment(label) + "/" for label in namespace)

    def _key(self, namespace: tuple[str, ...], key: str) -> str:
        return self._namespace_prefix(namespace) + _KEY_MARK + segment(key)

    def _split(self, stored_key: str) -> tuple[tuple[str, ...], str]:
        *labels, last = stored_key[len(self.prefix) :].split("/")
        return tuple(unquote(label) for label in labels), unquote(last[len(_KEY_MARK) :])

    async def _refresh(self, entry: StateEntry) -> None:
        """Write an item again with its TTL (a read with ``refresh_ttl``), unless it changed."""
        minutes = entry.value.get("ttl")
        if minutes:
            try:
                await self.manager.save(
                    entry.key, entry.value, ttl=minutes * 60, expected_revision=entry.mod_revision
                )
            except ConflictError:
                pass  # written meanwhile, with a TTL of its own

    def _item(self, entry: StateEntry, kind: type[Item] = Item) -> Any:
        namespace, key = self._split(entry.key)
        doc = entry.value
        return kind(
            namespace=namespace,
            key=key,
            value=doc["value"],
            created_at=datetime.fromisoformat(doc["created_at"]),
            updated_at=datetime.fromisoformat(doc["updated_at"]),
        )

    async def _get(self, op: GetOp) -> Item | None:
        entry = await self.manager.get_entry(self._key(op.namespace, op.key))
        if entry is None:
            return None
        if op.refresh_ttl:
            await self._refresh(entry)
        return self._item(entry)  # type: ignore[no-any-return]

    async def _put(self, op: PutOp) -> None:
        key = self._key(op.namespace, op.key)
        if op.value is None:
            await self.manager.delete(key)
            return
        while True:
            entry = await self.manager.get_entry(key)
            now = datetime.now(UTC).isoformat()
            doc = {
                "value": dict(op.value),
                "created_at": now if entry is None else entry.value["created_at"],
                "updated_at": now,
                "ttl": op.ttl,
            }
            revision = 0 if entry is None else entry.mod_revision
            try:
                await self.manager.save(
                    key,
                    doc,
                    ttl=None if op.ttl is None else op.ttl * 60,
                    expected_revision=revision,
                )
                return
            except ConflictError:
                continue  # another writer: keep its created_at and write over it

    async def _search(self, op: SearchOp) -> list[SearchItem]:
        found: list[SearchItem] = []
        skip = op.offset
        entries = self.manager.range(
            self._namespace_prefix(op.namespace_prefix),
            limit=None if op.filter else op.offset + op.limit,
            page_size=min(max(op.offset + op.limit, 1), 1000),
        )
        async for entry in entries:
            value = entry.value["value"]
            if op.filter and not all(matches(value.get(k), w) for k, w in op.filter.items()):
                continue
            if skip:
                skip -= 1
                continue
            if op.refresh_ttl:
                await self._refresh(entry)
            found.append(self._item(entry, SearchItem))
            if len(found) >= op.limit:
                break
        return found

    async def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        namespaces = set()
        async for entry in self.manager.range(self.prefix, keys_only=True, page_size=1000):
            namespace, _ = self._split(entry.key)
            if all(_condition_holds(c, namespace) for c in op.match_conditions or ()):
                namespaces.add(namespace if op.max_depth is None else namespace[: op.max_depth])
        return sorted(namespaces)[op.offset : op.offset + op.limit]

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ``ops`` in order and return their results (LangGraph's store protocol)."""
        self._bridge.remember()
        results: list[Result] = []
        for op in ops:
            if isinstance(op, GetOp):
                results.append(await self._get(op))
            elif isinstance(op, PutOp):
                await self._put(op)
                results.append(None)
            elif isinstance(op, SearchOp):
                results.append(await self._search(op))
            elif isinstance(op, ListNamespacesOp):
                results.append(await self._list_namespaces(op))
            else:
                raise TypeError(f"unknown store operation {op!r}")
        return results

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Synchronous :meth:`abatch` (see :mod:`~statekeeper.integrations.langgraph.bridge`)."""
        return self._bridge.run(self.abatch(list(ops)))

    def close(self) -> None:
        """Stop the private loop of the synchronous methods (the manager stays open)."""
        self._bridge.close()


__all__ = ["DEFAULT_STORE_PREFIX", "StatekeeperStore", "matches"]
