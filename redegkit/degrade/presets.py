"""Built-in presets, written in the same preset language a recipe's ``[presets.NAME]`` uses.

The published models (``realesrgan``, ``bsrgan``, ``redeg-matched``) are plain dicts here (helper
functions only avoid repeating the same table): their ranges are the published ones, and every
simplification against the original implementation is listed in the preset's description. The
presets of our own design are TOML files in ``redegkit/presets/`` (``NAME.toml``: ``description``
and ``steps``, the language of a recipe's ``[presets.NAME]``). Each is validated into a
:class:`~redegkit.degrade.spec.Preset` on first use.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PRESET_DIR = Path(__file__).resolve().parent.parent / "presets"

_INTERP_ESRGAN = ["area", "bilinear", "bicubic"]  # Real-ESRGAN's F.interpolate modes
_INTERP_BSRGAN = ["bilinear", "bicubic", "area"]  # BSRGAN's cv2 flags 1, 2, 3


# ------------------------------------------------------------------------------- Real-ESRGAN


def _esrgan_blur(sigma: list[float], label: str, p: float = 1.0) -> dict[str, Any]:
    """One blur round: 6 Gaussian-family kernels (kernel_prob) or, with p 0.1, a sinc kernel."""
    common = {"op": "blur", "size": [7, 21], "sigma": sigma}
    aniso = {"angle": [-180, 180]}
    beta_g = [[0.5, 1.0], [1.0, 4.0]]  # betag_range [0.5, 4]: half below 1, half above
    beta_p = [[1.0, 1.0], [1.0, 2.0]]  # betap_range [1, 2]: same rule, so beta = 1 half the time
    gaussians = {
        "op": "one_of",
        "weights": [0.45, 0.25, 0.12, 0.03, 0.12, 0.03],
        "choices": [
            {**common, "kernel": "iso"},
            {**common, **aniso, "kernel": "aniso"},
            {**common, "kernel": "generalized_iso", "beta": beta_g},
            {**common, **aniso, "kernel": "generalized_aniso", "beta": beta_g},
            {**common, "kernel": "plateau_iso", "beta": beta_p},
            {**common, **aniso, "kernel": "plateau_aniso", "beta": beta_p},
        ],
    }
    # sinc: kernel sizes 7..21 uniform; the cut-off range depends on the size (pi/3 below 13)
    sinc = {
        "op": "one_of",
        "weights": [3, 5],
        "choices": [
            {"op": "blur", "kernel": "sinc", "size": [7, 11], "cutoff": [1 / 3, 1.0]},
            {"op": "blur", "kernel": "sinc", "size": [13, 21], "cutoff": [1 / 5, 1.0]},
        ],
    }
    return {"op": "one_of", "label": label, "p": p, "weights": [0.9, 0.1], "choices": [gaussians, sinc]}


def _esrgan_noise(sigma: list[float], poisson: list[float], label: str) -> dict[str, Any]:
    return {
        "op": "one_of",
        "label": label,
        "choices": [
            {"op": "gaussian_noise", "sigma": sigma, "gray_p": 0.4},
            {"op": "poisson_noise", "scale": poisson, "gray_p": 0.4},
        ],
    }


def _esrgan_resize(
    ref: str, up: list[float], down: list[float], probs: list[float], label: str
) -> dict[str, Any]:
    choices = [
        {"op": "resize", "ref": ref, "factor": up, "interp": _INTERP_ESRGAN},
        {"op": "resize", "ref": ref, "factor": down, "interp": _INTERP_ESRGAN},
        {"op": "resize", "ref": ref, "factor": 1.0, "interp": _INTERP_ESRGAN},
    ]
    if ref == "current":  # "keep" at the current size is a no-op: fold it into p
        return {
            "op": "one_of",
            "label": label,
            "p": probs[0] + probs[1],
            "weights": probs[:2],
            "choices": choices[:2],
        }
    return {"op": "one_of", "label": label, "weights": probs, "choices": choices}


_FINAL_SINC = {
    "op": "blur",
    "label": "final_sinc",
    "p": 0.8,
    "kernel": "sinc",
    "size": [7, 21],
    "cutoff": [1 / 3, 1.0],
}
_FINAL_RESIZE = {"op": "resize", "label": "final_resize", "ref": "output", "interp": _INTERP_ESRGAN}
_FINAL_JPEG = {"op": "jpeg", "label": "final_jpeg", "quality": [30, 95]}

REALESRGAN: dict[str, Any] = {
    "description": (
        "Real-ESRGAN second-order degradation with the ranges of train_realesrgan_x4plus.yml: "
        "blur (6 Gaussian-family kernels or sinc) -> resize up/down/keep -> Gaussian or Poisson noise -> "
        "JPEG; second blur (p 0.8) -> resize relative to the output size -> noise; then 50/50 "
        "'resize to output + sinc (p 0.8) + JPEG' or 'JPEG + resize + sinc'. Simplifications: OpenCV "
        "JPEG at integer quality instead of DiffJPEG; cv2 'area' when enlarging instead of torch area; "
        "Poisson noise as its variance-matched Gaussian with 256 levels."
    ),
    "steps": [
        _esrgan_blur([0.2, 3.0], "blur1"),
        _esrgan_resize("current", [1.0, 1.5], [0.15, 1.0], [0.2, 0.7, 0.1], "resize1"),
        _esrgan_noise([1.0, 30.0], [0.05, 3.0], "noise1"),
        {"op": "jpeg", "label": "jpeg1", "quality": [30, 95]},
        _esrgan_blur([0.2, 1.5], "blur2", p=0.8),
        _esrgan_resize("output", [1.0, 1.2], [0.3, 1.0], [0.3, 0.4, 0.3], "resize2"),
        _esrgan_noise([1.0, 25.0], [0.05, 2.5], "noise2"),
        {
            "op": "one_of",
            "label": "final",
            "choices": [
                {"op": "sequence", "steps": [_FINAL_RESIZE, _FINAL_SINC, _FINAL_JPEG]},
                {"op": "sequence", "steps": [_FINAL_JPEG, _FINAL_RESIZE, _FINAL_SINC]},
            ],
        },
    ],
}


# ------------------------------------------------------------------------------------ BSRGAN


def _bsrgan_shuffle(sf: int) -> dict[str, Any]:
    """BSRGAN's shuffled body at degradation scale ``sf`` (blur widths and ranges depend on it)."""
    blur = {
        "op": "one_of",
        "label": "blur",
        "choices": [
            # anisotropic_Gaussian(l1, l2 = (4 + sf) * U(0, 1)): l1, l2 are variances
            {
                "op": "blur",
                "kernel": "aniso",
                "size": [7, 25],
                "variance": [0.0, 4.0 + sf],
                "angle": [0, 180],
            },
            {"op": "blur", "kernel": "iso", "size": [7, 25], "sigma": [0.0, 2.0 + 0.2 * sf]},
        ],
    }
    down2 = {
        "op": "one_of",
        "label": "downsample2",
        "weights": [0.75, 0.25],
        "choices": [
            {"op": "resize", "divide": [1.0, 2.0 * sf], "interp": _INTERP_BSRGAN},
            {
                "op": "sequence",
                "steps": [  # Gaussian centred on each sf-block, then [0::sf]
                    {
                        "op": "blur",
                        "kernel": "iso",
                        "size": 25,
                        "sigma": [0.1, 0.6 * sf],
                        "offset": (sf - 1) / 2,
                    },
                    {"op": "nearest_down", "factor": sf},
                ],
            },
        ],
    }
    down3 = {"op": "resize", "label": "downsample3", "ref": "output", "interp": _INTERP_BSRGAN}
    noise = {
        "op": "one_of",
        "label": "noise",
        "weights": [0.4, 0.4, 0.2],
        "choices": [
            {"op": "gaussian_noise", "sigma": [2.0, 25.0]},
            {"op": "gaussian_noise", "sigma": [2.0, 25.0], "gray_p": 1.0},
            {"op": "gaussian_noise", "sigma": 25.0, "correlated": True},
        ],
    }
    jpeg = {"op": "jpeg", "label": "jpeg", "p": 0.9, "quality": [30, 95]}
    sensor = {"op": "poisson_noise", "label": "sensor", "p": 0.25, "scale": [0.2, 1.5]}
    return {"op": "shuffle", "steps": [blur, blur, down2, down3, noise, jpeg, sensor], "keep_order": [[2, 3]]}


