"""Sampling: turn a :class:`~redegkit.degrade.spec.Preset` into op params with a numpy Generator.

``sample_<op>(rng, spec) -> params`` draws one op's numbers from its spec's ranges (noise ops
draw a seed for their noise field); :func:`sample_ops` resolves the combinators (probabilities,
choices, shuffled orders) into the flat list of ops that run. The generator is the only source
of randomness, so the same seed gives the same params.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar, get_args

import numpy as np
from pydantic import BaseModel

from ..rng import child_seed
from . import codecs, video
from . import params as P
from .spec import (
    AvifSpec,
    BlurSpec,
    CameraIspSpec,
    ChannelShiftSpec,
    ChromaSpec,
    ColorSpec,
    DitherSpec,
    GaussianNoiseSpec,
    GhostingSpec,
    HalftoneSpec,
    InterlaceSpec,
    Jpeg2000Spec,
    JpegSpec,
    MotionBlurSpec,
    NearestDownSpec,
    OneOfSpec,
    PixelateSpec,
    PoissonNoiseSpec,
    Preset,
    QuantizeSpec,
    ResizeSpec,
    SaltPepperSpec,
    SequenceSpec,
    SharpenSpec,
    ShuffleSpec,
    SpeckleNoiseSpec,
    ToneSpec,
    VideoSpec,
    WebpSpec,
    video_codec_pix_fmts,
)

SpecT = TypeVar("SpecT", bound=BaseModel)


def draw(rng: np.random.Generator, r: tuple[tuple[float, float], ...]) -> float:
    """Sample a parsed :data:`Range`: pick a sub-range uniformly, then uniform inside it."""
    lo, hi = r[0] if len(r) == 1 else r[int(rng.integers(len(r)))]
    return lo if lo == hi else float(rng.uniform(lo, hi))


def pick(rng: np.random.Generator, weights: list[float] | tuple[float, ...]) -> int:
    """Index drawn with probability proportional to ``weights`` (one uniform draw)."""
    if len(weights) == 1:
        return 0
    u = rng.random() * sum(weights)
    acc = 0.0
    for i, w in enumerate(weights):
        acc += w
        if u < acc:
            return i
    return len(weights) - 1  # u == total after rounding


def _pick_name(rng: np.random.Generator, choice: tuple[tuple[str, float], ...]) -> str:
    return choice[pick(rng, [w for _, w in choice])][0]


def _as_spec(cls: type[SpecT], spec: SpecT | dict[str, Any]) -> SpecT:
    """Accept a spec model or its dict form (``{"sigma": [1, 5], ...}``; ``op`` may be left out)."""
    if isinstance(spec, cls):
        return spec
    if not isinstance(spec, dict):
        raise TypeError(f"expected a {cls.__name__} or a dict, got {type(spec).__name__}")
    op = get_args(cls.model_fields["op"].annotation)[0]  # the Literal's one value
    return cls.model_validate({"op": op, **spec})


def sample_blur(rng: np.random.Generator, spec: BlurSpec | dict) -> P.BlurParams:
    """Kernel type as given; odd size, widths (or variances), angle, beta or cutoff drawn."""
    s = _as_spec(BlurSpec, spec)
    lo, hi = s.size
    sizes = [n for n in range(lo, hi + 1) if n % 2]
    size = sizes[int(rng.integers(len(sizes)))]
    kw: dict[str, Any] = {"kernel": s.kernel, "size": size}
    if s.cutoff is not None and s.kernel == "sinc":  # (the spec requires cutoff for sinc)
        kw["cutoff"] = draw(rng, s.cutoff)
        return P.BlurParams(**kw)
    sigma, variance = s.sigma, s.variance

    def width() -> float:
        if sigma is not None:
            return draw(rng, sigma)
        assert variance is not None  # the spec requires one of the two
        return math.sqrt(draw(rng, variance))

    sx = width()
    aniso = s.kernel.endswith("aniso")
    kw.update(sigma_x=sx, sigma_y=width() if aniso else sx, offset=s.offset)
    if aniso:
        kw["angle"] = draw(rng, s.angle)
    if s.kernel.startswith(("generalized", "plateau")):
        kw["beta"] = draw(rng, s.beta)
    return P.BlurParams(**kw)


def sample_resize(
    rng: np.random.Generator, spec: ResizeSpec | dict, interp_quirk: bool = False
) -> P.ResizeParams:
    """Factor = factor / divide (each drawn); interpolation drawn (bilinear if the quirk applies)."""
    s = _as_spec(ResizeSpec, spec)
    factor = draw(rng, s.factor) / draw(rng, s.divide)
    interp = _pick_name(rng, s.interp)
    forced = interp_quirk and s.quirk
    return P.ResizeParams(
        ref=s.ref,
        factor=factor,
        interp="bilinear" if forced else interp,
        realign=s.realign,
        quirk=forced,
    )


def sample_nearest_down(rng: np.random.Generator, spec: NearestDownSpec | dict) -> P.NearestDownParams:
    """One integer factor from the list."""
    s = _as_spec(NearestDownSpec, spec)
    fs = s.factor if isinstance(s.factor, list) else [s.factor]
    return P.NearestDownParams(factor=fs[int(rng.integers(len(fs)))])


def sample_gaussian_noise(rng: np.random.Generator, spec: GaussianNoiseSpec | dict) -> P.GaussianNoiseParams:
    """Sigma, gray-or-colour (or a random channel covariance), and the noise seed."""
    s = _as_spec(GaussianNoiseSpec, spec)
    sigma = draw(rng, s.sigma)
    cov = None
    gray = False
    if s.correlated:
        # sigma^2 * |U^T D U| with a random orthonormal U and D = diag of 3 uniforms (BSRGAN's mixed noise)
        d = np.diag(rng.random(3))
        u, _ = np.linalg.qr(rng.random((3, 3)))
        cov = (sigma**2 * np.abs(u.T @ d @ u)).tolist()
    else:
        gray = bool(s.gray_p > 0 and rng.random() < s.gray_p)
    return P.GaussianNoiseParams(sigma=sigma, gray=gray, cov=cov, seed=child_seed(rng))


def sample_poisson_noise(rng: np.random.Generator, spec: PoissonNoiseSpec | dict) -> P.PoissonNoiseParams:
    """Scale, gray-or-colour, and the noise seed."""
    s = _as_spec(PoissonNoiseSpec, spec)
    scale = draw(rng, s.scale)
    gray = bool(s.gray_p > 0 and rng.random() < s.gray_p)
    return P.PoissonNoiseParams(scale=scale, gray=gray, seed=child_seed(rng))


def sample_jpeg(rng: np.random.Generator, spec: JpegSpec | dict) -> P.JpegParams:
    """An integer quality in the inclusive range, a chroma subsampling, baseline or progressive.
    (A single subsampling and progressive_p = 0 draw nothing, so older presets keep their draws.)"""
    s = _as_spec(JpegSpec, spec)
    lo, hi = s.quality
    quality = int(rng.integers(lo, hi + 1))
    return P.JpegParams(
        quality=quality,
        subsampling=_name(rng, s.subsampling),
        progressive=_chance(rng, s.progressive_p),
        lib=codecs.library_version("jpeg"),
    )


def sample_color(rng: np.random.Generator, spec: ColorSpec | dict) -> P.ColorParams:
    """Per-channel gains (gain_r/g/b when given, else gain drawn per channel), offsets (grey levels
    -> [0, 1] scale), saturation and contrast."""
    s = _as_spec(ColorSpec, spec)
    gains = tuple(draw(rng, getattr(s, f"gain_{c}") or s.gain) for c in "rgb")
    offsets = tuple(draw(rng, getattr(s, f"offset_{c}")) / 255.0 for c in "rgb")
    return P.ColorParams(
        gain=gains, offset=offsets, saturation=draw(rng, s.saturation), contrast=draw(rng, s.contrast)
    )


def sample_sharpen(rng: np.random.Generator, spec: SharpenSpec | dict) -> P.SharpenParams:
    s = _as_spec(SharpenSpec, spec)
    return P.SharpenParams(amount=draw(rng, s.amount), sigma=draw(rng, s.sigma))


# --------------------------------------------------------------------------- new ops' helpers


def _chance(rng: np.random.Generator, p: float) -> bool:
    """True with probability ``p``; draws nothing when p is 0 or 1."""
    if p <= 0:
        return False
    return True if p >= 1 else bool(rng.random() < p)


def _int(rng: np.random.Generator, r: tuple[int, int]) -> int:
    """An integer in the inclusive range (no draw when lo == hi)."""
    lo, hi = r
    return lo if lo == hi else int(rng.integers(lo, hi + 1))


def _odd(rng: np.random.Generator, r: tuple[int, int]) -> int:
    odd = [n for n in range(r[0], r[1] + 1) if n % 2]
    return odd[0] if len(odd) == 1 else odd[int(rng.integers(len(odd)))]


def _log_draw(rng: np.random.Generator, r: tuple[tuple[float, float], ...]) -> float:
    """Log-uniform inside a sub-range picked uniformly (all bounds > 0)."""
    lo, hi = r[0] if len(r) == 1 else r[int(rng.integers(len(r)))]
    return lo if lo == hi else float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _polar(length: float, angle_deg: float) -> tuple[float, float]:
    """(dy, dx) of a displacement of ``length`` pixels at ``angle_deg`` (0: right, 90: up on screen)."""
    a = math.radians(angle_deg)
    return (-length * math.sin(a), length * math.cos(a))


def _name(rng: np.random.Generator, choice: tuple[tuple[str, float], ...]) -> Any:
    """A drawn name, typed Any: the spec validated it against the params' Literal."""
    return _pick_name(rng, choice)


