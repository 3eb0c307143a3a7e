"""Import-graph check of ``src/napari_invimg``: cycles between modules and imports to a higher floor.

Every ``import`` / ``from … import`` in a module counts, at top level and inside functions (``ast``; no import
runs). ``from P import n`` is an edge to the module ``P.n`` when that is a module, else to ``P``; importing
``napari_invimg`` itself (``from .. import x``) is an edge to the package's ``__init__``. Floors (DEVELOPERS.md):
4 widgets, cli (and __main__), _sample_data, demo and the package ``__init__`` → 3 api, core, tiling, replay, diagnostics → 2 methods,
mri, blackhole → 1 everything else (operators, priors, nets, io, noise, metrics, settings, leaf modules).

Usage: ``python scripts/check_imports.py [src]``; prints the cycles (strongly connected components) and the
upward imports, and exits 1 when there is either.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "napari_invimg"
FLOORS = {4: ("widgets", "cli", "__main__", "_sample_data", "demo", ""), 3: ("api", "core", "tiling", "_replay", "diagnostics"),
          2: ("methods", "mri", "blackhole")}


def modules(src: Path) -> dict[str, Path]:
    """Dotted module name → file, for every ``.py`` of the package."""
    out = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def floor(module: str) -> int:
    first = module.split(".")[1] if "." in module else ""
    return next((f for f, names in FLOORS.items() if first in names), 1)


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    found.discard(name)
    return {m for m in found if m in known}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan 1972), largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return sorted(out, key=len, reverse=True)


def check(src: Path) -> tuple[list[list[str]], list[tuple[str, str]]]:
    known = modules(src)
    graph = {m: imports(m, p, known) for m, p in known.items()}
    upward = sorted((a, b) for a, targets in graph.items() for b in targets if floor(b) > floor(a))
    return cycles(graph), upward


def main(argv: list[str]) -> int:
    src = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1] / "src"
    found, upward = check(src)
    for comp in found:
        print(f"cycle ({len(comp)} modules): {' ↔ '.join(comp)}")
    for a, b in upward:
        print(f"upward import: {a} (floor {floor(a)}) → {b} (floor {floor(b)})")
    print(f"{len(found)} cycles, {len(upward)} upward imports")
    return 1 if found or upward else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
