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
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ..config import StrictModel
from ..io import storage
from ..io.atomic import atomic_write_json
from ..io.images import ImageDecodeError, decode_image, write_image
from ..io.sources import Source, list_sources
from ..metrics import stats as S

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

# The no-reference statistics, in report order. cast_* = channel mean - luma mean (grey levels).
MATCH_STATS = (
    "noise",
    "spectral_slope",
    "sharpness",
    "blockiness",
    "saturation",
    "contrast",
    "cast_r",
    "cast_g",
    "cast_b",
)
# What `overall` averages: the cast is one statistic (the mean of its three channels' distances).
OVERALL_STATS = ("noise", "spectral_slope", "sharpness", "blockiness", "saturation", "contrast", "cast")
# Smallest spread a statistic is divided by, in its own units: about a quarter of a clearly
# visible difference, so a real set of near-identical photos (spread ~0) cannot make tiny,
# invisible differences look huge.
SPREAD_FLOORS: dict[str, float] = {
    "noise": 0.5,  # grey levels of noise std (2 is visible in flat regions)
    "spectral_slope": 0.1,  # blur of sigma 0.5 px steepens a photo's slope by ~0.4-0.6
    "sharpness": 0.06,  # log10 Laplacian energy (blur of sigma 0.5 px: ~0.35)
    "blockiness": 0.0125,  # blockiness ratio (clean 0.02-0.05, JPEG q75 0.08-0.22)
    "saturation": 0.01,  # mean HSV S, 0..1
    "contrast": 1.0,  # grey levels of luma std
    "cast_r": 1.0,  # grey levels (8 is a noticeable tint)
    "cast_g": 1.0,
    "cast_b": 1.0,
}
_IQR_TO_STD = 1.349  # IQR of a normal distribution in units of its std


class MatchError(ValueError):
    """A run that cannot start or produce a score: no candidates, no usable real image, …"""


class MatchConfig(StrictModel):
    """Configuration of `redeg eval match` (recipe table ``[eval_match]``)."""

    max_side: int = Field(
        256, ge=16, description="statistics on a centre crop of at most this many pixels per side"
    )
    max_images: int = Field(
        64, ge=1, description="at most this many images per set (real, and each candidate)"
    )
    scale: int = Field(4, ge=1, le=4, description="preset/bank candidates: SR scale of the synthesized LQ")
    seed: int = Field(0, description="preset/bank candidates: synthesis seed")
    workers: int = Field(1, ge=1, description="preset candidates: CPU worker processes for synthesis")
    device: str = Field("auto", description="bank candidates: auto, cpu, cuda, cuda:N")
    bins: int = Field(30, ge=5, le=200, description="histogram bins per statistic")


# Statistics of one image ---------------------------------------------------------------------
def centre_crop(img: np.ndarray, max_side: int) -> np.ndarray:
    """The centre ``min(h, max_side) x min(w, max_side)`` window of an HxWxC image."""
    h, w = img.shape[:2]
    ch, cw = min(h, max_side), min(w, max_side)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(img[y0 : y0 + ch, x0 : x0 + cw])


def image_stats(img: np.ndarray, max_side: int = 256) -> dict[str, float]:
    """The :data:`MATCH_STATS` of one RGB uint8 image, on its centre crop of ``max_side``.

    Raises ValueError for an image that is not RGB uint8 or is smaller than 8x8."""
    x = centre_crop(img, max_side)
    r, g, b = S.colour(x)
    y = float(S.luma(x).mean())
    return {
        "noise": S.noise_level(x),
        "spectral_slope": S.spectral_slope(x),
        "sharpness": S.sharpness(x),
        "blockiness": S.blockiness(x),
        "saturation": S.saturation(x),
        "contrast": S.contrast(x),
        "cast_r": r - y,
        "cast_g": g - y,
        "cast_b": b - y,
    }


# Distribution distance -----------------------------------------------------------------------
def wasserstein1(a: Iterable[float], b: Iterable[float]) -> float:
    """1-D Wasserstein-1 (earth mover's) distance between two empirical distributions.

    The integral over q in (0, 1) of |F_a^-1(q) - F_b^-1(q)|, exact for samples of any sizes:
    both quantile functions are step functions, constant between the merged breakpoints i/n
    and j/m. Identical samples (in any order) give exactly 0."""
    xa, xb = np.sort(np.asarray(list(a), np.float64)), np.sort(np.asarray(list(b), np.float64))
    n, m = len(xa), len(xb)
    if n == 0 or m == 0:
        raise ValueError("wasserstein1: empty sample")
    qs = np.union1d(np.arange(1, n + 1) / n, np.arange(1, m + 1) / m)
    widths = np.diff(qs, prepend=0.0)
    mid = qs - widths / 2  # inside each interval both quantile functions are constant
    ia = np.minimum((mid * n).astype(np.int64), n - 1)
    ib = np.minimum((mid * m).astype(np.int64), m - 1)
    return float(np.sum(widths * np.abs(xa[ia] - xb[ib])))


