"""The ``statekeeper`` command: ``serve`` runs the server; the other sub-commands are clients.

Client sub-commands talk to ``--address`` (env ``STATEKEEPER_ADDRESS``, default
127.0.0.1:50051) and print JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from statekeeper.errors import StateKeeperError
from statekeeper.state import StateConfig, StateManager

from statekeeper_server.config import ServerConfig
from statekeeper_server.server import serve

ClientCommand = Callable[[StateManager, argparse.Namespace], Awaitable[Any]]


async def _get(manager: StateManager, args: argparse.Namespace) -> Any:
    entry = await manager.get_entry(args.key)
    if entry is None:
        raise SystemExit(f"key {args.key!r} not found")
    return {"key": entry.key, "value": entry.value, "mod_revision": entry.mod_revision}


async def _put(manager: StateManager, args: argparse.Namespace) -> Any:
    revision = await manager.save(args.key, json.loads(args.value), ttl=args.ttl)
    return {"key": args.key, "mod_revision": revision}


async def _delete(manager: StateManager, args: argparse.Namespace) -> Any:
    return {"key": args.key, "deleted": await manager.delete(args.key)}


async def _list(manager: StateManager, args: argparse.Namespace) -> Any:
    return await manager.list_keys(args.pattern)


async def _watch(manager: StateManager, args: argparse.Namespace) -> Any:
    async for change in manager.watch(args.pattern, args.start_revision):
        print(
            json.dumps(
                {
                    "type": change.type.value,
                    "key": change.key,
                    "revision": change.revision,
                    "value": change.new_value,
                }
            ),
            flush=True,
        )
    return None


async def _stats(manager: StateManager, args: argparse.Namespace) -> Any:
    return dataclasses.asdict(await manager.get_stats())


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
        "Print storage statistics: keys, bytes, revision, oldest revision, backend.",
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
    for name, (_, help_text, add_arguments) in CLIENT_COMMANDS.items():
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument(
            "--address",
            default=os.environ.get("STATEKEEPER_ADDRESS", "127.0.0.1:50051"),
            help="server address host:port [env STATEKEEPER_ADDRESS]",
        )
        add_arguments(sub)
    return parser


async def _run_client(command: ClientCommand, args: argparse.Namespace) -> int:
    async with StateManager(StateConfig(backend="grpc", address=args.address)) as manager:
        try:
            result = await command(manager, args)
        except StateKeeperError as error:
            print(f"error: {error.code.name} {error.reason}: {error.message}", file=sys.stderr)
            return 1
    if result is not None:
        print(json.dumps(result, indent=2))
    return 0


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``statekeeper`` console command."""
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        config = ServerConfig.from_namespace(args)
        logging.basicConfig(
            level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
        try:
            asyncio.run(serve(config))
        except StateKeeperError as error:  # e.g. the data directory is held by another server
            print(f"error: {error.message}", file=sys.stderr)
            raise SystemExit(2) from None
        return
    command = CLIENT_COMMANDS[args.command][0]
    try:
        code = asyncio.run(_run_client(command, args))
    except KeyboardInterrupt:
        code = 130
    raise SystemExit(code)
