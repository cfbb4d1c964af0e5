"""The source stage of the learned path (runs in the pool's workers): read, decode and cut each
input, draw every sample's plan, encode its HQ PNG and write its JSON; hybrid samples go through
their preset here and are finished whole.

One task is a chunk of consecutive inputs -> one :class:`SourceChunk`. The samples' ``hq.png``
and ``json`` tar members (all three members of a hybrid sample) go to the chunk's source part
file, never through the main process; what comes back is small: per sample where its members are
and its :class:`~.plan.DeviceSpec`, and the learned samples' crops in one
:class:`~.pixels.ImagePack` (shared memory, not the pipe) for the device.
"""

from __future__ import annotations

import contextlib
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...bank.apply import TilePlan, plan_tiles
from ...io import storage
from ...io.images import encode_image
from ...io.shards import PartRef, ShardWriterError, check_key, tar_member_parts
from ...rng import sample_rng
from ..classical import PresetDegrader
from ..config import SynthConfig
from ..crops import INPUT_ERRORS, cut_crops, failure_record, sample_json
from ..messages import WorkItem, new_timings
from .pixels import ImagePack, Segment
from .plan import Calibration, ChoiceTable, DeviceSpec, device_spec, draw_plan, hybrid_coin, parse_mix_preset
from .post import PostStep, draw_post_steps


@dataclass(frozen=True)  # no slots: a slotted dataclass unpickles through fields(), 2x slower
class SourceSample:
    """One sample as the device stage sees it: its ``hq.png`` and ``json`` members are written
    (``members``, in the chunk's source part file; ``payload``: their bytes); ``spec`` None means a
    hybrid sample, finished by its preset, whose ``lq.png`` member is written there too."""

    key: str
    members: PartRef
    payload: int
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
    """Consecutive inputs: their samples in order, and the learned samples' HQ crops (``hq``, in
    the same order) for the device."""

    inputs: list[SourceInput]
    hq: ImagePack
    timings: dict[str, float]


@dataclass(frozen=True)
class SourceTask:
    """Consecutive inputs, the part file their samples' members go to, and a shared segment the
    main process lends for their crops (:class:`~.pixels.SharedBuffers`)."""

    items: list[WorkItem]
    part: str
    buffer: Segment | None = None


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


class _PartWriter:
    """Appends tar members to a part file -> where each sample's went."""

    def __init__(self, path: str) -> None:
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.path, self.file, self.offset = path, open(path, "wb"), 0
        except OSError as e:
            raise ShardWriterError(f"shard writer failed: {type(e).__name__}: {e}") from e

    def write(self, key: str, fields: dict[str, bytes]) -> tuple[PartRef, int]:
        """The sample's members, fields in sorted order (as :func:`sample_members` makes them),
        written piece by piece (no joined copy) -> where they are, and their payload bytes."""
        check_key(key)
        start, payload = self.offset, 0
        try:
            for name in sorted(fields):
                for piece in tar_member_parts(f"{key}.{name}", fields[name]):
                    self.file.write(piece)
                    self.offset += len(piece)
                payload += len(fields[name])
        except OSError as e:
            raise ShardWriterError(f"shard writer failed: {type(e).__name__}: {e}") from e
        return PartRef(self.path, start, self.offset - start), payload


def _learned_sample(state: SourceState, key: str, crop: np.ndarray, meta: dict[str, Any],
                    part: _PartWriter) -> SourceSample:  # fmt: skip
    cfg = state.cfg
    bw, bh = meta["hq_size"]
    plan = draw_plan(cfg, state.table, state.calibration, key, len(state.tiles(bh, bw).grid))
    plan = draw_post_steps(state.steps, cfg, key, plan)
    meta["method"] = plan.method(state.provenance)
    hq_png = encode_image(crop, "png", png_level=cfg.png_level)
    ref, payload = part.write(key, {"hq.png": hq_png, "json": sample_json(meta)})
    return SourceSample(key, ref, payload, device_spec(plan))


def _hybrid_sample(state: SourceState, key: str, crop: np.ndarray, meta: dict[str, Any],
                   part: _PartWriter) -> SourceSample:  # fmt: skip
    """A sample through the run's classical preset, written whole (raises INPUT_ERRORS)."""
    assert state.preset is not None
    crop = np.ascontiguousarray(crop)
    lq, method = state.preset(crop, sample_rng(state.cfg.seed, key))
    meta["method"] = {**method, "hybrid": {"preset": state.preset.name, "share": state.share}}
    level = state.cfg.png_level
    fields = {"hq.png": encode_image(crop, "png", png_level=level), "lq.png": encode_image(lq, "png", png_level=level),
              "json": sample_json(meta)}  # fmt: skip
    ref, payload = part.write(key, fields)
    return SourceSample(key, ref, payload, None)


def read_input(state: SourceState, item: WorkItem, hq: list[np.ndarray], part: _PartWriter,
               t: dict[str, float]) -> SourceInput:  # fmt: skip
    """One input: its samples' members into ``part``, its learned crops appended to ``hq``."""
    cfg, src = state.cfg, item.source
    crops = cut_crops(src, cfg, contiguous=False)
    for k, v in crops.timings.items():
        t[k] += v
    out = SourceInput(item.index, storage.shown(src.path), failure=crops.failure, skipped=crops.skipped)
    if not crops.patches:
        return out
    t0 = time.perf_counter()
    learned = []
    for key, crop, meta in crops.patches:
        meta["lq_size"] = [meta["hq_size"][0] // cfg.scale, meta["hq_size"][1] // cfg.scale]
        if state.preset is None or not hybrid_coin(cfg, key, state.share):
            out.samples.append(_learned_sample(state, key, crop, meta, part))
            learned.append(crop)
            continue
        try:
            out.samples.append(_hybrid_sample(state, key, crop, meta, part))
        except INPUT_ERRORS as e:  # as in the classical path: an input problem fails the image
            why = f"degradation failed on {key}: {type(e).__name__}: {e}"
            return SourceInput(item.index, storage.shown(src.path), failure=failure_record(src, why))
    hq += learned
    t["encode"] += time.perf_counter() - t0
    return out


def read_chunk(state: SourceState, task: SourceTask) -> SourceChunk:
    """The task: consecutive inputs -> a :class:`SourceChunk` (their members in ``task.part``)."""
    t = new_timings()
    hq: list[np.ndarray] = []
    part = _PartWriter(task.part)
    try:
        inputs = [read_input(state, item, hq, part, t) for item in task.items]
        part.file.close()
    except OSError as e:  # closing flushes: a full disk shows here
        raise ShardWriterError(f"shard writer failed: {type(e).__name__}: {e}") from e
    finally:
        if not part.file.closed:
            with contextlib.suppress(OSError):  # already failing: the first error is the one to report
                part.file.close()
    t0 = time.perf_counter()
    pack = ImagePack.into(task.buffer, hq)
    t["read"] += time.perf_counter() - t0
    return SourceChunk(inputs, pack, t)