def _bsrgan(sf: int) -> dict[str, Any]:
    body = _bsrgan_shuffle(sf)
    final_jpeg = {"op": "jpeg", "label": "final_jpeg", "quality": [30, 95]}
    if sf != 4:
        return {"steps": [body, final_jpeg]}
    # at sf 4, with p 0.25 first halve the image (then the body runs at sf 2)
    halve = {
        "op": "resize",
        "label": "downsample1",
        "factor": 0.5,
        # cv2 linear/cubic/area (1/2) or MATLAB antialiased bicubic (1/2), approximated by area
        "interp": {"bilinear": 1, "bicubic": 1, "area": 4},
    }
    return {
        "steps": [
            {
                "op": "one_of",
                "weights": [0.75, 0.25],
                "choices": [body, {"op": "sequence", "steps": [halve, _bsrgan_shuffle(2)]}],
            },
            final_jpeg,
        ]
    }


_BSRGAN_NOTES = (
    "Simplifications: no mod-crop (sizes are floored; the last downsample goes exactly to the "
    "output size); noise levels drawn as continuous values instead of integers; the shifted "
    "Gaussian before nearest downsampling is built analytically; the camera ISP noise step (its model "
    "is not in the public code, which passes isp_model=None) is replaced by Poisson shot noise with "
    "the same probability 0.25; the channel-correlated noise uses a QR-orthonormalised random basis."
)


