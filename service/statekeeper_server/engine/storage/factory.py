"""Opening a backend by name, for the server and for the client's embedded mode."""

from __future__ import annotations

from dataclasses import dataclass

from statekeeper.errors import InvalidArgumentError

from statekeeper_server.engine.storage.backend import (
    DEFAULT_HISTORY_BYTES,
    DEFAULT_HISTORY_REVISIONS,
    Backend,
)
from statekeeper_server.engine.storage.memory import MemoryBackend

#: The names accepted by :func:`open_backend`.
BACKEND_NAMES = ("memory", "file", "redis")


@dataclass(frozen=True)
class BackendOptions:
    """Everything needed to open any backend; each backend reads the fields it uses."""

    kind: str = "memory"
    data_dir: str = "./data"
    file_format: str = "msgpack"
    compression: bool = False
    redis_url: str = "redis://127.0.0.1:6379"
    redis_db: int = 0
    redis_key_prefix: str = "statekeeper:"
    redis_pool_size: int = 16
    history_revisions: int = DEFAULT_HISTORY_REVISIONS
    history_bytes: int = DEFAULT_HISTORY_BYTES

    @property
    def identity(self) -> tuple[str, ...]:
        """What makes two option sets name the same storage."""
        if self.kind == "file":
            return (self.kind, self.data_dir)
        if self.kind == "redis":
            return (self.kind, self.redis_url, str(self.redis_db), self.redis_key_prefix)
        return (self.kind,)


def open_backend(options: BackendOptions) -> Backend:
    """A new backend for ``options``."""
    if options.kind == "memory":
        return MemoryBackend(
            history_revisions=options.history_revisions, history_bytes=options.history_bytes
        )
    if options.kind == "file":
        from statekeeper_server.engine.storage.file import FileBackend

        return FileBackend(
            options.data_dir,
            format=options.file_format,
            compression=options.compression,
            history_revisions=options.history_revisions,
            history_bytes=options.history_bytes,
        )
    if options.kind == "redis":
        from statekeeper_server.engine.storage.redis import RedisBackend

        return RedisBackend(
            url=options.redis_url,
            db=options.redis_db,
            key_prefix=options.redis_key_prefix,
            connection_pool_size=options.redis_pool_size,
            history_revisions=options.history_revisions,
            history_bytes=options.history_bytes,
        )
    raise InvalidArgumentError(
        f"unknown backend {options.kind!r}; choose one of {', '.join(BACKEND_NAMES)}"
    )
