"""The source stage of the learned path (runs in the pool's workers): read, decode and cut each
input, draw every sample's plan, write its JSON, and run hybrid samples through their preset.

One task is a chunk of consecutive inputs -> one :class:`SourceChunk`: the crops in one
:class:`~.pixels.ImagePack` (shared memory, not the pipe), the hybrid samples' finished LQs in a
second one, and per sample its key, JSON and :class:`~.plan.DeviceSpec`.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...bank.apply import TilePlan, plan_tiles
from ...rng import sample_rng
from ..classical import PresetDegrader
from ..config import SynthConfig
from ..crops import INPUT_ERRORS, cut_crops, failure_record, sample_json
from ..messages import WorkItem, new_timings
from .pixels import ImagePack
from .plan import Calibration, ChoiceTable, DeviceSpec, device_spec, draw_plan, hybrid_coin, parse_mix_preset
from .post import PostStep, draw_post_steps


@dataclass(frozen=True, slots=True)
class SourceSample:
    """One sample as the device stage sees it: ``spec`` None means a hybrid sample, finished by
    its preset already (its LQ is the next one in the chunk's ``ready`` pack)."""

    key: str
    json: bytes
    spec: DeviceSpec | None


@dataclass
class SourceInput:
    index: int
    path: str
    samples: list[SourceSample] = field(default_factory=list)
    failure: dict[str, Any] | None = None
    skipped: dict[str, Any] | None = None


@dataclass
class SourceChunk:
    """Consecutive inputs: their samples in order, every sample's HQ crop (``hq``, in the same
    order) and the hybrid samples' LQs (``ready``, in their order)."""

    inputs: list[SourceInput]
    hq: ImagePack
    ready: ImagePack
    timings: dict[str, float]


@dataclass
class SourceState:
    """What every worker holds to plan samples (built once per process)."""

    cfg: SynthConfig
    table: ChoiceTable
    calibration: Calibration
    provenance: dict[str, Any]
    multiple: int
    steps: tuple[PostStep, ...]
    preset: PresetDegrader | None
    share: float

    @classmethod
    def build(cls, cfg_json: str, user_presets: dict[str, Any] | None, table: ChoiceTable,
              calibration: Calibration, provenance: dict[str, Any], multiple: int,
              steps: tuple[PostStep, ...]) -> SourceState:  # fmt: skip
        cfg = SynthConfig.model_validate_json(cfg_json)
        name, share = parse_mix_preset(cfg.mix_preset)
        preset = PresetDegrader(name, user_presets, cfg.scale) if name else None
        return cls(cfg, table, calibration, provenance, multiple, steps, preset, share)

    def tiles(self, h: int, w: int) -> TilePlan:
        return _plan_tiles(h, w, self.cfg.tile, self.cfg.tile_overlap, self.multiple)


@functools.lru_cache(maxsize=256)
def _plan_tiles(h: int, w: int, tile: int, overlap: int, multiple: int) -> TilePlan:
    return plan_tiles(h, w, tile, overlap, multiple)


def _learned_sample(state: SourceState, key: str, meta: dict[str, Any]) -> SourceSample:
    cfg = state.cfg
    bw, bh = meta["hq_size"]
    plan = draw_plan(cfg, state.table, state.calibration, key, len(state.tiles(bh, bw).grid))
    plan = draw_post_steps(state.steps, cfg, key, plan)
    meta["method"] = plan.method(state.provenance)
    return SourceSample(key, sample_json(meta), device_spec(plan))


def read_input(state: SourceState, item: WorkItem, hq: list[np.ndarray], ready: list[np.ndarray],
               t: dict[str, float]) -> SourceInput:  # fmt: skip
    """One input: its crops appended to ``hq``, hybrid LQs to ``ready`` (nothing on a failure)."""
    cfg, src = state.cfg, item.source
    crops = cut_crops(src, cfg, contiguous=False)
    for k, v in crops.timings.items():
        t[k] += v
    out = SourceInput(item.index, str(src.path), failure=crops.failure, skipped=crops.skipped)
    if not crops.patches:
        return out
    t0 = time.perf_counter()
    crops_of, lqs = [], []
    for key, crop, meta in crops.patches:
        meta["lq_size"] = [meta["hq_size"][0] // cfg.scale, meta["hq_size"][1] // cfg.scale]
        if state.preset is None or not hybrid_coin(cfg, key, state.share):
            out.samples.append(_learned_sample(state, key, meta))
        else:
            crop = np.ascontiguousarray(crop)
            try:
                lq, method = state.preset(crop, sample_rng(cfg.seed, key))
            except INPUT_ERRORS as e:  # as in the classical path: an input problem fails the image
                why = f"degradation failed on {key}: {type(e).__name__}: {e}"
                return SourceInput(item.index, str(src.path), failure=failure_record(src, why))
            meta["method"] = {**method, "hybrid": {"preset": state.preset.name, "share": state.share}}
            out.samples.append(SourceSample(key, sample_json(meta), None))
            lqs.append(lq)
        crops_of.append(crop)
    hq += crops_of
    ready += lqs
    t["degrade"] += time.perf_counter() - t0
    return out


def read_chunk(state: SourceState, chunk: list[WorkItem]) -> SourceChunk:
    """The task: consecutive inputs -> a :class:`SourceChunk`."""
    t = new_timings()
    hq: list[np.ndarray] = []
    ready: list[np.ndarray] = []
    inputs = [read_input(state, item, hq, ready, t) for item in chunk]
    t0 = time.perf_counter()
    packs = ImagePack.of(hq), ImagePack.of(ready)
    t["read"] += time.perf_counter() - t0
    return SourceChunk(inputs, packs[0], packs[1], t)
