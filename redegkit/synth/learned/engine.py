"""The learned producer: the source, device and sink stages wired together, in input order.

::

    pool workers   source  read, decode, crop; plan + JSON per sample; hybrid samples' presets
                           -> SourceChunk (crops in one shared-memory pack)
    main process   device  batches (fixed by the sample sequence) -> synthesizer, calibration,
                           post steps, noise, downsampling -> uint8 LQ (copied to the host while
                           the next batch runs, on CUDA)
    pool workers   sink    a chunk whose LQs are all there -> PNGs -> tar members (EncodedChunk)
    main process   core    appends the members to the shard (redegkit.synth.core)

The pool is the run's one :class:`~redegkit.io.pool.WorkerPool`, started before the device is
touched. Nothing here draws randomness: every sample's plan comes from its key in the source stage.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import torch

from ...bank import Bank, cluster_bank
from ...bank.apply import Synthesizer
from ...io.pool import WorkerPool
from ...io.shards import PartRef
from ...run import RunContext
from ..config import SynthConfig
from ..core import chunked
from ..messages import EncodedChunk, InputDone, RunTarget, WorkItem
from .device import DeviceItem, DeviceStage, Landed, LqGroup, degrade_batch, pin_host
from .pixels import ImagePack, Segment, SharedBuffers, segment_array
from .plan import Calibration, ChoiceTable, parse_mix_preset
from .post import STEPS, PostStep
from .sink import LqRef, SinkDone, SinkJob, encode_lqs
from .source import SourceChunk, SourceState, SourceTask, _plan_tiles, read_chunk

Pin = Callable[[Any], Callable[[], None] | None]  # page-locks an array -> the undo (None: could not)
TARGET_SAMPLES_PER_TASK = 32  # a source task's size: about this many samples (a task costs ~0.3 ms)
MAX_INPUTS_PER_TASK = 8


@dataclass
class _Open:
    """A source chunk on its way: where each learned sample's LQ is, once it is known (index:
    the sample's position among the chunk's learned samples)."""

    chunk: SourceChunk
    lq: list[LqRef | None]
    missing: int = 0  # learned samples whose LQ has not landed
    packs: list[ImagePack] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)  # input position -> why the device failed it
    future: Future[SinkDone] | None = None
    buffer: Segment | None = None  # lent for the crops; back to the pool once they are used

    def add_pack(self, pack: ImagePack) -> int:
        for i, p in enumerate(self.packs):
            if p is pack:
                return i
        self.packs.append(pack)
        return len(self.packs) - 1


class _Chunker:
    """Inputs per source task, adapted to the samples an input brings (grouping only: the output
    never depends on it)."""

    def __init__(self) -> None:
        self.inputs, self.samples = 0, 0

    def size(self) -> int:
        per = max(self.samples / self.inputs, 0.25) if self.inputs else 4.0
        return min(MAX_INPUTS_PER_TASK, max(1, round(TARGET_SAMPLES_PER_TASK / per)))

    def observe(self, chunk: SourceChunk) -> None:
        self.inputs += len(chunk.inputs)
        self.samples += sum(len(i.samples) for i in chunk.inputs)


class LearnedProducer:
    """The producer of a bank run (see :class:`redegkit.synth.core.Producer` and the module doc)."""

    def __init__(self, bank: Bank, encoder: torch.nn.Module, generator: torch.nn.Module,
                 provenance: dict[str, Any], steps: tuple[PostStep, ...] = STEPS,
                 degrade: Callable[..., list[LqGroup]] = degrade_batch, pin: Pin | None = None) -> None:  # fmt: skip
        """``steps``: the post steps (:mod:`.post`); ``degrade``: the device stage's function
        (:func:`~.device.degrade_batch`); ``pin``: page-locks a crops segment -> its undo (default:
        :func:`~.device.pin_host` on CUDA, none on the CPU). The host-path benchmark passes
        stand-ins for both."""
        self.bank, self.encoder, self.generator, self.provenance = bank, encoder, generator, provenance
        self.steps, self.degrade, self.pin = steps, degrade, pin
        self.multiple = int(encoder.multiple)  # type: ignore[arg-type]  # an int attribute of SynNetEncoder
        self.synth: Synthesizer | None = None  # built on first use, kept for later runs
        self.ctx: RunContext | None = None
        self.calibration = Calibration(bank.calibration)

    def table(self, cfg: SynthConfig) -> ChoiceTable:
        labels = cluster_bank(self.bank).labels if cfg.choice == "cluster" else None
        w = self.bank.weights.double().numpy()
        return ChoiceTable(len(self.bank), labels, w / w.sum() if cfg.choice == "weighted" else None)

    def worker_setup(self, cfg: SynthConfig, user_presets: dict[str, Any] | None) -> Callable[[], Any]:
        name, _ = parse_mix_preset(cfg.mix_preset)
        if name:  # fail here, once, not in every worker
            from ...degrade import get_preset

            get_preset(name, user_presets=user_presets)
        return functools.partial(
            SourceState.build, cfg.model_dump_json(), user_presets, self.table(cfg), self.calibration,
            self.provenance, self.multiple, self.steps,
        )  # fmt: skip

    def runtime(self) -> dict[str, Any]:
        """Where the synthesizer ran, and whether torch.compile was used or failed (report.json)."""
        s, ctx = self.synth, self.ctx
        if s is None or ctx is None:
            return {}
        return {"device": str(s.device), "local_rank": ctx.local_rank, "precision": ctx.precision,
                "compiled": s.compiled is not None, "compile_error": s.compile_error,
                "torch_threads": torch.get_num_threads()}  # fmt: skip

    def _synthesizer(self, cfg: SynthConfig) -> Synthesizer:
        if self.synth is None:
            # under torchrun each rank takes its own GPU (cuda:LOCAL_RANK, made current), not GPU 0
            self.ctx = RunContext.from_env(cfg.device, cfg.precision)
            self.synth = Synthesizer(self.encoder, self.generator, ctx=self.ctx, compile=cfg.compile,
                                     static_batch=cfg.batch)  # fmt: skip
        return self.synth

    def results(
        self, todo: list[WorkItem], cfg: SynthConfig, pool: WorkerPool, target: RunTarget
    ) -> Iterator[EncodedChunk]:
        synth = self._synthesizer(cfg)
        assert self.ctx is not None
        stage = DeviceStage(synth, self.ctx, embeddings=self.bank.embeddings.float().numpy(),
                            calibration=self.calibration, scale=cfg.scale, batch=cfg.batch, steps=self.steps,
                            degrade=self.degrade)  # fmt: skip
        opened: deque[_Open] = deque()
        chunker = _Chunker()
        limit = 2 * pool.workers + 4  # finished chunks waiting to be written, at most
        pin = self.pin if self.pin is not None else (pin_host if self.ctx.cuda else None)
        with _Buffers(cfg, pin) as bufs:
            tasks = (
                SourceTask(c, target.part(c[0].index, "src"), bufs.lend(c[0].index))
                for c in chunked(todo, chunker.size)
            )
            for sc in pool.map_ordered(read_chunk, tasks, window=2 * pool.workers + 1):
                chunker.observe(sc)
                op = _Open(sc, [None] * len(sc.hq), buffer=bufs.lent.pop(sc.inputs[0].index))
                opened.append(op)
                for item in _device_items(op, cfg, self.multiple, bufs.crops.pinned(sc.hq.data)):
                    bufs.landed(stage.add(item))
                bufs.landed([] if op.missing else [op])  # no learned sample: its crops buffer is free
                self._submit_ready(opened, pool, cfg, target, bufs)
                yield from _finished(opened, limit, bufs)
            bufs.landed(stage.flush())
            self._submit_ready(opened, pool, cfg, target, bufs)
            yield from _finished(opened, 0, bufs)

    def _submit_ready(
        self, opened: deque[_Open], pool: WorkerPool, cfg: SynthConfig, target: RunTarget, bufs: _Buffers
    ) -> None:
        for op in opened:
            if op.future is None and op.missing == 0:
                job = _sink_job(op, cfg, target.part(op.chunk.inputs[0].index, "lq"))
                op.future = pool.submit(encode_lqs, job)


def _device_items(op: _Open, cfg: SynthConfig, multiple: int, pinned: bool) -> Iterator[DeviceItem]:
    n = 0
    for ip, inp in enumerate(op.chunk.inputs):
        for s in inp.samples:
            if s.spec is not None:
                hq = op.chunk.hq.view(n)
                tiles = _plan_tiles(hq.shape[0], hq.shape[1], cfg.tile, cfg.tile_overlap, multiple)
                op.missing += 1
                yield DeviceItem(hq, s.spec, tiles, (op, n, ip), pinned)
                n += 1


class _Buffers:
    """The run's recycled shared memory (:class:`~.pixels.SharedBuffers`): a buffer lent to each
    source task for its crops, back once the chunk's learned samples have all landed; the LQs of a
    landed batch copied into one, back once every sink task that reads it is done."""

    def __init__(self, cfg: SynthConfig, pin: Pin | None = None) -> None:
        side = cfg.crop or cfg.tile
        self.crop_bytes = int(1.5 * TARGET_SAMPLES_PER_TASK * side * side * 3)  # a chunk's, with room
        self.crops, self.lqs = SharedBuffers(pin=pin), SharedBuffers()
        self.lent: dict[int, Segment] = {}  # first input of a source task -> its buffer
        self.readers: dict[int, tuple[Segment, int]] = {}  # id(LQ pack) -> (buffer, chunks reading it)

    def __enter__(self) -> _Buffers:
        return self

    def __exit__(self, *exc: object) -> None:
        """The run is over (or failed): every segment's name goes."""
        if self.crops.unpin and torch.cuda.is_initialized():
            torch.cuda.synchronize()  # no upload may still read a segment that is unpinned now
        self.crops.close()
        self.lqs.close()

    def lend(self, first_input: int) -> Segment:
        self.lent[first_input] = buf = self.crops.take(self.crop_bytes)
        return buf

    def landed(self, batches: list[Landed] | list[_Open]) -> None:
        """Record where each landed sample's LQ is (or that the device failed its input); give
        back the crop buffers of chunks whose samples have all landed."""
        done: dict[int, _Open] = {}
        for b in batches:
            if isinstance(b, _Open):
                done[id(b)] = b
                continue
            for item in b.items if b.error else ():
                op, n, ip = item.owner
                op.failed.setdefault(
                    ip, f"synthesis failed on {op.chunk.inputs[ip].samples[0].key}: {b.error}"
                )
                op.missing -= 1
                done[id(op)] = op
            for g in b.groups:
                pack = self._lq_pack(g.lq)
                owners: set[int] = set()
                for k, r in enumerate(g.rows):
                    op, n, _ = b.items[r].owner
                    op.lq[n] = LqRef(op.add_pack(pack), k, b.items[r].spec if g.host else None)
                    op.missing -= 1
                    done[id(op)] = op
                    owners.add(id(op))
                self.readers[id(pack)] = (self.readers[id(pack)][0], len(owners))  # one sink task each
        for op in done.values():
            if op.missing == 0 and op.buffer is not None:
                self.crops.give(op.buffer)
                op.buffer = None

    def _lq_pack(self, lq: torch.Tensor) -> ImagePack:
        buf = self.lqs.take(lq.numel())
        segment_array(buf)[: lq.numel()] = lq.reshape(-1).numpy()
        n, each = lq.shape[0], lq[0].numel()
        pack = ImagePack(buf, (tuple(lq.shape[1:]),) * n, tuple(k * each for k in range(n)))
        self.readers[id(pack)] = (buf, 0)
        return pack

    def read(self, op: _Open) -> None:
        """``op``'s sink task is done: its LQ packs lose a reader (free when none is left: every
        chunk that reads a pack got its rows when the pack was made)."""
        for p in op.packs:
            buf, k = self.readers[id(p)]
            if k > 1:
                self.readers[id(p)] = (buf, k - 1)
            else:
                del self.readers[id(p)]
                self.lqs.give(buf)


