"""Operations: the Prometheus endpoint, request ids, JSON access logs and the health command."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import urllib.request

import grpc
import pytest
from statekeeper.errors import ConflictError, InvalidArgumentError
from statekeeper.state import StateConfig, StateManager
from statekeeper.v1 import state_service_pb2 as pb
from statekeeper.v1 import state_service_pb2_grpc
from statekeeper_server.server import StatekeeperServer

from tests.servers import start_server_process

#: Every series docs/operations.md documents.
DOCUMENTED = [
    "statekeeper_requests_total",
    "statekeeper_request_duration_seconds_bucket",
    "statekeeper_request_duration_seconds_count",
    "statekeeper_request_duration_seconds_sum",
    "statekeeper_active_streams",
    "statekeeper_backend_operation_duration_seconds_bucket",
    "statekeeper_backend_operation_duration_seconds_count",
    "statekeeper_backend_operation_errors_total",
    "statekeeper_store_keys",
    "statekeeper_store_bytes",
    "statekeeper_store_revision",
    "statekeeper_store_oldest_revision",
]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        return str(response.read().decode())


def value(text: str, series: str, **labels: str) -> float:
    """The value of one sample (labels given must all match)."""
    for line in text.splitlines():
        if not line.startswith(series + "{") and not line.startswith(series + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {series} {labels}")


async def test_metrics_endpoint_exposes_the_documented_series(
    metrics_server: StatekeeperServer,
) -> None:
    address = f"127.0.0.1:{metrics_server.port}"
    async with StateManager(StateConfig(backend="grpc", address=address)) as client:
        first = await client.save("a", {"n": 1})
        await client.save("b", {"n": 2})
        assert await client.get("a") == {"n": 1}
        with pytest.raises(InvalidArgumentError):
            await client.save("", {"n": 0})
        with pytest.raises(ConflictError):
            await client.save("a", {"n": 3}, expected_revision=first + 100)
    async with grpc.aio.insecure_channel(address) as channel:
        watch = state_service_pb2_grpc.StateServiceStub(channel).Watch(pb.WatchRequest())
        assert (await anext(aiter(watch))).created
        assert metrics_server.metrics_port is not None
        text = await asyncio.to_thread(scrape, metrics_server.metrics_port)
        watch.cancel()
    for series in DOCUMENTED:
        assert re.search(rf"^{series}[{{ ]", text, re.MULTILINE), f"{series} missing"
    service = "statekeeper.v1.StateService"
    assert value(text, "statekeeper_requests_total", method="Save", code="OK") == 2
    assert value(text, "statekeeper_requests_total", method="Save", code="INVALID_ARGUMENT") == 1
    assert value(text, "statekeeper_requests_total", method="Save", code="ABORTED") == 1
    assert value(text, "statekeeper_requests_total", service=service, method="Get") == 1
    assert value(text, "statekeeper_active_streams", method="Watch") == 1
    assert value(text, "statekeeper_request_duration_seconds_count", method="Save") == 4
    backend_calls = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("statekeeper_backend_operation_duration_seconds_count{")
    )
    assert backend_calls >= 3
    assert value(text, "statekeeper_store_keys") >= 2
    assert value(text, "statekeeper_store_revision") >= 2


async def test_request_id_is_returned_and_logged_as_json() -> None:
    command = [sys.executable, "-m", "statekeeper_server", "serve", "--port", "0"]
    process = await asyncio.to_thread(
        subprocess.Popen,
        [*command, "--log-format", "json", "--backend", "memory"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        line = process.stdout.readline()
        match = re.search(r"listening on (\S+)", line)
        assert match, line
        async with grpc.aio.insecure_channel(match.group(1)) as channel:
            stub = state_service_pb2_grpc.StateServiceStub(channel)
            call = stub.ListKeys(pb.ListKeysRequest(), metadata=(("x-request-id", "req-123"),))
            await call
            trailing = dict(await call.trailing_metadata() or ())
            assert trailing["x-request-id"] == "req-123"
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.Get(pb.GetRequest(key=""))
            generated = dict(raised.value.trailing_metadata() or ())["x-request-id"]
            assert re.fullmatch(r"[0-9a-f]{32}", generated)
        records = []
        for text in process.stderr:
            if text.startswith("{"):
                records.append(json.loads(text))
            if any(r.get("request_id") == generated for r in records):
                break
        access = [r for r in records if r["logger"] == "statekeeper.access"]
        ours = next(r for r in access if r["request_id"] == "req-123")
        assert ours["method"] == "/statekeeper.v1.StateService/ListKeys"
        assert ours["code"] == "OK" and ours["level"] == "info"
        assert isinstance(ours["duration_ms"], float)
        failed = next(r for r in access if r["request_id"] == generated)
        assert failed["code"] == "INVALID_ARGUMENT"
    finally:
        process.terminate()
        process.wait(timeout=30)


async def test_health_command() -> None:
    server = start_server_process("--backend", "memory")
    try:
        env = {**os.environ, "STATEKEEPER_ADDRESS": server.address}
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "statekeeper_server", "health"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "SERVING"
    finally:
        assert server.terminate() == 0
    gone = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "statekeeper_server", "health", "--timeout", "2"],
        env={**os.environ, "STATEKEEPER_ADDRESS": server.address},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert gone.returncode == 1
    assert "unhealthy" in gone.stderr
