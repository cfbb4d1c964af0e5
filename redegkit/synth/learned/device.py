"""The device stage of the learned path (runs in the main process): HQ crops + plans -> LQ uint8.

- :class:`DeviceItem`: one learned sample on its way (its crop, plan, tiles, and who gets its LQ);
- :class:`DeviceBatch` + :func:`degrade_batch`: a batch and the pure function that degrades it
  (synthesizer, the bank's calibration, the post steps, then noise, downsampling and rounding),
  with device, precision and transfers from the :class:`~redegkit.run.RunContext`;
- :class:`DeviceStage`: the batcher and the batches in flight. Batch boundaries depend on the
  sample sequence alone (consecutive single-tile samples of one size, up to ``batch``; an image of
  several tiles is a batch of its own, its tiles run ``batch`` at a time), never on workers or
  timing. On the CPU every sample is computed alone, so its bytes do not depend on the batch at
  all; on CUDA the copy of a batch's results to the host overlaps the next batch's work.

Uploads on CUDA: the crops' shared-memory segments are page-locked when they are made
(:func:`pin_host`, ``cudaHostRegister``), so the DMA reads the crops where the workers wrote them,
one copy per contiguous run (:func:`contiguous_runs`). The standard way, one copy of each batch into
a pinned staging buffer (what a DataLoader's pin-memory thread does), cost the main process 15 µs
per 256² crop alone and about 40 µs in a run beside its workers, which put the host path past its
target (``benchmarks/RESULTS.md``); it stays the path where CUDA refuses to page-lock a segment.
Neither CUDA branch has run on a GPU yet.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...bank.apply import Synthesizer, TilePlan
from ...bank.operators import apply_calibration, finalize, index_on
from ...io.tiles import pad_reflect, run_tiled
from ...run import RunContext
from .plan import Calibration, DeviceSpec
from .post import PostStep, apply_post_steps

IN_FLIGHT = 2  # CUDA: batches whose results are still on their way to the host while the next runs


@dataclass(slots=True)
class DeviceItem:
    hq: np.ndarray  # uint8 [h, w, 3], a view into its chunk's pack
    spec: DeviceSpec
    tiles: TilePlan
    owner: Any  # the engine's token: who receives this sample's LQ
    pinned: bool = False  # ``hq`` lies in page-locked memory (CUDA reads it without a staging copy)


@dataclass
class DeviceBatch:
    """Samples of one tile shape (several single-tile images of one size, or one tiled image)."""

    hq: list[np.ndarray]
    z: np.ndarray  # [N, D] float32 embeddings
    posts: list[dict[str, Any] | None]  # the calibration per sample (apply_calibration's)
    specs: list[DeviceSpec]
    tiles: TilePlan
    scale: int
    tile_batch: int  # tiles per forward of a tiled image
    steps: tuple[PostStep, ...] = ()  # the run's post steps (each sample's parameters: specs[i].steps)
    staging: Staging | None = None  # reused pinned upload buffers (CUDA)
    pinned: bool = False  # every crop lies in page-locked memory: uploaded from there directly

    def one(self, i: int) -> DeviceBatch:
        return DeviceBatch([self.hq[i]], self.z[i : i + 1], [self.posts[i]], [self.specs[i]], self.tiles,
                           self.scale, self.tile_batch, self.steps, self.staging, self.pinned)  # fmt: skip


@dataclass
class LqGroup:
    """Rows of a batch finished alike: ``lq`` uint8 [n, h, w, 3]; ``host``: at the HQ resolution,
    with the JPEG, the spec's noise and the downsampling still to do on the host (a calibrated JPEG)."""

    rows: list[int]
    lq: torch.Tensor
    host: bool


class Staging:
    """Reused host buffers for the uploads: on CUDA pinned memory (the one host copy of a batch's
    crops, then a DMA), a ring of ``depth`` per shape so a buffer is not overwritten while the
    copy from it may still run (``depth`` > the batches in flight)."""

    def __init__(self, pinned: bool, depth: int = IN_FLIGHT + 2) -> None:
        self.pinned, self.depth = pinned, depth
        self.rings: dict[tuple[int, ...], list[torch.Tensor]] = {}
        self.next: dict[tuple[int, ...], int] = {}

    def take(self, shape: tuple[int, ...]) -> torch.Tensor:
        ring = self.rings.setdefault(shape, [])
        k = self.next.get(shape, 0)
        if len(ring) <= k:
            ring.append(torch.empty(shape, dtype=torch.uint8, pin_memory=self.pinned))
        self.next[shape] = (k + 1) % self.depth
        return ring[k]


