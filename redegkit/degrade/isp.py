"""The camera ISP step of BSRGAN: unprocess an sRGB image to camera raw, add sensor noise, process it back.

Following the model of Brooks et al., "Unprocessing Images for Learned Raw Denoising" (CVPR 2019),
which BSRGAN's degradation model cites for this step, written from the paper's equations:

unprocess (sRGB [0, 1] -> linear camera RGB):
    inverse tone curve  ``x = 0.5 - sin(asin(1 - 2y) / 3)`` (the inverse of smoothstep ``3x² - 2x³``)
    inverse gamma       ``x ** 2.2``
    inverse CCM         ``cam = inv(ccm) @ rgb`` (``ccm``: camera RGB -> linear sRGB, rows sum to 1)
    inverse gains       divide by ``rgb_gain`` (exposure) and by the white balance (``r_gain``, 1, ``b_gain``)
mosaic: keep one colour per pixel in a Bayer ``pattern``, add shot + read noise (variance
``shot * x + read``), quantise to ``bits`` (the sensor's ADC) and clip to [0, 1];
process (the reverse): demosaic (OpenCV, bilinear or edge-aware), white balance and exposure gains
(times ``wb_error``, an imperfect auto white balance), CCM, clip, gamma ``x ** (1/2.2)``, tone curve.

:func:`unprocess` followed by :func:`process` with the same parameters is the identity (no mosaic,
no noise). Everything is float64 until the final float32 result.
"""

from __future__ import annotations

import cv2
import numpy as np

from .ops import _same_dtype, check_image, noise_field, to_float

BAYER_PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
DEMOSAIC = ("bilinear", "edge_aware")
GAMMA = 2.2
# OpenCV names a Bayer pattern by the 2x2 block that starts at its second row and column
_CV_DEMOSAIC = {
    ("RGGB", "bilinear"): cv2.COLOR_BayerBG2RGB,
    ("BGGR", "bilinear"): cv2.COLOR_BayerRG2RGB,
    ("GRBG", "bilinear"): cv2.COLOR_BayerGB2RGB,
    ("GBRG", "bilinear"): cv2.COLOR_BayerGR2RGB,
    ("RGGB", "edge_aware"): cv2.COLOR_BayerBG2RGB_EA,
    ("BGGR", "edge_aware"): cv2.COLOR_BayerRG2RGB_EA,
    ("GRBG", "edge_aware"): cv2.COLOR_BayerGB2RGB_EA,
    ("GBRG", "edge_aware"): cv2.COLOR_BayerGR2RGB_EA,
}
_CHANNEL = {"R": 0, "G": 1, "B": 2}


def inverse_smoothstep(y: np.ndarray) -> np.ndarray:
    y = np.clip(y, 0.0, 1.0)
    return 0.5 - np.sin(np.arcsin(1.0 - 2.0 * y) / 3.0)


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return 3.0 * x**2 - 2.0 * x**3


def _gains(r_gain: float, b_gain: float, rgb_gain: float) -> np.ndarray:
    return np.array([r_gain, 1.0, b_gain]) * rgb_gain


def unprocess(
    x: np.ndarray, ccm: np.ndarray, r_gain: float, b_gain: float, rgb_gain: float, tone_curve: bool = True
) -> np.ndarray:
    """sRGB float in [0, 1] ``HxWx3`` -> linear camera RGB (float64, may leave [0, 1] slightly)."""
    v = np.asarray(x, np.float64)
    if tone_curve:
        v = inverse_smoothstep(v)
    v = np.maximum(v, 0.0) ** GAMMA  # (the paper's epsilon only serves gradients, which we do not take)
    v = v @ np.linalg.inv(np.asarray(ccm, np.float64)).T
    return v / _gains(r_gain, b_gain, rgb_gain)


