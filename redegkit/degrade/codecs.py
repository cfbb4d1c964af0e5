"""Still-image codecs besides OpenCV's JPEG: WebP, AVIF and JPEG 2000 (through Pillow's own libraries).

Each op is an encode/decode round trip: RGB ``HxWx3`` uint8 or float32 in, the same dtype out
(float input is rounded to 8 bits first, as any file would be). Encoders run single-threaded with
fixed options, so the same parameters give the same bytes on the same library versions;
:func:`library_version` names those versions for the op's record.
"""

from __future__ import annotations

import io
import re
from functools import cache

import cv2
import numpy as np
from PIL import Image, features

from .ops import check_image, to_float, to_uint8

AVIF_SUBSAMPLING = ("4:4:4", "4:2:2", "4:2:0")


def _round_trip(img: np.ndarray, fmt: str, **kw: object) -> np.ndarray:
    check_image(img)
    buf = io.BytesIO()
    Image.fromarray(to_uint8(img)).save(buf, fmt, **kw)
    return _decode(buf.getvalue(), img.dtype)


def _decode(data: bytes, dtype: np.dtype) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        out = np.asarray(im.convert("RGB"))
    return out if dtype == np.uint8 else to_float(out)


def webp_encode(img: np.ndarray, quality: int, method: int = 4) -> bytes:
    """Lossy WebP (libwebp) at ``quality`` 0-100 and ``method`` 0 (fast) - 6 (slowest, best)."""
    check_image(img)
    if not 0 <= quality <= 100 or not 0 <= method <= 6:
        raise ValueError(f"WebP quality must be in [0, 100] and method in [0, 6], got {quality}, {method}")
    buf = io.BytesIO()
    Image.fromarray(to_uint8(img)).save(buf, "WEBP", quality=int(quality), method=int(method), lossless=False)
    return buf.getvalue()


def webp(img: np.ndarray, quality: int, method: int = 4) -> np.ndarray:
    """WebP round trip (4:2:0 chroma, as lossy WebP always is); same dtype out."""
    return _decode(webp_encode(img, quality, method), img.dtype)


def avif_encode(img: np.ndarray, quality: int, speed: int = 6, subsampling: str = "4:2:0") -> bytes:
    """AVIF (libavif + libaom, one thread) at ``quality`` 0-100, encoder ``speed`` 0 (slowest) - 10."""
    check_image(img)
    if not 0 <= quality <= 100 or not 0 <= speed <= 10:
        raise ValueError(f"AVIF quality must be in [0, 100] and speed in [0, 10], got {quality}, {speed}")
    if subsampling not in AVIF_SUBSAMPLING:
        raise ValueError(f"unknown AVIF subsampling {subsampling!r}; known: {', '.join(AVIF_SUBSAMPLING)}")
    if not features.check("avif"):  # pragma: no cover - Pillow wheels >= 11.2 have it
        raise RuntimeError("this Pillow has no AVIF support (pip install 'pillow>=11.2')")
    buf = io.BytesIO()
    Image.fromarray(to_uint8(img)).save(
        buf,
        "AVIF",
        quality=int(quality),
        speed=int(speed),
        subsampling=subsampling,
        codec="aom",
        max_threads=1,
    )
    return buf.getvalue()


def avif(img: np.ndarray, quality: int, speed: int = 6, subsampling: str = "4:2:0") -> np.ndarray:
    """AVIF round trip; same dtype out."""
    return _decode(avif_encode(img, quality, speed, subsampling), img.dtype)


def jpeg2000_encode(img: np.ndarray, ratio: float, levels: int = 5) -> bytes:
    """Lossy JPEG 2000 (OpenJPEG, 9/7 wavelet, ``levels`` decomposition levels) at a compression
    ``ratio`` (uncompressed size / file size, >= 1)."""
    check_image(img)
    if ratio < 1 or not 1 <= levels <= 8:
        raise ValueError(f"JPEG 2000 ratio must be >= 1 and levels in [1, 8], got {ratio}, {levels}")
    h, w = img.shape[:2]
    # OpenJPEG refuses more levels than the image can be halved: clamp for small images
    levels = min(int(levels), max(1, int(np.log2(max(2, min(h, w)))) - 1))
    buf = io.BytesIO()
    Image.fromarray(to_uint8(img)).save(
        buf,
        "JPEG2000",
        quality_mode="rates",
        quality_layers=[float(ratio)],
        irreversible=True,
        num_resolutions=levels + 1,
    )
    return buf.getvalue()


def jpeg2000(img: np.ndarray, ratio: float, levels: int = 5) -> np.ndarray:
    """JPEG 2000 round trip: wavelet blur and ringing instead of 8x8 blocks; same dtype out.
    (A 1-pixel-wide image, which OpenJPEG cannot code, is edge-padded to 2 pixels and cropped back.)"""
    check_image(img)
    h, w = img.shape[:2]
    src = cv2.copyMakeBorder(img, 0, max(0, 2 - h), 0, max(0, 2 - w), cv2.BORDER_REPLICATE)
    return _decode(jpeg2000_encode(src, ratio, levels), img.dtype)[:h, :w]


@cache
def _opencv_jpeg() -> str:
    m = re.search(r"JPEG:\s+(.*)", cv2.getBuildInformation())
    lib = m.group(1).strip() if m else "libjpeg (unknown version)"
    return f"{lib.replace('build-', '')}; OpenCV {cv2.__version__}"


@cache
def library_version(op: str) -> str:
    """The codec libraries that an op runs on this install, as recorded in its params (``lib``)."""
    pil = f"Pillow {Image.__version__}"
    if op == "jpeg":
        return _opencv_jpeg()
    if op == "webp":
        return f"libwebp {features.version('webp')}; {pil}"
    if op == "avif":
        from PIL import AvifImagePlugin

        return f"libavif {features.version('avif')}; aom {AvifImagePlugin.get_codec_version('aom')}; {pil}"
    if op == "jpeg2000":
        return f"openjpeg {features.version('jpg_2000')}; {pil}"
    raise ValueError(f"no codec library for op {op!r}")
