"""The learned producer of ``redeg synthesize --bank emb.pt``: HQ crops -> LQ through a bank.

It plugs into :func:`redegkit.synth.core.run_synthesis` (shards, resume, report and failure
records are shared; :func:`redegkit.synth.synthesize` picks it when ``cfg.bank`` is set) and yields
one :class:`~redegkit.synth.core.ImageResult` per input, in input order. This module imports torch;
the classical path (:mod:`redegkit.synth.classical`) does not import it.

Data flow, so that the GPU never waits on PNG encoding when CPU cores exist, and the bulk bytes
never pass through the main process (with ``--workers`` > 1 on a system with ``fork``)::

    worker processes      read, decode, crop; per sample draw the plan from sample_rng(seed, key),
                          encode the HQ PNG and serialise the sample's JSON; hybrid samples go
                          through the classical preset here. Crop, PNG and JSON go into the
                          worker's shared-memory ring (redegkit.io.shm); the message is small
    main process          tiles of consecutive samples in fixed batches (crops read in place from
                          the rings) -> encoder + generator (bf16, channels_last, compiled on CUDA)
                          -> blend tiles -> calibration, noise -> downsample -> uint8, copied back
                          while the next batch is prepared
    worker processes      one task per batch encodes its LQ PNGs (into the worker's LQ ring)
    writer process        writes the shards straight from the rings, hashes, releases the rings
                          (redegkit.io.sink_process), in input order

Without a pool, or without ``fork``, the same steps run with the bytes inline.

Determinism: every random choice comes from the sample's key; batches are runs of consecutive
tiles in input order (never shaped by the number of workers), networks run in eval mode, and the
noise is a counter-based hash. One seed gives byte-identical shards whatever ``--workers``.
"""

from __future__ import annotations

import functools
import json
import math
import multiprocessing as mp
import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..bank import Bank, BankError, build_synthesizer, cluster_bank, load_bank, module_sha256
from ..bank.apply import (
    Synthesizer,
    TiledImage,
    TilePlan,
    apply_calibration,
    finalize,
    finish_on_host,
    index_on,
    plan_tiles,
    to_device,
)
from ..io.images import encode_image, u8_to_unit
from ..io.pool import ProcessPool, windowed_map
from ..io.shards import ShardSink
from ..io.shm import SharedArenas
from ..io.sink_process import ProcessSink
from ..io.sources import Source
from ..io.tiles import pad_reflect
from ..rng import sample_rng, sample_seed, seed_to_json
from ..run import RunContext
from .classical import PresetDegrader
from .core import (
    INPUT_ERRORS,
    ImageResult,
    SynthConfig,
    cut_crops,
    failure_record,
    ignore_sigint,
)

# ------------------------------------------------------------------------------------------------
# Per-sample plans (drawn in the worker processes)


@dataclass
class ChoiceTable:
    """What a worker needs to draw embedding indices: the bank size, cluster labels, weights."""

    n: int
    labels: np.ndarray | None
    weights: np.ndarray | None


def parse_mix_preset(spec: str | None) -> tuple[str | None, float]:
    """``"realesrgan:0.3"`` -> ("realesrgan", 0.3); None -> (None, 0.0)."""
    if not spec:
        return None, 0.0
    name, _, share = spec.rpartition(":")
    return name, float(share)


def draw_plan(cfg: SynthConfig, table: ChoiceTable, key: str) -> dict[str, Any]:
    """The learned degradation of one sample, as JSON-able data, from ``sample_rng(seed, key)``."""
    rng = sample_rng(cfg.seed, key)

    def pick(slot: int) -> int:
        if cfg.index:  # a fixed index wins over the choice mode
            return int(cfg.index[min(slot, len(cfg.index) - 1)])
        if cfg.choice == "cluster":
            members = np.flatnonzero(table.labels == int(rng.integers(int(table.labels.max()) + 1)))
            return int(members[int(rng.integers(len(members)))])
        if cfg.choice == "weighted":
            return int(rng.choice(table.n, p=table.weights))
        return int(rng.integers(table.n))

    indices, weights = [pick(0)], [1.0]
    if cfg.mix:
        indices.append(pick(1))
        t = float(rng.random())
        weights = [round(1.0 - t, 6), round(t, 6)]
    lo = cfg.strength if cfg.strength_min is None else min(cfg.strength_min, cfg.strength)
    strength = cfg.strength if lo == cfg.strength else float(rng.uniform(lo, cfg.strength))
    sigma = 0.0
    if float(rng.random()) < cfg.noise_prob:
        sigma = int(rng.integers(0, round(cfg.noise_max * 100) + 1)) / 100.0
    interp = cfg.down[int(rng.integers(len(cfg.down)))]
    return {
        "choice": "index" if cfg.index else cfg.choice,
        "indices": indices,
        "mix_weights": weights,
        "strength": round(strength, 6),
        "noise_sigma": sigma,
        "noise_seed": sample_seed(cfg.seed, key, "noise"),
        "downsample": interp,
    }


# ------------------------------------------------------------------------------------------------
# What follows the generator, as the shard JSON records it (drawn and serialised in the workers)


# A placeholder for a value that is serialised apart and spliced into a sample's JSON: json.dumps
# writes it as "\u0000<name>", which no other string can produce (a NUL in a string is always
# written escaped, and a backslash as two).
_HOLE = "\x00"
_CAL_LISTS = ("filter", "color", "noise_cov")  # the calibration's arrays, mixed per plan
_HOLE_JSON = "\\u0000"


def _scalar_json(v: Any) -> str:
    """``json.dumps(v)`` for one scalar, without the encoder's setup for the common cases."""
    t = type(v)
    if (t is float and math.isfinite(v)) or t is int:
        return repr(v)
    if t is str and v.isascii() and v.isalnum():
        return f'"{v}"'
    return json.dumps(v)


def sample_json(meta: dict[str, Any], post_json: str | None) -> bytes:
    """``json.dumps(meta, sort_keys=True)`` as UTF-8, with ``meta["method"]["post"]`` (a
    placeholder) written as ``post_json`` (see :meth:`Calibration.post_json`)."""
    text = json.dumps(meta, sort_keys=True)
    if post_json is not None:
        text = text.replace(f'"{_HOLE_JSON}post"', post_json, 1)
    return text.encode("utf-8")


