"""How long a shard folder's HTML report takes to build and to render, at 10,000 samples.

    python benchmarks/report_render.py                  # 10 shards x 1,000 samples, 3 browser loads
    python benchmarks/report_render.py --samples 2000 --keep out/bench-shards

1. Writes a synthetic shard folder in the documented format (``KEY.hq.png``, ``KEY.lq.png``,
   ``KEY.json`` per sample, a done marker per shard): 32² HQ crops cut from the example images at
   seeded positions, their x4 area-downsampled LQ, and as JSON the provenance of a real
   ``realesrgan`` sample with parameters drawn by the preset's own sampler (what
   ``synthesize --preset realesrgan`` records). Tiny images keep the folder small (about 35 MB);
   the report's work grows with the number of samples and JSON records, not their pixels.
2. Builds the report (``redegkit.report.write_report``) and times it.
3. Opens it in headless Chromium (``tools/browser_check.py``) ``--loads`` times, each in a fresh
   browser: the page's own navigation timing (start to the load event) and the wall time of the
   navigation, the image count, errors and a non-blank screenshot.

Prints a Markdown block for benchmarks/RESULTS.md (machine and commit included). The target is a
render under 2 s.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
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
sys.path.insert(0, str(ROOT / "tools"))

import browser_check  # noqa: E402

from redegkit.degrade import get_preset, sample_degradation  # noqa: E402
from redegkit.io.images import decode_image, encode_image  # noqa: E402
from redegkit.report import write_report  # noqa: E402
from redegkit.rng import sample_rng, seed_to_json  # noqa: E402


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def write_folder(out: Path, samples: int, per_shard: int, side: int = 32, seed: int = 0) -> None:
    """The synthetic shard folder (see the module doc)."""
    out.mkdir(parents=True, exist_ok=True)
    photos = sorted((ROOT / "examples").glob("*.png")) + sorted((ROOT / "examples").glob("*.jpg"))
    images = [(p.name, decode_image(p)) for p in photos]
    preset = get_preset("realesrgan")
    n_shards = -(-samples // per_shard)
    k = 0
    for s in range(n_shards):
        tar = out / f"shard-{s:06d}.tar"
        keys = []
        with tarfile.open(tar, "w") as tf:
            for _ in range(min(per_shard, samples - k)):
                name, img = images[k % len(images)]
                key = f"{Path(name).stem}_{k:07d}"
                rng = sample_rng(seed, key, "bench")
                y = int(rng.integers(0, img.shape[0] - side))
                x = int(rng.integers(0, img.shape[1] - side))
                hq = np.ascontiguousarray(img[y : y + side, x : x + side])
                lq = cv2.resize(hq, (side // 4, side // 4), interpolation=cv2.INTER_AREA)
                params = sample_degradation(preset, rng, scale=4)
                meta = {
                    "key": key,
                    "source": name,
                    "source_path": f"examples/{name}",
                    "crop_box": [x, y, side, side],
                    "hq_size": [side, side],
                    "lq_size": [side // 4, side // 4],
                    "scale": 4,
                    "seed": seed,
                    "sample_seed": seed_to_json(int(rng.integers(0, 2**63))),
                    "method": {"kind": "preset", "preset": "realesrgan", "params": params.to_json()},
                    "redegkit_version": "0.1.0",
                    "shard_format": 2,
                }
                _add(tf, f"{key}.hq.png", encode_image(hq, "png"))
                _add(tf, f"{key}.json", json.dumps(meta, sort_keys=True).encode())
                _add(tf, f"{key}.lq.png", encode_image(lq, "png"))
                keys.append(key)
                k += 1
        (out / f"{tar.name}.json").write_text(json.dumps({"count": len(keys), "keys": keys}))


def commit() -> str:
    try:
        r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
        return r.stdout.strip() + ("+" if dirty.stdout.strip() else "")
    except OSError:
        return "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--per-shard", type=int, default=1000)
    ap.add_argument("--loads", type=int, default=3, help="browser loads (each a fresh Chromium)")
    ap.add_argument("--keep", type=Path, help="write the folder and the report here and keep them")
    a = ap.parse_args()
    if browser_check.find_chromium() is None:
        print("no Chromium: apt-get install chromium", file=sys.stderr)
        return 2
    tmp = None if a.keep is not None else Path(tempfile.mkdtemp(prefix="redeg-report-bench-"))
    base = a.keep if a.keep is not None else tmp
    assert base is not None
    folder = base / "shards"
    try:
        t0 = time.perf_counter()
        write_folder(folder, a.samples, a.per_shard)
        t_write = time.perf_counter() - t0
        mb = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
        t0 = time.perf_counter()
        res = write_report(folder, folder.parent / "report.html")
        t_build = time.perf_counter() - t0
        checks = [browser_check.check_page(res.path) for _ in range(a.loads)]
        for c in checks:
            if not c.ok:
                print(f"browser check failed: {c}", file=sys.stderr)
                return 1
        load = [c.load_ms for c in checks]
        wall = [c.wall_ms for c in checks]
        cpu = platform.processor() or platform.machine()
        print(
            f"samples {a.samples:,} in {-(-a.samples // a.per_shard)} shards ({mb:.1f} MB, written in {t_write:.1f} s)"
        )
        print()
        print(
            f"Machine: 2-core box ({cpu}), {time.strftime('%Y-%m-%d')}, commit {commit()}; Chromium "
            f"{_chromium_version()}."
        )
        print()
        print("| measure | value | target |")
        print("| --- | ---: | --- |")
        print(
            f"| samples / shards / folder size | {a.samples:,} / {-(-a.samples // a.per_shard)} / {mb:.0f} MB | |"
        )
        print(f"| report build (`write_report`: read every tar and JSON, draw, encode) | {t_build:.1f} s | |")
        print(f"| report file | {res.bytes / 1e6:.2f} MB, {checks[0].images} images | |")
        print(
            f"| render in Chromium: navigation start to load event (median of {a.loads}; range) | "
            f"**{statistics.median(load):.0f} ms** ({min(load):.0f}–{max(load):.0f}) | < 2,000 ms |"
        )
        print(
            f"| navigation wall time as the test driver sees it (median) | {statistics.median(wall):.0f} ms | |"
        )
        return 0
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _chromium_version() -> str:
    exe = browser_check.find_chromium()
    if exe is None:
        return "?"
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    parts = [w for w in out.split() if w[:1].isdigit()]
    return parts[0] if parts else "?"


if __name__ == "__main__":
    sys.exit(main())
