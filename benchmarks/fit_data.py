"""Host side of fit-degradation: how many DataLoader workers a fit step at batch 12 needs.

One worker builds a fit sample (decode a face pair and a natural image, crop, and the three
synthetic degradations: syn-from-HQ, syn-from-LQ, matched) in the time printed here. The loader
feeds ``workers / ms_per_sample`` samples/s; a fit step consumes ``batch / step_seconds``. This
script times the samples of the paper recipe (256 px, its presets) in this process (one worker),
then reports the samples/s that the default ``data.workers`` deliver and, for a given fit step
rate (``--step-rate`` samples/s: the ``default`` line of ``benchmarks/fit_step.py`` on the GPU),
the workers that rate needs. Baseline in the same run: the unavoidable work alone, i.e. decoding
the same two PNG pairs and cropping (a minimal script, not our dataset with parts switched off).

    python benchmarks/fit_data.py                       # the paper recipe, 256 px
    python benchmarks/fit_data.py --step-rate 150       # workers for 150 samples/s
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redegkit.config import resolve_config  # noqa: E402
from redegkit.fit.data import build_dataset, list_face_pairs  # noqa: E402
from redegkit.io.sources import list_sources  # noqa: E402
from tests.fit_helpers import make_face_pairs, natural_paths  # noqa: E402


def floor(pairs_dir: Path, naturals: list[str], crop: int, n: int) -> float:
    """Seconds per sample of the unavoidable work: decode one face pair + one natural, crop."""
    hqs = sorted((pairs_dir / "hq").glob("*.png"))
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for i in range(n):
        p = hqs[i % len(hqs)]
        hq, lq = cv2.imread(str(p)), cv2.imread(str(pairs_dir / "lq" / p.name))
        nat = cv2.imread(naturals[i % len(naturals)])
        y, x = (int(rng.integers(0, nat.shape[k] - crop + 1)) for k in (0, 1))
        _ = (
            cv2.resize(hq, (crop, crop), interpolation=cv2.INTER_AREA),
            cv2.resize(lq, (crop, crop), interpolation=cv2.INTER_AREA),
            np.ascontiguousarray(nat[y : y + crop, x : x + crop]),
        )
    return (time.perf_counter() - t) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", default=str(ROOT / "recipes" / "paper.toml"))
    ap.add_argument("--samples", type=int, default=48)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument(
        "--step-rate", type=float, default=None, help="fit step samples/s to feed (from fit_step.py)"
    )
    args = ap.parse_args()
    cv2.setNumThreads(1)
    import torch

    torch.set_num_threads(1)  # one worker is one core
    cfg = resolve_config("fit", args.recipe, {})
    with tempfile.TemporaryDirectory() as tmp:
        pairs_dir = make_face_pairs(Path(tmp) / "pairs", size=512)
        pairs, _ = list_face_pairs(pairs_dir)
        naturals = list_sources(natural_paths())
        ds = build_dataset(pairs, naturals, cfg.data, crop=cfg.crop, seed=0, length=args.samples + 4)
        for i in range(2):  # warm-up (imports, first decode)
            ds[i]
        t = time.perf_counter()
        for i in range(2, args.samples + 2):
            ds[i]
        ours = (time.perf_counter() - t) / args.samples
        base = floor(pairs_dir, natural_paths(), cfg.crop, args.samples)
    workers = cfg.data.workers
    res = {
        "recipe": Path(args.recipe).name,
        "crop": cfg.crop,
        "batch": args.batch,
        "ms_per_sample_one_worker": round(ours * 1e3, 2),
        "floor_ms_per_sample": round(base * 1e3, 2),
        "ratio_floor_over_ours": round(base / ours, 3),
        "default_workers": workers,
        "samples_per_s_default_workers": round(workers / ours, 1),
        "steps_per_s_fed_at_batch": round(workers / ours / args.batch, 2),
        "cpu_cores_here": os.cpu_count(),
    }
    if args.step_rate:
        res["step_rate"] = args.step_rate
        res["workers_needed"] = int(np.ceil(args.step_rate * ours))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
