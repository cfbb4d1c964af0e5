"""Past one machine, measured on one: the S3 sink against the local sink, and the Ray engine against
the local engine, each pair on the same files in the same run (issue 19).

(a) ``synthesize --preset realesrgan --workers W`` into a local folder vs into ``s3://`` on a
    moto S3 server on 127.0.0.1 (a real S3 API; it runs in this process, so its request handling
    takes CPU from the same cores, which a real S3 endpoint would not); ratio = S3 pairs/s / local
    pairs/s; goal >= 0.8. Uploads run in the pool's workers after each shard closes, overlapping
    the compute of the next ones.
(b) the same job with a fixed shard plan (``--shard-inputs``) on the local engine (``--workers W``)
    vs ``--engine ray`` on ``ray.init(num_cpus=W)``; ratio = Ray pairs/s / local pairs/s; goal
    >= 0.8. Ray's start (``ray.init``) is printed apart and not counted: a cluster is up before a
    job; the first Ray run (its workers import redegkit) is printed apart as "cold".

Each side runs ``--repeat`` times, interleaved; medians are reported with the range.
Inputs: ``--images`` PNGs of ``--size``² made from examples/ (resized, flipped, with grain).

    python benchmarks/cluster_engines.py [--images 48] [--size 1024] [--workers 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redegkit.io.sources import list_sources  # noqa: E402
from redegkit.synth import SynthConfig, synthesize  # noqa: E402


def make_inputs(folder: Path, n: int, size: int) -> None:
    names = ["astronaut", "brick", "chelsea", "coffee", "camera", "grass", "gravel"]
    rng = np.random.default_rng(0)
    for i in range(n):
        img = cv2.imread(str(ROOT / "examples" / f"{names[i % len(names)]}.png"))
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC)
        img = img[:, ::-1] if i % 2 else img
        grain = rng.normal(0, 4, img.shape)
        cv2.imwrite(str(folder / f"img{i:04d}.png"), np.clip(img + grain, 0, 255).astype(np.uint8))


def start_moto() -> tuple[object, str]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-secret", AWS_DEFAULT_REGION="us-east-1",
                      AWS_EC2_METADATA_DISABLED="true", FSSPEC_S3_ENDPOINT_URL=url)  # fmt: skip
    import fsspec

    fsspec.filesystem("s3", endpoint_url=url).mkdir("bench")
    return server, url


def _clear(where: str | Path) -> None:
    if isinstance(where, Path):
        shutil.rmtree(where, ignore_errors=True)
        return
    import fsspec

    fs, path = fsspec.core.url_to_fs(where, endpoint_url=os.environ["FSSPEC_S3_ENDPOINT_URL"])
    if fs.exists(path):
        fs.rm(path, recursive=True)


CPU: dict[str, list[float]] = {}  # side -> CPU ms per pair of this process (main + moto's thread)


def run_once(srcs, out: str | Path, cfg: SynthConfig, ray=None, side: str = "") -> float:
    _clear(out)
    c0, t0 = time.process_time(), time.perf_counter()
    res = synthesize(srcs, out, cfg, ray=ray)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    CPU.setdefault(side, []).append(1000 * cpu / res.samples)
    _clear(out)
    return res.samples / wall


def _fmt(xs: list[float]) -> str:
    return f"{statistics.median(xs):7.1f} pairs/s ({min(xs):.1f}-{max(xs):.1f})"


def compare(name: str, sides: dict, repeat: int, goal: float) -> None:
    got: dict[str, list[float]] = {k: [] for k in sides}
    for _ in range(repeat):
        for k, fn in sides.items():
            got[k].append(fn())
    base, other = list(got)
    ratio = statistics.median(got[other]) / statistics.median(got[base])
    print(f"\n({name})")
    for k in got:
        print(f"  {k:28s} {_fmt(got[k])}; this process's CPU {statistics.median(CPU[k]):.2f} ms/pair")
    print(f"  ratio {other} / {base}: {ratio:.2f}  (goal >= {goal}: {'met' if ratio >= goal else 'NOT met'})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--shard-inputs", type=int, default=4)  # 4 inputs x 16 crops: 64 samples a shard
    ap.add_argument("--skip", nargs="*", default=[], choices=["a", "b"])
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="redeg-bench-cluster-"))
    try:
        (tmp / "in").mkdir()
        make_inputs(tmp / "in", args.images, args.size)
        srcs = list_sources(tmp / "in")
        print(f"{args.images} inputs of {args.size}², crop {args.crop}, x4, realesrgan, --workers {args.workers}; "
              f"load average at start {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs")  # fmt: skip
        base = dict(
            preset="realesrgan", crop=args.crop, scale=4, seed=1, workers=args.workers, shard_max_count=64
        )
        if "a" not in args.skip:
            server, _ = start_moto()
            cfg = SynthConfig(**base)
            compare("a: S3 sink vs local sink", {
                "local sink": lambda: run_once(srcs, tmp / "out", cfg, side="local sink"),
                "S3 sink (moto, loopback)": lambda: run_once(srcs, "s3://bench/out", cfg, side="S3 sink (moto, loopback)"),
            }, args.repeat, 0.8)  # fmt: skip
            server.stop()  # type: ignore[attr-defined]
        if "b" not in args.skip:
            import ray

            from redegkit.synth.ray_engine import RayOptions

            t0 = time.perf_counter()
            ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
            print(f"\nray.init(num_cpus={args.workers}): {time.perf_counter() - t0:.1f} s (not counted)")
            cfg = SynthConfig(**{**base, "shard_inputs": args.shard_inputs})
            cold = run_once(srcs, tmp / "ray", cfg, ray=RayOptions(), side="cold")
            print(f"first Ray run (cold workers): {cold:.1f} pairs/s")
            compare(f"b: Ray engine vs local engine, --shard-inputs {args.shard_inputs}", {
                "local engine": lambda: run_once(srcs, tmp / "out", cfg, side="local engine"),
                "Ray engine": lambda: run_once(srcs, tmp / "ray", cfg, ray=RayOptions(), side="Ray engine"),
            }, args.repeat, 0.8)  # fmt: skip
            ray.shutdown()
        print(f"\nload average at end {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
