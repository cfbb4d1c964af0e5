"""The scores of ``redeg eval downstream`` at one scale, from each source's per-crop scores.

The unit of the statistics is the **test image**: a source's score on an image is the mean over
that image's crops (crops of one image are not independent), and every interval is the paired
bootstrap over test images of :mod:`.bootstrap` (exact for up to 10 images).

- per source (and the unrestored D(test)): mean PSNR-Y and SSIM with their 95 % intervals, and
  LPIPS / DISTS (lower is closer) where the run computed them;
- the best preset (highest mean PSNR-Y among the preset sources) and the bank's gain over it;
- closure = (bank - best preset) / (oracle - best preset), the share of the way from the best
  preset to a restorer trained on D itself;
- the protocol check: the oracle's gain over the unrestored input must have an interval above 0,
  else the restorer cannot tell the sources apart and the run says so;
- the target: deterministic D: gain >= 0.5 dB with its interval above 0, closure >= 0.8; D with a
  noise draw: closure >= 0.6.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .bootstrap import DRAWS, Resamples, interval, resamples

GAIN_TARGET_DB = 0.5
CLOSURE_TARGET = {"deterministic": 0.8, "noisy": 0.6}
UNRESTORED = "unrestored"
PERCEPTUAL_METRICS = ("lpips", "dists")
REPORT_KIND = "eval-downstream"  # the "kind" of the report.json that eval downstream writes

__all__ = [
    "CLOSURE_TARGET",
    "GAIN_TARGET_DB",
    "PERCEPTUAL_METRICS",
    "REPORT_KIND",
    "UNRESTORED",
    "image_of",
    "perceptual_columns",
    "summarize_scale",
]


def image_of(crop_key: str) -> str:
    """The test image a crop key (``IMAGE-cNN``) was cut from."""
    return crop_key.rsplit("-c", 1)[0]


def per_image(crops: dict[str, list[float]], images: list[str]) -> np.ndarray:
    """[n images, k]: the mean over each image's crops of their k scores (PSNR-Y and SSIM)."""
    rows = []
    for im in images:
        vals = [v for k, v in crops.items() if image_of(k) == im]
        rows.append(np.mean(np.asarray(vals, dtype=np.float64), axis=0))
    return np.asarray(rows)


def _r(x: float, nd: int = 3) -> float | None:
    return round(float(x), nd) if math.isfinite(x) else None


def _ci(stat: np.ndarray, rs: Resamples, nd: int = 3) -> list[float | None]:
    lo, hi = interval(stat, rs.probs)
    return [_r(lo, nd), _r(hi, nd)]


def _source_row(vals: np.ndarray, rs: Resamples) -> dict[str, Any]:
    m = rs.means(vals)  # [M, 2]
    return {
        "psnr": _r(vals[:, 0].mean()),
        "psnr_ci": _ci(m[:, 0], rs),
        "ssim": _r(vals[:, 1].mean(), 4),
        "ssim_ci": _ci(m[:, 1], rs, 4),
    }


def _paired(a: np.ndarray, b: np.ndarray, rs: Resamples) -> dict[str, Any]:
    """Mean of a - b (PSNR-Y and SSIM) with its paired interval."""
    return _source_row(a - b, rs)


def _closure(vals: dict[str, np.ndarray], best: str, rs: Resamples) -> dict[str, Any]:
    """(bank - best) / (oracle - best) on mean PSNR-Y, and its interval (undefined when the oracle
    does not beat the best preset in every resample)."""
    b, o, p = (rs.means(vals[k][:, 0]) for k in ("bank", "oracle", best))
    den = vals["oracle"][:, 0].mean() - vals[best][:, 0].mean()
    value = (vals["bank"][:, 0].mean() - vals[best][:, 0].mean()) / den if den > 0 else math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(o - p > 0, (b - p) / (o - p), np.nan)
    return {"closure": _r(value), "closure_ci": _ci(ratio, rs)}


