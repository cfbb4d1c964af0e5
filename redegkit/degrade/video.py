"""Video codec artefacts through PyAV (FFmpeg's libraries from its wheel): h264, hevc, vp9, av1, mpeg2,
mpeg4.

One image becomes the middle frame of a short clip of shifted copies of itself (the motion a
camera or a pan gives), the clip is encoded with the codec's settings and decoded again, and the
middle frame is returned. With ``frames > 1`` that frame is coded from its neighbours (P/B
frames: motion-compensated prediction, skipped blocks, drifting detail), not only intra-coded.
A chroma delay gives each frame the chroma planes of a frame ``chroma_delay`` frames earlier (colour
lagging behind moving edges, as on tape and in some broadcast chains).

Colour: RGB -> 8-bit limited-range Y'CbCr with the BT.601 or BT.709 matrix, chroma box-averaged to
4:2:0 or 4:2:2 (:mod:`.colorspace`); back with bilinear chroma and the same matrix. Frames are
edge-padded to whole macroblocks (16 pixels; 32 for hevc's CTUs), as encoders pad internally, and
to at least 32 pixels (64 for av1), and cropped back.

Determinism: every encoder and decoder runs on one thread with fixed options, so the same
parameters give the same bitstream on the same library versions (:func:`library_version` names
them for the op's record).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from typing import Any

import cv2
import numpy as np

from . import colorspace as C
from .ops import check_image, subpixel_shift, to_float, to_uint8

X264_PARAMS = "no-mbtree=1:rc-lookahead=0"  # see _encoder: repeatable bytes


@dataclass(frozen=True)
class VideoCodec:
    encoder: str  # FFmpeg encoder name
    decoder: str  # FFmpeg decoder name
    pix_fmts: tuple[str, ...]  # the pixel formats we offer for it
    quality: str  # what rate="quality" sets: "crf" or "qscale" (fixed quantiser qmin = qmax = q)
    quality_max: int  # largest crf / qscale value
    align: int = 16  # frames are edge-padded to a multiple of this (the macroblock / CTU size)
    min_side: int = 32  # ... and to at least this many pixels per side


CODECS: dict[str, VideoCodec] = {
    "h264": VideoCodec("libx264", "h264", ("yuv420p", "yuv422p"), "crf", 51),
    # x265 runs with 32x32 CTUs on frames padded to whole CTUs: it keeps some CTU state process-wide
    # and corrupts memory on unaligned small frames after encoders of other sizes
    # min_side 64: libx265 4.2 codes frames of one 32-px CTU differently from run to run in a
    # long-lived process (10 of 15 repeats differed, measured); from 64 px on its bytes repeat
    "hevc": VideoCodec("libx265", "hevc", ("yuv420p", "yuv422p"), "crf", 51, align=32, min_side=64),
    "vp9": VideoCodec("libvpx-vp9", "vp9", ("yuv420p", "yuv422p"), "crf", 63),
    # SVT-AV1 encodes, dav1d decodes (FFmpeg's own AV1 decoder needs hardware); SVT-AV1 turns its
    # adaptive quantisation off below 64 pixels and then refuses a bit rate
    "av1": VideoCodec("libsvtav1", "libdav1d", ("yuv420p",), "crf", 63, min_side=64),
    "mpeg2": VideoCodec("mpeg2video", "mpeg2video", ("yuv420p", "yuv422p"), "qscale", 31),
    "mpeg4": VideoCodec("mpeg4", "mpeg4", ("yuv420p",), "qscale", 31),
}
PIX_FMTS: dict[str, tuple[int, int]] = {"yuv420p": (2, 2), "yuv422p": (2, 1)}
VIDEO_MATRICES = ("bt601", "bt709")
# x264 / x265 speed presets; vp9 maps them to libvpx's cpu-used in "good" mode (0 slowest - 5 fastest)
SPEED_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)
_VP9_CPU_USED = dict(zip(SPEED_PRESETS, (5, 5, 4, 4, 3, 2, 1, 0, 0), strict=True))
# ... and SVT-AV1 to its presets (13 fastest - 0 slowest)
_SVT_PRESET = dict(zip(SPEED_PRESETS, (12, 11, 10, 9, 8, 7, 6, 5, 4), strict=True))
FPS = 25
MAX_FRAMES = 15
_MPEG_B_FRAMES = 2  # mpeg2video / mpeg4 code I B B P ... as DVD and Xvid encoders do (FFmpeg's default: 0)


def _av() -> Any:
    try:
        import av
    except ImportError as e:  # pragma: no cover - av is a core dependency
        raise RuntimeError("the video op needs PyAV: pip install av") from e
    return av


def _check_settings(codec: str, pix_fmt: str, matrix: str, preset: str | None) -> VideoCodec:
    if codec not in CODECS:
        raise ValueError(f"unknown video codec {codec!r}; known: {', '.join(CODECS)}")
    c = CODECS[codec]
    if pix_fmt not in c.pix_fmts:
        raise ValueError(f"{codec} takes pixel formats {', '.join(c.pix_fmts)}, not {pix_fmt!r}")
    if matrix not in VIDEO_MATRICES:
        raise ValueError(f"unknown video colour matrix {matrix!r}; known: {', '.join(VIDEO_MATRICES)}")
    if preset is not None and preset not in SPEED_PRESETS:
        raise ValueError(f"unknown speed preset {preset!r}; known: {', '.join(SPEED_PRESETS)}")
    return c


def _encoder(
    codec: str,
    width: int,
    height: int,
    pix_fmt: str,
    matrix: str,
    frames: int,
    quality: float | None,
    bpp: float | None,
    preset: str | None,
) -> Any:
    """An opened-on-first-use PyAV encoder context with every option set (one thread)."""
    av = _av()
    c = CODECS[codec]
    cc = av.CodecContext.create(c.encoder, "w")
    cc.width, cc.height, cc.pix_fmt = width, height, pix_fmt
    cc.time_base = Fraction(1, FPS)
    cc.framerate = Fraction(FPS, 1)
    cc.thread_count = 1
    # one key frame, at the start: every later frame is predicted (>= 2: SVT-AV1 refuses a bit rate
    # with a key frame interval of 1; a one-frame clip is intra-coded whatever the interval)
    cc.gop_size = max(frames, 2)
    from av.video.reformatter import ColorRange, Colorspace

    cc.colorspace = Colorspace.ITU709 if matrix == "bt709" else Colorspace.SMPTE170M
    cc.color_range = ColorRange.MPEG
    opts: dict[str, str] = {}
    if bpp is not None:
        cc.bit_rate = max(1000, int(round(bpp * width * height * FPS)))
    if codec in ("h264", "hevc"):
        opts["preset"] = preset or "medium"
        if quality is not None:
            opts["crf"] = repr(float(quality))  # x264 / x265 take a fractional crf
        if codec == "h264":
            # no macroblock tree and no lookahead: with them libx264 coded a clip differently in 2 of
            # 240 repeats in one process (measured); without them, in none
            opts["x264-params"] = X264_PARAMS
        if codec == "hevc":
            # one CTU size for every preset (see CODECS), one thread, no log lines
            opts["x265-params"] = "log-level=none:pools=none:frame-threads=1:ctu=32:min-cu-size=8"
    elif codec == "vp9":
        opts.update({"deadline": "good", "cpu-used": str(_VP9_CPU_USED[preset or "medium"]), "row-mt": "0"})
        if quality is not None:
            opts.update({"crf": str(int(round(quality))), "b": "0"})
    elif codec == "av1":
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints a banner per encoder otherwise
        # one thread; adaptive quantisation on (SVT-AV1 refuses rate control without it)
        opts.update({"preset": str(_SVT_PRESET[preset or "medium"]), "svtav1-params": "lp=1:aq-mode=2"})
        if quality is not None:
            opts["crf"] = str(int(round(quality)))
    else:  # mpeg2 / mpeg4
        cc.max_b_frames = _MPEG_B_FRAMES
        if quality is not None:
            cc.qmin = cc.qmax = int(quality)
    cc.options = opts
    return cc


def _frame(av: Any, planes: tuple[np.ndarray, ...], pix_fmt: str, pts: int) -> Any:
    h, w = planes[0].shape
    f = av.VideoFrame(w, h, pix_fmt)
    for plane, arr in zip(f.planes, planes, strict=True):
        buf = np.zeros((plane.height, plane.line_size), np.uint8)  # rows padded to the line size
        buf[:, : plane.width] = arr
        plane.update(buf)
    f.pts = pts
    return f


def _planes(frame: Any) -> tuple[np.ndarray, ...]:
    return tuple(
        np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width].copy() for p in frame.planes
    )


def encode_clip(
    clip: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    codec: str,
    pix_fmt: str = "yuv420p",
    matrix: str = "bt709",
    quality: float | None = None,
    bpp: float | None = None,
    preset: str | None = None,
) -> list[bytes]:
    """Encode a clip of 8-bit planes ``(Y, Cb, Cr)`` (chroma already subsampled for ``pix_fmt``) into
    the codec's packets, in decode order. ``quality`` is the crf (h264/hevc: 0-51, vp9: 0-63) or
    the fixed quantiser (mpeg2/mpeg4: 1-31); ``bpp``, bits per pixel per frame, sets a bit rate
    instead. Exactly one of the two."""
    c = _check_settings(codec, pix_fmt, matrix, preset)
    if (quality is None) == (bpp is None):
        raise ValueError("give exactly one of quality (crf / qscale) or bpp (bit rate)")
    lo = 0 if c.quality == "crf" else 1
    if quality is not None and not lo <= quality <= c.quality_max:
        raise ValueError(f"{codec} {c.quality} must be in [{lo}, {c.quality_max}], got {quality}")
    if not 1 <= len(clip) <= MAX_FRAMES:
        raise ValueError(f"a clip has 1 to {MAX_FRAMES} frames, got {len(clip)}")
    av = _av()
    h, w = clip[0][0].shape
    cc = _encoder(codec, w, h, pix_fmt, matrix, len(clip), quality, bpp, preset)
    packets: list[bytes] = []
    for i, planes in enumerate(clip):
        packets += [bytes(p) for p in cc.encode(_frame(av, planes, pix_fmt, i))]
    packets += [bytes(p) for p in cc.encode(None)]
    return packets


def decode_clip(packets: list[bytes], codec: str) -> list[tuple[np.ndarray, ...]]:
    """Decode packets from :func:`encode_clip` into frames of planes ``(Y, Cb, Cr)``, display order."""
    av = _av()
    dec = av.CodecContext.create(CODECS[codec].decoder, "r")
    dec.thread_count = 1
    frames = []
    for data in packets:
        frames += dec.decode(av.Packet(data))
    frames += dec.decode(None)
    return [_planes(f) for f in frames]


def rgb_to_planes(x: np.ndarray, pix_fmt: str, matrix: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RGB float32 [0, 1] (even sizes) -> 8-bit limited-range (Y, Cb, Cr), chroma box-averaged."""
    fh, fv = PIX_FMTS[pix_fmt]
    ycc = C.rgb_to_ycbcr(x, matrix, full_range=False)
    y = np.clip(np.rint(ycc[:, :, 0]), 0, 255).astype(np.uint8)
    cb, cr = (
        np.clip(np.rint(C.downsample_chroma(ycc[:, :, c], fh, fv, "box")), 0, 255).astype(np.uint8)
        for c in (1, 2)
    )
    return y, cb, cr


