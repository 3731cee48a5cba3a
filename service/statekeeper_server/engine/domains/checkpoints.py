"""What the agent and workflow managers share: ids, steps, ordered checkpoint keys, retention,
and storing and finding checkpoints.

Checkpoints are ordered by (step, sequence), where the sequence is a per-agent or per-workflow
counter kept in the owner's record and bumped in the same transaction as every save, so it
survives restarts and never repeats. The order is encoded in the key itself with both numbers
*inverted* and zero-padded (``<INV - step>/<INV - sequence>``): ascending key order is then
newest-first order, so "latest" is the first key of a range read, listing newest first is a
plain paginated range, and no id is ever sorted as text.

Under an owner's directory ``<base>``::

    <base>ckpt/<order>          the checkpoint record
    <base>cid/<checkpoint_id>   pointer from its id to its order key

An owner that tells recoverable checkpoints apart (agents) keeps the order key of its newest
recoverable one in its own record, updated by the same transactions that store and prune
checkpoints, so that checkpoint is found with one read however many newer ones are not
recoverable.

Every function that writes takes the :class:`~statekeeper_server.engine.records.Txn` of the
caller's read-modify-write: what it reads (the id pointer, the entries it prunes) guards the
commit, together with the owner record the caller read.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from statekeeper.errors import InvalidArgumentError, NotFoundError, Reason

from statekeeper_server.engine.limits import Limits
from statekeeper_server.engine.records import (
    Schema,
    Txn,
    batch_size,
    count_removed,
    delete_batch,
    scan,
    transact_with_result,
)
from statekeeper_server.engine.storage.backend import Backend, Entry
from statekeeper_server.engine.tokens import decode_text, encode_text, invalid_token

#: The largest accepted step number (int64).
MAX_STEP = 2**63 - 1
#: Numbers in ordered keys are subtracted from this so that key order is newest first.
_INVERT = 10**20 - 1
_ORDER = re.compile(r"^\d{20}/\d{20}$")
#: How many surplus entries one save reads to prune (more are pruned by later saves).
PRUNE_SLACK = 32


class Checkpoint(Protocol):
    """What every checkpoint record has."""

    @property
    def checkpoint_id(self) -> str:
        """The caller's id of the checkpoint."""
        ...

    @property
    def step(self) -> int:
        """The step it was taken at."""
        ...

    @property
    def sequence(self) -> int:
        """The owner's save counter when it was stored."""
        ...


C = TypeVar("C", bound=Checkpoint)
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class CheckpointPointer:
    """An id pointer or an index entry: the order key of the checkpoint it names."""

    order: str = ""


POINTER = Schema(CheckpointPointer, field="checkpoint")


def checkpoint_not_found(owner: str, owner_id: str, checkpoint_id: str) -> NotFoundError:
    """CHECKPOINT_NOT_FOUND for checkpoint ``checkpoint_id`` ("" for the newest) of the
    ``owner`` ("agent" or "workflow") ``owner_id``."""
    which = f"checkpoint {checkpoint_id!r}" if checkpoint_id else "no checkpoint"
    return NotFoundError(
        f"{which} of {owner} {owner_id!r} not found",
        reason=Reason.CHECKPOINT_NOT_FOUND,
        metadata={f"{owner}_id": owner_id, "checkpoint_id": checkpoint_id},
    )


def check_step(step: int, field: str = "step") -> int:
    """Return ``step`` when it is a valid step number (0 to 2**63-1), else INVALID_ARGUMENT."""
    if step < 0 or step > MAX_STEP:
        raise InvalidArgumentError(
            f"{field} must be between 0 and {MAX_STEP}, got {step}",
            reason=Reason.INVALID_ARGUMENT,
            violations=[(field, "negative" if step < 0 else "too large")],
        )
    return step


def check_count(value: int, field: str) -> int:
    """Return a non-negative count (retention, interval), else INVALID_ARGUMENT."""
    if value < 0:
        raise InvalidArgumentError(
            f"{field} must not be negative",
            reason=Reason.INVALID_ARGUMENT,
            violations=[(field, "negative")],
        )
    return value


def order_key(step: int, sequence: int) -> str:
    """The key suffix that sorts (step, sequence) pairs newest first."""
    return f"{_INVERT - step:020d}/{_INVERT - sequence:020d}"


