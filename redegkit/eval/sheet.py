"""Contact sheets of a classical preset: one image under N draws, each tile labelled with its draw's
parameters, so that a preset can be judged before a run is spent on it (``redeg presets show``).

:func:`contact_sheet` works on arrays (the input and ``n`` degraded copies, each enlarged back to
the input size with nearest-neighbour so that the LQ pixels stay visible), laid out by
:func:`redegkit.io.preview.grid`; :func:`preset_sheet` reads an image file, centre-crops it and
writes the sheet as PNG.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..degrade import Degradation, apply_degradation, get_preset, sample_degradation
from ..degrade.ops import ImageTooSmallError
from ..degrade.spec import Preset
from ..degrade.summary import summarize_op
from ..io.images import decode_image, write_image
from ..io.preview import grid
from ..rng import sample_rng

_FONT_SIZE = 11
_LINE = _FONT_SIZE + 3
_INK = (20, 20, 20)


def _wrap(text: str, font: Any, width: int) -> list[str]:
    words, lines, cur = text.split(" "), [], ""
    for w in words:
        cand = f"{cur} {w}".strip()
        if cur and font.getlength(cand) > width:
            lines.append(cur)
            cur = "  " + w
        else:
            cur = cand
    return [*lines, cur] if cur else lines


def _captioned(tile: np.ndarray, lines: list[str], n_lines: int, font: Any) -> np.ndarray:
    """``tile`` above a white panel of ``n_lines`` text lines."""
    h, w = tile.shape[:2]
    panel = Image.new("RGB", (w, n_lines * _LINE + 4), (255, 255, 255))
    draw = ImageDraw.Draw(panel)
    for j, line in enumerate(lines):
        draw.text((0, 2 + j * _LINE), line, fill=_INK, font=font)
    return np.vstack([tile, np.asarray(panel)])


def contact_sheet(
    img: np.ndarray,
    preset: Preset | str,
    n: int = 8,
    *,
    seed: int = 0,
    scale: int = 4,
    columns: int = 3,
    user_presets: dict[str, Any] | None = None,
) -> tuple[np.ndarray, list[Degradation]]:
    """The input (first tile) and ``n`` draws of ``preset`` at SR ``scale``, as one RGB uint8 sheet.

    Draw ``i`` uses ``sample_rng(seed, "sheet", i)``; its LQ is enlarged ``scale`` times (nearest) to
    the input's size, and the tile's caption lists the ops that ran with their numbers. ``img``: RGB
    uint8 ``HxWx3`` with H and W multiples of ``scale``. Returns the sheet and the draws.
    """
    if n < 1 or columns < 1:
        raise ValueError(f"a sheet needs n >= 1 draws and columns >= 1, got {n}, {columns}")
    p = get_preset(preset, user_presets)
    h, w = img.shape[:2]
    if h % scale or w % scale:
        raise ValueError(f"the image ({h}x{w}) must be a multiple of the scale {scale} in both sizes")
    font = ImageFont.load_default(size=_FONT_SIZE)
    tiles: list[tuple[np.ndarray, list[str]]] = [(img, [f"input {w}x{h}, {p.name} at x{scale}"])]
    draws = []
    for i in range(n):
        d = sample_degradation(p, sample_rng(seed, "sheet", i), scale=scale)
        lq = apply_degradation(img, d, scale=scale)
        big = cv2.resize(lq, (w, h), interpolation=cv2.INTER_NEAREST)
        tiles.append((big, [f"#{i}"] + [ln for op in d.ops for ln in _wrap(summarize_op(op), font, w)]))
        draws.append(d)
    n_lines = max(len(lines) for _, lines in tiles)
    cells = [_captioned(t, lines, n_lines, font) for t, lines in tiles]
    rows = [cells[k : k + columns] for k in range(0, len(cells), columns)]
    return grid(rows), draws


@dataclass
class SheetResult:
    out: Path
    size: tuple[int, int]  # (width, height) of the sheet
    crop: tuple[int, int]  # (width, height) of the input tile
    draws: list[Degradation]


def centre_crop_to(img: np.ndarray, side: int, multiple: int) -> np.ndarray:
    """The centre ``side x side`` window (smaller if the image is), cut to a multiple of ``multiple``."""
    h, w = img.shape[:2]
    ch, cw = (min(s, side) // multiple * multiple for s in (h, w))
    if ch < multiple or cw < multiple:
        raise ImageTooSmallError(f"the image ({h}x{w}) is smaller than the scale {multiple}")
    y, x = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(img[y : y + ch, x : x + cw])


def preset_sheet(
    image: str | Path,
    preset: str,
    out: str | Path,
    *,
    n: int = 8,
    seed: int = 0,
    scale: int = 4,
    crop: int = 256,
    columns: int = 3,
    user_presets: dict[str, Any] | None = None,
) -> SheetResult:
    """Read ``image``, centre-crop it to ``crop`` pixels, and write the :func:`contact_sheet` of
    ``preset`` to ``out`` (PNG, written atomically)."""
    img = centre_crop_to(decode_image(Path(image)), crop, scale)
    sheet, draws = contact_sheet(
        img, preset, n, seed=seed, scale=scale, columns=columns, user_presets=user_presets
    )
    path = write_image(Path(out), sheet)
    return SheetResult(path, (sheet.shape[1], sheet.shape[0]), (img.shape[1], img.shape[0]), draws)
