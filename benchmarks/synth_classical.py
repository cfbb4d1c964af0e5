"""Throughput of `synthesize --preset realesrgan` on 512x512 crops, against the I/O floor.

The floor is the same run with degradation switched off (a preset that only resizes to the
LQ size): decode + PNG encode + tar write. Target: the full run reaches >= 50% of the floor's
pairs/s. Prints pairs/s for 1 and 2 workers and the time split (decode/degrade/encode/write).

    python benchmarks/synth_classical.py [--images 24] [--workers 1 2] [--preset realesrgan]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from redegkit.io.sources import list_sources
from redegkit.synth import SynthConfig, synthesize

ROOT = Path(__file__).resolve().parents[1]
FLOOR = {"floor": {"description": "no degradation: resize to the LQ size only",
                   "steps": [{"op": "resize", "ref": "output", "interp": "area"}]}}


def make_inputs(folder: Path, n: int) -> None:
    """n distinct 512x512 PNGs from the example images (crops, flips, rotations)."""
    imgs = []
    for p in sorted((ROOT / "examples").glob("*.*")):
        im = cv2.imread(str(p))
        if im is not None:
            imgs.append(cv2.resize(im, (640, 640), interpolation=cv2.INTER_CUBIC) if min(im.shape[:2]) < 512 else im)
    for i in range(n):
        im = imgs[i % len(imgs)]
        k = i // len(imgs)
        im = np.rot90(im, k % 4)
        if k % 2:
            im = im[:, ::-1]
        y, x = (im.shape[0] - 512) // 2, (im.shape[1] - 512) // 2
        cv2.imwrite(str(folder / f"img{i:03d}.png"), np.ascontiguousarray(im[y : y + 512, x : x + 512]))


def run(srcs, out: Path, preset: str, workers: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    cfg = SynthConfig(preset=preset, crop=512, scale=4, workers=workers, seed=0)
    t0 = time.perf_counter()
    res = synthesize(srcs, out, cfg, user_presets=FLOOR)
    wall = time.perf_counter() - t0
    return {"pairs": res.samples, "wall": wall, "pairs_per_s": res.samples / wall, "timings": res.timings}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--preset", default="realesrgan")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="redeg-bench-"))
    try:
        (tmp / "in").mkdir()
        make_inputs(tmp / "in", args.images)
        srcs = list_sources(tmp / "in")
        print(f"{len(srcs)} inputs of 512x512, x4, cpu count {os.cpu_count()}")
        print(f"{'run':<22}{'workers':>8}{'pairs/s':>10}{'ratio':>8}   split (s, summed over workers)")
        for w in args.workers:
            floor = run(srcs, tmp / "floor", "floor", w)
            full = run(srcs, tmp / "full", args.preset, w)
            for name, r in (("floor (no degrade)", floor), (args.preset, full)):
                t = r["timings"]
                split = " ".join(f"{k}={t[k]:.2f}" for k in ("decode", "degrade", "encode", "write"))
                ratio = r["pairs_per_s"] / floor["pairs_per_s"]
                print(f"{name:<22}{w:>8}{r['pairs_per_s']:>10.2f}{ratio:>8.2f}   {split}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
