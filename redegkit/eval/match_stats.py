"""The measuring side of `redeg eval match` (:mod:`.match` runs it): the no-reference statistics
of one image, the distance between two distributions of them, the sets of images they are measured
on (image files, a shard folder's LQ images), and the candidates a run compares.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ..config import StrictModel
from ..io import storage
from ..io.images import ImageDecodeError, decode_image
from ..io.sources import Source
from ..metrics import stats as S

__all__ = [
    "MATCH_STATS",
    "MatchError",
    "OVERALL_STATS",
    "SPREAD_FLOORS",
    "Candidate",
    "MatchConfig",
    "StatSet",
    "centre_crop",
    "files_stats",
    "image_stats",
    "parse_candidate",
    "robust_spread",
    "score_candidate",
    "shard_stats",
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


# Scoring -------------------------------------------------------------------------------------
def score_candidate(real: StatSet, cand: StatSet, spreads: dict[str, float]) -> dict[str, float]:
    """Per statistic W1(real, cand) / spread; ``cast`` = mean of its channels; ``overall`` = the
    mean over :data:`OVERALL_STATS`."""
    d = {k: wasserstein1(real.values[k], cand.values[k]) / spreads[k] for k in MATCH_STATS}
    d["cast"] = float(np.mean([d["cast_r"], d["cast_g"], d["cast_b"]]))
    d["overall"] = float(np.mean([d[k] for k in OVERALL_STATS]))
    return d
