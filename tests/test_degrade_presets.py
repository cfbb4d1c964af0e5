"""Presets as data: built-ins, the TOML preset language, sampling, JSON replay, determinism."""

from __future__ import annotations

import json
import random
import sys
from collections import Counter

import numpy as np
import pytest

from redegkit.config import ConfigError
from redegkit.degrade import (
    Degradation,
    PresetError,
    UnknownPresetError,
    apply_degradation,
    describe,
    get_preset,
    list_presets,
    sample_degradation,
)
from redegkit.rng import sample_rng

from .conftest import gradient_rgb

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BUILTINS = [
    "bsrgan",
    "bsrgan-x2",
    "old-photo",
    "phone",
    "realesrgan",
    "redeg-matched",
    "scan",
    "video",
    "web",
]


def draws(name: str, n: int, user: dict | None = None) -> list[Degradation]:
    preset = get_preset(name, user)
    return [sample_degradation(preset, sample_rng(11, "stats", i)) for i in range(n)]


def labels(d: Degradation) -> list[str]:
    return [op.label or "" for op in d.ops]


# -------------------------------------------------------------------------------- registry


def test_builtins_listed_and_valid() -> None:
    assert list_presets() == BUILTINS
    assert list_presets({"mine": {}}) == [*BUILTINS, "mine"]
    for name in BUILTINS:
        p = get_preset(name)
        assert p.name == name and p.description and p.steps


def test_unknown_preset_is_a_keyerror_listing_names() -> None:
    with pytest.raises(UnknownPresetError) as e:
        get_preset("real-esrgan")
    assert isinstance(e.value, KeyError) and isinstance(e.value, ConfigError)
    assert "realesrgan" in str(e.value) and "redeg-matched" in str(e.value)


def test_user_preset_may_not_shadow_a_builtin() -> None:
    with pytest.raises(PresetError, match="built-in"):
        get_preset("x", {"realesrgan": {"steps": []}})


# -------------------------------------------------------------------------- output contract


