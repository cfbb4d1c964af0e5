"""The classical producer of `synthesize`: HQ crops -> LQ through a preset of :mod:`redegkit.degrade`.

One input image per task on ``cfg.workers`` CPU processes (forked), results in input order; each
sample's parameters are drawn from ``sample_rng(seed, key)``. Needs numpy and OpenCV only: this
path never imports torch.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..io.images import encode_image
from ..io.sources import Source
from ..rng import sample_rng
from .core import (
    INPUT_ERRORS,
    ImageResult,
    SynthConfig,
    cut_crops,
    failure_record,
    ignore_sigint,
    sample_fields,
)


class PresetDegrader:
    """HQ crop -> LQ crop (H/scale x W/scale) + a JSON record of what was done, by a preset."""

    def __init__(self, preset_name: str, user_presets: dict[str, Any] | None, scale: int):
        from ..degrade import get_preset

        self.name = preset_name
        self.preset = get_preset(preset_name, user_presets=user_presets)
        self.scale = scale

    def __call__(self, hq: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        from ..degrade import apply_degradation, sample_degradation

        params = sample_degradation(self.preset, rng, scale=self.scale)
        lq = apply_degradation(hq, params, scale=self.scale)
        return lq, {"kind": "preset", "preset": self.name, "params": params.to_json()}


def encode_sample(hq: np.ndarray, lq: np.ndarray, meta: dict[str, Any], png_level: int) -> dict[str, bytes]:
    """The shard fields of one sample: ``hq.png``, ``lq.png``, ``json``."""
    return sample_fields(
        encode_image(hq, "png", png_level=png_level), encode_image(lq, "png", png_level=png_level), meta
    )


def process_image(index: int, src: Source, cfg: SynthConfig, degrader: Callable) -> ImageResult:
    """Classical path for one input: crops -> degrader -> encoded samples (or a failure record)."""
    crops = cut_crops(src, cfg)
    t = crops.timings
    if not crops.patches:
        return ImageResult(index, [], crops.failure, crops.skipped, t)
    samples = []
    for key, hq, meta in crops.patches:
        t2 = time.perf_counter()
        try:
            lq, method = degrader(hq, sample_rng(cfg.seed, key))
        except INPUT_ERRORS as e:  # this image cannot be degraded so: record it, keep going
            reason = f"degradation failed on {key}: {type(e).__name__}: {e}"
            return ImageResult(index, [], failure_record(src, reason, "failed"), None, t)
        if lq.shape[0] * cfg.scale != hq.shape[0] or lq.shape[1] * cfg.scale != hq.shape[1]:
            raise RuntimeError(
                f"{src.path}: degrader returned {lq.shape} for HQ {hq.shape} at scale {cfg.scale}"
            )
        t3 = time.perf_counter()
        meta = {**meta, "lq_size": [lq.shape[1], lq.shape[0]], "method": method}
        samples.append((key, encode_sample(hq, lq, meta, cfg.png_level)))
        t["degrade"] += t3 - t2
        t["encode"] += time.perf_counter() - t3
    return ImageResult(index, samples, None, None, t)


# ------------------------------------------------------------------------------------------------
# Worker processes

_WORKER: dict[str, Any] = {}


def _init_worker(cfg_json: str, user_presets: dict[str, Any] | None, in_pool: bool = False) -> None:
    if in_pool:
        ignore_sigint()
    cfg = SynthConfig.model_validate_json(cfg_json)
    _WORKER["cfg"] = cfg
    _WORKER["degrader"] = PresetDegrader(cfg.preset or "realesrgan", user_presets, cfg.scale)


def _worker_task(args: tuple[int, Source]) -> ImageResult:
    index, src = args
    return process_image(index, src, _WORKER["cfg"], _WORKER["degrader"])


def classical_results(
    todo: list[tuple[int, Source]], cfg: SynthConfig, user_presets: dict[str, Any] | None
) -> Iterator[ImageResult]:
    """The producer: one image per task on ``cfg.workers`` processes, results in input order."""
    if cfg.workers <= 1 or len(todo) <= 1:
        _init_worker(cfg.model_dump_json(), user_presets)
        for item in todo:
            yield _worker_task(item)
        return
    ctx = mp.get_context("fork") if hasattr(os, "fork") else mp.get_context("spawn")
    with ctx.Pool(
        cfg.workers, initializer=_init_worker, initargs=(cfg.model_dump_json(), user_presets, True)
    ) as pool:
        yield from pool.imap(_worker_task, todo, chunksize=1)
