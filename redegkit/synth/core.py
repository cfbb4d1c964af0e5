"""The run of `synthesize` that every producer shares: resume, the worker pool, the shard writer
and the report.

Per input image: decode once, cut crops (patch grid with a stride, or the whole image), degrade
each crop so that ``hq = scale × lq`` in pixels, and stream the samples into shards. A *producer*
does the middle part (:mod:`redegkit.synth.classical` with a preset, :mod:`redegkit.synth.learned`
with a bank): it turns the work list into :class:`~redegkit.synth.messages.EncodedChunk` s in input
order, using the run's :class:`~redegkit.io.pool.WorkerPool`. This module knows no producer.

Determinism: each sample's randomness comes from ``sample_rng(seed, key)``, its bytes are a
function of that sample alone, and samples are written in input order, so one seed gives
byte-identical shards whatever ``--workers`` and ``--batch``. Resume: see
:mod:`redegkit.io.shards.resume`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .. import __version__
from ..io.atomic import atomic_write_json
from ..io.pool import WorkerPool
from ..io.shards import ShardWriter, find_resume_point, own_shards, shard_name
from ..io.sources import Source
from ..run import RunContext
from .config import SynthConfig
from .messages import EncodedChunk, RunTarget, WorkItem, new_timings


class Producer(Protocol):
    """What turns a run's inputs into encoded samples (classical presets, a learned bank)."""

    def worker_setup(self, cfg: SynthConfig, user_presets: dict[str, Any] | None) -> Callable[[], Any]:
        """A picklable factory of the state every worker (and an inline run) needs."""
        ...

    def results(
        self, todo: list[WorkItem], cfg: SynthConfig, pool: WorkerPool, target: RunTarget
    ) -> Iterator[EncodedChunk]:
        """The inputs' samples, encoded, in input order (their members as bytes, or as part files
        under ``target`` written by the workers)."""
        ...

    def runtime(self) -> dict[str, Any]:
        """Where it ran (the report's ``runtime``)."""
        ...


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
    # workers, batch and compile change speed, not bytes (every sample is computed alone)
    shaping = cfg.model_dump(mode="json", exclude={"workers", "batch", "compile"})
    h = hashlib.sha256(json.dumps([shaping, extra or {}], sort_keys=True).encode())
    for s in sources:
        h.update(s.rel.encode("utf-8") + b"\x00")
    return h.hexdigest()


