"""The documentation stays true: README.md and docs/*.md.

Every server setting and every error reason is in its table; every Python block runs to
completion against a live server (or is marked as a fragment and still compiles); every relative
link leads to a file; the README stays a front page and names the versions the build needs.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from statekeeper.errors import Reason
from statekeeper_server.config import ServerConfig

from tests.servers import ServerProcess, start_server_process

REPO = Path(__file__).parent.parent
DOCS = REPO / "docs"
#: Every page of the documentation.
PAGES = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
#: The addresses the pages use, replaced by the test's server and Redis.
DOCUMENTED_ADDRESSES = ("127.0.0.1:50051", "localhost:50051")
DOCUMENTED_REDIS = "redis://127.0.0.1:6379"
#: The line before a Python block that is part of a larger program and cannot run alone.
FRAGMENT = re.compile(r"<!-- fragment: .+ -->")
#: Seconds a documented block may take (a hung block fails instead of stalling the suite).
BLOCK_TIMEOUT = 120

_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced Python block of a page."""

    page: Path
    line: int
    code: str
    fragment: bool

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def python_blocks() -> list[Block]:
    """Every Python block of every page, in page order."""
    blocks = []
    for page in PAGES:
        text = page.read_text()
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            blocks.append(Block(page, line, match.group(1), bool(FRAGMENT.fullmatch(before))))
    return blocks


BLOCKS = python_blocks()


def test_every_server_setting_is_in_the_configuration_table() -> None:
    table = (DOCS / "configuration.md").read_text()
    for item in dataclasses.fields(ServerConfig):
        flag = "--" + item.name.replace("_", "-")
        env = "STATEKEEPER_" + item.name.upper()
        assert f"| `{flag}` | `{env}` |" in table, f"{flag} is missing from docs/configuration.md"


def test_every_error_reason_is_in_the_error_table() -> None:
    table = (DOCS / "errors.md").read_text()
    for reason in Reason:
        assert f"| `{reason.value}` |" in table, f"{reason.value} is missing from docs/errors.md"


@pytest.mark.parametrize("block", BLOCKS, ids=[block.name for block in BLOCKS])
def test_every_python_block_compiles(block: Block) -> None:
    # Fragments may await at top level, as in an async REPL.
    compile(block.code, block.name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


@pytest.fixture(scope="module")
def docs_server() -> Iterator[ServerProcess]:
    """The server the documented blocks talk to (the memory backend: nothing on disk)."""
    server = start_server_process("--backend", "memory", "--no-access-log")
    yield server
    server.terminate()


RUNNABLE = [block for block in BLOCKS if not block.fragment]


@pytest.mark.parametrize("block", RUNNABLE, ids=[block.name for block in RUNNABLE])
def test_every_python_block_runs_to_completion(
    block: Block, docs_server: ServerProcess, redis_url: str, tmp_path: Path
) -> None:
    code = block.code
    for address in DOCUMENTED_ADDRESSES:
        code = code.replace(address, docs_server.address)
    code = code.replace(DOCUMENTED_REDIS, redis_url.removesuffix("/0"))
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT,
    )
    assert done.returncode == 0, f"{block.name} failed:\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr


_LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


def test_every_relative_link_leads_to_a_file() -> None:
    for page in PAGES:
        for target, _ in _LINK.findall(page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_the_readme_is_a_front_page_that_links_every_page() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 150, "keep README.md a front page; move detail to docs/"
    for page in DOCS.glob("*.md"):
        assert f"(docs/{page.name})" in readme, f"README.md does not link docs/{page.name}"


def test_the_prerequisites_name_the_versions_the_build_needs() -> None:
    readme = (REPO / "README.md").read_text()
    python = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert f"Python {python.removeprefix('>=')} or newer" in readme
    go = re.search(r"^go (\d+\.\d+)", (REPO / "clients/go/go.mod").read_text(), re.MULTILINE)
    assert go and f"Go {go.group(1)} or newer" in readme
    node = json.loads((REPO / "clients/ts/package.json").read_text())["engines"]["node"]
    assert f"Node.js {node.removeprefix('>=')} or newer" in readme
    assert "sudo" in readme and "source .venv/bin/activate" in readme
