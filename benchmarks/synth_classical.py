"""`synthesize --preset realesrgan` against an independent floor, on the same files, in the same run.

The floor is a minimal script that knows nothing of redegkit (stdlib, numpy and OpenCV only):
per input, read + decode, cut the same 512² crops, x4 area downsample (cv2.INTER_AREA), PNG-encode
HQ crop and LQ at the same level (1), and write them into a tar with the stdlib ``tarfile``, on
the same number of worker processes (one OpenCV thread each, as redegkit). Two ratios, each
printed with both sides:

(a) steady state: pairs/s between the first and the last finished input (so neither the pool's
    start nor the first input's latency counts), both run inside this process; target >= 0.5.
(b) whole run, from process start: ``redeg synthesize IN OUT --preset realesrgan --workers W``
    (this tree's ``redegkit.cli:main``, as the console script runs it) against
    ``python synth_classical.py --floor IN OUT --workers W``; ratio = floor wall / our wall;
    target >= 0.35 (ours imports the CLI and degrades; the floor only resizes).

Also printed: CPU time per pair of all processes in the in-process runs, the view of (a) that
other jobs on a shared machine disturb least. Each side runs ``--repeat`` times, interleaved;
medians are reported.

Inputs: ``--images`` synthetic ``--size``² PNGs made from examples/ (upscaled, rotated, flipped,
with added grain so they compress like photos), in a temporary folder.

    python benchmarks/synth_classical.py [--images 24] [--size 1024] [--workers 2] [--repeat 3]
    python benchmarks/synth_classical.py --profile          # cProfile of the classical worker
    python benchmarks/synth_classical.py --floor IN OUT [--workers 2]   # the floor alone
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CROP, SCALE, PNG_LEVEL = 512, 4, 1

# ------------------------------------------------------------------------------------------------
# The floor (no redegkit import anywhere on this path)


def _floor_image(path: str) -> list[tuple[str, bytes, bytes]]:
    img = cv2.imdecode(np.frombuffer(Path(path).read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    stem, out = Path(path).stem, []
    h, w = img.shape[:2]
    for y in range(0, h - CROP + 1, CROP):
        for x in range(0, w - CROP + 1, CROP):
            hq = img[y : y + CROP, x : x + CROP]
            lq = cv2.resize(hq, (CROP // SCALE, CROP // SCALE), interpolation=cv2.INTER_AREA)
            level = [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL]
            out.append(
                (
                    f"{stem}_{len(out):04d}",
                    cv2.imencode(".png", hq, level)[1].tobytes(),
                    cv2.imencode(".png", lq, level)[1].tobytes(),
                )
            )
    return out


def run_floor(inputs: list[str], out: Path, workers: int, stamps: list[float] | None = None) -> int:
    """Floor over ``inputs`` into ``out/floor.tar``; appends a timestamp per finished input."""
    # One OpenCV thread per process, as redegkit runs: the parallelism is the worker count, the same
    # on both sides (and the in-process runs do not depend on whether redegkit was imported first).
    cv2.setNumThreads(1)
    out.mkdir(parents=True, exist_ok=True)
    pairs = 0
    with tarfile.open(out / "floor.tar", "w") as tar:

        def write(samples: list[tuple[str, bytes, bytes]]) -> None:
            nonlocal pairs
            for key, hq, lq in samples:
                for name, data in ((f"{key}.hq.png", hq), (f"{key}.lq.png", lq)):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                pairs += 1
            if stamps is not None:
                stamps.append(time.perf_counter())

        if workers <= 1:
            for p in inputs:
                write(_floor_image(p))
        else:
            with mp.get_context("fork").Pool(workers) as pool:
                for samples in pool.imap(_floor_image, inputs, chunksize=1):
                    write(samples)
    return pairs


# ------------------------------------------------------------------------------------------------
# Inputs


def make_inputs(folder: Path, n: int, size: int) -> list[Path]:
    """n distinct size x size PNGs from the example images: upscaled, rotated/flipped, with grain."""
    rng = np.random.default_rng(0)
    bases = []
    for p in sorted((ROOT / "examples").glob("*.png")):
        im = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if im is not None:
            s = min(im.shape[:2])
            y, x = (im.shape[0] - s) // 2, (im.shape[1] - s) // 2
            bases.append(cv2.resize(im[y : y + s, x : x + s], (size, size), interpolation=cv2.INTER_CUBIC))
    paths = []
    for i in range(n):
        im = np.rot90(bases[i % len(bases)], (i // len(bases)) % 4)
        if (i // len(bases)) % 2:
            im = im[:, ::-1]
        grain = rng.normal(0, 4, im.shape).astype(np.float32)  # photo-like noise: PNGs of realistic size
        im = np.clip(im.astype(np.float32) + grain, 0, 255).astype(np.uint8)
        paths.append(folder / f"img{i:03d}.png")
        cv2.imwrite(str(paths[-1]), im)
    return paths


# ------------------------------------------------------------------------------------------------
# Measurements


def steady_rate(stamps: list[float], pairs_per_input: int) -> float:
    """Pairs/s between the first and the last finished input."""
    return pairs_per_input * (len(stamps) - 1) / (stamps[-1] - stamps[0])


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its reaped children (the pool workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def steady_ours(in_dir: Path, out: Path, workers: int) -> tuple[float, float, dict]:
    from redegkit.io.sources import list_sources
    from redegkit.synth import SynthConfig, synthesize

    shutil.rmtree(out, ignore_errors=True)
    stamps: list[float] = []
    srcs = list_sources(in_dir)
    cfg = SynthConfig(
        preset="realesrgan", crop=CROP, scale=SCALE, workers=workers, seed=0, png_level=PNG_LEVEL
    )
    c0 = cpu_seconds()
    res = synthesize(srcs, out, cfg, progress=lambda *a, **k: stamps.append(time.perf_counter()))
    return steady_rate(stamps, res.samples // len(srcs)), (cpu_seconds() - c0) / res.samples, res.timings


def steady_floor(inputs: list[str], out: Path, workers: int) -> tuple[float, float]:
    shutil.rmtree(out, ignore_errors=True)
    stamps: list[float] = []
    c0 = cpu_seconds()
    pairs = run_floor(inputs, out, workers, stamps)
    return steady_rate(stamps, pairs // len(inputs)), (cpu_seconds() - c0) / pairs


def wall(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    # cwd outside the repository: ``python -c`` puts the cwd first on sys.path, PYTHONPATH decides here
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=cwd, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def profile(in_dir: Path, n: int) -> None:
    """cProfile of the classical worker function on ``n`` inputs, in this process."""
    import cProfile
    import pstats

    from redegkit.io.sources import list_sources
    from redegkit.synth import PresetDegrader, SynthConfig, process_image

    cfg = SynthConfig(preset="realesrgan", crop=CROP, scale=SCALE, seed=0, png_level=PNG_LEVEL)
    deg = PresetDegrader("realesrgan", None, SCALE)
    srcs = list_sources(in_dir)[:n]
    process_image(0, srcs[0], cfg, deg)  # warm caches (kernels, imports)
    prof = cProfile.Profile()
    prof.enable()
    for i, s in enumerate(srcs):
        process_image(i, s, cfg, deg)
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(18)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each side; the median is reported")
    ap.add_argument("--profile", action="store_true", help="cProfile the classical worker and exit")
    ap.add_argument("--floor", nargs=2, metavar=("IN", "OUT"), help="run the floor alone (for timing)")
    args = ap.parse_args()
    if args.floor:
        inputs = sorted(str(p) for p in Path(args.floor[0]).glob("*.png"))
        run_floor(inputs, Path(args.floor[1]), args.workers)
        return
    tmp = Path(tempfile.mkdtemp(prefix="redeg-bench-"))
    try:
        (tmp / "in").mkdir()
        paths = make_inputs(tmp / "in", args.images, args.size)
        if args.profile:
            profile(tmp / "in", min(8, args.images))
            return
        inputs = [str(p) for p in paths]
        mb = sum(p.stat().st_size for p in paths) / 1e6
        print(
            f"{len(paths)} inputs of {args.size}² ({mb:.0f} MB of PNG), {CROP}² crops, x{SCALE}, PNG level "
            f"{PNG_LEVEL}, {args.workers} worker(s), cpu count {os.cpu_count()}"
        )
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        }
        ours_cmd = [
            sys.executable,
            "-c",
            "from redegkit.cli import main; main()",
            "synthesize",
            str(tmp / "in"),
            str(tmp / "cli"),
            "--preset",
            "realesrgan",
            "--workers",
            str(args.workers),
            "-q",
            "--overwrite",
        ]
        floor_cmd = [
            sys.executable,
            __file__,
            "--floor",
            str(tmp / "in"),
            str(tmp / "fcli"),
            "--workers",
            str(args.workers),
        ]
        runs: dict[str, list[float]] = {
            "steady_floor": [],
            "steady_ours": [],
            "wall_floor": [],
            "wall_ours": [],
            "cpu_ms_floor": [],
            "cpu_ms_ours": [],
        }
        split = {}
        for _ in range(args.repeat):  # interleaved, so load on a shared machine hits both sides alike
            rate, cpu = steady_floor(inputs, tmp / "floor", args.workers)
            runs["steady_floor"].append(rate)
            runs["cpu_ms_floor"].append(cpu * 1000)
            rate, cpu, split = steady_ours(tmp / "in", tmp / "ours", args.workers)
            runs["steady_ours"].append(rate)
            runs["cpu_ms_ours"].append(cpu * 1000)
            shutil.rmtree(tmp / "fcli", ignore_errors=True)
            runs["wall_floor"].append(wall(floor_cmd, env, tmp))
            runs["wall_ours"].append(wall(ours_cmd, env, tmp))
        med = {k: statistics.median(v) for k, v in runs.items()}
        for k, v in runs.items():
            unit = {"steady": "pairs/s", "wall_f": "s", "wall_o": "s", "cpu_ms": "ms/pair"}[k[:6]]
            print(f"{k:<14} median {med[k]:8.2f} {unit:<8} runs: {', '.join(f'{x:.2f}' for x in v)}")
        a = med["steady_ours"] / med["steady_floor"]
        b = med["wall_floor"] / med["wall_ours"]
        print(
            f"(a) steady state: ours {med['steady_ours']:.2f} pairs/s / "
            f"floor {med['steady_floor']:.2f} pairs/s "
            f"= {a:.2f}  (target >= 0.5: {'met' if a >= 0.5 else 'MISSED'})"
        )
        print(
            f"(b) whole CLI run: floor {med['wall_floor']:.2f} s / ours {med['wall_ours']:.2f} s "
            f"= {b:.2f}  (target >= 0.35: {'met' if b >= 0.35 else 'MISSED'})"
        )
        pa = statistics.median(o / f for o, f in zip(runs["steady_ours"], runs["steady_floor"], strict=True))
        pb = statistics.median(f / o for o, f in zip(runs["wall_ours"], runs["wall_floor"], strict=True))
        print(
            f"    median of the per-repeat ratios (each side's runs back to back): (a) {pa:.2f}, (b) {pb:.2f}"
        )
        c = med["cpu_ms_floor"] / med["cpu_ms_ours"]
        print(
            f"    CPU time per pair (all processes, in-process runs): "
            f"ours {med['cpu_ms_ours']:.1f} ms, floor "
            f"{med['cpu_ms_floor']:.1f} ms: ratio {c:.2f} (the load-independent view of (a))"
        )
        print(
            "ours, last in-process run, seconds summed over workers: "
            + json.dumps({k: round(v, 2) for k, v in split.items()})
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
