"""``redeg eval transfer``: does the learned degradation reproduce a KNOWN one on new images?

The benchmark, step by step (every step deterministic for a seed):

1. **pairs** (``OUT/pairs``): ``views`` augmented views of each HQ face image (a random square of
   50-100 % of the short side, area-resized to ``view_size``, random h-flip), degraded by the known
   degradation D (a preset, or a recipe's ``[presets.NAME]`` table). These are the fit pairs.
2. **fit** (``OUT/fit``, resumable) with the fit recipe, unless ``--model`` or ``--bank`` is given,
   then **bake** (``OUT/emb.pt``). Fitting sees the faces only (and ``--fit-natural`` images for
   ReDegNet's matched part; by default the faces again), never the evaluation images.
3. **crops** (``OUT/crops``): ``crops_per_image`` crops of ``crop`` px of each natural image, at
   8-aligned positions; **truth** = D(crop) at x1, and that downsampled with ``down`` at x``scale``.
4. **candidates** on the same crops, through the product's own ``synthesize`` (shards in
   ``OUT/candidates``): the bank (and the bank without its calibration), every built-in preset,
   any ``--preset`` given, and the identity (the HQ itself).
5. **scores** (:mod:`.transfer_scores`) per candidate and scale: paired PSNR/SSIM (Y) to the truth,
   and the distance of the degradation statistics (:func:`redegkit.metrics.stats.stats_distance`:
   colour, sharpness, noise, blockiness, HF power, each in "visible difference" units, and their
   mean).

``report.json`` holds everything; ``sheet.png`` shows HQ | D(HQ) | bank | best preset; ``truth/``
holds D(crop) at x1, so ``redeg report OUT`` can show the crops without recomputing anything.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import Field

from ..config import StrictModel
from ..degrade import apply_degradation, get_preset, list_presets, sample_degradation
from ..degrade.spec import Preset
from ..io.atomic import atomic_write_json, atomic_write_jsonl
from ..io.images import decode_image, write_image
from ..io.sources import Source
from ..metrics import psnr
from ..rng import sample_rng
from .crops import cut_crops, downsample_u8, read_lq, synth_shards
from .transfer_scores import ranking, score, score_scale, verdict

BUILTIN_CANDIDATES = ("realesrgan", "bsrgan", "bsrgan-x2", "redeg-matched")
NOISE_OPS = ("gaussian_noise", "poisson_noise")


class TransferConfig(StrictModel):
    """Settings of ``redeg eval transfer`` (recipe table ``[eval_transfer]``)."""

    views: int = Field(12, ge=1, description="augmented views per face image (the fit pairs)")
    view_size: int = Field(256, ge=32, description="side of a face view, pixels")
    crop: int = Field(128, ge=64, description="side of an evaluation crop (a multiple of 64)")
    crops_per_image: int = Field(4, ge=1, description="evaluation crops per natural image")
    scale: int = Field(4, ge=1, le=4, description="the SR scale scored besides x1")
    down: str = Field(
        "bicubic",
        pattern="^(bilinear|bicubic|area)$",
        description="downsampling of the truth and the bank at --scale",
    )
    seed: int = Field(0, description="seed of views, degradations, crops and synthesis")
    presets: list[str] = Field(
        list(BUILTIN_CANDIDATES), description="preset candidates (built-in or [presets.NAME])"
    )
    sheet_rows: int = Field(4, ge=1, description="crops shown in sheet.png")


@dataclass
class TransferResult:
    out: Path
    report: dict[str, Any]
    failures: list[dict[str, Any]] = field(default_factory=list)


def has_random_noise(preset: Preset) -> bool:
    """Whether a preset can draw a noise realisation (then PSNR is capped by the draw)."""
    blob = json.dumps(preset.model_dump(mode="json"))
    return any(f'"op": "{op}"' in blob for op in NOISE_OPS)


# ------------------------------------------------------------------------------------------------
# 1. pairs


def make_pairs(
    faces: list[Source], degradation: Preset, out: Path, cfg: TransferConfig
) -> list[dict[str, Any]]:
    """Write ``out/hq``, ``out/lq`` and ``out/pairs.jsonl`` (the pseudo-hq layout) from augmented
    views of ``faces`` degraded by ``degradation``. Returns the failures (unreadable faces)."""
    failures = []
    (out / "hq").mkdir(parents=True, exist_ok=True)
    (out / "lq").mkdir(parents=True, exist_ok=True)
    records = []
    for src in faces:
        try:
            img = decode_image(src.path)
        except Exception as e:  # noqa: BLE001 - reported per file
            failures.append({"path": str(src.path), "reason": getattr(e, "reason", str(e))})
            continue
        h, w = img.shape[:2]
        for k in range(cfg.views):
            rng = sample_rng(cfg.seed, src.key, "view", k)
            side = max(16, int(min(h, w) * rng.uniform(0.5, 1.0)))
            y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            interp = cv2.INTER_AREA if side >= cfg.view_size else cv2.INTER_CUBIC
            v = cv2.resize(
                img[y : y + side, x : x + side], (cfg.view_size, cfg.view_size), interpolation=interp
            )
            if rng.random() < 0.5:
                v = v[:, ::-1]
            v = np.ascontiguousarray(v)
            params = sample_degradation(degradation, sample_rng(cfg.seed, src.key, "degrade", k))
            lq = apply_degradation(v, params)
            key = f"{src.key}_v{k:03d}"
            write_image(out / "hq" / f"{key}.png", v)
            write_image(out / "lq" / f"{key}.png", lq)
            records.append(
                {
                    "key": key,
                    "source": str(src.path),
                    "view": [x, y, side],
                    "known": True,
                    "degradation": params.to_json(),
                }
            )
    if not records:
        raise ValueError("no face image could be read, so there are no pairs to fit")
    atomic_write_jsonl(out / "pairs.jsonl", records, sort_keys=False)
    return failures


# ------------------------------------------------------------------------------------------------
# 2. fit and bake


def _fit(
    fit_cfg: Any,
    out: Path,
    naturals: list[Source],
    resume: bool,
    user_presets: dict[str, Any] | None,
    say: Callable[[str], None],
    show_progress: bool,
) -> tuple[Path, dict[str, Any]]:
    """Fit on ``out/pairs`` into ``out/fit`` (from its last checkpoint with ``resume``, else from
    scratch). Returns the checkpoint and the report's ``fit`` record."""
    from ..fit.loop import fit_degradation

    if fit_cfg is None:
        raise ValueError("give a fit recipe (--recipe with a [fit] table), --model or --bank")
    run = out / "fit"
    say(f"fitting ({fit_cfg.steps} steps) into {run}")
    resuming = resume and (run / "last.pt").is_file()
    if run.exists() and not resuming:
        shutil.rmtree(run)
    res = fit_degradation(
        fit_cfg,
        out / "pairs",
        [str(s.path) for s in naturals],
        run,
        resume=resuming,
        user_presets=user_presets,
        show_progress=show_progress,
    )
    return run / "last.pt", {"run": str(run), "steps": fit_cfg.steps, "seconds": round(res.seconds, 1)}


