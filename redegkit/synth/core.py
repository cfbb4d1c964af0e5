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
from ..io import storage
from ..io.pool import WorkerPool
from ..io.shards import MARKER_SUFFIX, ShardWriter, UploadThreads, find_resume_point, own_shards, shard_name
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
    out: Path | str  # a path, or the URL of a folder on object storage
    inputs: int
    samples: int
    shards: list[str]
    failures: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    resumed_from_input: int
    timings: dict[str, float]
    report_path: Path | str
    samples_this_run: int = 0


def dist_rank_world() -> tuple[int, int]:
    """Rank and world size under torchrun, else (0, 1): the run context's (checked for
    consistency; torch is not imported)."""
    ctx = RunContext.host()
    return ctx.rank, ctx.world


def run_fingerprint(cfg: SynthConfig, sources: list[Source], extra: dict[str, Any] | None = None) -> str:
    """What must not change between a run and its resume: options that shape output, and inputs."""
    # workers, batch and compile change speed, not bytes (every sample is computed alone); an unset
    # shard plan is left out so that runs made before the option existed still resume
    speed = {"workers", "batch", "compile"} | ({"shard_inputs"} if cfg.shard_inputs is None else set())
    shaping = cfg.model_dump(mode="json", exclude=speed)
    h = hashlib.sha256(json.dumps([shaping, extra or {}], sort_keys=True).encode())
    for s in sources:
        h.update(s.rel.encode("utf-8") + b"\x00")
    return h.hexdigest()


def _check_out(
    out: Path | str, cfg: SynthConfig, fp: str, rank: int, world: int, flags: tuple[bool, bool, bool]
) -> str:
    """Refuse to mix runs; clear shards for ``--overwrite``. -> the run file of this rank."""
    resume, overwrite, force = flags
    suffix = f"-r{rank:03d}" if world > 1 else ""
    run_file = storage.join(out, f"run{suffix}.json")
    where = storage.redact(str(out))
    existing = own_shards(out, cfg.prefix, rank, world)
    if existing and not (resume or overwrite):
        raise FileExistsError(
            f"{where}: already holds {len(existing)} shard(s); pass --resume to continue that run "
            "or --overwrite to start again"
        )
    if overwrite and not resume:
        for p in existing:
            storage.remove(p)
            storage.remove(p + MARKER_SUFFIX)
    if resume and not force and storage.exists(run_file):
        if json.loads(storage.read_text(run_file)).get("fingerprint") != fp:
            raise FileExistsError(
                f"{where}: the existing run used other options or inputs; resuming would mix them "
                "(use --force to resume anyway, or --overwrite)"
            )
    return run_file


@dataclass
class RunStart:
    """What a run knows before its first sample: this rank's inputs, where it writes, its record."""

    out: Path | str
    mine: list[Source]
    rank: int
    world: int
    fingerprint: str


def start_run(
    sources: list[Source], out_dir: str | Path, cfg: SynthConfig, *, extra: dict[str, Any],
    flags: tuple[bool, bool, bool], rank: int | None, world: int | None,
) -> RunStart:  # fmt: skip
    """This rank's inputs, the output checked (:func:`_check_out`) and its run file written: the
    part of a run that every engine shares."""
    out: Path | str = str(out_dir) if storage.is_remote(out_dir) else storage.local_path(out_dir)
    r0, w0 = dist_rank_world()
    rank = r0 if rank is None else rank
    world = w0 if world is None else world
    mine = sources[rank::world]
    storage.make_dirs(out)
    fp = run_fingerprint(cfg, mine, {**extra, "world": world})
    run_file = _check_out(out, cfg, fp, rank, world, flags)
    record = {"fingerprint": fp, "config": cfg.model_dump(mode="json"), "inputs": len(mine)}
    storage.write_text(run_file, json.dumps({**record, "rank": rank, "world": world}, indent=1))
    return RunStart(out, mine, rank, world, fp)


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
    extra = {"presets": user_presets or {}, **(fingerprint_extra or {})}
    run = start_run(
        sources, out_dir, cfg, extra=extra, flags=(resume, overwrite, force), rank=rank, world=world
    )
    out, mine, rank, world = run.out, run.mine, run.rank, run.world
    rp = find_resume_point(out, cfg.prefix, rank, world)
    todo = [WorkItem(i, mine[i]) for i in range(rp.next_input, len(mine))]
    t_start = time.perf_counter()
    with WorkerPool(cfg.workers, producer.worker_setup(cfg, user_presets)) as pool, UploadThreads() as up:
        # into a URL: uploads in threads of this process (one storage session); else the pool's workers
        writer = ShardWriter(
            out,
            prefix=cfg.prefix,
            max_count=cfg.shard_max_count,
            max_bytes=cfg.shard_max_bytes,
            rank=rank,
            world=world,
            start_shard=rp.next_shard,
            start_input=rp.next_input,
            submit=up.submit if storage.is_remote(out) else pool.submit,
            shard_inputs=cfg.shard_inputs,
        )
        target = RunTarget(writer.out, cfg.prefix, rank)
        tally = _write_all(producer.results(todo, cfg, pool, target), writer, progress)
    elapsed = time.perf_counter() - t_start
    return finish_run(run, cfg, rp.done, writer.written, tally, elapsed, rp.next_input, producer.runtime())


