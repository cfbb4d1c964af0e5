"""fit-degradation loop: learning on a fixed batch, bit-exact resume, validation, checkpoints."""

from __future__ import annotations

import json
import logging
import math

import cv2
import numpy as np
import pytest
import torch

from redegkit.config import resolve_config
from redegkit.fit.config import FitConfig
from redegkit.fit.data import build_dataset, collate, list_face_pairs
from redegkit.fit.loop import Fitter, fit_degradation
from redegkit.fit.step import FitModel, build_networks, lr_factor
from redegkit.io.sources import list_sources
from redegkit.models.checkpoints import load_fitted
from redegkit.weights import WeightsMissingError

from .fit_helpers import corrupt_png, make_face_pairs, natural_paths

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory):
    return make_face_pairs(tmp_path_factory.mktemp("pairs"))


def smoke(**over) -> FitConfig:
    return resolve_config("fit", "recipes/smoke.toml", over)


def metrics(run, split="train") -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["split"] == split]


def test_smoke_recipe_learns_a_fixed_batch(pairs_dir):
    cfg = smoke()
    pairs, _ = list_face_pairs(pairs_dir)
    ds = build_dataset(pairs, list_sources(natural_paths()), cfg.data, crop=cfg.crop, seed=0, length=100)
    batch = collate([ds[0], ds[1]])
    model = FitModel(cfg)

    def recon() -> float:
        out, _ = model.reconstruct(batch["face_hq"], batch["face_lq"])
        return float((out - model.to_device(batch["face_lq"])).abs().mean())

    start = recon()
    for step in range(cfg.steps):
        losses = model.train_step(batch, step)
        assert all(math.isfinite(float(v)) for v in losses.values())
    assert cfg.steps == 30
    assert recon() < 0.7 * start, (start, recon())


def test_resume_continues_bit_for_bit(tmp_path, pairs_dir):
    nat = natural_paths()
    full = fit_degradation(smoke(steps=6), pairs_dir, nat, tmp_path / "full", show_progress=False)
    assert full.steps == 6
    fit_degradation(smoke(steps=3), pairs_dir, nat, tmp_path / "cut", show_progress=False)
    resumed = fit_degradation(
        smoke(steps=6), pairs_dir, nat, tmp_path / "cut", resume=True, show_progress=False
    )
    assert resumed.start_step == 3 and resumed.steps == 6
    a, b = metrics(tmp_path / "full"), metrics(tmp_path / "cut")
    assert [r["step"] for r in b] == [1, 2, 3, 4, 5, 6]
    assert a == b  # every loss of every step, exactly
    sa, sb = (torch.load(tmp_path / d / "last.pt", weights_only=True) for d in ("full", "cut"))
    for name in sa["nets"]:
        for k, v in sa["nets"][name]["state_dict"].items():
            assert torch.equal(v, sb["nets"][name]["state_dict"][k]), (name, k)


def test_a_failure_saves_last_pt_and_resume_continues(tmp_path, pairs_dir, monkeypatch, caplog):
    nat = natural_paths()
    monkeypatch.setattr(logging.getLogger("redegkit"), "propagate", True)  # a CLI test may have cut it
    full = fit_degradation(smoke(steps=4), pairs_dir, nat, tmp_path / "full", show_progress=False)
    real_step = FitModel.train_step

    def failing_step(self, batch, step):
        if step == 2:  # after two finished steps: a bug, a bad batch, a full disk ...
            raise RuntimeError("injected failure")
        return real_step(self, batch, step)

    monkeypatch.setattr(FitModel, "train_step", failing_step)
    with pytest.raises(RuntimeError, match="injected failure"):
        fit_degradation(smoke(steps=4), pairs_dir, nat, tmp_path / "cut", show_progress=False)
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["step"] == 2
    assert "stopped after step 2" in caplog.text and "injected failure" in caplog.text
    monkeypatch.setattr(FitModel, "train_step", real_step)
    resumed = fit_degradation(
        smoke(steps=4), pairs_dir, nat, tmp_path / "cut", resume=True, show_progress=False
    )
    assert resumed.start_step == 2 and resumed.steps == full.steps == 4
    assert metrics(tmp_path / "full") == metrics(tmp_path / "cut")  # as if it had never failed


