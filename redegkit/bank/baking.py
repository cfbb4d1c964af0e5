"""Baking: run DegNet over face pairs and store the embeddings with the synthesizer (``redeg bake``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from ..io.images import ImageDecodeError, decode_image
from ..io.pairs import FacePair, list_face_pairs
from ..rng import sample_rng
from ..run import RunContext
from .calibrate import calibrate_pair, stack_calibrations
from .config import BakeConfig
from .operators import psd_top_share
from .store import Bank, BankError, check_bank, module_sha256, pack_module

PairRef = FacePair  # a face pair on disk and its pseudo-hq record


def list_pairs(spec: str | os.PathLike) -> tuple[list[FacePair], list[dict[str, str]]]:
    """Face pairs to bake (see :func:`redegkit.io.pairs.list_face_pairs`); returns (pairs, failures)."""
    return list_face_pairs(Path(spec))


def load_bake_networks(
    model: str | os.PathLike | None = None,
    official: str | os.PathLike | None = None,
) -> tuple[dict[str, nn.Module], dict[str, Any]]:
    """(degnet, encoder, generator) from a fit checkpoint (``runs/NAME/last.pt``) or a folder of the
    authors' ``net_deg_init.pth``, ``net_synE_init.pth``, ``net_synG_init.pth``; plus provenance."""
    if (model is None) == (official is None):
        raise BankError(
            "give exactly one of a fitted model (--model) or an official weights folder (--from-official)"
        )
    if model is not None:
        from ..models.checkpoints import load_fitted

        nets = load_fitted(model)
        return {k: nets[k] for k in ("degnet", "encoder", "generator")}, {"model": str(model)}
    from ..models import load_checkpoint
    from ..weights import REDEGNET_LICENCE, WeightsMissingError, spec

    files = {
        "degnet": ("net_deg_init", "redeg_degnet"),
        "encoder": ("net_synE_init", "redeg_syn_encoder"),
        "generator": ("net_synG_init", "redeg_syn_generator"),
    }
    assert official is not None
    folder = Path(official)
    missing = [spec(n) for n, _ in files.values() if not (folder / f"{n}.pth").is_file()]
    if missing:
        raise WeightsMissingError(missing, [folder])
    nets = {k: load_checkpoint(folder / f"{n}.pth", arch=a) for k, (n, a) in files.items()}
    return nets, {"official": str(folder), "licence": f"ReDegNet official weights: {REDEGNET_LICENCE}"}


@dataclass
class BakeResult:
    bank: Bank
    pairs: int
    failures: list[dict[str, str]]


def _face_region(hq: np.ndarray, lq: np.ndarray, cfg: BakeConfig, size: int):
    """Cut the padding-free face box, upscaled (cubic) when its short side is below ``size``."""
    h, w = hq.shape[:2]
    if cfg.face_box is not None:
        t, b, left, r = (
            round(v * s)
            for v, s in zip(
                cfg.face_box,
                (h / cfg.face_ref, h / cfg.face_ref, w / cfg.face_ref, w / cfg.face_ref),
                strict=True,
            )
        )
    else:
        t, b, left, r = 0, h, 0, w
    hq, lq = hq[t:b, left:r], lq[t:b, left:r]
    f = max(1.0, size / min(hq.shape[:2]))
    if f > 1.0:
        nw, nh = max(size, round(hq.shape[1] * f)), max(size, round(hq.shape[0] * f))
        hq, lq = (cv2.resize(x, (nw, nh), interpolation=cv2.INTER_CUBIC) for x in (hq, lq))
    return hq, lq, [left, t, r - left, b - t], round(f, 5)


def _u8(img: np.ndarray) -> torch.Tensor:
    """uint8 [..., H, W, 3] -> uint8 [..., 3, H, W] (the run context converts it on the device)."""
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(img, -1, -3)))


