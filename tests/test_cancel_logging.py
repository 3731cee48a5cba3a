"""A client that cancels a stream is normal operation: the server logs it as one access line
with code CANCELLED and nothing else (no ERROR, no traceback), while real failures are still
logged and mapped as before."""

from __future__ import annotations

import asyncio
import logging
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from statekeeper.v1 import state_service_pb2 as pb
from statekeeper.v1 import state_service_pb2_grpc
from statekeeper_server.interceptors import CallInterceptor

WATCH = "/statekeeper.v1.StateService/Watch"
_ACCESS = re.compile(r" INFO statekeeper\.access (\S+) (\S+) .*request_id=(\S+)")

# A client process that opens a watch, says so once the stream is created, and then waits
# until it is killed.
_WATCHING_CLIENT = """
import asyncio, sys
import grpc
from statekeeper.v1 import state_service_pb2 as pb, state_service_pb2_grpc as rpc

async def main():
    channel = grpc.aio.insecure_channel(sys.argv[1])
    call = rpc.StateServiceStub(channel).Watch(
        pb.WatchRequest(pattern="*"), metadata=(("x-request-id", "killed-1"),)
    )
    print("created" if (await call.read()).created else "unexpected", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


class ServerLog:
    """A ``statekeeper serve`` subprocess whose stderr lines are collected by a thread."""

    def __init__(self) -> None:
        command = [sys.executable, "-m", "statekeeper_server", "serve", "--port", "0"]
        self.process = subprocess.Popen(
            [*command, "--backend", "memory", "--access-log", "--log-level", "info"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        match = re.search(r"listening on (\S+)", self.process.stdout.readline())
        assert match, "the server did not start"
        self.address = match.group(1)
        self.lines: list[str] = []
        self._fresh: queue.Queue[str | None] = queue.Queue()
        self._access: dict[str, tuple[str, str]] = {}
        self._reader = threading.Thread(target=self._read, args=(self.process.stderr,))
        self._reader.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line)
            self._fresh.put(line)
        self._fresh.put(None)

    async def access_line(self, request_id: str) -> tuple[str, str]:
        """Wait for the access log line of the call ``request_id``: (method, code)."""
        while request_id not in self._access:
            line = await asyncio.to_thread(self._fresh.get, True, 60)
            assert line is not None, "the server's stderr ended"
            match = _ACCESS.search(line)
            if match:
                self._access[match.group(3)] = (match.group(1), match.group(2))
        return self._access[request_id]

    def stop(self) -> str:
        """Stop the server gracefully and return everything it wrote to stderr."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        self._reader.join(timeout=30)
        return "".join(self.lines)


@pytest.fixture
def server_log() -> Iterator[ServerLog]:
    server = ServerLog()
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=30)


def _watch(stub: state_service_pb2_grpc.StateServiceStub, request_id: str) -> Any:
    return stub.Watch(pb.WatchRequest(pattern="*"), metadata=(("x-request-id", request_id),))


async def test_cancelled_watches_log_only_their_access_line(server_log: ServerLog) -> None:
    # 1. The client cancels the call.
    async with grpc.aio.insecure_channel(server_log.address) as channel:
        stub = state_service_pb2_grpc.StateServiceStub(channel)
        call = _watch(stub, "cancel-1")
        assert (await call.read()).created
        call.cancel()
        assert await server_log.access_line("cancel-1") == (WATCH, "CANCELLED")

    # 2. The client closes its channel while two watches are open.
    channel = grpc.aio.insecure_channel(server_log.address)
    stub = state_service_pb2_grpc.StateServiceStub(channel)
    calls = [_watch(stub, "close-1"), _watch(stub, "close-2")]
    for call in calls:
        assert (await call.read()).created
    await channel.close()
    assert await server_log.access_line("close-1") == (WATCH, "CANCELLED")
    assert await server_log.access_line("close-2") == (WATCH, "CANCELLED")

    # 3. The client process is killed while its watch is open.
    client = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, "-c", _WATCHING_CLIENT, server_log.address],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stdout is not None
        assert await asyncio.to_thread(client.stdout.readline) == "created\n"
    finally:
        client.kill()
        await asyncio.to_thread(client.wait, 30)
    assert await server_log.access_line("killed-1") == (WATCH, "CANCELLED")

    # Normal calls afterwards: one that succeeds and one that fails with a client error.
    async with grpc.aio.insecure_channel(server_log.address) as channel:
        stub = state_service_pb2_grpc.StateServiceStub(channel)
        await stub.GetStats(pb.GetStatsRequest(), metadata=(("x-request-id", "after-1"),))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Get(pb.GetRequest(key=""), metadata=(("x-request-id", "bad-1"),))
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (await server_log.access_line("after-1"))[1] == "OK"
    assert (await server_log.access_line("bad-1"))[1] == "INVALID_ARGUMENT"

    stderr = await asyncio.to_thread(server_log.stop)
    assert "Traceback" not in stderr
    assert "CancelledError" not in stderr
    assert " ERROR " not in stderr and " WARNING " not in stderr
    assert "never retrieved" not in stderr
    watch_lines = [line for line in stderr.splitlines() if f" {WATCH} " in line]
    assert len(watch_lines) == 4
    assert all(f" {WATCH} CANCELLED " in line for line in watch_lines)


class FakeContext:
    """The parts of a grpc.aio servicer context the interceptor uses."""

    def __init__(self) -> None:
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("x-request-id", "fake-1"),)

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    def set_trailing_metadata(self, metadata: object) -> None:
        pass

    def code(self) -> None:
        return None

    async def abort(self, code: grpc.StatusCode, details: str, trailing: object) -> None:
        self.aborted = (code, details)
        raise grpc.aio.AbortError()


def _wrapped_stream(behavior: Any) -> Any:
    handler = grpc.unary_stream_rpc_method_handler(behavior)
    interceptor = CallInterceptor(access_log=True)
    return interceptor._wrap(handler, WATCH).unary_stream


def _records(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == name]


async def test_interceptor_cancelled_stream_is_not_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    started = asyncio.Event()

    async def behavior(request: object, context: object) -> AsyncIterator[int]:
        yield 1
        started.set()
        await asyncio.Event().wait()
        yield 2

    context = FakeContext()
    caplog.set_level(logging.DEBUG)

    async def consume() -> None:
        async for _ in _wrapped_stream(behavior)(pb.WatchRequest(), context):
            pass

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert context.aborted is None
    assert [r.levelno for r in caplog.records if r.levelno >= logging.WARNING] == []
    (access,) = _records(caplog, "statekeeper.access")
    assert access.levelno == logging.INFO and access.code == "CANCELLED"  # type: ignore[attr-defined]


async def test_interceptor_real_stream_failure_is_logged_and_internal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def behavior(request: object, context: object) -> AsyncIterator[int]:
        yield 1
        raise RuntimeError("broken invariant")

    context = FakeContext()
    caplog.set_level(logging.INFO)
    with pytest.raises(grpc.aio.AbortError):
        async for _ in _wrapped_stream(behavior)(pb.WatchRequest(), context):
            pass
    assert context.aborted is not None and context.aborted[0] == grpc.StatusCode.INTERNAL
    assert "broken invariant" not in context.aborted[1]
    (error,) = _records(caplog, "statekeeper.server")
    assert error.levelno == logging.ERROR
    assert error.getMessage() == f"unexpected error in {WATCH}"
    assert error.exc_info is not None and isinstance(error.exc_info[1], RuntimeError)
    (access,) = _records(caplog, "statekeeper.access")
    assert access.code == "INTERNAL"  # type: ignore[attr-defined]