# ------------------------------------------------------------------------------- compression


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


# --------------------------------------------------------------------------- tone and colour


def sample_quantize(rng: np.random.Generator, spec: QuantizeSpec | dict) -> P.QuantizeParams:
    """A mode, then only the number that mode uses (the others keep their no-op defaults)."""
    s = _as_spec(QuantizeSpec, spec)
    mode = _name(rng, s.mode)
    if mode == "bits":
        return P.QuantizeParams(mode=mode, bits=_int(rng, s.bits))
    if mode == "levels":
        return P.QuantizeParams(mode=mode, levels=_int(rng, s.levels))
    return P.QuantizeParams(mode=mode, colors=_int(rng, s.colors), method=_name(rng, s.method))


def sample_dither(rng: np.random.Generator, spec: DitherSpec | dict) -> P.DitherParams:
    s = _as_spec(DitherSpec, spec)
    method = _name(rng, s.method)
    sizes = s.size if isinstance(s.size, list) else [s.size]
    size = sizes[0] if len(sizes) == 1 or method != "bayer" else sizes[int(rng.integers(len(sizes)))]
    return P.DitherParams(method=method, levels=_int(rng, s.levels), size=size, gray=_chance(rng, s.gray_p))


def sample_halftone(rng: np.random.Generator, spec: HalftoneSpec | dict) -> P.HalftoneParams:
    s = _as_spec(HalftoneSpec, spec)
    return P.HalftoneParams(
        mode=_name(rng, s.mode),
        cell=draw(rng, s.cell),
        angle=draw(rng, s.angle),
        softness=draw(rng, s.softness),
    )


