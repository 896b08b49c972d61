"""Which package files a stage runs: the transitive closure of its entry module's imports. A stage
depends on exactly these files (module granularity), so editing report code never retrains."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = "src/diffsteps"


def _imports(path: Path, module: str) -> set[str]:
    """Modules of this package that ``module`` imports anywhere in its body (function-level too)."""
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
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


def module_closure(module: str, root: Path | None = None) -> list[str]:
    """Files (repo-relative) of ``module`` and of every package module it imports, transitively,
    with the ``__init__.py`` of each package on the way. This is the code a stage depends on."""
    root = root or Path(__file__).resolve().parents[1]
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        rel = Path(*name.split("."))
        path = root / rel.with_suffix(".py")
        if not path.exists():
            path = root / rel / "__init__.py"
        if not path.exists():
            continue  # a name imported from a module, not a module itself
        seen[name] = path
        parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        todo.extend([*parents, *_imports(path, name)])
    return sorted(f"{PKG}/{p.relative_to(root / 'diffsteps').as_posix()}" for p in seen.values())
