"""`redeg eval downstream`: the bootstrap, the protocol on a strong D, determinism, resume, a source
without pairs, bad input, the CLI and the report, at tiny sizes (one tiny bank, 20-step restorers)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from redegkit.cli import app
from redegkit.config import resolve_config
from redegkit.eval.bootstrap import interval, resamples
from redegkit.eval.downstream import DownstreamConfig, eval_downstream
from redegkit.io.sources import list_sources
from redegkit.report import detect_kind, write_report

from .conftest import shrunk_examples
from .test_bank import make_bank

pytestmark = pytest.mark.usefixtures("one_thread")
runner = CliRunner()

# a strong, deterministic D that a tiny restorer learns to undo in a few steps: a fading (low
# contrast, lifted blacks) that costs PSNR-Y about 11 dB
FADE = {"op": "color", "contrast": 0.4, "offset_r": 60, "offset_g": 60, "offset_b": 60}
USER = {
    "fade": {"steps": [FADE]},
}
TINY = dict(views=2, view_size=64, crop=64, crops_per_image=1, sheet_rows=2, presets=["bsrgan-x2"],
            train_crop=64, train_crops_per_image=3)  # fmt: skip
TINY_SR = {
    "steps": 100,
    "pretrain_steps": 100,
    "batch": 4,
    "log_every": 50,
    "ckpt_every": 50,
    "model": {"num_feat": 8, "num_block": 1, "num_grow_ch": 4, "d_num_feat": 8, "residual": True},
    "data": {"hq_crop": 32, "lq_resolution": "low", "num_workers": 0, "shuffle_buffer": 8},
    "loss": {"usm_targets": [], "perceptual": 0.0, "style": 0.0, "gan": 0.0},
    "optim": {"lr_g": 5e-3, "ema_decay": 0.0},
}


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    names = ("astronaut", "camera", "brick", "coffee", "grass", "gravel")
    return shrunk_examples(tmp_path_factory.mktemp("imgs"), names, 128)


@pytest.fixture(scope="module")
def bank(tmp_path_factory) -> Path:
    return make_bank(tmp_path_factory.mktemp("bank"))


def _run(images, bank, out: Path, *, scale: int = 1, **kw):
    srcs = lambda *names: list_sources([str(images[n]) for n in names])  # noqa: E731
    return eval_downstream(
        srcs("astronaut"), srcs("grass", "gravel"), srcs("camera", "brick", "coffee"), "fade", out,
        cfg=DownstreamConfig(**TINY, scale=scale), sr_cfg=resolve_config("train_sr", None, TINY_SR),
        bank=bank, user_presets=USER, **kw,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------
# the bootstrap, against cases computed by hand


def test_bootstrap_matches_hand_computed_cases() -> None:
    # 4 images, scores [0, 0, 0, 1]: a resample's mean is k/4, k ~ Binomial(4, 1/4):
    # P(k=0) = 81/256 >= 0.025, so the lower end is 0; P(k<=2) = 243/256 < 0.975 <= P(k<=3) = 255/256,
    # so the upper end is 3/4. There are C(7, 4) = 35 count vectors.
    rs = resamples(4)
    assert rs.exact and rs.counts.shape == (35, 4) and math.isclose(rs.probs.sum(), 1.0)
    m = rs.means(np.array([0.0, 0.0, 0.0, 1.0]))
    assert interval(m, rs.probs) == (0.0, 0.75)
    assert math.isclose(rs.probs[m == 0].sum(), 81 / 256) and math.isclose(
        rs.probs[m == 0.75].sum(), 12 / 256
    )
    assert math.isclose((m * rs.probs).sum(), 0.25)  # the bootstrap mean of the mean is the mean
    # paired: the interval of a - b is the interval of the differences [0, 0, 0, 1]
    a, b = np.array([31.0, 28.5, 30.0, 27.0]), np.array([31.0, 28.5, 30.0, 26.0])
    assert interval(rs.means(a) - rs.means(b), rs.probs) == (0.0, 0.75)
    # 10 images, three of them 1: k ~ Binomial(10, 0.3); P(k=0) = 0.7^10 = 0.0282 >= 0.025 -> 0;
    # P(k<=5) = 0.9527 < 0.975 <= P(k<=6) = 0.9894 -> 0.6. 92,378 count vectors, still exact.
    x = np.array([1.0] * 3 + [0.0] * 7)
    rs = resamples(10)
    assert rs.exact and len(rs.probs) == 92378
    assert interval(rs.means(x), rs.probs) == (0.0, 0.6)
    assert math.isclose(rs.probs[rs.means(x) == 0].sum(), 0.7**10)
    # beyond max_exact: seeded Monte Carlo, the same for a seed, and here the same atoms
    mc = resamples(10, max_exact=0, draws=20000, seed=3)
    assert not mc.exact and np.array_equal(mc.counts, resamples(10, max_exact=0, draws=20000, seed=3).counts)
    assert interval(mc.means(x), mc.probs) == (0.0, 0.6)
    one = resamples(1)
    assert interval(one.means(np.array([2.5])), one.probs) == (2.5, 2.5)
    assert all(math.isnan(v) for v in interval(np.array([1.0, np.inf]), np.array([0.5, 0.5])))


# ------------------------------------------------------------------------------------------------
# the protocol on a strong D, determinism, resume


def _scores(res) -> dict:
    """Every score of a run (not its timings)."""
    keep = ("psnr", "psnr_ci", "ssim", "ssim_ci", "per_image")
    return {
        sc: {
            "sources": {n: {k: r[k] for k in keep} for n, r in s["sources"].items()},
            **{k: s.get(k) for k in ("gain", "closure", "closure_ci", "protocol", "target")},
        }
        for sc, s in res.report["scales"].items()
    }


@pytest.fixture(scope="module")
def run_x2(images, bank, tmp_path_factory):
    return _run(images, bank, tmp_path_factory.mktemp("x2") / "out", scale=2)


def test_the_oracle_beats_downsampling_only_on_a_strong_degradation(run_x2) -> None:
    rep = run_x2.report
    assert rep["kind"] == "eval-downstream" and set(rep["scales"]) == {"x1", "x2"} and not run_x2.failures
    for sc, s in rep["scales"].items():
        src = s["sources"]
        assert set(src) == {"bank", "bank (no calibration)", "preset:bsrgan-x2", "bicubic-only", "oracle",
                            "unrestored"}  # fmt: skip
        # the restorer trained on D's own pairs undoes the fading; the one trained on clean pairs cannot
        assert src["oracle"]["psnr"] > src["bicubic-only"]["psnr"] + 3, sc
        assert s["protocol"]["can_tell"] and s["protocol"]["oracle_gain_ci"][0] > 0
        assert s["bootstrap"] == {"units": 2, "resamples": 3, "exact": True}
        lo, hi = src["oracle"]["psnr_ci"]
        assert lo <= src["oracle"]["psnr"] <= hi
        assert s["best_preset"] == "preset:bsrgan-x2" and s["target"]["kind"] == "deterministic"
        assert src["bank"]["transfer_distance"] is not None and src["oracle"]["transfer_distance"] is None
        assert all(r["pairs"] == 9 and not r["kept"] for r in s["runs"].values())  # 3 images x 3 crops
        assert (run_x2.out / f"sheet-{sc}.png").is_file()
    # closure and gain are what the per-source means say
    s = rep["scales"]["x1"]["sources"]
    best, bank_, oracle = s["preset:bsrgan-x2"]["psnr"], s["bank"]["psnr"], s["oracle"]["psnr"]
    assert rep["scales"]["x1"]["closure"] == pytest.approx((bank_ - best) / (oracle - best), abs=2e-3)
    assert rep["scales"]["x1"]["gain"]["psnr"] == pytest.approx(bank_ - best, abs=2e-3)


def test_one_seed_gives_identical_scores(images, bank, run_x2, tmp_path) -> None:
    again = _run(images, bank, tmp_path / "again", scale=1)
    assert _scores(again)["x1"] == _scores(run_x2)["x1"]


def test_resume_keeps_finished_sources(images, bank, run_x2, tmp_path) -> None:
    out, done = tmp_path / "r", []

    def stop_after_two(n: int, **fields) -> None:
        if n == 1:
            done.append(fields["source"])
            if len(done) == 2:
                raise KeyboardInterrupt  # as Ctrl-C after the second source

    with pytest.raises(KeyboardInterrupt):
        _run(images, bank, out, progress=stop_after_two)
    results = {p.parent.name: p for p in (out / "sources").glob("*/result.json")}
    assert sorted(results) == ["bank-nocal-x1", "bank-x1"]
    before = {k: (p.read_bytes(), p.stat().st_mtime_ns) for k, p in results.items()}
    said: list[str] = []
    res = _run(images, bank, out, resume=True, progress=lambda n, **f: said.append(str(f.get("step", ""))))
    assert "eval transfer: finished before, kept" in said
    assert (
        "x1 bank: finished before, kept" in said and "x1 bank (no calibration): finished before, kept" in said
    )
    assert not any(m.startswith("x1 bank") and "training" in m for m in said)  # not retrained
    assert any(m.startswith("x1 oracle: training") for m in said)
    for k, p in results.items():
        assert (p.read_bytes(), p.stat().st_mtime_ns) == before[k]
    runs = res.report["scales"]["x1"]["runs"]
    assert runs["bank"]["kept"] and runs["bank (no calibration)"]["kept"] and not runs["oracle"]["kept"]
    assert _scores(res)["x1"] == _scores(run_x2)["x1"]  # the same scores as a run never interrupted


# ------------------------------------------------------------------------------------------------
# failures and bad input


def _toml_table(name: str, d: dict) -> str:
    flat = {k: v for k, v in d.items() if not isinstance(v, dict)}
    lines = [f"[{name}]", *(f"{k} = {json.dumps(v)}" for k, v in flat.items())]
    for k, v in d.items():
        if isinstance(v, dict):
            lines.append(_toml_table(f"{name}.{k}", v))
    return "\n".join(lines) + "\n"


def test_a_source_without_pairs_fails_by_name(images, bank, tmp_path) -> None:
    from redegkit.degrade import get_preset
    from redegkit.eval.downstream_sources import Setup, SourceError, run_source, source_specs
    from redegkit.weights import sha256_file

    train = tmp_path / "train"  # training crops that no longer decode (a disk that lost them)
    train.mkdir()
    keys = [f"camera-c{i:02d}" for i in range(3)]
    for k in keys:
        (train / f"{k}.png").write_bytes(b"not a png")
    setup = Setup(tmp_path / "out", DownstreamConfig(**TINY), resolve_config("train_sr", None, TINY_SR),
                  resolve_config("upscale", "eval-sr"), bank, sha256_file(bank), get_preset("fade", USER),
                  USER, train, keys, [], {}, {}, {})  # fmt: skip
    specs = {s.name: s for s in source_specs(["bsrgan-x2"], "bicubic")}
    for name in ("preset:bsrgan-x2", "bank"):
        with pytest.raises(SourceError, match=rf"^{re.escape(name)} x1: no training pairs \(0 of 3 crops\); "
                           "first failure: .*camera-c00"):  # fmt: skip
            run_source(setup, specs[name], 1)
    assert not (tmp_path / "out" / "sources" / "preset-bsrgan-x2-x1" / "result.json").exists()


def test_cli_writes_the_table_the_report_and_the_sheet(images, bank, tmp_path) -> None:
    presets = tmp_path / "presets.toml"
    presets.write_text(
        '[presets.fade]\nsteps = [{ op = "color", contrast = 0.4, offset_r = 60, offset_g = 60, offset_b = 60 }]\n'
    )
    (tmp_path / "sr.toml").write_text(_toml_table("train_sr", TINY_SR))
    (tmp_path / "r.toml").write_text(_toml_table("eval_downstream", {**TINY, "scale": 1}))
    out = tmp_path / "out"
    args = ["eval", "downstream", str(images["grass"]), str(images["gravel"]), "-f", str(images["astronaut"]),
            "--train", str(images["camera"]), "--train", str(images["brick"]), "-d", "fade", "--presets",
            str(presets), "--bank", str(bank), "--sr-recipe", str(tmp_path / "sr.toml"),
            "-r", str(tmp_path / "r.toml"), "-o", str(out), "--html", str(tmp_path / "d.html")]  # fmt: skip
    r = runner.invoke(app, [*args, "--json", "-q"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    sources = doc["scales"]["x1"]["sources"]
    assert set(sources) == {"bank", "bank (no calibration)", "preset:bsrgan-x2", "bicubic-only", "oracle",
                            "unrestored"}  # fmt: skip
    assert doc["x1"]["best_preset"] == "preset:bsrgan-x2" and set(doc["sheets"]) == {"x1"}
    assert doc["x1"]["protocol"]["can_tell"] and not doc["failures"]
    assert detect_kind(out) == "downstream" and Path(doc["html"]).is_file()
    html = write_report(out, tmp_path / "again.html")
    assert html.kind == "downstream" and "Restorers at x1" in html.sections
    assert html.path.read_text().count("<img ") >= 2
    # the table, from the finished sources (--resume keeps every one)
    r = runner.invoke(app, [*args, "--resume"])
    assert r.exit_code == 0, r.output
    assert "protocol can tell" in r.output and "oracle" in r.output and "closure" in r.output


def test_bad_input_is_a_clear_error(images, bank, tmp_path) -> None:
    srcs = lambda *names: list_sources([str(images[n]) for n in names])  # noqa: E731
    sr = resolve_config("train_sr", None, TINY_SR)
    common = dict(cfg=DownstreamConfig(**TINY), sr_cfg=sr, bank=bank, user_presets=USER)
    with pytest.raises(ValueError, match="grass.*both a training and a test image"):
        eval_downstream(srcs("astronaut"), srcs("grass"), srcs("grass", "brick"), "fade", tmp_path, **common)
    with pytest.raises(ValueError, match="unknown preset source.*nope"):
        eval_downstream(srcs("astronaut"), srcs("grass"), srcs("brick"), "fade", tmp_path, extra_presets=["nope"],
                        **common)  # fmt: skip
    big = resolve_config("train_sr", None, {**TINY_SR, "data": {**TINY_SR["data"], "hq_crop": 128}})
    with pytest.raises(ValueError, match="patch \\(128 px\\) is larger than train_crop 64"):
        eval_downstream(srcs("astronaut"), srcs("grass"), srcs("brick"), "fade", tmp_path,
                        **{**common, "sr_cfg": big})  # fmt: skip
    with pytest.raises(ValueError, match="x1, x2 or x4"):
        DownstreamConfig(scale=3)
    with pytest.raises(ValueError, match="train_crop 100 must be a multiple of 8"):
        DownstreamConfig(train_crop=100)


def test_sr_steps_below_the_recipes_l1_phase_is_accepted(images, bank, tmp_path) -> None:
    """--sr-steps 2 with the shipped eval-sr (400 L1-only steps) cuts the L1 phase to fit instead of
    refusing the recipe: the run gets as far as the unknown degradation."""
    args = ["eval", "downstream", str(images["grass"]), "-f", str(images["astronaut"]), "--train",
            str(images["brick"]), "-d", "no-such-d", "--bank", str(bank), "--sr-steps", "2", "-o", str(tmp_path / "o")]  # fmt: skip
    r = runner.invoke(app, args)
    assert r.exit_code != 0 and "no-such-d" in r.output and "pretrain_steps" not in r.output, r.output


def test_lpips_and_dists_where_their_weights_are_installed(
    images, bank, run_x2, tmp_path, monkeypatch
) -> None:
    """Without the weights the report says which are missing and how to install them; once they
    are installed, --resume keeps every trained source and adds LPIPS and DISTS from its
    restorations (random VGG16 weights in the official layout here)."""
    import shutil

    from redegkit.io.images import decode_image
    from redegkit.metrics.perceptual import load_perceptual, perceptual_scores

    from .test_perceptual_metrics import write_perceptual_weights

    wdir, home = tmp_path / "weights", tmp_path / "home"
    wdir.mkdir(), home.mkdir()
    monkeypatch.setenv("REDEG_WEIGHTS_DIR", str(wdir))
    monkeypatch.setenv("HOME", str(home))
    out = tmp_path / "out"
    shutil.copytree(run_x2.out, out)
    said: list[str] = []
    bare = _run(
        images, bank, out, scale=2, resume=True, progress=lambda n, **f: said.append(str(f.get("step", "")))
    )
    assert (
        "missing weights" in bare.report["perceptual"]["lpips"]
        and "redeg weights" in bare.report["perceptual"]["lpips"]
    )
    assert not any("lpips" in r for s in bare.report["scales"].values() for r in s["sources"].values())
    write_perceptual_weights(wdir)
    said.clear()
    res = _run(
        images, bank, out, scale=2, resume=True, progress=lambda n, **f: said.append(str(f.get("step", "")))
    )
    assert res.report["perceptual"] == {"lpips": "computed", "dists": "computed"}
    assert not any("training" in m for m in said)  # every source kept, none retrained
    for sc, s in res.report["scales"].items():
        for name, row in s["sources"].items():
            for m in ("lpips", "dists"):
                lo, hi = row[f"{m}_ci"]
                assert row[m] >= 0 and lo <= row[m] <= hi, (sc, name, m)
        # the restorer trained on D's own pairs is closer to the clean crops than its input
        assert s["sources"]["oracle"]["lpips"] < s["sources"]["unrestored"]["lpips"], sc
    # the report's mean is the mean over test images of the metric on the restored PNGs
    lp = load_perceptual("lpips")
    setup_keys = res.report["test_crops"]
    clean = [decode_image(out / "transfer" / "crops" / f"{k}.png") for k in setup_keys]
    got = [decode_image(out / "sources" / "oracle-x1" / "restored" / f"{k}.png") for k in setup_keys]
    vals = perceptual_scores(lp, got, clean)
    per_im = {}
    for k, v in zip(setup_keys, vals, strict=True):
        per_im.setdefault(k.rsplit("-c", 1)[0], []).append(v)
    want = float(np.mean([np.mean(v) for v in per_im.values()]))
    assert res.report["scales"]["x1"]["sources"]["oracle"]["lpips"] == pytest.approx(want, abs=1e-4)
