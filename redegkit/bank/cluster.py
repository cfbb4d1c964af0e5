"""Structure of a bank: k-means with k chosen by silhouette, and the summary of ``bank info``.

Deterministic (a local seeded generator), so ``info``, ``filter --cluster`` and ``synthesize
--choice cluster`` all see the same clusters, numbered by size (0 = largest).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .operators import psd_top_share
from .store import SYNTH_PARTS, VERSION, Bank, tensor_sha256

# Below this silhouette the embeddings are called one family (k = 1): a split that weak is noise.
MIN_SILHOUETTE = 0.25
# Silhouette is O(N^2) in time; above this many embeddings it is computed on an evenly spaced subset.
SILHOUETTE_MAX_POINTS = 2000
# Every block of a distance matrix stays under this many bytes (float64), whatever N.
BLOCK_BYTES = 32 << 20


@dataclass
class Clustering:
    k: int
    labels: np.ndarray  # [N] int
    centres: np.ndarray  # [k, D] float32
    silhouettes: dict[int, float]  # k -> mean silhouette, for the k tried


def sq_distances(a: np.ndarray, b: np.ndarray, b_sq: np.ndarray | None = None) -> np.ndarray:
    """Squared Euclidean distances [len(a), len(b)] as ``|a|^2 + |b|^2 - 2 a.b``: one matmul, never
    the [len(a), len(b), D] array of differences. Clamped at 0 (rounding can make it -1e-15)."""
    a_sq = np.einsum("ij,ij->i", a, a)
    if b_sq is None:
        b_sq = np.einsum("ij,ij->i", b, b)
    d = a @ b.T
    d *= -2.0
    d += a_sq[:, None]
    d += b_sq[None, :]
    return np.maximum(d, 0.0, out=d)


def row_blocks(n_rows: int, n_cols: int) -> list[slice]:
    """Row slices such that a float64 [rows, n_cols] block stays under :data:`BLOCK_BYTES`."""
    step = max(1, BLOCK_BYTES // (8 * max(n_cols, 1)))
    return [slice(i, min(i + step, n_rows)) for i in range(0, n_rows, step)]


def _centred(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Distances do not change under a shift, but |a|^2 + |b|^2 - 2ab loses fewer digits near 0.
    x = np.asarray(x, np.float64)
    mean = x.mean(0)
    return x - mean, mean


def kmeans(x: np.ndarray, k: int, *, seed: int = 0, iters: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means with k-means++ seeding from a local seeded generator. Returns (labels, centres).

    Memory is O(N·D + N·k): each iteration is one [N, k] distance matmul and one [D, N] x [N, k]
    matmul for the new centres. float32 (assignments need no more; it halves time and memory)."""
    rng = np.random.default_rng(seed)
    x, mean = _centred(x)
    x = x.astype(np.float32)
    n = len(x)
    x_sq = np.einsum("ij,ij->i", x, x)
    chosen = [int(rng.integers(n))]
    d2 = sq_distances(x[chosen], x, x_sq)[0].astype(np.float64)  # to the nearest chosen centre
    for _ in range(1, k):
        total = d2.sum()
        nxt = int(rng.choice(n, p=d2 / total)) if total > 0 else int(rng.integers(n))
        chosen.append(nxt)
        np.minimum(d2, sq_distances(x[nxt : nxt + 1], x, x_sq)[0], out=d2)
    c = x[chosen].copy()
    labels = np.zeros(n, int)
    member = np.zeros((n, k), np.float32)
    rows = np.arange(n)
    for it in range(iters):
        new = sq_distances(x, c).argmin(1)
        if it > 0 and (new == labels).all():
            break
        labels = new
        member[:] = 0.0
        member[rows, labels] = 1.0
        counts = member.sum(0)
        filled = counts > 0  # an emptied cluster keeps its centre
        c[filled] = (x.T @ member[:, filled]).T / counts[filled, None]
    return labels, (c + mean).astype(np.float32)


