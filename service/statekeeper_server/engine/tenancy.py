"""Tenant isolation: every backend key a manager builds starts with the caller's tenant prefix.

The server's authentication interceptor sets :data:`current_tenant` for each call from the
caller's token (and the namespace it selects); the default tenant ``""`` has no prefix, which is
what a server without authentication and the embedded mode use. Because every manager builds its
keys through :func:`tenant_prefix`, tenant A can neither read, list nor watch tenant B's keys.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

#: The tenant (namespace) of the call being served; "" is the default tenant.
current_tenant: ContextVar[str] = ContextVar("statekeeper_tenant", default="")
#: For an authenticated call, the check of whether its caller may call a method (a full
#: ``/package.Service/Rpc`` name), raising PERMISSION_DENIED when not; None when the server
#: checks no tokens (and in embedded mode). Set by the server's interceptor.
current_authorization: ContextVar[Callable[[str], None] | None] = ContextVar(
    "statekeeper_authorization", default=None
)


def authorize(method: str) -> None:
    """Raise the error the current caller would get calling ``method`` itself (the operations
    of a batch are each authorized as their own RPC)."""
    check = current_authorization.get()
    if check is not None:
        check(method)


def tenant_prefix() -> str:
    """The backend key prefix of the current tenant ("" for the default tenant)."""
    tenant = current_tenant.get()
    return f"tenants/{tenant}/" if tenant else ""