def sample_chroma(rng: np.random.Generator, spec: ChromaSpec | dict) -> P.ChromaParams:
    s = _as_spec(ChromaSpec, spec)
    return P.ChromaParams(
        mode=_name(rng, s.mode), matrix=_name(rng, s.matrix), down=_name(rng, s.down), up=_name(rng, s.up)
    )


def sample_channel_shift(rng: np.random.Generator, spec: ChannelShiftSpec | dict) -> P.ChannelShiftParams:
    """Red moves by (length, angle), blue the opposite way by a share of it; red magnified by
    ``scale``, blue by its inverse."""
    s = _as_spec(ChannelShiftSpec, spec)
    dy, dx = _polar(draw(rng, s.shift), draw(rng, s.angle))
    b = draw(rng, s.blue)
    scale = draw(rng, s.scale)
    return P.ChannelShiftParams(
        shift_r=(dy, dx), shift_b=(-b * dy, -b * dx), scale_r=scale, scale_b=1.0 / scale
    )


def sample_tone(rng: np.random.Generator, spec: ToneSpec | dict) -> P.ToneParams:
    s = _as_spec(ToneSpec, spec)
    return P.ToneParams(
        gamma=draw(rng, s.gamma),
        contrast=draw(rng, s.contrast),
        brightness=draw(rng, s.brightness),
        black=draw(rng, s.black),
        white=draw(rng, s.white),
    )