def robust_spread(values: Iterable[float], floor: float) -> float:
    """IQR / 1.349 (the std, for normal data; robust to outliers), at least ``floor``."""
    v = np.asarray(list(values), np.float64)
    q1, q3 = np.percentile(v, [25, 75])
    return max(float(q3 - q1) / _IQR_TO_STD, floor)


# Sets of images and their statistics ---------------------------------------------------------
@dataclass
class StatSet:
    """Per-image statistics of one set: ``values[stat]`` has one entry per image in ``names``."""

    label: str
    names: list[str] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in MATCH_STATS})
    failures: list[dict[str, Any]] = field(default_factory=list)

    def add(self, name: str, img: np.ndarray, max_side: int) -> None:
        try:
            st = image_stats(img, max_side)
        except ValueError as e:  # too small, or not an image the stats accept
            self.fail(name, str(e))
            return
        self.names.append(name)
        for k in MATCH_STATS:
            self.values[k].append(st[k])

    def fail(self, name: str, reason: str) -> None:
        self.failures.append({"path": name, "reason": reason, "set": self.label})

    def __len__(self) -> int:
        return len(self.names)

    def summary(self) -> dict[str, dict[str, float]]:
        """Median and IQR-spread of each statistic (for the report)."""
        if not self.names:
            return {}
        return {
            k: {
                "median": float(np.median(v)),
                "p25": float(np.percentile(v, 25)),
                "p75": float(np.percentile(v, 75)),
            }
            for k, v in self.values.items()
        }


def _evenly(items: list[Any], n: int) -> list[Any]:
    if len(items) <= n:
        return list(items)
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in sorted(set(idx.tolist()))]


def _decode_file(src: Source, out: StatSet) -> np.ndarray | None:
    try:
        return decode_image(src.path)
    except ImageDecodeError as e:
        out.fail(str(src.path), e.reason)
        return None


def files_stats(
    sources: list[Source], cfg: MatchConfig, label: str = "real", progress: Callable[..., None] | None = None
) -> StatSet:
    """Statistics of image files (at most ``cfg.max_images``, evenly spaced over the list)."""
    out = StatSet(label)
    for src in _evenly(sources, cfg.max_images):
        img = _decode_file(src, out)
        if img is not None:
            out.add(str(src.path), img, cfg.max_side)
        if progress is not None:
            progress(1)
    return out


def _lq_field(sample: dict[str, Any]) -> str | None:
    for k in sample:
        if k.startswith("lq.") and k.split(".")[-1] in ("png", "jpg", "jpeg", "webp"):
            return k
    return None


def shard_stats(
    folder: str | Path, cfg: MatchConfig, label: str, progress: Callable[..., None] | None = None
) -> StatSet:
    """Statistics of the LQ images of a shard folder (the first ``cfg.max_images`` samples)."""
    from ..io.shards import list_shards, scan_tar  # the standard library's tarfile: no torch

    folder = str(folder) if storage.is_remote(folder) else Path(folder)
    if not storage.is_dir(folder):
        raise FileNotFoundError(f"{folder}: not a folder of shards")
    if not list_shards(folder):
        raise FileNotFoundError(f"{folder}: holds no *.tar shards")
    out = StatSet(label)
    samples = (s for shard in list_shards(folder) for s in scan_tar(shard))
    for i, sample in enumerate(_iter_safely(samples, out, folder)):
        if i >= cfg.max_images:
            break
        name = f"{sample.get('__url__', folder)}:{sample.get('__key__', '?')}"
        key = _lq_field(sample)
        if key is None:
            out.fail(
                name,
                f"sample has no lq image (fields: {sorted(k for k in sample if not k.startswith('__'))})",
            )
            continue
        try:
            img = decode_image(sample[key], path=f"{name}.{key}")
        except ImageDecodeError as e:
            out.fail(f"{name}.{key}", e.reason)
            continue
        out.add(f"{name}.{key}", img, cfg.max_side)
        if progress is not None:
            progress(1)
    return out


def _iter_safely(
    samples: Iterator[dict[str, Any]], out: StatSet, where: Path | str
) -> Iterator[dict[str, Any]]:
    """Stop at a broken tar instead of crashing; what was read stays, the break is recorded."""
    try:
        yield from samples
    except Exception as e:  # a truncated or corrupt tar surfaces as tarfile/webdataset errors
        out.fail(str(where), f"cannot read the shards further: {type(e).__name__}: {e}")


