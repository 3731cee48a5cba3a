"""The Redis backend's connections: two pools per process and the URL as logs may show it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.maint_notifications import MaintNotificationsConfig

#: Seconds to wait for a TCP connection to Redis before reporting it unavailable.
CONNECT_TIMEOUT = 2.0
#: Seconds a command may take before the backend reports Redis unavailable.
COMMAND_TIMEOUT = 10.0
#: Milliseconds one blocking stream read waits for new entries.
TAIL_BLOCK_MS = 1000


def redact(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def tail_read(log_key: str, after: int, count: int) -> bytes:
    """The change-log reader's command, packed by hiredis: up to ``count`` entries after
    revision ``after``, waiting up to :data:`TAIL_BLOCK_MS` for the first. Its raw reply is
    ``[[stream, [[id, [field, value, ...]], ...]]]``, or None when nothing came."""
    words: tuple[Any, ...] = (
        "XREAD",
        "COUNT",
        count,
        "BLOCK",
        TAIL_BLOCK_MS,
        "STREAMS",
        log_key,
        f"{after}-0",
    )
    return hiredis.pack_command(words)


def open_pools(
    url: str, db: int, size: int
) -> tuple[aioredis.BlockingConnectionPool, aioredis.ConnectionPool]:
    """The shared command pool (at most ``size`` connections; a call waits for a free one)
    and the change-log reader's own small pool; connections open on first use."""
    common: dict[str, Any] = {
        "db": db,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "retry": Retry(NoBackoff(), 0),
        "decode_responses": False,
        # RESP2 replies, and no maintenance push notifications: with them enabled, the
        # pool skips its check for connections the server closed, so the first call after
        # a Redis restart would fail on a stale connection instead of reconnecting.
        "protocol": 2,
        "maint_notifications_config": MaintNotificationsConfig(enabled=False),
    }
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=size,
        timeout=COMMAND_TIMEOUT,
        # No per-socket timeout: redis-py would wrap every send in asyncio.wait_for (a task
        # per command). The backend bounds each whole call with one asyncio.timeout instead.
        socket_timeout=None,
        **common,
    )
    # The change-log reader blocks on its own connection, outside the shared pool (each of
    # its reads bounded by an asyncio.timeout, as the backend's calls are).
    tail_pool = aioredis.ConnectionPool.from_url(
        url, max_connections=2, socket_timeout=None, **common
    )
    return pool, tail_pool
