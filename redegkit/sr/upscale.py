"""``redeg upscale``: SR inference on images of any size, whole or in blended tiles.

- The image is mirror-padded to a multiple of 8 (as the reference), upscaled, and cropped back.
- Tiles overlap by ``tile_overlap`` input pixels and are blended by :mod:`redegkit.io.tiles`: in
  each overlap, the outer quarter of each tile (where zero padding inside the network disturbs
  the output) gets weight 0 and the middle half a cosine cross-fade whose weights sum to 1, so
  there are no seams. Tiles of one image all have the same size and go through the network in
  batches.
- bf16 autocast on CUDA. Alpha channels are upscaled apart (bicubic) and written back (PNG/WebP).
  16-bit inputs are decoded to 8-bit by :func:`redegkit.io.images.decode_image`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ..io.atomic import atomic_write_bytes
from ..io.images import ImageDecodeError, decode_image, encode_image, from_tensor
from ..io.sources import list_sources
from ..io.tiles import ceil_to, pad_reflect, run_tiled
from ..models.checkpoints import CheckpointError, load_raw, load_state_strict, unwrap_state_dict
from ..models.rrdb import INPUT_RANGES, RRDBNet, detect_rrdbnet
from ..run import RunContext
from .config import UpscaleConfig

PAD_MULTIPLE = 8
TRAIN_STATE_KIND = "train_sr_state"


def auto_input_range(
    path: str | os.PathLike, obj: dict[str, Any], source: str, hp: dict[str, Any], recorded: str | None
) -> str:
    """The input range the weights in ``path`` expect, from what the file holds (never its name).

    - Ours (a generator or a ``train-sr`` state): the ``input_range`` its hyperparameters record.
    - An RRDBNet with a pixel-unshuffle input (x1 / x2): Real-ESRGAN's architecture (F2N-ESRGAN is
      x4 only), so [0, 1].
    - ``{'params': …}`` alone: how ReDegNet publishes ``net_f2n_*.pth``, so [-1, 1].
    - ``{'params_ema': …}`` alone: how Real-ESRGAN publishes its RRDB models, so [0, 1].

    Anything else (a bare state dict, or both wrappers as BasicSR's training writes them) cannot
    be told apart by its weights: a :class:`CheckpointError` asks for ``--input-range``.
    """
    if recorded in INPUT_RANGES:
        return recorded
    if hp.get("scale") in (1, 2):
        return "[0,1]"
    wrappers = {k for k in ("params", "params_ema") if isinstance(obj.get(k), dict)}
    if source != "redegkit" and wrappers == {"params"}:
        return "[-1,1]"
    if source != "redegkit" and wrappers == {"params_ema"}:
        return "[0,1]"
    held = (
        "our checkpoint without a recorded input range"
        if source == "redegkit"
        else (
            f"a state dict under {' and '.join(sorted(wrappers))}" if wrappers else f"a state dict ({source})"
        )
    )
    raise CheckpointError(
        f"{path}: cannot tell which input range these RRDBNet weights expect ({held}); F2N-ESRGAN "
        "models take [-1,1] and Real-ESRGAN models [0,1]: pass --input-range '[-1,1]' or '[0,1]'"
    )


def load_sr_model(
    path: str | os.PathLike, input_range: str = "auto", map_location: str | torch.device = "cpu"
) -> RRDBNet:
    """Load an RRDBNet generator for inference or fine-tuning, in eval mode.

    Accepts our checkpoints (a saved generator, or a ``train-sr`` state, whose EMA generator is
    taken), the official ``net_f2n_*.pth`` (``{'params': …}``) and Real-ESRGAN RRDB files
    (``{'params_ema': …}``). ``input_range="auto"``: see :func:`auto_input_range`. Raises
    :class:`CheckpointError` for any other network, or when auto cannot tell the range.
    """
    obj = load_raw(path, map_location)
    recorded = None
    if obj.get("kind") == TRAIN_STATE_KIND:
        net = obj.get("g_ema") or obj["g"]
        sd, source, recorded = net["state_dict"], "redegkit", net["hparams"].get("input_range")
        hp = dict(net["hparams"])
        if net.get("arch") != RRDBNet.arch:
            raise CheckpointError(f"{path}: training state of {net.get('arch')!r}, not an SR generator")
    else:
        sd, source = unwrap_state_dict(obj, str(path))
        if source == "redegkit":
            if obj.get("arch") != RRDBNet.arch:
                raise CheckpointError(
                    f"{path}: holds a {obj.get('arch')!r} network, not an SR generator (rrdbnet); "
                    "redeg upscale needs an F2N-ESRGAN / Real-ESRGAN RRDB model"
                )
            hp = dict(obj.get("hparams", {}))
            recorded = hp.get("input_range")
        else:
            det = detect_rrdbnet(sd)
            if det is None:
                raise CheckpointError(
                    f"{path}: not an RRDBNet SR generator (first keys: {', '.join(list(sd)[:4])}); "
                    "redeg upscale takes our train-sr checkpoints, net_f2n_g.pth / net_f2n_init.pth or "
                    "RealESRGAN_x4plus.pth-style RRDB weights"
                )
            hp = det
            recorded = (obj.get("redegkit_export") or {}).get("input_range")  # redeg export-model files
    hp["input_range"] = (
        auto_input_range(path, obj, source, hp, recorded) if input_range == "auto" else input_range
    )
    model = RRDBNet(**hp)
    load_state_strict(model, sd, str(path))
    return model.eval()


@torch.inference_mode()
def upscale_tensor(
    model: torch.nn.Module,
    x: torch.Tensor,
    *,
    scale: int,
    tile: int | None = None,
    overlap: int = 32,
    batch: int = 4,
    amp: bool = True,
    ctx: RunContext | None = None,
) -> torch.Tensor:
    """Upscale one image. ``x``: 1x3xHxW float in [-1, 1] on the model's device.

    Returns 1x3x(sH)x(sW) float32 in [-1, 1] (clamped). ``tile`` (input pixels, rounded up to a
    multiple of 8) bounds memory; ``batch`` tiles run per forward pass. Precision and memory layout
    come from ``ctx`` (default: bf16 autocast and channels_last on CUDA when ``amp``, fp32 on the
    CPU).
    """
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"upscale_tensor: expected 1x3xHxW, got {tuple(x.shape)}")
    ctx = ctx if ctx is not None else RunContext.local(x.device, "bf16" if amp else "fp32")
    h, w = x.shape[-2:]
    xp = pad_reflect(x, (-h) % PAD_MULTIPLE, (-w) % PAD_MULTIPLE)

    def run(inp: torch.Tensor) -> torch.Tensor:
        with ctx.autocast():
            return model(inp.contiguous(memory_format=ctx.memory_format)).float()

    if tile is not None:
        tile = ceil_to(tile, PAD_MULTIPLE)
        overlap = min(overlap, tile // 2)
    out = run_tiled(run, xp, tile, overlap, scale, batch=batch)
    return out[..., : h * scale, : w * scale].clamp(-1, 1)


def upscale_image(
    model: RRDBNet,
    img: np.ndarray,
    *,
    device: torch.device | None = None,
    tile: int | None = None,
    overlap: int = 32,
    batch: int = 4,
    amp: bool = True,
    ctx: RunContext | None = None,
) -> np.ndarray:
    """RGB uint8 HxWx3 -> RGB uint8 (sH)x(sW)x3, on ``ctx``'s device (default: ``device``, bf16
    autocast on CUDA when ``amp``)."""
    if ctx is None:
        ctx = RunContext.local(device if device is not None else "cpu", "bf16" if amp else "fp32")
    x = ctx.to_device(
        torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
    )  # uint8 -> [-1, 1]
    y = upscale_tensor(model, x, scale=model.scale, tile=tile, overlap=overlap, batch=batch, ctx=ctx)
    return from_tensor(y[0])


def _read_alpha(path: Path | str) -> np.ndarray | None:
    """The alpha plane as uint8 HxW, or None (decode_image drops alpha; we read it apart)."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.ndim != 3 or raw.shape[2] not in (2, 4):
        return None
    a = raw[:, :, -1]
    if a.dtype == np.uint16:
        a = ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return a if a.dtype == np.uint8 else None


