"""FFHQ 5-point alignment: photo -> 512x512 face crop by a similarity transform, and back.

The template is the 5-point FFHQ layout used by GFPGAN (facexlib's ``FaceRestoreHelper``):
eyes, nose tip and mouth corners of an FFHQ-aligned 512x512 face. The transform is estimated
robustly (least median of squares, like GFPGAN), with a plain least-squares similarity
(Umeyama) as fallback for degenerate landmark sets. The same transform cuts the LQ crop out of
the original photo that the restorer sees, so (LQ crop, pseudo-HQ) are pixel-aligned, and its
inverse maps any point of the crop back into the photo.

``scale`` = 512 / face size, where the face size is the side, in photo pixels, of the square
region that becomes the 512 crop. A face of 100 px in the photo has scale 5.12.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from ..io.images import check_rgb

FACE_SIZE = 512
# (x, y) of left eye, right eye, nose tip, left and right mouth corner in a 512x512 FFHQ face.
FFHQ_TEMPLATE_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.1936],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ],
    dtype=np.float64,
)
BORDER_RGB = (132, 133, 135)  # GFPGAN's neutral gray for crop regions outside the photo

Interpolation = Literal["linear", "cubic", "lanczos"]
_INTERP = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}


class AlignError(ValueError):
    """Landmarks from which no similarity transform can be estimated (e.g. all in one point)."""


@dataclass(frozen=True, eq=False)
class Alignment:
    """A photo -> crop similarity transform. ``matrix`` and ``inverse`` are float64 2x3."""

    matrix: np.ndarray
    inverse: np.ndarray
    size: int = FACE_SIZE

    @property
    def scale(self) -> float:
        """Crop pixels per photo pixel (> 1 means the face is upscaled)."""
        return float(math.sqrt(abs(np.linalg.det(self.matrix[:, :2]))))

    @property
    def face_size(self) -> float:
        """Side, in photo pixels, of the region that becomes the crop."""
        return self.size / self.scale

    @property
    def angle(self) -> float:
        """Rotation of the face in the photo, degrees (counter-clockwise in image coordinates)."""
        return float(math.degrees(math.atan2(self.matrix[1, 0], self.matrix[0, 0])))

    def to_dict(self) -> dict[str, Any]:
        return {
            "affine": [[float(v) for v in row] for row in self.matrix],
            "inverse_affine": [[float(v) for v in row] for row in self.inverse],
            "size": self.size,
            "face_size": round(self.face_size, 3),
            "scale": round(self.scale, 5),
            "angle": round(self.angle, 3),
        }


def similarity_lstsq(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) mapping
    ``src`` [N,2] onto ``dst`` [N,2] (Umeyama 1991). Returns float64 2x3."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    var = (s**2).sum() / len(src)
    if var < 1e-12:
        raise AlignError("landmarks are degenerate (all at one point)")
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    e = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[1, 1] = -1.0
    rot = u @ e @ vt
    c = float((sig * np.diag(e)).sum() / var)
    m = np.zeros((2, 3))
    m[:, :2] = c * rot
    m[:, 2] = md - c * rot @ ms
    return m


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine transform (float64 2x3)."""
    full = np.vstack([np.asarray(m, np.float64), [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def transform_points(pts: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply a 2x3 transform to points [N,2]; returns float64 [N,2]."""
    p = np.asarray(pts, np.float64).reshape(-1, 2)
    return p @ np.asarray(m, np.float64)[:, :2].T + np.asarray(m, np.float64)[:, 2]


def estimate_alignment(
    landmarks5: np.ndarray, size: int = FACE_SIZE, method: Literal["lmeds", "lstsq"] = "lmeds"
) -> Alignment:
    """The similarity transform taking the 5 photo landmarks [5,2] onto the FFHQ template."""
    src = np.asarray(landmarks5, np.float64).reshape(5, 2)
    if not np.isfinite(src).all():
        raise AlignError("landmarks are not finite")
    dst = FFHQ_TEMPLATE_512 * (size / 512.0)
    m = None
    if method == "lmeds":
        # LMEDS is deterministic in OpenCV (fixed internal seed) and ignores one bad landmark.
        m, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
    if m is None:
        m = similarity_lstsq(src, dst)
    m = np.asarray(m, np.float64)
    if abs(np.linalg.det(m[:, :2])) < 1e-12:
        raise AlignError("landmarks give a singular transform")
    return Alignment(m, invert_affine(m), size)


def template_residual(landmarks5: np.ndarray, al: Alignment) -> float:
    """Mean distance (crop pixels) between the aligned landmarks and the template: small for
    frontal faces, large for profiles and bad detections."""
    dst = FFHQ_TEMPLATE_512 * (al.size / 512.0)
    return float(np.linalg.norm(transform_points(landmarks5, al.matrix) - dst, axis=1).mean())


def warp_face(photo: np.ndarray, al: Alignment, interpolation: Interpolation = "linear") -> np.ndarray:
    """Cut the aligned ``size``x``size`` crop from an RGB uint8 photo (HxWx3 -> size x size x 3).

    Regions outside the photo are filled with a neutral gray. When the face is larger than the
    crop (scale < 1), the photo is first shrunk with area averaging so the crop does not alias.
    """
    check_rgb(photo, "photo")
    m, img = al.matrix, photo
    if al.scale < 1.0:
        h, w = photo.shape[:2]
        nw, nh = max(1, round(w * al.scale)), max(1, round(h * al.scale))
        img = cv2.resize(photo, (nw, nh), interpolation=cv2.INTER_AREA)
        m = m.copy()
        m[:, 0] *= w / nw  # photo x = small x * (w / nw)
        m[:, 1] *= h / nh
    return cv2.warpAffine(
        img,
        m,
        (al.size, al.size),
        flags=_INTERP[interpolation],
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=BORDER_RGB,
    )


def unwarp_face(
    crop: np.ndarray, al: Alignment, photo_hw: tuple[int, int], interpolation: Interpolation = "linear"
) -> np.ndarray:
    """Map a crop back into the photo frame (pixels outside the crop are 0); for checks and pasting."""
    h, w = photo_hw
    return cv2.warpAffine(
        crop,
        al.inverse,
        (w, h),
        flags=_INTERP[interpolation],
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )


def outside_fraction(al: Alignment, photo_hw: tuple[int, int], grid: int = 64) -> float:
    """Fraction of the crop whose source lies outside the photo (0 = fully inside)."""
    h, w = photo_hw
    c = (np.arange(grid) + 0.5) * (al.size / grid)
    xs, ys = np.meshgrid(c, c)
    p = transform_points(np.stack([xs.ravel(), ys.ravel()], 1), al.inverse)
    inside = (p[:, 0] >= 0) & (p[:, 0] <= w) & (p[:, 1] >= 0) & (p[:, 1] <= h)
    return float(1.0 - inside.mean())


def sharpness(photo: np.ndarray, al: Alignment) -> float:
    """Variance of the Laplacian of the face at its native resolution (central half of the crop).

    Measured before any upscaling, so it says how sharp the photo is, not how big the face is.
    Low values (roughly < 20 for 8-bit images) mean a blurry or flat face.
    """
    n = int(np.clip(round(al.face_size), 16, al.size))
    sm = al.matrix * (n / al.size)  # same framing, output n x n
    small = Alignment(sm, invert_affine(sm), n)
    crop = warp_face(photo, small, "linear")  # (faces larger than the crop are area-shrunk to it)
    gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    q = n // 4
    return float(cv2.Laplacian(gray[q : n - q, q : n - q], cv2.CV_32F).var())
