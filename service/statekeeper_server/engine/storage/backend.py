"""The Backend interface: the small, strict key-value contract every manager is built on.

Every backend (memory, file, Redis) implements this class and passes the one contract suite
(``tests/test_backend_contract.py``). The contract:

* **Revisions.** Every committed write gets a store-wide, strictly increasing revision. All the
  operations of one transaction share one revision. Entries carry ``create_revision``,
  ``mod_revision`` and ``version`` (1 after creation, +1 per write).
* **Compare-and-set.** :meth:`Backend.txn` checks every :class:`Compare` (``mod_revision`` 0
  means "must not exist") and then applies every operation, all or nothing; a failed compare
  raises :class:`~statekeeper.errors.ConflictError` whose metadata names the key, the expected
  and the actual revision, and nothing is written.
* **TTL.** An entry may carry an absolute expiry time (``expire_at``, Unix seconds). A read never
  returns an expired entry, a list never shows one, and the backend itself removes it in the
  background, emitting an ``EXPIRE`` event at a revision of its own.
* **List.** :meth:`Backend.range` returns entries under a literal prefix whose remainder matches
  a :class:`~statekeeper_server.engine.storage.glob.GlobPattern`, ordered by key (code point order),
  after an exclusive ``start_after`` key, at most ``limit`` of them. A page examines at most
  :data:`SCAN_BUDGET` keys, so a sparse pattern may return a short page with a cursor.
* **Scan.** :meth:`Backend.scan` reads the entries of a :class:`KeyRange` in key order or in
  reverse, one page after a cursor, optionally as they were at an earlier ``revision`` (rebuilt
  from the change history while it is retained, else
  :class:`~statekeeper.errors.HistoryCompactedError`).
* **Watch.** :meth:`Backend.watch` yields the changes under a prefix (optionally filtered by a
  pattern) from a start revision, in revision order, with no loss and no duplicates while the
  history is retained. The first update is the "created" marker; an idle watch yields progress
  updates; a start revision older than the retained history raises
  :class:`~statekeeper.errors.HistoryCompactedError` with the oldest watchable revision. Every
  backend serves it through one
  :class:`~statekeeper_server.engine.storage.watchers.WatcherIndex` (a commit does work only
  for the watches its keys match) and :meth:`Backend.history` (a replay reads the retained
  history in bounded pages).
* **Batch.** :meth:`Backend.batch` runs independent reads and transactions in order, each as
  if called alone (its own revision, its own conflict), in as few round trips as the backend
  allows; a failed item does not stop the others.
* **Namespaces** are literal key prefixes chosen by the managers (``kv/``, ``wf/``, ...); the
  backend treats keys as opaque strings.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from statekeeper.errors import (
    ConflictError,
    HistoryCompactedError,
    InvalidArgumentError,
    Reason,
    StateKeeperError,
)

from statekeeper_server.engine.storage.glob import GlobPattern


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored key with its value (canonical MessagePack bytes) and revision metadata."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    expire_at: float | None = None


class EventType(enum.Enum):
    """What happened to a key."""

    PUT = 1
    DELETE = 2
    EXPIRE = 3


@dataclass(frozen=True, slots=True)
class Event:
    """One change of one key at one revision."""

    type: EventType
    key: str
    revision: int
    entry: Entry | None
    prev: Entry | None


@dataclass(frozen=True, slots=True)
class Compare:
    """Require ``key``'s mod_revision to equal ``mod_revision`` (0: the key must not exist)."""

    key: str
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Put:
    """Write ``value`` under ``key``, expiring at ``expire_at`` (Unix seconds) when set."""

    key: str
    value: bytes
    expire_at: float | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove ``key`` (a missing key is not an error)."""

    key: str


Operation = Put | Delete


@dataclass(frozen=True, slots=True)
class TxnResult:
    """A committed transaction: its revision and, per operation, the new entry of a put or
    the removed entry of a delete (None when the key was missing)."""

    revision: int
    results: tuple[Entry | None, ...]


@dataclass(frozen=True, slots=True)
class Read:
    """A batch item: read ``key`` and the store revision, as :meth:`Backend.read`."""

    key: str


@dataclass(frozen=True, slots=True)
class Transaction:
    """A batch item: one transaction, as :meth:`Backend.txn`."""

    compares: tuple[Compare, ...]
    operations: tuple[Operation, ...]


BatchItem = Read | Transaction
#: The outcome of one batch item: a read's (entry, revision), a transaction's result, or the
#: error the item failed with alone (a conflict, an unavailable backend).
BatchOutcome = tuple[Entry | None, int] | TxnResult | StateKeeperError


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a range read; when ``more``, the next page starts after ``cursor`` (pass it
    as ``start_after``). A page may hold fewer entries than asked for, even none, when the
    backend stopped after examining :data:`SCAN_BUDGET` keys (a sparse pattern)."""

    entries: list[Entry]
    revision: int
    more: bool
    cursor: str = ""


