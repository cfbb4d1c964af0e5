"""train-sr on tiny models and tiny shards: learning, exact resume, corrupt samples, data processing."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from redegkit.config import ConfigError, resolve_config
from redegkit.io.images import to_tensor
from redegkit.models import load_checkpoint
from redegkit.models.rrdb import RRDBNet
from redegkit.run import RunContext
from redegkit.sr.config import SRDataConfig
from redegkit.sr.data import DataError, HighResLQ, TrainStream, detect_lq_resolution, load_val_set
from redegkit.sr.train import train_sr
from redegkit.sr.upscale import load_sr_model
from redegkit.weights import WeightsMissingError

from .sr_helpers import TINY, write_shard

pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(**over):
    data = {**TINY, **over}
    for k in ("model", "data", "loss", "optim"):
        data[k] = {**TINY.get(k, {}), **over.get(k, {})}
    return resolve_config("train_sr", None, data)


def _records(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def _losses(out: Path) -> dict[int, dict]:
    return {
        r["step"]: {k: v for k, v in r.items() if k in ("l1", "g_gan", "d")}
        for r in _records(out)
        if "l1" in r
    }


@pytest.fixture(scope="module")
def shard(tmp_path_factory) -> Path:
    return write_shard(tmp_path_factory.mktemp("shards") / "shard-000000.tar", n=8)


def test_l1_phase_lowers_the_loss(shard, tmp_path):
    cfg = _cfg(steps=40, pretrain_steps=40, batch=4, ckpt_every=1000, optim={"lr_g": 5e-3})
    res = train_sr(cfg, str(shard), tmp_path / "run")
    l1 = [r["l1"] for r in _records(tmp_path / "run")]
    assert len(l1) == 40 and all(r["phase"] == "net" for r in _records(tmp_path / "run"))
    assert "d" not in res.last_losses  # no discriminator in the net phase
    ratio = np.mean(l1[-5:]) / np.mean(l1[:5])
    assert ratio < 0.7, f"L1 went {np.mean(l1[:5]):.3f} -> {np.mean(l1[-5:]):.3f}"


def test_mse_loss_is_the_mean_squared_error_to_the_clean_hq_and_lowers(shard, tmp_path):
    """loss.mse trains on the mean squared error to the HQ itself (never USM-sharpened), the term
    PSNR scores; its first logged value is that error of the fresh generator on the first batch."""
    cfg = _cfg(steps=40, pretrain_steps=40, batch=4, ckpt_every=1000, log_every=1, optim={"lr_g": 5e-3},
               loss={"l1": 0.0, "mse": 1.0, "usm_targets": ["l1"]})  # fmt: skip
    train_sr(cfg, str(shard), tmp_path / "run")
    recs = _records(tmp_path / "run")
    mse = [r["mse"] for r in recs]
    assert len(mse) == 40 and not any("l1" in r for r in recs)
    assert np.mean(mse[-5:]) / np.mean(mse[:5]) < 0.7, mse
    with pytest.raises(ValueError, match="no generator loss is on .l1, mse, perceptual"):
        train_sr(
            _cfg(steps=2, pretrain_steps=2, loss={"l1": 0.0, "mse": 0.0, "gan": 0.0}),
            str(shard),
            tmp_path / "none",
        )


def test_resume_continues_exactly(shard, tmp_path):
    # segments of 3 steps: the resume point (4) falls inside a segment, so a batch is replayed
    full = _cfg(steps=8, pretrain_steps=2)
    train_sr(full, str(shard), tmp_path / "a")
    train_sr(_cfg(steps=4, pretrain_steps=2), str(shard), tmp_path / "b")
    res = train_sr(full, str(shard), tmp_path / "b", resume=True)
    assert res.start_step == 4 and res.step == 8
    a, b = _losses(tmp_path / "a"), _losses(tmp_path / "b")
    assert set(a) == set(range(1, 9)) and {"l1", "g_gan", "d"} <= set(a[8])
    for s in range(5, 9):
        assert a[s] == b[s], f"step {s}: {a[s]} vs {b[s]}"
    ga, gb = (load_checkpoint(tmp_path / r / "net_g_ema.pt") for r in ("a", "b"))
    for (k, va), vb in zip(ga.state_dict().items(), gb.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k


def test_resume_from_an_older_checkpoint_logs_each_step_once(shard, tmp_path):
    # a run killed hard after step 7 (no final save): its last.pt is the step-4 checkpoint,
    # while metrics.jsonl already holds steps 5..7; resuming must not log them twice
    import shutil

    cfg = _cfg(steps=8, pretrain_steps=2, ckpt_every=4)
    train_sr(cfg, str(shard), tmp_path / "b")
    ck = tmp_path / "b" / "checkpoints"
    shutil.copy(ck / "step-0000004.pt", ck / "last.pt")
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    (tmp_path / "b" / "metrics.jsonl").write_text(
        "".join(ln + "\n" for ln in lines if json.loads(ln)["step"] <= 7)
    )
    res = train_sr(cfg, str(shard), tmp_path / "b", resume=True)
    assert res.start_step == 4
    assert [r["step"] for r in _records(tmp_path / "b") if "l1" in r] == list(range(1, 9))


@pytest.mark.slow
def test_compiled_step_matches_eager_on_cpu(shard, tmp_path):
    # --compile on the CPU (Inductor, C++): the L1 phase of 3 steps, compiled vs eager, from one init
    cfg = {"steps": 3, "pretrain_steps": 3, "ckpt_every": 1000, "val_every": 1000}
    eager = train_sr(_cfg(**cfg), str(shard), tmp_path / "eager")
    compiled = train_sr(_cfg(**cfg, compile=True), str(shard), tmp_path / "compiled")
    le, lc = _losses(tmp_path / "eager"), _losses(tmp_path / "compiled")
    assert set(le) == set(lc) == {1, 2, 3}
    for s in le:
        assert lc[s]["l1"] == pytest.approx(le[s]["l1"], rel=1e-4, abs=1e-6), s
    ge, gc = (load_checkpoint(tmp_path / r / "net_g.pt") for r in ("eager", "compiled"))
    for (k, va), vb in zip(ge.state_dict().items(), gc.state_dict().values(), strict=True):
        assert torch.allclose(va, vb, atol=1e-4), k
    assert eager.step == compiled.step == 3


def test_a_failure_saves_the_state_and_resume_continues(shard, tmp_path, monkeypatch, caplog):
    from redegkit.sr.step import GANStep

    monkeypatch.setattr(logging.getLogger("redegkit"), "propagate", True)  # a CLI test may have cut it
    full = _cfg(steps=6, pretrain_steps=2)
    train_sr(full, str(shard), tmp_path / "a")
    real_call, calls = GANStep.__call__, []

    def failing_call(self, *args, **kw):
        calls.append(1)
        if len(calls) == 4:  # three steps finished, none of them at a checkpoint step
            raise RuntimeError("injected failure")
        return real_call(self, *args, **kw)

    monkeypatch.setattr(GANStep, "__call__", failing_call)
    with pytest.raises(RuntimeError, match="injected failure"):
        train_sr(full, str(shard), tmp_path / "b")
    assert torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)["step"] == 3
    assert "stopped after step 3" in caplog.text and "injected failure" in caplog.text
    monkeypatch.setattr(GANStep, "__call__", real_call)
    res = train_sr(full, str(shard), tmp_path / "b", resume=True)
    assert res.start_step == 3 and res.step == 6
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")  # as if it had never failed


def test_checkpoints_and_exports(shard, tmp_path):
    out = tmp_path / "run"
    train_sr(_cfg(steps=8), str(shard), out)
    ck = out / "checkpoints"
    assert sorted(p.name for p in ck.iterdir()) == ["last.pt", "step-0000004.pt", "step-0000008.pt"]
    g = load_checkpoint(out / "net_g_ema.pt")
    assert isinstance(g, RRDBNet) and g.hparams["num_feat"] == 8
    assert isinstance(load_sr_model(ck / "last.pt"), RRDBNet)  # a training state works for upscale too
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train_sr(_cfg(steps=8), str(shard), tmp_path / "empty", resume=True)


def test_corrupt_sample_is_counted_and_skipped(tmp_path):
    bad = write_shard(tmp_path / "shard-000000.tar", n=5, corrupt_keys=(1,))
    res = train_sr(_cfg(steps=3, batch=2), str(bad), tmp_path / "run")
    assert res.step == 3
    assert res.corrupt_samples >= 1
    assert _records(tmp_path / "run")[-1]["corrupt_samples"] == res.corrupt_samples


def test_all_corrupt_is_a_clear_error(tmp_path):
    bad = write_shard(tmp_path / "shard-000000.tar", n=2, corrupt_keys=(0, 1))
    with pytest.raises(DataError, match="no readable|no usable"):
        train_sr(_cfg(steps=2), str(bad), tmp_path / "run")


def test_missing_shards_and_bad_config(tmp_path):
    with pytest.raises(DataError, match="not found"):
        train_sr(_cfg(steps=2), str(tmp_path / "nope-{000000..000001}.tar"), tmp_path / "run")
    with pytest.raises(ConfigError, match="hq_crop"):
        _cfg(data={"hq_crop": 30})


def test_hq_sized_lq_is_noised_and_resized(tmp_path):
    shard = write_shard(tmp_path / "shard-000000.tar", n=4, lq_high=True)
    assert detect_lq_resolution([str(shard)]) == "high"
    cfg = SRDataConfig(hq_crop=32, num_workers=0, shuffle_buffer=0)
    stream = TrainStream(str(shard), cfg, scale=4, batch=2, seed=0)
    lq, hq = next(stream.batches())
    assert lq.shape == (2, 3, 8, 8) and hq.shape == (2, 3, 32, 32)
    assert lq.min() >= -1 and lq.max() <= 1
    # noise is drawn with p=noise_prob and sigma up to the max: always noise, sigma 0.2 here
    proc = HighResLQ(
        4,
        SRDataConfig(noise_prob=1.0, noise_sigma_max=0.2, resize_modes=["bicubic"]),
        np.random.default_rng(0),
    )
    flat = torch.zeros(3, 32, 32)
    noisy = [proc((flat, flat))[0] for _ in range(20)]
    assert all(n.shape == (3, 8, 8) for n in noisy)
    assert max(float(n.std()) for n in noisy) > 0.01  # some noise survives the resize


def test_low_res_lq_stream_is_aligned_and_deterministic(shard):
    cfg = SRDataConfig(hq_crop=32, num_workers=0, shuffle_buffer=4, segment_steps=2)
    s1 = TrainStream(str(shard), cfg, scale=4, batch=3, seed=1)
    assert s1.lq_resolution == "low"
    it = s1.batches()
    first = [next(it) for _ in range(5)]
    lq, hq = first[0]
    assert lq.shape == (3, 3, 8, 8) and hq.shape == (3, 3, 32, 32)
    # uint8 on the wire (a quarter of float32's bytes), mapped to [-1, 1] on the device exactly as to_tensor
    assert lq.dtype == hq.dtype == torch.uint8
    ctx = RunContext.local("cpu")
    img = hq[0].permute(1, 2, 0).numpy()
    assert torch.equal(ctx.to_device(hq[:1]), to_tensor(img)[None])
    lq, hq = ctx.to_device(lq), ctx.to_device(hq)
    # aligned: downscaled HQ is close to the LQ (both come from the same pixels)
    down = torch.nn.functional.interpolate(hq, scale_factor=0.25, mode="area")
    assert (down - lq).abs().mean() < 0.1
    # starting at batch 3 gives batches 3 and 4 of the stream from 0
    again = TrainStream(str(shard), cfg, scale=4, batch=3, seed=1).batches(3)
    for want in first[3:]:
        got = next(again)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_validation_folder_and_metrics(shard, tmp_path):
    from redegkit.io.images import write_image

    from .sr_helpers import textured

    val = tmp_path / "val"
    hq = textured(64, 64, 3)
    write_image(val / "hq" / "a.png", hq)
    write_image(val / "lq" / "a.png", hq[::4, ::4].copy())
    items = load_val_set(val, SRDataConfig(), 4)
    assert len(items) == 1 and items[0][1].shape == (16, 16, 3) and items[0][2].shape == (64, 64, 3)
    lq_only = load_val_set(val / "lq", SRDataConfig(), 4)  # a plain folder: previews, no metrics
    assert [(n, lq.shape, hq) for n, lq, hq in lq_only] == [("a", (16, 16, 3), None)]
    res = train_sr(_cfg(steps=2, val_every=2, val=str(val)), str(shard), tmp_path / "run")
    assert 5 < res.last_val["val_psnr_y"] < 60 and -1 <= res.last_val["val_ssim_y"] <= 1
    assert (tmp_path / "run" / "previews" / "step-0000002.png").is_file()


def test_unreadable_validation_images_are_skipped_and_named(tmp_path, caplog):
    from redegkit.io.images import write_image

    from .sr_helpers import textured

    val = tmp_path / "val"
    hq = textured(64, 64, 3)
    for name in ("a", "b"):
        write_image(val / "hq" / f"{name}.png", hq)
    write_image(val / "lq" / "a.png", hq[::4, ::4].copy())
    (val / "lq" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    write_image(val / "lq" / "c.png", hq[::8, ::8].copy())  # 8x8: its 64x64 HQ is not 4 x the LQ
    write_image(val / "hq" / "c.png", hq)
    with caplog.at_level("WARNING", logger="redegkit"):
        items = load_val_set(val, SRDataConfig(), 4)
    assert [n for n, _, _ in items] == ["a"]
    assert "b.png" in caplog.text and "c.png" in caplog.text
    with caplog.at_level("WARNING", logger="redegkit"):
        assert [n for n, _, _ in load_val_set(val / "lq", SRDataConfig(), 4)] == ["a", "c"]
    (val / "lq" / "a.png").write_bytes(b"")
    (val / "lq" / "c.png").unlink()
    with pytest.raises(DataError, match="no validation images"):
        load_val_set(val, SRDataConfig(), 4)


def test_perceptual_without_vgg_weights_is_a_clear_error(shard, tmp_path, monkeypatch):
    monkeypatch.setenv("REDEG_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(WeightsMissingError, match="vgg19"):
        train_sr(_cfg(steps=1, loss={"perceptual": 1.0}), str(shard), tmp_path / "run")


def test_init_from_realesrgan_file(shard, tmp_path):
    g = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4)
    torch.save({"params_ema": g.state_dict()}, tmp_path / "RealESRGAN_x4plus.pth")
    res = train_sr(_cfg(steps=1, init=str(tmp_path / "RealESRGAN_x4plus.pth")), str(shard), tmp_path / "run")
    assert res.step == 1
    assert load_checkpoint(tmp_path / "run" / "net_g.pt").input_range == "[0,1]"  # kept from the file


def test_new_generators_are_unit_range_and_an_official_init_keeps_its_own(shard, tmp_path):
    train_sr(_cfg(steps=1), str(shard), tmp_path / "new")
    assert load_checkpoint(tmp_path / "new" / "net_g.pt").input_range == "[0,1]"
    g = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4)
    torch.save({"params": g.state_dict()}, tmp_path / "net_f2n_g.pth")  # how ReDegNet publishes F2N
    train_sr(_cfg(steps=1, init=str(tmp_path / "net_f2n_g.pth")), str(shard), tmp_path / "f2n")
    assert load_checkpoint(tmp_path / "f2n" / "net_g.pt").input_range == "[-1,1]"


def test_stream_with_workers_resumes_exactly(tmp_path):
    shards = [str(write_shard(tmp_path / f"shard-{i:06d}.tar", n=4, seed=i)) for i in range(2)]
    cfg = SRDataConfig(hq_crop=32, num_workers=2, shuffle_buffer=4, segment_steps=4)
    stream = TrainStream(shards, cfg, scale=4, batch=2, seed=0)
    assert stream.num_workers == 2
    it = stream.batches()
    first = [next(it)[1] for _ in range(6)]
    it.close()
    again = TrainStream(shards, cfg, scale=4, batch=2, seed=0).batches(2)
    for want in first[2:]:
        assert torch.equal(next(again)[1], want)
    again.close()


def test_ema_update_is_the_decay_formula():
    from redegkit.sr.state import make_ema, update_ema

    g = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, scale=4)
    ema = make_ema(g)
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    with torch.no_grad():
        for p in g.parameters():
            p.add_(1.0)
    update_ema(ema, g, 0.999)
    now, gs = ema.state_dict(), g.state_dict()
    for k, v in before.items():
        assert torch.allclose(now[k], 0.999 * v + 0.001 * gs[k], atol=1e-6), k
    assert not any(p.requires_grad for p in ema.parameters()) and not ema.training
