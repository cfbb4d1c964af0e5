"""The prepared GPU run (`benchmarks/gpu_suite.sh`) runs end to end: its CPU smoke mode (TINY=1)
takes the same steps with tiny networks, so a renamed option or a broken import shows here and
not in the few minutes of a lent GPU machine."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_suite_smoke_mode_runs_every_step(tmp_path):
    out = tmp_path / "gpu"
    env = {
        **os.environ,
        "TINY": "1",
        "OUT": str(out),
        "PYTHON": sys.executable,
        "WHEELS": str(tmp_path / "no-wheels"),
        "OMP_NUM_THREADS": "1",
    }
    p = subprocess.run(
        ["bash", "benchmarks/gpu_suite.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=420
    )
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    summary = (out / "summary.txt").read_text()
    steps = re.findall(r"^=== (\w+) \(limit", summary, re.M)
    assert steps == ["sync_check", "synth_learned", "fit_step", "train_sr_step"]
    assert re.findall(r"^rc=(\d+) after", summary, re.M) == ["0"] * 4, summary
    assert summary.rstrip().endswith("=== done")
    assert "no CUDA" in summary and str(ROOT / "redegkit") in summary  # the checkout's package, uninstalled
    synth = json.loads((out / "synth_learned.json").read_text())
    # on a CPU both precisions run fp32 eager, exactly the reference: 0 grey levels apart
    assert synth["agreement_grey_levels"] == {"cpu fp32 vs cpu fp32": 0, "cpu bf16 vs cpu fp32": 0}
    fit = json.loads((out / "fit_step.log").read_text())
    assert [r["mode"] for r in fit["results"]] == ["reference", "default"]
    assert all(r["samples_per_s"] > 0 for r in fit["results"])
    assert json.loads((out / "sync_check.log").read_text()) == {"skipped": "CUDA is not available"}


def test_gpu_suite_reruns_only_the_named_steps(tmp_path):
    out = tmp_path / "gpu"
    env = {
        **os.environ,
        "TINY": "1",
        "OUT": str(out),
        "PYTHON": sys.executable,
        "STEPS": "sync_check",
        "WHEELS": str(tmp_path / "no-wheels"),
    }
    p = subprocess.run(
        ["bash", "benchmarks/gpu_suite.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 0, p.stderr[-2000:]
    summary = (out / "summary.txt").read_text()
    assert re.findall(r"^=== (\w+) \(limit", summary, re.M) == ["sync_check"]
    assert sorted(f.name for f in out.iterdir()) == ["summary.txt", "sync_check.log"]
