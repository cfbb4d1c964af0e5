"""The package's import graph has no cycle (`tools/import_graph.py --check`), lazy imports included."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT

_spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools" / "import_graph.py")
ig = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ig)


def test_package_has_no_import_cycle() -> None:
    graph = ig.build_graph()
    assert "redegkit.bank.store" in graph and "redegkit.models.checkpoints" in graph["redegkit.models"]
    assert "redegkit.synth.learned" in graph and "redegkit.synth_learned" not in graph
    assert ig.find_cycles(graph) == []


def _write(root: Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")


def test_lazy_and_relative_imports_are_edges(tmp_path: Path) -> None:
    root = tmp_path / "redegkit"
    _write(root, "__init__.py", "")
    _write(root, "a/__init__.py", "from .low import x\n")
    _write(root, "a/low.py", "import numpy\nx = 1\n")
    # a lazy import inside a function still makes a -> b
    _write(root, "a/mid.py", "def f():\n    from ..b import top\n    return top\n")
    _write(root, "b/__init__.py", "")
    _write(root, "b/top.py", "from redegkit.a import mid\nfrom ..a import low\nimport redegkit.a.low.x\n")
    graph = ig.build_graph(root)
    assert graph["redegkit.a"] == {"redegkit.a.low"}
    assert graph["redegkit.a.low"] == set()  # third-party imports are not edges
    assert graph["redegkit.a.mid"] == {"redegkit.b.top"}
    assert graph["redegkit.b.top"] == {"redegkit.a.mid", "redegkit.a.low"}
    assert ig.find_cycles(graph) == [["redegkit.a.mid", "redegkit.b.top"]]
    assert "redegkit.b.top -> redegkit.a.low, redegkit.a.mid" in ig.format_graph(graph).splitlines()


def test_strongly_connected_components() -> None:
    g = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e", "d"}, "f": {"g"}, "g": {"f"}}
    assert sorted(ig.strongly_connected(g)) == [["a", "b", "c"], ["d"], ["e"], ["f", "g"]]
    assert ig.find_cycles(g) == [["a", "b", "c"], ["f", "g"]]


def test_cli_check_exits_1_on_a_cycle_only() -> None:
    r = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "import_graph.py")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert r.returncode == 0 and "redegkit.bank.cluster -> " in r.stdout
    r = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "import_graph.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert r.returncode == 0 and not [ln for ln in r.stderr.splitlines() if ln.startswith("cycle: ")]