@torch.no_grad()
def _calibrate(
    records: list[dict[str, Any]],
    embs: list[torch.Tensor],
    encoder: nn.Module,
    generator: nn.Module,
    cfg: BakeConfig,
    size: int,
    ctx: RunContext,
) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Per record: the generator's output for the record's embedding on its pair's centre region
    (at most ``calib_size``, a multiple of the encoder's), measured against the real LQ
    (:func:`redegkit.bank.calibrate.calibrate_pair`). Pairs are read again (one at a time, so
    memory does not grow with the bank); records of one pair (``--each``) share the pair's mean
    embedding's calibration."""
    encoder, generator = encoder.eval(), generator.eval()
    ctx.place(encoder, generator)
    mult = int(encoder.multiple)  # type: ignore[arg-type]  # an int attribute of SynNetEncoder
    items: list[dict[str, Any]] = []
    diags: list[dict[str, Any]] = []
    done: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    members: dict[str, list[int]] = {}
    for j, rec in enumerate(records):
        members.setdefault(rec["pair"], []).append(j)
    for rec in records:
        pk = rec["pair"]
        if pk not in done:
            hq, lq = decode_image(Path(rec["hq"])), decode_image(Path(rec["lq"]))
            hq, lq, _, _ = _face_region(hq, lq, cfg, size)
            side = min(cfg.calib_size, hq.shape[0], hq.shape[1]) // mult * mult
            side = max(side, mult)
            y, x = (hq.shape[0] - side) // 2, (hq.shape[1] - side) // 2
            hq, lq = hq[y : y + side, x : x + side], lq[y : y + side, x : x + side]
            z = torch.stack([embs[j] for j in members[pk]]).mean(0)
            with ctx.autocast():
                g = generator(z[None].to(ctx.device), encoder(ctx.to_device(_u8(hq)[None]))).float()[0]
            cal = calibrate_pair(
                hq,
                lq,
                g.permute(1, 2, 0).cpu().numpy(),
                seed=int(sample_rng(cfg.seed, pk, "calibrate").integers(2**62)),
            )
            diag = {
                **cal.pop("diag"),
                "jpeg": cal["jpeg"],
                "noise_top_share": round(psd_top_share(cal["noise_psd"]), 4)
                if cal["noise_psd"].any()
                else None,
                "noise_std": round(float(np.sqrt(np.trace(cal["noise_cov"]) / 3)) * 127.5, 4),
            }
            done[pk] = (cal, diag)
        items.append(done[pk][0])
        diags.append(done[pk][1])
    return stack_calibrations(items), diags


@torch.no_grad()
def bake(
    pairs: list[PairRef] | str | os.PathLike,
    degnet: nn.Module,
    encoder: nn.Module,
    generator: nn.Module,
    cfg: BakeConfig | None = None,
    *,
    meta: dict[str, Any] | None = None,
    progress=None,
) -> BakeResult:
    """Run DegNet over face pairs: one embedding per pair (the mean over ``cfg.crops`` random
    crops of DegNet's size) or one per crop (``cfg.each``). The crops are the same window of HQ and
    LQ, seeded by ``(cfg.seed, pair key)``. The identity embedding is the mean DegNet(hq, hq).
    A pair that cannot be decoded (or whose HQ and LQ differ in size) is listed and skipped."""
    cfg = cfg or BakeConfig()
    failures: list[dict[str, str]] = []
    if not isinstance(pairs, list):
        pairs, failures = list_pairs(pairs)
    # this rank's device; embeddings stay fp32 (bake runs no autocast) and cuDNN keeps its
    # deterministic kernel choice, so a bank is reproducible
    ctx = RunContext.from_env(cfg.device, "fp32", cudnn_benchmark=False)
    degnet = degnet.eval()
    ctx.place(degnet)
    size = int(degnet.hparams["size"])  # type: ignore[index]  # a dict attribute of our networks
    embedder = _Embedder(degnet, ctx, cfg.batch)
    records: list[dict[str, Any]] = []
    for pair in pairs:
        read = _read_pair(pair)
        if isinstance(read, dict):
            failures.append(read)
            if progress:
                progress(1)
            continue
        hq, lq, region, resize = _face_region(*read, cfg, size)
        rng = sample_rng(cfg.seed, pair.key, "bake")
        boxes = []
        for c in range(cfg.crops):
            y, x = int(rng.integers(0, hq.shape[0] - size + 1)), int(rng.integers(0, hq.shape[1] - size + 1))
            boxes.append([x, y, size, size])
            embedder.add(len(records) + (c if cfg.each else 0), hq[y : y + size, x : x + size],
                         lq[y : y + size, x : x + size])  # fmt: skip
        records += _records_of(pair, boxes, region, resize, cfg.each)
        if progress:
            progress(1)
    embedder.run()
    if not records:
        raise BankError(f"no face pair could be baked ({len(failures)} failed)")
    embs = [torch.stack(embedder.per_slot[i]).mean(0) for i in range(len(records))]
    calibration = None
    if cfg.calibrate:
        calibration, cal_diag = _calibrate(records, embs, encoder, generator, cfg, size, ctx)
        for r, d in zip(records, cal_diag, strict=True):
            r["calibration"] = d
    bake_meta = {
        "bake": {
            **cfg.model_dump(mode="json"),
            "pairs": len(pairs) - len(failures),
            "failed": len(failures),
            "degnet": {"arch": degnet.arch, "hparams": degnet.hparams},
        },
        "identity_spread": round(float(torch.cat(embedder.idents).std(0).mean()), 6),
        **(meta or {}),
    }
    bank = Bank(
        embeddings=torch.stack(embs).float().contiguous(),
        records=records,
        identity=torch.cat(embedder.idents).mean(0).float(),
        degnet_sha256=module_sha256(degnet.cpu()),
        synthesizer={"encoder": pack_module(encoder), "generator": pack_module(generator)},
        meta=bake_meta,
        calibration=calibration,
    )
    check_bank(bank, "baked bank")
    return BakeResult(bank, len(pairs) - len(failures), failures)


class _Embedder:
    """DegNet over (HQ, LQ) crop pairs, ``batch`` crops per forward: each record slot's crop
    embeddings (``per_slot``) and the identity embeddings DegNet(hq, hq) (``idents``)."""

    def __init__(self, degnet: nn.Module, ctx: RunContext, batch: int) -> None:
        self.degnet, self.ctx, self.batch = degnet, ctx, batch
        self.todo: list[tuple[np.ndarray, np.ndarray]] = []
        self.slots: list[int] = []
        self.per_slot: dict[int, list[torch.Tensor]] = {}
        self.idents: list[torch.Tensor] = []

    def add(self, slot: int, hq: np.ndarray, lq: np.ndarray) -> None:
        self.todo.append((hq, lq))
        self.slots.append(slot)
        if len(self.todo) >= self.batch:
            self.run()

    def run(self) -> None:
        if not self.todo:
            return
        x = self.ctx.to_device(
            torch.stack([_u8(np.stack(p)) for p in self.todo])
        )  # [n, 2, 3, S, S] in [-1, 1]
        with torch.no_grad(), self.ctx.autocast():
            z = self.degnet(torch.cat([x[:, 0], x[:, 1]], 1)).float().cpu()
            zi = self.degnet(torch.cat([x[:, 0], x[:, 0]], 1)).float().cpu()
        for slot, zz in zip(self.slots, z, strict=True):
            self.per_slot.setdefault(slot, []).append(zz)
        self.idents.append(zi)
        self.todo.clear()
        self.slots.clear()


def _read_pair(pair: PairRef) -> tuple[np.ndarray, np.ndarray] | dict[str, str]:
    """The pair's HQ and LQ, or the failure record of a pair that cannot be used."""
    try:
        hq, lq = decode_image(pair.hq), decode_image(pair.lq)
        if hq.shape != lq.shape:
            raise ImageDecodeError(
                pair.lq, f"LQ {lq.shape[1]}x{lq.shape[0]} differs from HQ {hq.shape[1]}x{hq.shape[0]}"
            )
    except (ImageDecodeError, OSError) as e:
        return {"path": str(getattr(e, "path", pair.hq)), "reason": str(getattr(e, "reason", e))}
    return hq, lq


def _records_of(
    pair: PairRef, boxes: list[list[int]], region: Any, resize: Any, each: bool
) -> list[dict[str, Any]]:
    """A pair's provenance record(s): one, or one per crop (``each``)."""
    src = pair.record.get("source", {})
    base = {
        "pair": pair.key,
        "hq": str(pair.hq),
        "lq": str(pair.lq),
        "source": src.get("rel") if isinstance(src, dict) else src,
        "source_path": src.get("path") if isinstance(src, dict) else src,
        "face_box_photo": pair.record.get("box"),
        "scale": pair.record.get("scale"),
        "region": region,
        "region_resize": resize,
    }
    if each:
        return [{**base, "key": f"{pair.key}_c{c:02d}", "crop_boxes": [b]} for c, b in enumerate(boxes)]
    return [{**base, "key": pair.key, "crop_boxes": boxes}]
