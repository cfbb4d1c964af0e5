"""The command line of the tools that generate a docs page (``gen_cli_reference.py``,
``gen_config_reference.py``): write the page, or with ``--check`` exit 1 if it is stale."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def page_main(
    render: Callable[[], str], page: Path, doc: str | None, tool: str, argv: list[str] | None
) -> int:
    ap = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the page is stale; write nothing")
    ap.add_argument("--page", type=Path, default=page, help="the page to write or check")
    a = ap.parse_args(argv)
    text = render()
    if a.check:
        current = a.page.read_text(encoding="utf-8") if a.page.is_file() else ""
        if current != text:
            print(f"{a.page} is stale: run python {tool}", file=sys.stderr)
            return 1
        return 0
    a.page.parent.mkdir(parents=True, exist_ok=True)
    a.page.write_text(text, encoding="utf-8")
    print(f"updated {a.page}")
    return 0
