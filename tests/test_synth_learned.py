"""`synthesize --bank`: determinism, identity path, tiling without seams, hybrid shares, resume, CLI."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from redegkit.bank import load_bank
from redegkit.bank.apply import Synthesizer, plan_tiles, synthesize_image, tile_starts
from redegkit.bank.operators import PSD_BINS, finalize, hash_normal
from redegkit.cli import app
from redegkit.io.images import decode_image, to_tensor
from redegkit.io.shards import iter_samples
from redegkit.io.sources import list_sources
from redegkit.synth import SynthConfig, synthesize
from redegkit.synth.learned import bank_producer

from .conftest import shrunk_examples
from .fit_helpers import corrupt_png
from .test_bank import make_bank, tiny_nets

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def bank_path(tmp_path_factory) -> Path:
    # 8 embeddings, each with a measured noise spectrum (the FFT noise path in every test here)
    return make_bank(tmp_path_factory.mktemp("bank"), each=True, noise=6.0)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Four example images shrunk to 96 px (small and fast), plus one odd size."""

    d = tmp_path_factory.mktemp("hq")
    shrunk_examples(d, ("astronaut", "brick", "chelsea", "coffee"), 96)
    return d


def cfg_for(bank: Path, **kw) -> SynthConfig:
    base = {"bank": str(bank), "crop": 32, "scale": 4, "tile": 32, "batch": 4, "device": "cpu", "seed": 3}
    return SynthConfig(**{**base, **kw})


def shard_hashes(out: Path) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.tar"))]


def samples(out: Path) -> dict[str, dict]:
    return {s["__key__"]: s for s in iter_samples(str(out))}


# ------------------------------------------------------------------------------------------------
# Determinism and provenance


def test_byte_identical_whatever_workers_and_batch(tmp_path: Path, bank_path: Path, inputs: Path) -> None:
    """Workers 1, 2 and 3 and batches 1, 3 and 8 give the same shard bytes (torch's default thread
    count: the in-process run once left it at the workers' one thread, which moved low bits)."""
    srcs = list_sources([str(inputs)])
    kw = {
        "max_patches": 3,
        "mix": True,
        "noise_prob": 0.5,
        "mix_preset": "realesrgan:0.3",
        "shard_max_count": 5,
    }
    runs = [(1, 4), (2, 1), (2, 3), (3, 8)]
    res = {wb: synthesize(srcs, tmp_path / f"w{wb[0]}b{wb[1]}", cfg_for(bank_path, workers=wb[0], batch=wb[1], **kw))
           for wb in runs}  # fmt: skip
    first = res[runs[0]]
    assert first.samples == 12 and not first.failures and len(first.shards) > 1
    for w, b in runs[1:]:
        assert shard_hashes(tmp_path / f"w{w}b{b}") == shard_hashes(tmp_path / "w1b4"), (w, b)
    rt = json.loads(first.report_path.read_text())["runtime"]
    assert rt["device"] == "cpu" and rt["torch_threads"] == torch.get_num_threads()
    s = samples(tmp_path / "w1b4")
    metas = [json.loads(v["json"]) for v in s.values()]
    bank_sha = load_bank(bank_path).sha256
    learned = [m for m in metas if m["method"]["kind"] == "bank"]
    assert learned and all(m["method"]["bank_sha256"] == bank_sha for m in learned)
    m = learned[0]["method"]
    assert len(m["indices"]) == 2 and sum(m["mix_weights"]) == pytest.approx(1)
    assert m["downsample"] in ("bilinear", "bicubic") and 0 <= m["noise_sigma"] <= 0.2 and m["strength"] == 1
    for v in s.values():  # aligned pairs: hq = 4 x lq
        hq, lq = decode_image(v["hq.png"]), decode_image(v["lq.png"])
        assert hq.shape == (32, 32, 3) and lq.shape == (8, 8, 3)


