"""Throughput of one full fit-degradation step (generator step + discriminator step).

Compares, on the same device in one run:
  reference  `grouped` modulated conv, fp32, eager, contiguous (the ReDegNet reference's way)
  default    `fused` modulated conv, bf16 autocast (CUDA), channels_last (CUDA)
and reports samples/s at 256x256 batch 12, the peak memory at batch 12, and the largest batch whose
step fits in 16 GiB at 512x512 (binary search on torch.cuda.max_memory_allocated).

The perceptual loss runs with RANDOM VGG19 weights here (timing does not depend on their values);
training never does that. Inputs are random tensors: the data pipeline is not timed.

    python benchmarks/fit_step.py                 # GPU, paper-size networks
    python benchmarks/fit_step.py --tiny          # CPU-friendly check: tiny networks, 64 px, batch 2
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from redegkit.fit.config import FitConfig
from redegkit.fit.step import FitModel

KEYS = ("face_hq", "face_lq", "nat_hq", "nat_lq", "face_syn_lq")
MODES = {
    "reference": {"model.modconv": "grouped", "precision": "fp32", "channels_last": False},
    "default": {"model.modconv": "fused", "precision": "auto", "channels_last": True},
}


def make_cfg(args: argparse.Namespace, size: int, mode: str) -> FitConfig:
    data: dict = {"crop": size, "batch": args.batch}
    model = {"style_dim": 32, "n_mlp": 2, "width": 0.0625} if args.tiny else {}
    over = MODES[mode]
    data["precision"] = over["precision"]
    data["channels_last"] = over["channels_last"]
    data["model"] = {**model, "modconv": over["model.modconv"]}
    data["loss"] = {"use_perceptual": not args.no_perceptual}
    return FitConfig.model_validate(data)


def random_batch(n: int, size: int, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.rand(n, 3, size, size, generator=g) * 2 - 1).to(device) for k in KEYS}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_mode(args: argparse.Namespace, mode: str, device: torch.device) -> dict:
    cfg = make_cfg(args, args.size, mode)
    model = FitModel(cfg, device, random_vgg=True)
    batch = random_batch(args.batch, args.size, device)
    for s in range(args.warmup):
        model.train_step(batch, s)
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for s in range(args.iters):
        model.train_step(batch, args.warmup + s)
    sync(device)
    dt = time.perf_counter() - t0
    out = {"mode": mode, "samples_per_s": args.batch * args.iters / dt, "step_ms": 1000 * dt / args.iters}
    if device.type == "cuda":
        out["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def fits(
    args: argparse.Namespace, mode: str, batch: int, device: torch.device, budget: float
) -> tuple[bool, float]:
    """One step at ``mem_size`` px and ``batch``: (peak <= budget and no OOM, peak GiB)."""
    cfg = make_cfg(args, args.mem_size, mode)
    model = None
    try:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        model = FitModel(cfg, device, random_vgg=True)
        model.train_step(random_batch(batch, args.mem_size, device), 0)
        sync(device)
        peak = torch.cuda.max_memory_allocated(device) / 2**30
        return peak <= budget, peak
    except torch.cuda.OutOfMemoryError:
        return False, float("inf")
    finally:
        del model
        torch.cuda.empty_cache()


def largest_batch(args: argparse.Namespace, mode: str, device: torch.device) -> dict:
    budget = args.mem_budget_gib
    lo, hi, peaks = 0, 1, {}
    while True:  # grow until a batch does not fit
        ok, peaks[hi] = fits(args, mode, hi, device, budget)
        if not ok:
            break
        lo, hi = hi, hi * 2
        if hi > args.max_batch:
            return {
                "mode": mode,
                "size": args.mem_size,
                "largest_batch": lo,
                "peak_gib": peaks[lo],
                "capped": True,
            }
    while hi - lo > 1:
        mid = (lo + hi) // 2
        ok, peaks[mid] = fits(args, mode, mid, device, budget)
        lo, hi = (mid, hi) if ok else (lo, mid)
    return {"mode": mode, "size": args.mem_size, "largest_batch": lo, "peak_gib": peaks.get(lo, 0.0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="tiny networks, 64 px, batch 2 (runs on a CPU)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", type=int, default=None, help="crop size (256; 64 with --tiny)")
    ap.add_argument("--batch", type=int, default=None, help="batch (12; 2 with --tiny)")
    ap.add_argument("--iters", type=int, default=None, help="timed steps (20; 3 with --tiny)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--mem-size", type=int, default=512, help="size of the largest-batch search")
    ap.add_argument("--mem-budget-gib", type=float, default=16.0)
    ap.add_argument("--max-batch", type=int, default=256)
    ap.add_argument("--modes", default="reference,default")
    ap.add_argument(
        "--no-perceptual", action="store_true", help="leave out the VGG19 loss (implied by --tiny)"
    )
    ap.add_argument("--skip-max-batch", action="store_true")
    ap.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = ap.parse_args()
    args.size = args.size or (64 if args.tiny else 256)
    args.batch = args.batch or (2 if args.tiny else 12)
    args.iters = args.iters or (3 if args.tiny else 20)
    args.warmup = 1 if args.tiny else args.warmup
    args.no_perceptual = args.no_perceptual or args.tiny  # full-width VGG19 would dominate a tiny CPU check
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    vgg = "off" if args.no_perceptual else "random weights (timing only)"
    report: dict = {
        "device": name,
        "torch": torch.__version__,
        "size": args.size,
        "batch": args.batch,
        "tiny": args.tiny,
        "vgg": vgg,
        "results": [],
    }
    log = (lambda *a: None) if args.json else print
    log(
        f"fit step benchmark on {name} (torch {torch.__version__}); "
        f"{args.size}x{args.size}, batch {args.batch}"
        f"{', tiny networks' if args.tiny else ''}; VGG19 perceptual loss: "
        + ("off" if args.no_perceptual else "RANDOM weights (timing only)")
    )
    for mode in args.modes.split(","):
        r = time_mode(args, mode, device)
        report["results"].append(r)
        mem = f", peak {r['peak_mem_gib']:.2f} GiB" if "peak_mem_gib" in r else ""
        log(f"  {mode:9s} {r['samples_per_s']:8.2f} samples/s  ({r['step_ms']:.1f} ms/step{mem})")
    res = {r["mode"]: r for r in report["results"]}
    if "reference" in res and "default" in res:
        report["speedup"] = res["default"]["samples_per_s"] / res["reference"]["samples_per_s"]
        log(f"  speedup default / reference: {report['speedup']:.2f}x")
    if device.type == "cuda" and not args.skip_max_batch:
        mb = largest_batch(args, "default", device)
        report["max_batch"] = mb
        log(
            f"  largest batch at {args.mem_size}x{args.mem_size} "
            f"within {args.mem_budget_gib:g} GiB (default): "
            f"{mb['largest_batch']}{'+' if mb.get('capped') else ''} (peak {mb['peak_gib']:.2f} GiB)"
        )
    elif not args.skip_max_batch:
        log("  largest-batch search skipped: it needs CUDA (torch.cuda.max_memory_allocated)")
    if args.json:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
