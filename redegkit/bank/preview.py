"""``redeg bank preview``: one HQ image under several embeddings of a bank, as a labelled sheet.

Every tile says exactly what it shows:

- **HQ**: the input (shrunk to ``size``);
- **generator identity reconstruction**: G(identity embedding, E(HQ)), the generator asked to change
  nothing. It shows what the generator alone does to a clean image; it is *not* what
  ``--strength 0`` gives (that is exactly the HQ: strength blends in image space);
- per embedding (or cluster centre), **generator only**: G(z, E(HQ)), and **+ calibration**: that
  output through the bank's calibration for the embedding (filters, colour map, learned noise,
  then JPEG at the HQ resolution), which is what ``synthesize --bank`` applies before
  downsampling. A cluster centre is not an embedding of the bank: it borrows the calibration of
  its nearest member, named in the label.

Tiles are at the HQ resolution (before the SR downsampling), enlarged by an integer factor with
nearest neighbour until their short side is at least ``min_tile`` pixels, so blur, noise and 8x8
blocks stay visible; captions sit below the pixels, never over them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ..io.images import from_tensor, to_tensor
from ..io.preview import caption, grid, zoom_to
from ..run import RunContext
from .apply import Synthesizer, synthesize_image
from .cluster import cluster_bank
from .operators import apply_calibration
from .store import Bank, build_synthesizer

IDENTITY_LABEL = "identity: generator reconstruction"


@dataclass
class PreviewEntry:
    """One embedding to show: its label, the vector [D], and whose calibration goes with it."""

    label: str
    z: torch.Tensor
    calibration_index: int | None  # None: the bank has no calibration


def _source_name(record: dict[str, Any]) -> str:
    return Path(str(record.get("source_path") or record.get("source") or record.get("key", ""))).stem


def preview_entries(bank: Bank, n: int, centres: bool) -> list[PreviewEntry]:
    """``n`` evenly spaced embeddings, or every cluster centre (with its nearest member's calibration)."""
    has_cal = bank.calibration is not None
    if centres:
        cl = cluster_bank(bank)
        sizes = np.bincount(cl.labels, minlength=cl.k)
        emb = bank.embeddings.double().numpy()
        out = []
        for c in range(cl.k):
            members = np.flatnonzero(cl.labels == c)
            d = np.linalg.norm(emb[members] - cl.centres[c][None].astype(np.float64), axis=1)
            near = int(members[int(np.argmin(d))])
            out.append(
                PreviewEntry(
                    f"cluster {c} (n={sizes[c]})", torch.from_numpy(cl.centres[c]), near if has_cal else None
                )
            )
        return out
    idx = np.unique(np.linspace(0, len(bank) - 1, min(n, len(bank))).round().astype(int))
    return [
        PreviewEntry(f"#{i} {_source_name(bank.records[i])}", bank.embeddings[i], i if has_cal else None)
        for i in idx.tolist()
    ]


def calibration_post(bank: Bank, index: int, *, seed: int = 0) -> dict[str, Any]:
    """The calibration of embedding ``index`` as ``apply_calibration`` reads it, at strength 1
    (the learned noise drawn from ``seed``)."""
    cal = bank.calibration
    if cal is None:
        raise ValueError("the bank has no calibration")
    return {
        "strength": 1.0,
        "filter": cal["filter"][index].numpy(),
        "color": cal["color"][index].numpy(),
        "noise_cov": cal["noise_cov"][index].numpy(),
        "noise_corr": float(cal["noise_corr"][index]),
        "noise_psd": cal["noise_psd"][index].numpy(),
        "noise_seed": seed,
    }


def calibrate(bank: Bank, y: torch.Tensor, hq: torch.Tensor, index: int, *, seed: int = 0) -> np.ndarray:
    """A generator output ``y`` [3, H, W] in [-1, 1] of ``hq`` [3, H, W] through embedding
    ``index``'s calibration, then its JPEG at the HQ resolution: RGB uint8 [H, W, 3]."""
    from ..degrade.ops import jpeg

    assert bank.calibration is not None
    out = apply_calibration(
        y[None].float(), hq[None].to(y.device).float(), [calibration_post(bank, index, seed=seed)]
    )
    img = from_tensor(out[0].cpu())
    q = int(bank.calibration["jpeg"][index])
    return jpeg(img, q) if q > 0 else img


class PreviewRenderer:
    """The bank's synthesizer on one device, applied to one HQ image (RGB uint8)."""

    def __init__(self, bank: Bank, image: np.ndarray, *, device: str = "auto", size: int = 256) -> None:
        h, w = image.shape[:2]
        s = min(1.0, size / max(h, w))
        if s < 1.0:
            image = cv2.resize(
                image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA
            )
        self.bank, self.image, self.size = bank, image, size
        enc, gen = build_synthesizer(bank)
        self.synth = Synthesizer(enc, gen, ctx=RunContext.local(device), compile=False)
        self.hq = to_tensor(image)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """G(z, E(HQ)) [3, H, W] in [-1, 1] (on the synthesizer's device)."""
        return synthesize_image(self.synth, self.hq, z.float(), tile=max(512, self.size), overlap=64)

    def identity(self) -> np.ndarray:
        return from_tensor(self.generate(self.bank.identity).cpu())

    def entry(self, e: PreviewEntry) -> tuple[np.ndarray, np.ndarray | None]:
        """(generator only, + calibration or None) for one entry, RGB uint8 at the HQ size."""
        y = self.generate(e.z)
        raw = from_tensor(y.cpu())
        cal = (
            calibrate(self.bank, y, self.hq, e.calibration_index) if e.calibration_index is not None else None
        )
        return raw, cal


def render_preview(
    bank: Bank,
    image: np.ndarray,
    *,
    n: int = 8,
    centres: bool = False,
    size: int = 256,
    min_tile: int = 192,
    device: str = "auto",
) -> np.ndarray:
    """A contact sheet (RGB uint8), captioned tile by tile (see the module doc): the first row is
    HQ | generator identity reconstruction; then one row per embedding: generator only |
    + calibration (the second tile is left out when the bank has no calibration).

    ``image`` is RGB uint8; it is shrunk (area) so its long side is at most ``size``.
    """
    r = PreviewRenderer(bank, image, device=device, size=size)

    def tile(img: np.ndarray, text: str) -> np.ndarray:
        return caption(zoom_to(img, min_tile), text)

    rows = [[tile(r.image, "HQ input"), tile(r.identity(), IDENTITY_LABEL)]]
    for e in preview_entries(bank, n, centres):
        raw, cal = r.entry(e)
        row = [tile(raw, f"{e.label}: generator only")]
        if cal is not None:
            text = f"{e.label} + calib. of #{e.calibration_index}" if centres else f"{e.label}: + calibration"
            row.append(tile(cal, text))
        rows.append(row)
    return grid(rows)
