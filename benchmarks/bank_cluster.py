"""Time and peak memory of the bank commands that cluster, at the paper's scale (~20,000 pairs).

Builds a bank of N x D embeddings (default 20,000 x 512: a few anisotropic families plus spread,
with a tiny synthesizer so the file is small) and runs, each as its own `redeg` process as a
user would:

- `redeg bank info emb.pt --json`         (clusters, nearest neighbours, statistics)
- `redeg bank filter emb.pt --cluster 0`  (clusters, then a subset)
- `redeg synthesize --bank emb.pt --choice cluster` on one small image (clusters, then synthesis)

For each it prints wall seconds and the process's peak resident memory (its own ru_maxrss, from
wait4). Targets: <= 60 s and <= 2 GiB each on 2 cores.

    python benchmarks/bank_cluster.py [--n 20000] [--dim 512] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_inputs(tmp: Path, n: int, dim: int, seed: int = 0) -> None:
    """``tmp/emb.pt`` (the bank) and ``tmp/hq/a.png``. Run in a child process, so that this
    process stays small: a child's peak RSS starts from its parent's at fork on Linux."""
    import cv2
    import numpy as np
    import torch

    from redegkit.bank.store import Bank, pack_module, save_bank
    from redegkit.models.redeg import SynNetEncoder, SynNetGenerator

    rng = np.random.default_rng(seed)
    families = 5
    centres = rng.normal(0, 3, (families, dim))
    axes = rng.normal(0, 1, (families, 8, dim)) / np.sqrt(dim)  # each family varies along 8 directions
    fam = rng.integers(families, size=n)
    coef = rng.normal(0, 4, (n, 8))
    e = centres[fam] + np.einsum("nk,nkd->nd", coef, axes[fam]) + rng.normal(0, 0.3, (n, dim))
    torch.manual_seed(seed)
    enc = SynNetEncoder(size=64, width=1 / 16)
    gen = SynNetGenerator(style_dim=dim, n_mlp=2, size=64, width=1 / 16)
    records = [{"pair": f"pair{i:06d}", "source": f"photo{i // 4:06d}.jpg", "scale": 4} for i in range(n)]
    bank = Bank(
        embeddings=torch.from_numpy(e.astype(np.float32)),
        records=records,
        identity=torch.zeros(dim),
        degnet_sha256="0" * 64,
        synthesizer={"encoder": pack_module(enc), "generator": pack_module(gen)},
    )
    save_bank(tmp / "emb.pt", bank)
    (tmp / "hq").mkdir()
    cv2.imwrite(
        str(tmp / "hq" / "a.png"), (np.random.default_rng(1).random((128, 128, 3)) * 255).astype(np.uint8)
    )


def run(label: str, args: list[str], env: dict[str, str]) -> dict[str, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    # wait4 gives this child's own rusage (ru_maxrss in KiB on Linux), not a maximum over all children
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(f"{label}: exit {code}\n{err[-2000:]}", file=sys.stderr)
    peak_mib = usage.ru_maxrss / 1024
    print(f"{label:<42} {seconds:7.2f} s   peak RSS {peak_mib:7.0f} MiB   exit {code}")
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(peak_mib), "exit": code, "stdout": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2, help="BLAS/torch threads of each command")
    ap.add_argument("--make-inputs", type=Path, help=argparse.SUPPRESS)  # the child that builds the bank
    a = ap.parse_args()
    if a.make_inputs:
        make_inputs(a.make_inputs, a.n, a.dim)
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-bank-"))
    try:
        subprocess.run(
            [sys.executable, __file__, "--n", str(a.n), "--dim", str(a.dim), "--make-inputs", str(tmp)],
            check=True,
        )
        bank, img = tmp / "emb.pt", tmp / "hq" / "a.png"
        env = {
            **os.environ,
            "OMP_NUM_THREADS": str(a.threads),
            "OPENBLAS_NUM_THREADS": str(a.threads),
            "MKL_NUM_THREADS": str(a.threads),
        }
        redeg = [sys.executable, "-c", "from redegkit.cli import main; main()"]
        print(f"bank: {a.n} x {a.dim} embeddings, {a.threads} threads, {os.cpu_count()} CPUs")
        print(f"{'process':<42} {'wall':>9}   {'memory':>20}")
        run(
            "python -c 'import redegkit.cli' (floor)",
            [sys.executable, "-c", "import redegkit.cli, torch"],
            env,
        )
        info = run("redeg bank info --json", [*redeg, "bank", "info", str(bank), "--json"], env)
        run(
            "redeg bank filter --cluster 0",
            [*redeg, "bank", "filter", str(bank), "--cluster", "0", "-o", str(tmp / "f.pt"), "--json", "-q"],
            env,
        )
        run(
            "redeg synthesize --bank --choice cluster",
            [
                *redeg,
                "synthesize",
                str(img.parent),
                str(tmp / "out"),
                "--bank",
                str(bank),
                "--choice",
                "cluster",
                "--crop",
                "64",
                "--scale",
                "4",
                "--device",
                "cpu",
                "--json",
                "-q",
            ],
            env,
        )
        if info["exit"] == 0:
            cl = json.loads(info["stdout"].strip().splitlines()[-1])["clusters"]
            print(f"clusters found: k={cl['k']} sizes {cl['sizes']} silhouette by k {cl['silhouette_by_k']}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
