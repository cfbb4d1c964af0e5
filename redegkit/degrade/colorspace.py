"""Y'CbCr conversions and chroma resampling, shared by the chroma op and the video codecs.

Images are float32 RGB in [0, 1] (``HxWx3``); Y'CbCr planes are float32 on the 8-bit code scale
(0-255), so that quantising them to uint8 is what a codec's 8-bit planes hold. The matrices come
from the luma weights ``Kr``, ``Kb`` of each standard:

    Y' = Kr R + (1 - Kr - Kb) G + Kb B,   Cb = (B - Y') / (2 (1 - Kb)),   Cr = (R - Y') / (2 (1 - Kr))

Full range (JPEG/JFIF): ``Y = 255 Y'``, ``C = 128 + 255 C``. Limited ("TV", the default of video
codecs): ``Y = 16 + 219 Y'``, ``C = 128 + 224 C``.

Chroma subsampling keeps one chroma sample per ``fh x fv`` block of pixels (:data:`CHROMA_MODES`,
J:a:b names): downsampling averages the block ("box") or keeps its top-left sample ("nearest");
upsampling interpolates back with pixel centres aligned (centred chroma siting).
"""

from __future__ import annotations

import cv2
import numpy as np

# luma weights (Kr, Kb): ITU-R BT.601, BT.709, BT.2020 (non-constant luminance)
MATRICES: dict[str, tuple[float, float]] = {
    "bt601": (0.299, 0.114),
    "bt709": (0.2126, 0.0722),
    "bt2020": (0.2627, 0.0593),
}
# J:a:b -> (horizontal, vertical) chroma subsampling factor
CHROMA_MODES: dict[str, tuple[int, int]] = {
    "4:4:4": (1, 1),
    "4:4:0": (1, 2),
    "4:2:2": (2, 1),
    "4:2:0": (2, 2),
    "4:1:1": (4, 1),
    "4:1:0": (4, 2),
}
CHROMA_DOWN = ("box", "nearest")
CHROMA_UP: dict[str, int] = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
}


def _check(matrix: str) -> tuple[float, float]:
    if matrix not in MATRICES:
        raise ValueError(f"unknown colour matrix {matrix!r}; known: {', '.join(MATRICES)}")
    return MATRICES[matrix]


def rgb_to_ycbcr_matrix(matrix: str, full_range: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(M, offset)`` with ``ycbcr = rgb @ M.T + offset`` (rgb in [0, 1], ycbcr on the 0-255 scale)."""
    kr, kb = _check(matrix)
    kg = 1.0 - kr - kb
    m = np.array(
        [
            [kr, kg, kb],
            [-kr / (2 * (1 - kb)), -kg / (2 * (1 - kb)), 0.5],
            [0.5, -kg / (2 * (1 - kr)), -kb / (2 * (1 - kr))],
        ]
    )
    ys, cs, y0 = (255.0, 255.0, 0.0) if full_range else (219.0, 224.0, 16.0)
    m = m * np.array([[ys], [cs], [cs]])
    return m, np.array([y0, 128.0, 128.0])


def rgb_to_ycbcr(x: np.ndarray, matrix: str = "bt601", full_range: bool = True) -> np.ndarray:
    """RGB float32 [0, 1] ``HxWx3`` -> Y'CbCr float32 ``HxWx3`` on the 0-255 code scale (not rounded)."""
    m, off = rgb_to_ycbcr_matrix(matrix, full_range)
    return cv2.transform(x.astype(np.float32, copy=False), m.astype(np.float32)) + off.astype(np.float32)


def ycbcr_to_rgb(ycc: np.ndarray, matrix: str = "bt601", full_range: bool = True) -> np.ndarray:
    """The inverse of :func:`rgb_to_ycbcr` (float32 RGB, not clipped)."""
    m, off = rgb_to_ycbcr_matrix(matrix, full_range)
    inv = np.linalg.inv(m)
    shifted = ycc.astype(np.float32) - off.astype(np.float32)
    return cv2.transform(shifted, inv.astype(np.float32))


def pad_to_multiple(plane: np.ndarray, fh: int, fv: int) -> np.ndarray:
    """Edge-replicate the bottom/right so that height % fv == 0 and width % fh == 0."""
    h, w = plane.shape[:2]
    ph, pw = -h % fv, -w % fh
    if ph == 0 and pw == 0:
        return plane
    return cv2.copyMakeBorder(plane, 0, ph, 0, pw, cv2.BORDER_REPLICATE)


def downsample_chroma(plane: np.ndarray, fh: int, fv: int, method: str = "box") -> np.ndarray:
    """One chroma plane (float32 ``HxW``) -> ``ceil(H/fv) x ceil(W/fh)``: the mean of each block
    (``box``; the last row/column of blocks is completed by edge replication) or its top-left
    sample (``nearest``)."""
    if method not in CHROMA_DOWN:
        raise ValueError(f"unknown chroma downsampling {method!r}; known: {', '.join(CHROMA_DOWN)}")
    if fh == 1 and fv == 1:
        return plane.copy()
    if method == "nearest":
        return np.ascontiguousarray(plane[::fv, ::fh])
    p = pad_to_multiple(plane, fh, fv)
    h, w = p.shape
    return p.reshape(h // fv, fv, w // fh, fh).mean(axis=(1, 3), dtype=np.float32)


def upsample_chroma(plane: np.ndarray, fh: int, fv: int, size: tuple[int, int], method: str) -> np.ndarray:
    """A subsampled chroma plane back to the full ``size = (H, W)``: interpolated onto the grid of
    ``ceil(H/fv)*fv x ceil(W/fh)*fw`` pixels (centres aligned), then cropped to ``size``."""
    if method not in CHROMA_UP:
        raise ValueError(f"unknown chroma upsampling {method!r}; known: {', '.join(CHROMA_UP)}")
    h, w = size
    if fh == 1 and fv == 1:
        return plane[:h, :w].copy()
    full = (plane.shape[1] * fh, plane.shape[0] * fv)  # (width, height) for cv2
    up = cv2.resize(plane, full, interpolation=CHROMA_UP[method])
    return np.ascontiguousarray(up[:h, :w])


def chroma_subsample(
    x: np.ndarray,
    mode: str = "4:2:0",
    matrix: str = "bt601",
    down: str = "box",
    up: str = "bilinear",
    full_range: bool = True,
) -> np.ndarray:
    """RGB float32 -> Y'CbCr planes quantised to 8 bits, chroma subsampled by ``mode`` with ``down``
    and brought back with ``up`` -> RGB float32 (not clipped). 4:4:4 only quantises."""
    if mode not in CHROMA_MODES:
        raise ValueError(f"unknown chroma subsampling {mode!r}; known: {', '.join(CHROMA_MODES)}")
    fh, fv = CHROMA_MODES[mode]
    ycc = np.clip(np.rint(rgb_to_ycbcr(x, matrix, full_range)), 0, 255).astype(np.float32)
    h, w = ycc.shape[:2]
    for c in (1, 2):
        small = np.clip(np.rint(downsample_chroma(ycc[:, :, c], fh, fv, down)), 0, 255)
        ycc[:, :, c] = upsample_chroma(small.astype(np.float32), fh, fv, (h, w), up)
    return ycbcr_to_rgb(ycc, matrix, full_range)
