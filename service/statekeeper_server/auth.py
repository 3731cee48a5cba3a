"""Bearer-token authentication and role/namespace authorization (off unless a tokens file is set).

The tokens file is JSON: an object that maps each token to what it may do::

    {
      "s3cret-token-of-team-a": {"name": "team-a", "namespaces": ["team-a"], "role": "write"},
      "sha256:9f86d081884c7d65...": {"name": "ops", "namespaces": ["default", "team-a"],
                                     "role": "admin"}
    }

* ``namespaces`` (required, non-empty): the tenants the token may use. A call selects one with
  the ``x-statekeeper-namespace`` metadata; without it, the token's first namespace is used. The
  name ``default`` stands for the default tenant (the keys written while auth was off).
* ``role``: ``read`` (read RPCs only), ``write`` (read and write RPCs) or ``admin`` (everything,
  statistics and maintenance included). Default ``read``.
* ``name``: shown in logs instead of the token (default ``token-<n>``).
* A key ``sha256:<hex>`` holds the SHA-256 of the token instead of the token itself, so the file
  need not contain the secret.

Every presented token is hashed and compared against every entry with :func:`hmac.compare_digest`
(constant time, no early exit); tokens are never logged.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from statekeeper.errors import (
    InvalidArgumentError,
    PermissionDeniedError,
    Reason,
    UnauthenticatedError,
)

#: The metadata key that selects the namespace (tenant) of a call.
NAMESPACE_METADATA = "x-statekeeper-namespace"
#: The namespace name of the default tenant (no key prefix).
DEFAULT_NAMESPACE = "default"
#: Methods that need no token unless configured otherwise (prefixes of full method names).
DEFAULT_EXEMPT = ("/grpc.health.v1.Health/", "/grpc.reflection.")

_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class Role(enum.IntEnum):
    """What a token may do; each role includes the ones below it."""

    READ = 1
    WRITE = 2
    ADMIN = 3


#: RPC names (the part after the last "/") that read: exact names or these prefixes.
READ_PREFIXES = (
    "Get",
    "List",
    "Watch",
    "Search",
    "Query",
    "Find",
    "Count",
    "Describe",
    "Read",
    "Load",
    "Export",
    "Check",
    "Exists",
    "Has",
    "Subscribe",
)
#: RPC name prefixes that need the admin role.
ADMIN_PREFIXES = ("Admin", "Compact", "Stats", "GetStats", "ServerStats", "Purge", "Backup")
#: Explicit roles for full method names (wins over the name convention); services add theirs.
METHOD_ROLES: dict[str, Role] = {
    "/statekeeper.v1.StateService/Range": Role.READ,
    # A batch needs the read role; each of its writes needs the role of its own RPC.
    "/statekeeper.v1.StateService/Batch": Role.READ,
}


def required_role(method: str) -> Role:
    """The least role that may call ``method`` (a full ``/package.Service/Rpc`` name).

    An explicit :data:`METHOD_ROLES` entry wins; a service whose name ends in ``AdminService``
    is admin-only; otherwise the RPC name decides: :data:`ADMIN_PREFIXES` need admin,
    :data:`READ_PREFIXES` need read, and everything else (Save, Update, Delete, ...) needs write.
    """
    explicit = METHOD_ROLES.get(method)
    if explicit is not None:
        return explicit
    service, _, rpc = method.strip("/").rpartition("/")
    if service.endswith("AdminService") or rpc.startswith(ADMIN_PREFIXES):
        return Role.ADMIN
    if rpc.startswith(READ_PREFIXES):
        return Role.READ
    return Role.WRITE


def require_role(role: Role, method: str) -> None:
    """Raise PERMISSION_DENIED when a caller with ``role`` may not call ``method``."""
    needed = required_role(method)
    if role < needed:
        raise PermissionDeniedError(
            f"role {role.name.lower()} may not call {method}; it needs role {needed.name.lower()}",
            reason=Reason.PERMISSION_DENIED,
            metadata={"required_role": needed.name.lower()},
        )


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a display name, its namespaces and its role."""

    name: str
    namespaces: tuple[str, ...]
    role: Role


