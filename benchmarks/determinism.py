"""Byte-determinism of `synthesize --bank` under load: the same run, repeated, gives the same shards.

A calibrated bank (filters, colour maps, learned noise, a calibrated JPEG on some embeddings) of
quarter-width networks, the example images at 256 px cut into 64-px crops, mixed embeddings,
spec noise, a hybrid share through the realesrgan preset, and small shards. The run is repeated
``--runs`` times with ``--workers`` workers while ``--load`` busy processes compete for the CPU
(so the workers' and the main process's timing differ from run to run); the batch size cycles
through 1, 3, 8 and 16. Every run's shards are hashed together; all must be equal.

    python benchmarks/determinism.py                 # 20 runs, 2 workers, 2 busy processes
    python benchmarks/determinism.py --runs 5 --load 0
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _spin(stop) -> None:  # noqa: ANN001
    x = 0
    while not stop.is_set():
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF


def make_bank(tmp: Path) -> Path:
    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT))
    from redegkit.bank import bake, load_bank, save_bank
    from redegkit.bank.config import BakeConfig
    from redegkit.models.redeg import DegNet, SynNetEncoder, SynNetGenerator
    from tests.fit_helpers import make_face_pairs

    torch.manual_seed(0)
    kw = {"size": 64, "width": 0.25}
    d, e, g = (
        DegNet(style_dim=64, **kw).eval(),
        SynNetEncoder(**kw).eval(),
        SynNetGenerator(style_dim=64, n_mlp=2, **kw).eval(),
    )
    with torch.no_grad():
        for m in g.modules():
            if type(m).__name__ == "NoiseInjection":
                m.weight.fill_(0.5)
    pairs = make_face_pairs(tmp / "pairs", size=128, manifest=True)
    res = bake(str(pairs), d, e, g, BakeConfig(crops=2, each=True, face_box=None, device="cpu"))
    save_bank(tmp / "raw.pt", res.bank)
    bank = load_bank(tmp / "raw.pt")
    n = len(bank)
    cal = {k: v.clone() for k, v in bank.calibration.items()}
    cal["jpeg"] = torch.tensor([[0, 60, 0, 85][i % 4] for i in range(n)])
    cal["noise_cov"] = torch.stack([torch.eye(3) * (2e-4 if i % 2 else 0.0) for i in range(n)])
    cal["noise_corr"] = torch.tensor([[0.0, 0.8, 0.0, 1.3][i % 4] for i in range(n)])
    col = torch.zeros(n, 3, 4)
    col[:, :, :3] = torch.eye(3) * 0.95
    col[:, :, 3] = torch.from_numpy(np.linspace(-0.02, 0.02, 3)).float()
    cal["color"] = col
    bank.calibration = cal
    bank.path = bank.sha256 = None
    return save_bank(tmp / "emb.pt", bank)


def make_inputs(tmp: Path) -> Path:
    import cv2

    d = tmp / "hq"
    d.mkdir()
    for p in sorted((ROOT / "examples").glob("*.png")):
        im = cv2.imread(str(p), cv2.IMREAD_COLOR)
        s = 256 / max(im.shape[:2])
        cv2.imwrite(str(d / p.name), cv2.resize(im, (round(im.shape[1] * s), round(im.shape[0] * s)),
                                                 interpolation=cv2.INTER_AREA))  # fmt: skip
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--load", type=int, default=2, help="busy processes competing for the CPU")
    args = ap.parse_args()
    stop = mp.Event()
    spinners = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(args.load)]
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        bank, hq = make_bank(tmp), make_inputs(tmp)
        for p in spinners:
            p.start()
        digests = []
        try:
            for i in range(args.runs):
                batch = (1, 3, 8, 16)[i % 4]
                out = tmp / f"run{i:02d}"
                cmd = [sys.executable, "-c", "import sys; from redegkit.cli import main; sys.argv[0] = 'redeg'; main()",
                       "synthesize", "--bank", str(bank), str(hq), str(out), "--crop", "64", "--scale", "4",
                       "--tile", "64", "--workers", str(args.workers), "--batch", str(batch), "--mix", "--noise",
                       "0.5", "--mix-preset", "realesrgan:0.25", "--shard-count", "20", "--device", "cpu",
                       "--seed", "7", "--quiet"]  # fmt: skip
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True)
                h = hashlib.sha256()
                tars = sorted(out.glob("*.tar"))
                for p in tars:
                    h.update(p.read_bytes())
                digests.append(h.hexdigest())
                print(f"run {i + 1:2d}/{args.runs}: batch {batch:2d}, {len(tars)} shards, "
                      f"{time.perf_counter() - t0:5.1f} s, sha256 {digests[-1][:16]}", flush=True)  # fmt: skip
        finally:
            stop.set()
            for p in spinners:
                p.join()
    same = digests.count(digests[0])
    print(f"{same} of {len(digests)} runs identical ({args.workers} workers, {args.load} busy processes)")
    sys.exit(0 if same == len(digests) else 1)


if __name__ == "__main__":
    main()
