"""`redeg synthesize --engine ray`: the shards of a fixed shard plan, made on a Ray cluster.

The unit of work is a shard: plan row ``k`` holds inputs ``[k*N, (k+1)*N)`` of this rank's input
list (``--shard-inputs N``, :class:`~redegkit.synth.config.SynthConfig`), and its bytes are a
function of those inputs, the configuration and the seed alone, so Ray may run the rows anywhere,
in any order, again after a failure, and the shards equal those of a local run with the same
``--shard-inputs``. Each row runs the producers of a local run (the same code, inline) into its
own :class:`~redegkit.io.shards.ShardWriter`, which uploads the tar and writes the marker last.

- classical runs: one Ray **task** per row (``num_cpus=1``); a task whose worker dies is retried
  by Ray (``max_retries``);
- learned runs: ``--ray-actors`` **actors** (``num_gpus=--ray-gpus`` each) that load the bank once
  and take rows one after another; a dead actor is restarted and its row retried
  (``max_restarts``, ``max_task_retries``).

The driver only lists inputs, checks the output (fingerprint, ``--resume``: every marked shard is
kept, :func:`~redegkit.io.shards.find_done_shards`), hands out rows, reports progress and writes
the run report, as a local run does. Nothing here schedules: Ray does.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io import storage
from ..io.pool import WorkerPool
from ..io.shards import ShardWriter, clean_leftovers, find_done_shards
from ..io.sources import Source
from .config import SynthConfig
from .core import Producer, SynthResult, Tally, _write_all, finish_run, start_run
from .messages import RunTarget, WorkItem

DEFAULT_SHARD_INPUTS = 64  # inputs per shard when a Ray run is not given --shard-inputs
RETRIES = 3  # times Ray runs a row again after its worker or actor died


@dataclass(frozen=True)
class ShardTask:
    """One row of the shard plan and everything a worker needs to make it (small, picklable)."""

    index: int
    items: list[WorkItem]
    out: str
    rank: int
    world: int
    cfg_json: str
    user_presets: dict[str, Any] | None
    storage: dict[str, dict[str, Any]]  # storage options: in memory only, never written


@dataclass
class ShardDone:
    """What a row made: its marker, and the tallies the run report adds up."""

    index: int
    marker: dict[str, Any]
    samples: int
    failures: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def make_shard(producer: Producer, pool: WorkerPool, task: ShardTask) -> ShardDone:
    """Make shard ``task.index`` with ``producer`` on ``pool``: the row's inputs into a writer of
    its own, published (tar, then marker) when complete."""
    storage.use_storage_options(task.storage)
    cfg = SynthConfig.model_validate_json(task.cfg_json)
    n = cfg.shard_inputs or DEFAULT_SHARD_INPUTS
    writer = ShardWriter(task.out, prefix=cfg.prefix, rank=task.rank, world=task.world,
                         start_shard=task.index, start_input=task.index * n, shard_inputs=n)  # fmt: skip
    target = RunTarget(writer.out, cfg.prefix, task.rank)
    tally = _write_all(producer.results(task.items, cfg, pool, target), writer, None)
    (marker,) = writer.written
    return ShardDone(task.index, marker, tally.samples, tally.failures, tally.skipped, tally.timings)


def classical_shard(task: ShardTask) -> ShardDone:
    """The Ray task of a classical row (runs in a Ray worker process)."""
    from .classical import ClassicalProducer

    cfg = SynthConfig.model_validate_json(task.cfg_json)
    producer = ClassicalProducer()
    with WorkerPool(1, producer.worker_setup(cfg, task.user_presets)) as pool:
        return make_shard(producer, pool, task)


class LearnedShardActor:
    """A Ray actor of a learned run: loads the bank (a path or URL) once, then makes rows."""

    def __init__(self, cfg_json: str, user_presets: dict[str, Any] | None, options: dict[str, Any],
                 force: bool, threads: int | None) -> None:  # fmt: skip
        storage.use_storage_options(options)
        import torch

        from .learned import bank_producer

        if threads:  # the CPU path's low bits depend on the thread count: the driver's, as a local run
            torch.set_num_threads(threads)
        cfg = SynthConfig.model_validate_json(cfg_json)
        self.producer, _ = bank_producer(cfg, force=force)
        # the host stages' processes start before the device is touched (as a local run's pool)
        self.pool = WorkerPool(cfg.workers, self.producer.worker_setup(cfg, user_presets))

    def make(self, task: ShardTask) -> ShardDone:
        return make_shard(self.producer, self.pool, task)

    def runtime(self) -> dict[str, Any]:
        return self.producer.runtime()


@dataclass(frozen=True)
class RayOptions:
    """How a run uses Ray: ``address`` (None: a cluster in ``RAY_ADDRESS`` or a new local one;
    ``"auto"``: the running cluster), and for learned runs the actors and GPUs per actor."""

    address: str | None = None
    actors: int = 1
    gpus: float = 0.0


def _connect(address: str | None) -> bool:
    """Start or join Ray -> whether this call did (and so shuts it down at the end)."""
    import ray

    if ray.is_initialized():
        return False
    ray.init(address=address, include_dashboard=False, log_to_driver=True)
    return True


def run_ray(
    sources: list[Source], out_dir: str | Path, cfg: SynthConfig, *, ray_options: RayOptions, user_presets: dict[str, Any] | None = None, resume: bool = False,
    overwrite: bool = False, force: bool = False, progress: Callable[..., None] | None = None,
    fingerprint_extra: dict[str, Any] | None = None,
) -> SynthResult:  # fmt: skip
    """Run synthesis over ``sources`` into ``out_dir`` (a path or URL) on Ray; same guarantees,
    errors and report as :func:`redegkit.synth.core.run_synthesis` with the same shard plan."""
    if cfg.shard_inputs is None:
        cfg = cfg.model_copy(update={"shard_inputs": DEFAULT_SHARD_INPUTS})
    n = int(cfg.shard_inputs or DEFAULT_SHARD_INPUTS)
    extra = {"presets": user_presets or {}, **(fingerprint_extra or {})}
    run = start_run(
        sources, out_dir, cfg, extra=extra, flags=(resume, overwrite, force), rank=None, world=None
    )
    done = find_done_shards(run.out, cfg.prefix, run.rank, run.world) if resume else {}
    rows = [k for k in range(math.ceil(len(run.mine) / n)) if k not in done]
    tasks = [ShardTask(k, [WorkItem(i, run.mine[i]) for i in range(k * n, min((k + 1) * n, len(run.mine)))],
                       str(run.out), run.rank, run.world, cfg.model_dump_json(), user_presets,
                       storage.storage_options()) for k in rows]  # fmt: skip
    if progress is not None and done:
        progress(sum(int(m["inputs"][1]) - int(m["inputs"][0]) for m in done.values()))
    started = _connect(ray_options.address)
    t0 = time.perf_counter()
    try:
        if cfg.bank:
            finished, runtime = _run_actors(tasks, cfg, user_presets, ray_options, force, progress)
        else:
            finished, runtime = _run_tasks(tasks, progress)
    finally:
        if started:
            import ray

            ray.shutdown()
    elapsed = time.perf_counter() - t0
    clean_leftovers(run.out, cfg.prefix, run.rank, run.world)  # what a killed worker left
    finished.sort(key=lambda d: d.index)
    tally = Tally(sum(d.samples for d in finished), [f for d in finished for f in d.failures],
                  [s for d in finished for s in d.skipped], {})  # fmt: skip
    for d in finished:
        for k, v in d.timings.items():
            tally.timings[k] = tally.timings.get(k, 0.0) + v
    before = [done[k] for k in sorted(done)]
    first_new = min(rows) * n if rows else len(run.mine)
    runtime = {"engine": "ray", "rows": len(rows), "shard_inputs": n, **runtime}
    return finish_run(run, cfg, before, [d.marker for d in finished], tally, elapsed, first_new, runtime)


def _report(d: ShardDone, task: ShardTask, totals: list[int], progress: Callable[..., None] | None) -> None:
    totals[0] += d.samples
    totals[1] += len(d.failures)
    if progress is not None:
        progress(len(task.items), samples=totals[0], failed=totals[1])


def _run_tasks(tasks: list[ShardTask], progress: Callable[..., None] | None) -> tuple[list[ShardDone], dict]:
    """Classical rows as Ray tasks, a bounded number in flight."""
    import ray

    remote = ray.remote(num_cpus=1, max_retries=RETRIES)(classical_shard)
    window = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    pending: dict[Any, ShardTask] = {}
    out: list[ShardDone] = []
    totals = [0, 0]
    queue = list(tasks)
    try:
        while queue or pending:
            while queue and len(pending) < window:
                t = queue.pop(0)
                pending[remote.remote(t)] = t
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                d = _get(ref)
                _report(d, pending.pop(ref), totals, progress)
                out.append(d)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return out, {"device": "cpu"}


def _run_actors(tasks: list[ShardTask], cfg: SynthConfig, user_presets: dict[str, Any] | None,
                opts: RayOptions, force: bool, progress: Callable[..., None] | None,
                ) -> tuple[list[ShardDone], dict]:  # fmt: skip
    """Learned rows on ``opts.actors`` actors, one row per actor at a time."""
    import ray
    import torch

    actor_cls: Any = ray.remote(num_cpus=1, num_gpus=opts.gpus, max_restarts=RETRIES,
                           max_task_retries=RETRIES)(LearnedShardActor)  # fmt: skip
    threads = torch.get_num_threads()
    actors = [actor_cls.remote(cfg.model_dump_json(), user_presets, storage.storage_options(), force, threads)
              for _ in range(max(1, min(opts.actors, len(tasks))))]  # fmt: skip
    idle, out, totals = list(actors), [], [0, 0]
    pending: dict[Any, tuple[Any, ShardTask]] = {}
    queue = list(tasks)
    runtime: dict[str, Any] = {}
    try:
        while queue or pending:
            while queue and idle:
                a, t = idle.pop(), queue.pop(0)
                pending[a.make.remote(t)] = (a, t)
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                a, t = pending.pop(ref)
                d = _get(ref)
                _report(d, t, totals, progress)
                out.append(d)
                idle.append(a)
        if actors:
            runtime = _get(actors[0].runtime.remote())
    finally:
        for a in actors:
            ray.kill(a)
    return out, {**runtime, "actors": len(actors), "gpus_per_actor": opts.gpus}


def _get(ref: Any) -> Any:
    """``ray.get``, with a task's own exception raised as itself (a bad URL stays one line)."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, Exception):
            raise cause from None
        raise
