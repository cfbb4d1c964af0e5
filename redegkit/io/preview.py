"""Contact sheets: labelled image grids for previews (shards, banks, training, evaluation).

:func:`grid` is the one grid builder; the other functions prepare tiles for it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .images import decode_image, write_image


def fit_tile(img: np.ndarray, tile: int, interp: int = cv2.INTER_AREA) -> np.ndarray:
    """Resize to fit a ``tile``×``tile`` box (aspect kept), pad with dark grey."""
    h, w = img.shape[:2]
    s = tile / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    r = cv2.resize(img, (nw, nh), interpolation=interp if s < 1 else cv2.INTER_NEAREST)
    canvas = np.full((tile, tile, 3), 32, np.uint8)
    y, x = (tile - nh) // 2, (tile - nw) // 2
    canvas[y : y + nh, x : x + nw] = r
    return canvas


def label(img: np.ndarray, text: str) -> np.ndarray:
    """Draw a caption bar at the bottom of a tile."""
    out = img.copy()
    h = out.shape[0]
    cv2.rectangle(out, (0, h - 16), (out.shape[1], h), (0, 0, 0), -1)
    cv2.putText(out, text[:40], (3, h - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def grid(rows: list[list[np.ndarray]], gap: int = 4) -> np.ndarray:
    """The one grid builder: RGB uint8 tiles in rows, on white, ``gap`` pixels around and between.

    Each row is as tall as its tallest tile and each column as wide as its widest, a tile sits at
    the top-left of its cell, and a row may hold fewer tiles than another; with equal tiles
    (every caller but :func:`sr_preview_grid`) that is a plain regular grid.
    """
    if not rows or not any(rows):
        raise ValueError("grid: no tiles")
    ncol = max(len(r) for r in rows)
    heights = [max((t.shape[0] for t in r), default=0) for r in rows]
    widths = [max(r[j].shape[1] for r in rows if j < len(r)) for j in range(ncol)]
    out = np.full((sum(heights) + (len(rows) + 1) * gap, sum(widths) + (ncol + 1) * gap, 3), 255, np.uint8)
    y = gap
    for r, rh in zip(rows, heights, strict=True):
        x = gap
        for t, cw in zip(r, widths, strict=False):
            out[y : y + t.shape[0], x : x + t.shape[1]] = t
            x += cw + gap
        y += rh + gap
    return out


def grid_of_columns(columns: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """:func:`grid` of equal stacks [N, H, W, 3] given column by column (row i: every stack's image i)."""
    return grid([list(row) for row in zip(*columns, strict=True)], gap)


def sr_preview_grid(
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]], max_side: int = 256
) -> np.ndarray:
    """A :func:`grid` with a row per sample: LQ (nearest-upscaled to the SR size) | SR | HQ (black
    when there is none), each centre-cropped to at most ``max_side`` SR pixels so grids stay small."""
    if not rows:
        raise ValueError("sr_preview_grid: no rows")
    tiles = []
    for lq, sr, hq in rows:
        h, w = sr.shape[:2]
        up = cv2.resize(lq, (w, h), interpolation=cv2.INTER_NEAREST)
        hq = hq if hq is not None else np.zeros_like(sr)
        ch, cw = min(h, max_side), min(w, max_side)
        y0, x0 = (h - ch) // 2, (w - cw) // 2
        tiles.append([im[y0 : y0 + ch, x0 : x0 + cw] for im in (up, sr, hq)])
    return grid(tiles)


def shard_contact_sheet(folder: str | Path, output: str | Path, n: int = 8, tile: int = 192) -> Path:
    from .shards import iter_samples

    rows: list[list[np.ndarray]] = []
    for s in iter_samples(str(folder)):
        if len(rows) >= n:
            break
        if "hq.png" not in s or "lq.png" not in s:
            continue
        hq = decode_image(s["hq.png"])
        lq = decode_image(s["lq.png"])
        lq_up = cv2.resize(lq, (hq.shape[1], hq.shape[0]), interpolation=cv2.INTER_NEAREST)
        rows.append(
            [label(fit_tile(hq, tile), f"HQ {s['__key__']}"), label(fit_tile(lq_up, tile), "LQ (nearest up)")]
        )
    if not rows:
        raise FileNotFoundError(f"{folder}: no samples with hq.png and lq.png found")
    return write_image(output, grid(rows))
