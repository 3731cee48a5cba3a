"""The ``statekeeper`` command: ``serve`` runs the server; the other sub-commands are clients.

Client sub-commands talk to ``--address`` (env ``STATEKEEPER_ADDRESS``, default
127.0.0.1:50051) and print JSON; ``--token`` (env ``STATEKEEPER_TOKEN``), ``--namespace`` and
the ``--tls-*`` options are the client's credentials. ``statekeeper health`` exits 0 when the
server reports SERVING (the container image's HEALTHCHECK).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from statekeeper import values
from statekeeper.console.command import add_ui_arguments, beside_server, run_ui
from statekeeper.errors import Reason, StateKeeperError
from statekeeper.state import StateConfig, StateManager
from statekeeper.transport import open_channel

from statekeeper_server.config import ConfigError, ServerConfig
from statekeeper_server.observability import configure_logging
from statekeeper_server.server import StatekeeperServer, loop_name, run_loop, settle_heap
from statekeeper_server.workers import Supervisor, check_workers

log = logging.getLogger("statekeeper.server")

ClientCommand = Callable[[StateManager, argparse.Namespace], Awaitable[Any]]


async def _get(manager: StateManager, args: argparse.Namespace) -> Any:
    entry = await manager.get_entry(args.key)
    if entry is None:
        raise SystemExit(f"key {args.key!r} not found")
    return {"key": entry.key, "value": entry.value, "mod_revision": entry.mod_revision}


async def _put(manager: StateManager, args: argparse.Namespace) -> Any:
    try:
        document = json.loads(args.value, object_hook=values.json_text_object)
    except json.JSONDecodeError as error:
        raise SystemExit(
            f"error: the value {args.value!r} is not valid JSON ({error}); quote it for the "
            f"""shell, and a string needs JSON quotes too: '{{"a": 1}}', '"text"', '3'"""
        ) from None
    revision = await manager.save(args.key, document, ttl=args.ttl)
    return {"key": args.key, "mod_revision": revision}


async def _delete(manager: StateManager, args: argparse.Namespace) -> Any:
    return {"key": args.key, "deleted": await manager.delete(args.key)}


async def _list(manager: StateManager, args: argparse.Namespace) -> Any:
    return await manager.list_keys(args.pattern)


async def _watch(manager: StateManager, args: argparse.Namespace) -> Any:
    await _wait_for_server(args)
    async for change in manager.watch(args.pattern, args.start_revision):
        print(
            json.dumps(
                {
                    "type": change.type.value,
                    "key": change.key,
                    "revision": change.revision,
                    "value": change.new_value,
                },
                default=values.json_text_default,
            ),
            flush=True,
        )
    return None


async def _stats(manager: StateManager, args: argparse.Namespace) -> Any:
    stats = await manager.get_stats()
    return {
        "user_keys": stats.user_keys,  # what `statekeeper list` shows
        "stored_records": stats.keys,  # those plus every manager's records, all namespaces
        "bytes": stats.bytes,
        "revision": stats.revision,
        "oldest_revision": stats.oldest_revision,
        "backend": stats.backend,
    }


CLIENT_COMMANDS: dict[str, tuple[ClientCommand, str, Callable[[argparse.ArgumentParser], Any]]] = {
    "get": (_get, "Print a key's value.", lambda p: p.add_argument("key")),
    "put": (
        _put,
        "Save a JSON value under a key.",
        lambda p: (
            p.add_argument("key"),
            p.add_argument("value", help="the value as JSON"),
            p.add_argument("--ttl", type=float, default=None, help="seconds until expiry"),
        ),
    ),
    "delete": (_delete, "Delete a key.", lambda p: p.add_argument("key")),
    "list": (
        _list,
        "List keys matching a glob.",
        lambda p: p.add_argument("pattern", nargs="?", default="*"),
    ),
    "stats": (
        _stats,
        "Print storage statistics: your keys, all stored records, bytes, revisions, backend.",
        lambda p: None,
    ),
    "watch": (
        _watch,
        "Print changes of keys matching a glob, one JSON line each.",
        lambda p: (
            p.add_argument("pattern", nargs="?", default="*"),
            p.add_argument("--start-revision", type=int, default=0),
        ),
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``statekeeper`` command."""
    parser = argparse.ArgumentParser(prog="statekeeper", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="Run the statekeeper gRPC server.")
    ServerConfig.parser_arguments(serve_parser)
    serve_parser.add_argument(
        "--ui-listen", default=None, help="also serve the web console on HOST:PORT (see 'ui')"
    )
    for name, (_, help_text, add_arguments) in CLIENT_COMMANDS.items():
        sub = commands.add_parser(name, help=help_text)
        _client_arguments(sub)
        add_arguments(sub)
    ui_parser = commands.add_parser("ui", help="Serve the live web console of a server.")
    _client_arguments(ui_parser)
    add_ui_arguments(ui_parser)
    health_parser = commands.add_parser(
        "health", help="Exit 0 when the server (or --service) reports SERVING, else 1."
    )
    _client_arguments(health_parser)
    health_parser.add_argument("--service", default="", help="service name ('' = the server)")
    health_parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait")
    return parser


