"""The classical path starts without torch: `redeg --help`, `synthesize --help`, a preset run and
`shards info` (with its HTML report too) must not import torch or webdataset (about 3 s of imports
before the first image)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import shrunk_examples

ROOT = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter: every command through the real app, then what got imported.
SCRIPT = r"""
import json, sys
from redegkit.cli import app

inp, out = sys.argv[1], sys.argv[2]
codes = {}
for name, args in [
    ("help", ["--help"]),
    ("synthesize-help", ["synthesize", "--help"]),
    (
        "synthesize",
        ["synthesize", inp, out, "--preset", "realesrgan", "--crop", "32", "--workers", "1", "-q", "--json"],
    ),
    ("shards-info", ["shards", "info", out, "--json"]),
    ("shards-report", ["shards", "info", out, "--html", out + "/report.html", "--json"]),
]:
    try:
        app(args, prog_name="redeg")
    except SystemExit as e:
        codes[name] = e.code
heavy = sorted(m for m in ("torch", "torchvision", "webdataset", "redegkit.synth.learned", "redegkit.bank.store")
               if m in sys.modules)
sys.stderr.write("\nRESULT " + json.dumps({"codes": codes, "heavy": heavy}) + "\n")
"""


def test_classical_path_imports_neither_torch_nor_webdataset(tmp_path):
    (tmp_path / "in").mkdir()
    shrunk_examples(tmp_path / "in", ("astronaut", "brick"), 64)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "in"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stderr.rsplit("RESULT ", 1)[1])
    assert result["codes"] == {
        "help": 0,
        "synthesize-help": 0,
        "synthesize": 0,
        "shards-info": 0,
        "shards-report": 0,
    }, r.stderr[-3000:]
    assert result["heavy"] == [], f"the classical path imported {result['heavy']}"
    # and the run did write its pairs, which shards info read back
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert info["html"].endswith("report.html")
    assert info["samples"] == 8 and info["methods_in_first_shard"] == {"realesrgan": 8}
