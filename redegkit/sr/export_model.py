"""``redeg export-model``: an SR generator as a plain Real-ESRGAN-style ``{'params_ema': …}`` file that
takes and returns images in [0, 1], the convention of spandrel and of the tools built on it
(chaiNNer, ComfyUI, most upscaling front-ends).

F2N-ESRGAN works in [-1, 1]: ``y' = f(2x - 1)`` and the picture is ``(y' + 1) / 2``. Both maps
are affine, so they fold into the network's first and last convolutions:

- ``conv_last``: ``W / 2`` and ``b / 2 + 1/2``: exact everywhere.
- ``conv_first``: ``2 W`` and ``b - sum(W)``: exact wherever the 3x3 window lies inside the
  image. On the one-pixel border the convolution's zero padding stands for x = 0 in the
  exported model but for x' = 0 (x = 1/2) in the original, so the border ring differs by the
  weights of the taps that fall outside, and the difference spreads inwards by one pixel per
  layer. A single 3x3 convolution with zero padding cannot express the original exactly there;
  see the README for the size of the effect.

spandrel's ESRGAN loader assumes 32 growth channels in every dense block. A model with fewer
(the smoke recipe's has 4) is exported with the growth channels padded to 32 by zeros: the
extra channels are always 0 and are read with zero weights, so the output is unchanged.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..models.checkpoints import CheckpointError, torch_save_atomic
from ..weights import sha256_file
from .upscale import load_sr_model

EXPORT_KEY = "redegkit_export"  # metadata beside params_ema; spandrel and BasicSR read only params_ema
SPANDREL_GROW = 32
USABLE_IN = (
    "spandrel (chaiNNer, ComfyUI and other front-ends that load ESRGAN models through it), "
    "Real-ESRGAN's inference_realesrgan.py and BasicSR's RRDBNet(num_grow_ch=32), redeg upscale"
)


@dataclass
class ExportModelResult:
    out: Path
    source: Path
    scale: int
    num_feat: int
    num_block: int
    num_grow_ch: int
    exported_grow_ch: int
    source_input_range: str
    sha256: str


def fold_unit_range(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A [-1, 1] RRDBNet state dict -> the same network on [0, 1] images (see the module doc)."""
    out = dict(sd)
    w, b = sd["conv_first.weight"].double(), sd["conv_first.bias"].double()
    out["conv_first.weight"] = (2.0 * w).to(sd["conv_first.weight"].dtype)
    out["conv_first.bias"] = (b - w.sum(dim=(1, 2, 3))).to(sd["conv_first.bias"].dtype)
    w, b = sd["conv_last.weight"].double(), sd["conv_last.bias"].double()
    out["conv_last.weight"] = (0.5 * w).to(sd["conv_last.weight"].dtype)
    out["conv_last.bias"] = (0.5 * b + 0.5).to(sd["conv_last.bias"].dtype)
    return out


_RDB_CONV = re.compile(r"^body\.\d+\.rdb\d\.conv([1-5])\.(weight|bias)$")


def pad_growth(sd: dict[str, torch.Tensor], num_feat: int, grow: int, to: int) -> dict[str, torch.Tensor]:
    """Zero-pad every dense block from ``grow`` to ``to`` growth channels (output unchanged)."""
    if grow == to:
        return dict(sd)
    out = {}
    for k, v in sd.items():
        m = _RDB_CONV.match(k)
        if not m:
            out[k] = v
            continue
        j = int(m.group(1))  # convJ reads [x, x1 .. x_{J-1}] and writes x_J (conv5 writes num_feat)
        n_out = to if j < 5 else num_feat
        if m.group(2) == "bias":
            nb = v.new_zeros(n_out)
            nb[: v.shape[0]] = v
            out[k] = nb
            continue
        nw = v.new_zeros(n_out, num_feat + (j - 1) * to, *v.shape[2:])
        nw[: v.shape[0], :num_feat] = v[:, :num_feat]
        for i in range(j - 1):  # the input block of x_{i+1}: grow real channels, then zeros
            src = num_feat + i * grow
            dst = num_feat + i * to
            nw[: v.shape[0], dst : dst + grow] = v[:, src : src + grow]
        out[k] = nw
    return out


def export_model(
    src: str | os.PathLike, out: str | os.PathLike, input_range: str = "auto"
) -> ExportModelResult:
    """Write ``src`` (any checkpoint :func:`load_sr_model` reads) to ``out`` as ``{'params_ema': …}``
    in the [0, 1] convention, with growth channels padded for spandrel. Raises CheckpointError."""
    src, out = Path(src), Path(out)
    if out.suffix.lower() not in (".pth", ".pt"):
        raise CheckpointError(f"{out}: give a .pth file name (what upscaling tools look for)")
    model = load_sr_model(src, input_range)
    hp = dict(model.hparams)
    if hp.get("residual"):
        raise CheckpointError(
            f"{src}: a residual generator (model.residual = true) adds its enlarged input to the output; "
            "the ESRGAN / Real-ESRGAN file format has no place for that, so it cannot be exported"
        )
    sd = {k: v.detach().cpu().float().clone() for k, v in model.state_dict().items()}
    if hp["input_range"] == "[-1,1]":
        sd = fold_unit_range(sd)
    grow = int(hp["num_grow_ch"])
    if grow > SPANDREL_GROW:
        raise CheckpointError(
            f"{src}: dense blocks have {grow} growth channels; spandrel's ESRGAN has "
            f"{SPANDREL_GROW}, so no file in its format can hold this model"
        )
    sd = pad_growth(sd, int(hp["num_feat"]), grow, SPANDREL_GROW)
    meta: dict[str, Any] = {
        "input_range": "[0,1]",
        "scale": int(hp["scale"]),
        "arch": "RRDBNet (ESRGAN / Real-ESRGAN)",
        "num_feat": int(hp["num_feat"]),
        "num_block": int(hp["num_block"]),
        "num_grow_ch": SPANDREL_GROW,
        "source": src.name,
        "source_sha256": sha256_file(src),
        "source_input_range": hp["input_range"],
        "source_num_grow_ch": grow,
        "usable_in": USABLE_IN,
        "redegkit_version": __version__,
        "note": "input and output in [0, 1]; the [-1, 1] maps are folded into conv_first / conv_last",
    }
    torch_save_atomic({"params_ema": sd, EXPORT_KEY: meta}, out)
    return ExportModelResult(
        out,
        src,
        int(hp["scale"]),
        int(hp["num_feat"]),
        int(hp["num_block"]),
        grow,
        SPANDREL_GROW,
        hp["input_range"],
        sha256_file(out),
    )
