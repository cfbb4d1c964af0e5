"""Tiny (LQ, HQ) shards and configs for the train-sr / upscale tests (offline, CPU, seconds)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import webdataset as wds

from redegkit.io.images import encode_image


def textured(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth colour pattern with edges, RGB uint8 (deterministic)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    fx, fy, ph = rng.uniform(0.05, 0.3, 3)
    img = np.stack(
        [
            127 + 100 * np.sin(fx * x + ph),
            127 + 100 * np.cos(fy * y),
            127 + 60 * np.sin(0.1 * (x + y)) + 60 * ((x // 8 + y // 8) % 2),
        ],
        -1,
    )
    return np.clip(img, 0, 255).astype(np.uint8)


def write_shard(
    path: Path,
    n: int = 6,
    hq_size: int = 48,
    scale: int = 4,
    seed: int = 0,
    lq_high: bool = False,
    corrupt_keys: tuple[int, ...] = (),
    lq_key: str = "lq.png",
    hq_key: str = "hq.png",
) -> Path:
    """A shard of ``n`` samples: HQ ``hq_size``², LQ = bicubic HQ/scale (or HQ-sized when ``lq_high``).

    Samples whose index is in ``corrupt_keys`` get undecodable LQ bytes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with wds.TarWriter(str(path), mtime=0.0) as tw:
        for i in range(n):
            hq = textured(hq_size, hq_size, seed * 1000 + i)
            small = cv2.resize(hq, (hq_size // scale, hq_size // scale), interpolation=cv2.INTER_AREA)
            lq = cv2.resize(small, (hq_size, hq_size), interpolation=cv2.INTER_CUBIC) if lq_high else small
            lq_bytes = b"garbage, not an image" if i in corrupt_keys else encode_image(lq)
            tw.write(
                {"__key__": f"s{seed:02d}_{i:04d}", hq_key: encode_image(hq), lq_key: lq_bytes, "json": b"{}"}
            )
    return path


TINY = {
    "steps": 8,
    "batch": 2,
    "seed": 0,
    "log_every": 1,
    "ckpt_every": 4,
    "val_every": 4,
    "model": {"num_feat": 8, "num_block": 1, "num_grow_ch": 4, "d_num_feat": 8},
    "data": {"hq_crop": 32, "num_workers": 0, "shuffle_buffer": 4, "segment_steps": 3},
    "loss": {"perceptual": 0.0, "style": 0.0},
    "optim": {"lr_g": 2e-3, "lr_d": 1e-3},
}
