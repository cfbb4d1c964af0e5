"""The known-degradation suite: `redeg eval transfer` on every entry of fidelity_suite.toml.

For each degradation D of the suite it fits `recipes/cpu.toml` on face views degraded by D
(examples/astronaut.png, examples/camera.png), bakes, and scores the bank, the bank without its
calibration, every built-in preset and the identity on crops of the other example images
(never used in fitting) against D(crop). It prints one table, degradation x candidate x score,
and writes benchmarks/out/fidelity/<D>/report.json (and sheet.png).

    python benchmarks/fidelity.py                     # the whole suite, ~6-10 min per entry on 2 cores
    python benchmarks/fidelity.py --only jpeg-only    # one entry
    python benchmarks/fidelity.py --steps 300         # shorter fits (numbers are then not the target's)
    python benchmarks/fidelity.py --reuse             # re-score existing fits (their last.pt) only
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from redegkit.config import load_toml, resolve_config
from redegkit.eval.transfer import TransferConfig, eval_transfer, ranking
from redegkit.io.sources import list_sources

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EX = ROOT / "examples"
FACES = [EX / "astronaut.png", EX / "camera.png"]
NATURALS = [
    EX / n for n in ("brick.png", "coffee.png", "grass.png", "gravel.png", "rocket.jpg", "chelsea.png")
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", type=Path, default=HERE / "fidelity_suite.toml")
    ap.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "cpu.toml")
    ap.add_argument("--only", action="append", help="run only this entry (repeatable)")
    ap.add_argument("--steps", type=int, default=None, help="fit steps (default: the recipe's)")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "fidelity")
    ap.add_argument("--reuse", action="store_true", help="score the fits already in --out (no fitting)")
    args = ap.parse_args()

    presets = load_toml(args.suite)["presets"]
    names = args.only or list(presets)
    fit_cfg = resolve_config("fit", args.recipe, {"steps": args.steps})
    cfg = resolve_config("eval_transfer", args.recipe, {})
    bake_cfg = resolve_config("bake", args.recipe, {})
    assert isinstance(cfg, TransferConfig)
    rows = []
    for name in names:
        out = args.out / name
        t0 = time.perf_counter()
        model = out / "fit" / "last.pt" if args.reuse else None
        res = eval_transfer(
            list_sources([str(p) for p in FACES]),
            list_sources([str(p) for p in NATURALS]),
            name,
            out,
            cfg=cfg,
            fit_cfg=fit_cfg,
            model=model,
            user_presets=presets,
            bake_cfg=bake_cfg,
            log=lambda m, n=name: print(f"[{n}] {m}", flush=True),
        )
        secs = time.perf_counter() - t0
        rep = res.report
        for sc in rep["scores"]:
            v = rep["target"][sc]
            for cand, s in ranking(rep, sc):
                rows.append(
                    {
                        "degradation": name,
                        "scale": sc,
                        "candidate": cand,
                        "psnr": s["psnr"],
                        "ssim": s["ssim"],
                        **{f"d_{k}": s["distance"][k] for k in s["distance"]},
                        "noise_ratio": s["noise_ratio"],
                    }
                )
            print(f"[{name}] {sc}: target {'MET' if v['passed'] else 'missed'} {json.dumps(v)}", flush=True)
        print(
            f"[{name}] {secs:.0f} s (fit {rep.get('fit', {}).get('steps', 'reused')} steps); "
            f"generator identity {rep['generator_identity_psnr']} dB",
            flush=True,
        )
    cols = [
        "psnr",
        "d_overall",
        "d_color",
        "d_sharpness",
        "d_noise",
        "d_blockiness",
        "d_hf_power",
        "noise_ratio",
    ]
    print("\n| degradation | scale | candidate | " + " | ".join(cols) + " |")
    print("|---|---|---|" + "---|" * len(cols))
    for r in rows:
        print(
            f"| {r['degradation']} | {r['scale']} | {r['candidate']} | "
            + " | ".join("-" if r[c] is None else f"{r[c]:.3g}" for c in cols)
            + " |"
        )
    (args.out / "table.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
