"""Throughput of the learned synthesizer (SynNet encoder + generator) and of `synthesize --bank`.

(a) model only: img/s at 256x256, batch 64, of encoder+generator, the reference's way (grouped
    modulated conv, fp32, eager) against each of our steps: fused, bf16 autocast, channels_last,
    torch.compile (compile time reported apart). Target on a GPU: >= 4000 img/s and >= 8x the reference way.
(b) end to end: `synthesize --bank` pairs/s on 256 crops of 512x512 PNGs (decode, synthesis,
    x4 downsample, PNG encode, tar write) against (a)'s best. Target: >= 70% with 16 CPU cores.
(c) agreement: max |LQ difference| in grey levels of the device's fp32 and bf16 paths against CPU fp32,
    and (CUDA) of the compiled bf16 path (the default) against eager bf16 (-1: compile fell back).
(d) host path (CPU-measurable): `synthesize --bank` with the networks replaced by a no-op of the
    same shapes (the generator returns its input), 256 crops, x4, a calibrated bank (filters,
    noise, no JPEG). Reports the main process's CPU time per sample, split into time inside torch
    kernels (on a GPU these run on the device; the host keeps only their launches) and the rest
    (Python, copies, pickling: what a GPU cannot take over), the torch ops per sample (launches),
    the workers' CPU ms per sample (decode, crop, HQ/LQ PNG encode), and the cores 4000 pairs/s
    needs. Targets: host <= 150 us/sample at 256 px; <= 14 cores for 4000 pairs/s.

The networks have random weights (timing does not depend on the values); say so when quoting.

    python benchmarks/synth_learned.py                 # GPU, full size (256, width 1, 512-d)
    python benchmarks/synth_learned.py --tiny          # CPU smoke run in seconds (1/16 width, 64 px)
    python benchmarks/synth_learned.py --skip a b c    # (d) only: the host path, on any machine
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from redegkit.bank import Bank, pack_module, save_bank
from redegkit.bank.apply import Synthesizer, finalize
from redegkit.io.sources import list_sources
from redegkit.models.redeg import SynNetEncoder, SynNetGenerator
from redegkit.synth import SynthConfig, synthesize
from redegkit.synth.learned import bank_producer

try:  # the classical benchmark's input maker: distinct 512x512 PNGs from examples/
    from synth_classical import make_inputs
except ImportError:  # run from the repository root as a module
    from benchmarks.synth_classical import make_inputs


def build(size: int, width: float, style_dim: int, n_mlp: int) -> tuple[SynNetEncoder, SynNetGenerator]:
    torch.manual_seed(0)
    return (
        SynNetEncoder(size=size, width=width).eval(),
        SynNetGenerator(size=size, style_dim=style_dim, n_mlp=n_mlp, width=width).eval(),
    )


def timed(fn, x: torch.Tensor, z: torch.Tensor, iters: int, warmup: int) -> tuple[float, float]:
    """(img/s, seconds of the first call) of ``fn(x, z)``."""
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    t0 = time.perf_counter()
    fn(x, z)
    sync()
    first = time.perf_counter() - t0
    for _ in range(warmup):
        fn(x, z)
    sync()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn(x, z)
    sync()
    return iters * x.shape[0] / (time.perf_counter() - t0), first


def model_only(args, dev: torch.device) -> dict[str, dict[str, float]]:
    x = torch.rand(args.batch, 3, args.size, args.size, device=dev) * 2 - 1
    z = torch.randn(args.batch, args.style_dim, device=dev)
    variants = [  # name, modconv, precision, channels_last, compile
        ("reference: grouped fp32 eager", "grouped", "fp32", False, False),
        ("fused fp32 eager", "fused", "fp32", False, False),
        ("fused bf16 eager", "fused", "bf16", False, False),
        ("fused bf16 channels_last eager", "fused", "bf16", True, False),
        ("default: fused bf16 channels_last compiled", "fused", "bf16", True, True),
    ]
    if dev.type == "cpu":  # bf16, channels_last and compile apply on CUDA only
        variants = variants[:2]
    out = {}
    for name, mode, prec, cl, comp in variants:
        e, g = build(args.size, args.width, args.style_dim, args.n_mlp)
        s = Synthesizer(e, g, device=dev, precision=prec, compile=comp, modconv=mode, channels_last=cl)
        rate, first = timed(s, x, z, args.iters, args.warmup)
        out[name] = {
            "img_per_s": round(rate, 1),
            "first_call_s": round(first, 2),
            "compile_failed": s.compile_error,
        }
        print(f"  {name:45s} {rate:10.1f} img/s   first call {first:6.2f} s", flush=True)
        del s, e, g
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    ref = out[variants[0][0]]["img_per_s"]
    for v in out.values():
        v["speedup"] = round(v["img_per_s"] / ref, 2)
    return out


def end_to_end(args, dev: torch.device, tmp: Path) -> dict[str, float]:
    e, g = build(args.size, args.width, args.style_dim, args.n_mlp)
    n = 64
    emb = torch.randn(n, args.style_dim) * 0.5
    bank = Bank(
        embeddings=emb,
        records=[{"key": f"rand{i}", "pair": f"rand{i}"} for i in range(n)],
        identity=torch.zeros(args.style_dim),
        degnet_sha256="random",
        synthesizer={"encoder": pack_module(e), "generator": pack_module(g)},
        meta={"note": "random"},
    )
    save_bank(tmp / "emb.pt", bank)
    (tmp / "in").mkdir()
    make_inputs(tmp / "in", args.images + args.warm_images, 512)
    srcs = list_sources([str(tmp / "in")])
    cfg = SynthConfig(
        bank=str(tmp / "emb.pt"),
        crop=args.size,
        scale=4,
        batch=args.batch,
        workers=args.workers,
        device=str(dev),
        tile=max(512, args.size),
        seed=0,
    )
    producer, fp = bank_producer(cfg)
    # Warm-up run on other images: compiles the synthesizer, which the producer keeps for the run.
    synthesize(srcs[: args.warm_images], tmp / "warm", cfg, producer=producer, fingerprint_extra=fp)
    t0 = time.perf_counter()
    res = synthesize(srcs[args.warm_images :], tmp / "out", cfg, producer=producer, fingerprint_extra=fp)
    wall = time.perf_counter() - t0
    tm = res.timings
    return {
        "pairs": res.samples,
        "wall_s": round(wall, 2),
        "pairs_per_s": round(res.samples / wall, 1),
        "workers": args.workers,
        "cpu_seconds": {k: round(v, 2) for k, v in tm.items() if k != "wall"},
    }


def agreement(args, dev: torch.device) -> dict[str, int]:
    """Max grey-level difference of the LQ (x4, bicubic) between the device paths and CPU fp32."""
    e, g = build(args.size, args.width, args.style_dim, args.n_mlp)
    x = torch.rand(4, 3, args.size, args.size) * 2 - 1
    z = torch.randn(4, args.style_dim) * 0.5
    kw = {"scale": 4, "interps": ["bicubic"] * 4, "sigmas": [0.0] * 4, "seeds": [0] * 4}
    ref = finalize(Synthesizer(e, g, device="cpu")(x, z), **kw).int()
    out = {}
    for prec in ("fp32", "bf16"):
        eager = finalize(Synthesizer(e, g, device=dev, precision=prec, compile=False)(x, z), **kw).cpu().int()
        out[f"{dev.type} {prec} vs cpu fp32"] = int((eager - ref).abs().max())
        if dev.type == "cuda" and prec == "bf16":  # compile applies on CUDA only; bf16 is the default path
            s = Synthesizer(e, g, device=dev, precision=prec, compile=True, static_batch=x.shape[0])
            comp = finalize(s(x, z), **kw).cpu().int()
            key = f"{dev.type} {prec} compiled vs eager"
            out[key] = -1 if s.compiled is None else int((comp - eager).abs().max())  # -1: compile fell back
    return out


class NoOpSynth:
    """The Synthesizer's interface with no network: returns its input (same shape, fp32)."""

    def __init__(self, multiple: int, style_dim: int) -> None:
        self.device, self.multiple, self.style_dim = torch.device("cpu"), multiple, style_dim
        self.bf16, self.compiled, self.compile_error = False, None, None

    def __call__(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return x.float()


def random_calibration(n: int) -> dict[str, torch.Tensor]:
    """A plausible bank-v2 calibration: blur-ish f0, identity-ish f1, mild grain, no cast, no JPEG."""
    g = torch.Generator().manual_seed(0)
    filt = torch.zeros(n, 2, 7, 7)
    filt[:, 0] = torch.softmax(torch.randn(n, 49, generator=g), 1).view(n, 7, 7) * 0.3
    filt[:, 1, 3, 3] = 0.7
    cov = torch.eye(3).expand(n, 3, 3) * (torch.rand(n, 1, 1, generator=g) * 4e-4 + 1e-4)
    return {
        "filter": filt,
        "color": torch.zeros(n, 3, 4),
        "noise_cov": cov.contiguous(),
        "noise_corr": torch.full((n,), 0.8),
        "jpeg": torch.zeros(n, dtype=torch.int64),
    }


def host_path(args, tmp: Path) -> dict[str, float]:
    import resource

    from redegkit.synth import learned

    e, g = build(256, 1 / 16, 32, 2)  # only their shapes matter: the forward never runs
    n = 64
    bank = Bank(
        embeddings=torch.randn(n, 32) * 0.5,
        records=[{"key": f"r{i}", "pair": f"r{i}"} for i in range(n)],
        identity=torch.zeros(32),
        degnet_sha256="random",
        calibration=random_calibration(n),
        synthesizer={"encoder": pack_module(e), "generator": pack_module(g)},
        meta={"note": "random"},
    )
    save_bank(tmp / "emb.pt", bank)
    (tmp / "in").mkdir()
    made = make_inputs(tmp / "in", args.host_images, 512)
    srcs = list_sources([str(tmp / "in")])
    cfg = SynthConfig(
        bank=str(tmp / "emb.pt"),
        crop=256,
        stride=256,
        scale=4,
        batch=64,
        workers=args.workers,
        png_level=args.png_level,
        device="cpu",
        tile=512,
        seed=0,
        noise_prob=0.5,
    )
    if args.ring_mb:
        learned.DECODE_ARENA_BYTES, learned.LQ_ARENA_BYTES = (
            args.ring_mb << 20,
            max(1, args.ring_mb // 8) << 20,
        )
    # The steady-state runs: the short one must wrap every worker's rings too. A ring's pages are
    # faulted in on their first pass (one fault per 4 KiB, ~0.2 ms of kernel time per sample here);
    # that is a cost per run, not per sample, and it cancels in the marginal only if both runs pay
    # all of it. ring_sample_bytes (what ring_sizes budgets per sample) is more than a sample
    # takes, so twice the ring's budget in samples per worker wraps it at uneven shares too.
    # Names beyond the distinct images are hard links to them (same bytes, their own keys).
    decode_ring, budget = learned.ring_sizes(cfg)[0], learned.ring_sample_bytes(cfg)
    short_n = (
        args.steady_images // 2 if args.steady_images else -(-2 * args.workers * decode_ring // (budget * 4))
    )
    (tmp / "steady").mkdir()
    for i in range(2 * short_n):
        src, dst = made[4 + i % (len(made) - 4)], tmp / "steady" / f"s{i:05d}.png"
        try:
            os.link(src, dst)
        except OSError:  # a file system without hard links: copies (the same bytes)
            shutil.copyfile(src, dst)
    steady = list_sources([str(tmp / "steady")])
    producer, fp = bank_producer(cfg)
    producer.synth, producer.ctx = NoOpSynth(int(e.multiple), 32), learned.RunContext.host()
    torch.set_num_threads(1)  # the main process's own CPU time, on one core
    from redegkit.io import sink_process

    writer_s = [0.0]
    close = sink_process.ProcessSink.close

    def close_and_count(self):
        close(self)
        writer_s[0] += self.cpu_s

    sink_process.ProcessSink.close = close_and_count
    warm = synthesize(srcs[:4], tmp / "warm", cfg, producer=producer, fingerprint_extra=fp)
    assert warm.samples > 0
    # The host path is measured with the device math (what a GPU runs: uploads, conversion, padding,
    # calibration, noise, resize, quantisation) replaced by stubs that only make tensors of the right
    # shapes: on the CPU that math costs about 40 ms per sample, and subtracting it from the total
    # would bury the host's few hundred µs in its noise. The upload stub also does not read the
    # crops, as on CUDA with the arenas registered as pinned memory (the DMA reads them); the cost
    # of the staging copy used when they cannot be registered is measured on its own below.
    real = {k: getattr(learned, k) for k in ("_upload_crops", "_to_float", "apply_calibration", "finalize")}
    stubs = {
        "_upload_crops": lambda crops, dev, pinned: torch.empty(
            (len(crops), *crops[0].shape), dtype=torch.uint8
        ),
        "_to_float": lambda x8, dev: torch.empty((x8.shape[0], 3, x8.shape[1], x8.shape[2])),
        "apply_calibration": lambda y, hq, posts: y,
        "finalize": lambda y, scale, interps, sigmas, seeds: torch.zeros(
            (y.shape[0], y.shape[2] // scale, y.shape[3] // scale, 3), dtype=torch.uint8
        ),
    }

    def measure(part: list, name: str) -> dict[str, float]:
        writer_s[0] = 0.0
        kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        c0, m0, t0 = time.process_time(), time.thread_time(), time.perf_counter()
        r = synthesize(part, tmp / name, cfg, producer=producer, fingerprint_extra=fp)
        main_cpu, main_thread, wall = (
            time.process_time() - c0,
            time.thread_time() - m0,
            time.perf_counter() - t0,
        )
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        work = (kids.ru_utime - kids0.ru_utime) + (kids.ru_stime - kids0.ru_stime)  # pool workers + writer
        faults = kids.ru_minflt - kids0.ru_minflt
        rt = json.loads(r.report_path.read_text())["runtime"]
        shutil.rmtree(tmp / name, ignore_errors=True)
        return {
            "samples": r.samples,
            "main": main_cpu,
            "main_thread": main_thread,
            "workers": work - writer_s[0],
            "writer": writer_s[0],
            "wall": wall,
            "inline": rt.get("inline_samples", 0),
            "faults": faults,
            "sys": kids.ru_stime - kids0.ru_stime,
        }

    # Steady state: the marginal cost between a short and a long run (twice as many inputs): pool
    # start-up, fork, the rings' first pass and the last shard's fsync are per run, not per sample.
    # --rounds times (default 3); every number reported is the median round's (by its total CPU per
    # sample: one round's numbers together, not each field's best), with the rounds' range of cores
    # (the box is shared: a round's marginal is off when the box slows during one of its two runs).
    rest = srcs[4:]
    for k, f in stubs.items():
        setattr(learned, k, f)
    try:
        rounds = []
        for i in range(args.rounds):
            short, long_ = measure(steady[:short_n], f"short{i}"), measure(steady, f"long{i}")
            dm = long_["samples"] - short["samples"]
            rounds.append(
                {
                    k: (long_[k] - short[k]) / dm
                    for k in ("main", "main_thread", "workers", "writer", "faults", "sys")
                }
            )
    finally:
        for k, f in real.items():
            setattr(learned, k, f)

    totals = [r["main"] + r["workers"] + r["writer"] for r in rounds]
    median = sorted(range(len(rounds)), key=totals.__getitem__)[len(rounds) // 2]

    def per(key: str) -> float:
        return rounds[median][key]

    # The device math itself, on this CPU (a CPU run's own cost), timed on the main thread.
    device_s, depth = [0.0], [0]

    def timed_section(fn):
        def wrapper(*a, **kw):  # outermost call only (to_device runs inside _to_float)
            depth[0] += 1
            c = time.thread_time()  # this thread's CPU (torch runs single-threaded here)
            try:
                return fn(*a, **kw)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    device_s[0] += time.thread_time() - c

        return wrapper

    for k, f in real.items():
        setattr(learned, k, timed_section(f))
    try:
        res1 = synthesize(rest, tmp / "device", cfg, producer=producer, fingerprint_extra=fp)
    finally:
        for k, f in real.items():
            setattr(learned, k, f)
    device_us = device_s[0] / res1.samples * 1e6
    # The staging copy of the uploads where the arenas cannot be registered as pinned memory (and
    # the CPU's own upload): one stack of a batch of 256x256 crops, warm pages.
    crops = [np.full((256, 256, 3), i, np.uint8) for i in range(cfg.batch)]
    out = np.empty((cfg.batch, 256, 256, 3), np.uint8)
    np.stack(crops, out=out)
    t = time.perf_counter()
    for _ in range(20):
        np.stack(crops, out=out)
    stage_us = (time.perf_counter() - t) / (20 * cfg.batch) * 1e6

    # the same long run under the profiler: how many torch ops (kernel launches on a GPU; the
    # noise hash is chunked as on CUDA for this count)
    from redegkit.bank import apply

    # and the depthwise blurs batched as on CUDA (the CPU runs them per sample, see _per_sample_on_cpu)
    cpu_chunk, per_sample = apply._HASH_CHUNK["cpu"], apply._per_sample_on_cpu
    apply._HASH_CHUNK["cpu"] = apply._HASH_CHUNK["cuda"]
    apply._per_sample_on_cpu = lambda fn, x: fn(x)
    try:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            res2 = synthesize(rest, tmp / "prof", cfg, producer=producer, fingerprint_extra=fp)
    finally:
        apply._HASH_CHUNK["cpu"], apply._per_sample_on_cpu = cpu_chunk, per_sample
    # Top-level aten ops: each is one dispatch from Python (and mostly one kernel launch); the ops
    # nested in them are dispatched in C++ (views launch nothing, composite ops a few kernels).
    events = [ev for ev in prof.events() if ev.name.startswith("aten::")]
    top = [ev for ev in events if ev.cpu_parent is None or not ev.cpu_parent.name.startswith("aten::")]
    ops, all_ops = len(top) / res2.samples, len(events) / res2.samples
    # The workers' floor: what any writer of these pairs must do per sample (decode its share of a
    # 512x512 PNG, encode the 256x256 HQ and the 64x64 LQ as PNG at the run's level), plain OpenCV.
    import cv2

    files = [str(x.path) for x in rest[:8]]
    t = time.process_time()
    for f in files:
        im = cv2.imread(f)
        for y in (0, 256):
            for x in (0, 256):
                crop = np.ascontiguousarray(im[y : y + 256, x : x + 256])
                cv2.imencode(".png", crop, [cv2.IMWRITE_PNG_COMPRESSION, cfg.png_level])
                cv2.imencode(
                    ".png",
                    cv2.resize(crop, (64, 64), interpolation=cv2.INTER_AREA),
                    [cv2.IMWRITE_PNG_COMPRESSION, cfg.png_level],
                )
    floor_ms = (time.process_time() - t) / (4 * len(files)) * 1e3
    main_us, thread_us, worker_ms = per("main") * 1e6, per("main_thread") * 1e6, per("workers") * 1e3
    writer_us = per("writer") * 1e6
    host_us = main_us
    return {
        "pairs": long_["samples"],
        "marginal_pairs": dm,
        "workers": args.workers,
        "steady_inputs_short_long": [short_n, 2 * short_n],
        "wall_s": round(long_["wall"], 2),
        "host_us_per_sample": round(host_us, 1),
        "main_thread_us_per_sample": round(thread_us, 1),
        "other_threads_us_per_sample": round(host_us - thread_us, 1),
        "device_math_on_cpu_us_per_sample": round(device_us, 1),
        "torch_ops_per_sample": round(ops, 2),
        "aten_events_per_sample": round(all_ops, 2),
        "staging_copy_us_per_sample_if_unpinned": round(stage_us, 1),
        "host_plus_launches_at_5us": round(host_us + 5 * ops, 1),
        "main_alone_could_feed_pairs_per_s": round(1e6 / max(host_us + 5 * ops, 1e-9)),
        "worker_cpu_ms_per_sample": round(worker_ms, 2),
        "worker_floor_ms_per_sample": round(floor_ms, 2),
        "writer_process_us_per_sample": round(writer_us, 1),
        "children_sys_ms_per_sample": round(per("sys") * 1e3, 2),
        "children_page_faults_per_sample": round(per("faults")),
        "inline_samples_long_run": long_["inline"],
        "png_level": cfg.png_level,
        "ring_mb_per_worker": round(learned.ring_sizes(cfg)[0] / 2**20),
        "cores_for_4000_pairs_per_s": round(
            4000 * (worker_ms / 1e3 + (host_us + 5 * ops + writer_us) / 1e6), 1
        ),
        "floor_cores_for_4000_pairs_per_s": round(4000 * floor_ms / 1e3, 1),
        "cores_range_over_rounds": [
            round(4000 * (t + 5 * ops * 1e-6), 1) for t in (min(totals), max(totals))
        ],
        "rounds": rounds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="CPU smoke run: 1/16 width, 64 px, batch 8")
    ap.add_argument("--device", default=None, help="default: cuda if available (cpu with --tiny)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument(
        "--images", type=int, default=512, help="512x512 inputs of the end-to-end run (4 crops each)"
    )
    ap.add_argument("--warm-images", type=int, default=32)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--skip", nargs="*", default=[], choices=["a", "b", "c", "d"])
    ap.add_argument(
        "--host-images",
        type=int,
        default=132,
        help="distinct 512x512 inputs of (d) (4 warm-up; the rest are the device-math runs and the steady runs' images; 4 crops each)",
    )
    ap.add_argument(
        "--rounds", type=int, default=3, help="(d): short+long run pairs; the median round is reported"
    )
    ap.add_argument(
        "--steady-images",
        type=int,
        default=None,
        help="(d): 512x512 inputs of the long host-path run "
        "(device math stubbed; half of them is the short run); default: enough that the short run "
        "wraps every worker's rings (hard links to the --host-images inputs)",
    )
    ap.add_argument("--png-level", type=int, default=1, help="(d): the run's PNG level")
    ap.add_argument(
        "--ring-mb",
        type=int,
        default=None,
        help="(d): decode ring per worker in MiB (the LQ ring is 1/8); default: as a run sizes them",
    )
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args()
    args.size, args.width, args.style_dim, args.n_mlp = 256, 1.0, 512, 8
    if args.tiny:
        args.size, args.width, args.style_dim, args.n_mlp = 64, 1 / 16, 32, 2
        args.batch, args.iters, args.warmup, args.images, args.warm_images = 8, 5, 1, 8, 2
        args.workers = min(args.workers, 2)
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() and not args.tiny else "cpu"))
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    print(
        f"device: {name}; torch {torch.__version__}; random weights; {args.size}px, batch {args.batch}, "
        f"width {args.width}, style_dim {args.style_dim}",
        flush=True,
    )
    result: dict = {
        "device": name,
        "torch": torch.__version__,
        "size": args.size,
        "batch": args.batch,
        "width": args.width,
        "weights": "random",
    }
    if "a" not in args.skip:
        print("(a) model only: encoder + generator", flush=True)
        result["model_only"] = model_only(args, dev)
    if "b" not in args.skip:
        print(
            f"(b) end to end: synthesize --bank, {args.images} x 512px inputs, {args.workers} workers",
            flush=True,
        )
        tmp = Path(tempfile.mkdtemp(prefix="redeg-bench-"))
        try:
            result["end_to_end"] = e2e = end_to_end(args, dev, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        best = max((v["img_per_s"] for v in result.get("model_only", {}).values()), default=None)
        if best:
            e2e["fraction_of_model_only"] = round(e2e["pairs_per_s"] / best, 3)
        print(
            f"  {e2e['pairs']} pairs in {e2e['wall_s']} s: {e2e['pairs_per_s']} pairs/s"
            + (f" = {e2e['fraction_of_model_only']:.0%} of model-only" if best else ""),
            flush=True,
        )
        print(f"  summed worker/main seconds: {e2e['cpu_seconds']}", flush=True)
    if "c" not in args.skip:
        result["agreement_grey_levels"] = agreement(args, dev)
        print(f"(c) agreement (max |LQ diff|, grey levels): {result['agreement_grey_levels']}", flush=True)
    if "d" not in args.skip:
        print(f"(d) host path, no-op networks: 512px inputs -> 256 crops, {args.workers} workers", flush=True)
        tmp = Path(tempfile.mkdtemp(prefix="redeg-host-"))
        try:
            result["host_path"] = h = host_path(args, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print(
            f"  main process: host {h['host_us_per_sample']} us/sample CPU ({h['main_thread_us_per_sample']} main "
            f"thread, {h['other_threads_us_per_sample']} pool threads); {h['torch_ops_per_sample']} top-level torch ops/sample "
            f"({h['aten_events_per_sample']} aten events with the nested ones) "
            f"-> {h['host_plus_launches_at_5us']} with launches at 5 us (target <= 150); device math on this CPU "
            f"{h['device_math_on_cpu_us_per_sample']} us/sample (a GPU's work); staging copy if the rings cannot "
            f"be pinned +{h['staging_copy_us_per_sample_if_unpinned']} us",
            flush=True,
        )
        print(
            f"  shard writer process: {h['writer_process_us_per_sample']} us/sample; samples sent inline "
            f"(rings full): {h['inline_samples_long_run']}",
            flush=True,
        )
        print(
            f"  workers: {h['worker_cpu_ms_per_sample']} ms/sample (floor: decode share + PNG encodes "
            f"{h['worker_floor_ms_per_sample']} ms); 4000 pairs/s needs {h['cores_for_4000_pairs_per_s']} cores "
            f"(median of {len(h['rounds'])} rounds, range {h['cores_range_over_rounds'][0]}-"
            f"{h['cores_range_over_rounds'][1]}; floor {h['floor_cores_for_4000_pairs_per_s']}; target <= 14); "
            f"workers and writer: "
            f"{h['children_sys_ms_per_sample']} ms/sample of it in the kernel, "
            f"{h['children_page_faults_per_sample']} page faults/sample",
            flush=True,
        )
        if h["children_page_faults_per_sample"] > 8:  # a wrapped ring faults ~0 times per sample
            print(
                "  WARNING: many page faults per sample: the short run did not wrap the rings "
                "(raise --steady-images); the per-sample numbers include the rings' first pass",
                flush=True,
            )
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
