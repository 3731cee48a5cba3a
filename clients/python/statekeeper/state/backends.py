"""The reference's persistence backends, usable directly or as ``StateConfig(backend=...)``.

These are the server's own backend classes: ``MemoryBackend()`` (no persistence),
``FileBackend(base_path, format, compression)`` (durable, single node) and
``RedisBackend(url, db, key_prefix, connection_pool_size)`` (shared by many instances).
"""

from statekeeper_server.engine.file import FileBackend
from statekeeper_server.engine.memory import MemoryBackend
from statekeeper_server.engine.redis import RedisBackend

__all__ = ["FileBackend", "MemoryBackend", "RedisBackend"]
