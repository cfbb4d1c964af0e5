"""``fit-degradation``: the training loop around :class:`~redegkit.fit.step.FitModel`.

``fit()`` is a loop of explicit steps: take the batch of this step, :meth:`Fitter.train_step`
(generator step with the switch, then the discriminator step), log, :meth:`Fitter.validate` every
``val_every`` steps, :meth:`Fitter.save` every ``checkpoint_every`` steps and at the end.

A run folder holds ``last.pt`` (everything needed to resume), ``checkpoints/step_NNNNNNN.pt``,
``metrics.jsonl`` (one JSON object per logged step or validation), ``previews/step_NNNNNNN.png``,
``config.json`` and ``report.json``. Under ``torchrun`` every rank trains on its own slice of each
global batch; only rank 0 logs, validates and writes files.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..console import log, progress
from ..io.atomic import atomic_copy
from ..io.images import from_tensor, to_tensor, write_image
from ..io.preview import caption, grid, zoom, zoom_factor
from ..io.sources import Source, list_sources
from ..metrics import psnr
from ..models.checkpoints import FIT_KIND as KIND
from ..models.checkpoints import load_raw
from ..rng import sample_rng
from ..run import RunContext, rng_state, set_rng_state
from .config import FitConfig
from .data import build_dataset, list_face_pairs, load_validation, make_loader, split_pairs
from .step import FitModel, load_official

PREVIEW_MIN_TILE = 192  # px: previews enlarge (nearest) smaller crops to at least this
PREVIEW_COLUMNS = ("face HQ", "real LQ", "reconstruction", "embedding on a natural")


@dataclass
class FitResult:
    """What a run did. ``failures`` are ``{"path", "reason"}`` for images skipped or unreadable."""

    out: Path
    start_step: int
    steps: int
    seconds: float
    samples_per_s: float
    train: dict[str, float] = field(default_factory=dict)
    val: dict[str, float] = field(default_factory=dict)
    checkpoints: list[str] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    n_train_pairs: int = 0
    n_val_pairs: int = 0
    n_natural: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "steps": self.steps,
            "resumed_from": self.start_step,
            "seconds": round(self.seconds, 2),
            "samples_per_s": round(self.samples_per_s, 2),
            "train_pairs": self.n_train_pairs,
            "val_pairs": self.n_val_pairs,
            "natural_images": self.n_natural,
            "last_train": {k: round(v, 5) for k, v in self.train.items()},
            "last_val": {k: round(v, 5) for k, v in self.val.items()},
            "last_checkpoint": self.checkpoints[-1] if self.checkpoints else None,
            "skipped_images": len(self.failures),
        }


class Fitter:
    """One fit-degradation run (see the module docstring). Build it, then call :meth:`fit`."""

    def __init__(
        self,
        cfg: FitConfig,
        pairs: str | Path,
        natural: str | Path | list[str | Path],
        out: str | Path,
        *,
        val_pairs: str | Path | None = None,
        device: str = "auto",
        resume: bool = False,
        from_official: str | Path | None = None,
        user_presets: dict[str, Any] | None = None,
    ) -> None:
        self.cfg, self.out = cfg, Path(out)
        last = self.out / "last.pt"
        if resume and not last.is_file():
            raise FileNotFoundError(f"{last}: nothing to resume (no last.pt in the run folder)")
        if not resume and last.is_file():
            raise FileExistsError(
                f"{self.out} already holds a run (last.pt); pass --resume or choose another --out"
            )
        # rank, device (cuda:LOCAL_RANK), bf16 on CUDA, channels_last, cudnn.benchmark, the group
        self.ctx = RunContext.from_env(
            device, cfg.precision, channels_last=cfg.channels_last, seed=cfg.seed
        ).join()
        self.rank, self.world, self.device = self.ctx.rank, self.ctx.world, self.ctx.device
        self.folder = self.ctx.folder(self.out)
        try:
            all_pairs, self.failures = list_face_pairs(pairs)
            if val_pairs is not None:
                self.train_pairs, self.val_pairs = all_pairs, list_face_pairs(val_pairs)[0]
            else:
                self.train_pairs, self.val_pairs = split_pairs(all_pairs, cfg.data.val_fraction, cfg.seed)
            self.naturals: list[Source] = list_sources(natural if isinstance(natural, list) else [natural])
            self.dataset = build_dataset(
                self.train_pairs,
                self.naturals,
                cfg.data,
                crop=cfg.crop,
                seed=cfg.seed,
                length=cfg.steps * cfg.batch * self.world,
                user_presets=user_presets,
                interp_quirk=cfg.interp_quirk,
            )
            self.model = FitModel(cfg, ctx=self.ctx)  # WeightsMissingError surfaces here
            self.step = 0
            if resume:
                self.load(last)
            elif from_official is not None:
                for path in load_official(self.model.nets, str(from_official)):
                    log.info("initialised from %s", path)
            self.val_batch = self._prepare_validation() if self.rank == 0 else None
            self._seen_bad = {f["path"] for f in self.failures}
            self.metrics = self.folder.metrics()  # JSONL + TensorBoard (when installed), rank 0 only
        except BaseException:  # the process group must not outlive a run that could not start
            self.ctx.leave()
            raise

    # ------------------------------------------------------------------ setup
    def _prepare_validation(self) -> dict[str, Any] | None:
        pairs = self.val_pairs[: self.cfg.data.val_max]
        if not pairs:
            log.warning(
                "no held-out face pairs: validation is skipped (set data.val_fraction or --val-pairs)"
            )
            return None
        imgs, failures = load_validation(pairs, self.naturals, self.cfg.data, self.cfg.crop)
        self.failures += failures
        if not imgs:
            return None
        # a synthetic LQ of each held-out HQ, degraded with the matched preset (fixed per key), to
        # measure how far the real embedding sits from synthetic ones
        syn = [
            self.dataset.matched_part(hq, hq, sample_rng(self.cfg.seed, "val", key))[0]
            for hq, key in zip(imgs["face_hq"], imgs["key"], strict=True)
        ]
        batch = {k: to_tensor(v) for k, v in imgs.items() if k != "key"}
        batch["face_syn_lq"] = to_tensor(np.stack(syn))
        batch["key"] = imgs["key"]
        return batch

    # ------------------------------------------------------------------ the loop
    def fit(self, show_progress: bool = True) -> FitResult:
        """Train from ``self.step`` to ``cfg.steps``; returns a :class:`FitResult`."""
        cfg, start = self.cfg, self.step
        if self.rank == 0:
            self._prepare_out(start)
        loader = make_loader(
            self.dataset,
            start=start,
            end=cfg.steps,
            batch=cfg.batch,
            rank=self.rank,
            world=self.world,
            workers=cfg.data.workers,
        )
        train: dict[str, float] = {}
        val: dict[str, float] = {}
        checkpoints: list[str] = []
        t0 = time.perf_counter()
        bar = (
            progress("fit-degradation", cfg.steps - start, unit="step")
            if show_progress and self.rank == 0
            else None
        )
        advance = bar.__enter__() if bar is not None else (lambda n=1, **f: None)
        try:
            for batch in loader:
                self._note_failures(batch["errors"])
                losses = self.model.train_step(batch, self.step)
                self.step += 1
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    train = self._mean_over_ranks(losses)
                    self._log({"split": "train", "step": self.step, **train})
                advance(
                    1,
                    g=train.get("g_total", float("nan")),
                    d=train.get("d_loss", float("nan")),
                    recon=train.get("recon_l1", float("nan")),
                )
                if self.step % cfg.val_every == 0 or self.step == cfg.steps:
                    val = self.validate() or val
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                    checkpoints.append(str(self.save(keep=self.step % cfg.checkpoint_every == 0)))
        except BaseException as err:  # Ctrl-C, or any failure: keep what was learnt
            if self.step > start:
                self._save_after(err)
            raise
        finally:
            if bar is not None:
                bar.__exit__(None, None, None)
            self.metrics.flush()
        seconds = time.perf_counter() - t0
        self._gather_failures()
        result = FitResult(
            out=self.out,
            start_step=start,
            steps=self.step,
            seconds=seconds,
            samples_per_s=(self.step - start) * cfg.batch * self.world / max(seconds, 1e-9),
            train=train,
            val=val,
            checkpoints=checkpoints,
            failures=list(self.failures),
            n_train_pairs=len(self.train_pairs),
            n_val_pairs=len(self.val_pairs),
            n_natural=len(self.naturals),
        )
        self.folder.write_json(
            "report.json", {**result.summary(), "failures": result.failures, "runtime": self.ctx.describe()}
        )
        return result

    def _prepare_out(self, start: int) -> None:
        self.folder.write_json("config.json", self.cfg.model_dump(mode="json"))
        self.metrics.keep_until(start)  # drop what was logged after the checkpoint we resume from

    def _mean_over_ranks(self, losses: dict[str, torch.Tensor]) -> dict[str, float]:
        """Losses as floats, averaged over ranks under torchrun (every rank logs at the same steps)."""
        return self.ctx.mean_over_ranks(losses)

    def _gather_failures(self) -> None:
        # each rank only sees the bad files of its own samples
        if self.ctx.distributed:
            self._note_failures([f for part in self.ctx.gather(self.failures) for f in (part or [])])

    def _note_failures(self, errors: list[dict[str, str]]) -> None:
        for e in errors:
            if e["path"] not in self._seen_bad:
                self._seen_bad.add(e["path"])
                self.failures.append(e)
                if self.rank == 0:
                    log.warning("skipped unreadable image %s: %s", e["path"], e["reason"])

    def _log(self, record: dict[str, Any]) -> None:
        self.metrics.write(record)

    # ------------------------------------------------------------------ validation
    def validate(self) -> dict[str, float]:
        """Held-out metrics (rank 0): reconstruction L1 (on [-1, 1]) and PSNR (dB, uint8) of
        G(D(hq, real lq), E(hq)) vs the real LQ; L1 between the real and the synthetic embedding;
        writes ``previews/step_N.png``: HQ | real LQ | reconstruction | the embedding on a natural,
        one row per held-out pair, enlarged by nearest neighbour to at least PREVIEW_MIN_TILE px (a
        64-px crop would show no blur or block) and captioned under the first row."""
        b = self.val_batch
        if self.rank != 0 or b is None:
            return {}
        recon, z_real = self.model.reconstruct(b["face_hq"], b["face_lq"])
        z_syn = self.model.embed(b["face_hq"], b["face_syn_lq"])
        lq = b["face_lq"].to(recon.device)
        lq_u8, recon_u8 = from_tensor(b["face_lq"]), from_tensor(recon)
        metrics = {
            "recon_l1": float((recon - lq).abs().mean()),
            "psnr": psnr(recon_u8, lq_u8, y=False, equal=100.0),
            "emb_gap": float((z_real - z_syn).abs().mean()),
        }
        self._log({"split": "val", "step": self.step, **metrics})
        k = min(self.cfg.preview_rows, len(b["key"]))
        nat_recon, _ = self.model.reconstruct(b["face_hq"][:k], b["face_lq"][:k], content=b["nat_hq"][:k])
        cols = [from_tensor(b["face_hq"][:k]), lq_u8[:k], recon_u8[:k], from_tensor(nat_recon)]
        f = zoom_factor(min(cols[0].shape[1:3]), PREVIEW_MIN_TILE)
        rows = [[zoom(c[i], f) for c in cols] for i in range(k)]
        rows[0] = [caption(t, text) for t, text in zip(rows[0], PREVIEW_COLUMNS, strict=True)]
        write_image(self.out / "previews" / f"step_{self.step:07d}.png", grid(rows))
        return metrics

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, Any]:
        """The checkpoint payload: networks (arch, hparams, weights), optimisers, step, RNG states."""
        return {
            "kind": KIND,
            "redegkit_version": __version__,
            "step": self.step,
            "config": self.cfg.model_dump(mode="json"),
            **self.model.state_dict(),
            "rng": rng_state(),
            "failures": list(self.failures),
        }

    def _save_after(self, err: BaseException) -> None:
        """``last.pt`` after an interrupt or a failure, so that ``--resume`` continues from it.

        It holds ``self.step``, the last finished step (a failure inside a step may have left that
        step's first optimiser update in the weights). A failure of the save itself is logged and
        the original error is the one that propagates.
        """
        interrupted = isinstance(err, KeyboardInterrupt)
        try:
            # A failure may be one rank's alone: the others would never reach the barrier.
            self.save(keep=False, sync=interrupted)
        except Exception as save_err:
            log.error("could not save %s after the error: %s", self.out / "last.pt", save_err)
            return
        if not interrupted and self.rank == 0:
            log.error(
                "fit-degradation stopped after step %d: %s: %s. %s holds step %d; fix the cause and "
                "continue with --resume",
                self.step,
                type(err).__name__,
                err,
                self.out / "last.pt",
                self.step,
            )

    def save(self, keep: bool = True, sync: bool = True) -> Path:
        """Write ``last.pt`` atomically (rank 0); with ``keep``, also ``checkpoints/step_N.pt``.
        ``sync``: under torchrun, wait for every rank afterwards."""
        last = (
            self.folder.save_checkpoint("last.pt", self.state()) if self.rank == 0 else self.out / "last.pt"
        )
        if self.rank == 0:
            if keep:
                kept = self.out / "checkpoints" / f"step_{self.step:07d}.pt"
                atomic_copy(last, kept)  # a hard link costs no space; last.pt is replaced by rename
                last = kept
        if sync:
            self.ctx.barrier()
        return last

    def load(self, path: Path) -> None:
        """Restore networks, optimisers, step, failures and RNG states from a checkpoint of this run."""
        state = load_raw(path, map_location="cpu")
        if state.get("kind") != KIND:
            raise ValueError(f"{path}: not a fit-degradation checkpoint")
        self.model.load_state_dict(state, str(path))
        self.step = int(state["step"])
        self.failures = list(state.get("failures", []))
        set_rng_state(state["rng"])


def fit_degradation(
    cfg: FitConfig,
    pairs: str | Path,
    natural: str | Path | list[str | Path],
    out: str | Path,
    *,
    val_pairs: str | Path | None = None,
    device: str = "auto",
    resume: bool = False,
    from_official: str | Path | None = None,
    user_presets: dict[str, Any] | None = None,
    show_progress: bool = True,
) -> FitResult:
    """Fit DegNet, SynNet (E, G) and the discriminator on face pairs and natural HQ images.

    ``pairs``: a folder with ``hq/`` + ``lq/`` or a ``pairs.jsonl`` manifest; ``natural``: any image
    source(s). Writes the run folder ``out``; see :class:`Fitter`. Raises WeightsMissingError when the
    perceptual loss is on and VGG19 weights are missing.
    """
    fitter = None
    try:
        fitter = Fitter(
            cfg,
            pairs,
            natural,
            out,
            val_pairs=val_pairs,
            device=device,
            resume=resume,
            from_official=from_official,
            user_presets=user_presets,
        )
        return fitter.fit(show_progress=show_progress)
    finally:
        if fitter is not None:
            fitter.metrics.close()
            fitter.ctx.leave()  # the process group, if this run created it
