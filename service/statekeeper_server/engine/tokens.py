"""Page tokens the managers share: URL-safe base64 (unpadded) of the last key of a page, or of
a small JSON object that also names the list (scope) the token was issued for."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from statekeeper.errors import InvalidArgumentError, Reason


def encode_text(last: str) -> str:
    """A page token naming ``last`` (the last key or key suffix of a page)."""
    return base64.urlsafe_b64encode(last.encode()).decode().rstrip("=")


def decode_text(token: str) -> str | None:
    """The text an :func:`encode_text` token names, or None when ``token`` is malformed."""
    try:
        return base64.urlsafe_b64decode((token + "=" * (-len(token) % 4)).encode()).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


def invalid_token(message: str, problem: str = "malformed") -> InvalidArgumentError:
    """The INVALID_PAGE_TOKEN error of a page token the list call did not issue."""
    return InvalidArgumentError(
        message, reason=Reason.INVALID_PAGE_TOKEN, violations=[("page_token", problem)]
    )


def encode_scoped(scope: str, last: str) -> str:
    """A page token naming ``last`` within the list ``scope``."""
    raw = json.dumps({"s": scope, "k": last}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_scoped(token: str, scope: str, message: str, problem: str) -> str:
    """The last key an :func:`encode_scoped` token names ("" for no token); a malformed token
    or one issued for another scope is INVALID_PAGE_TOKEN with ``message`` and ``problem``."""
    if not token:
        return ""
    try:
        data = json.loads(base64.urlsafe_b64decode((token + "=" * (-len(token) % 4)).encode()))
        if data["s"] != scope or not isinstance(data["k"], str):
            raise ValueError
        return str(data["k"])
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise invalid_token(message, problem) from None


def digest(*request: object) -> str:
    """A short scope naming a request by the fields its pages share (for :func:`encode_scoped`)."""
    return hashlib.sha256(json.dumps(request).encode()).hexdigest()[:16]
