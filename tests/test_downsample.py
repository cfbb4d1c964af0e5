"""The LQ downsampling of `synthesize --bank` and of `train-sr` on HQ-sized LQ: the reference's
resize (no antialiasing, clamp before) by default, antialiased kernels only when named."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from redegkit.bank.operators import downsample
from redegkit.config import ConfigError, resolve_config
from redegkit.sr.config import SRDataConfig
from redegkit.sr.data import HighResLQ


def test_downsample_names_pick_the_kernel_and_the_antialiasing():
    y = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for kernel in ("bilinear", "bicubic"):
        plain = F.interpolate(y, size=(8, 12), mode=kernel, align_corners=False, antialias=False)
        wide = F.interpolate(y, size=(8, 12), mode=kernel, align_corners=False, antialias=True)
        assert torch.equal(downsample(y, 4, kernel), plain)  # the reference's F.interpolate defaults
        assert torch.equal(downsample(y, 4, f"{kernel}-aa"), wide)
        assert (plain - wide).abs().max() > 0.05  # they really differ on a textured image
    assert torch.allclose(downsample(y, 4, "area"), F.avg_pool2d(y, 4), atol=1e-6)
    with pytest.raises(ValueError, match="lanczos"):
        downsample(y, 4, "lanczos")


def test_synthesize_and_train_sr_accept_the_aa_names():
    assert resolve_config("synthesize", None, {"down": ["bicubic-aa", "area"]}).down == ["bicubic-aa", "area"]
    with pytest.raises(ConfigError):
        resolve_config("synthesize", None, {"down": ["lanczos"]})
    assert SRDataConfig(resize_modes=["bilinear-aa"]).resize_modes == ["bilinear-aa"]


@pytest.mark.parametrize("mode", ["bicubic", "bilinear-aa"])
def test_hq_sized_lq_is_noised_clamped_then_resized_as_the_reference(mode):
    cfg = SRDataConfig(noise_prob=1.0, noise_sigma_max=1.0, resize_modes=[mode])
    lq = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    out, _ = HighResLQ(4, cfg, np.random.default_rng(7))((lq, lq))
    # the same draws, in the same order, by hand
    rng = np.random.default_rng(7)
    assert rng.random() < 1.0
    sigma = int(rng.integers(0, 101)) / 100.0
    noise = (
        torch.randn(lq.shape, generator=torch.Generator().manual_seed(int(rng.integers(0, 2**62)))) * sigma
    )
    assert sigma > 0.3  # strong noise: the clamp before the resize matters
    kernel = mode.removesuffix("-aa")
    want = F.interpolate(
        (lq + noise).clamp(-1, 1)[None],
        size=(8, 8),
        mode=kernel,
        align_corners=False,
        antialias=mode.endswith("-aa"),
    )[0]
    assert torch.equal(out, want)
