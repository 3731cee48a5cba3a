"""A second, lower reference: the echo service on a bare ``grpc.aio`` server (no interceptors,
no health, no reflection, default options). The difference to :mod:`bench.echo_server` is the
cost of the product's server stack itself. ``python -m bench.bare_echo_server serve --port 0``.
"""

from __future__ import annotations

import argparse
import asyncio

import grpc

from bench.echo_server import EchoServicer, echo_pb2_grpc


async def serve(host: str, port: int) -> None:
    """Serve until cancelled."""
    server = grpc.aio.server()
    echo_pb2_grpc.add_EchoServiceServicer_to_server(EchoServicer(), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    print(f"statekeeper listening on {host}:{bound} (bare echo)", flush=True)
    await server.wait_for_termination()


def main() -> None:
    """Parse the few flags the harness passes and serve."""
    parser = argparse.ArgumentParser(prog="python -m bench.bare_echo_server")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
