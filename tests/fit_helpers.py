"""Test data for fit-degradation: face pairs made from the example photos, in temporary folders.

The "real" LQ of each pair is the HQ face through a known degradation (Gaussian blur, x4 area
downsample, bicubic upsample, JPEG q35), so a test knows what the networks should learn.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from redegkit.io.images import decode_image, write_image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# (top, bottom, left, right) of a square, face-centred window in each 512x512 example
FACE_BOXES = {"astronaut": (10, 210, 130, 330), "camera": (50, 230, 140, 320)}
NATURALS = ["brick.png", "grass.png", "chelsea.png", "coffee.png"]


def known_degradation(
    img: np.ndarray, scale: int = 4, sigma: float = 1.2, quality: int = 35, noise: float = 0.0
) -> np.ndarray:
    """Blur -> area downsample by ``scale`` -> bicubic back up -> (Gaussian noise of std ``noise``,
    seeded) -> JPEG. RGB uint8 in, same size out."""
    h, w = img.shape[:2]
    x = cv2.GaussianBlur(img, (0, 0), sigma)
    x = cv2.resize(x, (w // scale, h // scale), interpolation=cv2.INTER_AREA)
    x = cv2.resize(x, (w, h), interpolation=cv2.INTER_CUBIC)
    if noise:
        x = np.clip(x + np.random.default_rng(0).normal(0, noise, x.shape), 0, 255).round().astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def face_images(size: int = 512, shifts: tuple[int, ...] = (0, 12)) -> dict[str, np.ndarray]:
    """HQ faces ``{key: size x size RGB}``: each example face, once per window shift (pixels)."""
    out = {}
    for name, (t, b, left, r) in FACE_BOXES.items():
        img = decode_image(EXAMPLES / f"{name}.png")
        for s in shifts:
            crop = img[t + s : b + s, left - s : r - s]
            out[f"{name}{s}"] = cv2.resize(crop, (size, size), interpolation=cv2.INTER_CUBIC)
    return out


def make_face_pairs(
    root: Path,
    *,
    size: int = 512,
    shifts: tuple[int, ...] = (0, 12),
    manifest: bool = False,
    noise: float = 0.0,
) -> Path:
    """Write ``root/hq/KEY.png`` and ``root/lq/KEY.png`` (and ``root/pairs.jsonl`` with ``manifest``);
    ``noise``: the LQ's Gaussian noise std before its JPEG (grey levels)."""
    records = []
    for key, hq in face_images(size, shifts).items():
        write_image(root / "hq" / f"{key}.png", hq)
        write_image(root / "lq" / f"{key}.png", known_degradation(hq, noise=noise))
        records.append({"key": key, "source": f"examples/{key}.png"})
    if manifest:
        (root / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


def natural_paths() -> list[str]:
    return [str(EXAMPLES / n) for n in NATURALS]


def corrupt_png(path: Path) -> Path:
    """A file with a PNG name and header whose body is garbage (the decoder must reject it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 50 + b"IEND\xaeB`\x82")
    return path
