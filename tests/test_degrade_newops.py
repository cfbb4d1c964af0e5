"""Every op of the preset language, one table: its params stay in the spec's ranges, uint8 and float32
images keep their dtype and shape, the same seed gives the same params and bytes, and the op works
from a TOML preset with a JSON round trip of its record."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from redegkit.degrade import Degradation, PresetError, apply_degradation, get_preset, sample_degradation
from redegkit.degrade import params as P
from redegkit.degrade import sampling as S
from redegkit.degrade.spec import OP_NAMES
from redegkit.rng import sample_rng

from .conftest import gradient_rgb

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _within(v: float, lo: float, hi: float) -> bool:
    return lo - 1e-9 <= v <= hi + 1e-9


def _norm(d: tuple[float, float]) -> float:
    return float(np.hypot(*d))


# op -> (spec ranges as a preset step writes them, check of one sampled params object)
CASES: dict[str, tuple[dict, object]] = {
    "jpeg": (
        {"quality": [30, 90], "subsampling": ["4:4:4", "4:1:1"], "progressive_p": 0.5},
        lambda p: 30 <= p.quality <= 90 and p.subsampling in ("4:4:4", "4:1:1") and "libjpeg" in p.lib,
    ),
    "webp": (
        {"quality": [20, 80], "method": [2, 6]},
        lambda p: 20 <= p.quality <= 80 and 2 <= p.method <= 6 and "libwebp" in p.lib,
    ),
    "avif": (
        {"quality": [20, 60], "speed": [7, 9], "subsampling": ["4:4:4", "4:2:0"]},
        lambda p: 20 <= p.quality <= 60 and 7 <= p.speed <= 9 and p.subsampling in ("4:4:4", "4:2:0"),
    ),
    "jpeg2000": (
        {"ratio": [10, 80], "levels": [2, 4]},
        lambda p: _within(p.ratio, 10, 80) and 2 <= p.levels <= 4,
    ),
    "video": (
        {
            "codec": ["h264", "mpeg4", "vp9", "av1"],
            "pix_fmt": ["yuv420p", "yuv422p"],
            "rate": {"quality": 2, "bitrate": 1},
            "crf": [22, 30],
            "vp9_crf": [30, 40],
            "qscale": [4, 9],
            "bpp": [0.05, 0.1],
            "preset": ["ultrafast", "fast"],
            "frames": [3, 7],
            "motion": [0, 1],
            "jitter": [0, 0.25],
            "av1_crf": [35, 45],
            "chroma_delay_p": 0.5,
            "chroma_delay": [1, 3],
        },
        lambda p: (
            p.codec in ("h264", "mpeg4", "vp9", "av1")
            and (p.codec not in ("mpeg4", "av1") or p.pix_fmt == "yuv420p")
            and (
                (p.bpp is not None and _within(p.bpp, 0.05, 0.1))
                or (p.codec == "h264" and _within(p.quality, 22, 30))
                or (p.codec == "vp9" and _within(p.quality, 30, 40))
                or (p.codec == "av1" and _within(p.quality, 35, 45))
                or (p.codec == "mpeg4" and 4 <= p.quality <= 9)
            )
            and (p.preset in ("ultrafast", "fast")) == (p.codec != "mpeg4")
            and len(p.shifts) in (3, 5, 7)
            and 0 <= p.chroma_delay <= min(3, len(p.shifts) // 2)
            and all(_norm(s) <= abs(i - len(p.shifts) // 2) * 1 + 0.25 * 1.5 for i, s in enumerate(p.shifts))
            and "libavcodec" in p.lib
        ),
    ),
    "quantize": (
        {"mode": ["bits", "levels", "palette"], "bits": [2, 4], "levels": [4, 8], "colors": [8, 16]},
        lambda p: (
            (p.mode == "bits" and 2 <= p.bits <= 4)
            or (p.mode == "levels" and 4 <= p.levels <= 8)
            or (p.mode == "palette" and 8 <= p.colors <= 16)
        ),
    ),
    "dither": (
        {"method": ["bayer", "floyd_steinberg"], "levels": [2, 4], "size": [2, 8], "gray_p": 0.5},
        lambda p: 2 <= p.levels <= 4 and p.size in (2, 4, 8),
    ),
    "halftone": (
        {"cell": [3, 5], "angle": [10, 20], "softness": [0, 0.5]},
        lambda p: _within(p.cell, 3, 5) and _within(p.angle, 10, 20) and _within(p.softness, 0, 0.5),
    ),
    "chroma": (
        {"mode": ["4:2:0", "4:1:0"], "matrix": ["bt709", "bt2020"], "up": ["nearest", "bicubic"]},
        lambda p: p.mode in ("4:2:0", "4:1:0") and p.matrix in ("bt709", "bt2020") and p.up != "bilinear",
    ),
    "channel_shift": (
        {"shift": [0.5, 2], "blue": [0.5, 0.5], "scale": [0.995, 1.005]},
        lambda p: (
            _within(_norm(p.shift_r), 0.5, 2)
            and abs(_norm(p.shift_b) - 0.5 * _norm(p.shift_r)) < 1e-9
            and _within(p.scale_r, 0.995, 1.005)
            and abs(p.scale_r * p.scale_b - 1) < 1e-12
        ),
    ),
    "tone": (
        {"gamma": [0.8, 1.25], "contrast": [0.7, 1.0], "brightness": [-0.1, 0.1], "black": [0, 0.1]},
        lambda p: (
            _within(p.gamma, 0.8, 1.25)
            and _within(p.contrast, 0.7, 1)
            and _within(p.brightness, -0.1, 0.1)
            and _within(p.black, 0, 0.1)
            and p.white == 1.0
        ),
    ),
    "pixelate": ({"block": [2, 6]}, lambda p: 2 <= p.block <= 6),
    "interlace": (
        {"mode": ["weave", "drop"], "motion": [1, 2]},
        lambda p: (
            (p.mode == "drop" and p.motion == (0.0, 0.0))
            or (p.mode == "weave" and _within(_norm(p.motion), 1, 2))
        ),
    ),
    "ghosting": (
        {"offset": [3, 6], "amount": [0.2, 0.3], "echoes": [1, 3]},
        lambda p: _within(_norm(p.offset), 3, 6) and _within(p.amount, 0.2, 0.3) and 1 <= p.echoes <= 3,
    ),
    "motion_blur": (
        {"length": [2, 9], "angle": [0, 45]},
        lambda p: _within(p.length, 2, 9) and _within(p.angle, 0, 45),
    ),
    "speckle_noise": (
        {"sigma": [0.05, 0.2], "gray_p": 0.5},
        lambda p: _within(p.sigma, 0.05, 0.2) and p.seed >= 0,
    ),
    "salt_pepper": (
        {"amount": [0.01, 0.03], "salt": [0.2, 0.8], "per_channel_p": 0.5},
        lambda p: _within(p.amount, 0.01, 0.03) and _within(p.salt, 0.2, 0.8),
    ),
    "camera_isp": (
        {"ccm_strength": [0.1, 0.3], "shot": [1e-3, 1e-2], "bits": [10, 12], "wb_error": [0.95, 1.05]},
        lambda p: (
            np.allclose(np.sum(p.ccm, axis=1), 1.0)
            and all(p.ccm[i][j] <= 0 for i in range(3) for j in range(3) if i != j)
            and _within(p.shot, 1e-3, 1e-2)
            and 0 < p.read < 1
            and 10 <= p.bits <= 12
            and all(_within(e, 0.95, 1.05) for e in p.wb_error)
        ),
    ),
}
OLD_OPS = {"blur", "resize", "nearest_down", "gaussian_noise", "poisson_noise", "color", "sharpen"}


def test_the_table_covers_every_new_op() -> None:
    assert set(CASES) == set(OP_NAMES) - OLD_OPS
    assert len(P._APPLY) + 2 == len(OP_NAMES)  # resize and nearest_down take the context instead


@pytest.mark.parametrize("op", list(CASES))
def test_params_stay_in_the_ranges_and_vary(op: str) -> None:
    ranges, check = CASES[op]
    sample = getattr(S, f"sample_{op}")
    drawn = [sample(sample_rng(3, op, i), ranges) for i in range(40)]
    for p in drawn:
        assert p.op == op and check(p), p
        assert type(p).model_validate_json(p.model_dump_json()) == p
    assert len({p.model_dump_json() for p in drawn}) >= 5  # really drawn, not constant


@pytest.mark.parametrize("op", list(CASES))
def test_dtype_shape_and_determinism_from_the_seed(op: str) -> None:
    ranges, _ = CASES[op]
    sample = getattr(S, f"sample_{op}")
    img = gradient_rgb(37, 50, seed=1)  # odd sizes everywhere
    for i in range(3):
        p = sample(sample_rng(7, op, i), ranges)
        again = sample(sample_rng(7, op, i), ranges)
        assert p == again
        out = P.apply_op(img, p)
        assert out.dtype == np.uint8 and out.shape == img.shape
        assert out.tobytes() == P.apply_op(img.copy(), again).tobytes()
        f = P.apply_op(img.astype(np.float32) / 255, p)
        assert f.dtype == np.float32 and f.shape == img.shape and np.isfinite(f).all()
        assert np.abs(np.clip(f, 0, 1) * 255 - out).max() <= 1.0  # the same op on either dtype
    assert img.tobytes() == gradient_rgb(37, 50, seed=1).tobytes()  # the input is never modified


def _toml_value(v: object) -> str:
    if isinstance(v, dict):  # an inline table
        return "{ " + ", ".join(f'"{k}" = {_toml_value(x)}' for k, x in v.items()) + " }"
    return json.dumps(v) if not isinstance(v, bool) else str(v).lower()


@pytest.mark.parametrize("op", list(CASES))
def test_op_runs_from_a_toml_preset_and_replays_from_its_record(op: str) -> None:
    ranges, _ = CASES[op]
    items = ", ".join(f"{k} = {_toml_value(v)}" for k, v in ranges.items())
    text = (
        f'[presets.t]\ndescription = "one {op}"\nsteps = [\n  {{ op = "{op}", label = "x", {items} }},\n]\n'
    )
    user = tomllib.loads(text)["presets"]
    preset = get_preset("t", user)
    img = gradient_rgb(48, 40)
    d = sample_degradation(preset, sample_rng(0, op))
    assert [o.op for o in d.ops] == [op] and d.ops[0].label == "x"
    record = json.loads(json.dumps(d.to_json()))
    back = Degradation.from_json(record)
    assert back == d
    for scale in (1, 2):
        out = apply_degradation(img, d, scale=scale)
        assert out.shape == (48 // scale, 40 // scale, 3)
        assert out.tobytes() == apply_degradation(img, back, scale=scale).tobytes()


@pytest.mark.parametrize(
    "step,message",
    [
        ({"op": "webp", "quality": [0, 101]}, "quality"),
        ({"op": "video", "codec": "av2"}, "unknown video codec 'av2'"),
        ({"op": "video", "codec": "av1", "pix_fmt": "yuv422p"}, "av1 takes none"),
        ({"op": "video", "codec": "mpeg4", "pix_fmt": "yuv422p"}, "mpeg4 takes none"),
        ({"op": "video", "codec": "h264", "frames": [2, 2]}, "odd value"),
        ({"op": "video", "codec": "h264", "crf": [10, 60]}, "crf"),
        ({"op": "jpeg", "quality": 50, "subsampling": "4:2:1"}, "unknown JPEG subsampling"),
        ({"op": "chroma", "mode": "4:3:0"}, "unknown chroma subsampling"),
        ({"op": "dither", "size": 3}, "Bayer size"),
        ({"op": "halftone", "cell": [0.5, 2]}, "cell"),
        ({"op": "pixelate", "block": [0, 4]}, "block"),
        ({"op": "motion_blur", "length": [1, 80]}, "length"),
        ({"op": "camera_isp", "bits": [6, 12]}, "bits"),
        ({"op": "quantize", "mode": "kmeans"}, "unknown quantize mode"),
        ({"op": "tone", "white": [0.2, 0.4]}, "white"),
    ],
)
def test_bad_new_steps_give_clear_errors(step: dict, message: str) -> None:
    with pytest.raises(PresetError, match=message) as e:
        get_preset("bad", {"bad": {"steps": [step]}})
    assert "presets.bad.steps.0" in str(e.value)


def test_params_records_reject_impossible_values() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        P.VideoParams(codec="h264")
    with pytest.raises(ValueError, match="whole number"):
        P.VideoParams(codec="vp9", quality=30.5)
    with pytest.raises(ValueError, match="middle"):
        P.VideoParams(codec="h264", quality=20, shifts=[(1.0, 1.0)])
    with pytest.raises(ValueError, match="invertible"):
        P.CameraIspParams(
            ccm=[[1, 0, 0], [1, 0, 0], [0, 0, 1]], r_gain=2, b_gain=2, rgb_gain=1, shot=0, read=0, seed=1
        )
    with pytest.raises(ValueError, match="Bayer size"):
        P.DitherParams(method="bayer", levels=2, size=3)
