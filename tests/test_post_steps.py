"""Post steps of the learned path (redegkit.synth.learned.post): the gamma curve."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from redegkit.io.images import decode_image
from redegkit.io.shards import iter_samples
from redegkit.io.sources import list_sources
from redegkit.synth import SynthConfig, synthesize
from redegkit.synth.learned.post import Gamma

from .conftest import shrunk_examples
from .test_bank import make_bank


def test_gamma_curve_golden_values_and_draws() -> None:
    y = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]).view(1, 1, 1, 5)
    out = Gamma().apply(y.expand(2, 1, 1, 5), [2.0, None])
    # 2 ((y + 1) / 2) ** 2 - 1 at y = -0.5: 2 * 0.0625 - 1 = -0.875; at 0: -0.5; at 0.5: 0.125
    assert torch.allclose(out[0, 0, 0], torch.tensor([-1.0, -0.875, -0.5, 0.125, 1.0]))
    assert torch.equal(out[1], y[0])  # no gamma drawn: unchanged
    cfg = SynthConfig(bank="x", gamma_max=2.0)
    draws = [Gamma().draw(cfg, f"k{i}") for i in range(400)]
    assert all(0.5 <= g <= 2.0 for g in draws) and draws == [Gamma().draw(cfg, f"k{i}") for i in range(400)]
    assert 0.35 < np.mean([g > 1 for g in draws]) < 0.65  # log-uniform: half above 1
    assert Gamma().draw(SynthConfig(bank="x"), "k") is None  # off by default


def test_a_run_with_gamma_records_it_and_a_run_without_is_unchanged(tmp_path: Path) -> None:
    bank = make_bank(tmp_path / "bank")
    hq = tmp_path / "hq"
    shrunk_examples(hq, ("brick", "coffee"), 64)
    base = {"bank": str(bank), "crop": 32, "tile": 32, "device": "cpu", "seed": 1, "noise_prob": 0.0}
    srcs = list_sources([str(hq)])
    synthesize(srcs, tmp_path / "plain", SynthConfig(**base))
    synthesize(srcs, tmp_path / "gamma", SynthConfig(**base, gamma_max=2.5))
    plain = {s["__key__"]: s for s in iter_samples(str(tmp_path / "plain"))}
    gamma = {s["__key__"]: s for s in iter_samples(str(tmp_path / "gamma"))}
    assert plain.keys() == gamma.keys() and len(plain) == 8
    for k, s in gamma.items():
        m = json.loads(s["json"])["method"]
        g = m["post"]["steps"]["gamma"]
        assert 0.4 <= g <= 2.5 and g == Gamma().draw(SynthConfig(**base, gamma_max=2.5), k)
        assert "steps" not in json.loads(plain[k]["json"])["method"].get("post", {})
        a, b = decode_image(plain[k]["lq.png"]).astype(int), decode_image(s["lq.png"]).astype(int)
        if abs(g - 1) > 0.2:  # a visible gamma moves the mean the way it should
            assert (b.mean() < a.mean()) == (g > 1), (k, g)


@pytest.mark.parametrize("workers", [2])
def test_gamma_runs_are_byte_identical_across_workers(tmp_path: Path, workers: int) -> None:
    bank = make_bank(tmp_path / "bank")
    hq = tmp_path / "hq"
    shrunk_examples(hq, ("astronaut", "chelsea"), 64)
    cfg = {"bank": str(bank), "crop": 32, "tile": 32, "device": "cpu", "seed": 2, "gamma_max": 1.8}
    srcs = list_sources([str(hq)])
    synthesize(srcs, tmp_path / "w1", SynthConfig(**cfg))
    synthesize(srcs, tmp_path / "wn", SynthConfig(**cfg, workers=workers, batch=3))
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((tmp_path / "w1").glob("*.tar"))]
    assert digest == [
        hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((tmp_path / "wn").glob("*.tar"))
    ]
