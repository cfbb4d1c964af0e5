"""One fitting step of ReDegNet: the networks, their optimisers, the generator and discriminator steps.

:class:`FitModel` knows nothing about files or data loading; :mod:`redegkit.fit.loop` feeds it
batches and saves its :meth:`FitModel.state_dict`. The benchmark drives it with random tensors.

Names: E = SynNetEncoder (``encoder``), G = SynNetGenerator (``generator``), D = DegNet (``degnet``),
S = ReDegSNDiscriminator (``discriminator``). Each network runs ONCE per step on a concatenated batch
(DegNet on the 3 pairs, E on both HQs, G on the 3 reconstructions): the same maths as calling them
three times, with a third of the kernel launches and one spectral-norm power iteration per step.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch
from torch import nn

from ..models.checkpoints import CheckpointError, arch_of, hparams_of, load_checkpoint, load_state_strict
from ..models.redeg import DegNet, ReDegSNDiscriminator, SynNetEncoder, SynNetGenerator
from ..rng import sample_rng
from ..run import RunContext
from .config import FitConfig
from .losses import (
    build_perceptual_loss,
    contrastive_loss,
    hinge_d_loss,
    hinge_g_loss,
    pixel_loss,
    same_degradation_loss,
)

NET_NAMES = ("degnet", "encoder", "generator", "discriminator")
G_SIDE = ("degnet", "encoder", "generator")
OFFICIAL_FILES = {
    "degnet": "net_deg_init.pth",
    "encoder": "net_synE_init.pth",
    "generator": "net_synG_init.pth",
    "discriminator": "net_synD_init.pth",
}


def build_networks(cfg: FitConfig, seed: int | None = None) -> dict[str, nn.Module]:
    """The four networks at ``size = cfg.crop``, initialised from ``seed`` (default ``cfg.seed``)
    without touching the global torch RNG."""
    m, size = cfg.model, cfg.crop
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed if seed is None else seed)
        return {
            "degnet": DegNet(size=size, style_dim=m.style_dim, width=m.width),
            "encoder": SynNetEncoder(size=size, width=m.width),
            "generator": SynNetGenerator(
                size=size, style_dim=m.style_dim, n_mlp=m.n_mlp, width=m.width, modconv=m.modconv
            ),
            "discriminator": ReDegSNDiscriminator(size=size, style_dim=m.style_dim, width=m.width),
        }


def load_official(nets: dict[str, nn.Module], folder: str) -> list[str]:
    """Initialise ``nets`` from the authors' ``net_*_init.pth`` files in ``folder`` (strict).

    Each file goes through :func:`redegkit.models.load_checkpoint` (architecture detected from the
    official keys); its hyperparameters must equal the recipe's (e.g. width 1, style_dim 512).
    Returns the files loaded. Raises FileNotFoundError / CheckpointError with the file named.
    """
    from pathlib import Path

    loaded = []
    for name, fname in OFFICIAL_FILES.items():
        path = Path(folder) / fname
        if not path.is_file():
            raise FileNotFoundError(f"{path}: official weights not found (--from-official expects {fname})")
        net = nets[name]
        src = load_checkpoint(path, arch=arch_of(net))
        theirs, ours = hparams_of(src), hparams_of(net)
        diff = {
            k: (theirs[k], ours[k])
            for k in ("size", "style_dim", "width")
            if k in theirs and theirs[k] != ours[k]
        }
        if diff:
            raise CheckpointError(
                f"{path}: file has "
                + ", ".join(f"{k}={a} but the recipe gives {b}" for k, (a, b) in diff.items())
            )
        load_state_strict(net, src.state_dict(), str(path))
        loaded.append(str(path))
    return loaded


def lr_factor(cfg: FitConfig, step: int) -> float:
    """Multiplier of ``cfg.lr`` at ``step`` (0-based): warm-up, then the schedule."""
    f = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    if cfg.lr_schedule == "multistep":
        f *= cfg.lr_gamma ** sum(step >= m for m in cfg.lr_milestones)
    elif cfg.lr_schedule == "cosine":
        f *= 0.5 * (1.0 + math.cos(math.pi * min(step, cfg.steps) / cfg.steps))
    return f


class FitModel:
    """Networks, optimisers and losses of one rank, with :meth:`train_step`.

    ``ctx`` (a :class:`~redegkit.run.RunContext`) gives the device, precision (bf16 autocast on
    CUDA, fp32 on the CPU), memory format and, under torchrun, DistributedDataParallel wrapping
    of all four networks (the context must have joined its process group). Without ``ctx`` the
    model runs in one process on ``device`` with ``cfg.precision``.
    ``random_vgg=True`` (benchmarks only) builds the perceptual loss with random VGG weights.
    """

    def __init__(
        self,
        cfg: FitConfig,
        device: torch.device | str = "cpu",
        *,
        ctx: RunContext | None = None,
        nets: dict[str, nn.Module] | None = None,
        random_vgg: bool = False,
    ) -> None:
        self.cfg = cfg
        self.ctx = ctx or RunContext.local(
            device, cfg.precision, channels_last=cfg.channels_last, seed=cfg.seed
        )
        self.device = self.ctx.device
        # Fails fast (WeightsMissingError) before anything else is built when VGG19 is missing.
        self.perceptual = build_perceptual_loss(
            cfg.loss, cfg.vgg_weights, reference_range_quirk=cfg.vgg_range_quirk, random_weights=random_vgg
        )
        if self.perceptual is not None:
            self.ctx.place(self.perceptual)
        self.nets = nets if nets is not None else build_networks(cfg)
        for net in self.nets.values():
            self.ctx.place(net)
            net.train()
        self.optims = {
            name: torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=cfg.betas)
            for name, net in self.nets.items()
        }
        # what forward passes call: DDP wrappers under torchrun (every parameter gets a gradient
        # each step, so no unused-parameter search)
        self.run = {name: self.ctx.ddp(net) for name, net in self.nets.items()}

    # ------------------------------------------------------------------ helpers
    def autocast(self) -> contextlib.AbstractContextManager:
        return self.ctx.autocast()

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        """Images to the device in the model's memory format; uint8 (loader batches) become float
        in [-1, 1] there, with the same mapping as :func:`redegkit.io.images.to_tensor`."""
        return self.ctx.to_device(x)

    def set_lr(self, step: int) -> float:
        lr = self.cfg.lr * lr_factor(self.cfg, step)
        for opt in self.optims.values():
            for g in opt.param_groups:
                g["lr"] = lr
        return lr

    def switch_at(self, step: int) -> bool:
        """Whether step ``step`` swaps the matched embeddings (p = switch_p, a function of the step)."""
        return bool(sample_rng(self.cfg.seed, "switch", step).random() < self.cfg.switch_p)

    def _clip_and_step(self, names: tuple[str, ...]) -> None:
        for name in names:
            if self.cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(self.nets[name].parameters(), self.cfg.grad_clip)
            self.optims[name].step()

    # ------------------------------------------------------------------ the step
    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        """One generator step then one discriminator step on ``batch`` (images [B, 3, crop, crop],
        uint8 or float in [-1, 1]: face_hq, face_lq, nat_hq, nat_lq, face_syn_lq). Returns detached
        0-dim losses (fp32, on the device; call ``.item()`` only when logging to avoid a sync per step)."""
        lr = self.set_lr(step)
        b = {k: self.to_device(batch[k]) for k in ("face_hq", "face_lq", "nat_hq", "nat_lq", "face_syn_lq")}
        losses, fake_real_face, z_real = self.generator_step(b, self.switch_at(step))
        losses.update(self.discriminator_step(b, fake_real_face, z_real))
        losses["lr"] = torch.tensor(lr)
        return losses

    def generator_step(
        self, b: dict[str, torch.Tensor], switch: bool
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """E, G and DegNet update. Returns (losses, fake_real_face [B,3,H,W], zR [B, style_dim])."""
        cfg = self.cfg.loss
        face_hq, face_lq, nat_hq, nat_lq, face_syn_lq = (
            b["face_hq"],
            b["face_lq"],
            b["nat_hq"],
            b["nat_lq"],
            b["face_syn_lq"],
        )
        n = face_hq.shape[0]
        s = self.nets["discriminator"]
        s.requires_grad_(False)  # S only judges here; the raw module (not DDP) keeps DDP's hooks idle
        with self.autocast():
            pairs = torch.cat(
                [
                    torch.cat([face_hq, face_lq], 1),
                    torch.cat([nat_hq, nat_lq], 1),
                    torch.cat([face_hq, face_syn_lq], 1),
                ]
            )
            z_real, z_nat, z_face = self.run["degnet"](pairs).float().chunk(3)
            feats = self.run["encoder"](torch.cat([face_hq, nat_hq]))
            content = [torch.cat([f[:n], f[n:], f[:n]]) for f in feats]  # cF, cN, cF
            # the switch: each matched image is rebuilt from the OTHER image's embedding
            z_gen = torch.cat([z_real, z_face, z_nat] if switch else [z_real, z_nat, z_face])
            fake = self.run["generator"](z_gen, content)
            fake_real_face = fake[:n]
            adv = s(fake_real_face, face_hq, z_real.detach())
        target = torch.cat([face_lq, nat_lq, face_syn_lq])
        out: dict[str, torch.Tensor] = {}
        out["pixel"] = pixel_loss(fake, target, cfg.pixel)  # mean over the three reconstructions
        total = out["pixel"]
        if self.perceptual is not None:
            with self.autocast():
                percep, style = self.perceptual(fake, target)
            out["perceptual"], out["style"] = percep, style / 3.0  # the reference divides style by 3 again
            total = total + percep + style / 3.0
        out["same_deg"] = same_degradation_loss(z_nat, z_face, cfg.same_degradation)
        out["contrastive"] = contrastive_loss(
            z_real, z_face, cfg.contrastive, cfg.contrastive_scale, cfg.contrastive_eps
        )
        out["g_gan"] = cfg.gan * hinge_g_loss(adv)
        total = total + out["same_deg"] + out["contrastive"] + out["g_gan"]
        for name in G_SIDE:
            self.optims[name].zero_grad(set_to_none=True)
        total.backward()
        self._clip_and_step(G_SIDE)
        s.requires_grad_(True)
        with torch.no_grad():
            out["recon_l1"] = (fake_real_face.float() - face_lq.float()).abs().mean()
            out["emb_gap"] = (z_real - z_face).abs().mean()
        out["g_total"] = total.detach()
        return {k: v.detach() for k, v in out.items()}, fake_real_face.detach(), z_real.detach()

    def discriminator_step(
        self, b: dict[str, torch.Tensor], fake_real_face: torch.Tensor, z_real: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """S update: hinge on (real face LQ | face HQ, zR) vs (G's reconstruction | face HQ, zR)."""
        face_hq, face_lq = b["face_hq"], b["face_lq"]
        self.optims["discriminator"].zero_grad(set_to_none=True)
        with self.autocast():
            logits = self.run["discriminator"](
                torch.cat([face_lq, fake_real_face.to(face_lq.dtype)]),
                torch.cat([face_hq, face_hq]),
                torch.cat([z_real, z_real]),
            ).float()
        real, fake = logits.chunk(2)
        loss = hinge_d_loss(real, fake)
        loss.backward()
        self._clip_and_step(("discriminator",))
        return {"d_loss": loss.detach(), "d_real": real.mean().detach(), "d_fake": fake.mean().detach()}

    # ------------------------------------------------------------------ inference helpers
    @torch.no_grad()
    def reconstruct(
        self, hq: torch.Tensor, lq: torch.Tensor, content: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Eval-mode G(D(hq, lq), E(content or hq)) -> (LQ [N,3,H,W] fp32 in [-1,1], z [N, D] fp32).

        Eval mode: spectral norm uses its stored vectors and does not update them, so validation
        never changes the training trajectory."""
        nets = self.nets
        modes = {k: v.training for k, v in nets.items()}
        for v in nets.values():
            v.eval()
        try:
            hq, lq = self.to_device(hq), self.to_device(lq)
            c = hq if content is None else self.to_device(content)
            with self.autocast():
                z = nets["degnet"](torch.cat([hq, lq], 1)).float()
                out = nets["generator"](z, nets["encoder"](c)).float()
            return out, z
        finally:
            for k, v in nets.items():
                v.train(modes[k])

    @torch.no_grad()
    def embed(self, hq: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        """Eval-mode DegNet embedding [N, style_dim] fp32."""
        net = self.nets["degnet"]
        was = net.training
        net.eval()
        try:
            with self.autocast():
                return net(torch.cat([self.to_device(hq), self.to_device(lq)], 1)).float()
        finally:
            net.train(was)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """``{"nets": {name: {arch, hparams, state_dict}}, "optims": {name: optimiser state}}`` on CPU."""
        nets = {
            name: {
                "arch": arch_of(net),
                "hparams": hparams_of(net),
                "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
            }
            for name, net in self.nets.items()
        }
        optims = {name: opt.state_dict() for name, opt in self.optims.items()}
        return {"nets": nets, "optims": optims}

    def load_state_dict(self, state: dict[str, Any], where: str = "checkpoint") -> None:
        for name, net in self.nets.items():
            entry = state["nets"][name]
            if entry["arch"] != net.arch:
                raise CheckpointError(f"{where}: {name} is a {entry['arch']!r}, expected {net.arch!r}")
            load_state_strict(net, entry["state_dict"], f"{where} [{name}]")
        for name, opt in self.optims.items():
            opt.load_state_dict(state["optims"][name])