def _bake(pairs: Path, model: str | Path, bake_cfg: Any, path: Path, say: Callable[[str], None]) -> Path:
    """Bake ``model``'s embeddings of the ``pairs`` folder into a bank file at ``path``."""
    from ..bank import BakeConfig, bake, load_bake_networks, save_bank

    say("baking the bank")
    nets, meta = load_bake_networks(model=model)
    bres = bake(
        str(pairs),
        nets["degnet"],
        nets["encoder"],
        nets["generator"],
        bake_cfg or BakeConfig(),
        meta=meta,
    )
    return save_bank(path, bres.bank)


# ------------------------------------------------------------------------------------------------
# 3. crops and truth


def make_crops(
    naturals: list[Source], out: Path, cfg: TransferConfig
) -> tuple[list[str], list[dict[str, Any]]]:
    """Cut ``crops_per_image`` 8-aligned crops of each natural image into ``out`` (PNG). Returns
    (crop keys in order, failures)."""
    return cut_crops(naturals, out, cfg.crop, cfg.crops_per_image, cfg.seed)


def truth_images(
    hqs: dict[str, np.ndarray], degradation: Preset, cfg: TransferConfig
) -> dict[int, dict[str, np.ndarray]]:
    """D(crop) per key at x1, and downsampled at x``cfg.scale``."""
    x1 = {
        k: apply_degradation(v, sample_degradation(degradation, sample_rng(cfg.seed, k, "truth")))
        for k, v in hqs.items()
    }
    out = {1: x1}
    if cfg.scale > 1:
        out[cfg.scale] = {k: downsample_u8(v, cfg.scale, cfg.down) for k, v in x1.items()}
    return out


