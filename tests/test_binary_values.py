"""Binary data in values (docs/values.md): Python bytes round-trip as bytes on every backend and
over gRPC, and the JSON form's {"$bytes": "<base64>"} object is read and written by the server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from statekeeper.errors import InvalidArgumentError, Reason, from_rpc_error
from statekeeper.state import StateConfig, StateManager
from statekeeper.v1 import common_pb2, state_service_pb2, state_service_pb2_grpc
from statekeeper_server.engine.domains.tools_records import parameters_hash

BINARY = {
    "raw": b"\x00\xff\x10 binary \x80",
    "empty": b"",
    "list": [b"one", 2, {"deep": [b"\x01\x02"]}],
    "text": "not bytes",
    "with_member": {"$bytes": "AP8=", "other": 1},
}


@pytest.fixture(params=["memory", "file-json", "file-msgpack", "redis", "grpc"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> StateConfig:
    """A StateConfig for each backend (embedded) and for a live server."""
    kind = str(request.param)
    if kind == "grpc":
        config = StateConfig(backend="grpc", address=request.getfixturevalue("address"))
    elif kind.startswith("file"):
        config = StateConfig(backend="file", file_path=str(tmp_path / f"store.{kind[5:]}"))
    elif kind == "redis":
        config = StateConfig(backend="redis", redis_url=request.getfixturevalue("redis_url"))
    else:
        config = StateConfig(backend="memory")
    return config


@pytest.fixture
async def manager(config: StateConfig) -> AsyncIterator[StateManager]:
    """A StateManager with ``config``."""
    async with StateManager(config) as instance:
        yield instance


async def test_bytes_round_trip_as_bytes_nested_anywhere(manager: StateManager) -> None:
    await manager.save("blob", BINARY)
    value = await manager.get("blob")
    assert value == BINARY
    assert type(value["raw"]) is bytes and type(value["list"][2]["deep"][0]) is bytes
    await manager.save("whole", b"\x00just bytes")
    assert await manager.get("whole") == b"\x00just bytes"
    merged = await manager.update("blob", {"raw": bytearray(b"new"), "text": None})
    assert merged["raw"] == b"new" and "text" not in merged
    assert (await manager.get("blob"))["raw"] == b"new"


async def test_bytes_survive_a_file_store_reopen(tmp_path: Path) -> None:
    for suffix in ("json", "msgpack"):
        config = StateConfig(backend="file", file_path=str(tmp_path / f"reopen.{suffix}"))
        async with StateManager(config) as manager:
            await manager.save("blob", BINARY)
        async with StateManager(config) as manager:
            assert await manager.get("blob") == BINARY


async def test_the_reserved_bytes_map_is_refused_and_changes_nothing(
    manager: StateManager,
) -> None:
    for bad in ({"$bytes": "AP8="}, {"a": [{"$bytes": b"x"}]}):
        with pytest.raises(InvalidArgumentError) as caught:
            await manager.save("reserved", bad)
        assert caught.value.reason == Reason.INVALID_VALUE
        assert "reserved for binary data" in caught.value.message
    assert await manager.get("reserved") is None


def _json_value(text: str) -> common_pb2.Value:
    return common_pb2.Value(json=json_format.Parse(text, struct_pb2.Value()))


async def test_json_form_reads_and_writes_the_bytes_object(address: str) -> None:
    async with (
        StateManager(StateConfig(backend="grpc", address=address)) as manager,
        grpc.aio.insecure_channel(address) as channel,
    ):
        stub = state_service_pb2_grpc.StateServiceStub(channel)
        text = '{"raw": {"$bytes": "AP8="}, "list": [{"$bytes": ""}], "n": 1}'
        await stub.Save(state_service_pb2.SaveRequest(key="j", value=_json_value(text)))
        assert await manager.get("j") == {"raw": b"\x00\xff", "list": [b""], "n": 1}
        await manager.save("p", {"raw": b"\x00\xff", "keep": {"$bytes": "x", "y": True}})
        got = await stub.Get(state_service_pb2.GetRequest(key="p"))
        printed = json.loads(json_format.MessageToJson(got.kv.value))
        assert printed == {"json": {"raw": {"$bytes": "AP8="}, "keep": {"$bytes": "x", "y": True}}}
        for bad in ('{"$bytes": "A"}', '{"$bytes": 7}', '{"$bytes": "AP8"}', '{"$bytes": "A P8="}'):
            with pytest.raises(grpc.RpcError) as caught:
                await stub.Save(state_service_pb2.SaveRequest(key="bad", value=_json_value(bad)))
            error = from_rpc_error(caught.value)
            assert isinstance(error, InvalidArgumentError)
            assert error.reason == Reason.INVALID_VALUE
        assert await manager.get("bad") is None


def test_parameters_hash_uses_the_json_form_of_bytes() -> None:
    assert parameters_hash({"b": b"\x00\xff"}) == parameters_hash({"b": {"$bytes": "AP8="}})
    assert parameters_hash({"b": b"\x00\xff"}) != parameters_hash({"b": "AP8="})
