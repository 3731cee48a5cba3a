"""Harness of the cross-language interoperability suite (driven by tests/test_interop.py).

Each case is implemented by the Go runner (``clients/go/cmd/interop``, built to
``build/interop/interop-go``) and the TypeScript runner (``clients/ts/src/interop.ts``, built to
``clients/ts/dist/interop.js``) with the same command line and the same output: one JSON
document per line on stdout. :func:`build_runners` builds both through ``make clients``, which
installs the Go modules and npm packages (``npm ci``) and rebuilds only what is out of date.

The runners are started with asyncio subprocesses, never blocking calls: the test server of
the ``server`` fixture runs on the test's own event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.programs import child_process

REPO = Path(__file__).resolve().parents[2]
GO_RUNNER = REPO / "build" / "interop" / "interop-go"
TS_RUNNER = REPO / "clients" / "ts" / "dist" / "interop.js"
#: The longest a runner may take for one case (a hung runner fails the test, never hangs it).
RUN_TIMEOUT = 120.0


def build_runners() -> None:
    """Install the client dependencies and build both runners (incremental, via make)."""
    subprocess.run(
        ["make", "--no-print-directory", "-s", "clients"],
        cwd=REPO,
        check=True,
        env={**os.environ, "MAKEFLAGS": ""},
    )


class RunnerError(AssertionError):
    """A runner exited with a non-zero status."""


@dataclass(frozen=True)
class Runner:
    """One language's interop runner."""

    language: str
    command: tuple[str, ...]
    #: Options added to every case (e.g. ``--json`` for the Go runner in JSON-form mode).
    options: tuple[str, ...] = ()

    async def run(self, case: str, address: str, *args: str) -> list[dict[str, Any]]:
        """Run ``case`` to completion and return its output lines, parsed."""
        async with child_process(
            *self.command,
            case,
            "--address",
            address,
            *self.options,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        ) as process:
            stdout, stderr = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
        if process.returncode != 0:
            raise RunnerError(
                f"{self.language} runner {case} {args} exited {process.returncode}:\n"
                f"{stderr.decode()}"
            )
        return [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]

    async def one(self, case: str, address: str, *args: str) -> dict[str, Any]:
        """Run ``case`` and return its single output line."""
        lines = await self.run(case, address, *args)
        assert len(lines) == 1, lines
        return lines[0]

    async def start(self, case: str, address: str, *args: str) -> RunningCase:
        """Start a long-running case (a watch) whose lines are read one by one."""
        process = await asyncio.create_subprocess_exec(
            *self.command,
            case,
            "--address",
            address,
            *self.options,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return RunningCase(self, case, process)


@dataclass
class RunningCase:
    """A runner process whose output is read line by line."""

    runner: Runner
    case: str
    process: asyncio.subprocess.Process

    async def line(self) -> dict[str, Any]:
        """The next output line, parsed (fails when the runner exits first)."""
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), RUN_TIMEOUT)
        if not raw:
            await self.process.wait()
            assert self.process.stderr is not None
            error = await self.process.stderr.read()
            raise RunnerError(
                f"{self.runner.language} {self.case} ended ({self.process.returncode}) "
                f"without output:\n{error.decode()}"
            )
        return dict(json.loads(raw))

    async def finish(self) -> int:
        """Wait for the runner to exit and return its exit code."""
        return await asyncio.wait_for(self.process.wait(), RUN_TIMEOUT)

    async def kill(self) -> None:
        """Stop the runner if it still runs."""
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


GO = Runner("go", (str(GO_RUNNER),))
GO_JSON = Runner("go-json", (str(GO_RUNNER),), ("--json",))
TS = Runner("ts", ("node", str(TS_RUNNER)))
RUNNERS = {"go": GO, "ts": TS}


def same(actual: Any, expected: Any, *, exact: bool = True, path: str = "$") -> None:
    """Assert equal documents; ``exact`` also requires the same int/float kinds everywhere."""
    if exact and type(actual) is not type(expected):
        raise AssertionError(f"{path}: {actual!r} is {type(actual).__name__}, want {expected!r}")
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), f"{path}: {actual!r}"
        for key in expected:
            same(actual[key], expected[key], exact=exact, path=f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{path}: {actual!r}"
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            same(a, e, exact=exact, path=f"{path}[{index}]")
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"
