"""Request limits and the validation helpers every manager shares."""

from __future__ import annotations

import math
from dataclasses import dataclass

from statekeeper.errors import InvalidArgumentError, Reason, ResourceExhaustedError

from statekeeper_server.engine import identifiers

#: The bytes of a watch event and its response beside its two values and keys (revisions,
#: version, expiry, type, field framing, the response's own fields), rounded up generously.
EVENT_OVERHEAD = 1024


@dataclass(frozen=True)
class Limits:
    """Size and count limits enforced on every request (configurable on the server)."""

    max_key_bytes: int = 512
    max_value_bytes: int = 1024 * 1024
    max_transaction_operations: int = 128
    max_page_size: int = 1000
    default_page_size: int = 100
    #: Ended executions kept per tool, newest first (0: keep every one).
    tool_history_per_tool: int = 1000
    #: Seconds without a change after which a live speech session ends (0: never).
    speech_session_idle_ttl: float = 86400.0
    #: The largest gRPC message the server sends or receives; every stream response fits it.
    max_message_bytes: int = 4 * 1024 * 1024 + 65536

    def largest_event_bytes(self) -> int:
        """A bound on one watch event in a response: a value and its previous value (prev_kv)
        at the value limit, two keys at the key limit, and their revisions and framing."""
        return 2 * self.max_value_bytes + 2 * self.max_key_bytes + EVENT_OVERHEAD

    def check_message_size(self) -> None:
        """Refuse limits under which one watch event (or one record of a manager's stream)
        could not be sent in one message: INVALID_ARGUMENT naming both settings."""
        needed = self.largest_event_bytes()
        if needed > self.max_message_bytes:
            raise InvalidArgumentError(
                f"--max-message-bytes {self.max_message_bytes} cannot hold one watch event "
                f"({needed} bytes with --max-value-bytes {self.max_value_bytes}: a value and "
                "its previous value, keys and overhead): raise --max-message-bytes to at least "
                f"{needed} or lower --max-value-bytes (STATEKEEPER_MAX_MESSAGE_BYTES, "
                "STATEKEEPER_MAX_VALUE_BYTES)",
                reason=Reason.INVALID_ARGUMENT,
                violations=[("max_message_bytes", f"less than {needed}")],
            )

    def check_key(self, key: str, field: str = "key") -> str:
        """Return ``key`` when it is a valid key (the rule of
        :mod:`~statekeeper_server.engine.identifiers`, at most ``max_key_bytes``), else raise
        INVALID_KEY / KEY_TOO_LONG."""
        return identifiers.check_key(key, field, self.max_key_bytes)

    def check_value_size(self, data: bytes, field: str = "value") -> bytes:
        """Return ``data`` when it fits the value size limit, else raise VALUE_TOO_LARGE
        (RESOURCE_EXHAUSTED, as every size limit)."""
        if len(data) > self.max_value_bytes:
            raise ResourceExhaustedError(
                f"{field} is {len(data)} bytes encoded; the limit is {self.max_value_bytes}",
                reason=Reason.VALUE_TOO_LARGE,
                metadata={"limit": str(self.max_value_bytes), "size": str(len(data))},
            )
        return data

    def check_page_size(self, page_size: int, field: str = "page_size") -> int:
        """Return the effective page size (0 means the default), or raise INVALID_PAGE_SIZE."""
        if page_size < 0:
            raise InvalidArgumentError(
                f"{field} must not be negative",
                reason=Reason.INVALID_PAGE_SIZE,
                violations=[(field, "negative")],
            )
        return min(page_size or self.default_page_size, self.max_page_size)

    def check_operation_count(self, count: int) -> None:
        """Raise RESOURCE_EXHAUSTED when a transaction has too many operations."""
        if count > self.max_transaction_operations:
            raise ResourceExhaustedError(
                f"transaction has {count} operations; the limit is "
                f"{self.max_transaction_operations}",
                reason=Reason.TOO_MANY_OPERATIONS,
                metadata={"limit": str(self.max_transaction_operations)},
            )


#: The longest accepted time-to-live: 100 years (expiry times stay representable).
MAX_TTL_SECONDS = 100 * 365 * 24 * 3600


def check_ttl(seconds: float | None, field: str = "ttl") -> float | None:
    """Validate a time-to-live in seconds: None or 0 mean "never expires"; negative is invalid."""
    if seconds is None or seconds == 0:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidArgumentError(
            f"{field} must be a positive duration, got {seconds}",
            reason=Reason.INVALID_TTL,
            violations=[(field, "must be positive")],
        )
    if seconds > MAX_TTL_SECONDS:
        raise InvalidArgumentError(
            f"{field} must be at most {MAX_TTL_SECONDS} seconds (100 years), got {seconds}",
            reason=Reason.INVALID_TTL,
            violations=[(field, "too long")],
        )
    return seconds


def check_duration(seconds: float | None, field: str) -> float | None:
    """Return a duration in seconds from 0 to 100 years (or None), else INVALID_ARGUMENT."""
    if seconds is not None and (not math.isfinite(seconds) or seconds < 0):
        raise identifiers.invalid(field, "must not be negative")
    if seconds is not None and seconds > MAX_TTL_SECONDS:
        raise identifiers.invalid(field, "must be at most 100 years")
    return seconds


#: How often an idle watch stream reports progress unless the request says otherwise.
DEFAULT_PROGRESS_INTERVAL = 10.0


def check_progress_interval(seconds: float | None, field: str = "progress_interval") -> float:
    """The progress interval of a watch stream: the default when unset or 0, else ``seconds``
    checked as a TTL is (positive, at most 100 years)."""
    return check_ttl(seconds, field) or DEFAULT_PROGRESS_INTERVAL


def check_revision(revision: int | None, field: str = "expected_revision") -> int | None:
    """Validate an optional expected revision (0 means "must not exist")."""
    if revision is not None and revision < 0:
        raise InvalidArgumentError(
            f"{field} must not be negative",
            reason=Reason.INVALID_REVISION,
            violations=[(field, "negative")],
        )
    return revision
