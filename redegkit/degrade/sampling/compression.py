"""Samplers of the compression ops besides JPEG: WebP, AVIF, JPEG 2000 and video, whose params also
record the codec library versions (their steps are in :mod:`redegkit.degrade.spec.compression`).
"""

from __future__ import annotations

import numpy as np

from .. import codecs, video
from .. import params as P
from ..spec.compression import AvifSpec, Jpeg2000Spec, VideoSpec, WebpSpec, video_codec_pix_fmts
from .draws import _as_spec, _chance, _int, _name, _odd, _pick_name, _polar, draw


def sample_webp(rng: np.random.Generator, spec: WebpSpec | dict) -> P.WebpParams:
    s = _as_spec(WebpSpec, spec)
    return P.WebpParams(
        quality=_int(rng, s.quality), method=_int(rng, s.method), lib=codecs.library_version("webp")
    )


def sample_avif(rng: np.random.Generator, spec: AvifSpec | dict) -> P.AvifParams:
    s = _as_spec(AvifSpec, spec)
    return P.AvifParams(
        quality=_int(rng, s.quality),
        speed=_int(rng, s.speed),
        subsampling=_name(rng, s.subsampling),
        lib=codecs.library_version("avif"),
    )


def sample_jpeg2000(rng: np.random.Generator, spec: Jpeg2000Spec | dict) -> P.Jpeg2000Params:
    s = _as_spec(Jpeg2000Spec, spec)
    return P.Jpeg2000Params(
        ratio=draw(rng, s.ratio), levels=_int(rng, s.levels), lib=codecs.library_version("jpeg2000")
    )


def sample_video(rng: np.random.Generator, spec: VideoSpec | dict) -> P.VideoParams:
    """Codec, a pixel format it takes, rate control and its value, speed preset, matrix, and the
    clip: an odd number of frames, each shifted by a pan (speed x frame offset, one random
    direction) plus a random shake; the middle frame is the image itself."""
    s = _as_spec(VideoSpec, spec)
    codec = _name(rng, s.codec)
    fmts = tuple((n, w) for n, w in s.pix_fmt if n in video_codec_pix_fmts(codec))
    pix_fmt = _name(rng, fmts)
    quality: float | None = None
    bpp: float | None = None
    if _pick_name(rng, s.rate) == "bitrate":
        bpp = draw(rng, s.bpp)
    elif codec in ("h264", "hevc"):
        quality = draw(rng, s.crf)
    elif codec in ("vp9", "av1"):
        quality = float(round(draw(rng, s.vp9_crf if codec == "vp9" else s.av1_crf)))
    else:
        quality = float(_int(rng, s.qscale))
    preset = _name(rng, s.preset) if codec in ("h264", "hevc", "vp9", "av1") else None
    matrix = _name(rng, s.matrix)
    frames = _odd(rng, s.frames)
    speed, direction, shake = draw(rng, s.motion), float(rng.uniform(0.0, 360.0)), draw(rng, s.jitter)
    vy, vx = _polar(speed, direction)
    mid = frames // 2
    shifts = []
    for k in range(frames):
        if k == mid:
            shifts.append((0.0, 0.0))
            continue
        jy, jx = rng.uniform(-shake, shake, 2) if shake > 0 else (0.0, 0.0)
        shifts.append(((k - mid) * vy + float(jy), (k - mid) * vx + float(jx)))
    delay = min(_int(rng, s.chroma_delay), mid) if _chance(rng, s.chroma_delay_p) else 0
    return P.VideoParams(
        codec=codec,
        quality=quality,
        bpp=bpp,
        preset=preset,
        pix_fmt=pix_fmt,
        matrix=matrix,
        shifts=shifts,
        chroma_delay=delay,
        lib=video.library_version(codec),
    )