# ----------------------------------------------------------------------- geometry and signal


def sample_pixelate(rng: np.random.Generator, spec: PixelateSpec | dict) -> P.PixelateParams:
    s = _as_spec(PixelateSpec, spec)
    return P.PixelateParams(block=_int(rng, s.block))


def sample_interlace(rng: np.random.Generator, spec: InterlaceSpec | dict) -> P.InterlaceParams:
    s = _as_spec(InterlaceSpec, spec)
    mode = _name(rng, s.mode)
    field = _name(rng, s.field)
    motion = _polar(draw(rng, s.motion), draw(rng, s.angle)) if mode != "drop" else (0.0, 0.0)
    fill = _name(rng, s.fill) if mode == "drop" else "linear"
    return P.InterlaceParams(mode=mode, field=field, motion=motion, fill=fill)


def sample_ghosting(rng: np.random.Generator, spec: GhostingSpec | dict) -> P.GhostingParams:
    s = _as_spec(GhostingSpec, spec)
    offset = _polar(draw(rng, s.offset), draw(rng, s.angle))
    return P.GhostingParams(offset=offset, amount=draw(rng, s.amount), echoes=_int(rng, s.echoes))


def sample_motion_blur(rng: np.random.Generator, spec: MotionBlurSpec | dict) -> P.MotionBlurParams:
    s = _as_spec(MotionBlurSpec, spec)
    return P.MotionBlurParams(length=draw(rng, s.length), angle=draw(rng, s.angle))


def sample_speckle_noise(rng: np.random.Generator, spec: SpeckleNoiseSpec | dict) -> P.SpeckleNoiseParams:
    s = _as_spec(SpeckleNoiseSpec, spec)
    sigma = draw(rng, s.sigma)
    return P.SpeckleNoiseParams(sigma=sigma, gray=_chance(rng, s.gray_p), seed=child_seed(rng))


def sample_salt_pepper(rng: np.random.Generator, spec: SaltPepperSpec | dict) -> P.SaltPepperParams:
    s = _as_spec(SaltPepperSpec, spec)
    amount, salt = draw(rng, s.amount), draw(rng, s.salt)
    return P.SaltPepperParams(
        amount=amount, salt=salt, per_channel=_chance(rng, s.per_channel_p), seed=child_seed(rng)
    )


# Brooks et al. 2019 (Fig. 2): read-noise variance against shot-noise strength, in log space
_READ_SLOPE, _READ_OFFSET, _READ_SIGMA = 2.18, 1.2, 0.26


