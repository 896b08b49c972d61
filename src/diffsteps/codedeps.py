"""Which package files a stage runs: the transitive closure of its entry module's imports. A stage
depends on exactly these files (module granularity), so editing report code never retrains.

The import graph is read from the source (every ``import`` and ``from ... import`` anywhere in a module,
function bodies too, but not under ``if TYPE_CHECKING:``, which never runs), so a lazy import is a dependency like
any other. A family's code, which a stage imports by name at run time, is added per job by the workflow. The same graph shows that the
package has no import cycles (:func:`cycles`), between modules or between rooms (subpackages and
top-level modules)."""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

PKG = "src/diffsteps"
ROOT = Path(__file__).resolve().parents[1]  # the folder that holds the package (src/)


def _imports(path: Path, module: str) -> set[str]:
    """Names of this package that ``module`` imports anywhere in its body (modules, or names inside them)."""
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    found = set()
    tree = ast.parse(path.read_text())
    for block in [n for n in ast.walk(tree) if isinstance(n, ast.If) and _type_checking(n.test)]:
        block.body = []  # imports for type checkers only never run: they are no dependency
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] == "diffsteps":
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "diffsteps")
    return found


def _type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``)."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


@lru_cache(maxsize=None)
def package_modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, for its ``__init__.py``)."""
    out = {}
    for path in sorted((root / "diffsteps").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


@lru_cache(maxsize=None)
def import_graph(root: Path = ROOT) -> dict[str, frozenset[str]]:
    """module → the package modules it imports (a name imported from a module resolves to that module)."""
    modules = package_modules(root)
    graph = {}
    for name, path in modules.items():
        deps = set()
        for target in _imports(path, name):
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in modules and target != name:
                deps.add(target)
        graph[name] = frozenset(deps)
    return graph


def _parents(name: str) -> list[str]:
    """The packages above a module (each ``__init__.py`` runs on the way in)."""
    return [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]


@lru_cache(maxsize=None)
def module_closure(module: str, root: Path = ROOT) -> tuple[str, ...]:
    """Files (repo-relative) of ``module`` and of every package module it imports, transitively,
    with the ``__init__.py`` of each package on the way. This is the code a stage depends on (computed once
    per process: every Snakemake job's inputs name it)."""
    graph, modules = import_graph(root), package_modules(root)
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or name not in modules:
            continue
        seen.add(name)
        todo.extend([*_parents(name), *graph[name]])
    return tuple(sorted(f"{PKG}/{modules[m].relative_to(root / 'diffsteps').as_posix()}" for m in seen))


def room(module: str) -> str:
    """The room of a module: its subpackage (``diffsteps.noise``), or itself for a top-level module."""
    return ".".join(module.split(".")[:2])


def cycles(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """The import cycles of a graph, each as the path that closes it (empty when the graph is acyclic)."""
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path)
        path.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def room_graph(graph: dict[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    """The rooms' import graph: room A → room B when a module of A imports one of B (the root package,
    whose ``__init__.py`` every module passes through, is left out)."""
    out: dict[str, set[str]] = {}
    for name, deps in graph.items():
        if name == "diffsteps":
            continue
        out.setdefault(room(name), set()).update(room(d) for d in deps if d != "diffsteps" and room(d) != room(name))
    return {k: frozenset(v) for k, v in out.items()}
