"""`redeg eval match`: which degradation source fits a folder of real low-quality photos?

There is no HQ reference for real photos, so the comparison is unpaired: the distribution of
no-reference statistics (:data:`MATCH_STATS`) over the real LQ photos is compared with the same
statistics over each candidate's LQ images. Per statistic the distance is the 1-D
Wasserstein-1 distance between the two distributions, divided by the real distribution's
spread (IQR / 1.349, a robust std, floored by :data:`SPREAD_FLOORS`), so 1.0 means "the
candidate is off by one typical real-to-real difference". The overall score is the mean over
the seven statistics (the colour cast's three channels count as one statistic).

Candidates (:func:`parse_candidate`):

- a folder of WebDataset shards (``PATH`` or ``shards:PATH``): their ``lq`` images;
- ``preset:NAME``: a classical preset (built in or a recipe's ``[presets.NAME]``);
- ``bank:PATH.pt``: a degradation bank (the learned path).

Presets and banks are run by :func:`redegkit.synth.synthesize` on the ``hq`` images, each first
centre-cropped to ``max_side * scale`` pixels, into a temporary folder that is removed after.

Per-image cost is bounded: statistics are computed on a centre crop of at most ``max_side``
pixels per side (a crop, not a resize: resizing would average noise away and move the 8x8 JPEG
grid), on at most ``max_images`` images per set (evenly spaced over the sorted real/HQ list; the
first ones in shard order for shard folders).

The statistics, the distance, the sets of images and the candidates are in :mod:`.match_stats`
(every name is importable from here too); this module runs a comparison and writes its files.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io import storage
from ..io.atomic import atomic_write_json
from ..io.images import ImageDecodeError, decode_image, write_image
from ..io.sources import Source, list_sources
from .match_stats import (
    MATCH_STATS,
    OVERALL_STATS,
    SPREAD_FLOORS,
    Candidate,
    MatchConfig,
    MatchError,
    StatSet,
    _evenly,
    centre_crop,
    files_stats,
    image_stats,
    parse_candidate,
    robust_spread,
    score_candidate,
    shard_stats,
    wasserstein1,
)

__all__ = [
    "MATCH_STATS",
    "MatchError",
    "OVERALL_STATS",
    "SPREAD_FLOORS",
    "Candidate",
    "CandidateScore",
    "MatchConfig",
    "MatchResult",
    "StatSet",
    "centre_crop",
    "image_stats",
    "match",
    "parse_candidate",
    "robust_spread",
    "score_candidate",
    "wasserstein1",
]


# Synthesized candidates ---------------------------------------------------------------------
def _prepare_hq(
    sources: list[Source], cfg: MatchConfig, folder: Path, failures: list[dict[str, Any]]
) -> tuple[list[Source], dict[str, str]]:
    """Centre crops of at most ``max_side * scale`` (a multiple of the scale) of the HQ images,
    written as PNGs, so that synthesis costs at most one LQ window per image. Returns the crops'
    sources and, per crop path, the HQ file it came from (for failure records)."""
    side = cfg.max_side * cfg.scale
    folder.mkdir(parents=True, exist_ok=True)
    origin: dict[str, str] = {}
    for i, src in enumerate(_evenly(sources, cfg.max_images)):
        try:
            img = decode_image(src.path)
        except ImageDecodeError as e:
            failures.append({"path": str(src.path), "reason": e.reason, "set": "hq"})
            continue
        crop = centre_crop(img, side)
        h, w = crop.shape[:2]
        crop = crop[: h - h % cfg.scale, : w - w % cfg.scale]
        if min(crop.shape[:2]) < 8 * cfg.scale:
            failures.append(
                {"path": str(src.path), "reason": f"too small ({w}x{h}) for scale {cfg.scale}", "set": "hq"}
            )
            continue
        origin[str(write_image(folder / f"{i:06d}.png", crop))] = str(src.path)
    return list_sources(folder), origin


def _synth_config(cand: Candidate, cfg: MatchConfig, base: Any) -> Any:
    common = {
        "crop": None,
        "scale": cfg.scale,
        "seed": cfg.seed,
        "workers": cfg.workers,
        "shard_max_count": 1000,
        "prefix": "shard",
    }
    if cand.kind == "preset":
        return base.model_copy(update={**common, "preset": cand.target, "bank": None, "model": None})
    return base.model_copy(update={**common, "bank": cand.target, "preset": None, "device": cfg.device})


# Scoring -------------------------------------------------------------------------------------
@dataclass
class CandidateScore:
    label: str
    kind: str
    images: int
    distances: dict[str, float] | None  # None when the candidate produced no usable image
    overall: float | None
    failures: list[dict[str, Any]]
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "kind": self.kind,
            "images": self.images,
            "overall": self.overall,
            "distances": self.distances,
            "failures": len(self.failures),
            "error": self.error,
        }


@dataclass
class MatchResult:
    real: StatSet
    candidates: list[CandidateScore]  # ranked: best (lowest overall) first, failed ones last
    sets: dict[str, StatSet]
    spreads: dict[str, float]
    histograms: list[Path]
    report_path: Path
    failures: list[dict[str, Any]]

    @property
    def ranking(self) -> list[str]:
        return [c.label for c in self.candidates]


def match(
    real_sources: list[Source],
    candidates: list[Candidate],
    out_dir: str | Path,
    cfg: MatchConfig,
    *,
    hq_sources: list[Source] | None = None,
    synth_base: Any = None,
    user_presets: dict[str, Any] | None = None,
    progress: Callable[..., None] | None = None,
) -> MatchResult:
    """Rank ``candidates`` by how well their LQ statistics match ``real_sources``.

    ``synth_base`` is the :class:`redegkit.synth.SynthConfig` whose settings preset/bank
    candidates start from (a recipe's ``[synthesize]``; the defaults if None); crop, scale,
    seed and workers come from ``cfg``. Writes ``report.json`` and one ``hist_STAT.png`` per
    statistic into ``out_dir``. Bad images are failure records (``path``, ``reason``, ``set``).
    Raises :class:`MatchError` when the real set has no usable image, there are no candidates,
    or a preset/bank candidate has no ``hq_sources``.
    """
    from ..synth import SynthConfig

    _check_candidates(candidates, hq_sources, user_presets)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    real = files_stats(real_sources, cfg, "real", progress)
    if not real:
        raise MatchError(
            f"none of the {len(real_sources)} real image(s) could be measured "
            f"(first failure: {real.failures[0]['reason'] if real.failures else '-'})"
        )
    spreads = {k: robust_spread(real.values[k], SPREAD_FLOORS[k]) for k in MATCH_STATS}
    failures = list(real.failures)
    base = synth_base if synth_base is not None else SynthConfig()
    sets = _candidate_sets(candidates, cfg, hq_sources or [], base, user_presets, progress, failures)
    scores = [_score(c, sets[c.label], real, spreads) for c in candidates]
    scores.sort(key=lambda s: (s.overall is None, s.overall if s.overall is not None else 0.0))
    hists = write_histograms(real, sets, {s.label: s.distances for s in scores}, out, cfg.bins)
    report_path = out / "report.json"
    atomic_write_json(
        report_path, _report(len(real_sources), real, spreads, sets, scores, hists, cfg, failures)
    )
    return MatchResult(real, scores, sets, spreads, hists, report_path, failures)


def _check_candidates(
    candidates: list[Candidate], hq_sources: list[Source] | None, user_presets: dict[str, Any] | None
) -> None:
    """Check every candidate before any work: at least one, no label twice, HQ images for the
    preset/bank ones, shard folders that hold shards, bank files that exist, presets that are known."""
    if not candidates:
        raise MatchError("no candidates: give at least one --candidate")
    labels = [c.label for c in candidates]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise MatchError(f"candidate(s) given twice: {', '.join(dup)}")
    if any(c.needs_hq for c in candidates) and not hq_sources:
        raise MatchError("preset:/bank: candidates synthesize from HQ images: give them with --hq")
    for c in candidates:
        if c.kind == "shards" and not storage.is_dir(c.target):
            raise FileNotFoundError(f"--candidate {c.label}: {c.target} is not a folder of shards")
        if c.kind == "shards" and not any(n.endswith(".tar") for n in storage.list_files(c.target)):
            raise FileNotFoundError(f"--candidate {c.label}: {c.target} holds no *.tar shards")
        if c.kind == "bank" and not storage.exists(c.target):
            raise FileNotFoundError(f"--candidate {c.label}: bank file {c.target} not found")
        if c.kind == "preset":
            from ..degrade import get_preset

            get_preset(c.target, user_presets=user_presets)  # PresetError (a ConfigError) if unknown


def _candidate_sets(
    candidates: list[Candidate],
    cfg: MatchConfig,
    hq_sources: list[Source],
    base: Any,
    user_presets: dict[str, Any] | None,
    progress: Callable[..., None] | None,
    failures: list[dict[str, Any]],
) -> dict[str, StatSet]:
    """The statistics of every candidate's LQ images, by label, in order. Preset/bank candidates
    are synthesized from the HQ crops (made once, at the first of them) in a temporary folder that
    is removed after. Every failure is appended to ``failures``."""
    sets: dict[str, StatSet] = {}
    with tempfile.TemporaryDirectory(prefix="redeg-match-") as tmp:
        hq: tuple[list[Source], dict[str, str]] | None = None
        for i, cand in enumerate(candidates):
            if cand.kind == "shards":
                st = shard_stats(cand.target, cfg, cand.label, progress)
            else:
                if hq is None:
                    hq = _prepare_hq(hq_sources, cfg, Path(tmp) / "hq", failures)
                    if not hq[0]:
                        raise MatchError("none of the --hq images could be used for synthesis")
                shards = Path(tmp) / f"cand{i:03d}"
                st = _synthesized_stats(cand, hq, shards, cfg, base, user_presets, progress)
            failures.extend(st.failures)
            sets[cand.label] = st
    return sets


def _synthesized_stats(
    cand: Candidate,
    hq: tuple[list[Source], dict[str, str]],
    shards: Path,
    cfg: MatchConfig,
    base: Any,
    user_presets: dict[str, Any] | None,
    progress: Callable[..., None] | None,
) -> StatSet:
    """A preset/bank candidate's statistics: synthesize the HQ crops into ``shards``, measure their
    LQ images; synthesis failures come first, named by the HQ file each crop was cut from."""
    from ..synth import synthesize  # (torch only for bank candidates, imported by synthesize)

    hq_list, origin = hq
    scfg = _synth_config(cand, cfg, base)
    if progress is not None:
        progress(0, synthesizing=cand.label)
    res = synthesize(hq_list, shards, scfg, user_presets=user_presets)
    st = shard_stats(shards, cfg, cand.label, progress)
    st.failures[:0] = [
        {**f, "path": origin.get(f.get("path", ""), f.get("path", "?")), "set": cand.label}
        for f in res.failures
    ]
    return st


def _score(cand: Candidate, st: StatSet, real: StatSet, spreads: dict[str, float]) -> CandidateScore:
    if not st:
        return CandidateScore(cand.label, cand.kind, 0, None, None, st.failures, "no usable LQ image")
    d = score_candidate(real, st, spreads)
    return CandidateScore(cand.label, cand.kind, len(st), d, d["overall"], st.failures)


def _report(
    inputs: int,
    real: StatSet,
    spreads: dict[str, float],
    sets: dict[str, StatSet],
    scores: list[CandidateScore],
    hists: list[Path],
    cfg: MatchConfig,
    failures: list[dict[str, Any]],
) -> dict[str, Any]:
    """``report.json``: the real set, the ranked candidates, the settings, every per-image value."""
    return {
        "real": {
            "inputs": inputs,
            "images": len(real),
            "spread": spreads,
            "stats": real.summary(),
        },
        "candidates": [{**s.to_json(), "rank": r + 1} for r, s in enumerate(scores)],
        "ranking": [s.label for s in scores],
        "statistics": list(MATCH_STATS),
        "overall_of": list(OVERALL_STATS),
        "spread_floors": SPREAD_FLOORS,
        "config": cfg.model_dump(mode="json"),
        "histograms": [p.name for p in hists],
        "per_image": {"real": _per_image(real), **{k: _per_image(v) for k, v in sets.items()}},
        "failures": failures,
    }


def _per_image(st: StatSet) -> list[dict[str, Any]]:
    return [{"name": n, **{k: st.values[k][i] for k in MATCH_STATS}} for i, n in enumerate(st.names)]


# Figures -------------------------------------------------------------------------------------
_FIGURES = {  # file stem -> (title, statistics drawn, one panel each)
    "noise": ("noise level (grey levels)", ("noise",)),
    "spectral_slope": ("spectral slope (log P vs log f)", ("spectral_slope",)),
    "sharpness": ("sharpness (log10 Laplacian variance)", ("sharpness",)),
    "blockiness": ("8x8 blockiness", ("blockiness",)),
    "saturation": ("saturation (mean HSV S)", ("saturation",)),
    "contrast": ("contrast (luma std)", ("contrast",)),
    "cast": ("colour cast (channel mean - luma mean)", ("cast_r", "cast_g", "cast_b")),
}


def write_histograms(
    real: StatSet,
    sets: dict[str, StatSet],
    distances: dict[str, dict[str, float] | None],
    out_dir: Path,
    bins: int = 30,
) -> list[Path]:
    """One PNG per statistic (``hist_STAT.png``): the real histogram filled, each candidate's
    outlined on the same bins, densities, the candidate's distance in the legend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    paths = []
    for stem, (title, keys) in _FIGURES.items():
        fig = Figure(figsize=(4.2 * len(keys), 3.2), dpi=100)
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(keys), squeeze=False)[0]
        # fixed margins: a layout engine doubles the time per figure
        fig.subplots_adjust(
            left=0.1 / len(keys) ** 0.5,
            right=0.98,
            bottom=0.1,
            top=0.83 if len(keys) > 1 else 0.9,
            wspace=0.25,
        )
        for ax, key in zip(axes, keys, strict=True):
            allv = np.concatenate(
                [np.asarray(real.values[key])] + [np.asarray(s.values[key]) for s in sets.values() if len(s)]
            )
            lo, hi = float(allv.min()), float(allv.max())
            if hi - lo < 1e-9:
                lo, hi = lo - 0.5, hi + 0.5
            edges = np.linspace(lo, hi, bins + 1)
            ax.hist(real.values[key], bins=edges, density=True, color="0.75", label=f"real ({len(real)})")
            for label, st in sets.items():
                if not len(st):
                    continue
                d = (distances.get(label) or {}).get(key)
                tag = f"{label} ({d:.2f})" if d is not None else label
                ax.hist(st.values[key], bins=edges, density=True, histtype="step", linewidth=1.5, label=tag)
            ax.set_title(key if len(keys) > 1 else title, fontsize=9)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=6)
        if len(keys) > 1:
            fig.suptitle(title, fontsize=10)
        p = out_dir / f"hist_{stem}.png"
        fig.savefig(p)
        paths.append(p)
    return paths