def planes_to_rgb(planes: tuple[np.ndarray, ...], pix_fmt: str, matrix: str) -> np.ndarray:
    """The inverse of :func:`rgb_to_planes` (bilinear chroma): RGB float32, clipped to [0, 1]."""
    fh, fv = PIX_FMTS[pix_fmt]
    y = planes[0].astype(np.float32)
    h, w = y.shape
    cb, cr = (C.upsample_chroma(p.astype(np.float32), fh, fv, (h, w), "bilinear") for p in planes[1:])
    rgb = C.ycbcr_to_rgb(np.dstack([y, cb, cr]), matrix, full_range=False)
    return np.clip(rgb, 0.0, 1.0)


def build_clip(
    x: np.ndarray, shifts: list[tuple[float, float]], pix_fmt: str, matrix: str, chroma_delay: int = 0
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The planes of each frame: ``x`` (float32 RGB) moved by each shift, converted; with a chroma
    delay d, frame k carries the chroma of frame max(k - d, 0)."""
    planes = [rgb_to_planes(subpixel_shift(x, -dy, -dx), pix_fmt, matrix) for dy, dx in shifts]
    if chroma_delay == 0:
        return planes
    return [(y, *planes[max(k - chroma_delay, 0)][1:]) for k, (y, _, _) in enumerate(planes)]


def video(
    img: np.ndarray,
    codec: str,
    *,
    quality: float | None = None,
    bpp: float | None = None,
    preset: str | None = None,
    pix_fmt: str = "yuv420p",
    matrix: str = "bt709",
    shifts: list[tuple[float, float]] | None = None,
    chroma_delay: int = 0,
) -> np.ndarray:
    """Encode ``img`` as the middle frame of a clip and decode it again; same dtype out.

    ``shifts``: one ``(dy, dx)`` per frame, the content displacement of that frame in pixels
    (bilinear, edges repeated); the middle entry must be ``(0, 0)``. None: a one-frame clip
    (intra coding only). ``chroma_delay``: frames by which chroma lags luma (at most the middle
    frame's index). ``quality``/``bpp``/``preset``/``pix_fmt``/``matrix``: see :func:`encode_clip`.
    """
    check_image(img)
    shifts = list(shifts) if shifts else [(0.0, 0.0)]
    mid = len(shifts) // 2
    if len(shifts) % 2 == 0 or tuple(shifts[mid]) != (0.0, 0.0):
        raise ValueError(f"shifts must be an odd-length list with (0, 0) in the middle, got {shifts}")
    if not 0 <= chroma_delay <= mid:
        raise ValueError(f"chroma_delay must be in [0, {mid}] for a clip of {len(shifts)} frames")
    _check_settings(codec, pix_fmt, matrix, preset)
    h, w = img.shape[:2]
    a, m = CODECS[codec].align, CODECS[codec].min_side
    ph, pw = (max(m, n + -n % a) - n for n in (h, w))
    x = to_float(img)
    if ph or pw:
        x = cv2.copyMakeBorder(x, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
    clip = build_clip(x, shifts, pix_fmt, matrix, chroma_delay)
    decoded = decode_clip(encode_clip(clip, codec, pix_fmt, matrix, quality, bpp, preset), codec)
    if len(decoded) != len(clip):  # pragma: no cover - an encoder that drops frames
        raise RuntimeError(f"{codec}: {len(clip)} frames in, {len(decoded)} decoded")
    out = planes_to_rgb(decoded[mid], pix_fmt, matrix)[:h, :w]
    return to_uint8(out) if img.dtype == np.uint8 else np.ascontiguousarray(out)


@cache
def _encoder_build(codec: str) -> str:
    """The encoder library's own version where its bitstream names it (x264 / x265 SEI)."""
    if codec not in ("h264", "hevc"):
        return ""
    y = np.full((32, 32), 128, np.uint8)
    c = np.full((16, 16), 128, np.uint8)
    data = b"".join(encode_clip([(y, c, c)], codec, quality=30, preset="ultrafast"))
    pattern = rb"x264 - core \d+( r\d+ \w+)?" if codec == "h264" else rb"x265 \(build \d+\) - [\w.+-]+"
    m = re.search(pattern, data)
    return m.group(0).decode("ascii", "replace") if m else ""


@cache
def _bundled_versions() -> dict[str, str]:
    """Library name -> version from the file names of the libraries bundled in PyAV's wheel
    (``av.libs/libvpx-<hash>.so.12.0.0``); empty where the wheel bundles none (other platforms)."""
    from pathlib import Path

    av = _av()
    found: dict[str, str] = {}
    for d in Path(av.__file__).parent.parent.glob("av.libs"):
        for f in d.iterdir():
            m = re.match(r"(lib[A-Za-z0-9]+)-[0-9a-f]+\.so\.([\d.]+)$", f.name)
            if m:
                found[m.group(1)] = m.group(2)
    return found


_BUNDLED = {"vp9": ("libvpx",), "av1": ("libSvtAv1Enc", "libdav1d")}


@cache
def library_version(codec: str) -> str:
    """The encoder (x264 / x265 build from their bitstream; the bundled library files' versions for
    vp9 and av1), libavcodec and PyAV that code ``codec`` here."""
    av = _av()
    avc = ".".join(map(str, av.library_versions["libavcodec"]))
    enc = CODECS[codec].encoder
    build = _encoder_build(codec)
    libs = _bundled_versions()
    extra = [f"{name} {libs[name]}" for name in _BUNDLED.get(codec, ()) if name in libs]
    detail = "; ".join([build] if build else extra)
    return f"{enc}{' (' + detail + ')' if detail else ''}; libavcodec {avc}; PyAV {av.__version__}"
