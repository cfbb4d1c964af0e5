"""Finding a JPEG in decoded pixels (redegkit.metrics.jpeg_trace)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from redegkit.degrade.ops import jpeg
from redegkit.io.images import decode_image
from redegkit.metrics.jpeg_trace import estimate_quality, luma_table

from .conftest import EXAMPLES


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return decode_image(EXAMPLES / "astronaut.png")[:200, :232]


def test_luma_table_is_the_standards() -> None:
    """The encoder's own table, read from its DQT segment: at quality 50 the JPEG standard's
    Annex K luminance table as printed there (natural order); at 25 it is doubled (libjpeg's
    scale 5000 / q %), at 100 all ones."""
    annex_k = np.array(
        [
            [16, 11, 10, 16, 24, 40, 51, 61],
            [12, 12, 14, 19, 26, 58, 60, 55],
            [14, 13, 16, 24, 40, 57, 69, 56],
            [14, 17, 22, 29, 51, 87, 80, 62],
            [18, 22, 37, 56, 68, 109, 103, 77],
            [24, 35, 55, 64, 81, 104, 113, 92],
            [49, 64, 78, 87, 103, 121, 120, 101],
            [72, 92, 95, 98, 112, 100, 103, 99],
        ]
    )
    assert np.array_equal(luma_table(50), annex_k)
    assert np.array_equal(luma_table(25), np.minimum(annex_k * 2, 255))
    assert np.array_equal(luma_table(100), np.ones((8, 8)))


@pytest.mark.parametrize("quality", [15, 25, 37, 40, 55, 62, 78, 85, 95])
@pytest.mark.parametrize("shift", [(0, 0), (3, 5)])
def test_the_quality_and_grid_of_a_jpeg_are_found(
    photo: np.ndarray, quality: int, shift: tuple[int, int]
) -> None:
    """Exactly the quality that was written, and where its grid lies in a crop that does not
    start on it."""
    dy, dx = shift
    got = estimate_quality(jpeg(photo, quality)[dy:, dx:])
    assert got is not None and got.quality == quality and got.score > 0.8
    assert got.offset == ((8 - dy) % 8, (8 - dx) % 8)


def test_no_jpeg_is_found_where_there_is_none(photo: np.ndarray) -> None:
    """Never JPEG'd (a PNG photo, a blurred, resampled and sharpened one, a noisy one), a JPEG
    whose grid was resampled away (x1.5), and an image too small for a block: no verdict."""
    rng = np.random.default_rng(0)
    half = cv2.resize(
        cv2.resize(photo, (116, 100), interpolation=cv2.INTER_AREA), (232, 200), interpolation=cv2.INTER_CUBIC
    )
    sharp = cv2.addWeighted(half, 2.5, cv2.GaussianBlur(half, (0, 0), 1.5), -1.5, 0)
    noisy = np.clip(photo + rng.normal(0, 6, photo.shape), 0, 255).astype(np.uint8)
    resized = cv2.resize(jpeg(photo, 30), (348, 300), interpolation=cv2.INTER_CUBIC)
    for img in (photo, sharp, noisy, resized, photo[:12, :12]):
        assert estimate_quality(img) is None
