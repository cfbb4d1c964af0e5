"""``redeg eval downstream``: does the data train a better restorer? Every degradation source trains
the same restorer, and each restorer is scored on the truth.

The benchmark, step by step (every step deterministic for a seed):

1. **transfer** (``OUT/transfer``): ``eval transfer`` itself on the test images, which makes the
   face pairs under the known degradation D, fits and bakes the bank (or reuses ``--model`` /
   ``--bank``), cuts the test crops and scores how closely each source's LQ matches D(crop). Its
   distances are shown beside the downstream scores.
2. **training crops** (``OUT/train``): ``train_crops_per_image`` crops of ``train_crop`` px of
   each ``--train`` image (never a test image).
3. **sources** (:mod:`.downstream_sources`), at x1 and at ``--scale``: the bank, the bank without
   its calibration, every preset, the downsampling-only baseline and the oracle (D itself) each
   make pairs of the same training crops, train the same restorer (``train-sr`` with the
   ``eval-sr`` recipe: same network, seed and steps), restore D(test crops) (``upscale``) and
   score the restorations against the clean crops. A source is resumable on its own.
4. **scores** (:mod:`.downstream_scores`): per source the mean PSNR-Y / SSIM with paired bootstrap
   intervals over test images, the gain over the best preset, the closure, the protocol check and
   the target.

``report.json`` holds everything; ``sheet-xS.png`` shows D(test) | each source's restoration |
clean for a few test crops.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field, model_validator

from ..degrade import get_preset
from ..io.atomic import atomic_write_json
from ..io.images import decode_image, write_image
from ..io.sources import Source
from .bootstrap import DRAWS
from .crops import cut_crops
from .downstream_scores import REPORT_KIND, summarize_scale
from .downstream_sources import (
    Setup,
    SourceError,
    perceptual_crops,
    run_source,
    score_images,
    source_specs,
)
from .transfer import BUILTIN_CANDIDATES, TransferConfig, eval_transfer, has_random_noise, truth_images


def _perceptual(names: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The perceptual metrics whose weights are installed (loaded once) and, for each asked-for
    metric, "computed" or why not (the missing registry entries and how to install them)."""
    if not names:
        return {}, {}
    from ..metrics.perceptual import available_perceptual, load_perceptual

    why = available_perceptual()
    loaded = {n: load_perceptual(n) for n in names if why.get(n) is None}
    return loaded, {n: "computed" if n in loaded else str(why.get(n)) for n in names}


__all__ = ["REPORT_KIND", "DownstreamConfig", "DownstreamResult", "eval_downstream"]


class DownstreamConfig(TransferConfig):
    """Settings of ``redeg eval downstream`` (recipe table ``[eval_downstream]``). The fields it
    shares with ``[eval_transfer]`` set the transfer run and the test crops; the restorer's
    settings are the ``[train_sr]`` and ``[upscale]`` tables of the SR recipe (``eval-sr``)."""

    train_crop: int = Field(
        128, ge=64, description="side of a training crop (a multiple of 8 and of --scale)"
    )
    train_crops_per_image: int = Field(
        16, ge=1, description="training crops per --train image; every source degrades the same crops"
    )
    bootstrap_draws: int = Field(
        DRAWS,
        ge=100,
        description="Monte Carlo resamples when the exact bootstrap would list more than 200,000",
    )
    perceptual: list[Literal["lpips", "dists"]] = Field(
        ["lpips", "dists"],
        description="perceptual metrics to add where their weights are installed (redeg weights "
        "list; never downloaded): LPIPS (VGG, v0.1) and DISTS",
    )

    @model_validator(mode="after")
    def _check(self) -> DownstreamConfig:
        if self.scale not in (1, 2, 4):
            raise ValueError(f"scale {self.scale}: the restorer works at x1, x2 or x4")
        if self.train_crop % 8 or self.train_crop % self.scale:
            raise ValueError(
                f"train_crop {self.train_crop} must be a multiple of 8 and of the scale {self.scale}"
            )
        return self

    def transfer_config(self) -> TransferConfig:
        return TransferConfig.model_validate({k: getattr(self, k) for k in TransferConfig.model_fields})


@dataclass
class DownstreamResult:
    out: Path
    report: dict[str, Any]
    failures: list[dict[str, Any]] = field(default_factory=list)


def _check_sets(tests: list[Source], train: list[Source]) -> None:
    held = {str(Path(s.path).resolve()) for s in tests}
    both = [s for s in train if str(Path(s.path).resolve()) in held]
    if both:
        raise ValueError(
            f"{both[0].path} is both a training and a test image; the test images must be held out"
        )