def silhouette(x: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette coefficient (Euclidean); points in singleton clusters count 0.

    O(N^2) time but O(N·k) memory beyond one distance block: callers pass a subset of a big bank."""
    ks, own = np.unique(labels, return_inverse=True)
    if len(ks) < 2:
        return 0.0
    x, _ = _centred(x)
    n = len(x)
    x_sq = np.einsum("ij,ij->i", x, x)
    member = np.zeros((n, len(ks)))
    member[np.arange(n), own] = 1.0
    mean_to = np.empty((n, len(ks)))  # [n, k]: sum of distances from each point to each cluster
    for rows in row_blocks(n, n):
        d = np.sqrt(sq_distances(x[rows], x, x_sq))
        d[np.arange(rows.stop - rows.start), np.arange(rows.start, rows.stop)] = 0.0  # exactly 0 to itself
        mean_to[rows] = d @ member
    sizes = member.sum(0)
    n_own = sizes[own]
    a = mean_to[np.arange(n), own] / np.maximum(n_own - 1, 1)
    other = mean_to / sizes[None]
    other[np.arange(n), own] = np.inf
    b = other.min(1)
    s = np.where(n_own > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(s.mean())


def nearest_neighbour_distances(x: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Distance from each point of ``x[rows]`` (default: all) to its nearest other point of the
    whole ``x``, in blocks of rows: O(len(rows)·N) time, one block of memory."""
    x, _ = _centred(x)
    n = len(x)
    rows = np.arange(n) if rows is None else np.asarray(rows)
    x_sq = np.einsum("ij,ij->i", x, x)
    out = np.empty(len(rows))
    for blk in row_blocks(len(rows), n):
        idx = rows[blk]
        d = sq_distances(x[idx], x, x_sq)
        d[np.arange(len(idx)), idx] = np.inf  # not itself
        out[blk] = d.min(1)
    return np.sqrt(out)


def cluster_embeddings(x: np.ndarray, *, k_max: int = 8, seed: int = 0) -> Clustering:
    """k-means for k in 2..k_max, keeping the k with the best silhouette; k = 1 when no split
    reaches :data:`MIN_SILHOUETTE` (or fewer than 4 embeddings)."""
    n = len(x)
    scores: dict[int, float] = {}
    best = (1, np.zeros(n, int), x.mean(0, keepdims=True).astype(np.float32))
    if n >= 4:
        sub = np.linspace(0, n - 1, min(n, SILHOUETTE_MAX_POINTS)).round().astype(int)
        best_s = MIN_SILHOUETTE
        for k in range(2, min(k_max, n - 1) + 1):
            labels, centres = kmeans(x, k, seed=seed)
            scores[k] = round(silhouette(x[sub], labels[sub]), 4)
            if scores[k] > best_s + 1e-9:
                best_s, best = scores[k], (k, labels, centres)
    k, labels, centres = best
    # Number clusters by size (largest first) so labels read the same across runs and tools.
    order = sorted(range(k), key=lambda j: (-(labels == j).sum(), j))
    remap = np.empty(k, int)
    remap[order] = np.arange(k)
    return Clustering(k, remap[labels], centres[order], scores)


_CLUSTER_CACHE: dict[tuple[str, int], Clustering] = {}


def cluster_bank(bank: Bank, *, k_max: int = 8) -> Clustering:
    """The bank's clustering (cached by embedding content)."""
    key = (tensor_sha256({"e": bank.embeddings}), k_max)
    if key not in _CLUSTER_CACHE:
        _CLUSTER_CACHE[key] = cluster_embeddings(bank.embeddings.numpy(), k_max=k_max)
    return _CLUSTER_CACHE[key]


def bank_info(bank: Bank) -> dict[str, Any]:
    """Counts, embedding statistics and nearest-neighbour structure, as plain JSON-able data."""
    e = bank.embeddings.double().numpy()
    n = len(e)
    norms = np.linalg.norm(e, axis=1)
    to_id = np.linalg.norm(e - bank.identity.double().numpy()[None], axis=1)
    out: dict[str, Any] = {
        "path": str(bank.path) if bank.path else None,
        "sha256": bank.sha256,
        "format_version": VERSION,
        "embeddings": n,
        "dim": bank.dim,
        "pairs": len({r.get("pair") for r in bank.records}),
        "source_photos": len({r.get("source_path") or r.get("source") for r in bank.records}),
        "norm": _stats(norms),
        "distance_to_identity": _stats(to_id),
        "per_dim_std_mean": round(float(e.std(0).mean()), 5) if n > 1 else 0.0,
        "degnet_sha256": bank.degnet_sha256,
        "synthesizer_sha256": bank.synthesizer_sha256,
        "synthesizer": {
            p: {"arch": bank.synthesizer[p]["arch"], "hparams": bank.synthesizer[p]["hparams"]}
            for p in SYNTH_PARTS
        },
        "licence": bank.meta.get("licence"),
        "bake": bank.meta.get("bake"),
    }
    if n >= 2:
        # Above SILHOUETTE_MAX_POINTS: an evenly spaced sample of embeddings, each against the
        # whole bank (its true nearest neighbour), and the median over the sample's pairs.
        sub = np.linspace(0, n - 1, min(n, SILHOUETTE_MAX_POINTS)).round().astype(int)
        nn_d = nearest_neighbour_distances(e, sub)
        sc, _ = _centred(e[sub])
        d = np.sqrt(sq_distances(sc, sc))
        pair_med = float(np.median(d[np.triu_indices(len(sub), 1)]))
        out["nearest_neighbour"] = {
            **_stats(nn_d),
            "median_pairwise": round(pair_med, 5),
            "near_duplicates": int((nn_d < 1e-3 * max(pair_med, 1e-12)).sum()),
            "sampled": len(sub),
        }
    cal = bank.calibration
    if cal is not None:
        std = torch.sqrt(torch.diagonal(cal["noise_cov"].double(), dim1=1, dim2=2).mean(1)).numpy() * 127.5
        q = cal["jpeg"].numpy()
        out["calibration"] = {
            "noise_std_grey_levels": _stats(std),
            "with_noise": int((std > 0).sum()),
            "noise_corr_radius": _stats(cal["noise_corr"].double().numpy()),  # banks before noise_psd
            "noise_top_band_share": _stats(
                np.array([psd_top_share(p) for p in cal["noise_psd"].numpy() if p.any()] or [0.0])
            ),
            "jpeg_quality": {
                "with_jpeg": int((q > 0).sum()),
                **(_stats(q[q > 0].astype(float)) if (q > 0).any() else {}),
            },
            "hq_filter_gain": _stats(cal["filter"][:, 0].double().sum((1, 2)).numpy()),
        }
    else:
        out["calibration"] = None
    cl = cluster_bank(bank)
    out["clusters"] = {
        "k": cl.k,
        "sizes": np.bincount(cl.labels, minlength=cl.k).tolist(),
        "silhouette_by_k": cl.silhouettes,
        "method": f"k-means, k by silhouette (k=1 below {MIN_SILHOUETTE})",
    }
    return out


def _stats(v: np.ndarray) -> dict[str, float]:
    return {
        "mean": round(float(v.mean()), 5),
        "std": round(float(v.std()), 5),
        "min": round(float(v.min()), 5),
        "max": round(float(v.max()), 5),
    }