def sequence_key(sequence: int) -> str:
    """The key suffix that sorts sequence numbers newest first."""
    return f"{_INVERT - sequence:020d}"


def decode_token(token: str, single: bool = False) -> str:
    """The key suffix a page token names ("" for no token), or INVALID_PAGE_TOKEN."""
    if not token:
        return ""
    last = decode_text(token) or ""
    valid = re.fullmatch(r"\d{20}", last) if single else _ORDER.match(last)
    if not valid:
        raise invalid_token("page_token is not a token returned by this list call")
    return last


async def newest_first(
    backend: Backend,
    prefix: str,
    schema: Schema[R],
    limits: Limits,
    page_size: int,
    page_token: str,
    single: bool,
) -> tuple[list[R], str]:
    """One page of the records under ``prefix`` (ordered keys), newest first, and the token of
    the next page ("" on the last page)."""
    size = limits.check_page_size(page_size)
    last = decode_token(page_token, single)
    page = await backend.range(prefix, start_after=prefix + last if last else "", limit=size)
    records = [schema.unpack(entry.value) for entry in page.entries]
    token = encode_text(page.entries[-1].key[len(prefix) :]) if page.more and records else ""
    return records, token


def now() -> float:
    """The server clock in Unix seconds."""
    return time.time()


def kept_entries(entries: Sequence[Entry], keep: int, protect: str) -> list[Entry]:
    """The ordered ``entries`` (newest first, the one just written included) that retention
    removes to keep the newest ``keep``.

    Neither the newest entry nor ``protect`` (the entry just written, which may be older than
    the newest when it has a lower step) is ever removed: when ``protect`` falls outside the
    newest ``keep``, it takes the place of the oldest kept entry other than the newest.
    """
    if keep <= 0 or len(entries) <= keep:
        return []
    kept = list(entries[:keep])
    if protect and all(entry.key != protect for entry in kept):
        if len(kept) > 1:
            kept.pop()
        kept.extend(entry for entry in entries if entry.key == protect)
    kept_keys = {entry.key for entry in kept}
    return [entry for entry in entries if entry.key not in kept_keys]


async def find_checkpoint(
    txn: Txn,
    base: str,
    schema: Schema[C],
    checkpoint_id: str,
    recoverable: Callable[[C], bool] | None = None,
    newest: str | None = None,
) -> C | None:
    """The checkpoint ``checkpoint_id`` under ``base``, or the newest one; with
    ``recoverable``, the newest for which it holds: the one at order key ``newest`` (the
    owner's pointer, "" for none), or, when the owner has no pointer yet (None: its checkpoints
    were stored before pointers were kept), the first found newest first. What it read guards
    ``txn``'s commit."""
    if checkpoint_id:
        pointer = await txn.get(base + "cid/" + checkpoint_id, POINTER)
        order = pointer.order if pointer is not None else ""
    elif recoverable is None:
        first = await txn.range(base + "ckpt/", schema, limit=1, guard=True)
        return first[0][1] if first else None
    elif newest is None:
        order = await _newest_recoverable(txn, base, schema, recoverable, set())
    else:
        order = newest
    if not order:
        return None
    return await txn.get(base + "ckpt/" + order, schema)


async def _newest_recoverable(
    txn: Txn, base: str, schema: Schema[C], recoverable: Callable[[C], bool], skip: set[str]
) -> str:
    """The order key of the newest stored checkpoint for which ``recoverable`` holds (not in
    ``skip``), "" when none: a search newest first, for an owner without a valid pointer."""
    async for entry in scan(txn.backend, base + "ckpt/"):
        order = entry.key[len(base + "ckpt/") :]
        if order not in skip and recoverable(schema.unpack(entry.value)):
            txn.guard(entry.key, entry.mod_revision)
            return order
    return ""


