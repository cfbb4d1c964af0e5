"""`redeg fit-degradation` end to end on the smoke recipe (CliRunner, CPU, seconds)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from redegkit.cli import app

from .fit_helpers import corrupt_png, make_face_pairs, natural_paths

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")


def _args(pairs, out, *extra: str) -> list[str]:
    nat = [a for p in natural_paths()[:2] for a in ("--natural", p)]
    return [
        "fit-degradation",
        "--pairs",
        str(pairs),
        *nat,
        "--recipe",
        "recipes/smoke.toml",
        "--out",
        str(out),
        *extra,
    ]


def test_cli_smoke_run_then_resume(tmp_path):
    pairs = make_face_pairs(tmp_path / "pairs", manifest=True)
    run = tmp_path / "runs" / "demo"
    r = runner.invoke(app, _args(pairs, run, "--steps", "4", "--json", "--quiet"))
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["steps"] == 4 and summary["failures"] == [] and summary["train_pairs"] == 3
    for name in ("last.pt", "metrics.jsonl", "report.json", "config.json", "previews/step_0000004.png"):
        assert (run / name).is_file(), name

    again = runner.invoke(app, _args(pairs, run, "--steps", "6"))
    assert again.exit_code == 2 and "--resume" in again.output

    r = runner.invoke(app, _args(pairs, run, "--steps", "6", "--resume", "--json", "--quiet"))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["resumed_from"] == 4
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 6 and sorted(set(steps)) == [1, 2, 3, 4, 5, 6]

    # the run folder's HTML report: curves and the latest previews (>= 192-px tiles, not enlarged again)
    r = runner.invoke(app, ["report", str(run), "-o", str(tmp_path / "fit.html"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["kind"] == "run"
    html = (tmp_path / "fit.html").read_text()
    assert "Training losses" in html and "step 6 (step_0000006.png, 788x" in html and "enlarged" not in html


def test_cli_reports_a_corrupt_pair_with_exit_1(tmp_path):
    pairs = make_face_pairs(tmp_path / "pairs")
    bad = corrupt_png(pairs / "hq" / "camera12.png")
    r = runner.invoke(app, _args(pairs, tmp_path / "run", "--steps", "3", "--json", "--quiet"))
    assert r.exit_code == 1, r.output
    out = json.loads(r.stdout)
    assert out["steps"] == 3 and [f["path"] for f in out["failures"]] == [str(bad)]


def test_cli_paper_recipe_without_vgg_is_a_clean_error(tmp_path, monkeypatch):
    monkeypatch.setenv("REDEG_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    pairs = make_face_pairs(tmp_path / "pairs", shifts=(0,))
    args = _args(pairs, tmp_path / "run", "--steps", "1")
    args[args.index("recipes/smoke.toml")] = "recipes/paper.toml"
    r = runner.invoke(app, args)
    assert r.exit_code == 2
    assert "vgg19-dcbb9e9d.pth" in r.output and "redeg weights" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "run" / "last.pt").exists()


def test_cli_bad_input_is_a_usage_error(tmp_path):
    r = runner.invoke(app, _args(tmp_path / "missing", tmp_path / "run"))
    assert r.exit_code == 2 and "hq/ and lq/" in r.output
    pairs = make_face_pairs(tmp_path / "pairs", shifts=(0,))
    r = runner.invoke(app, [*_args(pairs, tmp_path / "run"), "--batch", "0"])
    assert r.exit_code == 2 and "batch" in r.output
