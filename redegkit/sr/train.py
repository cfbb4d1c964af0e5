"""``redeg train-sr``: F2N-ESRGAN training (RRDBNet + U-Net SN discriminator) on WebDataset shards.

One step (:class:`redegkit.sr.step.GANStep`), in order (as Real-ESRGAN / the reference):
1. G step: SR = G(LQ); L1 against the (USM-sharpened) HQ, VGG19 perceptual + style, and in the
   GAN phase the vanilla GAN loss through D (whose parameters are frozen for this step).
2. EMA update of G.
3. D step (GAN phase only): BCE on D(HQ) as real and D(SR.detach()) as fake, in one forward.

The first ``pretrain_steps`` steps are the L1-only "net" phase. On CUDA the step runs under bf16
autocast with channels_last tensors, fused Adam and no host synchronisation: losses are summed on
the device and read only every ``log_every`` steps. Under ``torchrun`` G and D are wrapped in DDP.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..console import log
from ..io.images import write_image
from ..io.preview import sr_preview_grid
from ..metrics import psnr, ssim
from ..models.rrdb import RRDBNet
from ..run import RunContext
from .config import TrainSRConfig
from .data import TrainStream, load_val_set
from .state import build_discriminator, build_generator, load_state, make_adam, make_ema, save_state
from .step import GANStep, wrap_for_training
from .upscale import upscale_image

ProgressFn = Callable[..., None]


@dataclass
class TrainResult:
    out: str
    step: int
    start_step: int
    seconds: float
    samples_per_s: float
    corrupt_samples: int
    last_losses: dict[str, float] = field(default_factory=dict)
    last_val: dict[str, float] = field(default_factory=dict)
    checkpoint: str = ""


def validate(
    g_eval: RRDBNet, val_set, cfg: TrainSRConfig, ctx: RunContext, out: Path, step: int
) -> dict[str, float]:
    """Upscale the held-out images with ``g_eval``; Y-PSNR/SSIM (border = scale) and a preview grid."""
    scale = cfg.model.scale
    psnrs: list[float] = []
    ssims: list[float] = []
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
    for _name, lq, hq in val_set:
        sr = upscale_image(g_eval, lq, tile=cfg.val_tile, ctx=ctx)
        if hq is not None:
            psnrs.append(psnr(sr, hq, border=scale))
            if min(hq.shape[:2]) - 2 * scale >= 11:
                ssims.append(ssim(sr, hq, border=scale))
        if len(rows) < 4:
            rows.append((lq, sr, hq))
    write_image(out / "previews" / f"step-{step:07d}.png", sr_preview_grid(rows))
    res: dict[str, float] = {"val_images": float(len(val_set))}
    if psnrs:
        finite = [p for p in psnrs if math.isfinite(p)]
        res["val_psnr_y"] = float(np.mean(finite)) if finite else float("inf")
    if ssims:
        res["val_ssim_y"] = float(np.mean(ssims))
    return res


def train_sr(
    cfg: TrainSRConfig,
    shards: str | Path | list[str],
    out_dir: str | Path,
    *,
    resume: bool = False,
    on_step: ProgressFn | None = None,
) -> TrainResult:
    """Train F2N-ESRGAN on (LQ, HQ) shards into ``out_dir``; see the module doc for one step.

    ``on_step(n, **fields)`` is called after every step (fields = latest logged losses).
    Raises ``WeightsMissingError`` when the perceptual loss is on and VGG19 weights are missing.
    """
    t_start = time.perf_counter()
    out = Path(out_dir)
    # rank, cuda:LOCAL_RANK, bf16 autocast, channels_last, cudnn.benchmark, the process group
    ctx = RunContext.from_env(
        cfg.device, "bf16" if cfg.amp else "fp32", channels_last=cfg.channels_last, seed=cfg.seed
    ).join()
    try:
        return _train(cfg, shards, out, ctx, resume, on_step, t_start)
    finally:
        ctx.leave()


def _train(
    cfg: TrainSRConfig,
    shards: str | Path | list[str],
    out: Path,
    ctx: RunContext,
    resume: bool,
    on_step: ProgressFn | None,
    t_start: float,
) -> TrainResult:
    t = _Trainer(cfg, shards, out, ctx, on_step)
    if resume:
        t.resume()
    t.run()
    seconds = time.perf_counter() - t_start
    return TrainResult(
        out=str(out),
        step=t.step,
        start_step=t.start_step,
        seconds=seconds,
        samples_per_s=(t.step - t.start_step) * cfg.batch * ctx.world / max(seconds, 1e-9),
        corrupt_samples=t.stream.corrupt,
        last_losses=t.last_losses,
        last_val=t.last_val,
        checkpoint=t.ckpt_path,
    )


class _Trainer:
    """One train-sr run: the networks, optimisers and data stream, and the loop in short steps."""

    def __init__(
        self, cfg: TrainSRConfig, shards: str | Path | list[str], out: Path, ctx: RunContext,
        on_step: ProgressFn | None,
    ) -> None:  # fmt: skip
        self.cfg, self.out, self.ctx, self.on_step = cfg, out, ctx, on_step
        ctx.seed_torch()  # network init (seed + rank); data randomness is seeded apart
        self.g, self.d = build_generator(cfg), build_discriminator(cfg)
        self.ema = make_ema(self.g) if cfg.optim.ema_decay > 0 else None
        self.percep = _perceptual(cfg)
        ctx.place(self.g, self.d, self.ema, self.percep)
        o, dev = cfg.optim, ctx.device
        assert dev is not None  # ctx.place raised for a context without a device
        self.opt_g = make_adam(self.g.parameters(), o.lr_g, o.betas, dev)
        self.opt_d = make_adam(self.d.parameters(), o.lr_d, o.betas, dev)
        sch = torch.optim.lr_scheduler.MultiStepLR
        self.sch_g = sch(self.opt_g, o.milestones, o.gamma) if o.milestones else None
        self.sch_d = sch(self.opt_d, o.milestones, o.gamma) if o.milestones else None
        self.nets = {"g": self.g, "d": self.d, **({"g_ema": self.ema} if self.ema is not None else {})}
        self.opts = {"opt_g": self.opt_g, "opt_d": self.opt_d, "sched_g": self.sch_g, "sched_d": self.sch_d}
        self.stream = TrainStream(shards, cfg.data, scale=cfg.model.scale, batch=cfg.batch, seed=cfg.seed,
                                  rank=ctx.rank, world=ctx.world, pin_memory=ctx.cuda)  # fmt: skip
        g_run, d_run, d_frozen = wrap_for_training(self.g, self.d, cfg, ctx)
        self.step_fn = GANStep(cfg, g=self.g, d=self.d, ema=self.ema, percep=self.percep, opt_g=self.opt_g,
                               opt_d=self.opt_d, ctx=ctx, g_run=g_run, d_run=d_run, d_frozen=d_frozen)  # fmt: skip
        self.val_set = (
            load_val_set(cfg.val, cfg.data, cfg.model.scale, cfg.val_max_images)
            if cfg.val and ctx.main
            else None
        )
        self.step = self.start_step = 0
        self.last_losses: dict[str, float] = {}
        self.last_val: dict[str, float] = {}
        self.last_rate, self.ckpt_path = 0.0, ""

    def resume(self) -> None:
        state = load_state(self.out, self.nets, self.opts)
        self.step = self.start_step = int(state["step"])
        saved = state.get("data", {})
        self.stream.corrupt_before = int(saved.get("corrupt", 0))
        now = {"batch": self.cfg.batch, "world": self.ctx.world, "num_workers": self.stream.num_workers}
        if any(saved.get(k) not in (None, v) for k, v in now.items()):
            log.warning(
                "resuming with a different batch/world/workers (%s, was %s): the data order "
                "will not match an uninterrupted run",
                now,
                saved,
            )

    def extra(self) -> dict[str, Any]:
        s = self.stream
        return {"data": {"corrupt": s.corrupt, "batch": self.cfg.batch, "world": self.ctx.world,
                         "num_workers": s.num_workers}}  # fmt: skip

    def run(self) -> None:
        cfg, ctx = self.cfg, self.ctx
        self.mlog = ctx.folder(self.out).metrics()  # JSONL + TensorBoard (when installed), rank 0 only
        self.mlog.keep_until(self.step)  # resuming: drop what was logged after the checkpoint
        self.sums: dict[str, torch.Tensor] = {}
        self.n_sum, self.t_log = 0, time.perf_counter()
        if self.on_step is not None and self.step:
            self.on_step(self.step)
        batches = self.stream.batches(self.step)
        try:
            while self.step < cfg.steps:
                self.train_step(*next(batches))
                self.after_step()
        except BaseException as err:  # Ctrl-C, or any failure: keep the last finished step for --resume
            self.save_after(err)
            raise
        finally:
            self.mlog.close()
            batches.close()

    def train_step(self, lq: torch.Tensor, hq: torch.Tensor) -> None:
        self.gan_phase = self.step >= self.cfg.pretrain_steps and self.cfg.loss.gan > 0
        losses = self.step_fn(self.step_fn.to_device(lq), self.step_fn.to_device(hq), self.gan_phase)
        for sch in (self.sch_g, self.sch_d):
            if sch is not None:
                sch.step()
        self.step += 1
        for k, v in losses.items():
            self.sums[k] = self.sums[k] + v.detach() if k in self.sums else v.detach().clone()
        self.n_sum += 1

    def after_step(self) -> None:
        """Log, report progress, validate and checkpoint, each at its own period."""
        cfg, step = self.cfg, self.step
        if step % cfg.log_every == 0 or step == cfg.steps:
            now = time.perf_counter()
            self.last_losses = {k: float(v) / self.n_sum for k, v in self.sums.items()}  # the only host sync
            self.last_rate = self.n_sum * cfg.batch * self.ctx.world / max(now - self.t_log, 1e-9)
            self.mlog.write({"step": step, "phase": "gan" if self.gan_phase else "net", **self.last_losses,
                             "samples_per_s": self.last_rate, "lr_g": self.opt_g.param_groups[0]["lr"],
                             "corrupt_samples": self.stream.corrupt})  # fmt: skip
            self.sums, self.n_sum, self.t_log = {}, 0, now
        if self.on_step is not None:
            self.on_step(1, **self.last_losses, samples_s=self.last_rate)
        if self.val_set is not None and (step % cfg.val_every == 0 or step == cfg.steps):
            g_eval = self.ema if self.ema is not None else self.g.eval()
            self.last_val = validate(g_eval, self.val_set, cfg, self.ctx, self.out, step)
            self.g.train()
            self.mlog.write({"step": step, **self.last_val})
        if (step % cfg.ckpt_every == 0 or step == cfg.steps) and self.ctx.main:
            path = save_state(
                self.out, step, cfg, self.nets, self.opts, self.extra(), step % cfg.ckpt_every == 0
            )
            self.ckpt_path = str(path)

    def save_after(self, err: BaseException) -> None:
        """After a failure or Ctrl-C: save the last finished step (rank 0), and say so."""
        step = self.step
        if not self.ctx.main or step <= self.start_step:
            return
        try:
            saved = save_state(self.out, step, self.cfg, self.nets, self.opts, self.extra(), numbered=False)
        except Exception as save_err:
            log.error("could not save the training state after the error: %s", save_err)
            return
        if isinstance(err, KeyboardInterrupt):
            log.warning("interrupted at step %d; state saved, continue with --resume", step)
        else:
            log.error(
                "train-sr stopped after step %d: %s: %s. %s holds step %d; fix the cause and "
                "continue with --resume",
                step,
                type(err).__name__,
                err,
                saved,
                step,
            )


def _perceptual(cfg: TrainSRConfig) -> torch.nn.Module | None:
    if cfg.loss.perceptual <= 0 and cfg.loss.style <= 0:
        return None
    from ..models.perceptual import PerceptualLoss

    return PerceptualLoss(
        cfg.loss.perceptual_layers,
        cfg.loss.perceptual,
        cfg.loss.style,
        "l1",
        weights_path=cfg.loss.vgg_weights,
    )
