"""A fast PNG path for the data writers and readers: fewer milliseconds per image, same pixels.

:func:`encode_png` writes 8-bit gray / gray+alpha / RGB / RGBA PNGs for the cheap levels:

* level 0: deflate "stored" blocks (no compression) and filter type 0 (None) on every row;
* levels 1-3: filter type 2 (Up: each row minus the row above; the first row is left as it is)
  computed with numpy, then zlib-format deflate by ISA-L (``isal``) at its level 1-3, or by the
  stdlib ``zlib`` at the same level for images under 64 KiB of rows (:data:`ISAL_MIN_BYTES`) and
  when ``isal`` is not installed (the same pixels, other bytes);
* levels 4-9: ``None``, so that the caller uses OpenCV/libpng, whose per-row adaptive filters
  make the smaller files that someone asking for 4-9 wants.

The output is one ``IHDR``, one ``IDAT`` and ``IEND``; the same array gives the same bytes (for
one compressor build).

:func:`decode_png_fast` reads the plain case, 8-bit RGB or RGBA, not interlaced, no ``tRNS``,
not animated: it checks every chunk CRC, inflates the IDAT stream with ISA-L (checking the
Adler-32) and lets ``pyspng`` (libspng) unfilter the rows, which is about twice as fast as
OpenCV. Anything else, and any file that fails a check, gives ``None``, so that the caller keeps
its OpenCV path and that path's handling of odd and broken files. (libspng as pyspng sets it up
checks neither CRCs nor the Adler-32, so it is not handed the file itself.)
"""

from __future__ import annotations

import functools
import os
import struct
import zlib
from types import ModuleType

import numpy as np

_isal: ModuleType | None  # None when isal is missing (then the stdlib's zlib)
try:  # ISA-L's deflate: about 4x faster than zlib level 1 on image rows
    from isal import isal_zlib as _isal
except ImportError:  # pragma: no cover - isal is a dependency; the stdlib keeps the pixels the same
    _isal = None

try:
    import pyspng as _spng
except ImportError:  # pragma: no cover
    _spng = None

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_FAST_LEVEL = 3  # levels above this go to libpng (cv2)
# Filtered rows shorter than this are deflated by the stdlib's zlib, not ISA-L. Twice in many CI
# runs a Ray worker's tiny PNG (16x16 and 16x16/32x32 crops) came out one byte apart from the same
# rows elsewhere, the pixels equal. The likely cause (not reproduced in one process): ISA-L's
# level-1 deflate does not clear its whole hash table for inputs small against it, so stale
# entries can change its match choices. Every size it was seen at is far below this; zlib costs
# ~0.1 ms here (a 256^2 crop, 196 KiB, keeps ISA-L: 0.47 ms against zlib's 4.5 ms).
ISAL_MIN_BYTES = 1 << 16
STORED_BLOCK = 65535  # the most bytes one deflate stored block holds

_COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (gray, gray+alpha, RGB, RGBA)
_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_crc32 = _isal.crc32 if _isal is not None else zlib.crc32
_IDAT_CRC = _crc32(b"IDAT")  # a chunk's CRC covers its type: IDAT's part, once
_U32 = struct.Struct(">I")  # a big-endian chunk length or CRC
_adler32 = _isal.adler32 if _isal is not None else zlib.adler32


def _chunk_head(kind: bytes, length: int) -> bytes:
    return _U32.pack(length) + kind


@functools.lru_cache(maxsize=64)
def _head(width: int, height: int, colour_type: int) -> bytes:
    """The signature and IHDR of one image shape (the same for every crop of a run)."""
    return PNG_SIGNATURE + _ihdr(width, height, colour_type)


def _ihdr(width: int, height: int, colour_type: int) -> bytes:
    body = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return _U32.pack(13) + body + _U32.pack(_crc32(body))


def _as_hwc(img: np.ndarray) -> np.ndarray:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        raise ValueError(
            f"encode_png: expected a uint8 numpy array, got {type(img).__name__} {getattr(img, 'dtype', '')}"
        )
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in _COLOUR_TYPE:
        raise ValueError(f"encode_png: expected HxW, HxWx1, HxWx2, HxWx3 or HxWx4, got shape {img.shape}")
    h, w = img.shape[:2]
    if not (0 < h < 2**31 and 0 < w < 2**31):
        raise ValueError(f"encode_png: a PNG is 1 to 2**31-1 pixels a side, got {h}x{w}")
    return img


