"""A second, lower reference: the echo service on a bare ``grpc.aio`` server (no interceptors,
no health, no reflection, default options). The difference to :mod:`bench.echo_server` is the
cost of the product's server stack itself. ``python -m bench.bare_echo_server serve --port 0``.

The same server also answers StateService Save and Watch with no store at all
(:class:`BroadcastStateServicer`): the ceiling of the watch fan-out, driven by the very same
writer and subscribers as statekeeper's Watch.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import grpc
from statekeeper.v1 import common_pb2, state_service_pb2, state_service_pb2_grpc

from bench.echo_server import EchoServicer, echo_pb2_grpc


class BroadcastStateServicer(state_service_pb2_grpc.StateServiceServicer):
    """Save and Watch without a store: each Save becomes one prebuilt WatchResponse (the value
    as ``kv`` and as ``prev_kv``, the size statekeeper sends) that every open Watch whose
    pattern prefix matches the key yields as it is. Nothing is kept but the responses."""

    def __init__(self) -> None:
        self.responses: list[tuple[str, state_service_pb2.WatchResponse]] = []
        self.waiters: list[asyncio.Future[None]] = []

    async def Save(
        self, request: state_service_pb2.SaveRequest, context: object
    ) -> state_service_pb2.SaveResponse:
        """Broadcast the value to the watchers."""
        revision = len(self.responses) + 1
        kv = common_pb2.KeyValue(key=request.key, value=request.value, mod_revision=revision)
        event = state_service_pb2.Event(type=state_service_pb2.EVENT_TYPE_PUT, kv=kv, prev_kv=kv)
        response = state_service_pb2.WatchResponse(revision=revision, events=[event])
        self.responses.append((request.key, response))
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        return state_service_pb2.SaveResponse(
            kv=common_pb2.KeyValue(key=request.key, mod_revision=revision)
        )

    async def Watch(
        self, request: state_service_pb2.WatchRequest, context: object
    ) -> AsyncIterator[state_service_pb2.WatchResponse]:
        """Every later broadcast whose key starts with the pattern's literal prefix."""
        prefix = request.pattern.split("*", 1)[0]
        position = len(self.responses)
        yield state_service_pb2.WatchResponse(created=True, revision=position)
        while True:
            while position < len(self.responses):
                key, response = self.responses[position]
                position += 1
                if key.startswith(prefix):
                    yield response
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            await waiter


async def serve(host: str, port: int) -> None:
    """Serve until cancelled."""
    server = grpc.aio.server()
    echo_pb2_grpc.add_EchoServiceServicer_to_server(EchoServicer(), server)
    state_service_pb2_grpc.add_StateServiceServicer_to_server(BroadcastStateServicer(), server)
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
