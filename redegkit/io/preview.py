"""Contact sheets: labelled image grids for previews (shards, banks, training)."""

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
    """Stack equal-size tiles into a grid with gaps."""
    th, tw = rows[0][0].shape[:2]
    ncol = max(len(r) for r in rows)
    H = len(rows) * th + (len(rows) + 1) * gap
    W = ncol * tw + (ncol + 1) * gap
    out = np.full((H, W, 3), 255, np.uint8)
    for i, r in enumerate(rows):
        for j, t in enumerate(r):
            y, x = gap + i * (th + gap), gap + j * (tw + gap)
            out[y : y + th, x : x + tw] = t
    return out


def shard_contact_sheet(folder: str | Path, output: str | Path, n: int = 8, tile: int = 192) -> Path:
    from .shards import iter_samples

    rows = []
    for s in iter_samples(str(folder)):
        if len(rows) >= n:
            break
        if "hq.png" not in s or "lq.png" not in s:
            continue
        hq = decode_image(s["hq.png"])
        lq = decode_image(s["lq.png"])
        lq_up = cv2.resize(lq, (hq.shape[1], hq.shape[0]), interpolation=cv2.INTER_NEAREST)
        rows.append([label(fit_tile(hq, tile), f"HQ {s['__key__']}"), label(fit_tile(lq_up, tile), "LQ (nearest up)")])
    if not rows:
        raise FileNotFoundError(f"{folder}: no samples with hq.png and lq.png found")
    return write_image(output, grid(rows))