def _encode(rgb: np.ndarray, alpha: np.ndarray | None, fmt: str, quality: int) -> bytes:
    if alpha is None:
        return encode_image(rgb, fmt, quality=quality)
    if fmt == "jpg":  # JPEG has no alpha: composite onto white
        a = alpha[..., None].astype(np.float32) / 255.0
        flat = (rgb.astype(np.float32) * a + 255.0 * (1 - a) + 0.5).astype(np.uint8)
        return encode_image(flat, fmt, quality=quality)
    bgra = cv2.cvtColor(np.dstack([rgb, alpha]), cv2.COLOR_RGBA2BGRA)
    params = [cv2.IMWRITE_WEBP_QUALITY, int(quality)] if fmt == "webp" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode(f".{fmt}", bgra, params)
    if not ok:
        raise RuntimeError(f"encoding RGBA to {fmt} failed")
    return buf.tobytes()


@dataclass
class UpscaleReport:
    written: list[str] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    scale: int = 4
    input_range: str = "[-1,1]"
    device: str = "cpu"
    seconds: float = 0.0


def upscale_files(
    inputs: str | Path | list[str | Path],
    out_dir: str | Path,
    model_path: str | Path,
    cfg: UpscaleConfig | None = None,
    on_progress: Callable[..., None] | None = None,
    stdin: Any = None,
) -> UpscaleReport:
    """Upscale every image found by :func:`list_sources` into ``out_dir`` (sub-folders kept).

    Unreadable inputs are reported in ``failures``, never raised. Output names keep the
    relative path with the extension of ``cfg.format``.
    """
    import time

    cfg = cfg or UpscaleConfig()
    t0 = time.perf_counter()
    ctx = RunContext.from_env(cfg.device, "bf16" if cfg.amp else "fp32")
    device = ctx.device
    model = load_sr_model(model_path, cfg.input_range)
    ctx.place(model)
    sources = list_sources(inputs, stdin=stdin)
    rep = UpscaleReport(scale=model.scale, input_range=model.input_range, device=str(device))
    out = Path(out_dir)
    for src in sources:
        try:
            rgb = decode_image(src.path, alpha="drop")
            alpha = _read_alpha(src.path) if cfg.alpha == "upscale" else None
            sr = upscale_image(model, rgb, tile=cfg.tile, overlap=cfg.tile_overlap, batch=cfg.batch, ctx=ctx)
            if alpha is not None and alpha.shape[:2] == rgb.shape[:2]:
                alpha = cv2.resize(alpha, (sr.shape[1], sr.shape[0]), interpolation=cv2.INTER_CUBIC)
            else:
                alpha = None  # e.g. EXIF-rotated images: alpha layout would not match
            rel = Path(src.rel)
            if rel.is_absolute() or ".." in rel.parts:  # paths from lists/stdin: never escape out_dir
                rel = Path(rel.name)
            dest = out / rel.with_suffix(f".{cfg.format}")
            atomic_write_bytes(dest, _encode(sr, alpha, cfg.format, cfg.quality))
            rep.written.append(str(dest))
        except ImageDecodeError as e:
            rep.failures.append({"path": str(src.path), "reason": e.reason})
        if on_progress is not None:
            on_progress(1)
    rep.seconds = time.perf_counter() - t0
    return rep