def _client_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument(
        "--address",
        default=env("STATEKEEPER_ADDRESS", "127.0.0.1:50051"),
        help="server address host:port [env STATEKEEPER_ADDRESS]",
    )
    parser.add_argument(
        "--token", default=env("STATEKEEPER_TOKEN"), help="bearer token [env STATEKEEPER_TOKEN]"
    )
    parser.add_argument(
        "--namespace",
        default=env("STATEKEEPER_NAMESPACE"),
        help="namespace of the token to use [env STATEKEEPER_NAMESPACE]",
    )
    parser.add_argument(
        "--tls",
        action=argparse.BooleanOptionalAction,
        default=bool(env("STATEKEEPER_TLS")),
        help="use TLS (implied by the other --tls-* options) [env STATEKEEPER_TLS]",
    )
    for flag, what in (
        ("ca", "CA bundle that signed the server certificate"),
        ("cert", "client certificate (mutual TLS)"),
        ("key", "client private key (mutual TLS)"),
        ("server-name", "name expected in the server certificate"),
    ):
        variable = "STATEKEEPER_CLIENT_TLS_" + flag.upper().replace("-", "_")
        parser.add_argument(f"--tls-{flag}", default=env(variable), help=f"{what} [env {variable}]")


def client_config(args: argparse.Namespace) -> StateConfig:
    """The StateConfig of a client sub-command's arguments."""
    return StateConfig(
        backend="grpc",
        address=args.address,
        tls=args.tls,
        tls_ca_file=args.tls_ca,
        tls_cert_file=args.tls_cert,
        tls_key_file=args.tls_key,
        tls_server_name=args.tls_server_name,
        token=args.token,
        namespace=args.namespace,
    )


async def _check_health(args: argparse.Namespace, service: str, timeout: float) -> int:
    """The server's health status of ``service`` (a ``HealthCheckResponse.ServingStatus``)."""
    channel = open_channel(client_config(args).connection())
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service=service)
        response = await stub.Check(request, timeout=timeout)
        return int(response.status)
    finally:
        await channel.close()


async def _health(args: argparse.Namespace) -> int:
    try:
        status = await _check_health(args, args.service, args.timeout)
    except grpc.RpcError as error:
        code: grpc.StatusCode = error.code()  # type: ignore[attr-defined]
        if code == grpc.StatusCode.NOT_FOUND:
            print(
                f"unhealthy: the server at {args.address} has no service {args.service!r} "
                "(give a full service name such as statekeeper.v1.StateService, or leave "
                "--service out for the server itself)",
                file=sys.stderr,
            )
        else:
            details = error.details()  # type: ignore[attr-defined]
            print(f"unhealthy: {args.address}: {code.name} {details}", file=sys.stderr)
        return 1
    print(health_pb2.HealthCheckResponse.ServingStatus.Name(status))
    return 0 if status == health_pb2.HealthCheckResponse.SERVING else 1


