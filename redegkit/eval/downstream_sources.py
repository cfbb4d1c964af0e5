"""One degradation source of ``redeg eval downstream``, at one scale: its pairs, its restorer, its
scores (:mod:`.downstream` runs every source).

A source turns the SAME training crops into (LQ, HQ) shards: the bank (with or without its
calibration) and the presets through the library's ``synthesize``, the downsampling-only baseline
and the oracle (D itself, then the bank's downsampling, exactly as ``eval transfer``'s truth) as
image folders packed by ``shards pack``'s library function. ``train_sr`` (what ``redeg train-sr``
runs) trains the restorer on them, ``upscale_files`` (what ``redeg upscale`` runs) restores
D(test crops), and each restoration is scored against its clean crop: PSNR and SSIM on Y (BT.601,
BasicSR's convention) with ``border = scale``, and LPIPS / DISTS on the whole crop where their
weights are installed (a kept source gets a metric installed since from its ``restored/``).

Everything a source writes is under ``OUT/sources/SLUG-xS/``: ``pairs/`` (shards), ``run/`` (the
train-sr run), ``restored/``, and ``result.json``, written last. ``--resume`` keeps a source whose
``result.json`` records the same fingerprint (every setting that makes it), and continues an
interrupted training from its ``run/checkpoints/last.pt``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..degrade import get_preset
from ..degrade.spec import Preset
from ..io.atomic import atomic_write_json
from ..io.images import decode_image, write_image
from ..metrics import psnr, ssim
from .crops import downsample_u8, synth_shards

PSNR_EQUAL = 100.0  # the PSNR of a restoration without any error (keeps means and JSON finite)
SourceKind = Literal["bank", "preset", "down", "oracle"]

__all__ = [
    "PSNR_EQUAL",
    "Setup",
    "SourceError",
    "SourceSpec",
    "perceptual_crops",
    "run_source",
    "score_images",
    "source_specs",
]


class SourceError(ValueError):
    """A source that cannot be evaluated (no pairs, fewer pairs, a restoration that failed); the
    message starts with the source's name and scale."""


@dataclass(frozen=True)
class SourceSpec:
    """A degradation source: its report name, its folder name, how its pairs are made, and the
    ``eval transfer`` candidate whose distance is shown beside it (None: the oracle, D itself)."""

    name: str
    slug: str
    kind: SourceKind
    preset: str | None = None
    calibration: bool = True
    transfer_name: str | None = None


def source_specs(presets: list[str], down: str) -> list[SourceSpec]:
    """The bank, the bank without calibration, each preset, the downsampling-only baseline, the oracle."""
    return [
        SourceSpec("bank", "bank", "bank", transfer_name="bank"),
        SourceSpec(
            "bank (no calibration)",
            "bank-nocal",
            "bank",
            calibration=False,
            transfer_name="bank (no calibration)",
        ),
        *(
            SourceSpec(f"preset:{p}", f"preset-{p}", "preset", preset=p, transfer_name=f"preset:{p}")
            for p in presets
        ),
        SourceSpec(f"{down}-only", f"{down}-only", "down", transfer_name="identity"),
        SourceSpec("oracle", "oracle", "oracle"),
    ]


@dataclass
class Setup:
    """What every source of one run shares (made once by :func:`redegkit.eval.downstream.eval_downstream`)."""

    out: Path
    cfg: Any  # DownstreamConfig
    sr_cfg: Any  # TrainSRConfig (its model.scale is set per scale)
    up_cfg: Any  # UpscaleConfig
    bank: Path
    bank_sha256: str
    degradation: Preset
    user_presets: dict[str, Any] | None
    train_dir: Path  # the training crops (HQ), KEY.png
    train_keys: list[str]
    test_keys: list[str]
    clean: dict[str, np.ndarray]  # the clean test crops
    test_lq: dict[int, Path]  # scale -> folder of D(test crop) at that scale, KEY.png
    unrestored: dict[int, dict[str, np.ndarray]]  # scale -> D(test crop) at the clean crop's size
    # LPIPS / DISTS modules whose weights are installed
    perceptual: dict[str, Any] = field(default_factory=dict)


