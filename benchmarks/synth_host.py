"""The host path of `synthesize --bank`, old engine against new, in the same run (no GPU needed).

What a GPU cannot take over: reading, decoding and cutting the inputs, planning and serialising
each sample, moving crops to the device and LQs back, PNG encoding, tar writing and hashing. Both
engines run with the device math replaced by a stand-in that only makes tensors of the right
shapes (on a GPU that math takes microseconds; on this CPU it would bury the host's cost):

- old: the engine before issue 23 (default: commit e655119), measured by its own benchmark
  (``benchmarks/synth_learned.py --skip a b c``, its section (d)), run from a git worktree of
  that commit;
- new: this checkout's engine, measured the same way here: ``synthesize --bank`` with a
  :class:`~redegkit.synth.learned.LearnedProducer` whose ``degrade`` stand-in makes the LQ
  zeros after the host side of the upload as on CUDA. Both engines' CUDA uploads read the crops'
  shared memory directly once it is page-locked (``cudaHostRegister``; the old engine's stand-in
  assumed the same); here a stand-in marks each segment pinned. ``--no-pin`` measures the new
  engine where CUDA refuses that: one copy of each crop into a reused staging buffer.

Per engine, per round: a short and a long run (twice the inputs, hard links of 128 distinct
512x512 PNGs, 4 crops of 256 each, x4, batch 64, a calibrated bank, PNG level 1); every figure is
the marginal cost per sample between the two (start-up, pool and first-touch costs cancel), the
median round of three. Reported: the main process's CPU per sample (all its threads), the
workers' CPU per pair (every child process: source, sink and the post-shard step), and the cores
4,000 pairs/s need (workers + main, plus 5 µs per top-level torch op the device math launches).
The engines alternate ``--pairs`` times (this box is shared; compare runs next to each other).

    python benchmarks/synth_host.py                 # 2 alternations old/new, 2 workers
    python benchmarks/synth_host.py --pairs 3 --json-out host.json
    python benchmarks/synth_host.py --pairs 1 --no-pin
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OLD_REF = "e655119"  # the last commit of the engine issue 23 replaced
LAUNCH_US = 5.0  # what one top-level torch op (a kernel launch) costs the host on a GPU


def old_engine(ref: str, workers: int, rounds: int, tmp: Path) -> dict:
    """The old engine's own host-path benchmark, from a worktree of ``ref``."""
    tree = tmp / f"old-{ref}"
    if not tree.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(tree), ref],
                       check=True, capture_output=True)  # fmt: skip
    out = tmp / "old.json"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "benchmarks/synth_learned.py", "--skip", "a", "b", "c", "--workers", str(workers),
           "--rounds", str(rounds), "--json-out", str(out)]  # fmt: skip
    subprocess.run(cmd, cwd=tree, env=env, check=True, capture_output=True, text=True)
    d = json.loads(out.read_text())["host_path"]
    return {
        "engine": f"old ({ref})",
        "main_us": d["host_us_per_sample"],
        "ops": d["torch_ops_per_sample"],
        "workers_ms": d["worker_cpu_ms_per_sample"],
        "writer_us": d["writer_process_us_per_sample"],
        "sys_ms": d["children_sys_ms_per_sample"],
        "cores": d["cores_for_4000_pairs_per_s"],
        "cores_range": d["cores_range_over_rounds"],
    }


