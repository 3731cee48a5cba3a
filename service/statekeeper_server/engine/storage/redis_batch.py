"""The Redis backend's batches: every item in one call of BATCH_SCRIPT (one round trip, one
command), reads and transactions in order, each as its own script would run it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from statekeeper_server.engine.storage.backend import BatchItem, Read, Transaction


def batch_args(
    prefix: str, items: Sequence[BatchItem], txn_args: Callable[[Transaction], list[Any]]
) -> list[Any]:
    """The arguments of BATCH_SCRIPT for ``items``: ``txn_args`` gives a transaction's own
    script arguments (prefix first)."""
    args: list[Any] = [prefix]
    for item in items:
        if isinstance(item, Read):
            args += ("r", item.key)
        else:
            own = txn_args(item)
            args += ("t", len(own), *own)
    return args