def _check_out(
    out: Path, cfg: SynthConfig, fp: str, rank: int, world: int, flags: tuple[bool, bool, bool]
) -> Path:
    """Refuse to mix runs; clear shards for ``--overwrite``. -> the run file of this rank."""
    resume, overwrite, force = flags
    suffix = f"-r{rank:03d}" if world > 1 else ""
    run_file = out / f"run{suffix}.json"
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
        if json.loads(run_file.read_text()).get("fingerprint") != fp:
            raise FileExistsError(
                f"{out}: the existing run used other options or inputs; resuming would mix them "
                "(use --force to resume anyway, or --overwrite)"
            )
    return run_file


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
    """Run synthesis over ``sources`` into ``out_dir`` with ``producer``; shards, resume and the
    report are done here (see the module doc for the guarantees).

    Raises FileExistsError if ``out_dir`` already has shards and neither ``resume`` nor
    ``overwrite`` is set, or if ``resume`` finds a run with other options (unless ``force``).
    """
    out = Path(out_dir)
    r0, w0 = dist_rank_world()
    rank = r0 if rank is None else rank
    world = w0 if world is None else world
    mine = sources[rank::world]
    out.mkdir(parents=True, exist_ok=True)
    extra = {"presets": user_presets or {}, "world": world, **(fingerprint_extra or {})}
    fp = run_fingerprint(cfg, mine, extra)
    run_file = _check_out(out, cfg, fp, rank, world, (resume, overwrite, force))
    run_record = {"fingerprint": fp, "config": cfg.model_dump(mode="json"), "inputs": len(mine)}
    run_file.write_text(json.dumps({**run_record, "rank": rank, "world": world}, indent=1))
    rp = find_resume_point(out, cfg.prefix, rank, world)
    todo = [WorkItem(i, mine[i]) for i in range(rp.next_input, len(mine))]
    t_start = time.perf_counter()
    with WorkerPool(cfg.workers, producer.worker_setup(cfg, user_presets)) as pool:
        writer = ShardWriter(
            out,
            prefix=cfg.prefix,
            max_count=cfg.shard_max_count,
            max_bytes=cfg.shard_max_bytes,
            rank=rank,
            world=world,
            start_shard=rp.next_shard,
            start_input=rp.next_input,
            submit=pool.submit,
        )
        target = RunTarget(out, cfg.prefix, rank)
        tally = _write_all(producer.results(todo, cfg, pool, target), writer, progress)
    elapsed = time.perf_counter() - t_start
    prior = [f for m in rp.done for f in m.get("failures", [])]
    all_shards = [m["shard"] for m in rp.done] + [m["shard"] for m in writer.written]
    total = sum(int(m["count"]) for m in rp.done) + tally.samples
    failures = [r for r in prior if r.get("kind") == "failed"] + tally.failures
    skipped = [r for r in prior if r.get("kind") == "skipped"] + tally.skipped
    timings = {**{k: round(v, 4) for k, v in tally.timings.items()}, "wall": round(elapsed, 4)}
    report = {
        "out": str(out),
        "rank": rank,
        "world": world,
        "inputs": len(mine),
        "resumed_from_input": rp.next_input,
        "samples": total,
        "samples_this_run": tally.samples,
        "shards": all_shards,
        "failures": failures,
        "skipped": skipped,
        "timings_s": timings,
        "pairs_per_s": round(tally.samples / elapsed, 3) if elapsed > 0 else None,
        "runtime": producer.runtime(),
        "config": cfg.model_dump(mode="json"),
        "redegkit_version": __version__,
        "shard_pattern": _brace_pattern(cfg.prefix, len(all_shards), rank, world),
    }
    report_path = out / ("report.json" if world == 1 else f"report-r{rank:03d}.json")
    atomic_write_json(report_path, report)
    return SynthResult(
        out, len(mine), total, all_shards, failures, skipped, rp.next_input, timings, report_path, tally.samples,
    )  # fmt: skip


@dataclass
class _Tally:
    samples: int
    failures: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    timings: dict[str, float]


def _write_all(
    results: Iterator[EncodedChunk], writer: ShardWriter, progress: Callable[..., None] | None
) -> _Tally:
    """Every chunk into the shard writer, in order; on any error the producer is stopped and the
    shard in progress dropped (finished shards stay) before the error leaves."""
    tally = _Tally(0, [], [], {**new_timings(), "write": 0.0})
    try:
        for chunk in results:
            tw = time.perf_counter()
            for done in chunk.inputs:
                writer.add(done.keys, done.members, done.payload)
                writer.end_input(done.index + 1, failures=done.records)
                tally.samples += len(done.keys)
                tally.failures += [done.failure] if done.failure else []
                tally.skipped += [done.skipped] if done.skipped else []
                if progress is not None:
                    progress(1, samples=tally.samples, failed=len(tally.failures))
            for path in {r.path for d in chunk.inputs if isinstance(d.members, tuple) for r in d.members}:
                writer.seal(path)  # the chunk's part files get no more members
            tally.timings["write"] += time.perf_counter() - tw
            for k, v in chunk.timings.items():
                tally.timings[k] = tally.timings.get(k, 0.0) + v
        writer.close()
    except BaseException:
        close = getattr(results, "close", None)
        try:
            if close is not None:
                close()  # the producer's own clean-up (its queued device work) runs now
        finally:
            writer.abort()
        raise
    return tally


def _brace_pattern(prefix: str, n: int, rank: int, world: int) -> str | None:
    if n == 0:
        return None
    first, last = shard_name(prefix, 0, rank, world), shard_name(prefix, n - 1, rank, world)
    return first[:-10] + "{" + first[-10:-4] + ".." + last[-10:-4] + "}.tar"


def chunked(items: list[WorkItem], size: int | Callable[[], int]) -> Iterator[list[WorkItem]]:
    """``items`` in consecutive chunks of ``size`` (a callable is asked again before every chunk,
    so a producer that learns how many samples an input brings can adapt it). Chunking changes
    how work is grouped into tasks, never the output."""
    i = 0
    while i < len(items):
        n = max(1, int(size() if callable(size) else size))
        yield items[i : i + n]
        i += n
