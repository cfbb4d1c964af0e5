"""The PNG codec of the data writers (redegkit.io.png) against OpenCV's, in the same run.

Encode: ms and KB per 256x256 RGB crop of the examples (the natural colour ones) at our levels
0-3 and OpenCV/libpng level 1 (the writers' old default). Decode: ms per 512x512 RGB PNG (the
crops resized, written by OpenCV at level 1 and by us at level 1) through ``decode_png_fast``
and through ``cv2.imdecode`` + BGR->RGB. Single thread (OpenCV too); medians over ``--repeat``
rounds, sides interleaved, so a busy machine disturbs both alike. Ratios are ours / OpenCV's.

The maintained encoders a data writer could use instead are measured in the same run where they
are installed: Pillow (level 1) always, and imagecodecs' libpng (level 1 with the Up filter, its
fastest exact setting measured here) when ``pip install imagecodecs`` was done. They are what the
own codec has to beat to stay (issue 23: a specialised part only where the standard one misses).

    python benchmarks/png_codec.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from redegkit.io.png import decode_png_fast, encode_png

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
cv2.setNumThreads(1)


def _crops(side: int) -> list[np.ndarray]:
    out = []
    for name in ("astronaut", "chelsea", "coffee"):
        img = cv2.cvtColor(cv2.imread(str(EXAMPLES / f"{name}.png"), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        h, w = img.shape[:2]
        if min(h, w) < side:
            img = cv2.resize(img, (max(w, side), max(h, side)), interpolation=cv2.INTER_CUBIC)
            h, w = img.shape[:2]
        for y, x in ((0, 0), (h - side, w - side), ((h - side) // 2, (w - side) // 2)):
            out.append(np.ascontiguousarray(img[y : y + side, x : x + side]))
    return out


def _ms(fn, items, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        for it in items:
            fn(it)
        times.append((time.perf_counter() - t) / len(items) * 1e3)
    return times


def _cv2_encode(img: np.ndarray, level: int = 1) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, level])[
        1
    ].tobytes()


def _pil_encode(img: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _cv2_decode(data: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()

    crops = _crops(256)
    sides = {"cv2 L1": lambda im: _cv2_encode(im, 1), "pillow L1": _pil_encode}
    try:
        import imagecodecs

        sides["imagecodecs Up L1"] = lambda im: imagecodecs.png_encode(im, level=1, filter=32)
    except ImportError:
        print("(imagecodecs not installed: its row is left out)")
    sides.update({f"ours L{lv}": functools.partial(encode_png, level=lv) for lv in (0, 1, 2, 3)})
    for name, fn in sides.items():  # exactness first: every side must give the crop back
        assert all(np.array_equal(_cv2_decode(fn(c)), c) for c in crops), name
    times: dict[str, list[float]] = {k: [] for k in sides}
    for _ in range(args.repeat):
        for name, fn in sides.items():
            times[name] += _ms(fn, crops, 1)
    print(f"encode, 256x256 RGB, {len(crops)} crops, median of {args.repeat}:")
    base_ms = statistics.median(times["cv2 L1"])
    base_kb = np.mean([len(_cv2_encode(c)) for c in crops]) / 1000
    for name, fn in sides.items():
        ms, kb = statistics.median(times[name]), np.mean([len(fn(c)) for c in crops]) / 1000
        print(f"  {name:18s} {ms:6.2f} ms  {kb:6.1f} KB   time x{ms / base_ms:.2f}  size x{kb / base_kb:.2f}")

    big = [cv2.resize(c, (512, 512), interpolation=cv2.INTER_CUBIC) for c in crops]
    files = {"cv2-written": [_cv2_encode(b, 1) for b in big], "ours-written": [encode_png(b, 1) for b in big]}
    print(f"decode, 512x512 RGB, {len(big)} files each, median of {args.repeat}:")
    for kind, datas in files.items():
        assert all(np.array_equal(decode_png_fast(d), _cv2_decode(d)) for d in datas), kind
        fast, ref = [], []
        for _ in range(args.repeat):
            ref += _ms(_cv2_decode, datas, 1)
            fast += _ms(decode_png_fast, datas, 1)
        f, r = statistics.median(fast), statistics.median(ref)
        print(f"  {kind:12s} cv2 {r:6.2f} ms  ours {f:6.2f} ms   time x{f / r:.2f}")


if __name__ == "__main__":
    main()
