"""Curating banks: :func:`merge_banks` joins banks, :func:`filter_bank` keeps a part of one.

Above both :mod:`.store` (the :class:`Bank` and its file) and :mod:`.cluster` (which describes a
bank, so it imports the store): filtering by cluster needs both, and living here instead of in
the store keeps the import graph one way (store <- cluster <- curate).
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .calibrate import identity_calibration
from .cluster import cluster_bank
from .store import Bank, BankError


def merge_banks(banks: list[Bank], *, force: bool = False) -> Bank:
    """Concatenate banks. They must share the synthesizer and the DegNet (embeddings of another
    DegNet live in another space) unless ``force``; then the first bank's synthesizer is kept."""
    if not banks:
        raise BankError("nothing to merge")
    first = banks[0]
    for b in banks[1:]:
        if b.dim != first.dim:
            raise BankError(f"{b.path}: {b.dim}-d embeddings cannot join {first.dim}-d ones ({first.path})")
        diff = [
            what
            for what, x, y in (
                ("synthesizer", b.synthesizer_sha256, first.synthesizer_sha256),
                ("DegNet", b.degnet_sha256, first.degnet_sha256),
            )
            if x != y
        ]
        if diff and not force:
            raise BankError(
                f"{b.path} and {first.path} were made with a different {' and '.join(diff)}; "
                "merging would mix incompatible embeddings (pass --force to keep the first's)"
            )
    n = [len(b) for b in banks]
    identity = torch.stack([b.identity * k for b, k in zip(banks, n, strict=True)]).sum(0) / max(1, sum(n))
    records = [{**r, "bank": str(b.path or f"bank{i}")} for i, b in enumerate(banks) for r in b.records]
    meta = {
        **first.meta,
        "merged_from": [{"path": str(b.path), "sha256": b.sha256, "count": len(b)} for b in banks],
        "merge_forced": force,
    }
    cal = None
    if any(b.calibration is not None for b in banks):
        parts = [b.calibration if b.calibration is not None else identity_calibration(len(b)) for b in banks]
        cal = {k: torch.cat([c[k] for c in parts]) for k in parts[0]}
    return Bank(
        embeddings=torch.cat([b.embeddings for b in banks]),
        records=records,
        identity=identity.float(),
        synthesizer=first.synthesizer,
        degnet_sha256=first.degnet_sha256,
        weights=torch.cat([b.weights for b in banks]),
        meta=meta,
        calibration=cal,
    )


def filter_bank(
    bank: Bank,
    *,
    clusters: list[int] | None = None,
    sources: list[str] | None = None,
    exclude_sources: list[str] | None = None,
    keys: list[str] | None = None,
) -> Bank:
    """Keep the embeddings in the given clusters (see :func:`cluster_bank`) whose source photo or
    pair key matches the glob patterns; ``exclude_sources`` drops matches. Raises if none is left."""
    keep = np.ones(len(bank), bool)
    if clusters is not None:
        labels = cluster_bank(bank).labels
        keep &= np.isin(labels, clusters)

    def src(r: dict[str, Any]) -> str:
        return str(r.get("source_path") or r.get("source") or "")

    def match(s: str, pats: list[str]) -> bool:
        return any(fnmatch.fnmatch(s, p) or fnmatch.fnmatch(Path(s).name, p) for p in pats)

    for i, r in enumerate(bank.records):
        if sources is not None and not match(src(r), sources):
            keep[i] = False
        if exclude_sources and match(src(r), exclude_sources):
            keep[i] = False
        if keys is not None and not any(
            fnmatch.fnmatch(str(r.get("pair", r.get("key", ""))), p) for p in keys
        ):
            keep[i] = False
    idx = np.flatnonzero(keep).tolist()
    if not idx:
        raise BankError("the filter leaves no embedding")
    out = bank.subset(idx)
    out.meta = {
        **bank.meta,
        "filtered_from": {
            "path": str(bank.path),
            "sha256": bank.sha256,
            "count": len(bank),
            "clusters": clusters,
            "sources": sources,
            "exclude_sources": exclude_sources,
            "keys": keys,
        },
    }
    return out