def sample_camera_isp(rng: np.random.Generator, spec: CameraIspSpec | dict) -> P.CameraIspParams:
    """A random camera: CCM with negative off-diagonals (magnitudes up to ``ccm_strength``) and
    rows summing to 1 (white stays white), white-balance and exposure gains, a Bayer pattern, the
    noise (shot log-uniform, read from shot unless given), bit depth, demosaic and its seed."""
    s = _as_spec(CameraIspSpec, spec)
    strength = draw(rng, s.ccm_strength)
    off = rng.uniform(0.0, strength, (3, 3)) if strength > 0 else np.zeros((3, 3))
    np.fill_diagonal(off, 0.0)
    ccm = np.eye(3) * (1.0 + off.sum(axis=1, keepdims=True)) - off
    r_gain, b_gain, rgb_gain = draw(rng, s.r_gain), draw(rng, s.b_gain), draw(rng, s.rgb_gain)
    shot = _log_draw(rng, s.shot)
    if s.read is None:
        read = math.exp(_READ_SLOPE * math.log(shot) + _READ_OFFSET + float(rng.normal(0.0, _READ_SIGMA)))
    else:
        read = _log_draw(rng, s.read)
    return P.CameraIspParams(
        ccm=ccm.tolist(),
        r_gain=r_gain,
        b_gain=b_gain,
        rgb_gain=rgb_gain,
        pattern=_name(rng, s.pattern),
        shot=shot,
        read=read,
        bits=_int(rng, s.bits),
        demosaic=_name(rng, s.demosaic),
        tone_curve=s.tone_curve,
        wb_error=(draw(rng, s.wb_error), draw(rng, s.wb_error)),
        seed=child_seed(rng),
    )


_SAMPLERS: dict[type, Callable[[np.random.Generator, Any], P.OpParamsBase]] = {
    BlurSpec: sample_blur,
    NearestDownSpec: sample_nearest_down,
    GaussianNoiseSpec: sample_gaussian_noise,
    PoissonNoiseSpec: sample_poisson_noise,
    JpegSpec: sample_jpeg,
    ColorSpec: sample_color,
    SharpenSpec: sample_sharpen,
    WebpSpec: sample_webp,
    AvifSpec: sample_avif,
    Jpeg2000Spec: sample_jpeg2000,
    VideoSpec: sample_video,
    QuantizeSpec: sample_quantize,
    DitherSpec: sample_dither,
    HalftoneSpec: sample_halftone,
    ChromaSpec: sample_chroma,
    ChannelShiftSpec: sample_channel_shift,
    ToneSpec: sample_tone,
    PixelateSpec: sample_pixelate,
    InterlaceSpec: sample_interlace,
    GhostingSpec: sample_ghosting,
    MotionBlurSpec: sample_motion_blur,
    SpeckleNoiseSpec: sample_speckle_noise,
    SaltPepperSpec: sample_salt_pepper,
    CameraIspSpec: sample_camera_isp,
}

Unit = list[Any]  # a run of op params that a shuffle moves as one item


def _sample_units(step: Any, rng: np.random.Generator, preset: Preset, label: str | None) -> list[Unit]:
    if step.p < 1.0 and rng.random() >= step.p:
        return []
    label = step.label or label
    if isinstance(step, SequenceSpec):
        units = [u for s in step.steps for u in _sample_units(s, rng, preset, label)]
        return units if step.spread else [[op for u in units for op in u]]
    if isinstance(step, OneOfSpec):
        i = pick(rng, step.weights or [1.0] * len(step.choices))
        return _sample_units(step.choices[i], rng, preset, label)
    if isinstance(step, ShuffleSpec):
        return [_shuffle(step, rng, preset, label)]
    op: P.OpParamsBase
    if isinstance(step, ResizeSpec):
        op = sample_resize(rng, step, preset.interp_quirk)
    else:
        op = _SAMPLERS[type(step)](rng, step)
    op.label = label
    return [[op]]


def _shuffle(step: ShuffleSpec, rng: np.random.Generator, preset: Preset, label: str | None) -> Unit:
    tagged = [(i, u) for i, s in enumerate(step.steps) for u in _sample_units(s, rng, preset, label)]
    order = [tagged[j] for j in rng.permutation(len(tagged))]
    for group in step.keep_order:
        slots = [k for k, (i, _) in enumerate(order) if i in group]
        members = sorted((order[k] for k in slots), key=lambda t: group.index(t[0]))  # stable within a step
        for k, m in zip(slots, members, strict=True):
            order[k] = m
    return [op for _, u in order for op in u]


def sample_ops(preset: Preset, rng: np.random.Generator) -> list[Any]:
    """Resolve every probability, choice and order of ``preset``: the flat list of op params."""
    units = [u for s in preset.steps for u in _sample_units(s, rng, preset, None)]
    return [op for u in units for op in u]