def sr_config_at(sr_cfg: Any, scale: int) -> Any:
    """The restorer's config at ``scale`` (validated again: the patch must suit the scale)."""
    from ..sr.config import TrainSRConfig

    data = sr_cfg.model_dump(mode="json")
    data["model"]["scale"] = scale
    return TrainSRConfig.model_validate(data)


def fingerprint(setup: Setup, spec: SourceSpec, scale: int) -> str:
    """sha256 of every setting that makes this source's result."""
    what: dict[str, Any] = {
        "source": [spec.name, spec.kind, spec.preset, spec.calibration],
        "scale": scale,
        "config": setup.cfg.model_dump(mode="json"),
        "train_sr": sr_config_at(setup.sr_cfg, scale).model_dump(mode="json"),
        "upscale": setup.up_cfg.model_dump(mode="json"),
        "train": setup.train_keys,
        "test": setup.test_keys,
    }
    if spec.kind == "bank":
        what["bank"] = setup.bank_sha256
    elif spec.kind == "preset":
        what["preset"] = get_preset(spec.preset or "", setup.user_presets).sha256
    elif spec.kind == "oracle":
        what["degradation"] = setup.degradation.sha256
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


def make_pairs(setup: Setup, spec: SourceSpec, scale: int, folder: Path) -> tuple[int, list[dict[str, Any]]]:
    """Write the source's shards of the training crops to ``folder/pairs``; (samples, failures)."""
    cfg, pairs = setup.cfg, folder / "pairs"
    if spec.kind in ("bank", "preset"):
        res = synth_shards(
            setup.train_dir,
            pairs,
            scale,
            seed=cfg.seed,
            down=cfg.down,
            tile=cfg.train_crop,
            bank=setup.bank if spec.kind == "bank" else None,
            preset=spec.preset,
            calibration=spec.calibration,
            user_presets=setup.user_presets,
        )
        return int(res.samples), list(res.failures)
    from ..io.export.pack import pack_folders
    from .transfer import truth_images

    hqs = {k: decode_image(setup.train_dir / f"{k}.png") for k in setup.train_keys}
    if spec.kind == "oracle":  # D at the HQ resolution, then the bank's downsampling
        lqs = truth_images(hqs, setup.degradation, cfg.transfer_config().model_copy(update={"scale": scale}))
        lq = lqs[scale]
    else:
        lq = {k: downsample_u8(v, scale, cfg.down) for k, v in hqs.items()}
    lq_dir = folder / "lq"
    for k, v in lq.items():
        write_image(lq_dir / f"{k}.png", v)
    res = pack_folders(setup.train_dir, lq_dir, pairs, scale=scale, overwrite=True)
    shutil.rmtree(lq_dir)
    return res.samples, res.failures


def score_images(
    restored: dict[str, np.ndarray], clean: dict[str, np.ndarray], scale: int
) -> dict[str, list[float]]:
    """{crop key: [PSNR-Y, SSIM-Y]} of each restoration against its clean crop (``border = scale``)."""
    out = {}
    for k, hq in clean.items():
        r = restored[k]
        out[k] = [round(psnr(r, hq, border=scale, equal=PSNR_EQUAL), 4), round(ssim(r, hq, border=scale), 5)]
    return out


def perceptual_crops(
    setup: Setup, images: dict[str, np.ndarray], skip: Collection[str] = ()
) -> dict[str, dict[str, float]]:
    """{metric: {crop key: value}} of each image against its clean crop, for every perceptual metric
    of the run (LPIPS, DISTS: lower is closer) not in ``skip``; whole images, no border crop."""
    from ..metrics.perceptual import perceptual_scores

    keys = list(setup.clean)
    clean = [setup.clean[k] for k in keys]
    out = {}
    for name, m in setup.perceptual.items():
        if name not in skip:
            vals = perceptual_scores(m, [images[k] for k in keys], clean)
            out[name] = {k: round(v, 5) for k, v in zip(keys, vals, strict=True)}
    return out


