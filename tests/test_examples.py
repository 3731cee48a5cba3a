"""The Go and TypeScript examples run to their end against a live server, and without one
say on stderr that they wait for it, then end with a clear error at their deadline."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from tests.processes import free_port

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def go_example(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The command of the Go example (built once for this module)."""
    binary = tmp_path_factory.mktemp("go-example") / "basic"
    subprocess.run(
        ["go", "build", "-o", str(binary), "./examples/basic"],
        cwd=REPO / "clients/go",
        check=True,
        timeout=600,
    )
    return [str(binary), "--address"]


@pytest.fixture(scope="module")
def ts_example() -> list[str]:
    """The command of the TypeScript example (built into dist/ by ``make clients``)."""
    return ["node", str(REPO / "clients/ts/dist/examples/basic.js")]


@pytest.fixture(params=["go", "ts"])
def example(request: pytest.FixtureRequest) -> list[str]:
    return list(request.getfixturevalue(f"{request.param}_example"))


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


async def test_the_example_runs_against_a_live_server(example: list[str], address: str) -> None:
    done = await asyncio.to_thread(run, [*example, address])
    assert done.returncode == 0, done.stderr
    assert "conflict detected: reason REVISION_CONFLICT" in done.stdout
    assert "watched: " in done.stdout and "example/agent" in done.stdout


def test_without_a_server_the_example_waits_then_ends_clearly(example: list[str]) -> None:
    address = f"127.0.0.1:{free_port()}"
    done = run([*example, address])
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith(f"waiting for the statekeeper server at {address} (up to 10")
    assert f"no statekeeper server answered at {address} within 10" in lines[-1]
    assert len(lines) == 2, done.stderr