def _sink_job(op: _Open, cfg: SynthConfig, part: str) -> SinkJob:
    """The chunk's learned samples whose inputs the device did not fail, in order."""
    keys, lq, n = [], [], 0
    for ip, inp in enumerate(op.chunk.inputs):
        for s in inp.samples:
            if s.spec is None:
                continue
            if ip not in op.failed:
                ref = op.lq[n]
                assert ref is not None
                keys.append(s.key)
                lq.append(ref)
            n += 1
    return SinkJob(keys, lq, op.packs, cfg.png_level, cfg.scale, part)


def _encoded(op: _Open, done: SinkDone) -> EncodedChunk:
    """The chunk's inputs for the shard writer: per sample its source members (``hq.png``,
    ``json``; a hybrid sample's ``lq.png`` too), then its ``lq.png`` from the sink."""
    lq = iter(zip(done.members, done.payloads, strict=True))
    out = []
    for ip, inp in enumerate(op.chunk.inputs):
        if ip in op.failed:
            out.append(
                InputDone(inp.index, failure={"path": inp.path, "reason": op.failed[ip], "kind": "failed"})
            )
            continue
        pieces: list[PartRef] = []
        payload = 0
        for s in inp.samples:
            pieces.append(s.members)
            payload += s.payload
            if s.spec is not None:
                ref, n = next(lq)
                pieces.append(ref)
                payload += n
        keys = [s.key for s in inp.samples]
        out.append(InputDone(inp.index, keys, tuple(pieces), payload, inp.failure, inp.skipped))
    timings = {**op.chunk.timings, "encode": op.chunk.timings.get("encode", 0.0) + done.seconds}
    return EncodedChunk(out, timings)


def _finished(opened: deque[_Open], block_above: int, bufs: _Buffers) -> Iterator[EncodedChunk]:
    """The head chunks whose sink task is done, in order; while more than ``block_above`` chunks
    are open, wait for the head's (never for a head still waiting on the device)."""
    while opened and opened[0].future is not None:
        head = opened[0]
        assert head.future is not None
        if not head.future.done() and len(opened) <= block_above:
            return
        done = head.future.result()
        opened.popleft()
        bufs.read(head)
        yield _encoded(head, done)
