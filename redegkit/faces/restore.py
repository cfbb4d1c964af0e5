"""GFPGAN face restoration through spandrel's ``GFPGANv1Clean`` architecture.

Files load as published (``{'params_ema': sd}`` preferred, else ``{'params': sd}``, or a bare
state dict) with ``torch.load(weights_only=True)``. Hyperparameters are read from the tensors, so
the official v1.3 / v1.4 files and smaller test networks of the same architecture load through
the same path, strictly.

Range convention: GFPGAN was trained on RGB in [-1, 1] (its own inference code normalises with
mean 0.5, std 0.5 and de-normalises with ``min_max=(-1, 1)``). spandrel's ``ImageModelDescriptor``
promises [0, 1] in and out, but its GFPGAN call passes the image to the network unchanged, so we
call the network module directly with [-1, 1] tensors (:func:`redegkit.io.images.to_tensor`).

Determinism: the StyleGAN2 decoder injects noise. With ``randomize_noise=False`` it uses the
fixed noise maps stored in the checkpoint, so the same face gives the same output on every run
and in every batch.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io.images import from_tensor
from ..models.checkpoints import CheckpointError, StateDict, load_raw, load_state_strict, unwrap_state_dict
from ..run import RunContext, pick_device
from .align import FACE_SIZE

# restorer names on the command line -> manifest entries
GFPGAN_NAMES = {"gfpgan": "gfpgan-v1.4", "gfpgan-v1.4": "gfpgan-v1.4", "gfpgan-v1.3": "gfpgan-v1.3"}
ARCH = "GFPGANv1Clean"


def _count(sd: StateDict, pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in sd if (m := rx.fullmatch(k))})


def detect_gfpgan(sd: StateDict) -> dict[str, Any] | None:
    """Hyperparameters of a ``GFPGANv1Clean`` state dict, or None if the keys are not GFPGAN's."""
    need = (
        "toRGB.0.weight",
        "final_linear.weight",
        "conv_body_first.weight",
        "stylegan_decoder.style_mlp.1.weight",
        "stylegan_decoder.constant_input.weight",
        "condition_scale.0.0.weight",
        "condition_scale.0.2.weight",
    )
    if not all(k in sd for k in need):
        return None
    # number of down-sampling ResBlocks = log2(out_size) - 2
    log_size = _count(sd, r"conv_body_down\.(\d+)\.conv1\.weight") + 2
    num_style_feat = int(sd["stylegan_decoder.style_mlp.1.weight"].shape[0])
    # style MLP = [NormStyleCode, (Linear, LeakyReLU) x num_mlp]: Linear layers sit at odd indices
    num_mlp = _count(sd, r"stylegan_decoder\.style_mlp\.(\d+)\.weight")
    # decoder channels at 4 px = 512 * narrow (ConstantInput weight [1, C, 4, 4])
    narrow = int(sd["stylegan_decoder.constant_input.weight"].shape[1]) / 512
    channel_multiplier: float = 2
    if log_size >= 6:  # decoder channels at 64 px = 256 * multiplier * narrow (to_rgbs.3 reads them)
        c64 = int(sd["stylegan_decoder.to_rgbs.3.modulated_conv.weight"].shape[2])
        channel_multiplier = c64 / (256 * narrow)
        if abs(channel_multiplier - round(channel_multiplier)) < 1e-6:
            channel_multiplier = int(round(channel_multiplier))
    # one latent per decoder layer (different_w) or one shared latent
    different_w = int(sd["final_linear.weight"].shape[0]) == (2 * log_size - 2) * num_style_feat
    # SFT on half the channels: the scale branch outputs as many channels as it takes in
    sft_half = sd["condition_scale.0.2.weight"].shape[0] == sd["condition_scale.0.0.weight"].shape[0]
    return {
        "out_size": 2**log_size,
        "num_style_feat": num_style_feat,
        "channel_multiplier": channel_multiplier,
        "num_mlp": num_mlp,
        "narrow": narrow,
        "different_w": bool(different_w),
        "sft_half": bool(sft_half),
        "input_is_latent": True,  # not visible in the keys; True for every published GFPGAN-clean model
    }


def build_gfpgan(**hparams: Any) -> torch.nn.Module:
    """spandrel's GFPGANv1Clean with the given hyperparameters (random weights)."""
    from spandrel.architectures.GFPGAN import GFPGAN

    return GFPGAN(**hparams)