def _perceptual_rows(
    per_crop: dict[str, dict[str, float]], images: list[str], rs: Resamples
) -> dict[str, Any]:
    """{METRIC: mean, METRIC_ci: interval} over test images of each perceptual metric's crop values."""
    row: dict[str, Any] = {}
    for metric, crops in sorted(per_crop.items()):
        v = per_image({k: [x] for k, x in crops.items()}, images)[:, 0]
        row[metric] = _r(v.mean(), 4)
        row[f"{metric}_ci"] = _ci(rs.means(v), rs, 4)
    return row


def perceptual_columns(summary: dict[str, Any]) -> list[str]:
    """The perceptual metrics (lpips, dists) a scale's summary has values for, in table order."""
    return [m for m in PERCEPTUAL_METRICS if any(m in r for r in summary["sources"].values())]


def summarize_scale(
    records: dict[str, dict[str, Any]],
    unrestored: dict[str, list[float]],
    presets: list[str],
    noisy: bool,
    *,
    seed: int = 0,
    draws: int = DRAWS,
    unrestored_perceptual: dict[str, dict[str, float]] | None = None,
) -> dict[str, Any]:
    """The scale's summary from ``records`` (source name -> its ``result.json`` record; failed
    sources absent) and the unrestored input's per-crop scores (see the module doc). Perceptual
    metrics (a record's ``perceptual``: {metric: {crop: value}}) get a mean and interval too."""
    images = sorted({image_of(k) for k in unrestored})
    rs = resamples(len(images), seed=seed, draws=draws)
    vals = {name: per_image(r["crops"], images) for name, r in records.items()}
    vals[UNRESTORED] = per_image(unrestored, images)
    percep = {name: r.get("perceptual") or {} for name, r in records.items()}
    percep[UNRESTORED] = unrestored_perceptual or {}
    out: dict[str, Any] = {
        "images": images,
        "bootstrap": {"units": len(images), "resamples": len(rs.probs), "exact": rs.exact},
        "sources": {
            name: {
                **_source_row(v, rs),
                **_perceptual_rows(percep[name], images, rs),
                "per_image": v.round(4).tolist(),
            }
            for name, v in vals.items()
        },  # fmt: skip
    }
    if "oracle" in vals:
        d = _paired(vals["oracle"], vals[UNRESTORED], rs)
        out["protocol"] = {
            "oracle_gain": d["psnr"],
            "oracle_gain_ci": d["psnr_ci"],
            "can_tell": bool(d["psnr_ci"][0] is not None and d["psnr_ci"][0] > 0),
        }
    ranked = [p for p in presets if f"preset:{p}" in vals]
    if not ranked:
        return out
    best = max(ranked, key=lambda p: vals[f"preset:{p}"][:, 0].mean())
    out["best_preset"] = f"preset:{best}"
    if "bank" in vals:
        g = _paired(vals["bank"], vals[f"preset:{best}"], rs)
        out["gain"] = g
        if "oracle" in vals:
            out.update(_closure(vals, f"preset:{best}", rs))
            out["target"] = verdict(out, noisy)
    return out


def verdict(summary: dict[str, Any], noisy: bool) -> dict[str, Any]:
    """The target's checks and whether all hold (see the module doc)."""
    kind = "noisy" if noisy else "deterministic"
    closure = summary.get("closure")
    checks: dict[str, bool] = {
        "protocol_can_tell": bool(summary.get("protocol", {}).get("can_tell")),
        "closure": closure is not None and closure >= CLOSURE_TARGET[kind],
    }
    if not noisy:
        g = summary["gain"]
        checks["gain_db"] = g["psnr"] is not None and g["psnr"] >= GAIN_TARGET_DB
        checks["gain_ci_above_0"] = g["psnr_ci"][0] is not None and g["psnr_ci"][0] > 0
    return {
        "kind": kind,
        "closure_target": CLOSURE_TARGET[kind],
        "gain_target_db": None if noisy else GAIN_TARGET_DB,
        "checks": checks,
        "passed": all(checks.values()),
    }