def bsrgan_at(sf: int) -> dict[str, Any]:
    """The ``bsrgan`` preset at scale factor ``sf``, with BSRGAN's parameters as it defines them in
    sf: aniso variances up to 4 + sf, iso sigma up to 2 + 0.2 sf, the random downsample by
    1/U(1, 2 sf) or block-centred Gaussian (sigma up to 0.6 sf) + nearest every sf-th pixel, and
    the first x1/2 downsample (p 0.25, the body then at sf 2) only at sf 4, as in BSRGAN."""
    if int(sf) != sf or sf < 1:
        raise ValueError(f"bsrgan: the scale factor must be an integer >= 1, got {sf!r}")
    sf = int(sf)
    first = "with p 0.25 a first x1/2 downsample, then " if sf == 4 else ""
    return {
        "description": (
            f"BSRGAN degradation (Zhang et al. 2021) at sf {sf} (the SR scale it is applied at; "
            f"BSRGAN's blur widths and downsample ranges are functions of sf): {first}in random order "
            "two blurs (iso or aniso Gaussian), a random downsample (p 0.75 resize by 1/U(1, 2sf), else "
            "block-centred Gaussian + nearest), the downsample to the output size (kept after the "
            "previous one), Gaussian noise (color/gray/channel-correlated), JPEG (p 0.9) and sensor "
            "noise (p 0.25); then a final JPEG. " + _BSRGAN_NOTES
        ),
        **_bsrgan(sf),
    }


BSRGAN: dict[str, Any] = bsrgan_at(4)  # the table `bsrgan` lists; other scales: bsrgan_at(scale)
BSRGAN_X2: dict[str, Any] = {
    "description": (
        "BSRGAN degradation at its x2 setting (blur widths and downsample ranges for sf 2, no first "
        "halving); for milder degradation or scale 1-2. " + _BSRGAN_NOTES
    ),
    **_bsrgan(2),
}


# ----------------------------------------------------------------------------- ReDegNet matched