def _transfer(
    out: Path, tests, faces, degradation: str, cfg: DownstreamConfig, resume: bool, say, **kw
) -> dict[str, Any]:
    """``eval transfer`` into ``out/transfer`` (kept as it is on ``resume`` when it finished with the
    same settings and bank); returns its report."""
    import json

    where = out / "transfer"
    tcfg = cfg.transfer_config()
    try:
        rep = json.loads((where / "report.json").read_text())
    except (OSError, ValueError):
        rep = {}
    same_bank = kw.get("bank") is None or rep.get("bank") == str(kw["bank"])
    if (
        resume
        and rep.get("config") == tcfg.model_dump(mode="json")
        and same_bank
        and Path(rep.get("bank", "")).is_file()
    ):
        say("eval transfer: finished before, kept")
        return rep
    return eval_transfer(faces, tests, degradation, where, cfg=tcfg, resume=resume, log=say, **kw).report


def _setup(
    out: Path,
    rep: dict[str, Any],
    train: list[Source],
    cfg: DownstreamConfig,
    sr_cfg,
    up_cfg,
    user_presets,
    failures: list[dict[str, Any]],
) -> Setup:
    """The training crops, the clean test crops and D(test) at each scale, written once."""
    from ..weights import sha256_file

    D = get_preset(rep["degradation"], user_presets)
    keys, f = cut_crops(
        train, out / "train", cfg.train_crop, cfg.train_crops_per_image, cfg.seed, "train-crop"
    )
    failures += f
    if not keys:
        why = f": {f[0].get('path', '')}: {f[0].get('reason', '')}" if f else ""
        raise ValueError(
            f"no training crops: no --train image could be cut into {cfg.train_crop} px crops{why}"
        )
    test_keys = list(rep["crops"])
    clean = {k: decode_image(out / "transfer" / "crops" / f"{k}.png") for k in test_keys}
    test_lq, unrestored = {}, {}
    for s, imgs in truth_images(clean, D, cfg.transfer_config()).items():
        for k, v in imgs.items():
            write_image(out / "test" / f"lq-x{s}" / f"{k}.png", v)
        test_lq[s] = out / "test" / f"lq-x{s}"
        unrestored[s] = _unrestored(imgs, clean, s)
    bank = Path(rep["bank"])
    return Setup(
        out,
        cfg,
        sr_cfg,
        up_cfg,
        bank,
        sha256_file(bank),
        D,
        user_presets,
        out / "train",
        keys,
        test_keys,
        clean,
        test_lq,
        unrestored,
    )


def _unrestored(
    lqs: dict[str, np.ndarray], clean: dict[str, np.ndarray], scale: int
) -> dict[str, np.ndarray]:
    """D(test) at the clean crop's size: as it is at x1, bicubic-enlarged at x``scale``."""
    return {
        k: lqs[k] if scale == 1 else cv2.resize(lqs[k], hq.shape[1::-1], interpolation=cv2.INTER_CUBIC)
        for k, hq in clean.items()
    }


def _sheet(path: Path, setup: Setup, scale: int, slugs: dict[str, str]) -> None:
    """D(test) | each source's restoration | clean (``slugs``: source name -> folder name, in
    column order), for a few test crops, one per test image first."""
    from ..io.preview import grid, label

    keys, cfg = setup.test_keys, setup.cfg
    shown = list(dict.fromkeys(keys[:: cfg.crops_per_image] + keys))[: cfg.sheet_rows]
    unrestored = setup.unrestored[scale]
    rows = []
    for i, k in enumerate(shown):
        hq = setup.clean[k]
        row = [("D(test)", cv2.resize(unrestored[k], hq.shape[1::-1], interpolation=cv2.INTER_NEAREST))]
        for name, slug in slugs.items():
            row.append(
                (name, decode_image(setup.out / "sources" / f"{slug}-x{scale}" / "restored" / f"{k}.png"))
            )
        row.append(("clean", hq))
        rows.append([label(im, t) if i == 0 else im for t, im in row])
    write_image(path, grid(rows))


def _presets(
    cfg: DownstreamConfig, extra: list[str] | None, user_presets: dict[str, Any] | None
) -> list[str]:
    from ..degrade import list_presets

    presets = list(dict.fromkeys([*cfg.presets, *(extra or [])]))
    unknown = [p for p in presets if p not in set(list_presets(user_presets))]
    if unknown:
        raise ValueError(f"unknown preset source(s) {unknown}; known: {list_presets(user_presets)}")
    return presets


def _run_scale(
    setup: Setup, scale: int, presets: list[str], resume: bool, progress, failures
) -> dict[str, Any]:
    """Every source at ``scale`` (a failed source is a failure record naming it) and the summary."""
    records: dict[str, dict[str, Any]] = {}
    say = (lambda m: progress(0, step=m)) if progress else (lambda m: None)
    for spec in source_specs(presets, setup.cfg.down):
        try:
            records[spec.name] = run_source(setup, spec, scale, resume=resume, say=say)
        except SourceError as e:
            where = setup.out / "sources" / f"{spec.slug}-x{scale}"
            failures.append({"path": str(where), "source": spec.name, "scale": f"x{scale}", "reason": str(e)})
        if progress:
            progress(1, source=spec.name, scale=f"x{scale}")
    unres = score_images(setup.unrestored[scale], setup.clean, scale)
    summary = summarize_scale(
        records,
        unres,
        presets,
        has_random_noise(setup.degradation),
        seed=setup.cfg.seed,
        draws=setup.cfg.bootstrap_draws,
        unrestored_perceptual=perceptual_crops(setup, setup.unrestored[scale]),
    )
    summary["runs"] = {
        n: {k: r[k] for k in ("pairs", "train", "seconds", "kept")} for n, r in records.items()
    }
    return summary


