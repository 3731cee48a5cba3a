"""The layers of ARCHITECTURE.md, read from the source: import rules and size rules.

Every hand-written module of the server (``service/statekeeper_server``) and of the Python
client (``clients/python/statekeeper``, without the generated ``v1``) is parsed with :mod:`ast`;
every ``import`` counts, also one inside a function or under ``if TYPE_CHECKING:`` (a lazy
import that dodges a cycle is still the cycle). Rules that other changes are still bringing
true are listed below as known violations; each listed one must still exist, so the lists
shrink to empty as those changes land and a fixed violation cannot come back unnoticed.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
SOURCE_ROOTS = {
    "statekeeper_server": CHECKOUT / "service" / "statekeeper_server",
    "statekeeper": CHECKOUT / "clients" / "python" / "statekeeper",
}
#: Generated stubs: neither parsed nor size-checked; an import of any of them is one node.
GENERATED = "statekeeper.v1"

#: What client and server share: typed errors, the document codec, timestamps, the fields of a
#: dataclass, the message <-> dataclass conversion, the status vocabularies and the generated
#: stubs. These modules import only each other, never the client API nor the server; the server
#: imports nothing else of ``statekeeper``.
NEUTRAL = frozenset(
    {
        "statekeeper",
        "statekeeper.errors",
        "statekeeper.values",
        "statekeeper.timestamps",
        "statekeeper.fields",
        "statekeeper.messages",
        "statekeeper.statuses",
        GENERATED,
    }
)
#: The ``statekeeper`` program: client sub-commands and ``serve`` side by side, so it may use
#: both the client API and the server; no server module imports it.
PROGRAM = frozenset({"statekeeper_server.cli", "statekeeper_server.__main__"})

#: The server's layers, lowest first: a module imports only from its own layer or below.
#: A new module gets a place here (the test names a module that has none).
SERVER_LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "engine helpers",
        (
            "statekeeper_server",
            "statekeeper_server.engine",
            "statekeeper_server.engine.identifiers",
            "statekeeper_server.engine.limits",
            "statekeeper_server.engine.tenancy",
            "statekeeper_server.engine.tokens",
        ),
    ),
    ("storage", ("statekeeper_server.engine.storage",)),
    ("records", ("statekeeper_server.engine.records",)),
    ("domains", ("statekeeper_server.engine.domains",)),
    ("servicers", ("statekeeper_server.core", "statekeeper_server.servicers")),
    ("registry", ("statekeeper_server.services", "statekeeper_server.runtime")),
    (
        "server",
        (
            "statekeeper_server.auth",
            "statekeeper_server.config",
            "statekeeper_server.observability",
            "statekeeper_server.interceptors",
            "statekeeper_server.reflection_pool",
            "statekeeper_server.server",
            "statekeeper_server.workers",
        ),
    ),
    ("program", tuple(sorted(PROGRAM))),
]

STORAGE = "statekeeper_server.engine.storage"
#: The backends; a backend's own helper modules are named after it (``redis_log``).
BACKENDS = frozenset({"memory", "file", "redis"})
#: A backend built on another one by design: the file backend keeps its in-memory index in a
#: memory backend (a subclass), so it reuses the memory store's reads and watches as they are.
BACKEND_FOUNDATIONS = frozenset({("file", "memory")})
DOMAINS = "statekeeper_server.engine.domains"
#: Domain modules that are helpers shared by the managers, not managers themselves.
SHARED_DOMAIN_HELPERS = frozenset({f"{DOMAINS}.checkpoints"})


@dataclass(frozen=True)
class Import:
    """One import statement's target as seen from ``importer``."""

    importer: str
    imported: str
    lazy: bool  # inside a function, or under ``if TYPE_CHECKING:``