def test_existing_run_needs_resume_and_resume_needs_a_run(tmp_path, pairs_dir):
    fit_degradation(smoke(steps=1), pairs_dir, natural_paths(), tmp_path / "r", show_progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        Fitter(smoke(steps=2), pairs_dir, natural_paths(), tmp_path / "r")
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        Fitter(smoke(steps=2), pairs_dir, natural_paths(), tmp_path / "new", resume=True)


def test_validation_writes_metrics_preview_and_checkpoints(tmp_path, pairs_dir):
    run = tmp_path / "run"
    res = fit_degradation(
        smoke(steps=4, val_every=2, checkpoint_every=2), pairs_dir, natural_paths(), run, show_progress=False
    )
    val = metrics(run, "val")
    assert [r["step"] for r in val] == [2, 4]
    for r in val:
        assert 0 < r["recon_l1"] < 2 and 0 < r["psnr"] < 100 and r["emb_gap"] >= 0
    assert res.val == {k: v for k, v in val[-1].items() if k not in ("split", "step")}
    grid = cv2.imread(str(run / "previews" / "step_0000004.png"))
    n = min(smoke().preview_rows, res.n_val_pairs)
    # 64-px crops enlarged 3x (nearest) to 192 px; an 18-px caption bar under the first row
    assert grid.shape == (n * 192 + 18 + (n + 1) * 4, 4 * 192 + 5 * 4, 3)
    tile = grid[4 + 18 + 4 + 192 : 4 + 18 + 4 + 2 * 192, 4:196] if n > 1 else grid[4:196, 4:196]
    assert np.array_equal(tile[::3, ::3].repeat(3, 0).repeat(3, 1), tile)  # nearest: 3x3 blocks
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_0000002.pt", "step_0000004.pt"]
    report = json.loads((run / "report.json").read_text())
    assert report["steps"] == 4 and report["failures"] == []
    assert json.loads((run / "config.json").read_text())["crop"] == 64


def test_load_fitted_rebuilds_the_four_networks(tmp_path, pairs_dir):
    run = tmp_path / "run"
    fitter = Fitter(smoke(steps=2), pairs_dir, natural_paths(), run)
    fitter.fit(show_progress=False)
    nets = load_fitted(run / "last.pt")
    assert sorted(nets) == ["degnet", "discriminator", "encoder", "generator"]
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    ours = fitter.model.nets
    for net in ours.values():
        net.eval()
    with torch.no_grad():
        z = nets["degnet"](torch.cat([x, x.flip(-1)], 1))
        assert torch.equal(z, ours["degnet"](torch.cat([x, x.flip(-1)], 1)))
        assert torch.equal(nets["generator"](z, nets["encoder"](x)), ours["generator"](z, ours["encoder"](x)))
    assert not any(n.training for n in nets.values())


def test_corrupt_pair_is_reported_and_the_run_finishes(tmp_path):
    root = make_face_pairs(tmp_path / "p")
    bad = corrupt_png(root / "lq" / "astronaut12.png")
    run = tmp_path / "run"
    res = fit_degradation(
        smoke(steps=4, **{"data.val_fraction": 0.0}), root, natural_paths(), run, show_progress=False
    )
    assert res.steps == 4
    assert [f["path"] for f in res.failures] == [str(bad)]
    assert json.loads((run / "report.json").read_text())["failures"][0]["path"] == str(bad)


def test_from_official_initialises_from_official_format_files(tmp_path, pairs_dir):
    from redegkit.fit.step import OFFICIAL_FILES

    cfg = smoke()
    src = build_networks(cfg, seed=123)
    for name, fname in OFFICIAL_FILES.items():
        torch.save({"params": src[name].state_dict()}, tmp_path / fname)
    fitter = Fitter(cfg, pairs_dir, natural_paths(), tmp_path / "run", from_official=tmp_path)
    for name, net in fitter.model.nets.items():
        for k, v in src[name].state_dict().items():
            assert torch.equal(net.state_dict()[k], v), (name, k)
    (tmp_path / OFFICIAL_FILES["generator"]).unlink()
    with pytest.raises(FileNotFoundError, match="net_synG_init.pth"):
        Fitter(cfg, pairs_dir, natural_paths(), tmp_path / "run2", from_official=tmp_path)


def test_perceptual_without_vgg_weights_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("REDEG_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(WeightsMissingError, match="vgg19-dcbb9e9d.pth"):
        FitModel(smoke(**{"loss.use_perceptual": True}))


def test_paper_recipe_is_the_spec():
    cfg = resolve_config("fit", "recipes/paper.toml")
    assert (cfg.crop, cfg.batch, cfg.lr, cfg.steps, cfg.switch_p) == (256, 12, 1e-4, 160_000, 0.8)
    assert cfg.loss.use_perceptual and not cfg.interp_quirk and not cfg.vgg_range_quirk
    assert (cfg.loss.pixel, cfg.loss.perceptual, cfg.loss.style, cfg.loss.gan) == (10, 0.2, 160, 0.01)
    assert cfg.data.face_box == (60, 500, 60, 450) and cfg.model.style_dim == 512 and cfg.model.width == 1
    assert lr_factor(cfg, 159_999) == 1.0  # the reference's milestones lie beyond the run
    nets = build_networks(cfg)  # the official shapes (checked key by key in test_models_redeg)
    assert nets["degnet"].hparams == {"size": 256, "style_dim": 512, "width": 1.0}


@pytest.mark.slow
def test_paper_recipe_starts_on_cpu(tmp_path, pairs_dir):
    cfg = resolve_config(
        "fit",
        "recipes/paper.toml",
        {
            "steps": 1,
            "batch": 1,
            "loss.use_perceptual": False,
            "data.workers": 0,
            "data.val_fraction": 0.25,
        },
    )
    res = fit_degradation(cfg, pairs_dir, natural_paths(), tmp_path / "paper", show_progress=False)
    assert (
        res.steps == 1 and math.isfinite(res.train["g_total"]) and (tmp_path / "paper" / "last.pt").is_file()
    )


@pytest.mark.slow
def test_torchrun_two_cpu_ranks(tmp_path, pairs_dir):
    import os
    import shutil
    import subprocess
    import sys

    redeg = shutil.which("redeg", path=os.path.dirname(sys.executable))
    assert redeg is not None
    run = tmp_path / "ddp"
    # --standalone: a free rendezvous port, so nothing else on the machine (port 29500) can interfere
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        redeg,
        "fit-degradation",
        "--pairs",
        str(pairs_dir),
        "--natural",
        natural_paths()[0],
        "--recipe",
        "recipes/smoke.toml",
        "--out",
        str(run),
        "--steps",
        "4",
        "--batch",
        "1",
        "--json",
        "--quiet",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    if p.returncode != 0:  # show the first error lines of the ranks, not only the launcher's summary
        first = [ln for ln in p.stderr.splitlines() if "rror" in ln or "what()" in ln or "Traceback" in ln][
            :20
        ]
        pytest.fail(f"torchrun exit {p.returncode}:\n" + "\n".join(first) + "\n...\n" + p.stderr[-1500:])
    summaries = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1 and summaries[0]["steps"] == 4  # rank 0 speaks for the run
    assert [r["step"] for r in metrics(run)] == [1, 2, 3, 4]
    assert load_fitted(run / "last.pt")["degnet"].hparams["size"] == 64


def test_lr_schedules_and_the_switch_probability():
    cos = smoke(lr_schedule="cosine", steps=100, warmup_steps=10)
    assert lr_factor(cos, 0) == pytest.approx(0.1) and lr_factor(cos, 9) == pytest.approx(
        0.5 * (1 + math.cos(math.pi * 0.09))
    )
    assert lr_factor(cos, 50) == pytest.approx(0.5) and lr_factor(cos, 100) == pytest.approx(0.0)
    ms = smoke(lr_schedule="multistep", lr_milestones=[5, 8], lr_gamma=0.5)
    assert [lr_factor(ms, s) for s in (4, 5, 8)] == [1.0, 0.5, 0.25]
    model = FitModel(smoke())
    switches = [model.switch_at(s) for s in range(2000)]
    assert switches == [model.switch_at(s) for s in range(2000)]  # a function of the step
    assert 0.77 < sum(switches) / len(switches) < 0.83


def test_grad_clip_bounds_the_update(pairs_dir):
    cfg = smoke(grad_clip=1e-3)
    pairs, _ = list_face_pairs(pairs_dir)
    ds = build_dataset(pairs, list_sources(natural_paths()), cfg.data, crop=cfg.crop, seed=0, length=10)
    batch = collate([ds[0], ds[1]])
    clipped, free = FitModel(cfg), FitModel(smoke())

    # clipping works in place on the gradients, which stay on the parameters after the step
    clipped.train_step(batch, 0)
    norms = [float(p.grad.norm()) for p in clipped.nets["generator"].parameters() if p.grad is not None]
    assert math.sqrt(sum(n * n for n in norms)) <= 1e-3 * 1.01
    free.train_step(batch, 0)
    norms = [float(p.grad.norm()) for p in free.nets["generator"].parameters() if p.grad is not None]
    assert math.sqrt(sum(n * n for n in norms)) > 1e-3


@pytest.mark.parametrize("switch", [True, False])
def test_generator_losses_follow_the_spec_term_by_term(pairs_dir, switch):
    """The batched generator step equals the spec's losses written out one network call at a time:
    three reconstructions (the switch pairs zF with cN and zN with cF), pixel and perceptual averaged
    over them, style divided by 3 again, 100 L1(zN, zF), 4 / (10 L1(zR, zF) + 1e-7), 0.01 hinge-G."""
    import torch.nn.functional as F

    cfg = smoke(**{"loss.use_perceptual": True})
    pairs, _ = list_face_pairs(pairs_dir)
    ds = build_dataset(pairs, list_sources(natural_paths()), cfg.data, crop=cfg.crop, seed=0, length=10)
    model = FitModel(cfg, random_vgg=True)
    for net in model.nets.values():
        net.eval()  # spectral norm holds its vectors, so both computations see the same weights
    b = {
        k: model.to_device(v)
        for k, v in collate([ds[0], ds[1]]).items()
        if k in ("face_hq", "face_lq", "nat_hq", "nat_lq", "face_syn_lq")
    }
    D, E, G, S = (model.nets[k] for k in ("degnet", "encoder", "generator", "discriminator"))
    with torch.no_grad():
        z_r = D(torch.cat([b["face_hq"], b["face_lq"]], 1))
        z_n = D(torch.cat([b["nat_hq"], b["nat_lq"]], 1))
        z_f = D(torch.cat([b["face_hq"], b["face_syn_lq"]], 1))
        c_f, c_n = E(b["face_hq"]), E(b["nat_hq"])
        fake_real = G(z_r, c_f)
        fake_nat, fake_face = (G(z_f, c_n), G(z_n, c_f)) if switch else (G(z_n, c_n), G(z_f, c_f))
        recons = [(fake_real, b["face_lq"]), (fake_nat, b["nat_lq"]), (fake_face, b["face_syn_lq"])]
        pixel = sum(10 * F.l1_loss(x, y) for x, y in recons) / 3
        ps = [model.perceptual(x, y) for x, y in recons]
        percep = sum(p for p, _ in ps) / 3
        style = sum(s for _, s in ps) / 3 / 3
        same = 100 * F.l1_loss(z_n, z_f)
        contrast = 4 / (10 * F.l1_loss(z_r, z_f) + 1e-7)
        g_gan = 0.01 * -S(fake_real, b["face_hq"], z_r).mean()
    out, _, _ = model.generator_step(b, switch)
    expected = {
        "pixel": pixel,
        "perceptual": percep,
        "style": style,
        "same_deg": same,
        "contrastive": contrast,
        "g_gan": g_gan,
    }
    for k, v in expected.items():
        assert float(out[k]) == pytest.approx(float(v), rel=1e-4, abs=1e-6), k
    assert float(out["g_total"]) == pytest.approx(float(sum(expected.values())), rel=1e-4)