class GFPGANRestorer:
    """A loaded GFPGAN; :meth:`restore` maps aligned 512 LQ faces to pseudo-HQ faces."""

    def __init__(
        self, path: str | Path, *, device: str = "cpu", batch_size: int = 0, name: str | None = None
    ):
        from ..weights import KNOWN, sha256_file

        self.path = Path(path)
        obj = load_raw(self.path)
        sd, self.source = unwrap_state_dict(obj, str(self.path))
        hp = detect_gfpgan(sd)
        if hp is None:
            raise CheckpointError(
                f"{self.path}: not a GFPGAN (v1.2/v1.3/v1.4 'clean') state dict; first keys: "
                f"{', '.join(list(sd)[:5])}"
            )
        if hp["out_size"] != FACE_SIZE:
            raise CheckpointError(
                f"{self.path}: GFPGAN for {hp['out_size']} px faces; pseudo-hq needs {FACE_SIZE}"
            )
        model = build_gfpgan(**hp)
        load_state_strict(model, sd, str(self.path))
        self.hparams = hp
        self.device = pick_device(device)
        # fp32 (no autocast: the restored faces are the fit's targets); channels_last on CUDA
        self.ctx = RunContext.local(self.device, "fp32")
        self.model = model.eval()
        self.ctx.place(self.model)
        self.batch_size = int(batch_size) if batch_size > 0 else (8 if self.device.type == "cuda" else 2)
        self.sha256 = sha256_file(self.path)
        known = [w.name for w in KNOWN.values() if w.sha256 == self.sha256]
        if known:
            self.name = known[0]
        elif name:  # asked for by manifest name, but the file is not the published one
            self.name = f"{name} (file differs from the published one)"
        else:
            self.name = f"gfpgan:{self.path.name}"

    @torch.inference_mode()
    def restore(self, faces: np.ndarray | list[np.ndarray]) -> list[np.ndarray]:
        """Aligned LQ faces (RGB uint8 512x512x3 each, or an Nx512x512x3 array) -> restored faces,
        same shape and dtype, in order. Runs in batches of :attr:`batch_size`."""
        arr = np.stack(list(faces)) if isinstance(faces, list) else np.asarray(faces)
        if arr.ndim != 4 or arr.shape[1:] != (FACE_SIZE, FACE_SIZE, 3) or arr.dtype != np.uint8:
            raise ValueError(
                f"expected uint8 N x {FACE_SIZE} x {FACE_SIZE} x 3 faces, got {arr.dtype} {arr.shape}"
            )
        out: list[np.ndarray] = []
        for i in range(0, len(arr), self.batch_size):
            x8 = torch.from_numpy(np.ascontiguousarray(arr[i : i + self.batch_size].transpose(0, 3, 1, 2)))
            x = self.ctx.to_device(x8)  # uint8 -> [-1, 1] on the device, NCHW, RGB
            with self.ctx.autocast():
                y = self.model(x, return_rgb=False, randomize_noise=False)[0]
            out.extend(list(from_tensor(y)))
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "arch": ARCH,
            "weights": str(self.path),
            "sha256": self.sha256,
            "state_dict": self.source,
            "hparams": self.hparams,
            "device": str(self.device),
            "noise": "fixed (stored noise maps)",
        }


def resolve_restorer_path(restorer: str, weights: str | Path | None = None) -> tuple[Path, str | None]:
    """``gfpgan`` / ``gfpgan-v1.4`` / ``gfpgan-v1.3`` / a file path -> (file, manifest name or None).

    ``weights`` is an explicit file for a named restorer. A named restorer without its file raises
    :class:`~redegkit.weights.WeightsMissingError` with the install instructions.
    """
    from ..weights import resolve

    if restorer in GFPGAN_NAMES:
        entry = GFPGAN_NAMES[restorer]
        return resolve(entry, weights), entry
    p = Path(weights or restorer).expanduser()
    if not p.is_file():
        raise FileNotFoundError(
            f"{restorer}: not a restorer name ({', '.join(GFPGAN_NAMES)}) nor an existing weight file"
        )
    return p, None


@functools.lru_cache(maxsize=2)
def _load_cached(path: str, device: str, batch_size: int, name: str | None, mtime_ns: int) -> GFPGANRestorer:
    return GFPGANRestorer(path, device=device, batch_size=batch_size, name=name)


def load_restorer(
    restorer: str = "gfpgan", weights: str | Path | None = None, *, device: str = "auto", batch_size: int = 0
) -> GFPGANRestorer:
    """Resolve and load a restorer once per process (cached by file, device and batch size)."""
    path, entry = resolve_restorer_path(restorer, weights)
    return _load_cached(
        str(path.resolve()),
        RunContext.from_env(device).device,
        int(batch_size),
        entry,
        path.stat().st_mtime_ns,
    )
