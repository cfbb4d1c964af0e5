"""The scores of ``redeg eval transfer`` (:mod:`.transfer` runs it): each candidate against the
truth D(crop) at one scale (paired PSNR/SSIM on Y, the distance of the degradation statistics, the
noise level), the suite's target for the bank, and the ranking.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..metrics import psnr, ssim
from ..metrics.stats import PAIRED_KEYS, paired_stats, stats_distance

__all__ = ["ranking", "score", "score_scale", "verdict"]


def score_scale(
    hqs: dict[str, np.ndarray], cands: dict[str, dict[str, np.ndarray]], truth: dict[str, np.ndarray]
) -> dict[str, dict[str, Any]]:
    """:func:`score` of every candidate (by name) against the truth of one scale."""
    truth_stats = [paired_stats(hqs[k], truth[k]) for k in sorted(truth)]
    return {name: score(hqs, c, truth, truth_stats) for name, c in cands.items()}


def score(
    hqs: dict[str, np.ndarray],
    cand: dict[str, np.ndarray],
    truth: dict[str, np.ndarray],
    truth_stats: list[dict[str, Any]],
) -> dict[str, Any]:
    """PSNR/SSIM to the truth, statistics distance, and the noise level ratio, over the crops."""
    keys = sorted(truth)
    missing = [k for k in keys if k not in cand]
    if missing:
        raise RuntimeError(f"candidate lacks crops {missing[:3]} (synthesis failed on them)")
    ps = [psnr(cand[k], truth[k]) for k in keys]
    ss = [ssim(cand[k], truth[k]) for k in keys]
    cst = [paired_stats(hqs[k], cand[k]) for k in keys]
    dist = stats_distance(cst, truth_stats)
    n_c = float(np.mean([s["noise"] for s in cst]))
    n_t = float(np.mean([s["noise"] for s in truth_stats]))
    finite = [p for p in ps if math.isfinite(p)]
    return {
        "psnr": round(float(np.mean(finite)) if finite else math.inf, 3),
        "ssim": round(float(np.mean(ss)), 4),
        "distance": {k: round(v, 4) for k, v in dist.items()},
        "noise": round(n_c, 3),
        "noise_truth": round(n_t, 3),
        "noise_ratio": round(n_c / n_t, 3) if n_t > 0 else None,
        "stats": {
            k: (
                np.mean([s[k] for s in cst], axis=0).round(4).tolist()
                if k == "color"
                else round(float(np.mean([s[k] for s in cst])), 4)
            )
            for k in PAIRED_KEYS
        },
    }


def verdict(scores: dict[str, dict[str, Any]], noisy: bool, presets: list[str]) -> dict[str, Any]:
    """The suite's target for the bank against the best built-in preset (by statistics distance):
    deterministic D: >= 5 dB PSNR over it, distance <= 0.35x, no statistic worse; random noise:
    distance <= 0.5x, noise level within 20 %, no statistic worse."""
    bank = scores["bank"]
    cands = [p for p in presets if f"preset:{p}" in scores]
    best = min(cands, key=lambda p: scores[f"preset:{p}"]["distance"]["overall"])
    b = scores[f"preset:{best}"]
    ratio = bank["distance"]["overall"] / max(b["distance"]["overall"], 1e-9)
    worse = [k for k in PAIRED_KEYS if bank["distance"][k] > b["distance"][k] + 1e-9]
    checks: dict[str, Any] = {"best_preset": best, "distance_ratio": round(ratio, 3), "worse_stats": worse}
    if noisy:
        nr = bank["noise_ratio"]
        checks.update(
            noise_ratio=nr,
            target_ratio=0.5,
            passed=bool(ratio <= 0.5 and not worse and nr is not None and abs(nr - 1) <= 0.2),
        )
    else:
        gain = bank["psnr"] - b["psnr"]
        checks.update(
            psnr_gain_db=round(gain, 3),
            target_ratio=0.35,
            passed=bool(ratio <= 0.35 and not worse and gain >= 5.0),
        )
    return checks


def ranking(report: dict[str, Any], scale: str = "x1") -> list[tuple[str, dict[str, Any]]]:
    """Candidates of one scale, best (smallest statistics distance) first."""
    return sorted(report["scores"][scale].items(), key=lambda kv: kv[1]["distance"]["overall"])
