"""The classical producer of `synthesize`: HQ crops -> LQ through a preset of :mod:`redegkit.degrade`.

One input image per task on the run's worker pool, results in input order; each sample's
parameters are drawn from ``sample_rng(seed, key)`` and its bytes (PNGs, JSON, tar members) are
made in the worker, so the main process only appends them to the shard. Needs numpy and OpenCV
only: this path never imports torch.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..io.images import encode_image
from ..io.pool import WorkerPool
from ..io.shards import sample_members
from ..rng import sample_rng
from .config import SynthConfig
from .core import chunked
from .crops import INPUT_ERRORS, cut_crops, failure_record, sample_json
from .messages import EncodedChunk, InputDone, RunTarget, WorkItem


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


def encode_sample(
    key: str, hq: np.ndarray, lq: np.ndarray, meta: dict[str, Any], level: int
) -> tuple[bytes, int]:
    """One sample's tar members (``hq.png``, ``json``, ``lq.png``) -> (bytes, payload bytes)."""
    fields = {
        "hq.png": encode_image(hq, "png", png_level=level),
        "lq.png": encode_image(lq, "png", png_level=level),
        "json": sample_json(meta),
    }
    return sample_members(key, fields)


@dataclass
class ClassicalState:
    """What a worker holds: the run's config and its preset."""

    cfg: SynthConfig
    degrader: PresetDegrader

    @classmethod
    def build(cls, cfg_json: str, user_presets: dict[str, Any] | None) -> ClassicalState:
        cfg = SynthConfig.model_validate_json(cfg_json)
        return cls(cfg, PresetDegrader(cfg.preset or "realesrgan", user_presets, cfg.scale))


def process_input(state: ClassicalState, item: WorkItem, timings: dict[str, float]) -> InputDone:
    """Crops -> preset -> encoded samples (or a failure record) for one input."""
    cfg, src = state.cfg, item.source
    crops = cut_crops(src, cfg)
    for k, v in crops.timings.items():
        timings[k] = timings.get(k, 0.0) + v
    if not crops.patches:
        return InputDone(item.index, failure=crops.failure, skipped=crops.skipped)
    keys, parts, payload = [], [], 0
    for key, hq, meta in crops.patches:
        t0 = time.perf_counter()
        try:
            lq, method = state.degrader(hq, sample_rng(cfg.seed, key))
        except INPUT_ERRORS as e:  # this image cannot be degraded so: record it, keep going
            reason = f"degradation failed on {key}: {type(e).__name__}: {e}"
            return InputDone(item.index, failure=failure_record(src, reason, "failed"))
        if lq.shape[0] * cfg.scale != hq.shape[0] or lq.shape[1] * cfg.scale != hq.shape[1]:
            raise RuntimeError(
                f"{src.path}: degrader returned {lq.shape} for HQ {hq.shape} at scale {cfg.scale}"
            )
        t1 = time.perf_counter()
        meta = {**meta, "lq_size": [lq.shape[1], lq.shape[0]], "method": method}
        members, n = encode_sample(key, hq, lq, meta, cfg.png_level)
        keys.append(key)
        parts.append(members)
        payload += n
        timings["degrade"] += t1 - t0
        timings["encode"] += time.perf_counter() - t1
    return InputDone(item.index, keys, b"".join(parts), payload)


def classical_chunk(state: ClassicalState, chunk: list[WorkItem]) -> EncodedChunk:
    """The task of one worker: consecutive inputs -> their encoded samples."""
    timings: dict[str, float] = {}
    return EncodedChunk([process_input(state, item, timings) for item in chunk], timings)


class ClassicalProducer:
    """The producer of a preset run (see :class:`redegkit.synth.core.Producer`)."""

    def worker_setup(self, cfg: SynthConfig, user_presets: dict[str, Any] | None) -> Callable[[], Any]:
        # fail here, once, on an unknown preset (not in every worker's initializer)
        PresetDegrader(cfg.preset or "realesrgan", user_presets, cfg.scale)
        return functools.partial(ClassicalState.build, cfg.model_dump_json(), user_presets)

    def results(
        self, todo: list[WorkItem], cfg: SynthConfig, pool: WorkerPool, target: RunTarget
    ) -> Iterator[EncodedChunk]:
        # one input per task: an image's crops and degradations are milliseconds to seconds
        yield from pool.map_ordered(classical_chunk, chunked(todo, 1), window=4 * pool.workers)

    def runtime(self) -> dict[str, Any]:
        return {"device": "cpu"}
