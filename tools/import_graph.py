"""The import graph of the ``redegkit`` package, and a check that it has no cycle.

    python tools/import_graph.py          # print "module -> dep, dep, …", one module a line
    python tools/import_graph.py --check  # exit 1 (listing them) if any modules import each other

Every module under ``redegkit/`` is parsed with :mod:`ast`, and *every* ``import`` / ``from …
import`` statement counts, wherever it stands: at the top, inside a function (a lazy import hides
a cycle from the interpreter, not from the design), under ``if TYPE_CHECKING`` or in a ``try``.
Only imports of modules inside the package are edges; the standard library and third-party
packages are ignored. ``from pkg import name`` is an edge to ``pkg.name`` when that is a module,
else to ``pkg`` itself (a name its ``__init__`` defines or re-exports). Importing ``a.b`` also runs
``a/__init__.py``, but that implicit edge is not counted: a package's ``__init__`` importing its
own submodules, which import their siblings, is the normal layout, not a cycle. Imports by a
computed name (``importlib.import_module``) are invisible here.

A cycle is a strongly connected component of more than one module (Tarjan's algorithm).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable
from pathlib import Path

PACKAGE = "redegkit"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE


def module_name(path: Path, root: Path = ROOT) -> str:
    """``redegkit/bank/store.py`` -> ``redegkit.bank.store``; ``…/bank/__init__.py`` -> ``redegkit.bank``."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def list_modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package (dotted name -> file)."""
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def _resolve(target: str, modules: dict[str, Path]) -> str | None:
    """The package module that ``import target`` loads: the longest prefix that is one of ours."""
    parts = target.split(".")
    while parts:
        name = ".".join(parts)
        if name in modules:
            return name
        parts.pop()
    return None


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules that module ``name`` (file ``path``) imports anywhere in its body."""
    is_package = path.name == "__init__.py"
    deps: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # Relative to the package the module is in (a package's __init__ is in itself).
                base = name.split(".")
                if not is_package:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                stem = ".".join([*base, node.module] if node.module else base)
            else:
                stem = node.module or ""
            # "from stem import x": the submodule stem.x when there is one, else stem itself.
            targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in modules else stem for a in node.names]
        else:
            continue
        for t in targets:
            if t == PACKAGE or t.startswith(PACKAGE + "."):
                dep = _resolve(t, modules)
                if dep is not None and dep != name:
                    deps.add(dep)
    return deps


def build_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the package modules it imports, for every module under ``root``."""
    modules = list_modules(root)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of ``graph`` (Tarjan, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in graph:
                    continue
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    out.append(sorted(comp))
    return out


def find_cycles(graph: dict[str, set[str]] | None = None) -> list[list[str]]:
    """Every group of modules that import each other (directly or through others), sorted."""
    graph = build_graph() if graph is None else graph
    return sorted(c for c in strongly_connected(graph) if len(c) > 1)


def format_graph(graph: dict[str, set[str]]) -> str:
    return "\n".join(f"{m} -> {', '.join(sorted(d))}" if d else f"{m} ->" for m, d in sorted(graph.items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the graph has a cycle")
    args = ap.parse_args(argv)
    graph = build_graph()
    if not args.check:
        print(format_graph(graph))
        return 0
    cycles = find_cycles(graph)
    for c in cycles:
        print("cycle: " + " <-> ".join(c), file=sys.stderr)
    if not cycles:
        print(f"{len(graph)} modules, no import cycle")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