def test_a_sample_is_computed_alone_on_the_cpu() -> None:
    """The synthesizer's output for a sample is bit for bit the same in any batch and with any
    number of torch threads: on the CPU every image runs alone (oneDNN's low bits depend on the
    batch shape: batched, the same sample differs by ~1e-8, enough to move a rounded pixel)."""
    _, e, g = tiny_nets()
    x = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    z = torch.randn(5, 32, generator=torch.Generator().manual_seed(2))
    synth = Synthesizer(e, g)
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        alone = torch.cat([synth(x[i : i + 1], z[i : i + 1]) for i in range(5)])
        torch.set_num_threads(2)
        assert torch.equal(synth(x, z), alone) and torch.equal(synth(x[2:4], z[2:4]), alone[2:4])
    finally:
        torch.set_num_threads(n)


def test_strength_zero_is_exactly_the_hq(tmp_path: Path, bank_path: Path, inputs: Path) -> None:
    """Strength blends in image space: 0 gives the HQ itself (downsampled), not G(identity), whatever
    the bank's generator or calibration; 1 gives the bank's degradation."""
    srcs = list_sources([str(inputs / "brick.png")])
    kw = {"max_patches": 2, "noise_prob": 0.0, "down": ["bicubic"]}
    outs = {}
    for name, extra in {
        "s0": {"strength": 0.0},
        "s0_other_seed": {"strength": 0.0, "seed": 99},
        "s1": {"strength": 1.0},
    }.items():
        synthesize(srcs, tmp_path / name, cfg_for(bank_path, **kw, **extra))
        outs[name] = [decode_image(v["lq.png"]) for _, v in sorted(samples(tmp_path / name).items())]
    hqs = [decode_image(v["hq.png"]) for _, v in sorted(samples(tmp_path / "s0").items())]
    want = finalize(
        to_tensor(np.stack(hqs)),
        scale=4,
        interps=["bicubic"] * len(hqs),
        sigmas=[0.0] * len(hqs),
        seeds=[0] * len(hqs),
    )
    for got, ref in zip(outs["s0"], want.numpy(), strict=True):
        assert np.array_equal(got, ref)
    assert all(np.array_equal(a, b) for a, b in zip(outs["s0"], outs["s0_other_seed"], strict=True))
    assert any(not np.array_equal(a, b) for a, b in zip(outs["s0"], outs["s1"], strict=True))


# ------------------------------------------------------------------------------------------------
# Tiling


