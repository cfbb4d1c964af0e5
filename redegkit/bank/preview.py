"""``redeg bank preview``: one HQ image under several embeddings of a bank, as a labelled sheet."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from ..io.images import from_tensor, to_tensor
from ..io.preview import fit_tile, grid, label
from ..run import RunContext
from .apply import Synthesizer, synthesize_image
from .cluster import cluster_bank
from .store import Bank, build_synthesizer


def preview_embeddings(bank: Bank, n: int, centres: bool) -> list[tuple[str, torch.Tensor]]:
    """(label, z) pairs: ``n`` evenly spaced embeddings, or every cluster centre."""
    if centres:
        cl = cluster_bank(bank)
        sizes = np.bincount(cl.labels, minlength=cl.k)
        return [(f"cluster {c} (n={sizes[c]})", torch.from_numpy(cl.centres[c])) for c in range(cl.k)]
    idx = np.unique(np.linspace(0, len(bank) - 1, min(n, len(bank))).round().astype(int))
    out = []
    for i in idx.tolist():
        r = bank.records[i]
        name = Path(str(r.get("source_path") or r.get("source") or r.get("key", ""))).stem
        out.append((f"#{i} {name}", bank.embeddings[i]))
    return out


def render_preview(
    bank: Bank,
    image: np.ndarray,
    *,
    n: int = 8,
    centres: bool = False,
    size: int = 256,
    tile: int = 192,
    cols: int = 5,
    device: str = "auto",
) -> np.ndarray:
    """A contact sheet (RGB uint8): the HQ image, its identity reconstruction, then the image under
    each chosen embedding (generator output at HQ resolution, before any downsampling).

    ``image`` is RGB uint8; it is shrunk (area) so its long side is at most ``size``.
    """
    h, w = image.shape[:2]
    s = min(1.0, size / max(h, w))
    if s < 1.0:
        image = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    enc, gen = build_synthesizer(bank)
    synth = Synthesizer(enc, gen, ctx=RunContext.from_env(device), compile=False)
    hq = to_tensor(image)
    tiles = [label(fit_tile(image, tile), "HQ input")]
    for text, z in [("identity (strength 0)", bank.identity), *preview_embeddings(bank, n, centres)]:
        lq = synthesize_image(synth, hq, z.float(), tile=max(512, size), overlap=64)
        tiles.append(label(fit_tile(from_tensor(lq.cpu()), tile), text))
    return grid([tiles[i : i + cols] for i in range(0, len(tiles), cols)])  # a short last row stays white
