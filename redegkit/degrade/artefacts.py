"""Geometry and signal artefacts: pixelation, interlacing, ghosting, motion blur, speckle and
salt-and-pepper noise.

Every op takes an RGB image, ``uint8`` or ``float32`` ([0, 1]), shape ``HxWx3``, and returns the
same dtype and shape. Random fields come only from a ``seed`` argument (numpy ``SFC64``), so one
seed on two images of the same size gives the same field, as in :mod:`.ops`.
"""

from __future__ import annotations

import numpy as np

from .kernels import motion_kernel
from .ops import _add_clip, _same_dtype, blur, check_image, noise_field, subpixel_shift, to_float

INTERLACE_MODES = ("weave", "drop", "blend")
FIELDS = ("top", "bottom")
FIELD_FILL = ("duplicate", "linear")


def pixelate(img: np.ndarray, block: int) -> np.ndarray:
    """Mosaic: every ``block x block`` tile (from the top-left; the last row/column of tiles is cut by
    the border) takes its mean colour."""
    check_image(img)
    b = int(block)
    if b < 1:
        raise ValueError(f"pixelate block must be >= 1, got {block}")
    x = to_float(img)
    if b == 1:
        return _same_dtype(x.copy(), img)
    h, w = x.shape[:2]
    ph, pw = -h % b, -w % b
    # mean of each tile over its real pixels: sum the zero-padded tiles, divide by the pixel count
    padded = np.pad(x, ((0, ph), (0, pw), (0, 0)))
    ones = np.pad(np.ones((h, w), np.float32), ((0, ph), (0, pw)))
    hh, ww = padded.shape[:2]
    sums = padded.reshape(hh // b, b, ww // b, b, 3).sum(axis=(1, 3))
    counts = ones.reshape(hh // b, b, ww // b, b).sum(axis=(1, 3))[:, :, None]
    tiles = (sums / counts).astype(np.float32)
    out = np.repeat(np.repeat(tiles, b, axis=0), b, axis=1)[:h, :w]
    return _same_dtype(np.ascontiguousarray(out), img)


def _field_rows(h: int, field: str) -> slice:
    if field not in FIELDS:
        raise ValueError(f"unknown field {field!r}; known: {', '.join(FIELDS)}")
    return slice(0 if field == "top" else 1, h, 2)


def interlace(
    img: np.ndarray,
    mode: str,
    field: str = "top",
    motion: tuple[float, float] = (0.0, 0.0),
    fill: str = "linear",
) -> np.ndarray:
    """Interlaced video shown on a progressive display.

    The ``field`` rows (top: even rows) come from the image; the other field was captured half a
    frame later, when the content had moved by ``motion = (dy, dx)`` pixels. ``weave``: both fields
    as they are (combing on motion); ``blend``: woven, then each row averaged with the one below
    (a blend deinterlacer: ghosting and vertical softening); ``drop``: the other field is thrown
    away and rebuilt from ``field`` (``duplicate``: line doubling, ``linear``: the mean of the rows
    above and below), halving the vertical resolution (jagged edges).
    """
    check_image(img)
    x = to_float(img)
    h = x.shape[0]
    other = _field_rows(h, "bottom" if field == "top" else "top")
    out = x.copy()
    if mode in ("weave", "blend"):
        later = subpixel_shift(x, -motion[0], -motion[1])
        out[other] = later[other]
        if mode == "blend" and h > 1:
            out[:-1] = (out[:-1] + out[1:]) * np.float32(0.5)
    elif mode == "drop":
        if fill not in FIELD_FILL:
            raise ValueError(f"unknown field fill {fill!r}; known: {', '.join(FIELD_FILL)}")
        rows = np.arange(h)[other]
        # the rows above and below a dropped row are kept rows; at the border use the one there is
        above = np.where(rows > 0, rows - 1, rows + 1).clip(0, h - 1)
        below = np.where(rows < h - 1, rows + 1, rows - 1).clip(0, h - 1)
        out[rows] = x[above] if fill == "duplicate" else (x[above] + x[below]) * np.float32(0.5)
    else:
        raise ValueError(f"unknown interlace mode {mode!r}; known: {', '.join(INTERLACE_MODES)}")
    return _same_dtype(out, img)


def ghosting(img: np.ndarray, offset: tuple[float, float], amount: float, echoes: int = 1) -> np.ndarray:
    """Multipath ghosts (analogue TV, ringing cables): ``echoes`` copies displaced by ``k * offset``
    = ``(dy, dx)`` pixels with weights ``amount ** k`` (k = 1 .. echoes), mixed with the image:
    ``(x + sum w_k shift_k(x)) / (1 + sum w_k)`` (the mean level is kept)."""
    check_image(img)
    if not 0 <= amount < 1 or echoes < 1:
        raise ValueError(f"ghosting needs 0 <= amount < 1 and echoes >= 1, got {amount}, {echoes}")
    x = to_float(img)
    acc = x.copy()
    total = 1.0
    for k in range(1, int(echoes) + 1):
        wk = amount**k
        acc += np.float32(wk) * subpixel_shift(x, -k * offset[0], -k * offset[1])
        total += wk
    return _same_dtype(acc / np.float32(total), img)


def motion_blur(img: np.ndarray, length: float, angle: float) -> np.ndarray:
    """Linear motion blur along ``angle`` degrees over ``length`` pixels (:func:`.kernels.motion_kernel`)."""
    check_image(img)
    k = motion_kernel(length, angle)
    if k.shape == (1, 1):
        return img.copy()
    return blur(img, k)


def speckle_noise(img: np.ndarray, sigma: float, *, seed: int, gray: bool = False) -> np.ndarray:
    """Multiplicative Gaussian noise (KAIR's speckle): ``x + x * sigma * z``, clipped; ``sigma`` is
    relative (0.1 = 10% of the pixel value). ``gray``: one field for the three channels."""
    check_image(img)
    if sigma < 0:
        raise ValueError(f"speckle sigma must be >= 0, got {sigma}")
    x = to_float(img)
    h, w = x.shape[:2]
    z = noise_field(seed, (h, w, 1 if gray else 3), sigma)
    return _same_dtype(_add_clip(x, z * x if gray else np.multiply(z, x, out=z)), img)


def salt_pepper(
    img: np.ndarray, amount: float, *, seed: int, salt: float = 0.5, per_channel: bool = False
) -> np.ndarray:
    """Impulse noise: a share ``amount`` of the pixels (of the samples, if ``per_channel``) becomes
    white (a share ``salt`` of them) or black. Positions come from ``seed`` (one uniform per pixel
    or sample: below ``amount * (1 - salt)`` is pepper, above ``1 - amount * salt`` is salt)."""
    check_image(img)
    if not 0 <= amount <= 1 or not 0 <= salt <= 1:
        raise ValueError(f"salt_pepper needs amount and salt in [0, 1], got {amount}, {salt}")
    x = to_float(img).copy()
    h, w = x.shape[:2]
    u = np.random.Generator(np.random.SFC64(int(seed))).random((h, w, 3 if per_channel else 1), np.float32)
    pepper = u < amount * (1 - salt)
    white = u >= 1 - amount * salt
    if per_channel:
        x[pepper] = 0.0
        x[white] = 1.0
    else:
        x[pepper[:, :, 0]] = 0.0
        x[white[:, :, 0]] = 1.0
    return _same_dtype(x, img)
