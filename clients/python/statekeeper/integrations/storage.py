"""What the framework adapters share on top of :class:`~statekeeper.state.StateManager`: ids
turned into key segments, many documents read at once, and keys removed in bounded batches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from urllib.parse import quote

from statekeeper.state import StateEntry, StateManager

#: Most keys one cleanup transaction deletes (the server's default cap is 128 operations).
DELETE_BATCH = 100
#: Most reads an adapter keeps in flight at once.
READ_BATCH = 64
#: Most entries one Range page of an adapter holds.
RANGE_PAGE = 1000


def segment(text: str) -> str:
    """``text`` as one key segment: every character but letters, digits and ``_.-~``
    percent-encoded, so an id never contains ``/`` or a glob character and no id is a
    prefix-match of another id's keys."""
    return quote(text, safe="")


async def get_entries(manager: StateManager, keys: Sequence[str]) -> list[StateEntry | None]:
    """The entries of ``keys`` in their order (None where missing), read concurrently in
    batches of :data:`READ_BATCH`."""
    entries: list[StateEntry | None] = []
    for start in range(0, len(keys), READ_BATCH):
        batch = keys[start : start + READ_BATCH]
        entries += await asyncio.gather(*(manager.get_entry(key) for key in batch))
    return entries


async def delete_matching(
    manager: StateManager, pattern: str, keep: Callable[[str], bool] = lambda _: False
) -> int:
    """Delete every key matching the glob ``pattern`` except those ``keep`` accepts, in
    transactions of at most :data:`DELETE_BATCH` keys; returns how many were deleted.

    Not atomic as a whole: callers first make the keys unreachable in one guarded transaction
    (so an interrupted cleanup leaves only garbage that nothing reads) and call this again to
    finish an interrupted cleanup."""
    batch: list[str] = []
    deleted = 0
    async for key in manager.iter_keys(pattern, page_size=1000):
        if keep(key):
            continue
        batch.append(key)
        if len(batch) == DELETE_BATCH:
            await manager.transaction(delete=batch)
            deleted += len(batch)
            batch = []
    if batch:
        await manager.transaction(delete=batch)
        deleted += len(batch)
    return deleted