def _no_device_math(synth, ctx, batch):  # noqa: ANN001 - the degrade_batch signature
    """The device stage's stand-in: the host side of the upload as on CUDA (the crops' runs as
    tensors over their page-locked memory, which the DMA reads; or, with ``--no-pin``, the one copy
    into a reused staging buffer), then LQ zeros."""
    import numpy as np
    import torch

    from redegkit.synth.learned.device import LqGroup, contiguous_runs

    if batch.pinned:
        [torch.from_numpy(r) for r in contiguous_runs(batch.hq)]
    else:
        buf = batch.staging.take((len(batch.hq), *batch.hq[0].shape))  # the reused (pinned, on CUDA) buffer
        np.stack(batch.hq, out=buf.numpy())
    h, w = batch.hq[0].shape[:2]
    rows = [i for i, s in enumerate(batch.specs) if s.jpeg == 0]
    lq = torch.zeros((len(rows), h // batch.scale, w // batch.scale, 3), dtype=torch.uint8)
    return [LqGroup(rows, lq, False)] if rows else []


def _pinned(_array):  # noqa: ANN001
    """Stands for a successful cudaHostRegister of a crops segment (this box has no GPU)."""
    return lambda: None


def _ops_per_sample() -> float:
    """Top-level torch ops per sample of the device math after the generator (calibration,
    noise, downsampling, rounding) for a batch of 64 crops of 256, as a GPU runs it batched."""
    import numpy as np
    import torch

    from redegkit.bank import operators

    n = 64
    g = torch.Generator().manual_seed(0)
    y, hq = torch.rand(n, 3, 256, 256, generator=g) * 2 - 1, torch.rand(n, 3, 256, 256, generator=g) * 2 - 1
    f = np.zeros((2, 7, 7), np.float32)
    f[0, 3, 3], f[1, 3, 3] = 0.3, 0.7
    posts = [{"strength": 1.0, "filter": f, "color": np.zeros((3, 4), np.float32), "noise_cov": np.eye(3) * 2e-4,
              "noise_corr": 0.8, "noise_seed": i} for i in range(n)]  # fmt: skip
    cpu_chunk = operators._HASH_CHUNK["cpu"]
    per_sample = operators._per_sample_on_cpu
    operators._HASH_CHUNK["cpu"] = operators._HASH_CHUNK["cuda"]  # batched, as on CUDA
    operators._per_sample_on_cpu = lambda fn, x: fn(x)
    try:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            out = operators.apply_calibration(y, hq, posts)
            operators.finalize(out, scale=4, interps=["bicubic", "bilinear"] * (n // 2),
                               sigmas=[0.1 * (i % 2) for i in range(n)], seeds=list(range(n)))  # fmt: skip
    finally:
        operators._HASH_CHUNK["cpu"], operators._per_sample_on_cpu = cpu_chunk, per_sample
    ev = [e for e in prof.events() if e.name.startswith("aten::")]
    top = [e for e in ev if e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")]
    return len(top) / n


def new_engine(workers: int, rounds: int, tmp: Path, pin: bool = True) -> dict:
    """This checkout's engine, the marginal between a short and a long run, the median round."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import torch
    from synth_classical import make_inputs
    from synth_learned import build, random_calibration

    from redegkit.bank import Bank, load_bank, pack_module, save_bank
    from redegkit.io.sources import list_sources
    from redegkit.synth import SynthConfig, synthesize
    from redegkit.synth.learned import bank_producer
    from redegkit.synth.learned.engine import LearnedProducer

    e, g = build(256, 1 / 16, 32, 2)  # shapes only: the stand-in never runs them
    n = 64
    bank = Bank(embeddings=torch.randn(n, 32) * 0.5, records=[{"key": f"r{i}", "pair": f"r{i}"} for i in range(n)],
                identity=torch.zeros(32), degnet_sha256="random", calibration=random_calibration(n),
                synthesizer={"encoder": pack_module(e), "generator": pack_module(g)}, meta={"note": "random"})  # fmt: skip
    save_bank(tmp / "emb.pt", bank)
    (tmp / "in").mkdir()
    made = make_inputs(tmp / "in", 132, 512)
    cfg = SynthConfig(bank=str(tmp / "emb.pt"), crop=256, stride=256, scale=4, batch=64, workers=workers,
                      png_level=1, device="cpu", tile=512, seed=0, noise_prob=0.5)  # fmt: skip
    base, fp = bank_producer(cfg)
    producer = LearnedProducer(load_bank(cfg.bank), base.encoder, base.generator, base.provenance,
                               degrade=_no_device_math, pin=_pinned if pin else None)  # fmt: skip
    runs = {}
    for name, k in (("short", 150), ("long", 300)):
        d = tmp / name
        d.mkdir()
        for i in range(k):
            os.link(made[4 + i % (len(made) - 4)], d / f"s{i:05d}.png")
        runs[name] = list_sources([str(d)])
    torch.set_num_threads(1)  # the main process's own CPU time, on one core
    synthesize(
        list_sources([str(p) for p in made[:4]]), tmp / "warm", cfg, producer=producer, fingerprint_extra=fp
    )

    def measure(name: str, srcs: list) -> dict:
        kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        c0 = time.process_time()
        r = synthesize(srcs, tmp / f"out-{name}", cfg, producer=producer, fingerprint_extra=fp)
        main = time.process_time() - c0
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        shutil.rmtree(tmp / f"out-{name}")
        work = (kids.ru_utime - kids0.ru_utime) + (kids.ru_stime - kids0.ru_stime)
        return {"samples": r.samples, "main": main, "workers": work, "sys": kids.ru_stime - kids0.ru_stime}

    per = []
    for _ in range(rounds):
        s, lg = measure("short", runs["short"]), measure("long", runs["long"])
        dm = lg["samples"] - s["samples"]
        per.append({k: (lg[k] - s[k]) / dm for k in ("main", "workers", "sys")})
    per.sort(key=lambda r: r["main"] + r["workers"])
    med = per[len(per) // 2]
    ops = _ops_per_sample()
    main_us, workers_ms = med["main"] * 1e6, med["workers"] * 1e3

    def cores(r: dict) -> float:
        return round(4000 * (r["workers"] + r["main"] + LAUNCH_US * ops * 1e-6), 1)

    return {"engine": "new", "main_us": round(main_us, 1), "ops": round(ops, 2), "workers_ms": round(workers_ms, 2),
            "writer_us": 0.0, "sys_ms": round(med["sys"] * 1e3, 2), "cores": cores(med), "cores_range": [min(map(cores, per)), max(map(cores, per))]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old-ref", default=OLD_REF)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=2, help="old/new alternations")
    ap.add_argument("--only-new", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no-pin", action="store_true",
                    help="the new engine as where CUDA cannot page-lock the crops (one staging copy per crop)")  # fmt: skip
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args()
    if args.only_new:
        with tempfile.TemporaryDirectory() as t:
            print(json.dumps(new_engine(args.workers, args.rounds, Path(t), pin=not args.no_pin)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        try:
            for _ in range(args.pairs):
                rows.append(old_engine(args.old_ref, args.workers, args.rounds, tmp))
                cmd = [sys.executable, __file__, "--only-new", "--workers", str(args.workers), "--rounds",
                       str(args.rounds), *(["--no-pin"] if args.no_pin else [])]  # fmt: skip
                p = subprocess.run(cmd, check=True, capture_output=True, text=True)
                rows.append(json.loads(p.stdout.strip().splitlines()[-1]))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], capture_output=True)
    how = "staging copy" if args.no_pin else "crops page-locked"
    print(f"host path, {args.workers} workers, no device math, {how}; {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{'engine':16s} {'main µs/sample':>15s} {'ops/sample':>10s} {'workers ms/pair':>16s} "
          f"{'writer µs':>9s} {'sys ms/pair':>11s} {'cores @4000/s':>14s}  rounds' range")  # fmt: skip
    for r in rows:
        print(f"{r['engine']:16s} {r['main_us']:15.1f} {r['ops']:10.2f} {r['workers_ms']:16.2f} "
              f"{r['writer_us']:9.1f} {r['sys_ms']:11.2f} {r['cores']:14.1f}  {r['cores_range']}")  # fmt: skip
    old = [r for r in rows if r["engine"] != "new"]
    new = [r for r in rows if r["engine"] == "new"]
    ratio = statistics.median(n["cores"] / o["cores"] for o, n in zip(old, new, strict=True))
    main_new = statistics.median(r["main_us"] + LAUNCH_US * r["ops"] for r in new)
    main_old = statistics.median(r["main_us"] + LAUNCH_US * r["ops"] for r in old)
    print(
        f"cores new/old (median of the alternations): {ratio:.3f}  (target <= 1.15: "
        f"{'met' if ratio <= 1.15 else 'MISSED'})"
    )
    print(
        f"main process with launches: new {main_new:.1f} µs, old {main_old:.1f} µs  (target <= 150 µs or "
        f"below the old: {'met' if main_new <= 150 or main_new < main_old else 'MISSED'})"
    )
    if args.json_out:
        args.json_out.write_text(json.dumps({"rows": rows, "cores_ratio": ratio, "main_new_us": main_new,
                                             "main_old_us": main_old}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