def process(
    cam: np.ndarray,
    ccm: np.ndarray,
    r_gain: float,
    b_gain: float,
    rgb_gain: float,
    tone_curve: bool = True,
    wb_error: tuple[float, float] = (1.0, 1.0),
) -> np.ndarray:
    """Linear camera RGB ``HxWx3`` -> sRGB float64 in [0, 1]; ``wb_error`` multiplies the red and
    blue white-balance gains (1, 1: the exact inverse of :func:`unprocess`)."""
    v = np.asarray(cam, np.float64) * _gains(r_gain * wb_error[0], b_gain * wb_error[1], rgb_gain)
    v = np.clip(v @ np.asarray(ccm, np.float64).T, 0.0, 1.0)
    v = v ** (1.0 / GAMMA)  # v >= 0 after the clip
    return smoothstep(v) if tone_curve else v


def mosaic(cam: np.ndarray, pattern: str) -> np.ndarray:
    """``HxWx3`` -> ``HxW``: each pixel keeps the colour its Bayer site records (``pattern`` names the
    top-left 2x2 block in reading order, e.g. RGGB: R at (0, 0), G at (0, 1) and (1, 0), B at (1, 1))."""
    if pattern not in BAYER_PATTERNS:
        raise ValueError(f"unknown Bayer pattern {pattern!r}; known: {', '.join(BAYER_PATTERNS)}")
    raw = np.empty(cam.shape[:2], cam.dtype)
    for i, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        raw[dy::2, dx::2] = cam[dy::2, dx::2, _CHANNEL[pattern[i]]]
    return raw


def demosaic(raw: np.ndarray, pattern: str, method: str = "bilinear") -> np.ndarray:
    """``HxW`` raw in [0, 1] -> ``HxWx3`` float64, through OpenCV on 16-bit values (exact for any raw
    quantised to <= 16 bits). Images narrower or shorter than 2 pixels are edge-padded first."""
    if (pattern, method) not in _CV_DEMOSAIC:
        raise ValueError(
            f"unknown demosaic {method!r} / pattern {pattern!r}; known: {', '.join(DEMOSAIC)} / "
            f"{', '.join(BAYER_PATTERNS)}"
        )
    h, w = raw.shape
    padded = np.pad(
        raw, ((0, max(0, 3 - h)), (0, max(0, 3 - w))), mode="reflect" if min(h, w) > 1 else "edge"
    )
    u16 = np.rint(np.clip(padded, 0.0, 1.0) * 65535).astype(np.uint16)
    rgb = cv2.cvtColor(u16, _CV_DEMOSAIC[(pattern, method)])
    return rgb[:h, :w].astype(np.float64) / 65535


def camera_isp(
    img: np.ndarray,
    *,
    ccm: list[list[float]] | np.ndarray,
    r_gain: float,
    b_gain: float,
    rgb_gain: float,
    pattern: str,
    shot: float,
    read: float,
    bits: int,
    seed: int,
    demosaic_method: str = "bilinear",
    tone_curve: bool = True,
    wb_error: tuple[float, float] = (1.0, 1.0),
) -> np.ndarray:
    """The whole step: unprocess, mosaic, noise (variance ``shot * x + read`` on the raw [0, 1]
    scale, the field from ``seed``), quantise to ``bits``, demosaic, process. Same dtype out."""
    check_image(img)
    if shot < 0 or read < 0 or not 8 <= bits <= 16:
        raise ValueError(f"camera_isp needs shot, read >= 0 and bits in [8, 16], got {shot}, {read}, {bits}")
    c = np.asarray(ccm, np.float64)
    cam = unprocess(to_float(img), c, r_gain, b_gain, rgb_gain, tone_curve)
    raw = mosaic(cam, pattern)
    std = np.sqrt(np.maximum(shot * np.maximum(raw, 0.0) + read, 0.0))
    raw = raw + std * noise_field(seed, raw.shape)
    levels = (1 << int(bits)) - 1
    raw = np.rint(np.clip(raw, 0.0, 1.0) * levels) / levels
    out = process(demosaic(raw, pattern, demosaic_method), c, r_gain, b_gain, rgb_gain, tone_curve, wb_error)
    return _same_dtype(out.astype(np.float32), img)