class Calibration:
    """The bank's per-embedding calibration, mixed per plan: the JSON's rounded numbers
    (:meth:`post_of`) and, from exactly those numbers, the float32 arrays the device applies
    (:meth:`arrays`), so a sample is reproducible from its shard JSON. Picklable; its caches are
    per process."""

    def __init__(self, cal: dict[str, torch.Tensor] | None) -> None:
        # float64 once per run, not torch ops per sample on the hot path
        self.np = (
            None
            if cal is None
            else {k: v.double().numpy() if k != "jpeg" else v.numpy() for k, v in cal.items()}
        )
        self._mixed = functools.lru_cache(maxsize=4096)(self._mix_calibration)
        self._arrays = functools.lru_cache(maxsize=4096)(self._mix_arrays)
        self._lists_json = functools.lru_cache(maxsize=4096)(self._json_lists)

    def __getstate__(self) -> dict[str, Any]:
        return {"np": self.np}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(None)
        self.np = state["np"]

    def post_of(self, plan: dict[str, Any], cfg: SynthConfig, key: str) -> dict[str, Any] | None:
        """What follows the generator for this plan, as JSON-able numbers (recorded in the shard JSON
        as ``post``): strength, and with the bank's calibration the mixed colour map, noise
        covariance and correlation, and the JPEG quality of the dominant embedding moved towards 100
        by the strength. None when nothing follows (strength 1, no calibration)."""
        s = float(plan["strength"])
        if self.np is None or not cfg.calibration:
            return None if s == 1.0 else {"strength": s}
        idx, wts = plan["indices"], plan["mix_weights"]
        q = int(self.np["jpeg"][idx[max(range(len(wts)), key=wts.__getitem__)]])  # the first largest weight
        q = 0 if q == 0 or s == 0 else int(round(100 - s * (100 - q)))
        return {
            "strength": s,
            **self._mixed(tuple(idx), tuple(wts)),
            "noise_seed": seed_to_json(sample_seed(cfg.seed, key, "calib-noise")),
            "jpeg": q,
        }

    def wire(self, post: dict[str, Any] | None) -> dict[str, Any] | None:
        """What a worker sends of ``post`` to the main process: the scalars (the main process mixes
        the arrays itself, :meth:`arrays`, from its own cache)."""
        if post is None or "noise_corr" not in post:  # noise_corr: a calibrated post
            return post
        return {k: v for k, v in post.items() if k not in _CAL_LISTS}

    def arrays(self, plan: dict[str, Any], post: dict[str, Any] | None) -> dict[str, Any] | None:
        """``post`` (or its :meth:`wire` form) with its calibration as float32 arrays (what
        :func:`apply_calibration` reads)."""
        if post is None or "noise_corr" not in post:  # noise_corr: a calibrated post
            return post
        return {**post, **self._arrays(tuple(plan["indices"]), tuple(plan["mix_weights"]))}

    def post_json(self, plan: dict[str, Any], post: dict[str, Any]) -> str:
        """``json.dumps(post, sort_keys=True)``, exactly, with the mixed calibration's lists (about
        120 floats, most of a sample's JSON time) serialised once per mix, not once per sample."""
        if "filter" not in post:
            return json.dumps(post, sort_keys=True)
        lists = self._lists_json(tuple(plan["indices"]), tuple(plan["mix_weights"]))
        # post's keys are plain identifiers (nothing to escape); json.dumps writes the scalars
        return (
            "{"
            + ", ".join(f'"{k}": {lists[k] if k in lists else _scalar_json(post[k])}' for k in sorted(post))
            + "}"
        )

    def _json_lists(self, idx: tuple[int, ...], wts: tuple[float, ...]) -> dict[str, str]:
        mixed = self._mixed(idx, wts)
        return {k: json.dumps(mixed[k]) for k in _CAL_LISTS}

    def _mix_arrays(self, idx: tuple[int, ...], wts: tuple[float, ...]) -> dict[str, np.ndarray]:
        mixed = self._mixed(idx, wts)
        return {k: np.asarray(mixed[k], np.float32) for k in _CAL_LISTS}

    def _mix_calibration(self, idx: tuple[int, ...], wts: tuple[float, ...]) -> dict[str, Any]:
        """The embeddings' calibration mixed with the plan's weights, rounded (the JSON's numbers)."""

        def rnd(a: np.ndarray) -> list:
            return [rnd(x) for x in a] if a.ndim > 1 else [round(float(v), 7) for v in a.tolist()]

        def mix(key: str) -> np.ndarray:
            return sum(self.np[key][i] * w for i, w in zip(idx, wts, strict=True))

        return {
            "filter": rnd(mix("filter")),
            "color": rnd(mix("color")),
            "noise_cov": rnd(mix("noise_cov")),
            "noise_corr": round(float(mix("noise_corr")), 5),
        }


# ------------------------------------------------------------------------------------------------
# Worker side: decode + crop + plan + HQ encode + the sample's JSON (and hybrid samples); LQ encode


@dataclass
class _Sample:
    """One sample on the wire. Bulk values are :data:`~redegkit.io.shm.Ref` s into the worker's
    arena (or, without room or arenas, the bytes / array themselves)."""

    key: str
    hq_png: Any
    json: Any
    lq_png: Any = None  # hybrid samples arrive done
    hq: Any = None  # learned samples: the uint8 crop for the synthesizer
    size: tuple[int, int] = (0, 0)  # (h, w) of the crop
    plan: dict[str, Any] | None = None  # the per-sample numbers the device needs
    cal: dict[str, Any] | None = None  # what follows the generator: its scalars (Calibration.wire)


@dataclass
class _Decoded:
    index: int
    samples: list[_Sample]
    failure: dict[str, Any] | None
    skipped: dict[str, Any] | None
    timings: dict[str, float]
    path: str = "?"  # the source file (named by a failure that happens later, on the device)


@dataclass
class WorkerSetup:
    """What every worker (and the main process, without a pool) needs to plan and serialise samples."""

    cfg_json: str
    user_presets: dict[str, Any] | None
    table: ChoiceTable
    calibration: Calibration
    provenance: dict[str, Any]
    multiple: int


_W: dict[str, Any] = {}
# Ring sizes per worker (redegkit.io.shm); None: sized from the run (see ring_sizes). A ring that is
# full makes its worker send inline (slower, the same bytes).
DECODE_ARENA_BYTES: int | None = None
LQ_ARENA_BYTES: int | None = None
# The main process's own ring: the LQ batches it hands to the workers to encode (None: sized from
# the run, see ring_sizes). Full, a batch goes pickled through the pool's pipe (slower, the same bytes).
OUT_ARENA_BYTES: int | None = None


