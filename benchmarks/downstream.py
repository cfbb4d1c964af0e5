"""The downstream suite: `redeg eval downstream` on entries of fidelity_suite.toml.

For each degradation D it runs what `eval downstream` runs: `eval transfer` (fit `recipes/cpu.toml`
on face views degraded by D, bake, score the LQ), then every source (the bank, the bank without
calibration, the built-in presets, bicubic-only, the oracle D) degrades the same crops of the
training images, the `eval-sr` restorer trains on each, and each restorer is scored on D(test
crops) against the clean crops, at x1 and x4. Faces: astronaut, camera; training images: brick,
coffee, chelsea; test images (held out of both): grass, gravel, rocket. It prints one table per
degradation and scale and writes benchmarks/out/downstream/<D>/report.json (and the sheets).

    python benchmarks/downstream.py --only fade-cast            # ~10-15 min per entry on 2 cores
    python benchmarks/downstream.py --only realesrgan-draw      # the control ([controls] of the suite)
    python benchmarks/downstream.py --only fade-cast --resume   # keep what an interrupted run finished
    python benchmarks/downstream.py --fit-steps 300             # shorter fits (not the target's numbers)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from redegkit.config import load_toml, resolve_config
from redegkit.eval.downstream import DownstreamConfig, eval_downstream
from redegkit.io.sources import list_sources

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EX = ROOT / "examples"
FACES = [EX / "astronaut.png", EX / "camera.png"]
TRAIN = [EX / n for n in ("brick.png", "coffee.png", "chelsea.png")]
TESTS = [EX / n for n in ("grass.png", "gravel.png", "rocket.jpg")]


def _ci(v: float | None, ci: list | None, nd: int = 2) -> str:
    if v is None:
        return "-"
    if not ci or ci[0] is None:
        return f"{v:.{nd}f}"
    return f"{v:.{nd}f} [{ci[0]:.{nd}f}, {ci[1]:.{nd}f}]"


def print_table(name: str, rep: dict, secs: float, control: bool = False) -> None:
    for sc, s in rep["scales"].items():
        print(f"\n{name} {sc} ({len(s['images'])} test images, {secs / 60:.1f} min for the whole entry)")
        best = s["sources"].get(s.get("best_preset", ""), {}).get("psnr")
        print(f"  {'source':28s} {'PSNR-Y [95% CI]':>24s} {'SSIM':>7s} {'vs best':>8s} {'transfer':>9s}")
        for src, r in sorted(s["sources"].items(), key=lambda kv: -(kv[1]["psnr"] or -1e9)):
            d = r.get("transfer_distance")
            vs = f"{r['psnr'] - best:+.2f}" if best is not None else "-"
            print(
                f"  {src:28s} {_ci(r['psnr'], r['psnr_ci']):>24s} {r['ssim']:7.4f} {vs:>8s} "
                f"{'-' if d is None else f'{d:.2f}':>9s}"
            )
        p, g = s.get("protocol", {}), s.get("gain", {})
        print(
            f"  protocol can tell: {p.get('can_tell')} (oracle - unrestored {_ci(p.get('oracle_gain'), p.get('oracle_gain_ci'))} dB)"
        )
        print(
            f"  best preset {s.get('best_preset')}: bank gain {_ci(g.get('psnr'), g.get('psnr_ci'))} dB, closure {_ci(s.get('closure'), s.get('closure_ci'))}"
        )
        t = s.get("target") or {}
        if control:
            print("  control: no target (a D inside a preset's ranges)")
        else:
            print(f"  target ({t.get('kind')}): {'met' if t.get('passed') else 'missed'} {t.get('checks')}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", type=Path, default=HERE / "fidelity_suite.toml")
    ap.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "cpu.toml")
    ap.add_argument("--sr-recipe", default="eval-sr")
    ap.add_argument("--only", action="append", help="run only this entry (repeatable)")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "downstream")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--fit-steps", type=int, default=None, help="fit steps (default: the recipe's)")
    args = ap.parse_args()

    suite = load_toml(args.suite)
    controls = suite.get("controls", {})
    presets = {**suite["presets"], **controls}  # a control is a D like the others, without a target
    names = args.only or list(presets)
    fit_cfg = resolve_config("fit", args.recipe, {"steps": args.fit_steps})
    bake_cfg = resolve_config("bake", args.recipe, {})
    tcfg = resolve_config("eval_transfer", args.recipe, {})
    cfg = DownstreamConfig.model_validate(
        {**tcfg.model_dump(), "train_crop": 128, "train_crops_per_image": 16}
    )
    sr_cfg = resolve_config("train_sr", args.sr_recipe, {})
    up_cfg = resolve_config("upscale", args.sr_recipe, {})
    summary = {}
    for name in names:
        t0 = time.perf_counter()

        def say(n: int, name: str = name, t0: float = t0, **f) -> None:
            if f.get("step"):
                print(f"[{name} {time.perf_counter() - t0:6.0f}s] {f['step']}", flush=True)

        res = eval_downstream(
            list_sources([str(p) for p in FACES]), list_sources([str(p) for p in TESTS]),
            list_sources([str(p) for p in TRAIN]), name, args.out / name, cfg=cfg, sr_cfg=sr_cfg,
            up_cfg=up_cfg, fit_cfg=fit_cfg, user_presets=presets, bake_cfg=bake_cfg,
            resume=args.resume, progress=say,
        )  # fmt: skip
        secs = time.perf_counter() - t0
        print_table(name, res.report, secs, control=name in controls)
        for f in res.failures:
            print(f"  failure: {f}")
        summary[name] = {"seconds": round(secs), "control": name in controls, "scales": res.report["scales"]}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
