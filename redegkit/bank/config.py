"""The configuration of `redeg bake` (recipe table ``[bake]``): pydantic only, so the CLI reads its
defaults without importing torch."""

from __future__ import annotations

from pydantic import Field

from ..config import StrictModel


class BakeConfig(StrictModel):
    """Configuration of `redeg bake` (recipe table ``[bake]``)."""

    crops: int = Field(4, ge=1, description="random DegNet-size crops per face pair (seeded by the pair key)")
    each: bool = Field(False, description="store one embedding per crop instead of the crops' mean")
    seed: int = Field(0, description="seed of the crop positions")
    face_box: tuple[int, int, int, int] | None = Field(
        (60, 500, 60, 450),
        description="(top, bottom, left, right) of the padding-free face in a face_ref "
        "aligned face (the spec's rows 60:500, cols 60:450); null = the whole image",
    )
    face_ref: int = Field(512, ge=16, description="aligned face size that face_box refers to")
    batch: int = Field(32, ge=1, description="crops per DegNet forward")
    device: str = Field("auto", description="auto (cuda if available), cpu, cuda, cuda:N")
    calibrate: bool = Field(
        True,
        description="measure each pair's colour, noise and JPEG residual against the "
        "generator's own output and store it with the embedding (see redegkit.bank.calibrate)",
    )
    calib_size: int = Field(
        256, ge=16, description="largest side of the centre region a pair is calibrated on"
    )
