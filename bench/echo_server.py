"""The ceiling: ``statekeeper serve`` with one extra no-op service, for the benchmark only.

``python -m bench.echo_server serve --port 0 ...`` runs the product's own ``serve`` (same
grpc.aio server, options, interceptors, health and reflection) and adds ``EchoService``, whose
handler returns the request's payload and does nothing else. The echo service is added by
wrapping ``grpc.aio.server`` in this process only; it is not in the product's service list.
"""

from __future__ import annotations

import sys
from typing import Any

import grpc

from bench.stubs import load

echo_pb2, echo_pb2_grpc = load("bench_echo")


class EchoServicer(echo_pb2_grpc.EchoServiceServicer):  # type: ignore[misc,name-defined]
    """Answers every request with its payload."""

    async def Echo(self, request: Any, context: Any) -> Any:
        """Return the payload unchanged."""
        return echo_pb2.EchoResponse(payload=request.payload)


def _install() -> None:
    real_server = grpc.aio.server

    def server_with_echo(*args: Any, **kwargs: Any) -> Any:
        server = real_server(*args, **kwargs)
        echo_pb2_grpc.add_EchoServiceServicer_to_server(EchoServicer(), server)
        return server

    grpc.aio.server = server_with_echo  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> None:
    """Run ``statekeeper`` with the echo service added."""
    _install()
    from statekeeper_server.cli import main as statekeeper_main

    statekeeper_main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
