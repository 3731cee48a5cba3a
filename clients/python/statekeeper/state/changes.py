"""Result types of the StateManager: an entry with its revisions and a change event."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class StateEntry:
    """A stored document with its revision metadata (``mod_revision`` is the etag for
    compare-and-set)."""

    key: str
    value: Any
    create_revision: int
    mod_revision: int
    version: int
    expires_at: datetime | None = None


class ChangeType(enum.Enum):
    """What happened to a key."""

    PUT = "put"
    DELETE = "delete"
    EXPIRE = "expire"


@dataclass(frozen=True)
class StateChange:
    """One change delivered by :meth:`StateManager.watch`."""

    type: ChangeType
    key: str
    revision: int
    old_value: Any
    new_value: Any