class _Pointwise:
    """A per-pixel stand-in for the synthesizer: tiling must reproduce it exactly."""

    device = torch.device("cpu")
    multiple = 16

    def __call__(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(0.7 * x + z[:, :3, None, None])


def test_tile_plan_and_blend_weights_are_exact() -> None:
    p = plan_tiles(100, 70, 32, 16, 16)
    assert (p.ph, p.pw, p.shape) == (112, 80, (32, 32)) and len(p.origins) == 6 * 4
    assert tile_starts(112, 32, 16) == [0, 16, 32, 48, 64, 80]
    single = plan_tiles(40, 20, 64, 16, 16)
    assert single.origins == [(0, 0)] and single.shape == (48, 32)
    x = torch.rand(3, 100, 70) * 2 - 1
    z = torch.tensor([0.1, -0.2, 0.3, 0.0])
    want = _Pointwise()(x[None], z[None])[0]
    for tile, overlap in ((32, 16), (48, 16), (512, 64)):
        got = synthesize_image(_Pointwise(), x, z, tile=tile, overlap=overlap, batch=5)
        assert got.shape == (3, 100, 70) and torch.allclose(got, want, atol=1e-6)


def _seam_ratio(y: torch.Tensor, tile: int, overlap: int) -> float:
    """Mean horizontal gradient on the columns where tiles start or end, over the mean elsewhere."""
    g = (y[:, :, 1:] - y[:, :, :-1]).abs().mean(dim=(0, 1))
    starts = tile_starts(y.shape[-1], tile, overlap)
    edges = sorted({s - 1 for s in starts[1:]} | {s + tile - 1 for s in starts[:-1]})
    mask = torch.zeros_like(g, dtype=torch.bool)
    mask[[e for e in edges if 0 <= e < len(g)]] = True
    return float(g[mask].mean() / g[~mask].mean())


def test_tiling_has_no_seams() -> None:
    _, e, g = tiny_nets()
    synth = Synthesizer(e, g)
    z = torch.randn(32, generator=torch.Generator().manual_seed(0))
    const = torch.full((3, 128, 128), 0.2)
    whole = synthesize_image(synth, const, z, tile=512)
    tiled = synthesize_image(synth, const, z, tile=64, overlap=32, batch=16)  # 3 x 3 tiles, blended
    hard = synthesize_image(synth, const, z, tile=64, overlap=0)  # 2 x 2 tiles, cut without blending
    # A constant image gives a constant output: no more variation than the untiled network's own
    # (zero-padding) response, a few grey levels at most.
    assert float(tiled.std()) <= 1.25 * float(whole.std()) and float(tiled.max() - tiled.min()) < 8 / 127.5
    # Tile borders look like tile centres; cut tiles show their seams (so the check can fail).
    assert _seam_ratio(tiled, 64, 32) < 1.25 and _seam_ratio(hard, 64, 0) > 3.0
    # On a textured image the columns themselves may be special (bricks have rows and columns),
    # so there the ratio is taken relative to the untiled output's ratio on the same columns.
    brick = to_tensor(decode_image(EXAMPLES / "brick.png")[:128, :128])
    whole = _seam_ratio(synthesize_image(synth, brick, z, tile=512), 64, 32)
    assert (
        _seam_ratio(synthesize_image(synth, brick, z, tile=64, overlap=32, batch=16), 64, 32) / whole < 1.25
    )
    whole = _seam_ratio(synthesize_image(synth, brick, z, tile=512), 64, 0)
    assert _seam_ratio(synthesize_image(synth, brick, z, tile=64, overlap=0), 64, 0) / whole > 3.0


def test_whole_image_mode_pads_and_tiles(tmp_path: Path, bank_path: Path) -> None:
    import cv2

    d = tmp_path / "in"
    d.mkdir()
    img = decode_image(EXAMPLES / "coffee.png")
    cv2.imwrite(str(d / "odd.png"), cv2.resize(img, (100, 72))[..., ::-1])  # not a multiple of 16 (or 64)
    res = synthesize(
        list_sources([str(d)]), tmp_path / "out", cfg_for(bank_path, crop=None, tile=48, tile_overlap=16)
    )
    (s,) = samples(tmp_path / "out").values()
    meta = json.loads(s["json"])
    assert decode_image(s["hq.png"]).shape == (72, 100, 3) and decode_image(s["lq.png"]).shape == (18, 25, 3)
    assert meta["method"]["tiles"] == 3 * 2 and res.samples == 1  # padded to 112x80: 48 px tiles, stride 32
    # Two tiled images of different sizes finishing in the same batch.
    cv2.imwrite(str(d / "other.png"), cv2.resize(img, (60, 52))[..., ::-1])
    res = synthesize(
        list_sources([str(d)]), tmp_path / "two", cfg_for(bank_path, crop=None, tile=32, batch=64)
    )
    got = {
        json.loads(s["json"])["source"]: decode_image(s["lq.png"]).shape
        for s in samples(tmp_path / "two").values()
    }
    assert got == {"odd.png": (18, 25, 3), "other.png": (13, 15, 3)} and not res.failures


# ------------------------------------------------------------------------------------------------
# Noise, hybrid shares, failures, resume


def test_hash_noise_is_gaussian_and_reproducible() -> None:
    a = hash_normal([7, 8], (3, 64, 64))
    assert torch.equal(a, hash_normal([7, 8], (3, 64, 64)))  # a function of the seed only
    assert torch.equal(a[1], hash_normal([8], (3, 64, 64))[0])  # ... not of the batch it is in
    assert abs(float(a.mean())) < 0.02 and abs(float(a.std()) - 1) < 0.02
    assert abs(float((a[0] * a[1]).mean())) < 0.02  # two seeds are uncorrelated
    assert abs(float((a[0, :, :, 1:] * a[0, :, :, :-1]).mean())) < 0.02  # neighbours too


def test_hybrid_share_within_binomial_tolerance(tmp_path: Path, bank_path: Path, inputs: Path) -> None:
    srcs = list_sources([str(inputs)])
    share = 0.3
    cfg = cfg_for(
        bank_path, crop=16, stride=16, mix_preset=f"realesrgan:{share}", noise_prob=0, batch=16, tile=16
    )
    synthesize(srcs, tmp_path / "hyb", cfg)
    metas = {k: json.loads(v["json"]) for k, v in samples(tmp_path / "hyb").items()}
    n = len(metas)
    k = sum(m["method"]["kind"] == "preset" for m in metas.values())
    assert n == 4 * 36
    assert abs(k - n * share) <= 3 * math.sqrt(n * share * (1 - share)), (k, n)
    # A preset sample is exactly what a classical run of that preset gives for the same key.
    classical = SynthConfig(preset="realesrgan", crop=16, stride=16, scale=4, seed=3)
    synthesize(srcs, tmp_path / "cls", classical)
    ref = samples(tmp_path / "cls")
    got = samples(tmp_path / "hyb")
    pre = [key for key, m in metas.items() if m["method"]["kind"] == "preset"]
    assert all(got[key]["lq.png"] == ref[key]["lq.png"] for key in pre)
    assert metas[pre[0]]["method"]["hybrid"] == {"preset": "realesrgan", "share": share}


def test_bad_inputs_become_failure_records(tmp_path: Path, bank_path: Path, inputs: Path) -> None:
    d = tmp_path / "in"
    shutil.copytree(inputs, d)
    corrupt_png(d / "broken.png")
    res = synthesize(list_sources([str(d)]), tmp_path / "out", cfg_for(bank_path, max_patches=1))
    assert res.samples == 4 and len(res.failures) == 1 and "broken.png" in res.failures[0]["path"]


def test_kill_and_resume_matches_an_uninterrupted_run(tmp_path: Path, bank_path: Path, inputs: Path) -> None:
    srcs = list_sources([str(inputs)])
    cfg = cfg_for(bank_path, max_patches=2, shard_max_count=2, noise_prob=0.5)
    synthesize(srcs, tmp_path / "full", cfg)
    producer, fp = bank_producer(cfg)

    class DiesAfterTwo:  # killed while the third input is being written
        def worker_setup(self, c, presets):
            return producer.worker_setup(c, presets)

        def runtime(self):
            return producer.runtime()

        def results(self, todo, c, pool, target):
            n = 0
            for chunk in producer.results(todo, c, pool, target):
                for done in chunk.inputs:
                    if n == 2:
                        raise KeyboardInterrupt
                    n += 1
                    yield type(chunk)([done], {})

    with pytest.raises(KeyboardInterrupt):
        synthesize(srcs, tmp_path / "run", cfg, producer=DiesAfterTwo(), fingerprint_extra=fp)
    assert len(list((tmp_path / "run").glob("*.tar"))) == 2  # shards of the first two inputs are done
    res = synthesize(srcs, tmp_path / "run", cfg, resume=True)
    assert res.resumed_from_input == 2 and res.samples == 8
    keys = [s["__key__"] for s in iter_samples(str(tmp_path / "run"))]
    assert len(keys) == len(set(keys)) == 8
    assert shard_hashes(tmp_path / "run") == shard_hashes(tmp_path / "full")


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="Linux: SIGKILL and /proc")
def test_sigkill_mid_run_then_resume_with_two_workers(tmp_path: Path, bank_path: Path) -> None:
    """kill -9 of the CLI in the middle of a learned run with 2 workers, then --resume: no sample
    lost or duplicated, and the shards are the bytes of an uninterrupted run."""
    hq = tmp_path / "hq"
    for i in range(6):
        shrunk_examples(hq / f"d{i}", ("astronaut", "brick", "chelsea", "coffee"), 64)
    head = ["synthesize", "--bank", str(bank_path), str(hq)]
    opts = ["--crop", "32", "--scale", "4", "--tile", "32", "--workers", "2", "--batch", "4",
            "--shard-count", "8", "--device", "cpu", "--seed", "3", "--quiet"]  # fmt: skip
    full, out = tmp_path / "full", tmp_path / "out"
    assert CliRunner().invoke(app, [*head, str(full), *opts]).exit_code == 0
    code = "import sys; from redegkit.cli import main; sys.argv = ['redeg', *sys.argv[1:]]; main()"
    total = len(list(full.glob("*.tar")))
    # The 12 shards of this tiny run are written within ~0.2 s, so on a loaded box the watcher can
    # wake only after the last one. The run is niced (the watcher wins the CPU), and an attempt
    # whose kill landed outside the middle is made again from scratch, up to 5 times.
    for _attempt in range(5):
        shutil.rmtree(out, ignore_errors=True)
        p = subprocess.Popen(
            [sys.executable, "-c", code, *head, str(out), *opts], preexec_fn=lambda: os.nice(19)
        )
        deadline = time.time() + 120
        while time.time() < deadline and not list(out.glob("*.tar.json")) and p.poll() is None:
            time.sleep(0.002)
        os.kill(p.pid, signal.SIGKILL)  # mid-run: some shards done, one being written
        p.wait()
        if 1 <= len(list(out.glob("*.tar.json"))) < total:
            break
    assert 1 <= len(list(out.glob("*.tar.json"))) < total, "no attempt was cut in the middle"
    r = CliRunner().invoke(app, [*head, str(out), *opts, "--resume"])
    assert r.exit_code == 0, r.output
    keys = [s["__key__"] for s in iter_samples(str(out))]
    want = [s["__key__"] for s in iter_samples(str(full))]
    assert keys == want and len(set(keys)) == len(keys) == 96
    assert shard_hashes(out) == shard_hashes(full)
    assert not list(out.glob(".*.tmp"))