@dataclass(frozen=True, slots=True)
class KeyRange:
    """Backend keys ``k`` with ``low <= k`` and, when ``high`` is set, ``k < high``, whose
    remainder after ``prefix`` (every such key starts with it) matches ``pattern``."""

    prefix: str
    low: str
    high: str | None
    pattern: GlobPattern | None = None

    def holds(self, key: str) -> bool:
        """Whether ``key`` lies in the range (the pattern aside)."""
        return self.low <= key and (self.high is None or key < self.high)

    def matches(self, key: str) -> bool:
        """Whether ``key`` lies in the range and its remainder after ``prefix`` matches."""
        if not self.holds(key):
            return False
        return self.pattern is None or self.pattern.matches(key[len(self.prefix) :])


@dataclass(frozen=True, slots=True)
class ScanPage:
    """One page of :meth:`Backend.scan`: the entries, the revision they are as of, and, when
    ``more``, the ``cursor`` key after which the next page continues (in the scan's direction;
    a page may hold fewer entries than asked for, even none, when the backend stopped early)."""

    entries: list[Entry]
    revision: int
    more: bool
    cursor: str


#: Keys one page of :meth:`Backend.range` or :meth:`Backend.scan` examines at most (or the page's
#: limit, when larger), matching or not, so that no call walks the whole key space at once.
SCAN_BUDGET = 4096

T = TypeVar("T")


def scan_page(
    span: KeyRange,
    candidates: Iterable[tuple[str, T]],
    entry_of: Callable[[str, T], Entry | None],
    at: int,
    limit: int,
    max_bytes: int | None,
) -> ScanPage:
    """One :meth:`Backend.scan` page of revision ``at`` from ``candidates``: (key, item) pairs in
    the scan's order, where a key may come twice in a row (merged sources). Each key is
    examined once, at most :data:`SCAN_BUDGET` (or ``limit``) of them; a key outside the span's
    pattern is skipped, and ``entry_of(key, item)`` is the entry the page holds for it (None:
    none). The page ends at ``limit`` entries or once they reach ``max_bytes``."""
    entries: list[Entry] = []
    size, budget, previous = 0, max(SCAN_BUDGET, limit), None
    for key, item in candidates:
        if key == previous:
            continue
        if budget == 0:
            return ScanPage(entries, at, True, previous or "")
        budget -= 1
        previous = key
        if span.pattern is not None and not span.pattern.matches(key[len(span.prefix) :]):
            continue
        entry = entry_of(key, item)
        if entry is None:
            continue
        if len(entries) == limit or (max_bytes is not None and size >= max_bytes):
            return ScanPage(entries, at, True, entries[-1].key)
        entries.append(entry)
        size += len(entry.value) + len(entry.key)
    return ScanPage(entries, at, False, "")


def prefix_end(prefix: str) -> str | None:
    """The least string after every string that starts with ``prefix`` (None: no such bound,
    ``prefix`` is empty or only U+10FFFF characters)."""
    while prefix and prefix[-1] == "\U0010ffff":
        prefix = prefix[:-1]
    if not prefix:
        return None
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def range_span(prefix: str, pattern: GlobPattern | None) -> KeyRange:
    """The keys :meth:`Backend.range` reads: under ``prefix`` plus the pattern's literal start."""
    low = prefix + (pattern.literal_prefix if pattern is not None else "")
    return KeyRange(prefix, low, prefix_end(low), pattern)