def _beside(
    summary: dict[str, Any], transfer: dict[str, Any], scale: int, presets: list[str], down: str
) -> None:
    """Each source's ``eval transfer`` distance (and LQ PSNR to D(crop)) at the same scale, beside it."""
    scores = transfer.get("scores", {}).get(f"x{scale}", {})
    for spec in source_specs(presets, down):
        row = summary["sources"].get(spec.name)
        t = scores.get(spec.transfer_name or "")
        if row is not None:
            row["transfer_distance"] = t["distance"]["overall"] if t else None
            row["transfer_psnr"] = t["psnr"] if t else None


def eval_downstream(
    faces: list[Source],
    tests: list[Source],
    train: list[Source],
    degradation: str,
    out: str | Path,
    *,
    cfg: DownstreamConfig | None = None,
    sr_cfg: Any = None,
    up_cfg: Any = None,
    fit_cfg: Any = None,
    fit_naturals: list[Source] | None = None,
    model: str | Path | None = None,
    bank: str | Path | None = None,
    extra_presets: list[str] | None = None,
    user_presets: dict[str, Any] | None = None,
    resume: bool = False,
    bake_cfg: Any = None,
    progress: Callable[..., None] | None = None,
) -> DownstreamResult:
    """Run the benchmark (see the module doc). ``sr_cfg`` / ``up_cfg``: the restorer's
    :class:`~redegkit.sr.config.TrainSRConfig` and :class:`~redegkit.sr.config.UpscaleConfig`
    (default: the ``eval-sr`` recipe's); ``fit_cfg``, ``model``, ``bank``, ``bake_cfg``: as
    :func:`~redegkit.eval.transfer.eval_transfer`. ``progress(n, **fields)``: ``n`` finished sources."""
    from ..config import resolve_config

    cfg = cfg or DownstreamConfig()
    sr_cfg = sr_cfg or resolve_config("train_sr", "eval-sr")
    up_cfg = up_cfg or resolve_config("upscale", "eval-sr")
    out = Path(out)
    _check_sets(tests, train)
    presets = _presets(cfg, extra_presets, user_presets)
    if sr_cfg.data.hq_crop > cfg.train_crop:
        raise ValueError(
            f"the restorer's patch ({sr_cfg.data.hq_crop} px) is larger than train_crop {cfg.train_crop}"
        )
    if not resume and (out / "sources").exists():
        shutil.rmtree(out / "sources")
    say = (lambda m: progress(0, step=m)) if progress else (lambda m: None)
    failures: list[dict[str, Any]] = []
    transfer = _transfer(
        out,
        tests,
        faces,
        degradation,
        cfg,
        resume,
        say,
        fit_cfg=fit_cfg,
        fit_naturals=fit_naturals,
        model=model,
        bank=bank,
        extra_presets=extra_presets,
        user_presets=user_presets,
        bake_cfg=bake_cfg,
    )
    failures += transfer.get("failures", [])
    setup = _setup(out, transfer, train, cfg, sr_cfg, up_cfg, user_presets, failures)
    setup.perceptual, perceptual_note = _perceptual(list(cfg.perceptual))
    report: dict[str, Any] = {
        "kind": REPORT_KIND,
        "degradation": degradation,
        "degradation_spec": setup.degradation.model_dump(mode="json"),
        "random_noise": has_random_noise(setup.degradation),
        "config": cfg.model_dump(mode="json"),
        "train_sr": sr_cfg.model_dump(mode="json"),
        "upscale": up_cfg.model_dump(mode="json"),
        "bank": str(setup.bank),
        "transfer": str(out / "transfer"),
        "train_crops": len(setup.train_keys),
        "test_crops": setup.test_keys,
        "perceptual": perceptual_note,
        "scales": {},
        "sheets": {},
    }
    for s in sorted({1, cfg.scale}):
        summary = _run_scale(setup, s, presets, resume, progress, failures)
        _beside(summary, transfer, s, presets, cfg.down)
        report["scales"][f"x{s}"] = summary
        slugs = {sp.name: sp.slug for sp in source_specs(presets, cfg.down) if sp.name in summary["sources"]}
        if slugs:
            _sheet(out / f"sheet-x{s}.png", setup, s, slugs)
            report["sheets"][f"x{s}"] = str(out / f"sheet-x{s}.png")
    report["builtin_presets"] = [p for p in presets if p in BUILTIN_CANDIDATES]
    report["failures"] = failures
    atomic_write_json(out / "report.json", report, indent=2)
    return DownstreamResult(out, report, failures)
