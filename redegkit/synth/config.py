"""The configuration of `redeg synthesize` (recipe table ``[synthesize]``).

The CLI's option help and defaults are read from these fields (``redegkit.cli.synth_cmd``), so a
default lives here once.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..config import StrictModel
from ..io.images import AlphaPolicy


class SynthConfig(StrictModel):
    """Configuration of `redeg synthesize` (recipe table ``[synthesize]``)."""

    preset: str | None = Field(
        "realesrgan", description="classical degradation preset (built-in or [presets.NAME])"
    )
    scale: int = Field(4, ge=1, le=4, description="SR scale: hq = scale x lq in pixels")
    crop: int | None = Field(512, ge=16, description="HQ patch size in pixels; null = whole images")
    stride: int | None = Field(None, ge=1, description="patch stride (default: crop, i.e. no overlap)")
    max_patches: int | None = Field(
        None, ge=1, description="at most this many patches per image (evenly spaced)"
    )
    small: Literal["skip", "pad"] = Field(
        "skip", description="images smaller than the crop: skip them or reflect-pad"
    )
    alpha: AlphaPolicy = Field("composite", description="alpha channel: composite on white, or drop")
    seed: int = Field(
        0,
        ge=-(2**63),
        lt=2**63,
        description="global seed; each sample's seed derives from it and the sample key",
    )
    workers: int = Field(1, ge=1, description="CPU worker processes")
    shard_max_count: int = Field(
        1000, ge=1, description="samples per shard (at most, rolled at image boundaries)"
    )
    shard_max_bytes: int = Field(
        1 << 30, ge=1 << 16, description="bytes per shard (at most, rolled likewise)"
    )
    shard_inputs: int | None = Field(
        None,
        ge=1,
        description="fixed shard plan: shard k holds exactly inputs [k*N, (k+1)*N), so a shard is a "
        "pure function of its inputs, the config and the seed (shard max count/bytes are then ignored; "
        "the Ray engine needs it); null = roll shards by count and bytes",
    )
    prefix: str = Field("shard", pattern=r"^[A-Za-z0-9_-]+$", description="shard file name prefix")
    png_level: int = Field(1, ge=0, le=9, description="PNG compression level of the written images")
    # Learned path (a bank made by `redeg bake`); see redegkit/synth/learned.py.
    bank: str | None = Field(
        None, description="degradation bank (emb.pt); when set, the bank degrades, not preset"
    )
    model: str | None = Field(None, description="fit checkpoint whose encoder/generator replace the bank's")
    choice: Literal["uniform", "cluster", "weighted", "index"] = Field(
        "uniform",
        description="embedding per sample: uniform, a uniform cluster then a member, by the bank's "
        "weights, or the fixed --index",
    )
    index: list[int] | None = Field(
        None, description="fixed embedding index (two with mix = interpolate those)"
    )
    mix: bool = Field(False, description="interpolate two chosen embeddings with a uniform random weight")
    strength: float = Field(
        1.0,
        ge=0,
        le=1,
        description="image-space blend: lq = hq + strength * (degraded - hq), "
        "learned noise scaled by strength, JPEG quality towards 100; 0 = exactly the HQ",
    )
    strength_min: float | None = Field(
        None, ge=0, le=1, description="draw strength uniformly in [strength_min, strength]"
    )
    calibration: bool = Field(
        True,
        description="apply the bank's per-embedding calibration (colour map, learned "
        "noise, JPEG) measured by bake on each embedding's own face pair",
    )
    noise_prob: float = Field(
        0.4, ge=0, le=1, description="share of samples that get Gaussian noise before downsampling"
    )
    noise_max: float = Field(
        0.2, ge=0, le=1, description="noise std drawn from {0, 0.01, ..., noise_max} ([-1, 1] scale)"
    )
    down: list[Literal["bilinear", "bicubic", "bilinear-aa", "bicubic-aa", "area"]] = Field(
        ["bilinear", "bicubic"],
        min_length=1,
        description="downsampling interpolations, one drawn per sample: "
        "bilinear/bicubic as the reference (no antialiasing), their antialiased -aa forms, or area",
    )
    mix_preset: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]+:(0(\.\d+)?|1(\.0+)?)$",
        description="hybrid: NAME:SHARE of samples through a classical preset",
    )
    gamma_max: float | None = Field(
        None,
        ge=1,
        le=4,
        description="post step: a gamma curve per learned sample, the gamma drawn "
        "log-uniformly in [1/gamma_max, gamma_max]; null = off",
    )
    batch: int = Field(16, ge=1, description="tiles per synthesizer forward")
    device: str = Field("auto", description="auto (cuda if available), cpu, cuda, cuda:N")
    precision: Literal["bf16", "fp32"] = Field("bf16", description="CUDA compute precision (CPU runs fp32)")
    compile: bool = Field(True, description="torch.compile the synthesizer on CUDA (eager fallback)")
    tile: int = Field(512, ge=16, description="largest synthesizer input; bigger crops are tiled")
    tile_overlap: int = Field(64, ge=0, description="overlap of neighbouring tiles, blended linearly")