async def store_checkpoint(
    txn: Txn,
    base: str,
    record: C,
    schema: Schema[C],
    keep_latest: int,
    recoverable: Callable[[C], bool] | None = None,
    newest: str | None = None,
) -> tuple[int, str]:
    """Stage the writes that store ``record`` as a checkpoint under ``base``: its ordered
    entry, its id pointer, the removal of an earlier checkpoint with the same id, and
    retention to ``keep_latest``. Returns how many older checkpoints retention removes and,
    with ``recoverable``, the order key of the newest recoverable checkpoint after the write
    (given ``newest``, the owner's pointer before it; None: not kept yet)."""
    checkpoint_id = record.checkpoint_id
    order = order_key(record.step, record.sequence)
    key = base + "ckpt/" + order
    previous = await txn.get(base + "cid/" + checkpoint_id, POINTER)
    gone = {previous.order} if previous is not None else set()
    if previous is not None:
        _remove(txn, base, previous.order, checkpoint_id)
    txn.put(key, record, schema)
    txn.put(base + "cid/" + checkpoint_id, CheckpointPointer(order), POINTER)
    if keep_latest > 0:
        gone |= await _prune(txn, base, schema, keep_latest, key, checkpoint_id, gone)
    if recoverable is None:
        return len(gone) - (previous is not None), ""
    if newest is None or newest in gone:
        newest = await _newest_recoverable(txn, base, schema, recoverable, gone | {order})
    if recoverable(record) and (not newest or order < newest):
        newest = order
    return len(gone) - (previous is not None), newest


async def _prune(
    txn: Txn,
    base: str,
    schema: Schema[C],
    keep_latest: int,
    key: str,
    checkpoint_id: str,
    gone: set[str],
) -> set[str]:
    """Stage retention after writing ``key``; the order keys it removes."""
    prefix = base + "ckpt/"
    page = await txn.range(prefix, schema, limit=keep_latest + PRUNE_SLACK + 1, guard=True)
    ids = {
        entry.key: stored.checkpoint_id
        for entry, stored in page
        if entry.key[len(prefix) :] not in gone
    }
    ids[key] = checkpoint_id
    entries = sorted((Entry(k, b"", 0, 0, 0) for k in ids), key=lambda e: e.key)
    removed = set()
    for entry in kept_entries(entries, keep_latest, key):
        removed.add(entry.key[len(prefix) :])
        _remove(txn, base, entry.key[len(prefix) :], ids[entry.key])
    return removed


def _remove(txn: Txn, base: str, order: str, checkpoint_id: str) -> None:
    """Stage the removal of the checkpoint at ``order`` with its id pointer."""
    txn.delete(base + "ckpt/" + order)
    txn.delete(base + "cid/" + checkpoint_id)


async def delete_directory(
    backend: Backend,
    limits: Limits,
    base: str,
    head: str,
    counted: Callable[[str], bool],
    check: Callable[[Entry | None], None] | None = None,
    mark: Callable[[Txn, Entry | None], bool] | None = None,
) -> tuple[int, int]:
    """Remove every key under ``base``; returns how many ``counted`` records went (``counted``
    gets a key's name after ``base``) and the store revision.

    A directory that fits one transaction goes in one transaction guarded by the head record
    ``base + head`` as it was read. A larger one goes in batches of data keys (deletes are
    idempotent, so batches need no guard), the head last, guarded the same way. ``check``
    (given the head entry) may refuse before anything is removed; ``mark`` may stage a write
    of the head before the first batch (returning True when it did), committed on its own.
    """
    size = batch_size(limits.max_transaction_operations)
    removed = 0
    while True:

        async def body(txn: Txn) -> tuple[list[str], bool]:
            entry = await txn.entry(base + head)
            if check is not None:
                check(entry)
            page = await backend.range(base, limit=size)
            keys = [item.key for item in page.entries]
            if page.more:
                marked = mark is not None and mark(txn, entry)
                return ([] if marked else [k for k in keys if k != base + head]), False
            for key in keys:
                txn.delete(key)
            return keys, True

        (keys, last), result = await transact_with_result(backend, body, limits=limits)
        if last:
            if result is None:  # nothing (left) to remove
                return removed, await backend.revision()
            return removed + count_removed(base, keys, result, counted), result.revision
        if keys:
            batch = await delete_batch(backend, keys)
            removed += count_removed(base, keys, batch, counted)


def renamed(names: dict[str, str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """An upgrade that renames the stored keys of the format before typed records."""

    def upgrade(data: dict[str, Any]) -> dict[str, Any]:
        return {names.get(key, key): value for key, value in data.items()}

    return upgrade
