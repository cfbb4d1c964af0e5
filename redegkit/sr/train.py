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
    g_eval: torch.nn.Module, val_set, cfg: TrainSRConfig, ctx: RunContext, out: Path, step: int
) -> dict[str, float]:
    """Upscale the held-out images with ``g_eval``; Y-PSNR/SSIM (border = scale) and a preview grid."""
    scale = cfg.model.scale
    psnrs, ssims, rows = [], [], []
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
    dist, device, cuda = ctx, ctx.device, ctx.cuda
    ctx.seed_torch()  # network init (seed + rank); data randomness is seeded apart

    g = build_generator(cfg).to(device)
    d = build_discriminator(cfg).to(device)
    ema = make_ema(g) if cfg.optim.ema_decay > 0 else None
    percep = None
    if cfg.loss.perceptual > 0 or cfg.loss.style > 0:
        from ..models.perceptual import PerceptualLoss

        percep = PerceptualLoss(
            cfg.loss.perceptual_layers,
            cfg.loss.perceptual,
            cfg.loss.style,
            "l1",
            weights_path=cfg.loss.vgg_weights,
        ).to(device)
    ctx.place(g, d, ema, percep)
    o = cfg.optim
    opt_g = make_adam(g.parameters(), o.lr_g, o.betas, device)
    opt_d = make_adam(d.parameters(), o.lr_d, o.betas, device)
    sch_g = torch.optim.lr_scheduler.MultiStepLR(opt_g, o.milestones, o.gamma) if o.milestones else None
    sch_d = torch.optim.lr_scheduler.MultiStepLR(opt_d, o.milestones, o.gamma) if o.milestones else None
    nets = {"g": g, "d": d, **({"g_ema": ema} if ema is not None else {})}
    opts = {"opt_g": opt_g, "opt_d": opt_d, "sched_g": sch_g, "sched_d": sch_d}

    stream = TrainStream(
        shards,
        cfg.data,
        scale=cfg.model.scale,
        batch=cfg.batch,
        seed=cfg.seed,
        rank=dist.rank,
        world=dist.world,
        pin_memory=cuda,
    )
    step = 0
    if resume:
        state = load_state(out, nets, opts)
        step = int(state["step"])
        saved_data = state.get("data", {})
        stream.corrupt_before = int(saved_data.get("corrupt", 0))
        now = {"batch": cfg.batch, "world": dist.world, "num_workers": stream.num_workers}
        if any(saved_data.get(k) not in (None, v) for k, v in now.items()):
            log.warning(
                "resuming with a different batch/world/workers (%s, was %s): the data order "
                "will not match an uninterrupted run",
                now,
                saved_data,
            )
    start_step = step

    g_run, d_run, d_frozen = wrap_for_training(g, d, cfg, ctx)
    step_fn = GANStep(
        cfg,
        g=g,
        d=d,
        ema=ema,
        percep=percep,
        opt_g=opt_g,
        opt_d=opt_d,
        ctx=ctx,
        g_run=g_run,
        d_run=d_run,
        d_frozen=d_frozen,
    )

    val_set = (
        load_val_set(cfg.val, cfg.data, cfg.model.scale, cfg.val_max_images)
        if cfg.val and dist.main
        else None
    )
    mlog = ctx.folder(out).metrics()  # JSONL + TensorBoard (when installed), rank 0 only
    mlog.keep_until(step)  # resuming: drop what was logged after the checkpoint (rank 0's writer)
    sums: dict[str, torch.Tensor] = {}
    n_sum, t_log, last_losses, last_val, last_rate = 0, time.perf_counter(), {}, {}, 0.0
    ckpt_path = ""
    if on_step is not None and step:
        on_step(step)

    def extra() -> dict[str, Any]:
        return {
            "data": {
                "corrupt": stream.corrupt,
                "batch": cfg.batch,
                "world": dist.world,
                "num_workers": stream.num_workers,
            }
        }

    batches = stream.batches(step)
    try:
        while step < cfg.steps:
            lq, hq = next(batches)
            gan_phase = step >= cfg.pretrain_steps and cfg.loss.gan > 0
            losses = step_fn(step_fn.to_device(lq), step_fn.to_device(hq), gan_phase)
            for sch in (sch_g, sch_d):
                if sch is not None:
                    sch.step()
            step += 1

            for k, v in losses.items():
                sums[k] = sums[k] + v.detach() if k in sums else v.detach().clone()
            n_sum += 1
            if step % cfg.log_every == 0 or step == cfg.steps:
                now = time.perf_counter()
                last_losses = {k: float(v) / n_sum for k, v in sums.items()}  # the only host sync
                last_rate = n_sum * cfg.batch * dist.world / max(now - t_log, 1e-9)
                mlog.write(
                    {
                        "step": step,
                        "phase": "gan" if gan_phase else "net",
                        **last_losses,
                        "samples_per_s": last_rate,
                        "lr_g": opt_g.param_groups[0]["lr"],
                        "corrupt_samples": stream.corrupt,
                    }
                )
                sums, n_sum, t_log = {}, 0, now
            if on_step is not None:
                on_step(1, **last_losses, samples_s=last_rate)
            if val_set is not None and (step % cfg.val_every == 0 or step == cfg.steps):
                last_val = validate(ema if ema is not None else g.eval(), val_set, cfg, ctx, out, step)
                g.train()
                mlog.write({"step": step, **last_val})
            if step % cfg.ckpt_every == 0 or step == cfg.steps:
                if dist.main:
                    ckpt_path = str(
                        save_state(out, step, cfg, nets, opts, extra(), step % cfg.ckpt_every == 0)
                    )
    except BaseException as err:  # Ctrl-C, or any failure: keep the last finished step for --resume
        if dist.main and step > start_step:
            try:
                saved = save_state(out, step, cfg, nets, opts, extra(), numbered=False)
            except Exception as save_err:
                log.error("could not save the training state after the error: %s", save_err)
            else:
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
        raise
    finally:
        mlog.close()
        batches.close()
    seconds = time.perf_counter() - t_start
    return TrainResult(
        out=str(out),
        step=step,
        start_step=start_step,
        seconds=seconds,
        samples_per_s=(step - start_step) * cfg.batch * dist.world / max(seconds, 1e-9),
        corrupt_samples=stream.corrupt,
        last_losses=last_losses,
        last_val=last_val,
        checkpoint=ckpt_path,
    )
