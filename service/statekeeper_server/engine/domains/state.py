"""The core key-value manager (the reference's ``StateManager``), written once over a Backend.

User keys live in the ``kv/`` namespace of the backend (after the tenant prefix, see
:mod:`~statekeeper_server.engine.tenancy`), so no user key can read or overwrite a record of
another manager or tenant. Results carry user keys (the namespace is stripped).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from statekeeper import values
from statekeeper.errors import (
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    Reason,
    ResourceExhaustedError,
    StateKeeperError,
)

from statekeeper_server.engine import tokens
from statekeeper_server.engine.limits import (
    Limits,
    check_progress_interval,
    check_revision,
    check_ttl,
)
from statekeeper_server.engine.patches import merge_patch
from statekeeper_server.engine.records import MAX_ATTEMPTS, Txn, retry_on_conflict
from statekeeper_server.engine.storage.backend import (
    Backend,
    BatchItem,
    BatchOutcome,
    Compare,
    Delete,
    Entry,
    Event,
    KeyRange,
    Operation,
    Put,
    Read,
    Transaction,
    TxnResult,
    WatchUpdate,
    conflict,
    prefix_end,
)
from statekeeper_server.engine.storage.glob import GlobPattern, parse_pattern
from statekeeper_server.engine.tenancy import tenant_prefix

#: The backend namespace of StateManager's user keys.
NAMESPACE = "kv/"
#: Keys one transaction of DeleteRange / CopyRange writes at most.
RANGE_BATCH = 1000
#: Value bytes one transaction of CopyRange writes at most (past its first entry).
BATCH_BYTES = 16 * 1024 * 1024
#: Operations one Batch call holds at most.
MAX_BATCH_OPERATIONS = 1000

T = TypeVar("T")


@dataclass(slots=True)  # not frozen: made on every call, and a frozen init costs more
class Planned(Generic[T]):
    """One validated operation, ready for the backend: its batch item, the namespace of its
    keys, and how the item's outcome becomes the operation's result (with user keys)."""

    item: BatchItem
    namespace: str
    finish: Callable[[Any], T]

    def settle(self, outcome: BatchOutcome) -> T:
        """The operation's result, or its error (a conflict named by the caller's key)."""
        if isinstance(outcome, StateKeeperError):
            with caller_keys(self.namespace):
                raise outcome
        return self.finish(outcome)


@dataclass(frozen=True, slots=True)
class PutRequest:
    """A put of a transaction as the caller asks for it: its TTL (seconds; None or 0: never
    expires) is checked and made an expiry time by :meth:`StateEngine.plan_transact`."""

    key: str
    value: bytes
    ttl: float | None = None


@dataclass(frozen=True, slots=True)
class KeyPage:
    """One page of ListKeys."""

    keys: list[str]
    next_page_token: str
    revision: int


@dataclass(frozen=True, slots=True)
class RangePage:
    """One page of Range: entries with user keys, the next page's token, the revision read."""

    entries: list[Entry]
    next_page_token: str
    revision: int


def expire_at_for(ttl: float | None) -> float | None:
    """The absolute expiry time for a validated TTL (None: never)."""
    return None if ttl is None else time.time() + ttl


@contextlib.contextmanager
def caller_keys(namespace: str) -> Iterator[None]:
    """Report a revision conflict on a stored key as one on the caller's key.

    The backend names the key it stores (``tenants/<tenant>/kv/<key>``); this is the one place
    that maps it back to the caller's ``<key>``, so neither the message nor ``ErrorInfo``
    metadata of any StateService error shows a namespace or tenant prefix.
    """
    try:
        yield
    except ConflictError as error:
        stored = error.metadata.get("key", "")
        if not stored.startswith(namespace):
            raise
        raise conflict(
            stored[len(namespace) :],
            int(error.metadata["expected_revision"]),
            int(error.metadata["actual_revision"]),
        ) from None


