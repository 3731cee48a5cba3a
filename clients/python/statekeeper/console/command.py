"""The console's command-line entry points: ``statekeeper ui`` and ``serve --ui-listen``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from statekeeper.transport import ConnectionOptions

#: Where the console listens unless told otherwise.
DEFAULT_LISTEN = "127.0.0.1:8080"
#: The connection's TLS options and the ``STATEKEEPER_CLIENT_TLS_*`` variables that set them.
_CLIENT_TLS = {
    "tls_ca_file": "CA",
    "tls_cert_file": "CERT",
    "tls_key_file": "KEY",
    "tls_server_name": "SERVER_NAME",
}


def add_ui_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``statekeeper ui`` beyond the client's connection options."""
    parser.add_argument(
        "--listen",
        default=os.environ.get("STATEKEEPER_UI_LISTEN", DEFAULT_LISTEN),
        help=f"HOST:PORT the console serves on (default {DEFAULT_LISTEN}) "
        "[env STATEKEEPER_UI_LISTEN]",
    )
    parser.add_argument(
        "--metrics-url", default=None, help="URL of the server's /metrics, linked from the page"
    )
    parser.add_argument(
        "--https-cert",
        default=os.environ.get("STATEKEEPER_UI_HTTPS_CERT"),
        help="PEM certificate chain: serve the console over HTTPS [env STATEKEEPER_UI_HTTPS_CERT]",
    )
    parser.add_argument(
        "--https-key",
        default=os.environ.get("STATEKEEPER_UI_HTTPS_KEY"),
        help="PEM private key of --https-cert [env STATEKEEPER_UI_HTTPS_KEY]",
    )


def run_ui(options: ConnectionOptions, args: argparse.Namespace) -> int:
    """Run ``statekeeper ui`` until interrupted; 2 with a one-line message when it cannot
    listen (a bad or taken address, an HTTPS certificate that does not load, or the console
    extra not installed)."""
    try:
        from statekeeper.console.app import run_console
    except ImportError as error:
        print(f"error: the console needs 'statekeeper[console]' ({error})", file=sys.stderr)
        return 2
    try:
        asyncio.run(
            run_console(
                options,
                args.listen,
                args.metrics_url,
                https_cert=args.https_cert,
                https_key=args.https_key,
            )
        )
    except (OSError, ValueError) as error:
        print(f"error: cannot serve the console on {args.listen}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def beside_server(config: Any, listen: str) -> Any:
    """The console for ``statekeeper serve --ui-listen``, connected to this server over its
    loopback port (``STATEKEEPER_TOKEN`` / ``STATEKEEPER_NAMESPACE`` as its credentials when
    authentication is on); call ``start()`` and ``stop()``. Beside a TLS server it serves
    HTTPS with the server's own certificate and key, and connects over TLS trusting
    ``STATEKEEPER_CLIENT_TLS_CA`` (with ``STATEKEEPER_CLIENT_TLS_CERT`` / ``_KEY`` /
    ``_SERVER_NAME`` as for any client). ValueError when it cannot be."""
    from statekeeper.console.app import ConsoleThread

    if config.port == 0:
        raise ValueError("--ui-listen needs a fixed --port (the console connects to it)")
    tls: dict[str, Any] = {  # the client TLS settings, named as for every client command
        option: os.environ.get(f"STATEKEEPER_CLIENT_TLS_{variable}")
        for option, variable in _CLIENT_TLS.items()
    }
    if config.tls_cert and not tls["tls_ca_file"]:
        raise ValueError(
            "--ui-listen beside a TLS server needs STATEKEEPER_CLIENT_TLS_CA (the CA of the "
            "server's certificate) for the console's connection"
        )
    host = config.host if config.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    options = ConnectionOptions(
        persistence="grpc",
        address=f"[{host}]:{config.port}" if ":" in host else f"{host}:{config.port}",
        token=os.environ.get("STATEKEEPER_TOKEN"),
        namespace=os.environ.get("STATEKEEPER_NAMESPACE"),
        **(tls if config.tls_cert else {}),
    )
    metrics = None
    if config.metrics_port > 0:
        metrics = f"http://{config.metrics_host or host}:{config.metrics_port}/metrics"
    try:
        return ConsoleThread(
            options,
            listen,
            metrics,
            https_cert=config.tls_cert or None,
            https_key=config.tls_key or None,
        )
    except OSError as error:
        raise ValueError(f"cannot serve the console on {listen}: {error}") from None
