"""Samplers of the geometry and signal artefacts (pixelate, interlace, ghosting, motion_blur,
speckle_noise, salt_pepper) and of the camera ISP (a random camera after Brooks et al. 2019); their
steps are in :mod:`redegkit.degrade.spec.artefacts`.
"""

from __future__ import annotations

import math

import numpy as np

from ...rng import child_seed
from .. import params as P
from ..spec.artefacts import (
    CameraIspSpec,
    GhostingSpec,
    InterlaceSpec,
    MotionBlurSpec,
    PixelateSpec,
    SaltPepperSpec,
    SpeckleNoiseSpec,
)
from .draws import _as_spec, _chance, _int, _log_draw, _name, _polar, draw


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