class StateEngine:
    """Save, get, update, delete, list, transact and watch user keys."""

    def __init__(self, backend: Backend, limits: Limits | None = None) -> None:
        self.backend = backend
        self.limits = limits or Limits()

    @staticmethod
    def _namespace() -> str:
        """The backend prefix of the current tenant's user keys."""
        return tenant_prefix() + NAMESPACE

    @staticmethod
    def _user_entry(entry: Entry, cut: int) -> Entry:
        # The constructor, not dataclasses.replace: this runs on every call's result.
        return Entry(
            entry.key[cut:],
            entry.value,
            entry.create_revision,
            entry.mod_revision,
            entry.version,
            entry.expire_at,
        )

    @classmethod
    def _user_event(cls, event: Event, cut: int) -> Event:
        return dataclasses.replace(
            event,
            key=event.key[cut:],
            entry=cls._user_entry(event.entry, cut) if event.entry is not None else None,
            prev=cls._user_entry(event.prev, cut) if event.prev is not None else None,
        )

    def plan_save(
        self,
        key: str,
        value: bytes,
        *,
        expected_revision: int | None = None,
        ttl: float | None = None,
    ) -> Planned[Entry]:
        """Validate a save of ``key`` (guarded by ``expected_revision`` when given)."""
        self.limits.check_key(key)
        self.limits.check_value_size(value)
        check_revision(expected_revision)
        ttl = check_ttl(ttl)
        namespace = self._namespace()
        stored = namespace + key
        compares = () if expected_revision is None else (Compare(stored, expected_revision),)
        item = Transaction(compares, (Put(stored, value, expire_at_for(ttl)),))
        cut = len(namespace)

        def finish(result: TxnResult) -> Entry:
            entry = result.results[0]
            assert entry is not None
            return self._user_entry(entry, cut)

        return Planned(item, namespace, finish)

    async def save(
        self,
        key: str,
        value: bytes,
        *,
        expected_revision: int | None = None,
        ttl: float | None = None,
    ) -> Entry:
        """Create or replace ``key`` (guarded by ``expected_revision`` when given)."""
        return await self.run(
            self.plan_save(key, value, expected_revision=expected_revision, ttl=ttl)
        )

    def plan_get(self, key: str) -> Planned[tuple[Entry, int]]:
        """Validate a read of ``key``."""
        self.limits.check_key(key)
        namespace = self._namespace()
        cut = len(namespace)

        def finish(outcome: tuple[Entry | None, int]) -> tuple[Entry, int]:
            entry, revision = outcome
            if entry is None:
                raise NotFoundError(
                    f"key {key!r} not found", reason=Reason.KEY_NOT_FOUND, metadata={"key": key}
                )
            return self._user_entry(entry, cut), revision

        return Planned(Read(namespace + key), namespace, finish)

    async def get(self, key: str) -> tuple[Entry, int]:
        """The live entry under ``key`` and the store revision of the read; NOT_FOUND
        (KEY_NOT_FOUND) when missing or expired."""
        return await self.run(self.plan_get(key))

    def plan_delete(
        self, key: str, *, expected_revision: int | None = None
    ) -> Planned[tuple[bool, int]]:
        """Validate a delete of ``key`` (guarded by ``expected_revision`` when given)."""
        self.limits.check_key(key)
        check_revision(expected_revision)
        namespace = self._namespace()
        stored = namespace + key
        compares = () if expected_revision is None else (Compare(stored, expected_revision),)

        def finish(result: TxnResult) -> tuple[bool, int]:
            return result.results[0] is not None, result.revision

        return Planned(Transaction(compares, (Delete(stored),)), namespace, finish)

    async def delete(self, key: str, *, expected_revision: int | None = None) -> tuple[bool, int]:
        """Remove ``key``; returns whether it existed and the store revision after the call."""
        return await self.run(self.plan_delete(key, expected_revision=expected_revision))

    async def run(self, planned: Planned[T]) -> T:
        """Run one planned operation alone."""
        item = planned.item
        try:
            if isinstance(item, Read):
                outcome: BatchOutcome = await self.backend.read(item.key)
            else:
                outcome = await self.backend.txn(item.compares, item.operations)
        except StateKeeperError as error:
            outcome = error
        return planned.settle(outcome)

    async def batch(
        self, plans: Sequence[Planned[Any] | StateKeeperError]
    ) -> list[Any | StateKeeperError]:
        """Run independent planned operations (an error stands for one that failed its
        validation) as one backend batch, in order: per operation its result or its error.
        More than :data:`MAX_BATCH_OPERATIONS` is RESOURCE_EXHAUSTED (TOO_MANY_OPERATIONS, as
        for a transaction), and nothing runs."""
        if len(plans) > MAX_BATCH_OPERATIONS:
            raise ResourceExhaustedError(
                f"batch has {len(plans)} operations; the limit is {MAX_BATCH_OPERATIONS}",
                reason=Reason.TOO_MANY_OPERATIONS,
                metadata={"limit": str(MAX_BATCH_OPERATIONS)},
            )
        valid = [plan for plan in plans if isinstance(plan, Planned)]
        outcomes = iter(await self.backend.batch([plan.item for plan in valid]) if valid else ())
        results: list[Any | StateKeeperError] = []
        for plan in plans:
            if not isinstance(plan, Planned):
                results.append(plan)
                continue
            try:
                results.append(plan.settle(next(outcomes)))
            except StateKeeperError as error:
                results.append(error)
        return results

    async def update(
        self,
        key: str,
        patch: Any,
        *,
        expected_revision: int | None = None,
        ttl: float | None = None,
    ) -> Entry:
        """Merge ``patch`` into the stored document (RFC 7396), retrying on concurrent writes
        unless the caller pinned ``expected_revision``."""
        self.limits.check_key(key)
        check_revision(expected_revision)
        ttl = check_ttl(ttl)
        namespace = self._namespace()
        stored_key = namespace + key

        async def attempt() -> Entry:
            txn = Txn(self.backend)  # the commit is guarded by the revision read here
            entry = await txn.entry(stored_key)
            if entry is None:
                raise NotFoundError(
                    f"key {key!r} not found", reason=Reason.KEY_NOT_FOUND, metadata={"key": key}
                )
            if expected_revision is not None and entry.mod_revision != expected_revision:
                raise conflict(key, expected_revision, entry.mod_revision)
            merged = values.pack(merge_patch(values.unpack(entry.value), patch))
            self.limits.check_value_size(merged)
            expire_at = expire_at_for(ttl) if ttl is not None else entry.expire_at
            txn.put_raw(stored_key, merged, expire_at)
            result = await txn.commit()
            assert result is not None and result.results[0] is not None
            return result.results[0]

        # A caller that pinned the revision wants the conflict reported, not retried.
        with caller_keys(namespace):
            pinned = expected_revision is not None
            entry = await (attempt() if pinned else retry_on_conflict(attempt))
        return self._user_entry(entry, len(namespace))

    async def list_keys(self, pattern: str, page_size: int = 0, page_token: str = "") -> KeyPage:
        """One page of the keys matching ``pattern``, in key order."""
        glob = parse_pattern(pattern)
        size = self.limits.check_page_size(page_size)
        start_after = tokens.decode_scoped(
            page_token,
            glob.text,
            "page_token is not a token returned by ListKeys for this pattern",
            "not from this ListKeys pattern",
        )
        namespace = self._namespace()
        page = await self.backend.range(
            namespace, glob, start_after=namespace + start_after if start_after else "", limit=size
        )
        keys = [entry.key[len(namespace) :] for entry in page.entries]
        # A sparse pattern may end a page early, even with no keys: continue after the cursor.
        token = tokens.encode_scoped(glob.text, page.cursor[len(namespace) :]) if page.more else ""
        return KeyPage(keys, token, page.revision)

    async def count_keys(self) -> int:
        """The number of live keys of the current tenant (what ``list_keys("*")`` lists),
        counted page by page (keys only)."""
        namespace = self._namespace()
        span = KeyRange(namespace, namespace, prefix_end(namespace))
        count, after = 0, None
        while True:
            page = await self.backend.scan(span, after=after, limit=1000, keys_only=True)
            count += len(page.entries)
            if not page.more:
                return count
            after = page.cursor

    async def range(
        self,
        *,
        start_key: str = "",
        end_key: str = "",
        prefix: str = "",
        pattern: str = "",
        reverse: bool = False,
        keys_only: bool = False,
        page_size: int = 0,
        page_token: str = "",
        revision: int = 0,
        json_form: bool = False,
    ) -> RangePage:
        """One page of the entries in [start_key, end_key) under ``prefix`` matching
        ``pattern`` (each optional), now or at ``revision``. A page's values stop at the value
        size limit (half of it for the JSON form, which is larger), so a page fits a message."""
        glob = parse_pattern(pattern) if pattern else None
        span = self._span(start_key, end_key, prefix, glob)
        size = self.limits.check_page_size(page_size)
        check_revision(revision, "revision")
        namespace = self._namespace()
        scope = tokens.digest(start_key, end_key, prefix, pattern, reverse, keys_only, revision)
        cursor = tokens.decode_scoped(
            page_token,
            scope,
            "page_token is not a token returned by Range for this request",
            "not from this Range request",
        )
        max_bytes = None
        if not keys_only:
            max_bytes = self.limits.max_value_bytes // (2 if json_form else 1)
        page = await self.backend.scan(
            span,
            after=namespace + cursor if page_token else None,
            reverse=reverse,
            limit=size,
            revision=revision,
            keys_only=keys_only,
            max_bytes=max_bytes,
        )
        cut = len(namespace)
        token = tokens.encode_scoped(scope, page.cursor[cut:]) if page.more else ""
        entries = [self._user_entry(entry, cut) for entry in page.entries]
        return RangePage(entries, token, page.revision)

    def _span(
        self, start_key: str, end_key: str, prefix: str, glob: GlobPattern | None
    ) -> KeyRange:
        """The backend range of the current tenant's keys in [start_key, end_key) (each
        optional) that start with ``prefix`` and match ``glob``; validates the bounds."""
        for name, bound in (("start_key", start_key), ("end_key", end_key), ("prefix", prefix)):
            if bound:
                self.limits.check_key(bound, name)
        if start_key and end_key and end_key <= start_key:
            raise InvalidArgumentError(
                f"end_key {end_key!r} is not after start_key {start_key!r}",
                reason=Reason.INVALID_ARGUMENT,
                violations=[("end_key", "must be after start_key")],
            )
        namespace = self._namespace()
        highs = [namespace + end_key] if end_key else []
        under = prefix_end(namespace + prefix)
        if under is not None:
            highs.append(under)
        return KeyRange(
            namespace, namespace + max(start_key, prefix), min(highs, default=None), glob
        )

    def _guard(self, guard: Compare | None) -> list[Compare]:
        """The validated guard comparison of a range change, on the backend key."""
        if guard is None:
            return []
        self.limits.check_key(guard.key, "guard.key")
        check_revision(guard.mod_revision, "guard.expected_revision")
        return [Compare(self._namespace() + guard.key, guard.mod_revision)]

    async def _commit_batch(
        self, guard: Compare | None, compares: list[Compare], operations: list[Operation]
    ) -> int:
        """One transaction of a range change; a conflict is reported on the user's key."""
        with caller_keys(self._namespace()):
            result = await self.backend.txn(self._guard(guard) + compares, operations)
        return result.revision

    async def delete_range(
        self,
        *,
        start_key: str = "",
        end_key: str = "",
        prefix: str = "",
        guard: Compare | None = None,
    ) -> tuple[int, int]:
        """Remove every key of [start_key, end_key) under ``prefix`` (at least one given) in
        transactions of :data:`RANGE_BATCH` keys, each guarded by the mod_revision read of
        every key it removes (a key changed meanwhile is read again); returns the number
        removed and the revision after the call."""
        if not (start_key or end_key or prefix):
            raise InvalidArgumentError(
                "DeleteRange needs a prefix, a start_key or an end_key",
                reason=Reason.INVALID_ARGUMENT,
                violations=[("prefix", "give a prefix or a key range")],
            )
        span = self._span(start_key, end_key, prefix, None)
        self._guard(guard)
        deleted, revision, conflicts = 0, 0, 0
        while True:
            page = await self.backend.scan(span, limit=RANGE_BATCH, keys_only=True)
            if not page.entries:
                return deleted, max(revision, page.revision)
            try:
                revision = await self._commit_batch(
                    guard,
                    [Compare(entry.key, entry.mod_revision) for entry in page.entries],
                    [Delete(entry.key) for entry in page.entries],
                )
            except ConflictError as error:
                conflicts += 1
                guard_failed = guard is not None and error.metadata.get("key") == guard.key
                if guard_failed or conflicts >= MAX_ATTEMPTS:
                    raise
                continue  # a key of the batch changed since it was read: read again
            deleted += len(page.entries)
            conflicts = 0

    async def copy_range(
        self, source_prefix: str, target_prefix: str, *, guard: Compare | None = None
    ) -> tuple[int, int, int]:
        """Write every live entry under ``source_prefix``, as of one snapshot revision, under
        ``target_prefix`` (same value and expiry), in transactions of :data:`RANGE_BATCH`
        entries; returns the number copied, the revision after the call and the snapshot's."""
        self.limits.check_key(source_prefix, "source_prefix")
        self.limits.check_key(target_prefix, "target_prefix")
        if source_prefix == target_prefix:
            raise InvalidArgumentError(
                "target_prefix must differ from source_prefix",
                reason=Reason.INVALID_ARGUMENT,
                violations=[("target_prefix", "same as source_prefix")],
            )
        self._guard(guard)
        span = self._span("", "", source_prefix, None)
        cut = len(span.low)
        target = self._namespace() + target_prefix
        snapshot = 0
        # First the snapshot's keys, so that every target key is checked before any write.
        after: str | None = None
        while True:
            page = await self.backend.scan(
                span, after=after, limit=RANGE_BATCH, keys_only=True, revision=snapshot
            )
            snapshot = page.revision
            for entry in page.entries:
                self.limits.check_key(target_prefix + entry.key[cut:], "target_prefix")
            if not page.more:
                break
            after = page.cursor
        copied, revision, after = 0, snapshot, None
        while True:
            page = await self.backend.scan(
                span, after=after, limit=RANGE_BATCH, revision=snapshot, max_bytes=BATCH_BYTES
            )
            now = time.time()
            puts: list[Operation] = [
                Put(target + entry.key[cut:], entry.value, entry.expire_at)
                for entry in page.entries
                if entry.expire_at is None or entry.expire_at > now
            ]
            if puts:
                revision = await self._commit_batch(guard, [], puts)
                copied += len(puts)
            if not page.more:
                return copied, revision, snapshot
            after = page.cursor

    def plan_transact(
        self, compares: Sequence[Compare], operations: Sequence[PutRequest | Delete]
    ) -> Planned[int]:
        """Validate a transaction: ``operations`` applied atomically if every comparison holds."""
        self.limits.check_operation_count(len(compares) + len(operations))
        seen: set[str] = set()
        for index, compare in enumerate(compares):
            self.limits.check_key(compare.key, f"comparisons[{index}].key")
            check_revision(compare.mod_revision, f"comparisons[{index}].expected_revision")
        stored_operations: list[Operation] = []
        namespace = self._namespace()
        for index, operation in enumerate(operations):
            self.limits.check_key(operation.key, f"operations[{index}].key")
            if isinstance(operation, PutRequest):
                self.limits.check_value_size(operation.value, f"operations[{index}].value")
                ttl = check_ttl(operation.ttl, f"operations[{index}].put.ttl")
                stored_operations.append(
                    Put(namespace + operation.key, operation.value, expire_at_for(ttl))
                )
            else:
                stored_operations.append(Delete(namespace + operation.key))
            if operation.key in seen:
                raise InvalidArgumentError(
                    f"key {operation.key!r} appears in more than one operation",
                    reason=Reason.INVALID_TRANSACTION,
                    violations=[(f"operations[{index}].key", "duplicate key")],
                )
            seen.add(operation.key)
        item = Transaction(
            tuple(Compare(namespace + c.key, c.mod_revision) for c in compares),
            tuple(stored_operations),
        )
        return Planned(item, namespace, lambda result: int(result.revision))

    async def transact(
        self, compares: Sequence[Compare], operations: Sequence[PutRequest | Delete]
    ) -> int:
        """Apply ``operations`` atomically if every comparison holds; returns the revision."""
        return await self.run(self.plan_transact(compares, operations))

    async def watch(
        self, pattern: str, start_revision: int = 0, progress_interval: float | None = None
    ) -> AsyncIterator[WatchUpdate]:
        """Changes of the keys matching ``pattern``, with user keys (an idle stream reports
        progress every ``progress_interval`` seconds, by default
        :data:`~statekeeper_server.engine.limits.DEFAULT_PROGRESS_INTERVAL`)."""
        glob = parse_pattern(pattern)
        check_revision(start_revision, "start_revision")
        progress_interval = check_progress_interval(progress_interval)
        namespace = self._namespace()
        async for update in self.backend.watch(
            namespace,
            glob,
            start_revision=start_revision,
            progress_interval=progress_interval,
        ):
            yield WatchUpdate(
                update.revision, tuple(self._user_event(e, len(namespace)) for e in update.events)
            )
