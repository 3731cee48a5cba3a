"""The reference page (``reference-api.txt``) as one program: its Python blocks in page order.

:func:`page_blocks` finds the blocks (the lines after each ``Python`` marker, up to the prose
that follows); :func:`page_program` joins them into one program for a mode. A block without
``await`` runs at module level, before any event loop exists; a block with ``await`` runs in
its own ``asyncio.run`` (its names stay global), so the managers the page builds in one block
are used in the loops of the next ones, as a reader pasting the blocks would.

The only edits: the import line (``agenticaiframework.state`` -> ``statekeeper.state``) and
where state lives: ``persistence="redis"`` / ``backend="redis"`` become the mode's
(``"memory"``; an embedded Redis at the test's URL; or ``"grpc"`` with the server's address).
A prelude defines what the page leaves to the reader (``agent``, ``results``, ``tool``, ...),
and the placeholder ``[...]`` (a list holding an Ellipsis, which no JSON document can) becomes
``[]``.
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

#: Where the reference page lives.
PAGE = Path("/work/shared/reference-api.txt")
#: A line that continues a code block after a blank line (besides an indented one): a comment
#: or a statement.
_CODE = re.compile(
    r"^(#|@|await |async |from |import |if |for |try:|def |class |with |while |return |"
    r"[A-Za-z_][\w.\[\]\"']*\s*(=|\())"
)

#: What the page leaves to its reader: an agent, a task, intermediate results, a tool.
PRELUDE = '''\
import asyncio
import logging
from datetime import datetime, timedelta

logging.basicConfig(level=logging.INFO, format="%(message)s")


class _Memory:
    def export(self):
        return {"facts": ["statekeeper keeps state"]}


class _Tools:
    def get_state(self):
        return {"search_web": {"calls": 3}}


class Agent:
    """The page's ``agent``: its first run fails, so the recovery path runs."""

    id = "researcher_01"
    memory = _Memory()
    tools = _Tools()
    conversation_history = [{"role": "user", "content": "Hello"}]

    def __init__(self):
        self.state = None
        self.runs = 0

    def restore_from_checkpoint(self, state):
        self.state = state

    async def run(self, task):
        self.runs += 1
        raise RuntimeError("the first run fails")

    async def resume(self):
        return {"resumed_from": self.state["current_task"]}


class Tool:
    async def execute(self, parameters):
        return {"results": ["fresh"]}


async def retry_tool(retry):
    print(f"retrying {retry.execution_id}")


agent = Agent()
task = {"id": "task_001"}
results = {"rows": 42}
current_state = {"step": 5}
workflow_context = {"topic": "AI trends"}
tool = Tool()
'''


def page_blocks(text: str) -> list[str]:
    """The page's Python blocks, in order."""
    lines = text.splitlines()
    blocks: list[str] = []
    for index, line in enumerate(lines):
        if line.strip() != "Python":
            continue
        body: list[str] = []
        position = index + 1
        while position < len(lines) and lines[position].strip().isdigit():
            position += 1  # the line numbers some blocks show
        while position < len(lines) and lines[position].strip() != "Python":
            current = lines[position]
            if not current.strip():
                following = next((ln for ln in lines[position + 1 :] if ln.strip()), "")
                if not (following[:1].isspace() or _CODE.match(following)):
                    break
            body.append(current)
            position += 1
        blocks.append("\n".join(body).rstrip() + "\n")
    return blocks


def _top_level(node: ast.AST) -> list[ast.AST]:
    """The nodes of a block outside its function and class bodies."""
    found: list[ast.AST] = []
    pending = list(ast.iter_child_nodes(node))
    while pending:
        child = pending.pop()
        found.append(child)
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            pending.extend(ast.iter_child_nodes(child))
    return found


def _bound_names(tree: ast.Module) -> list[str]:
    """The names a block binds at its top level (imports, assignments, definitions)."""
    names: set[str] = set()
    for node in _top_level(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    return sorted(names)


def page_program(mode: str, *, address: str = "", redis_url: str = "") -> str:
    """The page as one program for ``mode``: "memory", "redis" (embedded, at ``redis_url``)
    or "grpc" (the server at ``address``)."""
    parts = [PRELUDE]
    for number, block in enumerate(page_blocks(PAGE.read_text()), 1):
        code = block.replace("agenticaiframework.state", "statekeeper.state")
        code = code.replace("[...]", "[]")  # a placeholder (an Ellipsis is no JSON value)
        if mode == "memory":
            code = code.replace('persistence="redis"', 'persistence="memory"')
            code = code.replace('backend="redis"', 'backend="memory"')
        elif mode == "redis":
            code = code.replace("redis://localhost:6379", redis_url)
            code = re.sub(
                r'persistence="redis",(?!\s*redis_url)',
                f'persistence="redis", redis_url="{redis_url}",',
                code,
            )
        else:
            code = code.replace('persistence="redis"', f'persistence="grpc", address="{address}"')
            code = code.replace('backend="redis"', f'backend="grpc", address="{address}"')
        tree = ast.parse(code)
        awaits = any(isinstance(node, (ast.Await, ast.AsyncFor)) for node in _top_level(tree))
        parts.append(f"# -- block {number} --")
        if not awaits:
            parts.append(code)
            continue
        names = _bound_names(tree)
        declaration = f"    global {', '.join(names)}\n" if names else ""
        parts.append(
            f"async def _block_{number}():\n{declaration}{textwrap.indent(code, '    ')}\n"
            f"asyncio.run(_block_{number}())\n"
        )
    parts.append('print("the page ran to its end")\n')
    return "\n".join(parts)
