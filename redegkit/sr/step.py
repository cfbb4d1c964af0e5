"""One F2N-ESRGAN training step on device tensors, shared by ``train_sr`` and the benchmark.

Order, as Real-ESRGAN / the reference: G step (L1 vs USM-sharpened HQ, VGG perceptual + style,
GAN through a frozen D in the GAN phase), EMA update of G, then the D step (real and fake in one
forward, so DDP reduces once). Nothing here reads a value back to the host.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ..run import RunContext
from .config import TrainSRConfig
from .losses import gan_loss, usm_sharpen
from .state import update_ema


def wrap_for_training(
    g: nn.Module, d: nn.Module, cfg: TrainSRConfig, ctx: RunContext
) -> tuple[nn.Module, nn.Module, nn.Module]:
    """``(g_run, d_run, d_frozen)``: DDP under torchrun, ``torch.compile`` when asked (on CUDA or
    on the CPU, where Inductor needs a C++ compiler; the CPU path is what the tests compare with eager).

    ``d_frozen`` is the unwrapped D used inside the G step (its parameters are frozen there,
    so it needs no DDP gradient reduction).
    """
    g_run, d_run = ctx.ddp(g), ctx.ddp(d)
    compile_ = cfg.compile
    if compile_:
        g_run, d_run = _compile(g_run), _compile(d_run)
    return g_run, d_run, (_compile(d) if compile_ else d)


def _compile(m: nn.Module) -> nn.Module:
    # torch.compile is typed as returning the callable it was given; a module gives an OptimizedModule
    return cast(nn.Module, torch.compile(m))


class GANStep:
    """Callable ``step(lq, hq, gan_phase) -> {loss name: 0-d device tensor}``; updates G, EMA, D."""

    def __init__(
        self,
        cfg: TrainSRConfig,
        *,
        g: nn.Module,
        d: nn.Module,
        ema: nn.Module | None,
        percep: nn.Module | None,
        opt_g: torch.optim.Optimizer,
        opt_d: torch.optim.Optimizer,
        ctx: RunContext,
        g_run: nn.Module | None = None,
        d_run: nn.Module | None = None,
        d_frozen: nn.Module | None = None,
    ) -> None:
        self.cfg, self.loss = cfg, cfg.loss
        self.g, self.d, self.ema, self.percep, self.opt_g, self.opt_d = g, d, ema, percep, opt_g, opt_d
        # `is None`, not `or`: a compiled module has no truth value (bool() calls len(), which raises)
        self.g_run = g_run if g_run is not None else g
        self.d_run = d_run if d_run is not None else d
        self.d_frozen = d_frozen if d_frozen is not None else d
        self.ctx = ctx  # device, bf16 autocast on CUDA, channels_last
        self.usm = set(cfg.loss.usm_targets)
        self.device = ctx.device

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        return self.ctx.to_device(x)

    def __call__(self, lq: torch.Tensor, hq: torch.Tensor, gan_phase: bool) -> dict[str, torch.Tensor]:
        lc, usm = self.loss, self.usm
        hq_usm = usm_sharpen(hq, lc.usm_weight, lc.usm_radius, lc.usm_threshold) if usm else hq

        # --- G step
        self.d.requires_grad_(False)
        with self.ctx.autocast():
            sr = self.g_run(lq)
            losses: dict[str, torch.Tensor] = {}
            if lc.l1 > 0:
                losses["l1"] = lc.l1 * F.l1_loss(sr.float(), (hq_usm if "l1" in usm else hq).float())
            if lc.mse > 0:  # the clean HQ itself: the term PSNR scores
                losses["mse"] = lc.mse * F.mse_loss(sr.float(), hq.float())
            if self.percep is not None:
                losses["percep"], losses["style"] = self.percep(sr, hq_usm if "perceptual" in usm else hq)
            if gan_phase:
                losses["g_gan"] = lc.gan * gan_loss(self.d_frozen(sr), True)
        if not losses:
            raise ValueError("no generator loss is on (l1, mse, perceptual, style and gan are all 0)")
        first, *rest = losses.values()
        total = sum(rest, first)
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        self.opt_g.step()
        if self.ema is not None:
            update_ema(self.ema, self.g, self.cfg.optim.ema_decay)

        # --- D step
        if gan_phase:
            self.d.requires_grad_(True)
            real = hq_usm if "gan" in usm else hq
            with self.ctx.autocast():
                logits = self.d_run(torch.cat([real, sr.detach()]))
            n = real.shape[0]
            losses["d"] = gan_loss(logits[:n], True) + gan_loss(logits[n:], False)
            self.opt_d.zero_grad(set_to_none=True)
            losses["d"].backward()
            self.opt_d.step()
        return losses
