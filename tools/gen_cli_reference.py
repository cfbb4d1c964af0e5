"""Regenerate the CLI reference in README.md from `redeg … --help` (between the cli-reference markers).

python tools/gen_cli_reference.py          # rewrite README.md
python tools/gen_cli_reference.py --check  # exit 1 if README.md is out of date
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

os.environ["COLUMNS"] = "100"
os.environ["TERMINAL_WIDTH"] = "100"
os.environ["NO_COLOR"] = "1"

from typer.testing import CliRunner  # noqa: E402

from redegkit.cli import app  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- cli-reference -->", "<!-- /cli-reference -->"
COMMANDS = [
    [],
    ["pseudo-hq"],
    ["fit-degradation"],
    ["bake"],
    ["synthesize"],
    ["presets", "list"],
    ["presets", "show"],
    ["train-sr"],
    ["upscale"],
    ["export"],
    ["export-model"],
    ["bank", "info"],
    ["bank", "preview"],
    ["bank", "merge"],
    ["bank", "filter"],
    ["eval", "match"],
    ["eval", "transfer"],
    ["shards", "info"],
    ["shards", "preview"],
    ["shards", "pack"],
    ["weights", "list"],
    ["weights", "verify"],
    ["weights", "install"],
    ["weights", "fetch"],
    ["config", "list"],
    ["config", "show"],
    ["config", "schema"],
]


def render() -> str:
    runner = CliRunner()
    parts = [BEGIN, "## CLI reference", "", "Generated from `--help` by `tools/gen_cli_reference.py`.", ""]
    for cmd in COMMANDS:
        r = runner.invoke(app, [*cmd, "--help"], env={"COLUMNS": "100", "NO_COLOR": "1"}, prog_name="redeg")
        if r.exit_code != 0:
            raise SystemExit(f"redeg {' '.join(cmd)} --help failed:\n{r.output}")
        text = "\n".join(line.rstrip() for line in r.output.strip("\n").splitlines())
        title = "redeg " + " ".join(cmd) if cmd else "redeg"
        parts += [
            f"<details><summary><code>{title}</code></summary>",
            "",
            "```text",
            text,
            "```",
            "</details>",
            "",
        ]
    parts.append(END)
    return "\n".join(parts)


def main() -> None:
    text = README.read_text()
    block = render()
    pat = re.compile(re.escape(BEGIN) + r".*?(" + re.escape(END) + r"|$)", re.S)
    if BEGIN not in text:
        raise SystemExit(f"{README}: no {BEGIN} marker")
    new = pat.sub(lambda m: block, text, count=1) if END in text else text.replace(BEGIN, block, 1)
    if "--check" in sys.argv:
        sys.exit(0 if new == text else 1)
    README.write_text(new)
    print(f"updated {README}")


if __name__ == "__main__":
    main()
