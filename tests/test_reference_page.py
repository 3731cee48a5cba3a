"""The reference page's Python blocks, in page order, run as ONE program to its end (issue 13):
embedded on memory and on Redis, and remote; each await-block in its own ``asyncio.run`` after
the managers were built at module level (see tests/reference_page.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.programs import run_program
from tests.reference_page import page_blocks, page_program

#: What the page's log lines promise, in page order (regular expressions).
PROMISED = [
    r"Status: running",
    r"Snapshot: \d{4}-\d\d-\d\d .* - \{'version': '1\.0', 'task_count': 42\}",
    r"Agent recovered successfully",
    r"Progress: 1/10",
    r"Status: WorkflowStatus\.PAUSED",
    r"researcher: working",
    r"writer: idle",
    r"Pending: 0",
    r"In Progress: 0",
    r"Completed: 1",
    r"Progress: 450/1000",
    r"Failed: 5",
    r"confluence_docs: (SyncStatus\.SYNCING|syncing)",
    r"Total Documents: \d+",
    r"Total Embeddings: \d+",
    r"Last Updated: \d{4}-.*",
    r"Storage Size: [\d.]+MB",
    r"Using cached result",
    r"Total Executions: 1",
    r"Success Rate: 100\.00%",
    r"Avg Duration: 1500\.0ms",
    r"Cache Hit Rate: 100\.00%",
    r"Error Rate: 0\.00%",
    r"Progress: 60%",
    r"Interim: Hello, I would like to\.\.\.",
    r"Agent is currently speaking\.\.\.",
    r"the page ran to its end",
]


def test_the_page_has_every_block() -> None:
    from tests.reference_page import PAGE

    blocks = page_blocks(PAGE.read_text())
    assert len(blocks) == 27
    assert blocks[0].startswith("from agenticaiframework.state import (")
    assert "if recovered:" in blocks[6]  # a block continues past its blank lines
    assert blocks[-1].rstrip().endswith("# Best for: Production, multi-instance")


@pytest.mark.parametrize("mode", ["memory", "redis", "grpc"])
async def test_the_page_runs_as_one_program(
    mode: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if mode == "redis":
        program = page_program(mode, redis_url=request.getfixturevalue("redis_url"))
    elif mode == "grpc":
        (server,) = request.getfixturevalue("spawn_servers")(1, "--backend", "memory")
        program = page_program(mode, address=server.address)
    else:
        program = page_program(mode)
    path = tmp_path / "page_program.py"
    path.write_text(program)
    text = await run_program(path, cwd=tmp_path)
    for trouble in ("Traceback", "Task was destroyed", "RuntimeWarning", "Exception ignored"):
        assert trouble not in text, text
    lines = text.splitlines()
    position = 0
    for promise in PROMISED:
        found = next(
            (i for i in range(position, len(lines)) if re.fullmatch(promise, lines[i])), None
        )
        assert found is not None, f"{promise!r} not printed in order:\n{text}"
        position = found + 1
