"""Server configuration: every setting is a CLI flag and a ``STATEKEEPER_*`` environment variable.

A flag given on the command line wins over the environment variable, which wins over the
default. The table of docs/configuration.md is this list.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def _option(default: Any, help_text: str, choices: tuple[str, ...] | None = None) -> Any:
    return field(default=default, metadata={"help": help_text, "choices": choices})


@dataclass
class ServerConfig:
    """Settings of ``statekeeper serve``."""

    host: str = _option("127.0.0.1", "Address to listen on.")
    port: int = _option(50051, "Port to listen on (0 picks a free port).")
    backend: str = _option(
        "file", "Storage backend (file: durable under --data-dir).", ("memory", "file", "redis")
    )
    data_dir: str = _option("./data", "Directory of the file backend.")
    file_format: str = _option(
        "msgpack", "Log and snapshot format of the file backend.", ("json", "msgpack")
    )
    compression: bool = _option(False, "Compress file backend snapshots and log records (zstd).")
    redis_url: str = _option("redis://127.0.0.1:6379", "URL of the Redis server (redis backend).")
    redis_db: int = _option(0, "Redis database number (redis backend).")
    redis_key_prefix: str = _option("statekeeper:", "Prefix of every Redis key (redis backend).")
    redis_pool_size: int = _option(16, "Redis connection pool size (redis backend).")
    history_revisions: int = _option(100_000, "Revisions of change history kept for watchers.")
    history_bytes: int = _option(
        64 * 1024 * 1024,
        "Bytes of change history (keys, values, previous values) kept for watchers, every"
        " backend (0: no byte bound).",
    )
    max_key_bytes: int = _option(512, "Longest accepted key, in UTF-8 bytes.")
    max_value_bytes: int = _option(1024 * 1024, "Largest accepted value, encoded, in bytes.")
    max_message_bytes: int = _option(4 * 1024 * 1024 + 65536, "Largest gRPC message, in bytes.")
    max_transaction_operations: int = _option(
        128, "Most comparisons plus operations per transaction."
    )
    tool_history_per_tool: int = _option(
        1000, "Ended executions kept per tool; older ones are removed (0: keep all)."
    )
    speech_session_idle_ttl: float = _option(
        86400.0,
        "Seconds without a change after which a speech session ends as idle_expired (0: never).",
    )
    max_watchers: int = _option(
        10_000, "Most server-streaming calls (watches) open at once in the server (0: no limit)."
    )
    max_streams_per_connection: int = _option(
        100, "Most server-streaming calls open at once on one client connection (0: no limit)."
    )
    max_concurrent_streams: int = _option(
        1000, "HTTP/2 limit of concurrent calls per connection (grpc.max_concurrent_streams)."
    )
    workers: int = _option(
        1, "Server processes sharing the port (SO_REUSEPORT); more than 1 needs --backend redis."
    )
    shutdown_grace: float = _option(5.0, "Seconds in-flight calls get to finish on SIGTERM.")
    event_loop: str = _option(
        "asyncio",
        "Event loop: asyncio, uvloop, or auto (uvloop where it is installed).",
        ("asyncio", "uvloop", "auto"),
    )
    log_level: str = _option("info", "Log level.", ("debug", "info", "warning", "error"))
    log_format: str = _option("text", "Log line format.", ("text", "json"))
    access_log: bool = _option(True, "Write one log line per call (statekeeper.access).")
    tls_cert: str = _option("", "PEM certificate chain of the server (enables TLS).")
    tls_key: str = _option("", "PEM private key of the server certificate.")
    tls_client_ca: str = _option(
        "", "PEM CA bundle: require client certificates signed by it (mutual TLS)."
    )
    auth_tokens_file: str = _option(
        "", "JSON file of bearer tokens -> namespaces and role (enables authentication)."
    )
    auth_exempt: str = _option(
        "/grpc.health.v1.Health/,/grpc.reflection.",
        "Comma-separated method prefixes that need no token when authentication is on.",
    )
    metrics_port: int = _option(-1, "Port of the Prometheus /metrics endpoint (-1: off, 0: any).")
    metrics_host: str = _option("", "Address of the metrics endpoint (default: --host).")

    @classmethod
    def parser_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add one ``--flag`` per setting to ``parser``; a flag left out is absent from the
        parsed namespace, so :meth:`from_namespace` can fall back to the environment."""
        for item in dataclasses.fields(cls):
            flag = "--" + item.name.replace("_", "-")
            help_text = (
                f"{item.metadata['help']} [env {_env_name(item.name)}; default {item.default!r}]"
            )
            if type(item.default) is bool:
                parser.add_argument(
                    flag,
                    dest=item.name,
                    action=argparse.BooleanOptionalAction,
                    default=argparse.SUPPRESS,
                    help=help_text,
                )
            else:
                parser.add_argument(
                    flag,
                    dest=item.name,
                    type=type(item.default),
                    default=argparse.SUPPRESS,
                    choices=item.metadata["choices"],
                    help=help_text,
                )

    @classmethod
    def from_namespace(
        cls, namespace: argparse.Namespace, environ: Mapping[str, str] = os.environ
    ) -> ServerConfig:
        """The configuration of parsed arguments: a flag given wins, then its ``STATEKEEPER_*``
        variable, then the default. Raises :class:`ConfigError` for a variable that does not
        parse (naming it and the form it needs)."""
        given = vars(namespace)
        values: dict[str, Any] = {}
        for item in dataclasses.fields(cls):
            if item.name in given:
                values[item.name] = given[item.name]
            elif _env_name(item.name) in environ:
                values[item.name] = _from_env(item, environ[_env_name(item.name)])
        return cls(**values)


class ConfigError(ValueError):
    """A ``STATEKEEPER_*`` variable whose value is not of the setting's form."""


def _env_name(name: str) -> str:
    return "STATEKEEPER_" + name.upper()


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _from_env(item: dataclasses.Field[Any], text: str) -> Any:
    """The value of setting ``item`` read from its environment variable's ``text``."""
    default, choices = item.default, item.metadata["choices"]
    if isinstance(default, bool):
        word = text.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        expected = "a boolean (1, true, yes, on or 0, false, no, off)"
    elif choices is not None:
        if text in choices:
            return text
        expected = "one of " + ", ".join(choices)
    elif isinstance(default, int | float):
        try:
            return type(default)(text)
        except ValueError:
            expected = "an integer" if isinstance(default, int) else "a number"
            expected += f" such as {default}"
    else:
        return text
    raise ConfigError(f"{_env_name(item.name)}={text!r} is not valid: expected {expected}")
