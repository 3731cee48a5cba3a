"""Removing a whole record directory (an agent's or a workflow's keys) through Backend.txn.

A directory has one *head* key (``agent/<id>/meta``, ``wf/<id>/record``) that every write of
the directory rewrites in a transaction guarded by the head's revision. So a transaction that
deletes every key of the directory, guarded by the head's revision read before listing them,
removes exactly what existed: a concurrent write either committed before (its keys were listed
too, or the guard fails and the removal starts again) or fails its own guard afterwards.

A directory with more keys than one transaction may hold (the server's
``max_transaction_operations``) is removed in batches; each batch is one atomic transaction of
deletes, which are idempotent, so a removal that stops midway can be run again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from statekeeper_server.engine.storage.backend import Backend, Compare, Delete, TxnResult


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
