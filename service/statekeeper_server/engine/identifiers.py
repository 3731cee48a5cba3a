"""The one rule for keys and ids, used by every manager.

A key (StateService) or an id of any kind (agent, workflow, checkpoint, snapshot, team, task,
tool, execution, knowledge base, source, session, ...) is

* 1 to a limit of **UTF-8 bytes** long: ``--max-key-bytes`` (512 by default) for keys,
  :data:`MAX_ID_BYTES` (256) for ids;
* free of control characters, C0 and C1 alike (U+0000 to U+001F, U+007F to U+009F), and of
  lone surrogates (which cannot be stored as UTF-8);
* for an id also free of ``/``, so that one id is never a key prefix of another id's records
  (``a1/`` versus ``a10/``).

A key failing the rule is INVALID_KEY (KEY_TOO_LONG when only too long), an id INVALID_ARGUMENT;
both carry a field violation naming the request field.
"""

from __future__ import annotations

import re
from typing import TypeVar

from statekeeper.errors import InvalidArgumentError, Reason

T = TypeVar("T")

#: The longest id, in UTF-8 bytes.
MAX_ID_BYTES = 256
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def has_control_characters(text: str) -> bool:
    """Whether ``text`` holds a C0 or C1 control character (DEL included) or a lone surrogate."""
    return _CONTROL.search(text) is not None


def _problem(value: str, max_bytes: int) -> tuple[str, bool] | None:
    """What breaks the rule for ``value`` (the field violation's text) and whether it is only
    its length, or None."""
    if not value:
        return "empty", False
    if has_control_characters(value):
        return "control characters are not allowed", False
    if len(value.encode("utf-8")) > max_bytes:
        return f"longer than {max_bytes} bytes", True
    return None


def check_key(key: str, field: str, max_bytes: int) -> str:
    """Return ``key`` when it follows the rule with a limit of ``max_bytes``, else raise
    INVALID_KEY or KEY_TOO_LONG."""
    found = _problem(key, max_bytes)
    if found is None:
        return key
    problem, too_long = found
    if too_long:
        size = len(key.encode("utf-8"))
        raise InvalidArgumentError(
            f"{field} is {size} bytes long; the limit is {max_bytes}",
            reason=Reason.KEY_TOO_LONG,
            metadata={"limit": str(max_bytes), "size": str(size)},
            violations=[(field, problem)],
        )
    raise InvalidArgumentError(
        f"{field} is invalid: {problem}", reason=Reason.INVALID_KEY, violations=[(field, problem)]
    )


def check_id(value: str, field: str, *, required: bool = True) -> str:
    """Return ``value`` when it is a valid id (the rule, at most :data:`MAX_ID_BYTES`, no
    ``/``), else raise INVALID_ARGUMENT; with ``required`` False an empty id ("none given")
    passes too."""
    if not value and not required:
        return value
    found = _problem(value, MAX_ID_BYTES)
    problem = found[0] if found is not None else None
    if problem is None and "/" in value:
        problem = "must not contain '/'"
    if problem is not None:
        raise InvalidArgumentError(
            f"{field} is invalid: {problem}",
            reason=Reason.INVALID_ARGUMENT,
            violations=[(field, problem)],
        )
    return value


def check_text(value: str, field: str, limit: int, *, required: bool = False) -> str:
    """Validate a free-form string field (length, no control characters)."""
    problem = None
    if required and not value:
        problem = "must not be empty"
    elif len(value) > limit:
        problem = f"longer than {limit} characters"
    elif has_control_characters(value):
        problem = "control characters are not allowed"
    if problem is not None:
        raise InvalidArgumentError(
            f"{field} {problem}", reason=Reason.INVALID_ARGUMENT, violations=[(field, problem)]
        )
    return value


def require(value: T | None, field: str) -> T:
    """``value``, or INVALID_ARGUMENT ("``field`` is required") when it is None."""
    if value is None:
        raise InvalidArgumentError(
            f"{field} is required", reason=Reason.INVALID_ARGUMENT, violations=[(field, "required")]
        )
    return value


def invalid(field: str, problem: str) -> InvalidArgumentError:
    """An INVALID_ARGUMENT error with one field violation."""
    return InvalidArgumentError(
        f"{field} is invalid: {problem}",
        reason=Reason.INVALID_ARGUMENT,
        violations=[(field, problem)],
    )
