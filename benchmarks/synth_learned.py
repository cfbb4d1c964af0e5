"""Throughput of the learned synthesizer (SynNet encoder + generator) and of `synthesize --bank`.

(a) model only: img/s at 256x256, batch 64, of encoder+generator, the reference's way (grouped
    modulated conv, fp32, eager) against each of our steps: fused, bf16 autocast, channels_last,
    torch.compile (compile time reported apart). Target on a GPU: >= 4000 img/s and >= 8x the reference way.
(b) end to end: `synthesize --bank` pairs/s on 256 crops of 512x512 PNGs (decode, synthesis,
    x4 downsample, PNG encode, tar write) against (a)'s best. Target: >= 70% with 16 CPU cores.
(c) agreement: max |LQ difference| in grey levels of the device's fp32 and bf16 paths against CPU fp32,
    and (CUDA) of the compiled bf16 path (the default) against eager bf16 (-1: compile fell back).
The host path (the CPU's share, no GPU needed) is ``benchmarks/synth_host.py``.

The networks have random weights (timing does not depend on the values); say so when quoting.

    python benchmarks/synth_learned.py                 # GPU, full size (256, width 1, 512-d)
    python benchmarks/synth_learned.py --tiny          # CPU smoke run in seconds (1/16 width, 64 px)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from redegkit.bank import Bank, pack_module, save_bank
from redegkit.bank.apply import Synthesizer
from redegkit.bank.operators import finalize
from redegkit.io.sources import list_sources
from redegkit.models.redeg import SynNetEncoder, SynNetGenerator
from redegkit.run import RunContext
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
        ctx = RunContext.local(dev, prec, channels_last=cl)
        s = Synthesizer(e, g, ctx=ctx, compile=comp, modconv=mode, per_sample=False)
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
    ref = finalize(Synthesizer(e, g)(x, z), **kw).int()
    out = {}
    for prec in ("fp32", "bf16"):
        ctx = RunContext.local(dev, prec)
        eager = finalize(Synthesizer(e, g, ctx=ctx, compile=False)(x, z), **kw).cpu().int()
        out[f"{dev.type} {prec} vs cpu fp32"] = int((eager - ref).abs().max())
        if dev.type == "cuda" and prec == "bf16":  # compile applies on CUDA only; bf16 is the default path
            s = Synthesizer(e, g, ctx=ctx, compile=True, static_batch=x.shape[0])
            comp = finalize(s(x, z), **kw).cpu().int()
            key = f"{dev.type} {prec} compiled vs eager"
            out[key] = -1 if s.compiled is None else int((comp - eager).abs().max())  # -1: compile fell back
    return out


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
    ap.add_argument("--skip", nargs="*", default=[], choices=["a", "b", "c"])
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
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
