"""Typed records and the one read-modify-write mechanism every manager uses.

**Records.** A manager's stored models are dataclasses. A :class:`Schema` turns one into the
bytes a backend stores and back, from the dataclass's type hints alone (nested dataclasses,
lists, dicts, enums, optionals), so no manager maps fields by hand. The stored form is a
MessagePack map of the field names plus ``"_v"``, the record format version; a stored map
without ``"_v"`` is version 0, the format written before typed records. ``Schema.upgrades``
lifts an old version to the next one (renamed fields, changed status spellings), so existing
data directories and Redis databases keep opening. Unknown stored keys are dropped and missing
ones take the dataclass's defaults, so adding a field with a default needs no upgrade.

**Read-modify-write.** :func:`transact` runs a body against a :class:`Txn`, in the spirit of
etcd's STM: every record the body reads through the transaction is remembered with its
revision (0 when absent), the body's writes are buffered, and the commit is one backend
transaction guarded by the revisions of *everything that was read*. When another writer changed
any of it first, the backend raises ConflictError and the body runs again on fresh data. The
guard follows from the reads, so no manager picks its guard keys by hand.

**Pages.** :func:`scan` is the one loop over the pages of a prefix; :func:`delete_prefix`
removes everything under one in bounded transactions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import functools
import operator
import random
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from statekeeper import values
from statekeeper.errors import ConflictError, Reason
from statekeeper.fields import fields_of, without_none

from statekeeper_server.engine.limits import Limits
from statekeeper_server.engine.storage.backend import (
    Backend,
    Compare,
    Delete,
    Entry,
    Operation,
    Put,
    TxnResult,
)
from statekeeper_server.engine.storage.glob import GlobPattern
from statekeeper_server.engine.tokens import decode_scoped, encode_scoped

R = TypeVar("R")
T = TypeVar("T")

#: The key of the record format version in a stored record.
VERSION_KEY = "_v"
#: How many times a read-modify-write is attempted before the conflict is reported.
MAX_ATTEMPTS = 200
#: The entries one page of :func:`scan` reads by default.
SCAN_PAGE = 1000

# -- the generic codec ------------------------------------------------------------------------

Converter = Callable[[Any], Any]


def _when_set(convert: Converter) -> Converter:
    """``convert`` for a field that admits None: None stays None."""
    return lambda value: None if value is None else convert(value)


def _enum_decoder(cls: type[enum.Enum]) -> Converter:
    """A stored enum value to its member by one dict lookup (an unknown value raises as the
    enum itself does)."""
    members = {member.value: member for member in cls}

    def decode(value: Any) -> Any:
        member = members.get(value)
        return member if member is not None else cls(value)

    return decode


def _converter(hint: Any, encoding: bool) -> Converter | None:
    """How a value of ``hint`` becomes its MessagePack-ready form (``encoding``) or comes back
    from it; None when it needs no converting (MessagePack gives lists and dicts, so those are
    not copied)."""
    inner, optional = without_none(hint)
    origin, arguments = typing.get_origin(inner), typing.get_args(inner)
    convert: Converter | None = None
    if isinstance(inner, type) and dataclasses.is_dataclass(inner):
        codec = _codec(inner)
        convert = codec.encode if encoding else codec.decode
    elif isinstance(inner, type) and issubclass(inner, enum.Enum):
        convert = operator.attrgetter("value") if encoding else _enum_decoder(inner)
    elif origin in (list, tuple, Sequence):
        item = _converter(arguments[0], encoding)
        if origin is tuple and not encoding:
            convert = tuple if item is None else functools.partial(_each_in_tuple, item)
        elif item is not None:
            convert = functools.partial(_each, item)
    elif origin in (dict, Mapping):
        item = _converter(arguments[1], encoding)
        if item is not None:
            convert = functools.partial(_each_value, item)
    return _when_set(convert) if convert is not None and optional else convert


def _each(convert: Converter, items: Any) -> list[Any]:
    return [convert(item) for item in items]


def _each_in_tuple(convert: Converter, items: Any) -> tuple[Any, ...]:
    return tuple(convert(item) for item in items)


def _each_value(convert: Converter, items: Any) -> dict[Any, Any]:
    return {key: convert(item) for key, item in items.items()}


class _Codec:
    """The plain form of one dataclass, planned once from its fields: which names it has and
    which few of them need converting (enums, nested records, lists and maps of those); every
    other field, and None, is taken as it is."""

    def __init__(self, cls: type) -> None:
        fields = fields_of(cls)
        self.cls = cls
        self.names = tuple(field.name for field in fields)
        self.known = frozenset(self.names)
        self.values: Callable[[Any], tuple[Any, ...]] = (
            operator.attrgetter(*self.names)
            if len(self.names) > 1
            else lambda record: tuple(getattr(record, name) for name in self.names)
        )
        self.encoders = tuple(
            (field.name, convert) for field in fields if (convert := _converter(field.hint, True))
        )
        self.decoders = tuple(
            (field.name, convert) for field in fields if (convert := _converter(field.hint, False))
        )

    def encode(self, record: Any) -> dict[str, Any]:
        """The plain form of ``record``."""
        data = dict(zip(self.names, self.values(record), strict=True))
        for name, convert in self.encoders:
            value = data[name]
            if value is not None:
                data[name] = convert(value)
        return data

    def decode(self, data: dict[str, Any]) -> Any:
        """The record of a plain form, which it takes over: unknown keys dropped, missing ones
        defaulted."""
        if not data.keys() <= self.known:
            data = {name: value for name, value in data.items() if name in self.known}
        for name, convert in self.decoders:
            value = data.get(name)
            if value is not None:
                data[name] = convert(value)
        return self.cls(**data)


@functools.cache
def _codec(cls: type) -> _Codec:
    return _Codec(cls)


def renamed(names: Mapping[str, str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """An upgrade that renames stored keys (``names``: old name -> new name)."""

    def upgrade(data: dict[str, Any]) -> dict[str, Any]:
        return {names.get(key, key): value for key, value in data.items()}

    return upgrade


class Schema(Generic[R]):
    """How one record type is stored: its dataclass, format version and upgrades."""

    def __init__(
        self,
        cls: type[R],
        *,
        version: int = 1,
        upgrades: Mapping[int, Callable[[dict[str, Any]], dict[str, Any]]] | None = None,
        field: str = "record",
    ) -> None:
        self.cls = cls
        self.version = version
        self.upgrades = dict(upgrades or {})
        #: The name that value-size errors give the record.
        self.field = field
        self._codec: _Codec | None = None

    def pack(self, record: R, limits: Limits | None = None) -> bytes:
        """The stored bytes of ``record`` (with the format version), size-checked by ``limits``."""
        data = self._plan().encode(record)
        data[VERSION_KEY] = self.version
        packed = values.pack(data)
        return limits.check_value_size(packed, self.field) if limits is not None else packed

    def unpack(self, data: bytes) -> R:
        """The record stored as ``data``, lifted from older format versions."""
        return self.load(values.unpack(data))

    def load(self, data: dict[str, Any]) -> R:
        """The record of a stored map (which it takes over), lifted from older format versions."""
        version = data.pop(VERSION_KEY, 0)
        while version < self.version:
            upgrade = self.upgrades.get(version)
            if upgrade is not None:
                data = upgrade(data)
            version += 1
        return typing.cast(R, self._plan().decode(data))

    def _plan(self) -> _Codec:
        """The codec of the record type, planned on first use (every hint is defined by then)."""
        if self._codec is None:
            self._codec = _codec(typing.cast(type, self.cls))
        return self._codec


# -- read-modify-write ------------------------------------------------------------------------


class Txn:
    """One attempt of a read-modify-write: reads are remembered with their revisions, writes
    buffered until :func:`transact` commits them guarded by those revisions."""

    def __init__(self, backend: Backend, limits: Limits | None = None) -> None:
        self.backend = backend
        self.limits = limits
        self._read: dict[str, int] = {}
        self._writes: dict[str, Operation] = {}

    async def entry(self, key: str) -> Entry | None:
        """The stored entry of ``key`` (None when absent), guarding the commit on it."""
        entry = await self.backend.get(key)
        self.guard(key, entry.mod_revision if entry is not None else 0)
        return entry

    async def get(self, key: str, schema: Schema[R]) -> R | None:
        """The record under ``key`` (None when absent), guarding the commit on it."""
        entry = await self.entry(key)
        return schema.unpack(entry.value) if entry is not None else None

    async def range(
        self,
        prefix: str,
        schema: Schema[R],
        *,
        start_after: str = "",
        limit: int = SCAN_PAGE,
        guard: bool = False,
    ) -> list[tuple[Entry, R]]:
        """One page of records under ``prefix``; with ``guard`` each one read guards the commit
        (a record added to the range meanwhile is not detected: guard a head record for that)."""
        page = await self.backend.range(prefix, start_after=start_after, limit=limit)
        if guard:
            for entry in page.entries:
                self.guard(entry.key, entry.mod_revision)
        return [(entry, schema.unpack(entry.value)) for entry in page.entries]

    def guard(self, key: str, revision: int) -> None:
        """Commit only if ``key`` is still at ``revision`` (0: still absent). The first revision
        seen for a key is the one guarded."""
        self._read.setdefault(key, revision)

    def put(self, key: str, record: R, schema: Schema[R], expire_at: float | None = None) -> None:
        """Write ``record`` under ``key`` at commit."""
        self._writes[key] = Put(key, schema.pack(record, self.limits), expire_at)

    def put_raw(self, key: str, value: bytes, expire_at: float | None = None) -> None:
        """Write already encoded ``value`` under ``key`` at commit."""
        self._writes[key] = Put(key, value, expire_at)

    def delete(self, key: str) -> None:
        """Remove ``key`` at commit (a missing key is not an error)."""
        self._writes[key] = Delete(key)

    @property
    def writes(self) -> tuple[Operation, ...]:
        """The buffered writes, in the order they were first made."""
        return tuple(self._writes.values())

    async def commit(self) -> TxnResult | None:
        """Commit the writes guarded by every read; None when nothing was written."""
        if not self._writes:
            return None
        compares = [Compare(key, revision) for key, revision in self._read.items()]
        return await self.backend.txn(compares, self.writes)


async def transact(
    backend: Backend,
    body: Callable[[Txn], Awaitable[T]],
    *,
    limits: Limits | None = None,
    attempts: int = MAX_ATTEMPTS,
) -> T:
    """Run ``body`` in a :class:`Txn` and commit it, again on fresh data after a conflict.

    ``body`` may raise to abort (nothing is written). Its result is returned once its writes
    are committed; a body that must see the commit's revision reads ``txn.result`` through
    :func:`transact_with_result`.
    """
    result, _ = await transact_with_result(backend, body, limits=limits, attempts=attempts)
    return result


async def transact_with_result(
    backend: Backend,
    body: Callable[[Txn], Awaitable[T]],
    *,
    limits: Limits | None = None,
    attempts: int = MAX_ATTEMPTS,
) -> tuple[T, TxnResult | None]:
    """:func:`transact`, also returning the committed transaction (None when nothing was
    written)."""

    async def attempt() -> tuple[T, TxnResult | None]:
        txn = Txn(backend, limits)
        value = await body(txn)
        return value, await txn.commit()

    return await retry_on_conflict(attempt, attempts)


async def retry_on_conflict(attempt: Callable[[], Awaitable[T]], attempts: int = MAX_ATTEMPTS) -> T:
    """Run ``attempt`` until it completes without a ConflictError, backing off with jitter.

    After ``attempts`` conflicts a ConflictError (ABORTED, REVISION_CONFLICT) saying so
    propagates, so a caller under extreme contention gets a clear error instead of an endless
    loop; it names no storage key (those are internal), only the number of attempts.
    """
    for number in range(attempts):
        try:
            return await attempt()
        except ConflictError as error:
            if number == attempts - 1:
                raise ConflictError(
                    f"gave up after {attempts} attempts: concurrent writes kept changing the "
                    "records this call reads; retry it",
                    reason=Reason.REVISION_CONFLICT,
                    metadata={"attempts": str(attempts)},
                ) from error
            # Back off so that contending writers spread out instead of colliding again.
            await asyncio.sleep(random.uniform(0, 0.0005 * (2 ** min(number, 6))))
    raise AssertionError("unreachable")


# -- pages ------------------------------------------------------------------------------------


async def scan(
    backend: Backend,
    prefix: str,
    pattern: GlobPattern | None = None,
    *,
    start_after: str = "",
    page: int = SCAN_PAGE,
) -> AsyncIterator[Entry]:
    """Every live entry under ``prefix`` (matching ``pattern``) after ``start_after``, in key
    order, read one page of ``page`` entries at a time."""
    after = start_after
    while True:
        result = await backend.range(prefix, pattern, start_after=after, limit=page)
        for entry in result.entries:
            yield entry
        if not result.more or not result.entries:
            return
        after = result.entries[-1].key


async def scoped_page(
    backend: Backend, prefix: str, scope: str, page_token: str, size: int, message: str
) -> tuple[list[Entry], str]:
    """One page of ``size`` entries under ``prefix`` after the key a page token of ``scope``
    names, and the token of the next page ("" on the last); a token of another scope is
    INVALID_PAGE_TOKEN with ``message``."""
    after = decode_scoped(page_token, scope, message, "malformed or issued for another list")
    page = await backend.range(prefix, start_after=prefix + after if after else "", limit=size)
    token = ""
    if page.more and page.entries:
        token = encode_scoped(scope, page.entries[-1].key[len(prefix) :])
    return page.entries, token


def batch_size(max_transaction_operations: int) -> int:
    """How many keys one removal transaction lists and deletes: one operation of the limit is
    left for the guard on the head key (and never fewer than two keys)."""
    return max(max_transaction_operations - 1, 2)


def count_removed(
    base: str, keys: Sequence[str], result: TxnResult, counted: Callable[[str], bool]
) -> int:
    """How many of the deleted ``keys`` (under ``base``) existed and are ``counted`` records
    (``counted`` gets the key's name after ``base``)."""
    return sum(
        1
        for key, removed in zip(keys, result.results, strict=True)
        if removed is not None and counted(key[len(base) :])
    )


async def delete_all(
    backend: Backend, base: str, head: str, head_revision: int, keys: Sequence[str]
) -> TxnResult:
    """Delete ``keys`` (all under ``base``, the head included when it exists) in one
    transaction guarded by the head's revision (0: the head must not exist)."""
    return await backend.txn([Compare(base + head, head_revision)], [Delete(k) for k in keys])


async def delete_batch(backend: Backend, keys: Sequence[str]) -> TxnResult:
    """Delete ``keys`` in one unguarded transaction (deleting is idempotent)."""
    return await backend.txn([], [Delete(k) for k in keys])


async def delete_prefix(backend: Backend, prefix: str, batch: int = 100) -> int:
    """Remove every key under ``prefix`` in transactions of ``batch`` deletes; the number of
    keys removed. Interrupted, it leaves a smaller remainder that a later call removes."""
    removed = 0
    while True:
        page = await backend.range(prefix, limit=batch)
        if not page.entries:
            return removed
        result = await delete_batch(backend, [e.key for e in page.entries])
        removed += sum(1 for r in result.results if r is not None)
