"""Image helpers of the reports: 8x8-aligned zoom windows and outlines; nearest-neighbour
enlargement (:func:`zoom`, from :mod:`redegkit.io.preview`) is always by an integer factor, so
every source pixel becomes a square block and blur, noise and 8x8 JPEG blocks stay what they are
(a smooth resize would blur them away or invent detail).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..io.preview import zoom, zoom_factor, zoom_to

__all__ = ["BLOCK", "crop", "detail_window", "outline", "zoom", "zoom_factor", "zoom_to"]

BLOCK = 8  # the JPEG block: zoom windows start and end on its grid


def detail_window(img: np.ndarray, size: int = 32) -> tuple[int, int]:
    """The top-left (y, x) of the ``size`` x ``size`` window, on the 8x8 grid, with the most detail
    (mean absolute Laplacian of luma): where blur, ringing and block edges show most."""
    h, w = img.shape[:2]
    size = min(size, h - h % BLOCK or h, w - w % BLOCK or w)
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    energy = np.abs(cv2.Laplacian(gray, cv2.CV_32F))
    ii = cv2.integral(energy)  # (h+1, w+1): window sums in O(1)
    best, best_yx = -1.0, (0, 0)
    for y in range(0, h - size + 1, BLOCK):
        for x in range(0, w - size + 1, BLOCK):
            s = ii[y + size, x + size] - ii[y, x + size] - ii[y + size, x] + ii[y, x]
            if s > best:
                best, best_yx = float(s), (y, x)
    return best_yx


def crop(img: np.ndarray, y: int, x: int, size: int) -> np.ndarray:
    return np.ascontiguousarray(img[y : y + size, x : x + size])


def outline(img: np.ndarray, y: int, x: int, size: int, colour=(255, 214, 0)) -> np.ndarray:
    """A copy with a 1-px box around the window (drawn just outside it where there is room)."""
    out = img.copy()
    cv2.rectangle(
        out,
        (max(0, x - 1), max(0, y - 1)),
        (min(img.shape[1] - 1, x + size), min(img.shape[0] - 1, y + size)),
        colour,
        1,
    )
    return out