def module_name(top: str, path: Path) -> str:
    """The dotted module name of ``path`` under the source root of package ``top``."""
    parts = list(path.relative_to(SOURCE_ROOTS[top].parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.cache
def sources() -> dict[str, Path]:
    """Every hand-written module, by dotted name."""
    found: dict[str, Path] = {}
    for top, root in SOURCE_ROOTS.items():
        for path in sorted(root.rglob("*.py")):
            name = module_name(top, path)
            if name != GENERATED and not name.startswith(GENERATED + "."):
                found[name] = path
    return found


def resolve(name: str) -> str | None:
    """The project module (or the generated stubs) that ``name`` refers to, else None."""
    if name == GENERATED or name.startswith(GENERATED + "."):
        return GENERATED
    known = sources()
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
        base = ".".join([*parts, base] if base else parts)
    # ``from a import b`` is a.b when that is a module, else a name of a.
    return [f"{base}.{alias.name}" for alias in node.names]


def _walk(node: ast.AST, lazy: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, lazy
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _walk(child, True)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for statement in child.body:
                yield from _walk(ast.Module(body=[statement], type_ignores=[]), True)
            for statement in child.orelse:
                yield from _walk(ast.Module(body=[statement], type_ignores=[]), lazy)
        else:
            yield from _walk(child, lazy)


@functools.cache
def imports() -> list[Import]:
    """Every import of a project module (or of the stubs) by a hand-written module."""
    found: set[Import] = set()
    for name, path in sources().items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node, lazy in _walk(ast.parse(path.read_text(encoding="utf-8")), False):
            for target in _targets(node, package):
                imported = resolve(target)
                if imported is not None and imported != name:
                    found.add(Import(name, imported, lazy))
    return sorted(found, key=lambda i: (i.importer, i.imported, i.lazy))


def edges() -> set[tuple[str, str]]:
    """(importer, imported) pairs, lazy or not."""
    return {(i.importer, i.imported) for i in imports()}


def is_server(name: str) -> bool:
    return name == "statekeeper_server" or name.startswith("statekeeper_server.")


def is_client(name: str) -> bool:
    return not is_server(name) and name not in NEUTRAL


def cycles(nodes: set[str]) -> list[list[str]]:
    """The import cycles among ``nodes`` (strongly connected components of two or more)."""
    graph: dict[str, list[str]] = {n: [] for n in nodes}
    for importer, imported in edges():
        if importer in graph and imported in graph:
            graph[importer].append(imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in graph[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = [stack.pop()]
            while component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer_of(name: str) -> int:
    """The index in SERVER_LAYERS of a server module (by its longest matching prefix)."""
    best: tuple[int, int] | None = None
    for rank, (_, prefixes) in enumerate(SERVER_LAYERS):
        for prefix in prefixes:
            if name == prefix or name.startswith(prefix + "."):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), rank)
    assert best is not None, f"{name} has no layer: add it to SERVER_LAYERS in tests/test_layers.py"
    return best[1]


def backend_of(name: str) -> str | None:
    """The backend a storage module belongs to (``redis`` for ``storage.redis_log``), if any."""
    if not name.startswith(STORAGE + "."):
        return None
    backend = name.rpartition(".")[2].partition("_")[0]
    return backend if backend in BACKENDS else None


def domain_of(module: str) -> str:
    """The manager a domain module belongs to: a domain may be a package of modules, or
    modules named after it (``speech`` for ``domains.speech_records``)."""
    return module[len(DOMAINS) + 1 :].split(".")[0].partition("_")[0]


def violations() -> set[tuple[str, str]]:
    """Every import that breaks one of the rules below (known or new)."""
    broken: set[tuple[str, str]] = set()
    for importer, imported in edges():
        domain_import = (
            importer.startswith(DOMAINS + ".")
            and imported.startswith(DOMAINS + ".")
            and imported not in SHARED_DOMAIN_HELPERS
            and importer not in SHARED_DOMAIN_HELPERS
            and domain_of(importer) != domain_of(imported)
        )
        servicer_import = (
            importer.startswith("statekeeper_server.servicers.")
            and imported.startswith(DOMAINS + ".")
            and imported not in SHARED_DOMAIN_HELPERS
            and domain_of(imported) != importer.rpartition(".")[2]
        )
        backends = (backend_of(importer), backend_of(imported))
        backend_import = (
            None not in backends
            and backends[0] != backends[1]
            and backends not in BACKEND_FOUNDATIONS
        )
        stubs_in_engine = importer.startswith("statekeeper_server.engine") and imported == GENERATED
        if domain_import or servicer_import or backend_import or stubs_in_engine:
            broken.add((importer, imported))
    return broken


def test_no_import_cycle_in_the_server() -> None:
    assert cycles({n for n in sources() if is_server(n)}) == []


def test_no_import_cycle_in_the_client() -> None:
    assert cycles({n for n in sources() if not is_server(n)}) == []


def test_server_layers_import_only_downward() -> None:
    upward = [
        f"{importer} ({SERVER_LAYERS[layer_of(importer)][0]}) imports {imported} "
        f"({SERVER_LAYERS[layer_of(imported)][0]})"
        for importer, imported in sorted(edges())
        if is_server(importer) and is_server(imported) and layer_of(imported) > layer_of(importer)
    ]
    assert upward == []


def test_managers_backends_and_engine_keep_to_themselves() -> None:
    """No manager imports a sibling manager (shared helpers are declared), no servicer another
    service's manager, no backend another backend, nothing under engine/ the generated stubs."""
    assert sorted(violations()) == []


def test_the_server_uses_only_the_neutral_part_of_statekeeper() -> None:
    reaching = sorted(
        (importer, imported)
        for importer, imported in edges()
        if is_server(importer) and importer not in PROGRAM and is_client(imported)
    )
    assert reaching == []


def test_the_neutral_layer_imports_neither_client_nor_server() -> None:
    reaching = sorted(
        (importer, imported)
        for importer, imported in edges()
        if importer in NEUTRAL and imported not in NEUTRAL
    )
    assert reaching == []


def test_nothing_but_the_program_imports_the_program() -> None:
    assert sorted((i, m) for i, m in edges() if m in PROGRAM and i not in PROGRAM) == []


def test_the_client_imports_the_server_only_lazily() -> None:
    """Embedded mode and the backend classes of ``statekeeper.state`` load the server when
    used; importing any client module never does."""
    eager = sorted(
        f"{i.importer} imports {i.imported}"
        for i in imports()
        if is_client(i.importer) and is_server(i.imported) and not i.lazy
    )
    assert eager == []


def test_the_import_reader_sees_lazy_and_relative_imports() -> None:
    """The rules above rest on this reader: it finds an import inside a function and one
    under ``TYPE_CHECKING`` (both lazy), and module-level ones (eager)."""
    found = {(i.importer, i.imported): i.lazy for i in imports()}
    assert found[("statekeeper.transport", "statekeeper_server.runtime")] is True
    assert found[("statekeeper_server.runtime", "statekeeper_server.services")] is False
    assert found[("statekeeper_server.servicers.state", "statekeeper_server.core")] is True
    assert found[("statekeeper_server.workers", "statekeeper_server.server")] is False


# -- size: no file over about 600 hand-written lines, no function over about 60 ----------------

MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 60
#: A file or function over the limit says why at its top, in a comment starting with this.
SIZE_REASON = "# size:"


def hand_written_lines(text: str) -> int:
    """Lines that are neither blank nor only a comment."""
    return sum(
        1 for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    )


def oversized() -> set[str]:
    """Every file and function over its limit that gives no reason at its top."""
    found: set[str] = set()
    for path in sources().values():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        where = path.relative_to(CHECKOUT).as_posix()
        if hand_written_lines(text) > MAX_FILE_LINES and not any(
            line.startswith(SIZE_REASON) for line in lines[:60]
        ):
            found.add(where)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                span = lines[node.lineno - 1 : node.end_lineno]
                if len(span) > MAX_FUNCTION_LINES and not any(
                    line.strip().startswith(SIZE_REASON) for line in span[:15]
                ):
                    found.add(f"{where}::{node.name}")
    return found


def test_no_file_or_function_is_over_the_size_limit() -> None:
    assert sorted(oversized()) == []
