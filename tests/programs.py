"""Running a Python program in a subprocess from an async test (the test's event loop keeps
running meanwhile, so in-process fixtures such as the ``server`` fixture go on serving)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path


async def run_program(path: Path, *args: str, cwd: Path) -> str:
    """Run ``python path *args`` in ``cwd``; returns its output (stdout and stderr), failing
    the test with that output on a non-zero exit."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(path),
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    text = output.decode()
    assert process.returncode == 0, text
    return text
