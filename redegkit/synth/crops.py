"""Crops: one input image read, decoded and cut into patches (or kept whole), each with its
provenance record. Shared by the classical and the learned producers."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import __version__
from ..degrade.ops import ImageTooSmallError
from ..io import storage
from ..io.images import ImageDecodeError, decode_image
from ..io.shards import SHARD_FORMAT
from ..io.sources import Source
from ..rng import sample_seed, seed_to_json
from .config import SynthConfig


def crop_boxes(
    h: int, w: int, crop: int | None, stride: int | None, scale: int, max_patches: int | None = None
) -> list[tuple[int, int, int, int]]:
    """Patch boxes ``(x, y, w, h)`` covering the image on a regular grid; the last row/column
    is aligned to the border, so the whole image is used. Whole-image mode trims to a multiple
    of ``scale``. Returns [] if the image is smaller than the crop."""
    if crop is None:
        ww, hh = w - w % scale, h - h % scale
        return [(0, 0, ww, hh)] if ww >= scale and hh >= scale else []
    if crop % scale:
        raise ValueError(f"crop {crop} must be a multiple of the scale {scale}")
    if h < crop or w < crop:
        return []
    stride = stride or crop

    def starts(n: int) -> list[int]:
        s = list(range(0, n - crop + 1, stride))
        if s[-1] != n - crop:
            s.append(n - crop)
        return s

    boxes = [(x, y, crop, crop) for y in starts(h) for x in starts(w)]
    if max_patches is not None and len(boxes) > max_patches:
        idx = np.linspace(0, len(boxes) - 1, max_patches).round().astype(int)
        boxes = [boxes[i] for i in sorted(set(idx.tolist()))]
    return boxes


def pad_to(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    ph, pw = max(0, size - h), max(0, size - w)
    if ph == 0 and pw == 0:
        return img
    if h > 1 and w > 1 and ph < h and pw < w:
        return np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="reflect")
    return np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="edge")


# What an input can cause: that input becomes a failure record and the run goes on. Any other
# exception is a bug or a broken set-up; it stops the run with its traceback (finished shards are
# kept, and --resume continues once it is fixed) instead of failing every input quietly.
INPUT_ERRORS: tuple[type[Exception], ...] = (ImageDecodeError, ImageTooSmallError)


@dataclass
class Crops:
    """One input image read, decoded and cut: ``patches`` are (key, HQ crop, provenance) in order,
    or ``failure`` / ``skipped`` says why there are none. Shared by the classical and learned paths."""

    patches: list[tuple[str, np.ndarray, dict[str, Any]]]
    failure: dict[str, Any] | None
    skipped: dict[str, Any] | None
    timings: dict[str, float]


def failure_record(src: Source, reason: str, kind: str = "failed") -> dict[str, Any]:
    """The report's record of an input that failed (``kind="failed"``) or was skipped."""
    return {"path": storage.shown(src.path), "reason": reason, "kind": kind}


def cut_crops(src: Source, cfg: SynthConfig, contiguous: bool = True) -> Crops:
    """Read and decode ``src`` once, apply the small-image policy, cut the patch grid (or the whole
    image), and build each patch's provenance record (without ``method`` and ``lq_size``). The
    patches are C-contiguous copies, or with ``contiguous=False`` views of the decoded image (for
    a caller that copies them once itself, e.g. into shared memory)."""
    t = {"read": 0.0, "decode": 0.0, "degrade": 0.0, "encode": 0.0}
    t0 = time.perf_counter()
    try:
        data = storage.read_bytes(src.path)
    except OSError as e:
        return Crops([], failure_record(src, f"cannot read file ({e.strerror or e})", "failed"), None, t)
    t1 = time.perf_counter()
    t["read"] = t1 - t0
    try:
        img = decode_image(data, alpha=cfg.alpha, path=src.path)
    except ImageDecodeError as e:
        return Crops([], failure_record(src, e.reason, "failed"), None, t)
    t["decode"] = time.perf_counter() - t1
    h, w = img.shape[:2]
    padded = False
    if cfg.crop is not None and (h < cfg.crop or w < cfg.crop):
        if cfg.small == "skip":
            why = f"smaller than the crop ({w}x{h} < {cfg.crop}); policy small=skip"
            return Crops([], None, {**failure_record(src, why, "skipped"), "size": [w, h]}, t)
        img, padded = pad_to(img, cfg.crop), True
    boxes = crop_boxes(img.shape[0], img.shape[1], cfg.crop, cfg.stride, cfg.scale, cfg.max_patches)
    if not boxes:
        why = f"too small for scale {cfg.scale} ({w}x{h})"
        return Crops([], None, {**failure_record(src, why, "skipped"), "size": [w, h]}, t)
    file_sha = hashlib.sha256(data).hexdigest()
    patches = []
    src_key, src_path = (
        src.key,
        storage.shown(src.path),
    )  # once per input: both are computed (pathlib, a hash)
    for j, (x, y, bw, bh) in enumerate(boxes):
        key = f"{src_key}_{j:04d}"
        meta = {
            "key": key,
            "source": src.rel,
            "source_path": src_path,
            "source_sha256": file_sha,
            "source_size": [w, h],
            "padded": padded,
            "crop_box": [x, y, bw, bh],
            "scale": cfg.scale,
            "hq_size": [bw, bh],
            "seed": cfg.seed,
            "sample_seed": seed_to_json(sample_seed(cfg.seed, key)),
            "redegkit_version": __version__,
            "shard_format": SHARD_FORMAT,
        }
        patch = img[y : y + bh, x : x + bw]
        patches.append((key, np.ascontiguousarray(patch) if contiguous else patch, meta))
    return Crops(patches, None, None, t)


def sample_json(meta: dict[str, Any]) -> bytes:
    """A sample's provenance record as it is stored: ``json.dumps(meta, sort_keys=True)``, UTF-8."""
    return json.dumps(meta, sort_keys=True).encode("utf-8")