# Candidates ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """One source of LQ images to compare with the real photos."""

    kind: Literal["shards", "preset", "bank"]
    target: str  # folder, preset name, or bank path
    label: str  # as the user wrote it; unique within a run

    @property
    def needs_hq(self) -> bool:
        return self.kind in ("preset", "bank")


def parse_candidate(spec: str) -> Candidate:
    """``preset:NAME``, ``bank:PATH.pt``, ``shards:PATH`` or a bare ``PATH`` (a shard folder).
    Raises :class:`MatchError` for an empty target or an unknown ``KIND:``."""
    kind, sep, rest = spec.partition(":")
    if sep and kind in ("preset", "bank", "shards"):
        if not rest:
            raise MatchError(f"--candidate {spec!r}: nothing after {kind}:")
        return Candidate(kind, rest, spec)  # type: ignore[arg-type]
    if sep and len(kind) > 1 and not storage.is_remote(spec) and not Path(spec).exists():
        raise MatchError(
            f"--candidate {spec!r}: unknown kind {kind!r}; use preset:NAME, bank:PATH.pt or a shard folder"
        )
    return Candidate("shards", spec, spec)


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


def score_candidate(real: StatSet, cand: StatSet, spreads: dict[str, float]) -> dict[str, float]:
    """Per statistic W1(real, cand) / spread; ``cast`` = mean of its channels; ``overall`` = the
    mean over :data:`OVERALL_STATS`."""
    d = {k: wasserstein1(real.values[k], cand.values[k]) / spreads[k] for k in MATCH_STATS}
    d["cast"] = float(np.mean([d["cast_r"], d["cast_g"], d["cast_b"]]))
    d["overall"] = float(np.mean([d[k] for k in OVERALL_STATS]))
    return d


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
    from ..synth import SynthConfig, synthesize  # (torch only for bank candidates, imported by synthesize)

    if not candidates:
        raise MatchError("no candidates: give at least one --candidate")
    labels = [c.label for c in candidates]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise MatchError(f"candidate(s) given twice: {', '.join(dup)}")
    if any(c.needs_hq for c in candidates) and not hq_sources:
        raise MatchError("preset:/bank: candidates synthesize from HQ images: give them with --hq")
    for c in candidates:  # check every candidate before any work
        if c.kind == "shards" and not storage.is_dir(c.target):
            raise FileNotFoundError(f"--candidate {c.label}: {c.target} is not a folder of shards")
        if c.kind == "shards" and not any(n.endswith(".tar") for n in storage.list_files(c.target)):
            raise FileNotFoundError(f"--candidate {c.label}: {c.target} holds no *.tar shards")
        if c.kind == "bank" and not storage.exists(c.target):
            raise FileNotFoundError(f"--candidate {c.label}: bank file {c.target} not found")
        if c.kind == "preset":
            from ..degrade import get_preset

            get_preset(c.target, user_presets=user_presets)  # PresetError (a ConfigError) if unknown
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
    sets: dict[str, StatSet] = {}
    scores: list[CandidateScore] = []
    base = synth_base if synth_base is not None else SynthConfig()
    with tempfile.TemporaryDirectory(prefix="redeg-match-") as tmp:
        hq_list: list[Source] | None = None
        origin: dict[str, str] = {}
        for i, cand in enumerate(candidates):
            if cand.kind == "shards":
                st = shard_stats(cand.target, cfg, cand.label, progress)
            else:
                if hq_list is None:
                    hq_list, origin = _prepare_hq(hq_sources or [], cfg, Path(tmp) / "hq", failures)
                    if not hq_list:
                        raise MatchError("none of the --hq images could be used for synthesis")
                scfg = _synth_config(cand, cfg, base)
                shards = Path(tmp) / f"cand{i:03d}"
                if progress is not None:
                    progress(0, synthesizing=cand.label)
                res = synthesize(hq_list, shards, scfg, user_presets=user_presets)
                st = shard_stats(shards, cfg, cand.label, progress)
                st.failures[:0] = [
                    {**f, "path": origin.get(f.get("path", ""), f.get("path", "?")), "set": cand.label}
                    for f in res.failures
                ]
            failures.extend(st.failures)
            sets[cand.label] = st
            if st:
                d = score_candidate(real, st, spreads)
                scores.append(CandidateScore(cand.label, cand.kind, len(st), d, d["overall"], st.failures))
            else:
                scores.append(
                    CandidateScore(cand.label, cand.kind, 0, None, None, st.failures, "no usable LQ image")
                )
    scores.sort(key=lambda s: (s.overall is None, s.overall if s.overall is not None else 0.0))
    hists = write_histograms(real, sets, {s.label: s.distances for s in scores}, out, cfg.bins)
    report = {
        "real": {
            "inputs": len(real_sources),
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
    report_path = out / "report.json"
    atomic_write_json(report_path, report)
    return MatchResult(real, scores, sets, spreads, hists, report_path, failures)


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
