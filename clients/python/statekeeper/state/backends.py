"""The reference's persistence backends, usable directly or as ``StateConfig(backend=...)``.

These are the server's own backend classes: ``MemoryBackend()`` (no persistence),
``FileBackend(base_path, format, compression)`` (durable, single node) and
``RedisBackend(url, db, key_prefix, connection_pool_size)`` (shared by many instances).
They are imported on first access (``statekeeper.state.FileBackend``), so a remote-only client
never loads the server's storage code, ``redis`` or ``zstandard``.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Where each backend class lives.
BACKEND_MODULES = {
    "MemoryBackend": "statekeeper_server.engine.storage.memory",
    "FileBackend": "statekeeper_server.engine.storage.file",
    "RedisBackend": "statekeeper_server.engine.storage.redis",
}


def backend_class(name: str) -> Any:
    """The backend class ``name`` of :data:`BACKEND_MODULES`, imported now."""
    return getattr(importlib.import_module(BACKEND_MODULES[name]), name)


def __getattr__(name: str) -> Any:
    if name in BACKEND_MODULES:
        return backend_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["FileBackend", "MemoryBackend", "RedisBackend"]  # noqa: F822 - imported on access
