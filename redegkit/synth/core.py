"""The core of `synthesize` shared by every producer: configuration, crops, the shard loop,
resume and the run report.

Per input image: decode once, cut crops (patch grid with a stride, or the whole image), degrade
each crop (a *producer* does that: :mod:`redegkit.synth.classical` with a preset, or
:mod:`redegkit.synth.learned` with a bank), so that ``hq = scale × lq`` in pixels, and stream the
samples into shards (:class:`redegkit.io.shards.ShardSink`).

This module knows no producer: :func:`run_synthesis` is given one. Choosing it from the config is
:func:`redegkit.synth.api.synthesize`'s job, so the dependencies go one way (classical -> core,
learned -> classical, core), and a classical run never imports torch.

Determinism: each sample's randomness comes from ``sample_rng(seed, key)``, and samples are
written in input order whatever the number of workers, so one seed gives byte-identical shards.
Resume: see :mod:`redegkit.io.shards`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from .. import __version__
from ..config import StrictModel
from ..degrade.ops import ImageTooSmallError
from ..io.atomic import atomic_write_json
from ..io.images import AlphaPolicy, ImageDecodeError, decode_image
from ..io.pool import worker_signals
from ..io.shards import SHARD_FORMAT, ShardSink, find_resume_point, own_shards, shard_name
from ..io.sources import Source
from ..rng import sample_seed, seed_to_json
from ..run import RunContext


class SynthConfig(StrictModel):
    """Configuration of `redeg synthesize` (recipe table ``[synthesize]``)."""

    preset: str | None = Field(
        "realesrgan", description="classical degradation preset (built-in or [presets.NAME])"
    )
    scale: int = Field(4, ge=1, le=4, description="SR scale: hq = scale x lq in pixels")
    crop: int | None = Field(512, ge=16, description="HQ patch size in pixels; null = whole images")
    stride: int | None = Field(None, ge=1, description="patch stride (default: crop, i.e. no overlap)")
    max_patches: int | None = Field(
        None, ge=1, description="at most this many patches per image (evenly spaced)"
    )
    small: Literal["skip", "pad"] = Field(
        "skip", description="images smaller than the crop: skip them or reflect-pad"
    )
    alpha: AlphaPolicy = Field("composite", description="alpha channel: composite on white, or drop")
    seed: int = Field(
        0,
        ge=-(2**63),
        lt=2**63,
        description="global seed; each sample's seed derives from it and the sample key",
    )
    workers: int = Field(1, ge=1, description="CPU worker processes")
    shard_max_count: int = Field(
        1000, ge=1, description="samples per shard (at most, rolled at image boundaries)"
    )
    shard_max_bytes: int = Field(
        1 << 30, ge=1 << 16, description="bytes per shard (at most, rolled likewise)"
    )
    prefix: str = Field("shard", pattern=r"^[A-Za-z0-9_-]+$", description="shard file name prefix")
    png_level: int = Field(1, ge=0, le=9, description="PNG compression level of the written images")
    # Learned path (a bank made by `redeg bake`); see redegkit/synth/learned.py.
    bank: str | None = Field(
        None, description="degradation bank (emb.pt); when set, the bank degrades, not preset"
    )
    model: str | None = Field(None, description="fit checkpoint whose encoder/generator replace the bank's")
    choice: Literal["uniform", "cluster", "weighted", "index"] = Field(
        "uniform",
        description="embedding per sample: uniform, a uniform cluster then a member, by the bank's "
        "weights, or the fixed --index",
    )
    index: list[int] | None = Field(
        None, description="fixed embedding index (two with mix = interpolate those)"
    )
    mix: bool = Field(False, description="interpolate two chosen embeddings with a uniform random weight")
    strength: float = Field(
        1.0,
        ge=0,
        le=1,
        description="image-space blend: lq = hq + strength * (degraded - hq), "
        "learned noise scaled by strength, JPEG quality towards 100; 0 = exactly the HQ",
    )
    strength_min: float | None = Field(
        None, ge=0, le=1, description="draw strength uniformly in [strength_min, strength]"
    )
    calibration: bool = Field(
        True,
        description="apply the bank's per-embedding calibration (colour map, learned "
        "noise, JPEG) measured by bake on each embedding's own face pair",
    )
    noise_prob: float = Field(
        0.4, ge=0, le=1, description="share of samples that get Gaussian noise before downsampling"
    )
    noise_max: float = Field(
        0.2, ge=0, le=1, description="noise std drawn from {0, 0.01, ..., noise_max} ([-1, 1] scale)"
    )
    down: list[Literal["bilinear", "bicubic", "bilinear-aa", "bicubic-aa", "area"]] = Field(
        ["bilinear", "bicubic"],
        min_length=1,
        description="downsampling interpolations, one drawn per sample: "
        "bilinear/bicubic as the reference (no antialiasing), their antialiased -aa forms, or area",
    )
    mix_preset: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]+:(0(\.\d+)?|1(\.0+)?)$",
        description="hybrid: NAME:SHARE of samples through a classical preset",
    )
    batch: int = Field(16, ge=1, description="tiles per synthesizer forward")
    device: str = Field("auto", description="auto (cuda if available), cpu, cuda, cuda:N")
    precision: Literal["bf16", "fp32"] = Field("bf16", description="CUDA compute precision (CPU runs fp32)")
    compile: bool = Field(True, description="torch.compile the synthesizer on CUDA (eager fallback)")
    tile: int = Field(512, ge=16, description="largest synthesizer input; bigger crops are tiled")
    tile_overlap: int = Field(64, ge=0, description="overlap of neighbouring tiles, blended linearly")


# ------------------------------------------------------------------------------------------------
# Crops


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
    mode = "reflect" if h > 1 and w > 1 and ph < h and pw < w else "edge"
    return np.pad(img, ((0, ph), (0, pw), (0, 0)), mode=mode)


# What an input can cause: that input becomes a failure record and the run goes on. Any other
# exception is a bug or a broken set-up; it stops the run with its traceback (finished shards are
# kept, and --resume continues once it is fixed) instead of failing every input quietly.
INPUT_ERRORS: tuple[type[Exception], ...] = (ImageDecodeError, ImageTooSmallError)


# ------------------------------------------------------------------------------------------------
# What producers share: results, crops, worker set-up


@dataclass
class ImageResult:
    index: int
    samples: list[tuple[str, dict[str, bytes]]]
    failure: dict[str, Any] | None
    skipped: dict[str, Any] | None
    timings: dict[str, float]


def ignore_sigint() -> None:
    """For pool workers: :func:`redegkit.io.pool.worker_signals` (Ctrl-C is the main process's;
    die with the main process)."""
    worker_signals()


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
    return {"path": str(src.path), "reason": reason, "kind": kind}


def cut_crops(src: Source, cfg: SynthConfig, contiguous: bool = True) -> Crops:
    """Read and decode ``src`` once, apply the small-image policy, cut the patch grid (or the whole
    image), and build each patch's provenance record (without ``method`` and ``lq_size``). The
    patches are C-contiguous copies, or with ``contiguous=False`` views of the decoded image (for
    a caller that copies them once itself, e.g. into shared memory)."""
    t = {"read": 0.0, "decode": 0.0, "degrade": 0.0, "encode": 0.0}
    t0 = time.perf_counter()
    try:
        data = Path(src.path).read_bytes()
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
    src_key, src_path = src.key, str(src.path)  # once per input: both are computed (pathlib, a hash)
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


def sample_fields(hq_png: bytes, lq_png: bytes, meta: dict[str, Any]) -> dict[str, bytes]:
    """The shard fields of one sample: ``hq.png``, ``lq.png`` and its provenance ``json``."""
    return {"hq.png": hq_png, "lq.png": lq_png, "json": json.dumps(meta, sort_keys=True).encode("utf-8")}


# A producer turns the work list [(input index, source)] into one ImageResult per input, in input
# order: (todo, cfg, user_presets) -> iterator. It may have a runtime() method (see the report), and
# a make_sink(todo, cfg, sink_args) method returning the sink to write with (else a ShardSink).
Producer = Callable[[list[tuple[int, Source]], "SynthConfig", "dict[str, Any] | None"], Iterator[ImageResult]]


# ------------------------------------------------------------------------------------------------
# The run


@dataclass
class SynthResult:
    out: Path
    inputs: int
    samples: int
    shards: list[str]
    failures: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    resumed_from_input: int
    timings: dict[str, float]
    report_path: Path
    samples_this_run: int = 0


def dist_rank_world() -> tuple[int, int]:
    """Rank and world size under torchrun, else (0, 1): the run context's (checked for
    consistency; torch is not imported)."""
    ctx = RunContext.host()
    return ctx.rank, ctx.world


def run_fingerprint(cfg: SynthConfig, sources: list[Source], extra: dict[str, Any] | None = None) -> str:
    """What must not change between a run and its resume: options that shape output, and inputs."""
    # workers, batch and compile change speed, not bytes (batches never mix results across samples)
    shaping = cfg.model_dump(mode="json", exclude={"workers", "batch", "compile"})
    h = hashlib.sha256(json.dumps([shaping, extra or {}], sort_keys=True).encode())
    for s in sources:
        h.update(s.rel.encode("utf-8") + b"\x00")
    return h.hexdigest()


def run_synthesis(
    sources: list[Source],
    out_dir: str | Path,
    cfg: SynthConfig,
    *,
    producer: Producer,
    user_presets: dict[str, Any] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    force: bool = False,
    progress: Callable[..., None] | None = None,
    rank: int | None = None,
    world: int | None = None,
    fingerprint_extra: dict[str, Any] | None = None,
) -> SynthResult:
    """Run synthesis over ``sources`` into ``out_dir`` with ``producer``, which turns the work
    list into :class:`ImageResult` s in input order; shards, resume and the report are done here.
    Determinism: each sample's randomness comes from its key, and results are written in input
    order, so one seed gives byte-identical shards (see the module doc).

    Raises FileExistsError if ``out_dir`` already has shards and neither ``resume`` nor
    ``overwrite`` is set, or if ``resume`` finds a run with other options (unless ``force``).
    """
    out = Path(out_dir)
    r0, w0 = dist_rank_world()
    rank = r0 if rank is None else rank
    world = w0 if world is None else world
    my_sources = sources[rank::world]
    out.mkdir(parents=True, exist_ok=True)
    suffix = f"-r{rank:03d}" if world > 1 else ""
    run_file = out / f"run{suffix}.json"
    fp = run_fingerprint(
        cfg, my_sources, {"presets": user_presets or {}, "world": world, **(fingerprint_extra or {})}
    )
    existing = own_shards(out, cfg.prefix, rank, world)
    if existing and not (resume or overwrite):
        raise FileExistsError(
            f"{out}: already holds {len(existing)} shard(s); pass --resume to continue that run "
            "or --overwrite to start again"
        )
    if overwrite and not resume:
        for p in existing:
            p.unlink()
            p.with_name(p.name + ".json").unlink(missing_ok=True)
    if resume and run_file.is_file() and not force:
        old = json.loads(run_file.read_text()).get("fingerprint")
        if old != fp:
            raise FileExistsError(
                f"{out}: the existing run used other options or inputs; resuming would mix them "
                "(use --force to resume anyway, or --overwrite)"
            )
    run_file.write_text(
        json.dumps(
            {
                "fingerprint": fp,
                "config": cfg.model_dump(mode="json"),
                "inputs": len(my_sources),
                "rank": rank,
                "world": world,
            },
            indent=1,
        )
    )
    rp = find_resume_point(out, cfg.prefix, rank, world)
    start = rp.next_input
    prior_records = [f for m in rp.done for f in m.get("failures", [])]
    prior_samples = sum(int(m["count"]) for m in rp.done)
    timings = {"read": 0.0, "decode": 0.0, "degrade": 0.0, "encode": 0.0, "write": 0.0}
    failures, skipped = [], []
    samples = 0
    todo = [(i, my_sources[i]) for i in range(start, len(my_sources))]
    sink_args = {
        "out_dir": out,
        "prefix": cfg.prefix,
        "max_count": cfg.shard_max_count,
        "max_bytes": cfg.shard_max_bytes,
        "rank": rank,
        "world": world,
        "start_shard": rp.next_shard,
        "start_input": start,
    }
    # A producer may bring its own sink with the ShardSink interface (the learned path writes in a
    # process of its own, from shared memory: redegkit.io.sink_process).
    make_sink = getattr(producer, "make_sink", None)
    sink = make_sink(todo, cfg, sink_args) if make_sink is not None else ShardSink(**sink_args)
    t_start = time.perf_counter()

    def consume(res: ImageResult) -> None:
        nonlocal samples
        tw = time.perf_counter()
        for key, fields in res.samples:
            sink.add(key, fields)
        recs = [r for r in (res.failure, res.skipped) if r]
        sink.end_input(res.index + 1, failures=recs)
        timings["write"] += time.perf_counter() - tw
        for k, v in res.timings.items():
            timings[k] += v
        if res.failure:
            failures.append(res.failure)
        if res.skipped:
            skipped.append(res.skipped)
        samples += len(res.samples)
        if progress is not None:
            progress(1, samples=samples, failed=len(failures))

    results = producer(todo, cfg, user_presets)
    try:
        for res in results:
            consume(res)
        sink.close()
    except BaseException:
        # stop the producer now (its worker pool and shared memory), not when the generator is
        # collected, which a kept traceback can delay indefinitely; then drop the partial shard
        close = getattr(results, "close", None)
        try:
            if close is not None:
                close()
        finally:
            sink.abort()
        raise
    elapsed = time.perf_counter() - t_start
    all_shards = [m["shard"] for m in rp.done] + [m["shard"] for m in sink.written]
    total_samples = prior_samples + samples
    report = {
        "out": str(out),
        "rank": rank,
        "world": world,
        "inputs": len(my_sources),
        "resumed_from_input": start,
        "samples": total_samples,
        "samples_this_run": samples,
        "shards": all_shards,
        "failures": [r for r in prior_records if r.get("kind") == "failed"] + failures,
        "skipped": [r for r in prior_records if r.get("kind") == "skipped"] + skipped,
        "timings_s": {**{k: round(v, 4) for k, v in timings.items()}, "wall": round(elapsed, 4)},
        "pairs_per_s": round(samples / elapsed, 3) if elapsed > 0 else None,
        # the learned path: device, precision, and a torch.compile failure (then it ran eagerly)
        "runtime": producer.runtime() if hasattr(producer, "runtime") else {"device": "cpu"},
        "config": cfg.model_dump(mode="json"),
        "redegkit_version": __version__,
        "shard_pattern": _brace_pattern(cfg.prefix, len(all_shards), rank, world),
    }
    report_path = out / f"report{suffix}.json"
    atomic_write_json(report_path, report)
    return SynthResult(
        out,
        len(my_sources),
        total_samples,
        all_shards,
        report["failures"],
        report["skipped"],
        start,
        report["timings_s"],
        report_path,
        samples,
    )


def _brace_pattern(prefix: str, n: int, rank: int, world: int) -> str | None:
    if n == 0:
        return None
    first, last = shard_name(prefix, 0, rank, world), shard_name(prefix, n - 1, rank, world)
    return first[:-10] + "{" + first[-10:-4] + ".." + last[-10:-4] + "}.tar"
