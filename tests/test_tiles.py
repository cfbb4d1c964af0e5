"""The one tiler (redegkit.io.tiles): starts, blending weights, run_tiled, padding."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from redegkit.io.tiles import (
    TileBlender,
    TileGrid,
    blend_ramp,
    pad_reflect,
    run_tiled,
    tile_starts,
    tile_weights,
)


class _Counting:
    """``fn`` for run_tiled that records the batch shapes it was called with."""

    def __init__(self, fn) -> None:
        self.fn, self.calls = fn, []

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(t.shape))
        return self.fn(t)


def test_tile_starts() -> None:
    assert tile_starts(112, 32, 16) == [0, 16, 32, 48, 64, 80]
    assert tile_starts(100, 32, 16) == [0, 16, 32, 48, 64, 68]  # the last tile flush with the end
    assert tile_starts(64, 32, 0) == [0, 32] and tile_starts(65, 32, 0) == [0, 32, 33]
    assert tile_starts(20, 32, 8) == [0] and tile_starts(32, 32, 8) == [0]
    assert tile_starts(10, 4, 9) == list(range(7))  # overlap >= tile: stride 1, never 0


def test_blend_ramp_shape() -> None:
    w = blend_ramp(32, 0, 16)
    assert torch.equal(w[:20], torch.ones(20)) and torch.all(w[-4:] == 0)  # outer quarter of 16: 0
    assert torch.all(w[20:28][1:] <= w[20:28][:-1])  # the cosine cross-fade falls monotonically
    # neighbours' cross-fades are complementary: the next tile's lead mirrors this tile's trail
    lead = blend_ramp(32, 16, 0)
    assert torch.allclose(w[16:] + lead[:16], torch.ones(16), atol=1e-6)
    assert torch.equal(blend_ramp(7, 0, 0), torch.ones(7))


@pytest.mark.parametrize(
    "n,tile,overlap,scale",
    [
        (100, 32, 16, 1),
        (100, 32, 16, 3),
        (50, 32, 16, 2),
        (65, 32, 0, 1),
        (97, 24, 12, 4),
        (40, 9, 4, 1),
        (33, 32, 31, 2),
    ],
)
def test_weights_sum_to_one(n: int, tile: int, overlap: int, scale: int) -> None:
    starts = tile_starts(n, tile, overlap)
    total = torch.zeros(n * scale)
    for s, w in zip(starts, tile_weights(starts, tile, scale), strict=True):
        assert w.shape == (tile * scale,) and bool((w >= 0).all())
        total[s * scale : (s + tile) * scale] += w
    assert torch.allclose(total, torch.ones_like(total), atol=1e-6)
    # and so do the separable 2-D windows
    grid = TileGrid.cover(n, n // 2 + 5, tile, overlap)
    blend = TileBlender(grid, scale)
    for i in range(len(grid)):
        blend.add(i, torch.ones(1, 1, grid.th * scale, grid.tw * scale))
    assert torch.allclose(blend.result(), torch.ones(1, 1, grid.h * scale, grid.w * scale), atol=1e-6)


@pytest.mark.parametrize(
    "h,w,tile,overlap", [(37, 53, 16, 6), (100, 70, 32, 16), (17, 90, 16, 8), (40, 41, 20, 0)]
)
def test_identity_is_exact(h: int, w: int, tile: int, overlap: int) -> None:
    x = torch.rand(2, 3, h, w)
    fn = _Counting(lambda t: t.clone())
    y = run_tiled(fn, x, tile, overlap, batch=3)
    assert y.shape == x.shape and float((y - x).abs().max()) < 1e-6
    n = len(TileGrid.cover(h, w, tile, overlap))
    assert n > 1 and len(fn.calls) == math.ceil(n / 3) and fn.calls[0][0] == 2 * 3  # 3 tiles of 2 images


def test_scale_2_nearest_equals_untiled() -> None:
    x = torch.rand(1, 3, 45, 38)

    def up(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t, scale_factor=2, mode="nearest")

    want = up(x)
    got = run_tiled(up, x, 16, 8, scale=2, batch=4)
    assert got.shape == (1, 3, 90, 76) and float((got - want).abs().max()) < 1e-6


def test_a_tile_larger_than_the_image_is_one_call() -> None:
    x = torch.rand(1, 3, 20, 30)
    for tile in (None, 30, 64):
        fn = _Counting(lambda t: t * 2)
        assert torch.equal(run_tiled(fn, x, tile, 8), x * 2) and fn.calls == [(1, 3, 20, 30)]
    with pytest.raises(ValueError, match="grid"):
        run_tiled(lambda t: t, x, TileGrid.cover(20, 31, 16, 4))


def test_pad_reflect_mirrors_then_replicates() -> None:
    x = torch.arange(12.0).reshape(1, 3, 4)
    assert torch.equal(pad_reflect(x, 0, 2)[0, 0], torch.tensor([0.0, 1, 2, 3, 2, 1]))
    assert pad_reflect(x, 5, 7).shape == (1, 8, 11)  # larger than the image: mirrored in steps
    one = torch.ones(3, 1, 1)
    assert torch.equal(pad_reflect(one, 3, 3), torch.ones(3, 4, 4))  # a single pixel: replicated
    assert pad_reflect(x[None], 1, 1).shape == (1, 1, 4, 5)
