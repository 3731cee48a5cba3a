"""The grpcurl commands of docs/grpcurl.md work as written against a live server.

The commands are read from the fenced block after the ``tested by tests/test_grpcurl.py``
marker in docs/grpcurl.md, the documented address ``localhost:50051`` is replaced by the test
server's, and each command runs with the pinned grpcurl that ``make tools`` installs.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from statekeeper.state import StateConfig, StateManager
from statekeeper_server.services import SERVICES

from tests.programs import child_process

REPO = Path(__file__).resolve().parent.parent
TOOLS = REPO / ".tools" / "bin"
MARKER = "<!-- tested by tests/test_grpcurl.py"
DOCUMENTED_ADDRESS = "localhost:50051"
TIMEOUT = 120.0


def readme_commands() -> list[str]:
    """The commands of the tested grpcurl block of docs/grpcurl.md, one per line."""
    text = (REPO / "docs" / "grpcurl.md").read_text()
    start = text.index(MARKER)
    block = re.search(r"```sh\n(.*?)```", text[start:], re.DOTALL)
    assert block is not None, "no ```sh block after the grpcurl marker"
    return [line for line in block.group(1).splitlines() if line.strip()]


def json_documents(text: str) -> list[dict[str, Any]]:
    """The JSON objects grpcurl printed one after another."""
    decoder = json.JSONDecoder()
    documents, position = [], 0
    text = text.strip()
    while position < len(text):
        document, end = decoder.raw_decode(text, position)
        documents.append(document)
        position = end
        while position < len(text) and text[position].isspace():
            position += 1
    return documents


@pytest.fixture(scope="session")
def grpcurl_env() -> dict[str, str]:
    """The environment with the pinned grpcurl first on PATH (installed when missing)."""
    subprocess.run(["make", "--no-print-directory", "-s", "tools"], cwd=REPO, check=True)
    return {**os.environ, "PATH": f"{TOOLS}{os.pathsep}{os.environ['PATH']}"}


async def run(argv: list[str], env: dict[str, str]) -> str:
    """Run a command that ends by itself; return its stdout (fails on a non-zero exit)."""
    async with child_process(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    ) as process:
        stdout, stderr = await asyncio.wait_for(process.communicate(), TIMEOUT)
    assert process.returncode == 0, f"{shlex.join(argv)} failed:\n{stderr.decode()}"
    return stdout.decode()


async def follow_until(argv: list[str], env: dict[str, str], needle: str) -> str:
    """Run a never-ending stream command until ``needle`` and the object holding it are out."""
    async with child_process(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    ) as process:
        assert process.stdout is not None
        output = ""
        while True:
            line = await asyncio.wait_for(process.stdout.readline(), TIMEOUT)
            assert line, f"{shlex.join(argv)} ended before printing {needle}"
            output += line.decode()
            if needle in output and line.rstrip() == b"}":
                return output


async def test_readme_grpcurl_commands(address: str, grpcurl_env: dict[str, str]) -> None:
    commands = readme_commands()
    # The last word of each command: what it lists, describes or calls.
    assert [shlex.split(command)[-1] for command in commands] == [
        "list",
        "statekeeper.v1.StateService.Save",
        "statekeeper.v1.StateService/Save",
        "statekeeper.v1.StateService/Get",
        "statekeeper.v1.StateService/Watch",
        "statekeeper.v1.SpeechService/CreateSession",
        "statekeeper.v1.SpeechService/UpdateSttState",
        "statekeeper.v1.SpeechService/EndSession",
        "statekeeper.v1.SpeechService/WatchSession",
    ]
    outputs: dict[str, str] = {}
    for command in commands:
        assert command.startswith("grpcurl ") and DOCUMENTED_ADDRESS in command
        argv = [address if arg == DOCUMENTED_ADDRESS else arg for arg in shlex.split(command)]
        method = argv[-1]
        if method.endswith("StateService/Watch"):
            outputs[method] = await follow_until(argv, grpcurl_env, "EVENT_TYPE_PUT")
        else:
            outputs[method] = await run(argv, grpcurl_env)

    listed = outputs["list"].split()
    for spec in SERVICES:
        assert spec.name in listed
    assert "grpc.health.v1.Health" in listed

    described = outputs["statekeeper.v1.StateService.Save"]
    assert "statekeeper.v1.StateService.Save is a method" in described
    assert "rpc Save ( .statekeeper.v1.SaveRequest ) returns ( .statekeeper.v1.SaveResponse )" in (
        described
    )

    (saved,) = json_documents(outputs["statekeeper.v1.StateService/Save"])
    assert saved["kv"]["key"] == "agents/alice" and int(saved["kv"]["mod_revision"]) >= 1
    (got,) = json_documents(outputs["statekeeper.v1.StateService/Get"])
    assert got["kv"]["value"] == {"json": {"count": 3, "ratio": 0.5}}
    # The JSON written by grpcurl reads in Python with an int count and a float ratio.
    async with StateManager(StateConfig(backend="grpc", address=address)) as manager:
        value = await manager.get("agents/alice")
    assert value == {"count": 3, "ratio": 0.5} and type(value["count"]) is int

    watched = json_documents(outputs["statekeeper.v1.StateService/Watch"])
    assert watched[0]["created"] is True
    (event,) = watched[1]["events"]
    assert event["type"] == "EVENT_TYPE_PUT" and event["kv"]["key"] == "agents/alice"
    assert event["kv"]["value"] == {"json": {"count": 3, "ratio": 0.5}}

    (created,) = json_documents(outputs["statekeeper.v1.SpeechService/CreateSession"])
    assert created["session"]["status"] == "AUDIO_SESSION_STATUS_INITIALIZING"
    (updated,) = json_documents(outputs["statekeeper.v1.SpeechService/UpdateSttState"])
    assert updated["stt_state"]["interim_transcript"] == "hello"
    (ended,) = json_documents(outputs["statekeeper.v1.SpeechService/EndSession"])

    followed = json_documents(outputs["statekeeper.v1.SpeechService/WatchSession"])
    assert "started" in followed[0]
    events = [message["event"] for message in followed[1:]]
    assert [int(e["sequence"]) for e in events] == [1, 2, int(ended["sequence"])]
    assert "created" in events[0]
    assert events[1]["stt_state"]["interim_transcript"] == "hello"
    assert events[2]["ended"]["reason"] == "caller hung up"


async def test_bytes_and_range_in_the_json_form(address: str, grpcurl_env: dict[str, str]) -> None:
    """grpcurl writes bytes as {"$bytes": base64}, Python reads bytes, and Range (JSON form)
    returns them in the same shape, page by page (docs/values.md, docs/range.md)."""

    def call(method: str, body: dict[str, Any]) -> list[str]:
        return ["grpcurl", "-plaintext", "-d", json.dumps(body), address, method]

    for name in ("a", "b", "c"):
        value = {"json": {"name": name, "raw": {"$bytes": "AP8="}}}
        await run(
            call("statekeeper.v1.StateService/Save", {"key": f"g/{name}", "value": value}),
            grpcurl_env,
        )
    async with StateManager(StateConfig(backend="grpc", address=address)) as manager:
        assert await manager.get("g/b") == {"name": "b", "raw": b"\x00\xff"}
    request = {"prefix": "g/", "reverse": True, "page_size": 2}
    (first,) = json_documents(
        await run(call("statekeeper.v1.StateService/Range", request), grpcurl_env)
    )
    assert [kv["key"] for kv in first["kvs"]] == ["g/c", "g/b"]
    assert first["kvs"][0]["value"] == {"json": {"name": "c", "raw": {"$bytes": "AP8="}}}
    request["page_token"] = first["next_page_token"]
    (second,) = json_documents(
        await run(call("statekeeper.v1.StateService/Range", request), grpcurl_env)
    )
    assert [kv["key"] for kv in second["kvs"]] == ["g/a"] and "next_page_token" not in second
