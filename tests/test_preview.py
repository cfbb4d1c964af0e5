"""The one grid builder (redegkit.io.preview.grid) and the layouts built on it."""

from __future__ import annotations

import numpy as np
import pytest

from redegkit.io.preview import grid, grid_of_columns, sr_preview_grid

from .sr_helpers import textured


def test_grid_of_equal_tiles():
    tiles = [[np.full((10, 12, 3), 10 * (3 * i + j), np.uint8) for j in range(3)] for i in range(2)]
    out = grid(tiles, gap=4)
    assert out.shape == (2 * 10 + 3 * 4, 3 * 12 + 4 * 4, 3) and out.dtype == np.uint8
    for i in range(2):
        for j in range(3):
            y, x = 4 + i * 14, 4 + j * 16
            assert np.array_equal(out[y : y + 10, x : x + 12], tiles[i][j])
    assert out[:4].min() == 255 and out[:, 16:20].min() == 255  # white margins and gaps
    with pytest.raises(ValueError, match="no tiles"):
        grid([])


def test_grid_of_columns_is_the_fit_preview_layout():
    # fit-degradation's previews: one stack [N, H, W, 3] per column, image i of each in row i
    cols = [np.stack([textured(8, 6, 10 * j + i) for i in range(3)]) for j in range(4)]
    out = grid_of_columns(cols)
    n, h, w, gap = 3, 8, 6, 4
    assert out.shape == (n * h + (n + 1) * gap, 4 * w + 5 * gap, 3)
    for j, col in enumerate(cols):
        for i in range(n):
            y, x = gap + i * (h + gap), gap + j * (w + gap)
            assert np.array_equal(out[y : y + h, x : x + w], col[i])


def test_unequal_tiles_take_the_cells_maximum():
    a, b, c = np.zeros((5, 7, 3), np.uint8), np.zeros((9, 3, 3), np.uint8), np.zeros((2, 2, 3), np.uint8)
    out = grid([[a, b], [c]], gap=1)
    assert out.shape == (1 + 9 + 1 + 2 + 1, 1 + 7 + 1 + 3 + 1, 3)
    assert out[1:6, 1:8].max() == 0 and out[6:10, 1:8].min() == 255  # a at the top-left of its cell
    assert out[11:13, 1:3].max() == 0 and out[11:13, 9:12].min() == 255  # the short row ends early


def test_sr_preview_grid_layout():
    lq, sr, hq = textured(8, 10, 0), textured(32, 40, 1), textured(32, 40, 2)
    out = sr_preview_grid([(lq, sr, hq), (lq, sr, None)])
    assert out.shape == (2 * 32 + 3 * 4, 3 * 40 + 4 * 4, 3) and out.dtype == np.uint8
    assert np.array_equal(out[4:36, 48:88], sr) and np.array_equal(out[4:36, 92:132], hq)
    assert np.array_equal(out[4:36, 4:44], np.repeat(np.repeat(lq, 4, 0), 4, 1))  # LQ nearest-upscaled
    assert out[40:72, 92:132].max() == 0  # no HQ: blank
    big = sr_preview_grid([(textured(100, 100, 0), textured(400, 300, 1), None)], max_side=64)
    assert big.shape == (64 + 8, 3 * 64 + 16, 3)  # centre crops of at most max_side
