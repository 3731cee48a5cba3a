"""Read-modify-write through compare-and-set, retried on conflict.

Managers never hold a process-local lock around a read-modify-write: another server instance on
the same Redis would not see it. Instead each attempt reads the current entries, decides, and
writes with compares on the revisions it read; when another writer got there first the backend
raises ConflictError and the attempt runs again on fresh data.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from statekeeper.errors import ConflictError, Reason

T = TypeVar("T")

#: How many times a read-modify-write is attempted before the conflict is reported.
MAX_ATTEMPTS = 200


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
