"""The ceiling: ``statekeeper serve`` with one extra no-op service, for the benchmark only.

``python -m bench.echo_server serve --port 0 ...`` runs the product's own ``serve`` (same
grpc.aio server, options, call wrapper, health and reflection) and adds ``EchoService``, whose
handler returns the request's payload and does nothing else. The echo service joins the
product's service list in this process only.
"""

from __future__ import annotations

import sys
from typing import Any

from bench.stubs import load

echo_pb2, echo_pb2_grpc = load("bench_echo")


class EchoServicer(echo_pb2_grpc.EchoServiceServicer):  # type: ignore[misc,name-defined]
    """Answers every request with its payload."""

    async def Echo(self, request: Any, context: Any) -> Any:
        """Return the payload unchanged."""
        return echo_pb2.EchoResponse(payload=request.payload)


def _install() -> None:
    """Register EchoService in the product's service list of this process, so that it is
    served like every product service (same registration, call wrapper, health, reflection)."""
    from statekeeper_server.services import SERVICES, ServiceSpec

    name = echo_pb2.DESCRIPTOR.services_by_name["EchoService"].full_name
    if all(spec.name != name for spec in SERVICES):
        SERVICES.append(
            ServiceSpec(
                name, lambda core: EchoServicer(), echo_pb2_grpc.add_EchoServiceServicer_to_server
            )
        )


def main(argv: list[str] | None = None) -> None:
    """Run ``statekeeper`` with the echo service added."""
    _install()
    from statekeeper_server.cli import main as statekeeper_main

    statekeeper_main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
