"""Cost of the classical degradation ops, and what the video codec ops do to `synthesize` throughput.

Prints numbers; nothing is asserted. Every ratio is against a baseline measured in the same run, on
the same image and machine:

(a) per op at 512²: the median wall time of one ``apply_op`` on an RGB uint8 512×512 photo (one
    OpenCV thread, as in the synthesis workers), against the floor of a plain
    ``cv2.imencode('.jpg', q75) + cv2.imdecode`` round trip (no redegkit: the cheapest realistic
    codec op), and against the engine's old ``jpeg`` op;
(b) video: ms per sample of each codec (a 5-frame clip, the settings the ``video`` preset draws
    from) at 512² and at 160², the size the codec runs at inside the ``video`` preset at x4 from
    512² crops (output 128 px x resize factor 1-1.6);
(c) ``synthesize`` with ``--workers W`` (default 2) on 512² crops at x4: samples/s of the presets
    ``realesrgan`` (the baseline), ``video``, the ``video`` preset without its codec step, and
    ``web``; ratios against ``realesrgan`` and against ``video`` without the codec (the codec's own
    share), interleaved, median of ``--repeat`` runs.

    python benchmarks/degrade_ops.py [--repeat 5] [--images 8] [--workers 2] [--skip-synth]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redegkit.degrade import get_preset  # noqa: E402
from redegkit.degrade import params as P  # noqa: E402
from redegkit.degrade import video as V  # noqa: E402

SHIFTS = [(-1.2, -2.1), (-0.6, -1.0), (0.0, 0.0), (0.5, 1.1), (1.1, 2.0)]
ISP = dict(
    ccm=[[1.6, -0.4, -0.2], [-0.3, 1.5, -0.2], [-0.1, -0.5, 1.6]],
    r_gain=2.1,
    b_gain=1.7,
    rgb_gain=1.3,
    shot=2e-3,
    read=2e-5,
    seed=1,
)
OPS: list[tuple[str, P.OpParamsBase]] = [
    ("jpeg q75 4:2:0 (old op)", P.JpegParams(quality=75)),
    ("jpeg q75 4:4:4 progressive", P.JpegParams(quality=75, subsampling="4:4:4", progressive=True)),
    ("webp q75 method 4", P.WebpParams(quality=75, method=4)),
    ("avif q60 speed 6", P.AvifParams(quality=60, speed=6)),
    ("avif q60 speed 9", P.AvifParams(quality=60, speed=9)),
    ("jpeg2000 ratio 40", P.Jpeg2000Params(ratio=40.0)),
    ("quantize levels 8", P.QuantizeParams(mode="levels", levels=8)),
    ("quantize palette 64 (median cut)", P.QuantizeParams(mode="palette", colors=64)),
    ("dither bayer 8x8, 4 levels", P.DitherParams(method="bayer", levels=4, size=8)),
    ("dither floyd_steinberg, 4 levels", P.DitherParams(method="floyd_steinberg", levels=4)),
    ("halftone cmyk cell 5", P.HalftoneParams(mode="cmyk", cell=5.0, angle=20.0)),
    ("halftone mono cell 5", P.HalftoneParams(mode="mono", cell=5.0, angle=20.0)),
    ("chroma 4:2:0 bilinear", P.ChromaParams(mode="4:2:0")),
    ("channel_shift + scale", P.ChannelShiftParams(shift_r=(0.5, 1.0), shift_b=(-0.3, -0.6), scale_r=1.002)),
    ("tone", P.ToneParams(gamma=1.2, contrast=0.9, black=0.05, white=0.95)),
    ("pixelate block 6", P.PixelateParams(block=6)),
    ("interlace weave", P.InterlaceParams(mode="weave", motion=(0.0, 2.0))),
    ("interlace drop linear", P.InterlaceParams(mode="drop")),
    ("ghosting 2 echoes", P.GhostingParams(offset=(0.0, 6.0), amount=0.3, echoes=2)),
    ("motion_blur 15 px", P.MotionBlurParams(length=15.0, angle=30.0)),
    ("speckle_noise", P.SpeckleNoiseParams(sigma=0.1, seed=1)),
    ("salt_pepper 1%", P.SaltPepperParams(amount=0.01, seed=1)),
    ("camera_isp", P.CameraIspParams(**ISP)),
    ("(old) gaussian_noise", P.GaussianNoiseParams(sigma=10.0, seed=1)),
    ("(old) blur iso 21", P.BlurParams(kernel="iso", size=21, sigma_x=2.0, sigma_y=2.0)),
]
CODECS = [
    ("h264 crf 28 fast", dict(codec="h264", quality=28.0, preset="fast")),
    ("h264 crf 28 medium", dict(codec="h264", quality=28.0, preset="medium")),
    ("hevc crf 30 fast", dict(codec="hevc", quality=30.0, preset="fast")),
    ("hevc crf 30 medium", dict(codec="hevc", quality=30.0, preset="medium")),
    ("vp9 crf 40 medium (cpu-used 2)", dict(codec="vp9", quality=40.0, preset="medium")),
    ("vp9 crf 40 veryfast (cpu-used 4)", dict(codec="vp9", quality=40.0, preset="veryfast")),
    ("av1 crf 40 medium (SVT preset 7)", dict(codec="av1", quality=40.0, preset="medium")),
    ("av1 crf 40 faster (SVT preset 9)", dict(codec="av1", quality=40.0, preset="faster")),
    ("mpeg2 q 8", dict(codec="mpeg2", quality=8.0)),
    ("mpeg4 q 8", dict(codec="mpeg4", quality=8.0)),
]


def photo(size: int) -> np.ndarray:
    img = cv2.cvtColor(cv2.imread(str(ROOT / "examples" / "astronaut.png")), cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA))


def median_ms(fn, repeat: int) -> float:
    fn()  # warm-up: caches, lazy imports, first encoder
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def floor_jpeg(img: np.ndarray) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 75])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def per_op(repeat: int) -> None:
    img = photo(512)
    floor = median_ms(lambda: floor_jpeg(img), repeat * 2)
    old = median_ms(lambda: P.apply_op(img, OPS[0][1]), repeat * 2)
    print(f"\n(a) per op, RGB uint8 512x512, median of {repeat}, one OpenCV thread")
    print(f"    floor: cv2 JPEG q75 encode+decode = {floor:.2f} ms; old jpeg op = {old:.2f} ms")
    print(f"    {'op':<36} {'ms':>8} {'x floor':>8} {'x old jpeg':>10}")
    for name, p in OPS:
        ms = median_ms(lambda p=p: P.apply_op(img, p), repeat)
        print(f"    {name:<36} {ms:8.2f} {ms / floor:8.2f} {ms / old:10.2f}")


def per_codec(repeat: int) -> None:
    print(f"\n(b) video op, a 5-frame clip (middle frame returned), yuv420p bt709, median of {repeat}")
    print(f"    {'codec':<34} {'ms @512²':>9} {'ms @160²':>9} {'x floor @512²':>13}")
    img512, img160 = photo(512), photo(160)
    floor = median_ms(lambda: floor_jpeg(img512), repeat * 2)
    for name, kw in CODECS:
        a = median_ms(lambda kw=kw: V.video(img512, shifts=SHIFTS, **kw), repeat)
        b = median_ms(lambda kw=kw: V.video(img160, shifts=SHIFTS, **kw), repeat)
        print(f"    {name:<34} {a:9.1f} {b:9.1f} {a / floor:13.1f}")
    for codec in V.CODECS:
        print(f"    {codec}: {V.library_version(codec)}")


def make_inputs(folder: Path, n: int, size: int = 1024) -> None:
    """n distinct size² PNGs from the example photos (rotated/flipped, light grain): 4 crops each."""
    rng = np.random.default_rng(0)
    bases = []
    for p in sorted((ROOT / "examples").glob("*.png")):
        im = cv2.imread(str(p), cv2.IMREAD_COLOR)
        s = min(im.shape[:2])
        y, x = (im.shape[0] - s) // 2, (im.shape[1] - s) // 2
        bases.append(cv2.resize(im[y : y + s, x : x + s], (size, size), interpolation=cv2.INTER_CUBIC))
    for i in range(n):
        im = np.rot90(bases[i % len(bases)], (i // len(bases)) % 4)
        im = np.clip(im.astype(np.float32) + rng.normal(0, 4, im.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"img{i:03d}.png"), im)


def synth_rates(images: int, workers: int, repeat: int) -> None:
    from redegkit.io.sources import list_sources
    from redegkit.synth import SynthConfig, synthesize

    video = get_preset("video").model_dump(exclude={"name"})
    no_codec = {**video, "steps": [s for s in video["steps"] if s["op"] != "video"]}
    user = {"video-no-codec": no_codec}
    presets = ["realesrgan", "video", "video-no-codec", "web"]
    rates: dict[str, list[float]] = {p: [] for p in presets}
    with tempfile.TemporaryDirectory(prefix="redeg-bench-") as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        make_inputs(src, images)
        sources = list_sources(src)
        for r in range(repeat):
            for name in presets:  # interleaved, so that load changes hit every preset alike
                out = Path(tmp) / f"out-{name}-{r}"
                cfg = SynthConfig(preset=name, crop=512, scale=4, workers=workers, seed=r)
                t = time.perf_counter()
                res = synthesize(sources, out, cfg, user_presets=user)
                rates[name].append(res.samples / (time.perf_counter() - t))
                shutil.rmtree(out)
    med = {p: statistics.median(v) for p, v in rates.items()}
    print(
        f"\n(c) synthesize --workers {workers}, {images} inputs of 1024² -> {4 * images} crops of 512² at x4"
    )
    print(f"    whole runs (pool start included), median of {repeat}, interleaved")
    print(f"    {'preset':<16} {'samples/s':>10} {'x realesrgan':>13} {'runs':>30}")
    for p in presets:
        runs = ", ".join(f"{v:.1f}" for v in rates[p])
        print(f"    {p:<16} {med[p]:10.2f} {med[p] / med['realesrgan']:13.2f} {runs:>30}")
    print(
        f"    the codec step's own share: video / video-no-codec = {med['video'] / med['video-no-codec']:.2f} "
        f"({1000 * workers / med['video'] - 1000 * workers / med['video-no-codec']:.1f} ms per sample per worker)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-synth", action="store_true")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"commit {commit.stdout.strip() or '?'}; {platform.machine()}, {os.cpu_count()} CPUs, load {load:.2f}; "
        f"Python {platform.python_version()}, OpenCV {cv2.__version__}, numpy {np.__version__}"
    )
    per_op(args.repeat)
    per_codec(args.repeat)
    if not args.skip_synth:
        synth_rates(args.images, args.workers, max(1, args.repeat // 2))


if __name__ == "__main__":
    main()
