"""Evaluation data on crops, shared by ``eval transfer`` and ``eval downstream``: crops cut at
8-aligned positions, the bank's downsampling of a uint8 image, and the library's ``synthesize``
run on a folder of crops (its shards, and their LQ images read back by crop key).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..io.images import decode_image, u8_to_unit, write_image
from ..io.sources import Source
from ..rng import sample_rng

__all__ = ["cut_crops", "downsample_u8", "read_lq", "synth_shards"]


def cut_crops(
    images: list[Source], out: Path, side: int, per_image: int, seed: int, salt: str = "eval-crop"
) -> tuple[list[str], list[dict[str, Any]]]:
    """Cut ``per_image`` crops of ``side`` px at 8-aligned positions (drawn from ``salt``) of each
    image into ``out`` as ``KEY.png``, KEY = the image's key and ``-cNN``. Returns (keys in image
    order, failure records for unreadable or too small images); raises ValueError when none gave a
    crop."""
    out.mkdir(parents=True, exist_ok=True)
    keys, failures = [], []
    for src in images:
        try:
            img = decode_image(src.path)
        except Exception as e:  # noqa: BLE001 - reported per file
            failures.append({"path": str(src.path), "reason": getattr(e, "reason", str(e))})
            continue
        h, w = img.shape[:2]
        if h < side or w < side:
            failures.append({"path": str(src.path), "reason": f"smaller than the {side} px crop"})
            continue
        rng = sample_rng(seed, src.key, salt)
        for j in range(per_image):
            y = int(rng.integers(0, (h - side) // 8 + 1)) * 8
            x = int(rng.integers(0, (w - side) // 8 + 1)) * 8
            key = f"{src.key}-c{j:02d}".replace("_", "-")
            write_image(out / f"{key}.png", np.ascontiguousarray(img[y : y + side, x : x + side]))
            keys.append(key)
    if not keys:
        raise ValueError(f"no image gave a {side} px crop (of {len(images)})")
    return keys, failures


def downsample_u8(img: np.ndarray, scale: int, interp: str) -> np.ndarray:
    """Downsample uint8 HxWx3 exactly as ``synthesize --bank`` does (torch, then rounding)."""
    if scale == 1:
        return img
    import torch

    from ..bank.operators import finalize

    t = u8_to_unit(torch.from_numpy(img).permute(2, 0, 1)[None])
    return finalize(t, scale=scale, interps=[interp], sigmas=[0.0], seeds=[0])[0].numpy()


def read_lq(folder: Path) -> dict[str, np.ndarray]:
    """The LQ images of a shard folder written by :func:`synth_shards`, by crop key."""
    from ..io.shards import iter_samples

    out = {}
    for s in iter_samples(str(folder)):
        meta = json.loads(s["json"])
        out[Path(meta["source"]).stem] = decode_image(s["lq.png"])
    return out


def synth_shards(
    crops_dir: Path,
    out: Path,
    scale: int,
    *,
    seed: int,
    down: str,
    tile: int,
    bank: Path | None = None,
    preset: str | None = None,
    calibration: bool = True,
    user_presets: dict[str, Any] | None = None,
) -> Any:
    """Run the library's ``synthesize`` on every image of ``crops_dir`` (whole images, ``seed``)
    into fresh shards at ``out``: the bank (no hand-set noise, downsampling ``down``, with or
    without its calibration, in tiles of ``tile`` px) or a preset. Returns its ``SynthResult``."""
    from ..io.sources import list_sources
    from ..synth import SynthConfig, synthesize

    opts: dict[str, Any] = {"crop": None, "scale": scale, "seed": seed, "workers": 1}
    if bank is not None:
        opts.update(
            bank=str(bank),
            preset=None,
            noise_prob=0.0,
            down=[down],
            calibration=calibration,
            tile=max(tile, 64),
            batch=8,
        )
    else:
        opts.update(preset=preset)
    if out.exists():
        shutil.rmtree(out)
    return synthesize(list_sources(str(crops_dir)), out, SynthConfig(**opts), user_presets=user_presets)
