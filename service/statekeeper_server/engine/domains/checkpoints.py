"""Helpers the agent and workflow managers share: ids, steps, ordered checkpoint keys, retention.

Checkpoints are ordered by (step, sequence), where the sequence is a per-agent or per-workflow
counter kept in the owner's record and bumped in the same transaction as every save, so it
survives restarts and never repeats. The order is encoded in the key itself with both numbers
*inverted* and zero-padded (``<INV - step>/<INV - sequence>``): ascending key order is then
newest-first order, so "latest" is the first key of a range read, listing newest first is a
plain paginated range, and no id is ever sorted as text.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

from statekeeper import values
from statekeeper.errors import InvalidArgumentError, NotFoundError, Reason

from statekeeper_server.engine.limits import Limits
from statekeeper_server.engine.storage.backend import Backend, Delete, Entry, Operation
from statekeeper_server.engine.tokens import decode_text, encode_text, invalid_token

#: The largest accepted step number (int64).
MAX_STEP = 2**63 - 1
#: Numbers in ordered keys are subtracted from this so that key order is newest first.
_INVERT = 10**20 - 1
_ORDER = re.compile(r"^\d{20}/\d{20}$")


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
    backend: Backend, prefix: str, limits: Limits, page_size: int, page_token: str, single: bool
) -> tuple[list[Any], str]:
    """One page of the records under ``prefix`` (ordered keys), newest first, and the token of
    the next page ("" on the last page)."""
    size = limits.check_page_size(page_size)
    last = decode_token(page_token, single)
    page = await backend.range(prefix, start_after=prefix + last if last else "", limit=size)
    records = [values.unpack(entry.value) for entry in page.entries]
    token = encode_text(page.entries[-1].key[len(prefix) :]) if page.more and records else ""
    return records, token


def now() -> float:
    """The server clock in Unix seconds."""
    return time.time()


def pack_record(record: Any, limits: Limits, field: str) -> bytes:
    """Encode a record, enforcing the value size limit."""
    return limits.check_value_size(values.pack(record), field)


def prune_operations(
    entries: Sequence[Entry], keep: int, id_prefix: str | None, id_field: str, protect: str = ""
) -> list[Operation]:
    """Deletes that bring the ordered ``entries`` (newest first, the one just written
    included) down to the newest ``keep``, plus the id pointer (``id_prefix +
    record[id_field]``, unless ``id_prefix`` is None) of each deleted entry.

    Neither the newest entry nor ``protect`` (the entry just written, which may be older than
    the newest when it has a lower step) is ever deleted: when ``protect`` falls outside the
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
    operations: list[Operation] = []
    for entry in entries:
        if entry.key in kept_keys:
            continue
        operations.append(Delete(entry.key))
        if id_prefix is not None:
            operations.append(Delete(id_prefix + values.unpack(entry.value)[id_field]))
    return operations
