"""Child processes of async tests: started for a block and always reaped when it ends.

The test's event loop keeps running while a child runs, so in-process fixtures such as the
``server`` fixture go on serving. A child that outlived its test would leave an asyncio
subprocess transport behind whose clean-up (at a later garbage collection, in another test)
waits for that child, so every child is killed and awaited when its block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any

#: Seconds a killed child may take to be reaped.
REAP_TIMEOUT = 30.0


@contextlib.asynccontextmanager
async def child_process(*argv: str, **options: Any) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run ``argv`` (``options`` as for :func:`asyncio.create_subprocess_exec`) for the block;
    when the block ends, kill the child if it still runs and wait until it is gone."""
    process = await asyncio.create_subprocess_exec(*argv, **options)
    try:
        yield process
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        await asyncio.wait_for(process.wait(), REAP_TIMEOUT)


@contextlib.asynccontextmanager
async def child_processes(
    argvs: Iterable[Sequence[str]], **options: Any
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """Run each of ``argvs`` as a child for the block, each reaped as :func:`child_process`
    reaps one."""
    async with contextlib.AsyncExitStack() as children:
        yield [await children.enter_async_context(child_process(*a, **options)) for a in argvs]


async def run_program(path: Path, *args: str, cwd: Path) -> str:
    """Run ``python path *args`` in ``cwd``; returns its output (stdout and stderr), failing
    the test with that output on a non-zero exit."""
    async with child_process(
        sys.executable,
        str(path),
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    ) as process:
        output, _ = await process.communicate()
    text = output.decode()
    assert process.returncode == 0, text
    return text