# ------------------------------------------------------------------------------------------------
# 4. candidates through synthesize


def synth_candidate(
    crops_dir: Path,
    out: Path,
    scale: int,
    cfg: TransferConfig,
    *,
    bank: Path | None = None,
    preset: str | None = None,
    calibration: bool = True,
    user_presets: dict[str, Any] | None = None,
) -> dict[str, np.ndarray]:
    """Run the library's ``synthesize`` on the crops (:func:`synth_shards`) and read the LQ images
    back, by crop key."""
    synth_shards(crops_dir, out, scale, seed=cfg.seed, down=cfg.down, tile=cfg.crop, bank=bank,
                 preset=preset, calibration=calibration, user_presets=user_presets)  # fmt: skip
    return read_lq(out)


def _preset_candidates(
    cfg: TransferConfig, extra: list[str] | None, user_presets: dict[str, Any] | None
) -> list[str]:
    """The preset candidates, each once: the config's, then ``extra``. Raises ValueError for an
    unknown one."""
    presets = list(dict.fromkeys([*cfg.presets, *(extra or [])]))
    known = set(list_presets(user_presets))
    unknown = [p for p in presets if p not in known]
    if unknown:
        raise ValueError(f"unknown preset candidate(s) {unknown}; known: {sorted(known)}")
    return presets


def _candidates(
    out: Path,
    s: int,
    cfg: TransferConfig,
    bank_path: Path,
    presets: list[str],
    hqs: dict[str, np.ndarray],
    user_presets: dict[str, Any] | None,
    say: Callable[[str], None],
    failures: list[dict[str, Any]],
) -> dict[str, dict[str, np.ndarray]]:
    """Every candidate's LQ of the crops at x``s``, by name: the bank, the bank without its
    calibration, each preset (shards under ``out/candidates``), and the identity. A preset that
    fails on some crops is left out, with a failure record naming it."""
    crops, where = out / "crops", out / "candidates"
    cands: dict[str, dict[str, np.ndarray]] = {}
    say(f"x{s}: the bank")
    cands["bank"] = synth_candidate(crops, where / f"bank-x{s}", s, cfg, bank=bank_path)
    cands["bank (no calibration)"] = synth_candidate(
        crops, where / f"bank-nocal-x{s}", s, cfg, bank=bank_path, calibration=False
    )
    for p in presets:
        say(f"x{s}: preset {p}")
        lq = synth_candidate(crops, where / f"{p}-x{s}", s, cfg, preset=p, user_presets=user_presets)
        missing = [k for k in hqs if k not in lq]
        if missing:
            why = f"preset {p} at x{s} failed on {len(missing)} of {len(hqs)} crops, so it is not scored"
            failures.append({"path": str(where / f"{p}-x{s}"), "candidate": f"preset:{p}", "reason": why})
            continue
        cands[f"preset:{p}"] = lq
    cands["identity"] = {k: downsample_u8(v, s, cfg.down) for k, v in hqs.items()}
    return cands


# ------------------------------------------------------------------------------------------------
# 5. scores (:mod:`.transfer_scores`), and the contact sheet


def _contact_sheet(path: Path, keys: list[str], hqs, truth, bank, best, best_name: str) -> None:
    from ..io.preview import grid, label

    rows = []
    for i, k in enumerate(keys):
        row = [hqs[k], truth[k], bank[k], best[k]]
        if i == 0:
            row = [label(im, t) for im, t in zip(row, ["HQ", "truth D(HQ)", "bank", best_name], strict=True)]
        rows.append(row)
    write_image(path, grid(rows))


def _sheet(
    path: Path,
    keys: list[str],
    cfg: TransferConfig,
    hqs: dict[str, np.ndarray],
    truth: dict[str, np.ndarray],
    cands: dict[str, dict[str, np.ndarray]],
    best: str,
) -> list[str]:
    """Write the x1 contact sheet (HQ | D(HQ) | bank | the best preset); returns the crops it shows."""
    # one crop per natural image first (keys are in image order), so the sheet shows several images
    shown = list(dict.fromkeys(keys[:: cfg.crops_per_image] + keys))[: cfg.sheet_rows]
    _contact_sheet(path, shown, hqs, truth, cands["bank"], cands[f"preset:{best}"], best)
    return shown


# ------------------------------------------------------------------------------------------------
# The whole benchmark


