"""Finding a JPEG in decoded pixels: the quantisation of the 8x8 luma DCT coefficients.

A decoded JPEG's luma is, up to the decoder's rounding, a grid of 8x8 blocks whose DCT
coefficients are integer multiples of the quantisation table's steps. So the coefficients of the
right table's positions, divided by their steps, sit near integers, and ``cos(2 pi c / step)``
averages near 1; on an image that was never JPEG'd (or whose grid was resampled away) they are
spread evenly, and it averages near 0. This is the classic test of JPEG forensics (quantisation
estimation from the coefficient histograms); :func:`estimate_quality` runs it for the standard
tables that ``libjpeg`` scales by a quality (what :func:`redegkit.degrade.ops.jpeg` writes), over
the 64 grid offsets. Used by ``bake`` to decide whether a face pair's LQ carries a JPEG and at
which quality, instead of matching a blockiness reading, which resampling steps also raise.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

QUALITIES = tuple(range(10, 100))  # the qualities tried
MIN_STEP = 4  # coefficients of positions with a smaller step say nothing (pixel rounding blurs them)
MAX_BLOCKS = 512  # blocks read to score the qualities (evenly spread)
OFFSET_BLOCKS = 128  # blocks read per grid offset to find the grid
MIN_COEFFS = 64  # fewer non-zero coefficients than this: no verdict
THRESHOLD = 0.5  # mean cos above this: quantised
NEIGHBOURS = 3  # qualities this close to the coarsest good table compete on their score


def _zigzag() -> np.ndarray:
    """Natural-order index of each zigzag position of an 8x8 block."""

    def key(p: tuple[int, int]) -> tuple[int, int]:
        d = p[0] + p[1]  # odd diagonals run down the rows, even ones up
        return d, p[0] if d % 2 else p[1]

    order = sorted(((i, j) for i in range(8) for j in range(8)), key=key)
    return np.array([i * 8 + j for i, j in order])


@lru_cache(maxsize=128)
def luma_table(quality: int) -> np.ndarray:
    """The luma quantisation table [8, 8] (natural order) that our JPEG writer uses at
    ``quality``: read from the DQT segment of a JPEG it writes, so it is the encoder's own."""
    from ..degrade.ops import jpeg_encode

    data = jpeg_encode(np.full((8, 8, 3), 128, np.uint8), quality)
    at = data.find(b"\xff\xdb")
    if at < 0 or data[at + 4] & 0xF0:  # pragma: no cover - a baseline libjpeg file has 8-bit tables
        raise RuntimeError("no 8-bit DQT segment in the encoder's JPEG")
    steps = np.frombuffer(data[at + 5 : at + 69], np.uint8).astype(np.float64)
    table = np.empty(64)
    table[_zigzag()] = steps
    return table.reshape(8, 8)


@lru_cache(maxsize=1)
def _dct() -> np.ndarray:
    k = np.arange(8)
    d = np.sqrt(2 / 8) * np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / 16)
    d[0] /= np.sqrt(2)
    return d


def _luma(img: np.ndarray) -> np.ndarray:
    """JPEG's luma (BT.601 full range) of RGB uint8, level-shifted by 128."""
    return img.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) - 128.0


def _coefficients(y: np.ndarray, dy: int, dx: int, limit: int = MAX_BLOCKS) -> np.ndarray:
    """DCT coefficients [N, 8, 8] of (at most ``limit``, evenly spread) 8x8 blocks of ``y`` on the
    grid at offset (dy, dx)."""
    h, w = (y.shape[0] - dy) // 8 * 8, (y.shape[1] - dx) // 8 * 8
    b = y[dy : dy + h, dx : dx + w].reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8)
    b = b[:: max(1, len(b) // limit)]
    d = _dct()
    return np.einsum("ij,njk,lk->nil", d, b, d)


_HF = np.add.outer(np.arange(8), np.arange(8)) >= 6


def _hf_share(c: np.ndarray) -> float:
    """Share of the AC magnitude in the high frequencies: lowest on a JPEG's own grid, where its
    quantisation zeroed them."""
    a = np.abs(c)
    return float(a[:, _HF].sum() / max(a.sum() - a[:, 0, 0].sum(), 1e-9))


def _score(c: np.ndarray, table: np.ndarray) -> tuple[float, int]:
    """Mean ``cos(2 pi c / step)`` over the non-zero coefficients of AC positions with a step of at
    least MIN_STEP (zeros are multiples of every step and say nothing); and how many there were."""
    use = table >= MIN_STEP
    use[0, 0] = False  # DC: level shifts and rounding of the mean
    x, t = c[:, use], table[use][None, :]
    keep = np.abs(x) > 0.5 * t
    n = int(keep.sum())
    if n == 0:
        return 0.0, 0
    return float(np.cos(2 * np.pi * x[keep] / np.broadcast_to(t, x.shape)[keep]).mean()), n


@dataclass(frozen=True)
class JpegTrace:
    quality: int
    score: float  # mean cos at that quality's table (1: exactly quantised)
    offset: tuple[int, int]  # the grid's offset (rows, columns) in the image


def estimate_quality(img: np.ndarray) -> JpegTrace | None:
    """The JPEG quality whose luma table quantises ``img`` (RGB uint8 HxWx3), or None when no
    table does (never JPEG'd, too small, or a grid that was resampled). The grid offset is found
    first, where the high frequencies are weakest; there every quality in QUALITIES is scored.
    No score above THRESHOLD: no JPEG. Otherwise the coarsest table within 10 % of the best score
    is taken (a table with half the steps also divides the coefficients evenly), then the best
    score among its neighbours (qualities within NEIGHBOURS), whose tables differ from it by a
    step here and there (q39 and q40 share most steps)."""
    if img.ndim != 3 or min(img.shape[:2]) < 16:
        return None
    y = _luma(img)
    offset = min(
        ((a, b) for a in range(8) for b in range(8)),
        key=lambda o: _hf_share(_coefficients(y, o[0], o[1], OFFSET_BLOCKS)),
    )
    c = _coefficients(y, *offset)
    scores = {}
    for q in QUALITIES:
        s, n = _score(c, luma_table(q))
        if n >= MIN_COEFFS:
            scores[q] = s
    if not scores or max(scores.values()) <= THRESHOLD:
        return None
    top = max(scores.values())
    coarse = min(q for q, s in scores.items() if s >= 0.9 * top)
    q = max((qq for qq in scores if abs(qq - coarse) <= NEIGHBOURS), key=lambda qq: (scores[qq], -qq))
    return JpegTrace(q, round(scores[q], 4), offset)