def tenant_of(namespace: str) -> str:
    """The engine tenant of a namespace name (``default`` is the default tenant ``""``)."""
    return "" if namespace == DEFAULT_NAMESPACE else namespace


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenTable:
    """The configured tokens, checked in constant time."""

    def __init__(self, entries: Sequence[tuple[bytes, Principal]]) -> None:
        self._entries = list(entries)

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "tokens") -> TokenTable:
        """Build the table from the parsed tokens file (see the module docstring)."""
        if not isinstance(data, Mapping):
            raise InvalidArgumentError(f"{source}: expected a JSON object of token -> grant")
        entries: list[tuple[bytes, Principal]] = []
        for index, (token, grant) in enumerate(data.items(), start=1):
            where = f"{source}: entry {index}"
            if not isinstance(token, str) or not token:
                raise InvalidArgumentError(f"{where}: the token must be a non-empty string")
            if not isinstance(grant, Mapping):
                raise InvalidArgumentError(f"{where}: expected an object with namespaces and role")
            namespaces = grant.get("namespaces")
            if (
                not isinstance(namespaces, list)
                or not namespaces
                or not all(isinstance(n, str) and _NAMESPACE_RE.match(n) for n in namespaces)
            ):
                raise InvalidArgumentError(
                    f"{where}: namespaces must be a non-empty list of names "
                    "(letters, digits, '.', '_', '-'; at most 63 characters)"
                )
            role_name = str(grant.get("role", "read")).upper()
            if role_name not in Role.__members__:
                raise InvalidArgumentError(f"{where}: role must be read, write or admin")
            if token.startswith("sha256:"):
                try:
                    digest = bytes.fromhex(token[len("sha256:") :])
                except ValueError:
                    digest = b""
                if len(digest) != 32:
                    raise InvalidArgumentError(f"{where}: sha256: needs 64 hex digits")
            else:
                digest = _digest(token)
            name = str(grant.get("name") or f"token-{index}")
            entries.append((digest, Principal(name, tuple(namespaces), Role[role_name])))
        return cls(entries)

    @classmethod
    def from_file(cls, path: str) -> TokenTable:
        """Load the tokens file at ``path``."""
        text = Path(path).read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidArgumentError(
                f"{path}: not valid JSON (line {error.lineno}): {error.msg}"
            ) from None
        return cls.from_mapping(data, path)

    def lookup(self, token: str) -> Principal | None:
        """The principal of ``token``, or None; every entry is compared (constant time)."""
        presented = _digest(token)
        found: Principal | None = None
        for digest, principal in self._entries:
            if hmac.compare_digest(presented, digest) and found is None:
                found = principal
        return found


def bearer_token(metadata: Sequence[tuple[str, Any]]) -> str | None:
    """The token of the ``authorization: Bearer <token>`` metadata, or None."""
    for key, value in metadata:
        if key == "authorization":
            text = value.decode() if isinstance(value, bytes) else str(value)
            scheme, _, token = text.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


def metadata_value(metadata: Sequence[tuple[str, Any]], name: str) -> str | None:
    """The first value of metadata key ``name`` as text, or None."""
    for key, value in metadata:
        if key == name:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


class Authenticator:
    """Decides, per call, who the caller is and which tenant the call runs as."""

    def __init__(self, tokens: TokenTable, exempt: Sequence[str] = DEFAULT_EXEMPT) -> None:
        self.tokens = tokens
        self.exempt = tuple(p for p in exempt if p)

    def is_exempt(self, method: str) -> bool:
        """True when ``method`` needs no token (health and reflection by default)."""
        return method.startswith(self.exempt)

    def authorize(self, method: str, metadata: Sequence[tuple[str, Any]]) -> tuple[Principal, str]:
        """The caller and its tenant for a call of ``method``; raises UNAUTHENTICATED or
        PERMISSION_DENIED."""
        token = bearer_token(metadata)
        if token is None:
            raise UnauthenticatedError(
                "missing credentials: send 'authorization: Bearer <token>' metadata",
                reason=Reason.UNAUTHENTICATED,
            )
        principal = self.tokens.lookup(token)
        if principal is None:
            raise UnauthenticatedError("invalid token", reason=Reason.UNAUTHENTICATED)
        require_role(principal.role, method)
        namespace = metadata_value(metadata, NAMESPACE_METADATA)
        if namespace is None or namespace == "":
            namespace = principal.namespaces[0]
        elif namespace not in principal.namespaces:
            raise PermissionDeniedError(
                "this token may not use the requested namespace",
                reason=Reason.PERMISSION_DENIED,
            )
        return principal, tenant_of(namespace)
