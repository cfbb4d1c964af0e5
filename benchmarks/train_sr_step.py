"""Throughput of F2N-ESRGAN training and of `redeg upscale`, in one run, on one device.

Training: the full GAN step (G + VGG19 perceptual/style + U-Net D, batch 12, LQ 64 -> HQ 256,
USM target, EMA), as samples/s:
  - "fp32 eager (reference way)": fp32, NCHW, PyTorch's default Adam, losses read back with
    .item() every step (as BasicSR's log dict does);
  - "ours": bf16 autocast, channels_last, fused Adam, no host sync inside the step
    (redegkit.sr.step.GANStep, the code train-sr runs);
  - "ours + torch.compile" (with --compile).
Inference: `upscale` ms per 256x256 input image (-> 1024x1024), whole image at batch 1 and as
batched 128-px tiles (overlap 16), fp32 eager vs bf16 + channels_last.

VGG19 weights are RANDOM here (no download needed; the cost is the same). --tiny runs tiny
networks on the CPU in seconds (a smoke test of this script, not a measurement).

    python benchmarks/train_sr_step.py            # on a GPU
    python benchmarks/train_sr_step.py --tiny     # anywhere
"""

from __future__ import annotations

import argparse
import time

import torch

from redegkit.config import resolve_config
from redegkit.models.discriminators import UNetDiscriminatorSN
from redegkit.models.perceptual import PerceptualLoss
from redegkit.models.rrdb import RRDBNet
from redegkit.run import RunContext
from redegkit.sr.state import make_adam, make_ema
from redegkit.sr.step import GANStep, wrap_for_training
from redegkit.sr.upscale import upscale_tensor


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_train(mode: str, args, device: torch.device) -> float:
    fast = mode != "fp32"
    cfg = resolve_config(
        "train_sr",
        None,
        {
            "batch": args.batch,
            "amp": fast,
            "channels_last": fast,
            "compile": mode == "compile",
            "model": args.model,
            "data": {"hq_crop": args.hq},
        },
    )
    torch.manual_seed(0)
    m = cfg.model
    g = RRDBNet(num_feat=m.num_feat, num_block=m.num_block, num_grow_ch=m.num_grow_ch).to(device)
    d = UNetDiscriminatorSN(num_feat=m.d_num_feat).to(device)
    ema = make_ema(g)
    percep = PerceptualLoss(
        cfg.loss.perceptual_layers, cfg.loss.perceptual, cfg.loss.style, random_weights=True
    ).to(device)
    ctx = RunContext.local(device, "bf16" if fast else "fp32", channels_last=fast)
    ctx.place(g, d, ema, percep)
    opt_g = make_adam(g.parameters(), 1e-4, (0.9, 0.99), device, fused=fast)
    opt_d = make_adam(d.parameters(), 1e-4, (0.9, 0.99), device, fused=fast)
    g_run, d_run, d_frozen = wrap_for_training(g, d, cfg, ctx)
    step = GANStep(
        cfg,
        g=g,
        d=d,
        ema=ema,
        percep=percep,
        opt_g=opt_g,
        opt_d=opt_d,
        ctx=ctx,
        g_run=g_run,
        d_run=d_run,
        d_frozen=d_frozen,
    )
    gen = torch.Generator().manual_seed(0)
    lq = step.to_device(torch.rand(args.batch, 3, args.hq // 4, args.hq // 4, generator=gen) * 2 - 1)
    hq = step.to_device(torch.rand(args.batch, 3, args.hq, args.hq, generator=gen) * 2 - 1)

    def one() -> None:
        losses = step(lq, hq, True)
        if not fast:  # the reference reads every loss back each step
            _ = {k: v.item() for k, v in losses.items()}

    for _ in range(args.warmup if mode != "compile" else args.warmup + 3):
        one()
    _sync(device)
    t = time.perf_counter()
    for _ in range(args.iters):
        one()
    _sync(device)
    return args.iters * args.batch / (time.perf_counter() - t)


@torch.inference_mode()
def bench_upscale(fast: bool, tile: int | None, args, device: torch.device) -> float:
    torch.manual_seed(0)
    m = args.model
    g = (
        RRDBNet(num_feat=m["num_feat"], num_block=m["num_block"], num_grow_ch=m["num_grow_ch"])
        .to(device)
        .eval()
    )
    if fast and device.type == "cuda":
        g = g.to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, args.up_size, args.up_size, device=device) * 2 - 1
    kw = dict(scale=4, tile=tile, overlap=16, batch=16, amp=fast)
    for _ in range(2):
        upscale_tensor(g, x, **kw)
    _sync(device)
    t = time.perf_counter()
    for _ in range(args.up_iters):
        upscale_tensor(g, x, **kw)
    _sync(device)
    return (time.perf_counter() - t) / args.up_iters * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="tiny networks on the CPU (smoke test)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (CUDA)")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    args.batch, args.hq, args.up_size, args.up_iters = 12, 256, 256, 5
    args.model = {"num_feat": 64, "num_block": 23, "num_grow_ch": 32, "d_num_feat": 64}
    if args.tiny:
        args.batch, args.hq, args.up_size, args.up_iters, args.iters, args.warmup = 2, 32, 32, 2, 3, 1
        args.model = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4, "d_num_feat": 8}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}; VGG19 weights: RANDOM (benchmark only)")
    if device.type == "cpu":
        print("note: on a CPU both paths run fp32 (autocast/channels_last/fused are CUDA-only): a smoke test")
    print(f"train step: batch {args.batch}, LQ {args.hq // 4} -> HQ {args.hq}, nets {args.model}")
    modes = ["fp32", "fast"] + (["compile"] if args.compile and device.type == "cuda" else [])
    labels = {
        "fp32": "fp32 eager (reference way)",
        "fast": "bf16 + channels_last + fused Adam, no syncs",
        "compile": "  + torch.compile(G, D)",
    }
    base = None
    for mode in modes:
        sps = bench_train(mode, args, device)
        base = base or sps
        print(f"  {labels[mode]:<45} {sps:9.2f} samples/s  ({sps / base:.2f}x)")
    print(f"upscale: {args.up_size}x{args.up_size} -> x4, ms per image")
    for tile, what in (
        (None, "whole image, batch 1"),
        (args.up_size // 2, f"{args.up_size // 2}-px tiles, batched"),
    ):
        ref = bench_upscale(False, tile, args, device)
        ours = bench_upscale(True, tile, args, device)
        print(
            f"  {what:<28} fp32 eager {ref:9.2f} ms   bf16+channels_last {ours:9.2f} ms  ({ref / ours:.2f}x)"
        )


if __name__ == "__main__":
    main()