def _rows(img: np.ndarray, up: bool) -> np.ndarray:
    """The filtered scanlines, [H, 1 + W*C] uint8: a filter-type byte, then the row's bytes."""
    h, w, c = img.shape
    stride = 1 + w * c
    buf = np.empty((h, stride), np.uint8)
    # the pixel part of buf as HxWxC (a view by construction: reshape could silently copy)
    pix = np.ndarray((h, w, c), np.uint8, buffer=buf, offset=1, strides=(stride, c, 1))
    pix[0] = img[0]
    buf[0, 0] = 0
    if up:
        np.subtract(img[1:], img[:-1], out=pix[1:])  # uint8 arithmetic wraps: the PNG's mod 256
        buf[1:, 0] = 2
    else:
        pix[1:] = img[1:]
        buf[1:, 0] = 0
    return buf


def stored_png_size(height: int, width: int, channels: int = 3) -> int:
    """The exact size of :func:`encode_png` at level 0: signature, IHDR, one IDAT of stored
    blocks (zlib header, 5 bytes per block of up to 65535 bytes, Adler-32), IEND."""
    raw = height * (1 + width * channels)
    blocks = max(1, -(-raw // STORED_BLOCK))
    return 8 + (12 + 13) + (12 + 2 + 5 * blocks + raw + 4) + 12


def _stored_idat(raw: memoryview, checksums: bool = True) -> list[bytes | memoryview]:
    """An IDAT chunk, whole (length, type, data, CRC), holding ``raw`` as zlib stored blocks, as
    the pieces to join (views of ``raw``: the caller's one join is the only copy).
    ``checksums=False`` leaves the Adler-32 and the CRC zero: only for the copy handed to libspng
    in :func:`decode_png_fast`, which checks neither (the file's own were checked before)."""
    n = len(raw)
    blocks = max(1, -(-n // STORED_BLOCK))
    size = 2 + 5 * blocks + n + 4
    # deflate, 32K window, no dictionary, "fastest" (FCHECK: 0x7801 % 31 == 0)
    parts: list[bytes | memoryview] = [_chunk_head(b"IDAT", size), b"\x78\x01"]
    src = 0
    for b in range(blocks):
        k = min(STORED_BLOCK, n - src)
        parts += (struct.pack("<BHH", 1 if b == blocks - 1 else 0, k, k ^ 0xFFFF), raw[src : src + k])
        src += k
    if not checksums:
        return [*parts, bytes(8)]
    parts.append(_U32.pack(_adler32(raw)))
    crc = _IDAT_CRC
    for part in parts[1:]:
        crc = _crc32(part, crc)
    return [*parts, _U32.pack(crc)]


def encode_png(rgb: np.ndarray, level: int) -> bytes | None:
    """8-bit PNG bytes of ``rgb`` (HxW or HxWx{1,2,3,4} uint8, RGB order, any strides) at
    ``level`` 0-3, or ``None`` for other levels (the caller's libpng path). See the module doc."""
    level = int(level)
    if not 0 <= level <= MAX_FAST_LEVEL:
        return None
    img = _as_hwc(rgb)
    h, w, c = img.shape
    head = _head(w, h, _COLOUR_TYPE[c])
    if level == 0:
        return b"".join((head, *_stored_idat(_rows(img, up=False).data.cast("B")), _IEND))
    rows = _rows(img, up=True).data  # a memoryview: numpy types an array as a buffer from Python 3.12 only
    if _isal is not None and rows.nbytes >= ISAL_MIN_BYTES:
        data = _isal.compress(rows, level)
    else:  # small images (see ISAL_MIN_BYTES), and without isal (the tests patch it out)
        data = zlib.compress(rows, level)
    if len(data) >= 2**31:  # more than one IDAT chunk holds; libpng splits it into several
        return None
    return b"".join((head, _chunk_head(b"IDAT", len(data)), data, _U32.pack(_crc32(data, _IDAT_CRC)), _IEND))


# What OpenCV's PNG reader accepts (cv2 reads OPENCV_IO_MAX_IMAGE_* once, with these defaults) and
# libpng's default user limit of 1,000,000 pixels a side: bigger images keep the cv2 path and its errors.
def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


_MAX_W = min(1_000_000, _env_int("OPENCV_IO_MAX_IMAGE_WIDTH", 1 << 20))
_MAX_H = min(1_000_000, _env_int("OPENCV_IO_MAX_IMAGE_HEIGHT", 1 << 20))
_MAX_PIXELS = _env_int("OPENCV_IO_MAX_IMAGE_PIXELS", 1 << 30)

_KNOWN_CRITICAL = {b"IHDR", b"PLTE", b"IDAT", b"IEND"}
_NOT_PLAIN = {b"tRNS", b"acTL", b"fcTL", b"fdAT"}  # OpenCV expands tRNS to alpha; APNG animation
_MAX_RAW = 1 << 30  # inflated scanline bytes the fast path takes on (one stored IDAT below 2**31)


_CHUNK_HEAD = struct.Struct(">I4s").unpack_from  # a chunk's length and type


def _plain_png(data: bytes) -> tuple[int, int, int, list[memoryview]] | None:
    """(width, height, channels, IDAT payloads) of a well-formed 8-bit RGB/RGBA, non-interlaced,
    non-animated PNG without tRNS whose every chunk up to IEND has the right CRC; else None."""
    if len(data) < 8 + 25 + 12 or data[:8] != PNG_SIGNATURE or data[8:16] != b"\x00\x00\x00\x0dIHDR":
        return None
    width, height, depth, colour, method, filt, interlace = struct.unpack_from(">IIBBBBB", data, 16)
    if depth != 8 or colour not in (2, 6) or method or filt or interlace:
        return None
    channels = 3 if colour == 2 else 4
    if not (0 < width <= _MAX_W and 0 < height <= _MAX_H and width * height <= _MAX_PIXELS):
        return None
    if height * (1 + width * channels) > _MAX_RAW:
        return None
    view = memoryview(data)
    idats: list[memoryview] = []
    pos, n, state = 8, len(data), 0  # state: 0 before the IDATs, 1 in them, 2 after
    while True:
        if pos + 12 > n:
            return None
        length, kind = _CHUNK_HEAD(data, pos)
        end = pos + 12 + length
        if kind == b"IDAT" and state < 2 and end <= n and length < 2**31:  # the common chunk, in short
            if _crc32(view[pos + 4 : end - 4]) != _U32.unpack_from(data, end - 4)[0]:
                return None
            state = 1
            idats.append(view[pos + 8 : end - 4])
            pos = end
            continue
        if length >= 2**31 or end > n or not kind.isalpha():
            return None
        if kind in _NOT_PLAIN or (kind == b"IHDR" and pos != 8):
            return None
        if kind[0] < 0x61 and kind not in _KNOWN_CRITICAL:  # an unknown critical chunk: libpng refuses it
            return None
        if kind == b"IDAT":
            if state == 2:
                return None
            state = 1
            idats.append(view[pos + 8 : end - 4])
        elif state == 1:
            state = 2
        if kind == b"PLTE" and state:
            return None
        if _crc32(view[pos + 4 : end - 4]) != int.from_bytes(data[end - 4 : end], "big"):
            return None
        if kind == b"IEND":
            return (width, height, channels, idats) if state == 2 and length == 0 else None
        pos = end


def _inflate(stream: bytes | memoryview, size: int) -> bytes:
    """zlib-decompress ``stream`` (raises on a bad stream or a wrong Adler-32). A 32K-window
    stream goes to ISA-L; a smaller declared window to the stdlib honouring it, as libpng does."""
    if _isal is not None and stream[:1] == b"\x78":
        return _isal.decompress(stream, bufsize=size + 1)
    return zlib.decompress(stream, 0, size + 1)


def decode_png_fast(data: bytes) -> np.ndarray | None:
    """RGB HxWx3 or RGBA HxWx4 ``uint8`` (C-contiguous) for a plain 8-bit RGB/RGBA PNG; ``None``
    for every other PNG, for non-PNG data, without pyspng, or when a check or the decoder fails.

    The IDAT stream is inflated here (ISA-L; the Adler-32 checked, which the libspng under pyspng
    skips, as it skips chunk CRCs, checked above), then pyspng unfilters a stored-deflate copy of
    it. libspng applies no gamma or colour profile, so the pixels are OpenCV's in RGB order.
    ``tRNS`` (OpenCV turns it into an alpha channel), interlaced, animated, palette, gray and
    16-bit files, and broken ones, are left to the caller.
    """
    if _spng is None or not isinstance(data, bytes):
        return None
    plain = _plain_png(data)
    if plain is None:
        return None
    width, height, channels, idats = plain
    size = height * (1 + width * channels)
    try:
        raw = _inflate(idats[0] if len(idats) == 1 else b"".join(idats), size)
    except Exception:
        return None
    if len(raw) < size:  # libpng: "Not enough image data"; more is only a warning
        return None
    rows = memoryview(raw)[:size]
    if np.frombuffer(rows, np.uint8)[:: 1 + width * channels].max() > 4:  # a filter type PNG lacks
        return None
    png = b"".join((data[:33], *_stored_idat(rows, checksums=False), _IEND))
    try:
        arr = _spng.load(png)
    except Exception:
        return None
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.shape != (height, width, channels):
        return None
    return np.ascontiguousarray(arr)
