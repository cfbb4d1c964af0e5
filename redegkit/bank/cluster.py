"""Structure of a bank: k-means with k chosen by silhouette, and the summary of ``bank info``.

Deterministic (a local seeded generator), so ``info``, ``filter --cluster`` and ``synthesize
--choice cluster`` all see the same clusters, numbered by size (0 = largest).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .store import SYNTH_PARTS, VERSION, Bank, tensor_sha256

# Below this silhouette the embeddings are called one family (k = 1): a split that weak is noise.
MIN_SILHOUETTE = 0.25
# Silhouette is O(N^2); above this many embeddings it is computed on an evenly spaced subset.
SILHOUETTE_MAX_POINTS = 2000


@dataclass
class Clustering:
    k: int
    labels: np.ndarray  # [N] int
    centres: np.ndarray  # [k, D] float32
    silhouettes: dict[int, float]  # k -> mean silhouette, for the k tried


def kmeans(x: np.ndarray, k: int, *, seed: int = 0, iters: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means with k-means++ seeding from a local seeded generator. Returns (labels, centres)."""
    rng = np.random.default_rng(seed)
    x = x.astype(np.float64)
    centres = [x[int(rng.integers(len(x)))]]
    for _ in range(1, k):
        d2 = np.min(((x[:, None] - np.asarray(centres)[None]) ** 2).sum(-1), axis=1)
        total = d2.sum()
        centres.append(x[int(rng.choice(len(x), p=d2 / total))] if total > 0 else x[int(rng.integers(len(x)))])
    c = np.asarray(centres)
    labels = np.zeros(len(x), int)
    for _ in range(iters):
        d = ((x[:, None] - c[None]) ** 2).sum(-1)
        new = d.argmin(1)
        for j in range(k):
            if (new == j).any():
                c[j] = x[new == j].mean(0)
        if (new == labels).all() and _ > 0:
            break
        labels = new
    return labels, c.astype(np.float32)


def silhouette(x: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette coefficient (Euclidean); points in singleton clusters count 0."""
    x = x.astype(np.float64)
    d = np.sqrt(np.maximum(((x[:, None] - x[None]) ** 2).sum(-1), 0))
    ks = np.unique(labels)
    if len(ks) < 2:
        return 0.0
    mean_to = np.stack([d[:, labels == k].sum(1) for k in ks], 1)  # [n, k]
    sizes = np.array([(labels == k).sum() for k in ks])
    own = np.searchsorted(ks, labels)
    n_own = sizes[own]
    a = mean_to[np.arange(len(x)), own] / np.maximum(n_own - 1, 1)
    other = mean_to / sizes[None]
    other[np.arange(len(x)), own] = np.inf
    b = other.min(1)
    s = np.where(n_own > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(s.mean())


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
        "path": str(bank.path) if bank.path else None, "sha256": bank.sha256,
        "format_version": VERSION, "embeddings": n, "dim": bank.dim,
        "pairs": len({r.get("pair") for r in bank.records}),
        "source_photos": len({r.get("source_path") or r.get("source") for r in bank.records}),
        "norm": _stats(norms), "distance_to_identity": _stats(to_id),
        "per_dim_std_mean": round(float(e.std(0).mean()), 5) if n > 1 else 0.0,
        "degnet_sha256": bank.degnet_sha256, "synthesizer_sha256": bank.synthesizer_sha256,
        "synthesizer": {p: {"arch": bank.synthesizer[p]["arch"], "hparams": bank.synthesizer[p]["hparams"]}
                        for p in SYNTH_PARTS},
        "licence": bank.meta.get("licence"),
        "bake": bank.meta.get("bake"),
    }
    if n >= 2:
        sub = np.linspace(0, n - 1, min(n, SILHOUETTE_MAX_POINTS)).round().astype(int)
        d = np.sqrt(np.maximum(((e[sub, None] - e[None, sub]) ** 2).sum(-1), 0))
        np.fill_diagonal(d, np.inf)
        nn_d = d.min(1)
        pair_med = float(np.median(d[np.isfinite(d)]))
        out["nearest_neighbour"] = {**_stats(nn_d), "median_pairwise": round(pair_med, 5),
                                    "near_duplicates": int((nn_d < 1e-3 * max(pair_med, 1e-12)).sum())}
    cl = cluster_bank(bank)
    out["clusters"] = {"k": cl.k, "sizes": np.bincount(cl.labels, minlength=cl.k).tolist(),
                       "silhouette_by_k": cl.silhouettes, "method": "k-means, k by silhouette (k=1 below "
                       f"{MIN_SILHOUETTE})"}
    return out


def _stats(v: np.ndarray) -> dict[str, float]:
    return {"mean": round(float(v.mean()), 5), "std": round(float(v.std()), 5),
            "min": round(float(v.min()), 5), "max": round(float(v.max()), 5)}

