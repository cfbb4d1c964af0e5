"""The ``[fit]`` recipe section: every setting of ``redeg fit-degradation``.

Defaults are the paper's (256 crops, batch 12 per GPU, Adam 1e-4, 160k steps); ``recipes/paper.toml``
spells them out and ``recipes/smoke.toml`` shrinks everything so a run takes seconds on a CPU.
The networks are built at ``size = crop``: DegNet's last linear layer fixes its input size, so the
crop and the network size are one setting.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..config import StrictModel
from .losses import LossConfig


class ModelConfig(StrictModel):
    """Hyperparameters of the four networks (their spatial size is ``FitConfig.crop``)."""

    style_dim: int = Field(512, ge=1, description="Length of the degradation embedding (512 in the paper).")
    n_mlp: int = Field(8, ge=1, description="Depth of the generator's style MLP.")
    width: float = Field(
        1.0, gt=0, le=4, description="Scales the channel table; 1.0 is the official network."
    )
    modconv: Literal["fused", "grouped"] = Field(
        "fused", description="Modulated conv implementation: fused (fast) or grouped (the reference's way)."
    )


class DataConfig(StrictModel):
    """Augmentations and sampling of one training sample (spec: 'Fitting: data for one step')."""

    face_box: tuple[int, int, int, int] = Field(
        (60, 500, 60, 450),
        description="Crop of the aligned face, (top, bottom, left, right) at face_ref pixels; "
        "removes padding.",
    )
    face_ref: int = Field(512, ge=16, description="Face size the box is given for; other sizes scale it.")
    face_rescale: bool = Field(
        True,
        description="Rescale the face pair by a random factor before cropping (the spec's). false keeps "
        "the pairs' own pixels: their noise grain and 8x8 JPEG grid stay as they are.",
    )
    hflip_p: float = Field(0.5, ge=0, le=1)
    vflip_p: float = Field(0.35, ge=0, le=1)
    gray_p: float = Field(0.05, ge=0, le=1, description="Grayscale probability (face pair, and natural HQ).")
    syn_from_hq_p: float = Field(
        0.4, ge=0, le=1, description="P(real LQ := syn_from_hq_preset(HQ) at a large sf)."
    )
    syn_from_hq_scales: list[int] = Field([3, 4, 5, 6], min_length=1)
    syn_from_hq_preset: str = Field(
        "bsrgan", description="Preset of the synthetic variant made from the HQ face."
    )
    syn_from_lq_p: float = Field(
        0.25, ge=0, le=1, description="P(real LQ := syn_from_lq_preset(real LQ), small sf)."
    )
    syn_from_lq_scales: list[int] = Field([1, 2], min_length=1)
    syn_from_lq_preset: str = Field(
        "bsrgan-x2", description="Preset of the variant made from the real LQ (mild)."
    )
    matched_preset: str = Field(
        "redeg-matched", description="Preset applied identically to face and natural HQ."
    )
    natural_rescale_cap: int = Field(360, ge=1, description="m in the natural rescale range [crop/m, 1].")
    natural_max_short: int | None = Field(
        None, ge=16, description="Shrink larger naturals to this short side first (DF2K patches are 400)."
    )
    jitter_p: float = Field(0.4, ge=0, le=1, description="Colour jitter probability on the natural HQ.")
    jitter: tuple[float, float] = Field(
        (0.9, 1.1), description="Brightness/contrast/saturation factor range."
    )
    val_fraction: float = Field(
        0.05, ge=0, lt=1, description="Held-out share of the face pairs (by key hash)."
    )
    val_max: int = Field(16, ge=1, description="At most this many held-out pairs are evaluated.")
    workers: int = Field(
        4, ge=0, description="DataLoader worker processes per rank (0: in the main process)."
    )

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        t, b, left, r = self.face_box
        if not (0 <= t < b <= self.face_ref and 0 <= left < r <= self.face_ref):
            raise ValueError(f"face_box {self.face_box} must lie inside a {self.face_ref} face")
        if self.syn_from_hq_p + self.syn_from_lq_p > 1:
            raise ValueError("syn_from_hq_p + syn_from_lq_p must be at most 1 (they exclude each other)")
        if not 0 < self.jitter[0] <= self.jitter[1]:
            raise ValueError(f"jitter range {self.jitter} must be positive and increasing")
        if min(self.syn_from_hq_scales + self.syn_from_lq_scales) < 1:
            raise ValueError("synthetic variant scale factors must be >= 1")
        return self


class FitConfig(StrictModel):
    """Settings of ``redeg fit-degradation`` (recipe section ``[fit]``)."""

    seed: int = Field(0, description="Global seed; every sample's randomness derives from (seed, index).")
    steps: int = Field(160_000, ge=1, description="Total optimisation steps.")
    batch: int = Field(12, ge=1, description="Samples per step per GPU (rank).")
    crop: int = Field(256, description="Training crop and network size (power of two; the paper: 256).")
    lr: float = Field(
        1e-4, gt=0, description="Adam learning rate of DegNet, encoder, generator, discriminator."
    )
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam betas.")
    lr_schedule: Literal["constant", "multistep", "cosine"] = "multistep"
    lr_milestones: list[int] = Field([600_000, 700_000], description="multistep: steps where lr *= lr_gamma.")
    lr_gamma: float = Field(0.5, gt=0)
    warmup_steps: int = Field(0, ge=0, description="Linear lr warm-up steps.")
    grad_clip: float | None = Field(None, gt=0, description="Clip each network's gradient norm (None: off).")
    switch_p: float = Field(0.8, ge=0, le=1, description="P(swap the matched embeddings) per step.")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto: bf16 on CUDA, fp32 on CPU.")
    channels_last: bool = Field(True, description="channels_last memory format on CUDA.")
    log_every: int = Field(10, ge=1, description="Write training losses to metrics.jsonl every N steps.")
    val_every: int = Field(5000, ge=1, description="Validate and write a preview every N steps.")
    checkpoint_every: int = Field(5000, ge=1, description="Write checkpoints/step_N.pt every N steps.")
    preview_rows: int = Field(4, ge=1, description="Held-out pairs shown in a preview grid.")
    interp_quirk: bool = Field(
        False,
        description="Reference quirk: the matched preset's simple chain always resizes bilinearly. "
        "False: random interp.",
    )
    vgg_range_quirk: bool = Field(
        False,
        description="Reference quirk: feed [-1,1] to VGG with [0,1] ImageNet norm. False: map to [0,1].",
    )
    vgg_weights: str | None = Field(None, description="Explicit VGG19 weights file (else the weights dirs).")
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    loss: LossConfig = Field(default_factory=LossConfig)

    @field_validator("crop")
    @classmethod
    def _pow2(cls, v: int) -> int:
        if v < 16 or v > 1024 or v & (v - 1):
            raise ValueError(f"crop must be a power of two in [16, 1024], got {v}")
        return v
