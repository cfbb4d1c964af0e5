"""No host synchronisation per training step (CUDA only): `torch.cuda.set_sync_debug_mode`.

Runs a few train-sr GAN steps and fit-degradation steps on random tensors with full-size networks
(random VGG19 weights; values do not matter) under ``set_sync_debug_mode("warn")`` and counts the
synchronising calls that each step makes, outside the every-``log_every`` loss read-out. Target: 0
per step. Prints one JSON line per loop.

    python benchmarks/sync_check.py            # needs CUDA
"""

from __future__ import annotations

import json
import sys
import warnings

import torch


def count_syncs(step, n: int) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(n):
                step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def main() -> None:
    if not torch.cuda.is_available():
        print(json.dumps({"skipped": "CUDA is not available"}))
        sys.exit(0)
    from redegkit.config import resolve_config
    from redegkit.fit.config import FitConfig
    from redegkit.fit.step import FitModel
    from redegkit.models.discriminators import UNetDiscriminatorSN
    from redegkit.models.perceptual import PerceptualLoss
    from redegkit.models.rrdb import RRDBNet
    from redegkit.run import RunContext
    from redegkit.sr.state import make_adam, make_ema
    from redegkit.sr.step import GANStep, wrap_for_training

    ctx = RunContext.local("cuda")
    cfg = resolve_config("train_sr", None, {"batch": 12})
    g, d = RRDBNet(), UNetDiscriminatorSN()
    ema = make_ema(g)
    percep = PerceptualLoss(
        cfg.loss.perceptual_layers, cfg.loss.perceptual, cfg.loss.style, random_weights=True
    )
    ctx.place(g, d, ema, percep)
    opt_g, opt_d = (make_adam(m.parameters(), 1e-4, (0.9, 0.99), ctx.device) for m in (g, d))
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
    # the loaders' batches: uint8 in pinned memory, converted on the device inside the step
    lq8 = torch.randint(0, 256, (12, 3, 64, 64), dtype=torch.uint8).pin_memory()
    hq8 = torch.randint(0, 256, (12, 3, 256, 256), dtype=torch.uint8).pin_memory()
    lq, hq = ctx.to_device(lq8), ctx.to_device(hq8)
    step(lq, hq, True)  # warm-up (cuDNN autotuning, allocator)
    print(
        json.dumps(
            {
                "loop": "train-sr GAN step",
                "steps": 5,
                "syncs_per_step": count_syncs(lambda: step(lq, hq, True), 5) / 5,
            }
        )
    )

    fcfg = FitConfig.model_validate({"batch": 12, "crop": 256})
    model = FitModel(fcfg, ctx=ctx, random_vgg=True)
    batch = {
        k: torch.randint(0, 256, (12, 3, 256, 256), dtype=torch.uint8).pin_memory()
        for k in ("face_hq", "face_lq", "nat_hq", "nat_lq", "face_syn_lq")
    }
    model.train_step(batch, 0)
    n = [1]

    def fit_step() -> None:
        model.train_step(batch, n[0])
        n[0] += 1

    print(
        json.dumps(
            {"loop": "fit-degradation step", "steps": 5, "syncs_per_step": count_syncs(fit_step, 5) / 5}
        )
    )


if __name__ == "__main__":
    main()