@dataclass(frozen=True, slots=True)
class WatchUpdate:
    """One step of a watch: events in revision order, or none (created marker or progress).

    ``revision`` is the store revision the watcher is current to after this update.
    """

    revision: int
    events: tuple[Event, ...] = ()


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of :meth:`Backend.history`: the matching events of the revisions it covered,
    in revision order, and ``last``, the newest revision it covered (the next page starts
    after it)."""

    events: tuple[Event, ...]
    last: int


@dataclass(frozen=True, slots=True)
class BackendStats:
    """Size and history figures of a store."""

    keys: int
    bytes: int
    revision: int
    oldest_revision: int
    backend: str


#: How many revisions of change history a store keeps for watchers by default.
DEFAULT_HISTORY_REVISIONS = 100_000
#: How many bytes of change history (the keys, values and previous values of its events) a
#: store keeps for watchers by default, whatever the revision count: large transactions of
#: large values otherwise make the history far larger than the data (0: no byte bound).
DEFAULT_HISTORY_BYTES = 64 * 1024 * 1024


def events_size(events: Sequence[Event]) -> int:
    """The bytes of change history ``events`` hold (keys, values and previous values)."""
    size = 0
    for event in events:
        size += len(event.key)
        if event.entry is not None:
            size += len(event.entry.value)
        if event.prev is not None:
            size += len(event.prev.value)
    return size


def compacted_error(oldest_revision: int, requested: int) -> HistoryCompactedError:
    """The error for a watch whose start revision is older than the retained history."""
    return HistoryCompactedError(
        f"revision {requested} is compacted; the oldest watchable revision is {oldest_revision}:"
        " read the current state again and watch from there",
        metadata={"compact_revision": str(oldest_revision)},
    )


def key_filter(prefix: str, pattern: GlobPattern | None, key: str) -> bool:
    """True when ``key`` lies under ``prefix`` and its remainder matches ``pattern``."""
    if not key.startswith(prefix):
        return False
    return pattern is None or pattern.matches(key[len(prefix) :])


def future_revision(revision: int, current: int) -> InvalidArgumentError:
    """The error for a read at a revision the store has not reached."""
    return InvalidArgumentError(
        f"revision {revision} is after the current revision {current}",
        reason=Reason.INVALID_REVISION,
        metadata={"revision": str(revision), "current_revision": str(current)},
        violations=[("revision", "after the current revision")],
    )


def conflict(key: str, expected: int, actual: int) -> ConflictError:
    """The error for a failed comparison, naming the key and both revisions."""
    if expected == 0:
        message = f"key {key!r} already exists (mod_revision {actual})"
    elif actual == 0:
        message = f"key {key!r} does not exist (expected mod_revision {expected})"
    else:
        message = f"key {key!r} has mod_revision {actual}, expected {expected}"
    return ConflictError(
        message,
        reason=Reason.REVISION_CONFLICT,
        metadata={"key": key, "expected_revision": str(expected), "actual_revision": str(actual)},
    )


class Backend(abc.ABC):
    """The storage contract described in this module's docstring."""

    #: The backend's name as shown in statistics ("memory", "file", "redis").
    name: str = "backend"
    #: True when the data lives only in this object (memory), so the managers that use it keep
    #: it across event loops instead of opening the store again.
    in_process: bool = False

    @property
    def closed(self) -> bool:
        """True once :meth:`close` (or :meth:`discard`) ran."""
        return bool(getattr(self, "_closed", False))

    @abc.abstractmethod
    async def get(self, key: str) -> Entry | None:
        """The live entry under ``key``, or None when it is missing or expired."""

    @abc.abstractmethod
    async def txn(self, compares: Sequence[Compare], operations: Sequence[Operation]) -> TxnResult:
        """Check every comparison, then apply every operation at one new revision.

        Operations name distinct keys. When no operation changes anything (only deletes of
        missing keys, or no operations) the revision does not advance.
        """

    async def range(
        self,
        prefix: str,
        pattern: GlobPattern | None = None,
        *,
        start_after: str = "",
        limit: int = 1000,
    ) -> Page:
        """Live entries whose key starts with ``prefix`` and whose remainder matches
        ``pattern``, in key order, strictly after ``start_after``, at most ``limit`` (one
        :meth:`scan` page, so fewer when it stopped at :data:`SCAN_BUDGET` keys examined)."""
        page = await self.scan(range_span(prefix, pattern), after=start_after or None, limit=limit)
        return Page(page.entries, page.revision, page.more, page.cursor)

    @abc.abstractmethod
    async def scan(
        self,
        span: KeyRange,
        *,
        after: str | None = None,
        reverse: bool = False,
        limit: int = 100,
        revision: int = 0,
        keys_only: bool = False,
        max_bytes: int | None = None,
    ) -> ScanPage:
        """Live entries of ``span`` in key order (descending when ``reverse``), strictly after
        the cursor ``after`` in that direction, at most ``limit``, and no more after the one
        that brings their values and keys to ``max_bytes``; with ``revision`` set below the
        current one, the entries as they were at that revision (a revision after the current
        one is INVALID_REVISION). With ``keys_only`` a backend may leave the entries' values empty
        (``b""``) rather than read them."""

    @abc.abstractmethod
    def watch(
        self,
        prefix: str,
        pattern: GlobPattern | None = None,
        *,
        start_revision: int = 0,
        progress_interval: float | None = None,
    ) -> AsyncIterator[WatchUpdate]:
        """Changes under ``prefix`` matching ``pattern`` from ``start_revision`` (0: after the
        current revision). The first update has no events and marks the watch as created;
        when ``progress_interval`` is set, an idle watch yields an empty update that often."""

    @abc.abstractmethod
    async def history(self, span: KeyRange, first: int, last: int, limit: int) -> HistoryPage:
        """The retained changes of the keys of ``span`` (pattern included) at revisions
        ``first`` to ``last`` (at most the current revision), examining at most ``limit``
        revisions and none after the one that brings the page to ``limit`` events (a page holds
        whole revisions): it covers ``first`` to its ``last``, and the next page starts after.
        A ``first`` older than the retained history raises
        :class:`~statekeeper.errors.HistoryCompactedError` with the oldest watchable revision.
        Watches replay through it one bounded page at a time (see
        :mod:`~statekeeper_server.engine.storage.watchers`)."""

    async def read(self, key: str) -> tuple[Entry | None, int]:
        """The live entry under ``key`` and the store revision the read saw (at least the
        entry's mod_revision); backends that can do both in one round trip override it."""
        entry = await self.get(key)
        return entry, await self.revision()

    async def batch(self, items: Sequence[BatchItem]) -> list[BatchOutcome]:
        """Run independent items in order, each exactly as :meth:`read` or :meth:`txn` alone
        would (a transaction commits at a revision of its own, its comparisons see the items
        before it); an item that fails yields its error in its place and the others go on.
        This default makes one call per item; backends that can serve the whole batch in one
        round trip (or one group commit) override it."""
        outcomes: list[BatchOutcome] = []
        for item in items:
            try:
                if isinstance(item, Read):
                    outcomes.append(await self.read(item.key))
                else:
                    outcomes.append(await self.txn(item.compares, item.operations))
            except StateKeeperError as error:
                outcomes.append(error)
        return outcomes

    @abc.abstractmethod
    async def revision(self) -> int:
        """The current store revision (0 for an empty new store)."""

    @abc.abstractmethod
    async def stats(self) -> BackendStats:
        """Key count, value bytes, current and oldest watchable revision."""

    async def close(self) -> None:
        """Release files, connections and background tasks."""

    def discard(self) -> None:
        """Release what can be released synchronously, when the event loop that used this
        backend is gone (embedded mode across loops) and :meth:`close` can no longer run."""

    def rebind(self) -> None:
        """Let go of the tasks, futures and connections of the event loop this backend was
        used from until now (embedded mode: that loop is gone), keeping the data; the next
        call binds to the running loop."""

    async def put(
        self,
        key: str,
        value: bytes,
        *,
        expected_revision: int | None = None,
        expire_at: float | None = None,
    ) -> Entry:
        """Write one key, optionally guarded by its expected mod_revision."""
        compares = () if expected_revision is None else (Compare(key, expected_revision),)
        result = await self.txn(compares, (Put(key, value, expire_at),))
        entry = result.results[0]
        assert entry is not None
        return entry

    async def delete(self, key: str, *, expected_revision: int | None = None) -> TxnResult:
        """Remove one key, optionally guarded by its expected mod_revision."""
        compares = () if expected_revision is None else (Compare(key, expected_revision),)
        return await self.txn(compares, (Delete(key),))