#: Seconds between attempts to reach a server that is not up yet: first, then at most.
FIRST_RETRY_DELAY, MAX_RETRY_DELAY = 0.2, 5.0


async def _wait_for_server(args: argparse.Namespace) -> None:
    """Return once the server at ``--address`` answers; until then say on stderr that this
    command waits for it, and retry with exponential backoff (Ctrl-C ends the wait)."""
    delay, waiting = FIRST_RETRY_DELAY, False
    while True:
        try:
            await _check_health(args, "", timeout=max(delay, 1.0))
            break
        except grpc.RpcError as error:
            code = error.code()  # type: ignore[attr-defined]
            if code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                break  # it answered (e.g. health needs a token): the command itself reports
        if not waiting:
            print(
                f"waiting for the statekeeper server at {args.address} (Ctrl-C to stop)",
                file=sys.stderr,
                flush=True,
            )
            waiting = True
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_RETRY_DELAY)
    if waiting:
        print(f"connected to {args.address}", file=sys.stderr, flush=True)


async def _run_client(command: ClientCommand, args: argparse.Namespace) -> int:
    async with StateManager(client_config(args)) as manager:
        try:
            result = await command(manager, args)
        except StateKeeperError as error:
            if error.reason == Reason.UNAVAILABLE:  # not BACKEND_UNAVAILABLE: no server there
                print(
                    f"error: no statekeeper server answered at {args.address} (start one with "
                    f"'make run' or 'statekeeper serve', or pass --address): {error.message}",
                    file=sys.stderr,
                )
            else:
                print(f"error: {error.code.name} {error.reason}: {error.message}", file=sys.stderr)
            return 1
    if result is not None:
        print(json.dumps(result, indent=2, default=values.json_text_default))
    return 0


async def serve(config: ServerConfig) -> None:
    """Run a server (and its ``--workers``) until SIGTERM or SIGINT, then shut down gracefully."""
    check_workers(config)
    server = StatekeeperServer(config)
    port = await server.start()
    settle_heap()
    reports = [{"metrics_port": server.metrics_port}]
    supervisor = Supervisor(config, port) if config.workers > 1 else None
    if supervisor is not None:
        try:
            reports += await supervisor.start()
        except BaseException:
            await asyncio.gather(supervisor.stop(), server.stop())
            raise
    workers = f", {config.workers} workers" if supervisor is not None else ""
    print(
        f"statekeeper listening on {config.host}:{port} (backend {config.backend}{workers}, "
        f"event loop {loop_name()})"
    )
    for report in reports:
        if report["metrics_port"] is not None:
            host = config.metrics_host or config.host
            print(f"statekeeper metrics on http://{host}:{report['metrics_port']}/metrics")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("shutting down")
    if supervisor is not None:
        await asyncio.gather(supervisor.stop(), server.stop())
    else:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``statekeeper`` console command."""
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        try:
            config = ServerConfig.from_namespace(args)
        except ConfigError as error:  # a STATEKEEPER_* variable that does not parse
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2) from None
        configure_logging(config.log_level, config.log_format)
        console = None
        if args.ui_listen:
            try:
                console = beside_server(config, args.ui_listen)
            except ValueError as error:
                raise SystemExit(f"error: {error}") from None
            console.start()
        try:
            run_loop(serve(config), config.event_loop)
        except StateKeeperError as error:  # the data directory is held, the port is in use, ...
            print(f"error: {error.message}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            raise SystemExit(130) from None
        finally:
            if console is not None:
                console.stop()
        return
    if args.command == "ui":
        raise SystemExit(run_ui(client_config(args).connection(), args))
    if args.command == "health":
        raise SystemExit(asyncio.run(_health(args)))
    command = CLIENT_COMMANDS[args.command][0]
    try:
        code = asyncio.run(_run_client(command, args))
    except KeyboardInterrupt:
        code = 130
    raise SystemExit(code)
