"""Typed configuration of ``redeg train-sr`` (recipe table ``[train_sr]``) and ``redeg upscale``.

Defaults are the reference F2N-ESRGAN settings where the spec gives them; ``recipes/f2n-esrgan.toml``
spells them out and ``recipes/smoke.toml`` shrinks everything to run in seconds on a CPU.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..config import StrictModel

InputRange = Literal["[-1,1]", "[0,1]"]
ResizeMode = Literal["bilinear", "bicubic", "bilinear-aa", "bicubic-aa"]
UsmTarget = Literal["l1", "perceptual", "gan"]


def _default_resize_modes() -> list[ResizeMode]:
    return ["bilinear", "bicubic"]


def _default_usm_targets() -> list[UsmTarget]:
    return ["l1"]


class SRModelConfig(StrictModel):
    """RRDBNet generator and U-Net discriminator sizes."""

    scale: Literal[1, 2, 4] = Field(4, description="SR scale (x1 and x2 fold the input by pixel-unshuffle).")
    num_feat: int = Field(64, ge=1, description="RRDBNet width (64 for the official weights).")
    num_block: int = Field(23, ge=1, description="Number of RRDB blocks (23 for the official weights).")
    num_grow_ch: int = Field(32, ge=1, description="Dense growth channels (32 for the official weights).")
    input_range: InputRange = Field(
        "[0,1]",
        description="Range a new generator's weights work in: [0,1] (Real-ESRGAN's convention, so "
        "export-model is exact up to the border); an --init generator keeps its own (the official "
        "F2N-ESRGAN weights: [-1,1]).",
    )
    residual: bool = Field(
        False,
        description="Add the (bicubic-enlarged) input to the output: a fresh network starts near the "
        "identity (eval-sr's restorer); such a generator cannot be exported (export-model).",
    )
    d_num_feat: int = Field(64, ge=1, description="U-Net discriminator width.")
    d_skip_connection: bool = True


class SRDataConfig(StrictModel):
    """Training data: any WebDataset whose samples hold an LQ and an HQ image."""

    lq_key: str = Field("lq.png", description="Sample field of the LQ image.")
    hq_key: str = Field("hq.png", description="Sample field of the HQ image.")
    hq_crop: int = Field(256, ge=8, description="HQ patch size (multiple of the scale and of 8).")
    lq_resolution: Literal["auto", "low", "high"] = Field(
        "auto",
        description="'low': LQ is HQ/scale (redegkit shards); 'high': LQ has the HQ size and is resized "
        "to 1/scale after optional noise (the reference's input processing); 'auto': read the first sample.",
    )
    noise_prob: float = Field(
        0.4, ge=0, le=1, description="'high' LQ: probability of Gaussian noise before resizing."
    )
    noise_sigma_max: float = Field(
        0.2, ge=0, description="'high' LQ: sigma ~ U{0, 0.01, ..., max} on the [-1,1] scale."
    )
    resize_modes: list[ResizeMode] = Field(
        default_factory=_default_resize_modes,
        min_length=1,
        description="'high' LQ: interpolations to draw from when downscaling by 1/scale; bilinear/bicubic "
        "as the reference (no antialiasing), -aa: antialiased.",
    )
    augment: bool = Field(True, description="Random h-flip and 90-degree rotations, same for LQ and HQ.")
    shuffle_buffer: int = Field(1000, ge=0, description="Sample shuffle buffer per worker (0: off).")
    resampled: bool = Field(
        False,
        description="Each rank draws shards with replacement (multi-node DDP with uneven shard counts).",
    )
    num_workers: int = Field(4, ge=0, description="DataLoader workers per rank (capped by shards per rank).")
    segment_steps: int = Field(
        1000,
        ge=1,
        description="The stream is reseeded every this many steps; --resume replays at most one "
        "segment to continue exactly.",
    )


class SRLossConfig(StrictModel):
    """Loss weights (0 turns a term off)."""

    l1: float = Field(1.0, ge=0, description="Pixel L1 weight.")
    mse: float = Field(
        0.0,
        ge=0,
        description="Pixel MSE (L2) weight, against the clean HQ (never USM-sharpened): what PSNR "
        "scores; eval downstream's restorer uses it.",
    )
    usm_targets: list[UsmTarget] = Field(
        default_factory=_default_usm_targets, description="Losses whose HQ target is USM-sharpened."
    )
    usm_weight: float = Field(0.5, ge=0, description="Unsharp-mask amount.")
    usm_radius: int = Field(50, ge=1, description="Unsharp-mask blur radius (kernel 2*(r//2)+1).")
    usm_threshold: float = Field(10.0, ge=0, description="Unsharp-mask threshold on a 0-255 scale.")
    perceptual: float = Field(
        1.0, ge=0, description="VGG19 perceptual weight (0: off, no VGG weights needed)."
    )
    style: float = Field(0.1, ge=0, description="VGG19 style (Gram) weight.")
    perceptual_layers: dict[str, float] = Field(
        default_factory=lambda: {
            "conv1_2": 0.1,
            "conv2_2": 0.1,
            "conv3_4": 1.0,
            "conv4_4": 1.0,
            "conv5_4": 1.0,
        }
    )
    vgg_weights: str | None = Field(None, description="Explicit VGG19 weight file (else the weights cache).")
    gan: float = Field(0.1, ge=0, description="Vanilla GAN weight on the generator (GAN phase).")


class SROptimConfig(StrictModel):
    lr_g: float = Field(1e-4, gt=0)
    lr_d: float = Field(1e-4, gt=0)
    betas: tuple[float, float] = (0.9, 0.99)
    milestones: list[int] = Field(
        default_factory=list, description="MultiStepLR milestones (steps); empty: constant."
    )
    gamma: float = Field(0.5, gt=0)
    ema_decay: float = Field(0.999, ge=0, lt=1, description="EMA of the generator (0: off).")


class TrainSRConfig(StrictModel):
    """``[train_sr]``: F2N-ESRGAN training on (LQ, HQ) shards."""

    steps: int = Field(400_000, ge=1, description="Total optimiser steps, both phases.")
    pretrain_steps: int = Field(
        0, ge=0, description="Leading pixel-loss-only steps ('net' phase, no discriminator)."
    )
    batch: int = Field(12, ge=1, description="Patches per GPU (per process) per step.")
    seed: int = 0
    model: SRModelConfig = Field(default_factory=SRModelConfig)
    data: SRDataConfig = Field(default_factory=SRDataConfig)
    loss: SRLossConfig = Field(default_factory=SRLossConfig)
    optim: SROptimConfig = Field(default_factory=SROptimConfig)
    init: str | None = Field(
        None, description="Initial generator: ours, official F2N-ESRGAN or Real-ESRGAN file."
    )
    init_d: str | None = Field(None, description="Initial discriminator (e.g. net_f2nD_init.pth).")
    init_input_range: Literal["auto", "[-1,1]", "[0,1]"] = "auto"
    val: str | None = Field(None, description="Held-out shard(s) or image folder (lq/ + hq/, or LQ only).")
    val_every: int = Field(5000, ge=1)
    val_max_images: int = Field(16, ge=1)
    val_tile: int | None = Field(None, ge=16, description="Tile size for validation inference (None: whole).")
    log_every: int = Field(100, ge=1, description="Steps between metric records (host syncs only here).")
    ckpt_every: int = Field(5000, ge=1, description="Keep a numbered checkpoint every this many steps.")
    device: str = Field("auto", description="'auto' (cuda if available), 'cpu', 'cuda', 'cuda:1' …")
    amp: bool = Field(True, description="bf16 autocast on CUDA (ignored on CPU).")
    channels_last: bool = True
    compile: bool = Field(
        False,
        description="torch.compile G and D (CUDA, or CPU with a C++ compiler; the first steps compile).",
    )

    @model_validator(mode="after")
    def _check(self) -> TrainSRConfig:
        s = self.model.scale
        if self.data.hq_crop % s or self.data.hq_crop % 8:
            raise ValueError(f"data.hq_crop {self.data.hq_crop} must be a multiple of 8 and of the scale {s}")
        if self.pretrain_steps > self.steps:
            raise ValueError(f"pretrain_steps {self.pretrain_steps} > steps {self.steps}")
        return self


class UpscaleConfig(StrictModel):
    """``[upscale]``: tiled inference."""

    tile: int | None = Field(None, ge=16, description="Tile size in input pixels (None: whole image).")
    tile_overlap: int = Field(32, ge=0, description="Overlap between tiles, blended with a cosine ramp.")
    batch: int = Field(4, ge=1, description="Tiles per forward pass.")
    format: Literal["png", "jpg", "webp"] = "png"
    quality: int = Field(95, ge=1, le=100)
    input_range: Literal["auto", "[-1,1]", "[0,1]"] = Field(
        "auto",
        description="auto: [0,1] for a params_ema file named RealESRGAN*, else what the file records, "
        "else [-1,1].",
    )
    device: str = "auto"
    amp: bool = Field(True, description="bf16 on CUDA.")
    alpha: Literal["upscale", "drop"] = Field(
        "upscale", description="Alpha channel: bicubic-upscaled, or dropped."
    )