def _pairs_or_fail(
    spec: SourceSpec, scale: int, made: int, expected: int, failures: list[dict[str, Any]]
) -> None:
    if made == expected:
        return
    why = (
        f"; first failure: {failures[0].get('path', '')}: {failures[0].get('reason', '')}" if failures else ""
    )
    if made == 0:
        raise SourceError(f"{spec.name} x{scale}: no training pairs (0 of {expected} crops){why}")
    raise SourceError(
        f"{spec.name} x{scale}: {made} training pairs of {expected} crops; every source must train on "
        f"the same crops{why}"
    )


def _train(setup: Setup, scale: int, folder: Path, resume: bool) -> dict[str, Any]:
    from ..sr.train import train_sr

    sr = sr_config_at(setup.sr_cfg, scale)
    resuming = resume and (folder / "run" / "checkpoints" / "last.pt").is_file()
    res = train_sr(sr, str(folder / "pairs"), folder / "run", resume=resuming)
    net = "net_g_ema.pt" if sr.optim.ema_decay > 0 else "net_g.pt"
    return {
        "steps": res.step,
        "seconds": round(res.seconds, 1),
        "resumed_at": res.start_step,
        "losses": {k: round(v, 5) for k, v in res.last_losses.items()},
        "model": str(folder / "run" / net),
    }


def _restore(setup: Setup, spec: SourceSpec, scale: int, folder: Path, model: str) -> dict[str, np.ndarray]:
    from ..sr.upscale import upscale_files

    rep = upscale_files(str(setup.test_lq[scale]), folder / "restored", model, setup.up_cfg)
    if rep.failures:
        f = rep.failures[0]
        raise SourceError(f"{spec.name} x{scale}: restoring {f['path']} failed: {f['reason']}")
    return {k: decode_image(folder / "restored" / f"{k}.png") for k in setup.test_keys}


def run_source(
    setup: Setup,
    spec: SourceSpec,
    scale: int,
    *,
    resume: bool = False,
    say: Callable[[str], None] = lambda msg: None,
) -> dict[str, Any]:
    """Pairs, restorer, restorations and scores of one source at ``scale`` (see the module doc);
    returns the record written to ``result.json`` (``kept`` when ``resume`` found it finished).
    Raises :class:`SourceError` for a source that cannot be evaluated."""
    t0 = time.perf_counter()
    folder = setup.out / "sources" / f"{spec.slug}-x{scale}"
    fp = fingerprint(setup, spec, scale)
    done = _read(folder / "result.json")
    if resume and done.get("fingerprint") == fp:
        say(f"x{scale} {spec.name}: finished before, kept")
        have = done.get("perceptual", {})
        if set(setup.perceptual) - set(have):  # weights installed since
            restored = {k: decode_image(folder / "restored" / f"{k}.png") for k in setup.test_keys}
            done["perceptual"] = {**have, **perceptual_crops(setup, restored, skip=have)}
            atomic_write_json(folder / "result.json", done)
        return {**done, "kept": True}
    pairs_rec = _read(folder / "pairs.json")
    if not (resume and pairs_rec.get("fingerprint") == fp):
        shutil.rmtree(folder, ignore_errors=True)
        say(f"x{scale} {spec.name}: making the training pairs")
        made, failures = make_pairs(setup, spec, scale, folder)
        _pairs_or_fail(spec, scale, made, len(setup.train_keys), failures)
        pairs_rec = {"fingerprint": fp, "pairs": made}
        atomic_write_json(folder / "pairs.json", pairs_rec)
    say(f"x{scale} {spec.name}: training the restorer on {pairs_rec['pairs']} pairs")
    train = _train(setup, scale, folder, resume)
    say(f"x{scale} {spec.name}: restoring the test crops")
    restored = _restore(setup, spec, scale, folder, train["model"])
    record = {
        "source": spec.name,
        "scale": scale,
        "fingerprint": fp,
        "pairs": pairs_rec["pairs"],
        "train": train,
        "seconds": round(time.perf_counter() - t0, 1),
        "crops": score_images(restored, setup.clean, scale),
        "perceptual": perceptual_crops(setup, restored),
    }
    atomic_write_json(folder / "result.json", record)
    return {**record, "kept": False}


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
