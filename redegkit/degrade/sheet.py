"""Contact sheets: one image under N draws of a preset, each tile labelled with the draw's parameters.

:func:`contact_sheet` works on arrays (the input and ``n`` degraded copies, each enlarged back to
the input size with nearest-neighbour so that the LQ pixels stay visible); :func:`preset_sheet` reads
an image file, centre-crops it and writes the sheet as PNG (``redeg presets show``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..rng import sample_rng
from . import Degradation, apply_degradation, get_preset, sample_degradation
from .ops import ImageTooSmallError
from .params import OpParamsBase
from .spec import Preset

_SKIP = {"op", "label", "lib", "seed", "rng"}
_FONT_SIZE = 11
_PAD = 4
_BG = (255, 255, 255)
_INK = (20, 20, 20)


def _num(v: Any) -> str:
    if isinstance(v, bool):
        return "y" if v else "n"
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, tuple | list) and all(isinstance(x, int | float) for x in v):
        return "(" + ",".join(_num(x) for x in v) + ")"
    return str(v)


def summarize_op(op: OpParamsBase) -> str:
    """One short ASCII line with an op's numbers (seeds, labels, library versions and values at their
    defaults left out)."""
    d = op.model_dump()
    name = d["op"]
    if name == "video":
        rate = f"bpp {d['bpp']:.3g}" if d["bpp"] is not None else f"q {d['quality']:.3g}"
        preset = f" {d['preset']}" if d["preset"] else ""
        return f"video {d['codec']} {rate} {d['pix_fmt'][3:6]}{preset} {d['matrix']} {len(d['shifts'])}f"
    if name == "camera_isp":
        return (
            f"isp {d['pattern']} shot {d['shot']:.2g} read {d['read']:.2g} {d['bits']}b "
            f"wb {d['r_gain']:.2f}/{d['b_gain']:.2f} {d['demosaic']}"
        )
    if name == "blur":
        width = f"cut {d['cutoff']:.2f}" if d["kernel"] == "sinc" else f"sig {d['sigma_x']:.2f}"
        if d["kernel"].endswith("aniso"):
            width += f"/{d['sigma_y']:.2f} {d['angle']:.0f}deg"
        return f"blur {d['kernel']} {d['size']}px {width}"
    if name == "resize":
        return f"resize {d['ref']} x{d['factor']:.3g} {d['interp']}"
    fields = type(op).model_fields
    parts = [
        f"{k} {_num(v)}"
        for k, v in d.items()
        if k not in _SKIP
        and v is not None
        and not (fields[k].is_required() is False and v == fields[k].default)
    ]
    return f"{name} " + " ".join(parts)


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
    line_h = _FONT_SIZE + 3
    tiles: list[tuple[np.ndarray, list[str]]] = [(img, [f"input {w}x{h}, {p.name} at x{scale}"])]
    draws = []
    for i in range(n):
        d = sample_degradation(p, sample_rng(seed, "sheet", i), scale=scale)
        lq = apply_degradation(img, d, scale=scale)
        big = cv2.resize(lq, (w, h), interpolation=cv2.INTER_NEAREST)
        lines = [f"#{i}"] + [ln for op in d.ops for ln in _wrap(summarize_op(op), font, w)]
        tiles.append((big, lines))
        draws.append(d)
    cols = min(columns, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    cap = max(len(lines) for _, lines in tiles) * line_h + _PAD
    cell_w, cell_h = w + 2 * _PAD, h + cap + 2 * _PAD
    sheet = Image.new("RGB", (cols * cell_w, rows * cell_h), _BG)
    draw = ImageDraw.Draw(sheet)
    for k, (tile, lines) in enumerate(tiles):
        x0, y0 = (k % cols) * cell_w + _PAD, (k // cols) * cell_h + _PAD
        sheet.paste(Image.fromarray(tile), (x0, y0))
        for j, line in enumerate(lines):
            draw.text((x0, y0 + h + 2 + j * line_h), line, fill=_INK, font=font)
    return np.asarray(sheet), draws


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
    from ..io.images import decode_image, write_image

    img = centre_crop_to(decode_image(Path(image)), crop, scale)
    sheet, draws = contact_sheet(
        img, preset, n, seed=seed, scale=scale, columns=columns, user_presets=user_presets
    )
    path = write_image(Path(out), sheet)
    return SheetResult(path, (sheet.shape[1], sheet.shape[0]), (img.shape[1], img.shape[0]), draws)
