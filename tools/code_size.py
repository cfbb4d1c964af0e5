"""Size limits of the package's source: no file over 500 lines, no function over 80.

    python tools/code_size.py          # list what is over a limit
    python tools/code_size.py --check  # exit 1 if anything is

A file or function may be longer when it is one table or one formula: say so with a comment
``# size: <why>`` on its first line (a file's first line, or the line of the ``def``). A file's
lines are counted as in the file; a function's are its body's, from its first statement after
the docstring to its end, comments included: a Typer command's signature is its table of options
(one per parameter), not code to follow.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "redegkit"
MAX_FILE, MAX_FUNCTION = 500, 80
EXCUSE = "# size:"


def over_limits(root: Path = ROOT) -> list[str]:
    """``path: what`` for every file and function over its limit (without an excuse)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        rel = path.relative_to(root.parent)
        if len(lines) > MAX_FILE and EXCUSE not in (lines[0] if lines else ""):
            found.append(f"{rel}: {len(lines)} lines (limit {MAX_FILE})")
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = (
                    node.body[1:] if ast.get_docstring(node) is not None and len(node.body) > 1 else node.body
                )
                n = (node.end_lineno or node.lineno) - body[0].lineno + 1
                if n > MAX_FUNCTION and EXCUSE not in lines[node.lineno - 1]:
                    found.append(f"{rel}:{node.lineno}: {node.name}() {n} lines (limit {MAX_FUNCTION})")
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    found = over_limits()
    print("\n".join(found) if found else "every file and function within its limit")
    return 1 if args.check and found else 0


if __name__ == "__main__":
    sys.exit(main())