def eval_transfer(
    faces: list[Source],
    naturals: list[Source],
    degradation: str,
    out: str | Path,
    *,
    cfg: TransferConfig | None = None,
    fit_cfg: Any = None,
    fit_naturals: list[Source] | None = None,
    model: str | Path | None = None,
    bank: str | Path | None = None,
    extra_presets: list[str] | None = None,
    user_presets: dict[str, Any] | None = None,
    resume: bool = False,
    bake_cfg: Any = None,
    log=None,
) -> TransferResult:
    """Run the benchmark (see the module doc). ``fit_cfg`` is a :class:`~redegkit.fit.config.FitConfig`
    (needed unless ``model`` or ``bank``); ``log(msg)`` reports progress. Returns the report."""
    cfg = cfg or TransferConfig()
    say = log or (lambda msg: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    D = get_preset(degradation, user_presets)
    noisy = has_random_noise(D)
    failures: list[dict[str, Any]] = []
    face_paths = {str(Path(s.path).resolve()) for s in faces}
    overlap = [s for s in naturals if str(Path(s.path).resolve()) in face_paths]
    if overlap:
        raise ValueError(
            f"{overlap[0].path} is both a face and an evaluation image; the evaluation images "
            "must not be used in fitting"
        )
    report: dict[str, Any] = {
        "degradation": degradation,
        "degradation_spec": D.model_dump(mode="json"),
        "random_noise": noisy,
        "config": cfg.model_dump(mode="json"),
    }
    bank_path: Path
    if bank is not None:
        bank_path = Path(bank)
        report["bank"] = str(bank_path)
    else:
        say("making the known-degradation face pairs")
        failures += make_pairs(faces, D, out / "pairs", cfg)
        if model is None:
            model, report["fit"] = _fit(
                fit_cfg, out, fit_naturals or faces, resume, user_presets, say, log is not None
            )
        bank_path = _bake(out / "pairs", model, bake_cfg, out / "emb.pt", say)
        report["bank"] = str(bank_path)
        report["model"] = str(model)
    say("cutting the evaluation crops")
    keys, f2 = make_crops(naturals, out / "crops", cfg)
    failures += f2
    hqs = {k: decode_image(out / "crops" / f"{k}.png") for k in keys}
    truth = truth_images(hqs, D, cfg)
    for k, v in truth[1].items():  # D(crop), for the HTML report's grid (redeg report)
        write_image(out / "truth" / f"{k}.png", v)
    presets = _preset_candidates(cfg, extra_presets, user_presets)
    report["generator_identity_psnr"] = _identity_psnr(bank_path, hqs)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    images: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for s in sorted(truth):
        images[f"x{s}"] = _candidates(out, s, cfg, bank_path, presets, hqs, user_presets, say, failures)
        results[f"x{s}"] = score_scale(hqs, images[f"x{s}"], truth[s])
    builtin = [p for p in presets if p in BUILTIN_CANDIDATES] or presets
    report["scores"] = results
    report["target"] = {sc: verdict(r, noisy, builtin) for sc, r in results.items()}
    best = report["target"]["x1"]["best_preset"]
    shown = _sheet(out / "sheet.png", keys, cfg, hqs, truth[1], images["x1"], best)
    report["sheet"] = str(out / "sheet.png")
    report["crops"] = keys
    report["sheet_crops"] = shown
    report["failures"] = failures
    atomic_write_json(out / "report.json", report, indent=2)
    return TransferResult(out, report, failures)


def _identity_psnr(bank_path: Path, hqs: dict[str, np.ndarray]) -> float:
    """PSNR of G(identity embedding, E(x)) against x over the crops: how well the generator alone
    reproduces a clean image (``--strength 0`` bypasses it and is exact)."""
    import torch

    from ..bank import build_synthesizer, load_bank
    from ..io.images import from_tensor, to_tensor

    b = load_bank(bank_path)
    enc, gen = build_synthesizer(b)
    vals = []
    with torch.no_grad():
        for v in hqs.values():
            y = gen(b.identity[None], enc(to_tensor(v)[None]))[0]
            vals.append(psnr(from_tensor(y), v))
    finite = [p for p in vals if math.isfinite(p)]
    return round(float(np.mean(finite)), 3) if finite else math.inf


__all__ = [
    "TransferConfig",
    "TransferResult",
    "eval_transfer",
    "has_random_noise",
    "cut_crops",
    "make_crops",
    "make_pairs",
    "ranking",
    "score",
    "synth_shards",
    "truth_images",
    "verdict",
]