def _redeg_matched() -> dict[str, Any]:
    interp3 = ["bilinear", "bicubic", "lanczos"]
    simple = {
        "op": "sequence",
        "label": "simple",
        "steps": [
            {"op": "blur", "p": 0.8, "kernel": "iso", "size": [7, 31], "sigma": [0.3, 1.3]},
            {
                "op": "resize",
                "p": 0.8,
                "ref": "input",
                "divide": [2.0, 6.0],
                "interp": interp3,
                "quirk": True,
            },
            {"op": "gaussian_noise", "p": 0.9, "sigma": [3.0, 24.0]},
            {"op": "jpeg", "p": 0.9, "quality": [30, 80]},
            {"op": "resize", "ref": "output", "interp": interp3, "quirk": True},
        ],
    }
    iso = {"op": "blur", "kernel": "iso", "size": [5, 17], "sigma": [0.1, 2.8]}
    aniso = {"op": "blur", "kernel": "aniso", "size": [5, 17], "sigma": [0.5, 8.0], "angle": [0, 180]}
    shuffled = {
        "op": "sequence",
        "label": "shuffled",
        "steps": [
            {
                "op": "shuffle",
                "steps": [
                    # iso 0.25, aniso 0.35, both (as two shuffled items) 0.2, none 0.2
                    {
                        "op": "one_of",
                        "p": 0.8,
                        "weights": [0.25, 0.35, 0.2],
                        "choices": [iso, aniso, {"op": "sequence", "spread": True, "steps": [iso, aniso]}],
                    },
                    {
                        "op": "one_of",
                        "weights": [0.1, 0.4, 0.5],
                        "choices": [
                            {"op": "nearest_down", "factor": [2, 4, 6]},
                            {"op": "resize", "divide": [2.0, 6.0], "interp": "bilinear"},
                            {"op": "resize", "divide": [2.0, 6.0], "interp": "bicubic"},
                        ],
                    },
                    {"op": "gaussian_noise", "p": 0.7, "sigma": [1.0, 19.0]},
                    {"op": "jpeg", "p": 0.7, "quality": [30, 85]},
                ],
            },
            {"op": "jpeg", "p": 0.5, "quality": [30, 85]},
            {"op": "resize", "ref": "output", "interp": ["bilinear", "bicubic"], "realign": True},
        ],
    }
    return {
        "description": (
            "ReDegNet's 'same degradation' for matched (face, natural) pairs: with p 0.2 a simple chain "
            "(blur p 0.8, downsample x1/U(2,6) p 0.8, noise p 0.9, JPEG p 0.9, resize back), otherwise a "
            "shuffled chain (iso/aniso/both/no blur, bilinear/bicubic downsample or 10% nearest x2/4/6, "
            "noise p 0.7, JPEG p 0.7) + final JPEG p 0.5 + resize back (realigning a nearest sample). "
            "Apply it with scale=1 to resize back to the input size. interp_quirk=true reproduces the "
            "reference's cv2 dst-position bug (the simple chain's resizes then always run bilinear). "
            "Simplifications: float pipeline (the reference truncates to uint8 after each op); values the "
            "reference draws on 0.1 or integer grids are continuous."
        ),
        "interp_quirk": False,
        "steps": [{"op": "one_of", "weights": [0.2, 0.8], "choices": [simple, shuffled]}],
    }


REDEG_MATCHED: dict[str, Any] = _redeg_matched()


def toml_presets(folder: Path = PRESET_DIR) -> dict[str, dict[str, Any]]:
    """Every ``NAME.toml`` of ``folder`` as NAME -> its table (not validated yet)."""
    out = {}
    for path in sorted(folder.glob("*.toml")):
        with path.open("rb") as f:
            try:
                out[path.stem] = tomllib.load(f)
            except tomllib.TOMLDecodeError as e:  # pragma: no cover - the files ship with the package
                raise RuntimeError(f"{path}: not valid TOML: {e}") from e
    return out


BUILTIN_PRESETS: dict[str, dict[str, Any]] = {
    "realesrgan": REALESRGAN,
    "bsrgan": BSRGAN,
    "bsrgan-x2": BSRGAN_X2,
    "redeg-matched": REDEG_MATCHED,
    **toml_presets(),
}