def ring_sizes(cfg: SynthConfig) -> tuple[int, int]:
    """(decode, LQ) ring bytes per worker (the main process's LQ-out ring: :func:`out_ring_size`).
    A sample stays in its ring from decoding until the writer has written it: the decode window
    (about 3 batches), the batch being filled, the batches in flight, the LQ encodes and the
    writer's backlog (WRITER_LAG_BATCHES), about (IN_FLIGHT + 6 + WRITER_LAG_BATCHES) batches in
    all; a crop and its PNG take at most about twice the crop's pixels in bytes (RGB). Each
    worker's ring gets twice its share (workers do not take equal shares), at least 32 MiB;
    whole-image runs (no crop) assume tile-sized images."""
    total = (IN_FLIGHT + 6 + WRITER_LAG_BATCHES) * cfg.batch * ring_sample_bytes(cfg)
    decode = max(32 << 20, 2 * total // cfg.workers)
    lq = max(8 << 20, decode // (2 * cfg.scale * cfg.scale) if cfg.scale > 1 else decode // 2)
    return (DECODE_ARENA_BYTES or decode), (LQ_ARENA_BYTES or lq)


def ring_sample_bytes(cfg: SynthConfig) -> int:
    """What :func:`ring_sizes` budgets for one sample in a decode ring: twice the crop's RGB pixels
    (the crop and its PNG) and 16 KiB (the JSON), more than a sample takes."""
    side = cfg.crop or cfg.tile
    return 2 * 3 * side * side + (16 << 10)


def out_ring_size(cfg: SynthConfig) -> int:
    """Bytes of the main process's ring for the LQ batches on their way to the workers' encoders:
    a batch stays there from the device's result (or its copy off the GPU) until its encode task
    has finished: the batches in flight, and the encode tasks queued behind decode tasks in the
    pool (about 3 batches). Room for twice that at the LQ size (calibrated-JPEG samples go at the
    HQ size, 16x at x4: those fall back to the pipe when it is full), at least 16 MiB."""
    side = cfg.crop or cfg.tile
    lq_side = max(1, side // cfg.scale)
    return OUT_ARENA_BYTES or max(16 << 20, 2 * (IN_FLIGHT + 3) * cfg.batch * 3 * lq_side * lq_side)


def _out_arena(arenas: SharedArenas) -> int:
    """The main process's LQ-out ring: the last arena (after each worker's decode and LQ rings)."""
    return len(arenas.arenas) - 1


def _init_worker(
    setup: WorkerSetup, arenas: SharedArenas | None = None, todo: list[tuple[int, Source]] | None = None
) -> None:
    import cv2

    cv2.setNumThreads(1)  # the pool is the parallelism; threads per worker would oversubscribe
    # Also torch's (calibrated-JPEG samples are finished here): a forked child must never enter the
    # parent's OpenMP pool, which does not survive fork and hangs.
    torch.set_num_threads(1)
    cfg = SynthConfig.model_validate_json(setup.cfg_json)
    name, share = parse_mix_preset(cfg.mix_preset)
    _W.clear()
    _W.update(
        cfg=cfg,
        setup=setup,
        share=share,
        arenas=arenas,
        mine=None,
        todo=todo,
        preset=PresetDegrader(name, setup.user_presets, cfg.scale) if name else None,
    )


def _init_pool_worker(*args: Any) -> None:
    ignore_sigint()  # Ctrl-C is the main process's (it terminates the pool)
    _init_worker(*args)


def _my_arenas() -> tuple[int, int] | None:
    """This worker's (decode, LQ) arenas, or None (no arenas: everything goes inline)."""
    if _W["arenas"] is None:
        return None
    if _W["mine"] is None:
        owned = _W["arenas"].owned()
        if len(owned) != 2:
            return None  # not registered (yet): inline
        _W["mine"] = (owned[0], owned[1])
    return _W["mine"]


def _put(arena: int | None, data: Any) -> Any:
    """``data`` into ``arena`` -> its ref; the data itself when there is no arena or no room."""
    if arena is None:
        return data
    ref = _W["arenas"].put(arena, data)
    return data if ref is None else ref


def _put_png(arena: int | None, img: np.ndarray, level: int) -> Any:
    """``img`` as PNG into ``arena`` -> its ref; the bytes themselves without an arena or room."""
    return _put(arena, encode_image(img, "png", png_level=level))


def _decode_at(pos: int) -> _Decoded:
    """Input ``pos`` of the run's work list (inherited by the worker: a task is one integer)."""
    return _decode_task(_W["todo"][pos])


def _decode_task(item: tuple[int, Source]) -> _Decoded:
    index, src = item
    cfg: SynthConfig = _W["cfg"]
    setup: WorkerSetup = _W["setup"]
    # read, decode, small-image policy, patch grid: as the classical path (views: a learned crop is
    # copied once, into the ring, and its PNG encoded from there)
    crops = cut_crops(src, cfg, contiguous=False)
    t = crops.timings
    if not crops.patches:
        return _Decoded(index, [], crops.failure, crops.skipped, t)
    mine = _my_arenas()
    arena = None if mine is None else mine[0]
    # First the small steps of every sample of the input (the hybrid coin, plan, calibration, JSON),
    # back to back while their code is warm in the caches, then the bulk (ring copies, PNG encodes)
    t2 = time.perf_counter()
    planned: list[tuple[dict[str, Any], dict[str, Any] | None, bytes] | None] = []
    for key, _, meta in crops.patches:
        bw, bh = meta["hq_size"]
        meta["lq_size"] = [bw // cfg.scale, bh // cfg.scale]
        # The hybrid coin has its own salt, so a preset sample degrades exactly as a classical
        # run of that preset would (same sample_rng(seed, key) stream).
        if _W["preset"] is not None and float(sample_rng(cfg.seed, key, "hybrid").random()) < _W["share"]:
            planned.append(None)
            continue
        plan = draw_plan(cfg, setup.table, key)
        plan["tiles"] = len(_plan_tiles(bh, bw, cfg.tile, cfg.tile_overlap, setup.multiple).grid)
        post = setup.calibration.post_of(plan, cfg, key)
        if post is not None:
            plan["post"] = post
        meta["method"] = {
            "kind": "bank",
            **setup.provenance,
            **plan,
            "noise_seed": seed_to_json(plan["noise_seed"]),
        }
        post_json = None
        if post is not None:
            meta["method"]["post"] = _HOLE + "post"
            post_json = setup.calibration.post_json(plan, post)
        device_plan = {
            k: plan[k]
            for k in ("indices", "mix_weights", "strength", "noise_sigma", "noise_seed", "downsample")
        }
        planned.append((device_plan, setup.calibration.wire(post), sample_json(meta, post_json)))
    t["encode"] += time.perf_counter() - t2
    samples = []
    for (key, hq, meta), plan_of in zip(crops.patches, planned, strict=True):
        t2 = time.perf_counter()
        bh, bw = hq.shape[:2]
        if plan_of is None:  # a hybrid sample: the classical preset, here
            hq = np.ascontiguousarray(hq)
            try:
                lq, method = _W["preset"](hq, sample_rng(cfg.seed, key))
            except INPUT_ERRORS as e:  # as in the classical path: an input problem fails the image
                return _Decoded(
                    index,
                    [],
                    failure_record(src, f"degradation failed on {key}: {type(e).__name__}: {e}"),
                    None,
                    t,
                )
            meta["method"] = {**method, "hybrid": {"preset": _W["preset"].name, "share": _W["share"]}}
            t3 = time.perf_counter()
            t["degrade"] += t3 - t2
            t2 = t3
            js = sample_json(meta, None)
            s = _Sample(key, b"", b"", lq_png=_put_png(arena, lq, cfg.png_level))
        else:
            device_plan, cal, js = plan_of
            ref = _put(arena, hq)  # the crop's one copy: into the ring (or, without room, inline)
            if isinstance(ref, tuple):
                hq = _W["arenas"].array(ref, hq.shape)
            else:
                ref = hq = np.ascontiguousarray(hq)
            s = _Sample(key, b"", b"", hq=ref, size=(bh, bw), plan=device_plan, cal=cal)
        s.hq_png = _put_png(arena, hq, cfg.png_level)
        # last in the arena: releasing the JSON (written last of the sample) frees the whole sample
        s.json = _put(arena, js)
        t["encode"] += time.perf_counter() - t2
        samples.append(s)
    return _Decoded(index, samples, None, None, t, str(src.path))


@functools.lru_cache(maxsize=256)
def _plan_tiles(h: int, w: int, tile: int, overlap: int, multiple: int) -> TilePlan:
    return plan_tiles(h, w, tile, overlap, multiple)


def _encode_batch(
    args: tuple[np.ndarray | list[np.ndarray], int, list[dict[str, Any] | None]],
) -> tuple[list[Any], float]:
    """PNG-encode a batch of LQs ([n, h, w, 3], or a list of [h, w, 3] of several sizes), in order
    -> (the PNGs as refs into this worker's LQ arena, or bytes; seconds). A sample with a calibrated JPEG arrives at the HQ resolution and is finished
    here first (JPEG, spec noise, downsampling: :func:`finish_on_host`)."""
    t0 = time.perf_counter()
    arr, level, hosts = args
    mine = _my_arenas()
    if isinstance(arr, _InRing):  # the whole batch, in the main process's ring
        arr = arr.view(_W["arenas"])
    out = []
    for k, host in enumerate(hosts):
        a = arr[k]
        if isinstance(a, _InRing):
            a = a.view(_W["arenas"])
        if host is not None:
            a = finish_on_host(a, **host)
        out.append(_put_png(None if mine is None else mine[1], a, level))
    return out, time.perf_counter() - t0


@dataclass(frozen=True)
class _InRing:
    """An LQ array (or batch) in the main process's ring: what an encode task receives instead of
    the pixels (a few integers through the pool's pipe, not ~0.8 MB a batch pickled)."""

    ref: tuple[int, int, int, int]
    shape: tuple[int, ...]

    def view(self, arenas: SharedArenas) -> np.ndarray:
        return arenas.array(self.ref, self.shape)

    def at(self, k: int) -> _InRing:
        """Row ``k`` of a batch whose ``shape`` here is one row's (the same release position)."""
        n = math.prod(self.shape)
        arena, off, _, rel = self.ref
        return _InRing((arena, off + k * n, n, rel), self.shape)


class _OutRing:
    """The main process's side of its LQ-out ring: copies arrays in (or hands out room for a copy
    off the GPU), and frees them in the order they were taken once their encode tasks are done
    (release frees everything before a ref too, so never out of order)."""

    def __init__(self, arenas: SharedArenas | None, arena: int | None) -> None:
        self.arenas, self.arena = arenas, arena
        self.pending: deque[tuple[Any, list[tuple[int, int, int, int]]]] = deque()  # (task, its refs)
        self.fallbacks = 0  # arrays that went through the pipe (ring full or none)

    def room(self, shape: tuple[int, ...]) -> tuple[_InRing, np.ndarray] | None:
        """Room for a uint8 array of ``shape`` -> (its ref, a writable view), or None."""
        got = None if self.arena is None else self.arenas.reserve(self.arena, math.prod(shape))
        if got is None:
            return None
        ref = _InRing(got, tuple(shape))
        return ref, ref.view(self.arenas)

    def put(self, a: np.ndarray) -> Any:
        """``a`` (uint8) copied into the ring -> its :class:`_InRing`, or ``a`` itself when full
        (or without a ring: no pool, the encodes run in this process)."""
        if self.arena is None:
            return a
        ref = self.arenas.put(self.arena, a) if a.dtype == np.uint8 else None
        if ref is None:
            self.fallbacks += 1
            return a
        return _InRing(ref, a.shape)

    def track(self, task: Any, refs: list[_InRing]) -> None:
        if refs:
            self.pending.append((task, [r.ref for r in refs]))

    def reap(self) -> None:
        """Free the oldest tasks' arrays, in order, while their tasks have finished."""
        while self.pending and self.pending[0][0].ready():
            for ref in self.pending.popleft()[1]:
                self.arenas.release(ref)


# ------------------------------------------------------------------------------------------------
# Main side: batches on the device, in input order


class _Inline:
    """The AsyncResult interface for work done in the main process (``--workers 1``)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def ready(self) -> bool:
        return True

    def get(self) -> Any:
        return self.value


@dataclass
class _Open:
    """An input on its way: its decoded samples, LQ encodes in flight, and its timings."""

    dec: _Decoded
    lq: dict[int, tuple[Any, int]] = field(default_factory=dict)  # sample slot -> (batch encode handle, row)
    handles: list[Any] = field(default_factory=list)  # the distinct encode tasks of those
    learned: int = 0  # samples that go through the synthesizer
    failure: str | None = None


@dataclass
class _Job:
    """One learned sample: its image on the device, tiles, embedding and owner."""

    owner: _Open
    slot: int
    tiles: TilePlan
    z: np.ndarray
    plan: dict[str, Any]
    hq8: np.ndarray | None = None  # the uint8 crop until it goes to the device
    cal: dict[str, Any] | None = None  # plan["post"] with its calibration as arrays
    image: TiledImage | None = None  # multi-tile samples only: their tiles and blending
    host: dict[str, Any] | None = None  # set when the worker finishes the sample (calibrated JPEG)
    in_ring: bool = False  # hq8 is a view into a worker's arena (pinned on CUDA when registered)
    single: bool = field(init=False)
    batch_key: tuple = field(init=False)

    def __post_init__(self) -> None:
        # the image fits one tile: it needs no blending
        self.single = len(self.tiles.grid) == 1
        # what a batch shares: one tile shape, and for single-tile images one image size
        self.batch_key = (self.tiles.shape, (self.tiles.h, self.tiles.w) if self.single else None)

    def tiled(self, dev: torch.device) -> TiledImage:
        if self.image is None:
            self.image = TiledImage(_to_float(torch.from_numpy(self.hq8[None]), dev)[0], self.tiles)
            self.hq8 = None
        return self.image


def _upload_crops(crops: list[np.ndarray], dev: torch.device, pinned: bool) -> torch.Tensor:
    """uint8 crops [H, W, 3] (host; views into the arenas or arrays) -> one uint8 batch [N, H, W, 3]
    on ``dev``. On the CPU that is one stack. On CUDA, when every crop is a view into arenas
    registered as pinned memory (``pinned``), each is copied by DMA straight from its arena (no CPU
    copy, no wait); else they are stacked into pinned memory and uploaded in one copy."""
    if dev.type != "cuda":
        return torch.from_numpy(np.stack(crops))
    if pinned:
        out = torch.empty((len(crops), *crops[0].shape), dtype=torch.uint8, device=dev)
        for k, c in enumerate(crops):
            out[k].copy_(torch.from_numpy(c), non_blocking=True)
        return out
    host = torch.empty((len(crops), *crops[0].shape), dtype=torch.uint8, pin_memory=True)
    np.stack(crops, out=host.numpy())
    return host.to(dev, non_blocking=True)


def _settle(dev: torch.device) -> None:
    """Wait for the device's queued work, where a batch leaves no event to wait on (it failed, or no
    image in it finished): its uploads may still read crops in the arenas, which the writer could
    otherwise release (and a worker reuse) before the DMA ran. Rare; a no-op off CUDA."""
    if dev.type == "cuda":
        torch.cuda.current_stream(dev).synchronize()


def _pin_arenas(arenas: SharedArenas | None, dev: torch.device) -> Any:
    """Register the arenas as pinned memory for DMA uploads (CUDA) -> an undo callable, or None
    when that is not possible (then uploads go through a pinned staging copy)."""
    if arenas is None or dev.type != "cuda":
        return None
    try:
        cudart = torch.cuda.cudart()
        probe = np.frombuffer(arenas.mm, np.uint8, count=1)
        ptr, size = int(probe.ctypes.data), len(arenas.mm)
        del probe
        if int(cudart.cudaHostRegister(ptr, size, 0)) != 0:
            return None
        return lambda: cudart.cudaHostUnregister(ptr)
    except Exception:  # an older torch without cudart bindings: stage instead
        return None


def _to_float(x8: torch.Tensor, dev: torch.device) -> torch.Tensor:
    """uint8 [N, H, W, 3] (host) -> float [N, 3, H, W] in [-1, 1] on ``dev``: one pinned upload of
    the uint8 bytes, the conversion on the device (the mapping of ``to_tensor``)."""
    return u8_to_unit(to_device(x8, dev).permute(0, 3, 1, 2))


IN_FLIGHT = 2  # batches whose results are still on their way back while the next one is prepared
WRITER_LAG_BATCHES = 2  # samples handed to the shard writer and not yet written: at most this many batches
DECODE_CHUNK = 8  # at most this many inputs per worker task (the pool's per-task cost is a few hundred µs)


class LearnedProducer:
    """The producer of the learned path (see the module doc)."""

    def __init__(
        self, bank: Bank, encoder: torch.nn.Module, generator: torch.nn.Module, provenance: dict[str, Any]
    ) -> None:
        self.bank, self.encoder, self.generator, self.provenance = bank, encoder, generator, provenance
        self.synth: Synthesizer | None = None  # built on first use, cached for the run
        self.ctx: RunContext | None = None  # this process's rank and device, resolved with it
        self._arenas: SharedArenas | None = None  # made by make_sink, taken by the run that follows
        self.shared_memory, self.inline = False, 0  # the last run's: rings used, samples sent inline
        self.lq_piped = 0  # the last run's LQ arrays that went to the encoders through the pipe
        self._calibration: Calibration | None = None  # the run's (made in __call__, shared with its workers)

    def table(self, cfg: SynthConfig) -> ChoiceTable:
        labels = cluster_bank(self.bank).labels if cfg.choice == "cluster" else None
        w = self.bank.weights.double().numpy()
        return ChoiceTable(len(self.bank), labels, w / w.sum() if cfg.choice == "weighted" else None)

    def z_of(self, plan: dict[str, Any]) -> torch.Tensor:
        """The plan's embedding: one bank entry, or the weighted mix of two (strength acts in image
        space, see :func:`redegkit.bank.apply.apply_calibration`)."""
        e = self._emb_np
        idx = plan["indices"]
        if len(idx) == 1 and plan["mix_weights"][0] == 1.0:
            return e[idx[0]]  # the common case: the entry itself (a view, no arithmetic)
        return sum(e[i] * np.float32(wt) for i, wt in zip(idx, plan["mix_weights"], strict=True))

    @functools.cached_property
    def _emb_np(self) -> np.ndarray:
        return self.bank.embeddings.float().numpy()

    def _pooled(self, todo: list[tuple[int, Source]], cfg: SynthConfig) -> bool:
        return cfg.workers > 1 and len(todo) > 1

    def make_sink(self, todo: list[tuple[int, Source]], cfg: SynthConfig, sink_args: dict[str, Any]) -> Any:
        """The sink of a run (called by :func:`~redegkit.synth.core.run_synthesis` before the
        producer starts). With worker processes and ``fork``: shared arenas for the bulk bytes (one
        decode and one LQ ring per worker, then the main process's LQ-out ring, the last) and a
        writer process that writes the shards from them, so the main process only moves small
        messages. Else the plain in-process ShardSink."""
        self._arenas = None
        if not (self._pooled(todo, cfg) and hasattr(os, "fork")):
            return ShardSink(**sink_args)
        decode, lq = ring_sizes(cfg)
        out = out_ring_size(cfg)
        total = (decode + lq) * cfg.workers + out
        try:  # at most a quarter of the memory for the rings (touched pages only, but they wrap)
            budget = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4
        except (ValueError, OSError, AttributeError):
            budget = total
        f = min(1.0, budget / total)
        self._arenas = SharedArenas([int(decode * f), int(lq * f)] * cfg.workers + [int(out * f)])
        return ProcessSink(self._arenas, max_lag=WRITER_LAG_BATCHES * cfg.batch, **sink_args)

    def __call__(
        self, todo: list[tuple[int, Source]], cfg: SynthConfig, user_presets: dict[str, Any] | None
    ) -> Iterator[ImageResult]:
        self._calibration = Calibration(self.bank.calibration)  # the workers' copy, and the main's
        setup = WorkerSetup(
            cfg.model_dump_json(),
            user_presets,
            self.table(cfg),
            self._calibration,
            self.provenance,
            int(self.encoder.multiple),
        )
        name, _ = parse_mix_preset(cfg.mix_preset)
        if name:
            from ..degrade import get_preset

            get_preset(name, user_presets=user_presets)  # fail here, not in every worker's initializer
        arenas, self._arenas = self._arenas, None  # one run's
        self.shared_memory, self.inline = arenas is not None, 0
        pool = None
        if self._pooled(todo, cfg):
            # Fork before the device is touched: CUDA must not be initialised in a forking parent.
            ctx = mp.get_context("fork") if hasattr(os, "fork") else mp.get_context("spawn")
            pool = ProcessPool(
                cfg.workers,
                initializer=_init_pool_worker,
                context=ctx,
                initargs=(setup, arenas if ctx.get_start_method() == "fork" else None, todo),
            )
            if arenas is not None:
                for k, pid in enumerate(pool.pids()):  # worker k allocates in arenas 2k (decode), 2k+1 (LQ)
                    arenas.set_owner(2 * k, pid)
                    arenas.set_owner(2 * k + 1, pid)
                arenas.set_owner(_out_arena(arenas), os.getpid())  # the LQ-out ring is ours
        else:
            _init_worker(setup)
        try:
            yield from self._run(todo, cfg, pool, arenas)
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
            if arenas is not None:
                arenas.close()  # the writer process keeps its own mapping until it is done

    def runtime(self) -> dict[str, Any]:
        """Where the synthesizer ran, and whether torch.compile was used or failed (report.json)."""
        s = self.synth
        if s is None:
            return {}
        return {
            "device": str(s.device),
            "local_rank": self.ctx.local_rank,
            "precision": "bf16" if s.bf16 else "fp32",
            "compiled": s.compiled is not None,
            "compile_error": s.compile_error,
            # samples whose bytes could not go through the shared rings (full): a speed matter
            "shared_memory": self.shared_memory,
            "inline_samples": self.inline,
            # LQ arrays handed to the encoders through the pool's pipe (the out ring full)
            "lq_piped": self.lq_piped,
        }

    def _synthesizer(self, cfg: SynthConfig) -> Synthesizer:
        if self.synth is None:
            # Under torchrun each rank takes its own GPU (cuda:LOCAL_RANK, made current), not GPU 0.
            self.ctx = RunContext.from_env(cfg.device, cfg.precision)
            self.synth = Synthesizer(
                self.encoder,
                self.generator,
                device=self.ctx.device,
                precision=self.ctx.precision,
                compile=cfg.compile,
                static_batch=cfg.batch,
            )
        return self.synth

    def _run(
        self, todo: list[tuple[int, Source]], cfg: SynthConfig, pool: Any, arenas: SharedArenas | None
    ) -> Iterator[ImageResult]:
        synth = self._synthesizer(cfg)
        dev = synth.device
        unpin = _pin_arenas(arenas, dev)
        pinned = unpin is not None
        try:
            yield from self._batches(todo, cfg, pool, arenas, synth, pinned)
        finally:
            if unpin is not None:
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)  # no DMA may still read the arenas
                unpin()

    def _batches(
        self,
        todo: list[tuple[int, Source]],
        cfg: SynthConfig,
        pool: Any,
        arenas: SharedArenas | None,
        synth: Synthesizer,
        pinned: bool,
    ) -> Iterator[ImageResult]:
        dev = synth.device
        opened: deque[_Open] = deque()
        batch: list[tuple[_Job, int]] = []  # (job, tile index) of the next forward
        # (groups, the event of their copies off the device, seconds, their rows' room in the out ring)
        inflight: list[tuple[list[tuple[list[_Job], torch.Tensor]], Any, float, list[_InRing | None]]] = []
        ring = _OutRing(arenas, _out_arena(arenas) if arenas is not None and pool is not None else None)
        self.lq_piped = 0

        def submit(fn, arg):
            return pool.apply_async(fn, (arg,)) if pool is not None else _Inline(fn(arg))

        def land(
            groups: list[tuple[list[_Job], torch.Tensor]],
            event: Any,
            secs: float,
            staged: list[_InRing | None],
        ) -> None:
            # The device->host copies of a finished batch: wait for them, then hand LQs to encoders.
            if event is not None:
                event.synchronize()
            # One encode task per batch (not per sample), its samples in their global order: the
            # worker allocates their PNGs in its LQ ring in that order and the writer releases them
            # in that order (a ring is FIFO). Groups of one size split a batch out of order. The
            # pixels go through the out ring (the copy off a GPU may have landed there already).
            rows = []
            for (jobs, lq), st in zip(groups, staged, strict=True):
                arr = lq.numpy()
                rows += [(job, arr, k, st) for k, job in enumerate(jobs)]
            ordered = sorted(rows, key=lambda r: (r[0].owner.dec.index, r[0].slot))
            in_order = all(a is b for a, b in zip(ordered, rows, strict=True))
            if len(groups) == 1 and in_order:
                arrs = staged[0] if staged[0] is not None else ring.put(groups[0][1].numpy())
                sent = [arrs]
            else:
                arrs = sent = [
                    ring.put(a[k]) if st is None else _InRing(st.ref, st.shape[1:]).at(k)
                    for _, a, k, st in ordered
                ]
            self.lq_piped = ring.fallbacks
            handle = submit(_encode_batch, (arrs, cfg.png_level, [job.host for job, _, _, _ in ordered]))
            # every staged group has rows among those sent (its rows share its release position)
            ring.track(handle, [a for a in sent if isinstance(a, _InRing)])
            ring.reap()
            for k, (job, _, _, _) in enumerate(ordered):
                job.owner.lq[job.slot] = (handle, k)
                if not job.owner.handles or job.owner.handles[-1] is not handle:
                    job.owner.handles.append(handle)
                job.owner.dec.timings["degrade"] += secs / len(ordered)

        def forward() -> None:
            items = list(batch)
            batch.clear()
            t0 = time.perf_counter()
            in_ring = False  # DMA uploads straight from the arenas were queued (single-tile lane)
            try:
                z = to_device(torch.from_numpy(np.stack([job.z for job, _ in items])), dev)
                if items[0][0].single:  # batches are homogeneous (see batch_key)
                    # the common case (a crop fits in one tile): the whole batch goes up as uint8 in
                    # one copy, is converted there, and needs no blending
                    first = items[0][0].tiles
                    in_ring = pinned and all(job.in_ring for job, _ in items)  # else staged
                    hq = _to_float(_upload_crops([job.hq8 for job, _ in items], dev, in_ring), dev)
                    for job, _ in items:
                        job.hq8 = None
                    x = pad_reflect(hq, first.ph - first.h, first.pw - first.w)
                    out = synth(x, z)[:, :, : first.h, : first.w]
                    keep = [k for k, (job, _) in enumerate(items) if job.owner.failure is None]
                    done = [items[k][0] for k in keep]
                    if len(keep) < len(items):
                        sel = index_on(keep, dev)  # from pinned memory: no wait for the GPU
                        out, hq = out[sel], hq[sel]
                    groups = self._finish(done, cfg, out, hq) if done else []
                else:
                    x = torch.stack([job.tiled(dev).tile(i) for job, i in items])
                    out = synth(x, z)
                    done = []
                    for (job, i), o in zip(items, out, strict=True):
                        if job.owner.failure is not None:
                            continue
                        job.image.add(i, o)
                        if job.image.pending == 0:
                            done.append(job)
                    groups = self._finish(done, cfg)
            except (
                torch.cuda.OutOfMemoryError
            ) as e:  # too big for the device: fail this batch's inputs, go on
                hint = "out of memory: lower --batch or --tile"
                for job, _ in items:
                    if job.owner.failure is None:
                        key = job.owner.dec.samples[job.slot].key
                        job.owner.failure = f"synthesis failed on {key}: {hint} ({str(e)[:200]})"
                if in_ring:
                    _settle(dev)
                return
            if not groups:
                if in_ring:
                    _settle(dev)
                return
            event, staged = None, [None] * len(groups)
            if dev.type == "cuda":
                hosts = []
                for g, (jobs, lq) in enumerate(groups):
                    # straight into the out ring when it is pinned (a DMA; pageable memory would
                    # make the copy synchronous), else pinned staging copied into it on landing
                    got = ring.room(tuple(lq.shape)) if pinned and lq.dtype == torch.uint8 else None
                    if got is not None:
                        staged[g], host = got[0], torch.from_numpy(got[1])
                    else:
                        host = torch.empty(lq.shape, dtype=lq.dtype, pin_memory=True)
                    host.copy_(lq, non_blocking=True)
                    hosts.append((jobs, host))
                event = torch.cuda.Event()
                event.record()
                groups = hosts
            inflight.append((groups, event, time.perf_counter() - t0, staged))
            while len(inflight) > IN_FLIGHT:  # batches queued on the device while the next is prepared
                land(*inflight.pop(0))

        def ready(block: bool) -> Iterator[ImageResult]:
            # The head input is done when it failed, or every learned sample's LQ encode was
            # handed out (and, unless draining, has finished).
            ring.reap()
            while opened and (
                opened[0].failure is not None
                or len(opened[0].lq) == opened[0].learned
                and (block or all(h.ready() for h in opened[0].handles))
            ):
                yield self._result(opened.popleft())

        seen = [0, 0]  # inputs decoded, their samples: how many crops an input brings, on average

        def per_input() -> float:
            return max(seen[1] / seen[0], 0.25) if seen[0] else 1.0

        # at most the inputs in flight of one input per task (whole-image runs: ~1 sample an input)
        cap = max(8, 2 * cfg.batch, 4 * cfg.workers)

        def chunk() -> int:  # inputs per task: about 32 samples a message, at most DECODE_CHUNK inputs
            return min(DECODE_CHUNK, max(1, round(32 / per_input())), max(1, cap // (2 * cfg.workers)))

        def window() -> int:  # inputs in flight: about 3 batches of samples, every worker busy
            return min(cap, max(2 * cfg.workers * chunk(), math.ceil(3 * cfg.batch / per_input())))

        decoded = (
            (_decode_task(item) for item in todo)
            if pool is None
            else windowed_map(pool, _decode_at, range(len(todo)), window=window, chunk=chunk)
        )
        for dec in decoded:
            seen[0] += 1
            seen[1] += len(dec.samples)
            op = _Open(dec)
            opened.append(op)
            for slot, s in enumerate(dec.samples):
                if s.lq_png is not None:
                    continue
                plan = _plan_tiles(s.size[0], s.size[1], cfg.tile, cfg.tile_overlap, synth.multiple)
                # the crop in place in the worker's arena (or as it came, inline)
                hq8 = arenas.array(s.hq, (*s.size, 3)) if isinstance(s.hq, tuple) else s.hq
                job = _Job(
                    op,
                    slot,
                    plan,
                    self.z_of(s.plan),
                    s.plan,
                    hq8=hq8,
                    cal=self._calibration.arrays(s.plan, s.cal),
                    in_ring=isinstance(s.hq, tuple),
                )
                op.learned += 1
                for i in range(len(plan.grid)):
                    if batch and batch[0][0].batch_key != job.batch_key:
                        forward()
                    batch.append((job, i))
                    if len(batch) >= cfg.batch:
                        forward()
                if not isinstance(s.hq, tuple):
                    s.hq = None  # the array is the job's now; a ref stays (the writer releases it)
            yield from ready(block=False)
        if batch:
            forward()
        while inflight:
            land(*inflight.pop(0))
        yield from ready(block=True)

    def _finish(
        self,
        done: list[_Job],
        cfg: SynthConfig,
        y_all: torch.Tensor | None = None,
        hq_all: torch.Tensor | None = None,
    ) -> list[tuple[list[_Job], torch.Tensor]]:
        """Calibrate, noise, downsample and quantise the samples finished in this batch, grouped by
        size (tiled images of several sizes can finish together) -> [(jobs, uint8 [n, h, w, 3])].
        ``y_all``/``hq_all``: the outputs and inputs of ``done`` as batches (single-tile images of one
        size); else they come from each job's blended tiles."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for k, job in enumerate(done):
            # a sample with a calibrated JPEG leaves the device at the HQ resolution (the JPEG and
            # what follows it run in a worker), so it groups apart
            jpeg = int((job.cal or {}).get("jpeg", 0))
            groups.setdefault((job.tiles.h, job.tiles.w, jpeg > 0), []).append(k)
        out = []
        for (_, _, host), ks in groups.items():
            jobs = [done[k] for k in ks]
            if y_all is not None:
                whole = len(ks) == len(done)
                sel = None if whole else index_on(ks, y_all.device)
                y = y_all if whole else y_all[sel]
                hq = hq_all if whole else hq_all[sel]
            else:
                y = torch.stack([j.image.result() for j in jobs])
                hq = None
            if any(j.cal is not None for j in jobs):
                if hq is None:
                    hq = torch.stack([j.image.hq() for j in jobs])
                y = apply_calibration(y, hq, [j.cal for j in jobs])
            if host:
                for j in jobs:
                    j.host = {
                        "jpeg": int(j.cal["jpeg"]),
                        "scale": cfg.scale,
                        "interp": j.plan["downsample"],
                        "sigma": j.plan["noise_sigma"],
                        "seed": j.plan["noise_seed"],
                    }
                out.append(
                    (
                        jobs,
                        finalize(
                            y,
                            scale=1,
                            interps=["bilinear"] * len(jobs),
                            sigmas=[0.0] * len(jobs),
                            seeds=[0] * len(jobs),
                        ),
                    )
                )
            else:
                out.append(
                    (
                        jobs,
                        finalize(
                            y,
                            scale=cfg.scale,
                            interps=[j.plan["downsample"] for j in jobs],
                            sigmas=[j.plan["noise_sigma"] for j in jobs],
                            seeds=[j.plan["noise_seed"] for j in jobs],
                        ),
                    )
                )
        return out

    def _result(self, op: _Open) -> ImageResult:
        dec = op.dec
        if op.failure is not None:
            return ImageResult(
                dec.index, [], {"path": dec.path, "reason": op.failure, "kind": "failed"}, None, dec.timings
            )
        samples = []
        for slot, s in enumerate(dec.samples):
            if s.lq_png is None:
                handle, row = op.lq[slot]
                pngs, secs = handle.get()
                s.lq_png = pngs[row]
                dec.timings["encode"] += secs / len(pngs)
            # bytes, or refs into the workers' arenas that the shard writer resolves (io.sink_process);
            # "_hq" (the crop, not stored: names with "_" are not) is there for the writer to release
            fields = {"hq.png": s.hq_png, "json": s.json, "lq.png": s.lq_png}
            if isinstance(s.hq, tuple):
                fields["_hq"] = s.hq
            if self.shared_memory and not all(isinstance(v, tuple) for v in fields.values()):
                self.inline += 1
            samples.append((s.key, fields))
        return ImageResult(dec.index, samples, dec.failure, dec.skipped, dec.timings)


# ------------------------------------------------------------------------------------------------
# Entry point used by redegkit.synth.synthesize (when cfg.bank is set)


def bank_producer(cfg: SynthConfig, *, force: bool = False) -> tuple[LearnedProducer, dict[str, Any]]:
    """Load ``cfg.bank`` (and ``cfg.model`` when given), check the options against it, and return
    the producer plus what goes into the run fingerprint. Raises :class:`BankError` on a bad bank
    or options that do not fit it; a ``--model`` whose DegNet did not make the bank is refused
    unless ``force``."""
    bank = load_bank(cfg.bank)
    encoder, generator = build_synthesizer(bank)
    prov = {"bank": Path(cfg.bank).name, "bank_sha256": bank.sha256, "synthesizer": "bank"}
    if cfg.model:
        from ..fit.loop import load_fitted

        nets = load_fitted(cfg.model)
        if module_sha256(nets["degnet"]) != bank.degnet_sha256 and not force:
            raise BankError(
                f"{cfg.model}: its DegNet did not make {cfg.bank}; its generator would read the bank's "
                "embeddings in another space (pass --force to use it anyway)"
            )
        encoder, generator = nets["encoder"], nets["generator"]
        if generator.style_dim != bank.dim:
            raise BankError(
                f"{cfg.model}: generator takes {generator.style_dim}-d embeddings, the bank holds {bank.dim}-d"
            )
        prov.update(synthesizer=str(cfg.model), synthesizer_sha256=module_sha256(generator))
    n = len(bank)
    if cfg.choice == "index" or cfg.index:
        if not cfg.index or any(not 0 <= i < n for i in cfg.index) or len(cfg.index) > 2:
            raise BankError(
                f"--index needs one or two indices in [0, {n - 1}] (the bank holds {n}), got {cfg.index}"
            )
    if cfg.choice == "weighted" and float(bank.weights.sum()) <= 0:
        raise BankError(f"{cfg.bank}: all sampling weights are 0; --choice weighted has nothing to draw")
    producer = LearnedProducer(bank, encoder, generator, prov)
    return producer, {"bank_sha256": bank.sha256, "model": prov.get("synthesizer_sha256")}
