"""Everything ``train-sr`` needs besides the loop: networks, optimisers, checkpoint state.

Device, precision and the process group come from :class:`redegkit.run.RunContext`.

The training state is ONE plain dict (``kind = "train_sr_state"``) saved atomically as
``OUT/checkpoints/last.pt`` and, every ``ckpt_every`` steps, ``step-NNNNNNN.pt``. It holds the
generator, its EMA and the discriminator (each as ``{arch, hparams, state_dict}``), both
optimisers and schedulers, the step, the config and RNG states. The generators are also exported
beside it as ``OUT/net_g.pt`` and ``OUT/net_g_ema.pt`` (plain redegkit checkpoints for
``redeg upscale`` and ``load_checkpoint``).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from ..console import log
from ..io.atomic import atomic_copy
from ..models.checkpoints import (
    CheckpointError,
    arch_of,
    hparams_of,
    load_checkpoint,
    load_raw,
    save_checkpoint,
)
from ..models.discriminators import UNetDiscriminatorSN
from ..models.rrdb import RRDBNet
from ..run import rng_state, set_rng_state
from .config import TrainSRConfig
from .upscale import TRAIN_STATE_KIND, load_sr_model


def build_generator(cfg: TrainSRConfig) -> RRDBNet:
    """A fresh RRDBNet, or the one named by ``cfg.init`` (ours, F2N-ESRGAN or Real-ESRGAN)."""
    m = cfg.model
    if cfg.init is None:
        return RRDBNet(
            num_feat=m.num_feat,
            num_block=m.num_block,
            num_grow_ch=m.num_grow_ch,
            scale=m.scale,
            input_range=m.input_range,
            residual=m.residual,
        )
    g = load_sr_model(cfg.init, cfg.init_input_range)
    if g.residual != m.residual:
        raise CheckpointError(
            f"{cfg.init}: a generator with residual = {str(g.residual).lower()}, but the recipe sets "
            f"model.residual = {str(m.residual).lower()}"
        )
    if g.scale != m.scale:
        raise CheckpointError(
            f"{cfg.init}: an x{g.scale} generator, but the recipe trains x{m.scale} (model.scale)"
        )
    log.info("generator initialised from %s (%s, input range %s)", cfg.init, g.hparams, g.input_range)
    return g.train()


def build_discriminator(cfg: TrainSRConfig) -> UNetDiscriminatorSN:
    if cfg.init_d is not None:
        d = load_checkpoint(cfg.init_d, arch=UNetDiscriminatorSN.arch)
        return d.train()  # type: ignore[return-value]
    return UNetDiscriminatorSN(num_feat=cfg.model.d_num_feat, skip_connection=cfg.model.d_skip_connection)


ModuleT = TypeVar("ModuleT", bound=nn.Module)


def make_ema(g: ModuleT) -> ModuleT:
    ema = copy.deepcopy(g).eval()
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(ema: nn.Module, g: nn.Module, decay: float) -> None:
    """ema = decay * ema + (1 - decay) * g, for every parameter (fused foreach on GPU)."""
    e: list[torch.Tensor] = list(ema.parameters())
    p = [x.detach() for x in g.parameters()]
    torch._foreach_lerp_(e, p, 1.0 - decay)
    for be, bg in zip(ema.buffers(), g.buffers(), strict=True):
        be.copy_(bg)


def make_adam(
    params, lr: float, betas: tuple[float, float], device: torch.device, fused: bool = True
) -> torch.optim.Adam:
    """Adam; fused on CUDA (one kernel for all parameters, no host sync) unless ``fused=False``
    (PyTorch's default implementation, for baselines); foreach on CPU."""
    if device.type == "cuda":
        return (
            torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
            if fused
            else torch.optim.Adam(params, lr=lr, betas=betas)
        )
    return torch.optim.Adam(params, lr=lr, betas=betas, foreach=True)


def _net(m: nn.Module) -> dict[str, Any]:
    return {
        "arch": arch_of(m),
        "hparams": hparams_of(m),
        "state_dict": {k: v.detach().cpu() for k, v in m.state_dict().items()},
    }


def checkpoint_dir(out: Path) -> Path:
    return out / "checkpoints"


def save_state(
    out: Path,
    step: int,
    cfg: TrainSRConfig,
    nets: dict[str, nn.Module],
    opts: dict[str, Any],
    extra: dict[str, Any],
    numbered: bool,
) -> Path:
    """Write ``last.pt`` (and ``step-N.pt`` when ``numbered``) plus the generator exports."""
    state = {
        "kind": TRAIN_STATE_KIND,
        "step": step,
        "config": cfg.model_dump(mode="json"),
        **{name: _net(m) for name, m in nets.items()},
        **{name: o.state_dict() for name, o in opts.items() if o is not None},
        "rng": rng_state(),
        **extra,
    }
    ckdir = checkpoint_dir(out)
    last = save_checkpoint(ckdir / "last.pt", state)
    if numbered:  # the same bytes: a hard link (or copy), not a second torch.save
        atomic_copy(last, ckdir / f"step-{step:07d}.pt")
    save_checkpoint(out / "net_g.pt", nets["g"])
    if "g_ema" in nets:
        save_checkpoint(out / "net_g_ema.pt", nets["g_ema"])
    return last


def load_state(out: Path, nets: dict[str, nn.Module], opts: dict[str, Any]) -> dict[str, Any]:
    """Restore networks, optimisers, schedulers and RNG from ``OUT/checkpoints/last.pt``."""
    path = checkpoint_dir(out) / "last.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: nothing to resume (run without --resume first)")
    state = load_raw(path)
    if state.get("kind") != TRAIN_STATE_KIND:
        raise CheckpointError(f"{path}: not a train-sr state")
    for name, m in nets.items():
        saved = state[name]
        if saved["hparams"] != m.hparams:
            raise CheckpointError(f"{path}: {name} was {saved['hparams']}, the recipe builds {m.hparams}")
        m.load_state_dict(saved["state_dict"])
    for name, o in opts.items():
        if o is not None and name in state:
            o.load_state_dict(state[name])
    set_rng_state(state["rng"])
    return state