@pytest.mark.parametrize("name", BUILTINS)
@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_presets_give_exact_output_size(name: str, scale: int) -> None:
    preset = get_preset(name)
    for i, (h, w) in enumerate([(67, 53), (64, 64), (45, 71)]):
        img = gradient_rgb(h, w, seed=i)
        for k in range(3):
            params = sample_degradation(preset, sample_rng(scale, f"{name}-{i}", k))
            out = apply_degradation(img, params, scale=scale)
            assert out.shape == (h // scale, w // scale, 3) and out.dtype == np.uint8


@pytest.mark.parametrize("name", BUILTINS)
def test_json_round_trip_replays_identical_bytes(name: str) -> None:
    img = gradient_rgb(64, 48, seed=3)
    for k in range(4):
        params = sample_degradation(get_preset(name), sample_rng(5, name, k))
        text = json.dumps(params.to_json())
        back = Degradation.from_json(json.loads(text))
        assert back == params and back.to_json() == params.to_json()
        assert describe(back) == params.to_json()["ops"]
        a = apply_degradation(img, params, scale=2)
        assert a.tobytes() == apply_degradation(img, back, scale=2).tobytes()
        assert a.tobytes() == apply_degradation(img.copy(), Degradation.from_json(text), scale=2).tobytes()


@pytest.mark.parametrize("name", BUILTINS)
def test_same_seed_same_params_and_no_global_rng(name: str) -> None:
    img = gradient_rgb(48, 48)
    np.random.seed(1)
    random.seed(1)
    a = sample_degradation(get_preset(name), sample_rng(0, "key"))
    out_a = apply_degradation(img, a, scale=2)
    np.random.seed(2)
    random.seed(2)
    _ = np.random.random(17), random.random()
    b = sample_degradation(get_preset(name), sample_rng(0, "key"))
    assert a.to_json() == b.to_json()
    assert np.array_equal(out_a, apply_degradation(img, b, scale=2))
    others = {
        json.dumps(sample_degradation(get_preset(name), sample_rng(0, f"k{i}")).to_json()) for i in range(8)
    }
    assert len(others) == 8


def test_records_hold_every_number() -> None:
    d = draws("realesrgan", 1)[0]
    ops = d.to_json()["ops"]
    assert d.to_json()["format"] == "redegkit.degradation" and len(d.preset_sha256) == 64
    for op in ops:
        if op["op"] == "blur":
            assert op["size"] % 2 == 1 and {"kernel", "sigma_x", "sigma_y", "angle", "beta", "cutoff"} <= set(
                op
            )
        if op["op"].endswith("noise"):
            assert isinstance(op["seed"], int) and op["rng"]


def test_from_json_rejects_other_formats_and_bad_records() -> None:
    with pytest.raises(PresetError, match="format"):
        Degradation.from_json({"format": "something", "version": 1, "preset": "x", "ops": []})
    with pytest.raises(PresetError, match="quality"):
        Degradation.from_json({"preset": "x", "ops": [{"op": "jpeg", "quality": 300}]})


def test_apply_rejects_bad_inputs() -> None:
    params = draws("bsrgan", 1)[0]
    with pytest.raises(ValueError, match="uint8"):
        apply_degradation(np.zeros((16, 16, 3), np.float32), params)
    with pytest.raises(ValueError, match="scale"):
        apply_degradation(np.zeros((16, 16, 3), np.uint8), params, scale=0)
    with pytest.raises(ValueError, match="smaller"):
        apply_degradation(np.zeros((3, 16, 3), np.uint8), params, scale=4)


# ------------------------------------------------------------------- same degradation, two images


def _without_jpeg(d: Degradation) -> Degradation:
    # JPEG is not additive, so the shift test below drops it; every other op keeps its numbers
    return d.model_copy(update={"ops": [op for op in d.ops if op.op != "jpeg"]})


def test_matched_params_give_the_same_noise_on_two_images() -> None:
    checked = 0
    for d in draws("redeg-matched", 60):
        if not any(op.op == "gaussian_noise" for op in d.ops):
            continue
        d = _without_jpeg(d)
        flat = np.full((64, 64, 3), 100, np.uint8)
        a = apply_degradation(flat, d).astype(int)
        b = apply_degradation(flat + 40, d).astype(int)
        # linear ops keep a constant image constant, so the outputs differ by the shift only:
        # the noise realisation is the same (+-1 from rounding; no clipping at these levels)
        assert np.abs(b - a - 40).max() <= 1
        checked += a.std() > 0.5  # visible noise survived the rest of the chain
    assert checked >= 8
    # and two textured images get identical treatment: the same params replay the same ops
    face, nat = gradient_rgb(64, 64, seed=1), gradient_rgb(64, 64, seed=2)
    d = draws("redeg-matched", 1)[0]
    assert np.array_equal(apply_degradation(face, d), apply_degradation(face.copy(), d))
    assert not np.array_equal(apply_degradation(face, d), apply_degradation(nat, d))


# -------------------------------------------------------------------- published structure


def test_realesrgan_probabilities() -> None:
    ds = draws("realesrgan", 400)
    n = len(ds)
    frac = lambda pred: sum(map(pred, ds)) / n  # noqa: E731
    # tolerances are ~4 standard errors at n = 400
    assert abs(frac(lambda d: "blur2" in labels(d)) - 0.8) < 0.08
    assert abs(frac(lambda d: "final_sinc" in labels(d)) - 0.8) < 0.08
    assert abs(frac(lambda d: labels(d)[-1] == "final_jpeg") - 0.5) < 0.1  # resize+sinc then JPEG
    sinc1 = frac(lambda d: any(o.label == "blur1" and o.kernel == "sinc" for o in d.ops))
    assert abs(sinc1 - 0.1) < 0.06
    up = frac(lambda d: any(o.label == "resize1" and o.factor > 1 for o in d.ops))
    keep = frac(lambda d: "resize1" not in labels(d))
    assert abs(up - 0.2) < 0.08 and abs(keep - 0.1) < 0.06
    gray = [o.gray for d in ds for o in d.ops if o.op in ("gaussian_noise", "poisson_noise")]
    assert abs(np.mean(gray) - 0.4) < 0.07
    for d in ds:
        for o in d.ops:
            if o.op == "jpeg":
                assert 30 <= o.quality <= 95
            if o.label == "blur1" and o.kernel != "sinc":
                assert 7 <= o.size <= 21 and 0.2 <= o.sigma_x <= 3.0
            if o.label == "blur2" and o.kernel != "sinc":
                assert o.sigma_x <= 1.5
            if o.label == "resize1":
                assert 0.15 <= o.factor <= 1.5 and o.ref == "current"
            if o.label == "resize2":
                assert 0.3 <= o.factor <= 1.2 and o.ref == "output"
            if o.op == "gaussian_noise":
                assert 1 <= o.sigma <= 30


def test_bsrgan_order_and_branches() -> None:
    ds = draws("bsrgan", 300)
    pre = 0
    for d in ds:
        lab = labels(d)
        assert lab[-1] == "final_jpeg"
        assert (
            lab.index("downsample3")
            > max(i for i, x in enumerate(lab) if x in ("downsample2", "downsample1"))
            or "downsample2" not in lab
        )
        assert lab.count("blur") == 2  # the two shuffled blurs always run
        # the nearest branch of downsample2 brings its own block-centred blur
        assert [o.op for o in d.ops].count("blur") == 2 + sum(1 for o in d.ops if o.op == "nearest_down")
        pre += "downsample1" in lab
    assert abs(pre / len(ds) - 0.25) < 0.1
    first_positions = Counter(labels(d)[0] for d in ds if "downsample1" not in labels(d))
    assert len(first_positions) >= 4  # the order really is shuffled


@pytest.mark.parametrize("sf", [1, 2, 3, 4, 5, 6])
def test_bsrgan_parameters_follow_the_scale_it_runs_at(sf: int) -> None:
    # BSRGAN writes its ranges in sf; the fit data uses this preset at sf 3, 4, 5 and 6.
    preset = get_preset("bsrgan")
    ds = [sample_degradation(preset, sample_rng(5, "sf", sf, i), scale=sf) for i in range(300)]
    halved = [d for d in ds if "downsample1" in labels(d)]
    assert (len(halved) > 40) == (sf == 4)  # the first x1/2 only exists at sf 4
    body = [d for d in ds if d not in halved]  # (after a halving the body runs at sf 2)
    blurs = [o for d in body for o in d.ops if o.label == "blur"]
    aniso = [o.sigma_x**2 for o in blurs if o.kernel == "aniso"] + [
        o.sigma_y**2 for o in blurs if o.kernel == "aniso"
    ]
    iso = [o.sigma_x for o in blurs if o.kernel == "iso"]
    assert max(aniso) <= 4 + sf + 1e-6 and max(aniso) > 0.8 * (4 + sf)
    assert max(iso) <= 2 + 0.2 * sf + 1e-6 and max(iso) > 0.8 * (2 + 0.2 * sf)
    down = [o.factor for d in body for o in d.ops if o.label == "downsample2" and o.op == "resize"]
    assert min(down) >= 1 / (2 * sf) - 1e-9 and (sf == 1 or min(down) < 1.3 / (2 * sf))
    assert {o.factor for d in body for o in d.ops if o.op == "nearest_down"} == {sf}
    assert all(d.preset == "bsrgan" for d in ds)
    lq = apply_degradation(gradient_rgb(96, 120), ds[0], scale=sf)
    assert lq.shape == (96 // sf, 120 // sf, 3)
    if sf == 4:  # the listed preset is the x4 one: the default of sample_degradation
        assert ds[0].preset_sha256 == preset.sha256


def test_redeg_matched_structure_and_quirk() -> None:
    ds = draws("redeg-matched", 300)
    simple = [d for d in ds if d.ops and d.ops[0].label == "simple"]
    assert abs(len(simple) / len(ds) - 0.2) < 0.09
    interps = {o.interp for d in simple for o in d.ops if o.op == "resize"}
    assert interps == {"bilinear", "bicubic", "lanczos"}
    nearest = [d for d in ds if any(o.op == "nearest_down" for o in d.ops)]
    assert nearest and all(d.ops[-1].realign and d.ops[-1].ref == "output" for d in nearest)
    assert all(o.factor in (2, 4, 6) for d in nearest for o in d.ops if o.op == "nearest_down")
    # "both blurs" are shuffled as two items: sometimes another op lands between them
    split = sum(
        1
        for d in ds
        for i, o in enumerate(d.ops[:-2])
        if o.op == "blur" and d.ops[i + 1].op != "blur" and any(x.op == "blur" for x in d.ops[i + 2 :])
    )
    assert split > 0
    # interp_quirk=true: the simple chain's resizes run bilinear (and say so)
    quirky = {"quirky": {**get_preset("redeg-matched").model_dump(exclude={"name"}), "interp_quirk": True}}
    qs = [d for d in draws("quirky", 200, quirky) if d.ops and d.ops[0].label == "simple"]
    rs = [o for d in qs for o in d.ops if o.op == "resize"]
    assert rs and all(o.interp == "bilinear" and o.quirk for o in rs)


# --------------------------------------------------------------------- user presets (TOML)

USER_TOML = """
[presets.mild]
description = "blur, shuffled noise/JPEG, back to the output size"

[[presets.mild.steps]]
op = "blur"
kernel = "aniso"
size = [5, 11]
sigma = [0.5, 2.0]
angle = [0, 180]
p = 0.9
label = "b"

[[presets.mild.steps]]
op = "resize"
ref = "input"
divide = [2, 3]
interp = { bilinear = 1, area = 3 }

[[presets.mild.steps]]
op = "shuffle"
keep_order = [[0, 1]]

[[presets.mild.steps.steps]]
op = "gaussian_noise"
sigma = [[1, 5], [10, 15]]
gray_p = 0.5

[[presets.mild.steps.steps]]
op = "jpeg"
quality = [40, 90]

[[presets.mild.steps.steps]]
op = "one_of"
weights = [1, 2]
choices = [ { op = "poisson_noise", scale = [0.1, 1.0] }, { op = "nearest_down", factor = [2, 3] } ]

[[presets.mild.steps]]
op = "resize"
ref = "output"
interp = "lanczos"
realign = true
"""


def test_user_preset_from_toml_runs() -> None:
    user = tomllib.loads(USER_TOML)["presets"]
    assert "mild" in list_presets(user)
    preset = get_preset("mild", user_presets=user)
    img = gradient_rgb(50, 38)
    seen = Counter()
    for k in range(12):
        d = sample_degradation(preset, sample_rng(1, "mild", k))
        assert d.preset == "mild"
        ops = [o.op for o in d.ops]
        assert ops.index("gaussian_noise") < ops.index("jpeg")  # keep_order
        assert d.ops[-1].interp == "lanczos"
        seen.update(ops)
        for s in (1, 3):
            assert apply_degradation(img, d, scale=s).shape == (50 // s, 38 // s, 3)
    assert seen["resize"] == 24 and seen["jpeg"] == 12 and seen["blur"] >= 8
    sigmas = [
        o.sigma
        for k in range(40)
        for o in sample_degradation(preset, sample_rng(2, "m", k)).ops
        if o.op == "gaussian_noise"
    ]
    assert all(1 <= s <= 5 or 10 <= s <= 15 for s in sigmas) and min(sigmas) < 5 < 10 < max(sigmas)


@pytest.mark.parametrize(
    "step,message",
    [
        ({"op": "blurr", "sigma": 1.0}, "unknown op 'blurr'"),
        ({"sigma": 1.0}, "no 'op'"),
        ({"op": "blur", "sigma": [3.0, 1.0]}, "lo > hi"),
        ({"op": "blur", "sigma": [1.0, 2.0, 3.0]}, "expected a number, \\[lo, hi\\]"),
        ({"op": "blur", "sigma": [-1.0, 2.0]}, "outside"),
        ({"op": "blur", "kernel": "sinc"}, "cutoff"),
        ({"op": "blur", "size": [6, 6], "sigma": 1.0}, "odd value"),
        ({"op": "blur", "sigma": 1.0, "sigmaa": 2}, "sigmaa"),
        ({"op": "jpeg", "quality": [0, 200]}, "quality"),
        ({"op": "resize", "interp": "spline"}, "unknown interpolation"),
        ({"op": "gaussian_noise", "sigma": 5, "p": 1.5}, "p"),
        ({"op": "one_of", "choices": [{"op": "jpeg", "quality": 50}], "weights": [1, 2]}, "weights"),
        ({"op": "shuffle", "steps": [{"op": "jpeg", "quality": 50}], "keep_order": [[0, 3]]}, "keep_order"),
    ],
)
def test_bad_presets_give_clear_errors(step: dict, message: str) -> None:
    user = {"bad": {"steps": [{"op": "jpeg", "quality": 50}, step]}}
    with pytest.raises(PresetError, match=message) as e:
        get_preset("bad", user)
    assert "presets.bad.steps.1" in str(e.value)


def test_every_builtin_preset_round_trips_through_json():
    """A preset saved as JSON (eval transfer's report keeps its degradation spec) loads back to
    the same preset: choices are written as [[name, weight], ...]."""
    import json

    from redegkit.degrade import get_preset, list_presets
    from redegkit.degrade.spec import Preset

    for name in list_presets():
        p = get_preset(name)
        again = Preset.model_validate(json.loads(json.dumps(p.model_dump(mode="json"))))
        assert again == p, name