# ------------------------------------------------------------------------------------------------
# CLI


def test_cli_synthesize_bank(tmp_path: Path, bank_path: Path, inputs: Path) -> None:
    runner = CliRunner()
    base = [
        "synthesize",
        str(inputs),
        str(tmp_path / "out"),
        "--bank",
        str(bank_path),
        "--crop",
        "32",
        "--max-patches",
        "1",
        "--tile",
        "32",
        "--device",
        "cpu",
    ]
    r = runner.invoke(app, [*base, "--index", "2,5", "--mix", "--strength", "0.5", "--batch", "2", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["samples"] == 4 and out["failed"] == 0
    meta = json.loads(next(iter(samples(tmp_path / "out").values()))["json"])["method"]
    assert meta["indices"] == [2, 5] and meta["choice"] == "index" and meta["strength"] == 0.5
    r = runner.invoke(app, [*base, "--index", "99", "--overwrite"])
    assert r.exit_code == 2 and "--index" in r.output
    r = runner.invoke(app, [*base, "--preset", "bsrgan", "--overwrite"])
    assert r.exit_code == 2 and "--mix-preset" in r.output
    r = runner.invoke(app, [*base, "--mix-preset", "nope:0.5", "--overwrite"])
    assert r.exit_code == 2 and "nope" in r.output
    (tmp_path / "bad.pt").write_bytes(b"junk")
    r = runner.invoke(app, [*base[:4], str(tmp_path / "bad.pt"), *base[5:], "--overwrite"])
    assert r.exit_code == 2 and "not a readable bank" in r.output


def test_cli_bake_from_a_fit_run_and_model_override(tmp_path: Path, bank_path: Path, inputs: Path) -> None:
    from redegkit.config import resolve_config
    from redegkit.fit.loop import fit_degradation

    from .fit_helpers import make_face_pairs, natural_paths

    pairs = make_face_pairs(tmp_path / "pairs", size=128)
    cfg = resolve_config("fit", ROOT / "recipes" / "smoke.toml", {"steps": 2, "val_every": 100})
    run = fit_degradation(cfg, pairs, natural_paths(), tmp_path / "run", device="cpu", show_progress=False)
    last = run.out / "last.pt"
    runner = CliRunner()
    emb = tmp_path / "emb.pt"
    r = runner.invoke(
        app,
        [
            "bake",
            "--model",
            str(last),
            "--pairs",
            str(pairs),
            "-o",
            str(emb),
            "--crops",
            "1",
            "--device",
            "cpu",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["embeddings"] == 4
    base = [
        "synthesize",
        str(inputs / "brick.png"),
        str(tmp_path / "out"),
        "--crop",
        "32",
        "--max-patches",
        "1",
        "--tile",
        "32",
        "--device",
        "cpu",
        "--model",
        str(last),
        "--json",
    ]
    r = runner.invoke(app, [*base, "--bank", str(emb)])
    assert r.exit_code == 0, r.output
    meta = json.loads(next(iter(samples(tmp_path / "out").values()))["json"])["method"]
    assert meta["synthesizer"] == str(last) and len(meta["synthesizer_sha256"]) == 64
    # A bank from another DegNet: its embeddings mean nothing to this generator; refused unless --force.
    r = runner.invoke(app, [*base, "--bank", str(bank_path), "--overwrite"])
    assert r.exit_code == 2 and "did not make" in r.output
    r = runner.invoke(app, [*base, "--bank", str(bank_path), "--overwrite", "--force"])
    assert r.exit_code == 0, r.output


def test_choice_modes_draw_as_documented() -> None:
    from redegkit.synth.learned import ChoiceTable, draw_plan
    from redegkit.synth.learned.plan import Calibration

    labels = np.array([0] * 9 + [1])
    table = ChoiceTable(10, labels, np.array([0.0] * 9 + [1.0]))
    keys = [f"k{i}" for i in range(400)]

    none = Calibration(None)

    def plan(cfg: SynthConfig, key: str):
        return draw_plan(cfg, table, none, key, 1)

    def picks(**kw) -> list[int]:
        cfg = SynthConfig(bank="x", noise_prob=0, **kw)
        return [plan(cfg, k).indices[0] for k in keys]

    uniform = picks()
    assert 20 <= uniform.count(9) <= 70  # ~ 400 / 10
    cluster = picks(choice="cluster")  # a cluster first (uniform), then a member: index 9 half the time
    assert 160 <= cluster.count(9) <= 240
    assert set(picks(choice="weighted")) == {9}
    assert set(picks(index=[4])) == {4}
    mixed = [plan(SynthConfig(bank="x", mix=True, index=[2, 7]), k) for k in keys[:20]]
    assert all(p.indices == [2, 7] and abs(sum(p.mix_weights) - 1) < 1e-5 for p in mixed)
    assert len({p.mix_weights[1] for p in mixed}) == 20  # a fresh weight per sample
    assert plan(SynthConfig(bank="x"), "k1") == plan(SynthConfig(bank="x"), "k1")


def test_vectorised_calibration_and_finalize_equal_each_sample_alone():
    # the batch functions run each step once for the samples it applies to; a sample's result must
    # not depend on the batch it is in (mixed posts, strengths, correlation radii, sigmas, kernels)
    from redegkit.bank.operators import apply_calibration

    g = torch.Generator().manual_seed(3)
    n, h, w = 6, 24, 32
    y = torch.rand(n, 3, h, w, generator=g) * 2 - 1
    hq = torch.rand(n, 3, h, w, generator=g) * 2 - 1
    f = torch.zeros(2, 5, 5)
    f[0, 2, 2], f[1, 1:4, 1:4] = 0.4, 0.6 / 9
    color = [[1.1, 0, 0, 0.02], [0, 0.9, 0, 0], [0, 0, 1.0, -0.03]]
    cov = (torch.eye(3) * 4e-3).tolist()
    posts = [
        None,
        {
            "strength": 1.0,
            "filter": f.tolist(),
            "color": None,
            "noise_cov": cov,
            "noise_corr": 0.0,
            "noise_seed": 11,
        },
        {
            "strength": 0.5,
            "filter": f.numpy(),
            "color": color,
            "noise_cov": cov,
            "noise_corr": 0.8,
            "noise_seed": 12,
        },
        {
            "strength": 0.0,
            "filter": None,
            "color": color,
            "noise_cov": cov,
            "noise_corr": 0.8,
            "noise_seed": 13,
        },
        {
            "strength": 1.0,
            "filter": None,
            "color": [[0.0] * 4] * 3,
            "noise_cov": [[0.0] * 3] * 3,
            "noise_seed": 14,
        },
        {
            "strength": 0.7,
            "filter": f.tolist(),
            "color": None,
            "noise_cov": cov,
            "noise_corr": 1.5,
            "noise_seed": 2**63 + 5,
        },
        {  # a measured spectrum (banks since noise_psd), and one whose psd is all zero: cov and corr
            "strength": 0.8,
            "filter": None,
            "color": None,
            "noise_cov": cov,
            "noise_corr": 0.0,
            "noise_psd": (torch.linspace(4e-3, 1e-3, PSD_BINS)[:, None, None] * torch.eye(3)).tolist(),
            "noise_seed": 15,
        },
        {
            "strength": 1.0,
            "filter": None,
            "color": None,
            "noise_cov": cov,
            "noise_corr": 0.8,
            "noise_psd": [[[0.0] * 3] * 3] * PSD_BINS,
            "noise_seed": 12,
        },
    ]
    n = len(posts)
    y = torch.cat([y, torch.rand(2, 3, h, w, generator=g) * 2 - 1])
    hq = torch.cat([hq, torch.rand(2, 3, h, w, generator=g) * 2 - 1])
    batch = apply_calibration(y, hq, posts)
    for i, p in enumerate(posts):
        alone = apply_calibration(y[i : i + 1], hq[i : i + 1], [p])[0]
        assert torch.allclose(batch[i], alone, atol=1e-6), i
    assert torch.equal(batch[0], y[0]) and torch.equal(batch[3], hq[3])  # None: unchanged; strength 0: the HQ
    # an all-zero spectrum is a bank baked before noise_psd: its noise is the covariance and radius
    old_style = {k: v for k, v in posts[7].items() if k != "noise_psd"}
    assert torch.equal(batch[7], apply_calibration(y[7:8], hq[7:8], [old_style])[0])
    assert not torch.equal(batch[6], y[6])  # the spectral sample got its noise
    interps, sigmas, seeds = (
        ["bicubic", "area", "bilinear", "bicubic", "area", "bilinear", "area", "bicubic"],
        [0, 0.1, 0, 0.05, 0.2, 0, 0.1, 0],
        list(range(n)),
    )
    lq = finalize(batch, scale=2, interps=interps, sigmas=sigmas, seeds=seeds)
    assert lq.shape == (n, h // 2, w // 2, 3) and lq.dtype == torch.uint8
    for i in range(n):
        alone = finalize(
            batch[i : i + 1],
            scale=2,
            interps=interps[i : i + 1],
            sigmas=sigmas[i : i + 1],
            seeds=seeds[i : i + 1],
        )
        assert torch.equal(lq[i], alone[0]), i


def test_plan_json_records_every_draw_and_the_rounded_calibration() -> None:
    """A sample's ``method`` is its plan, whole: the draws, the bank's calibration mixed with the
    plan's weights and rounded (7 digits), the JPEG of the dominant embedding moved towards 100 by
    the strength, and the noise seeds as decimal strings (64-bit values do not fit JSON's int64)."""
    from redegkit.synth.learned import ChoiceTable, draw_plan
    from redegkit.synth.learned.plan import Calibration

    g = torch.Generator().manual_seed(5)
    n = 6
    raw = {
        "filter": torch.randn(n, 2, 5, 5, generator=g) / 7,
        "color": torch.randn(n, 3, 4, generator=g),
        "noise_cov": torch.rand(n, 3, 3, generator=g) * 1e-3,
        "noise_corr": torch.rand(n, generator=g),
        "noise_psd": torch.rand(n, PSD_BINS, 3, 3, generator=g)
        * 1e-3
        * torch.tensor([1, 1, 0, 1, 0, 1.0])[:, None, None, None],
        "jpeg": torch.tensor([0, 70, 0, 95, 40, 0]),
    }
    cal, table = Calibration(raw), ChoiceTable(n, None, None)
    cfg = SynthConfig(bank="x", mix=True, strength=0.9, strength_min=0.2, noise_prob=0.5)
    seen = set()
    for i in range(60):
        plan = draw_plan(cfg, table, cal, f"k{i}", 3)
        m = json.loads(json.dumps(plan.method({"bank": "b.pt"}), sort_keys=True))
        (a, b), (wa, wb) = m["indices"], m["mix_weights"]
        assert (
            m["kind"] == "bank"
            and m["bank"] == "b.pt"
            and m["tiles"] == 3
            and isinstance(m["noise_seed"], str)
        )
        want = (raw["filter"][a].double() * wa + raw["filter"][b].double() * wb).numpy()
        assert np.array_equal(np.asarray(m["post"]["filter"]), np.round(want, 7))
        if raw["noise_psd"][[a, b]].any():  # spectra mix as the powers of the fields do
            want = (raw["noise_psd"][a].double() * wa + raw["noise_psd"][b].double() * wb).numpy()
            assert np.array_equal(np.asarray(m["post"]["noise_psd"]), np.round(want, 7))
            seen.add("psd")
        else:  # neither embedding has a spectrum (none measured, or a bank from before it)
            assert "noise_psd" not in m["post"]
            seen.add("no psd")
        q = int(raw["jpeg"][a if wa >= wb else b])
        assert m["post"]["jpeg"] == (0 if q == 0 else round(100 - m["strength"] * (100 - q)))
        assert int(m["post"]["noise_seed"]) >= 0 and 0.2 <= m["strength"] <= 0.9
        seen.add(m["post"]["jpeg"] > 0)
    assert seen == {False, True, "psd", "no psd"}
    plain = draw_plan(SynthConfig(bank="x", strength=0.5), table, Calibration(None), "k", 1)
    assert plain.method({})["post"] == {"strength": 0.5}  # no calibration: the strength alone
    assert "post" not in draw_plan(SynthConfig(bank="x"), table, Calibration(None), "k", 1).method({})


def test_the_method_record_is_the_plans_model_dump(bank_path: Path) -> None:
    """SamplePlan.method reads the fields without pydantic's serializer (a cost per sample): its
    record must stay exactly the model_dump of the plan, calibrated post included."""
    from redegkit.synth.learned.plan import Calibration, ChoiceTable, draw_plan

    bank = load_bank(bank_path)
    assert bank.calibration is not None
    cfg = SynthConfig(bank=str(bank_path), mix=True, strength_min=0.3, noise_prob=1.0)
    plan = draw_plan(cfg, ChoiceTable(len(bank), None, None), Calibration(bank.calibration), "k_0001", 1)
    assert plan.post is not None and plan.post.calibrated and plan.post.noise_psd is not None
    rec = plan.method({"bank": "b.pt"})
    dumped = plan.model_dump(exclude={"post"})
    assert rec == {"kind": "bank", "bank": "b.pt", **dumped, "noise_seed": str(plan.noise_seed),
                   "post": plan.post.model_dump(exclude_none=True)}  # fmt: skip