def finish_run(
    run: RunStart, cfg: SynthConfig, before: list[dict[str, Any]], written: list[dict[str, Any]],
    tally: Tally, elapsed: float, resumed_from: int, runtime: dict[str, Any],
) -> SynthResult:  # fmt: skip
    """The report of a run (``before``: markers of the shards kept from an earlier run, in shard
    order; ``written``: this run's) written into the output, and the result. Under torchrun the
    last rank to finish also writes the merged ``report.json`` (:func:`merge_rank_reports`)."""
    out, rank, world = run.out, run.rank, run.world
    prior = [f for m in before for f in m.get("failures", [])]
    markers = sorted([*before, *written], key=lambda m: m["shard"])
    all_shards = [m["shard"] for m in markers]
    total = sum(int(m["count"]) for m in before) + tally.samples
    failures = [r for r in prior if r.get("kind") == "failed"] + tally.failures
    skipped = [r for r in prior if r.get("kind") == "skipped"] + tally.skipped
    timings = {**{k: round(v, 4) for k, v in tally.timings.items()}, "wall": round(elapsed, 4)}
    report = {
        "out": storage.redact(str(out)),
        "rank": rank,
        "world": world,
        "inputs": len(run.mine),
        "resumed_from_input": resumed_from,
        "samples": total,
        "samples_this_run": tally.samples,
        "shards": all_shards,
        "failures": failures,
        "skipped": skipped,
        "timings_s": timings,
        "pairs_per_s": round(tally.samples / elapsed, 3) if elapsed > 0 else None,
        "runtime": runtime,
        "config": cfg.model_dump(mode="json"),
        "redegkit_version": __version__,
        "shard_pattern": _brace_pattern(cfg.prefix, len(all_shards), rank, world),
    }
    report_path = storage.join(out, "report.json" if world == 1 else f"report-r{rank:03d}.json")
    storage.write_text(report_path, json.dumps(report, indent=1, default=str) + "\n")
    if world > 1:
        merge_rank_reports(out, world)
    path: Path | str = report_path if storage.is_remote(out) else Path(report_path)
    return SynthResult(
        out, len(run.mine), total, all_shards, failures, skipped, resumed_from, timings, path, tally.samples,
    )  # fmt: skip


def merge_rank_reports(out: Path | str, world: int) -> dict[str, Any] | None:
    """Once every rank's ``report-rNNN.json`` is there, write ``report.json``: the ranks' totals,
    shards, failures and skips in rank order, each rank's report under ``ranks`` (no barrier: the
    last rank to finish sees them all; two ranks that both do write the same file). -> the merged
    report, or None while a rank is missing."""
    names = storage.list_files(out)
    mine = [f"report-r{r:03d}.json" for r in range(world)]
    if any(n not in names for n in mine):
        return None
    reports = [json.loads(storage.read_text(storage.join(out, n))) for n in mine]
    merged = {
        "out": reports[0]["out"],
        "world": world,
        "inputs": sum(r["inputs"] for r in reports),
        "samples": sum(r["samples"] for r in reports),
        "shards": [s for r in reports for s in r["shards"]],
        "failures": [f for r in reports for f in r["failures"]],
        "skipped": [f for r in reports for f in r["skipped"]],
        "config": reports[0]["config"],
        "redegkit_version": __version__,
        "ranks": [
            {k: r[k] for k in ("rank", "inputs", "samples", "shard_pattern", "timings_s", "runtime")}
            for r in reports
        ],  # fmt: skip
    }
    storage.write_text(storage.join(out, "report.json"), json.dumps(merged, indent=1, default=str) + "\n")
    return merged


@dataclass
class Tally:
    samples: int
    failures: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    timings: dict[str, float]


def _write_all(
    results: Iterator[EncodedChunk], writer: ShardWriter, progress: Callable[..., None] | None
) -> Tally:
    """Every chunk into the shard writer, in order; on any error the producer is stopped and the
    shard in progress dropped (finished shards stay) before the error leaves."""
    tally = Tally(0, [], [], {**new_timings(), "write": 0.0})
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