def pin_host(a: np.ndarray) -> Callable[[], None] | None:
    """Page-lock ``a``'s memory for DMA (``cudaHostRegister``) -> the undo, or None where CUDA
    refuses (uploads from it then go through the staging copy)."""
    cudart = torch.cuda.cudart()
    ptr = int(a.ctypes.data)
    if int(cudart.cudaHostRegister(ptr, int(a.nbytes), 0)) != 0:
        return None
    return lambda: cudart.cudaHostUnregister(ptr)


def contiguous_runs(crops: list[np.ndarray]) -> list[np.ndarray]:
    """Consecutive crops lying back to back in one buffer, as one array [k, h, w, c] per run (views,
    no copy): a source chunk's crops sit in its pack in sample order, so a batch is a few runs."""
    runs, start = [], 0
    for i in range(1, len(crops) + 1):
        if i < len(crops) and _follows(crops[i - 1], crops[i]):
            continue
        a = crops[start]
        runs.append(np.lib.stride_tricks.as_strided(a, (i - start, *a.shape), (a.nbytes, *a.strides)))
        start = i
    return runs


def _follows(a: np.ndarray, b: np.ndarray) -> bool:
    return (a.shape == b.shape and a.flags.c_contiguous and b.flags.c_contiguous
            and b.ctypes.data == a.ctypes.data + a.nbytes and _root(a) is _root(b))  # fmt: skip


def _root(a: np.ndarray) -> object:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a.base


def upload(
    ctx: RunContext, crops: list[np.ndarray], staging: Staging | None = None, pinned: bool = False
) -> torch.Tensor:
    """uint8 crops [h, w, 3] -> float [N, 3, h, w] in [-1, 1] on the device. On CUDA the uint8 bytes
    go by DMA, converted there: straight from the crops' own memory when it is page-locked
    (``pinned``: one copy per contiguous run), else after one copy into a reused pinned buffer."""
    if not ctx.cuda:
        x8 = torch.from_numpy(crops[0][None] if len(crops) == 1 else np.stack(crops))
        return ctx.to_device(x8.permute(0, 3, 1, 2)).contiguous()
    if pinned:
        runs = [torch.from_numpy(r).to(ctx.device, non_blocking=True) for r in contiguous_runs(crops)]
        return ctx.to_device(
            (runs[0] if len(runs) == 1 else torch.cat(runs)).permute(0, 3, 1, 2)
        ).contiguous()
    staging = staging or Staging(pinned=True)
    buf = staging.take((len(crops), *crops[0].shape))
    np.stack(crops, out=buf.numpy())
    return ctx.to_device(buf.permute(0, 3, 1, 2)).contiguous()


def _synthesize(synth: Synthesizer, batch: DeviceBatch, hq: torch.Tensor) -> torch.Tensor:
    t = batch.tiles
    z = torch.from_numpy(batch.z)
    if len(t.grid) == 1:
        return synth(pad_reflect(hq, t.ph - t.h, t.pw - t.w), z)[:, :, : t.h, : t.w]
    x = pad_reflect(hq, t.ph - t.h, t.pw - t.w)  # one tiled image
    zb = z.reshape(1, -1)
    out = run_tiled(lambda tiles: synth(tiles, zb.expand(len(tiles), -1)), x, t.grid, batch=batch.tile_batch)
    return out[:, :, : t.h, : t.w]


def degrade_batch(synth: Synthesizer, ctx: RunContext, batch: DeviceBatch) -> list[LqGroup]:
    """HQ crops -> LQ uint8 (on the device): the generator's output under each sample's embedding,
    its calibration and post steps, then (except for calibrated-JPEG samples) the spec's noise,
    downsampling and rounding. On the CPU each sample runs alone (batch-invariant bytes)."""
    n = len(batch.hq)
    if n > 1 and not ctx.cuda:
        return [LqGroup([i], g.lq, g.host) for i in range(n) for g in degrade_batch(synth, ctx, batch.one(i))]
    hq = upload(ctx, batch.hq, batch.staging, batch.pinned)
    y = _synthesize(synth, batch, hq)
    if any(p is not None for p in batch.posts):
        y = apply_calibration(y, hq, batch.posts)
    y = apply_post_steps(batch.steps, y, [s.steps for s in batch.specs])
    groups = []
    for host in (False, True):
        rows = [i for i, s in enumerate(batch.specs) if (s.jpeg > 0) == host]
        if not rows:
            continue
        yr = y if len(rows) == n else y[index_on(rows, y.device)]
        specs = [batch.specs[i] for i in rows]
        if host:  # only rounded here: the JPEG and what follows it run in a worker (finish_on_host)
            lq = finalize(
                yr, scale=1, interps=["bilinear"] * len(rows), sigmas=[0.0] * len(rows), seeds=[0] * len(rows)
            )
        else:
            lq = finalize(yr, scale=batch.scale, interps=[s.downsample for s in specs],
                          sigmas=[s.noise_sigma for s in specs], seeds=[s.noise_seed for s in specs])  # fmt: skip
        groups.append(LqGroup(rows, lq, host))
    return groups


@dataclass
class Landed:
    """A batch's results on the host (or why it failed)."""

    items: list[DeviceItem]
    groups: list[LqGroup]
    error: str | None = None


class DeviceStage:
    """The batcher and the batches in flight (see the module doc)."""

    def __init__(self, synth: Synthesizer, ctx: RunContext, *, embeddings: np.ndarray, calibration: Calibration,
                 scale: int, batch: int, steps: tuple[PostStep, ...] = (),
                 degrade: Callable[..., list[LqGroup]] = degrade_batch) -> None:  # fmt: skip
        self.synth, self.ctx, self.embeddings, self.calibration = synth, ctx, embeddings, calibration
        self.steps = steps
        self.staging = Staging(pinned=ctx.cuda)
        self.scale, self.batch, self.degrade = scale, max(1, batch), degrade
        self.pending: list[DeviceItem] = []
        self.inflight: deque[tuple[list[DeviceItem], list[LqGroup], Any]] = deque()

    def add(self, item: DeviceItem) -> list[Landed]:
        """Queue one sample; run what is full -> the batches that reached the host meanwhile."""
        out: list[Landed] = []
        single = len(item.tiles.grid) == 1
        if self.pending and (not single or _key(self.pending[0]) != _key(item)):
            out += self._run()
        self.pending.append(item)
        if not single or len(self.pending) >= self.batch:
            out += self._run()
        return out

    def flush(self) -> list[Landed]:
        """Run the last partial batch and land everything in flight."""
        out = self._run() if self.pending else []
        while self.inflight:
            out.append(self._land())
        return out

    def z_of(self, spec: DeviceSpec) -> np.ndarray:
        """The plan's embedding: one bank entry, or the weighted mix of two."""
        e = self.embeddings
        if len(spec.indices) == 1 and spec.mix_weights[0] == 1.0:
            return e[spec.indices[0]]
        return sum(e[i] * np.float32(w) for i, w in zip(spec.indices, spec.mix_weights, strict=True))

    def post_of(self, spec: DeviceSpec) -> dict[str, Any] | None:
        """What :func:`apply_calibration` reads for this sample (None: nothing to do)."""
        if spec.calibrated:
            return {
                "strength": spec.strength,
                "noise_seed": spec.cal_seed,
                **self.calibration.arrays(*spec.mix_key),
            }
        return None if spec.strength == 1.0 else {"strength": spec.strength}

    def _run(self) -> list[Landed]:
        items, self.pending = self.pending, []
        batch = DeviceBatch(
            [it.hq for it in items], np.stack([self.z_of(it.spec) for it in items]).astype(np.float32, copy=False),
            [self.post_of(it.spec) for it in items], [it.spec for it in items], items[0].tiles, self.scale,
            self.batch, self.steps, self.staging, all(it.pinned for it in items),
        )  # fmt: skip
        try:
            groups = self.degrade(self.synth, self.ctx, batch)
        except torch.cuda.OutOfMemoryError as e:  # too big for the device: fail these inputs, go on
            self._settle()
            return [Landed(items, [], f"out of memory: lower --batch or --tile ({str(e)[:200]})")]
        if not self.ctx.cuda:
            return [Landed(items, groups)]
        hosted = []
        for g in groups:  # device -> pinned host, without waiting
            host = torch.empty(g.lq.shape, dtype=g.lq.dtype, pin_memory=True)
            host.copy_(g.lq, non_blocking=True)
            hosted.append(LqGroup(g.rows, host, g.host))
        event = torch.cuda.Event()
        event.record()
        self.inflight.append((items, hosted, event))
        out = []
        while len(self.inflight) > IN_FLIGHT:
            out.append(self._land())
        return out

    def _land(self) -> Landed:
        items, groups, event = self.inflight.popleft()
        event.synchronize()
        return Landed(items, groups)

    def _settle(self) -> None:
        if self.ctx.cuda:
            torch.cuda.current_stream(self.ctx.device).synchronize()


def _key(item: DeviceItem) -> tuple[int, int]:
    return item.tiles.h, item.tiles.w
