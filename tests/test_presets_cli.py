"""`redeg presets list|show` and the contact sheet behind `show`."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from redegkit.cli import app
from redegkit.degrade import Degradation, apply_degradation, list_presets
from redegkit.degrade.summary import summarize_op
from redegkit.eval.sheet import contact_sheet
from redegkit.io.images import decode_image

from .conftest import EXAMPLES, gradient_rgb

runner = CliRunner()


def test_contact_sheet_tiles_are_the_input_and_each_draw() -> None:
    img = gradient_rgb(64, 48, seed=4)
    sheet, draws = contact_sheet(img, "web", 4, seed=3, scale=4, columns=3)
    assert len(draws) == 4 and all(d.preset == "web" for d in draws)
    # io.preview.grid: 4-px gaps around and between the cells; a cell is the tile over its caption
    assert sheet.dtype == np.uint8 and sheet.shape[1] == 3 * 48 + 4 * 4
    cell_h = (sheet.shape[0] - 3 * 4) // 2  # two rows of cells
    assert np.array_equal(sheet[4 : 4 + 64, 4 : 4 + 48], img)  # the first tile is the input
    for i, d in enumerate(draws):
        k = i + 1
        y0, x0 = 4 + (k // 3) * (cell_h + 4), 4 + (k % 3) * (48 + 4)
        lq = apply_degradation(img, d, scale=4)
        want = cv2.resize(lq, (48, 64), interpolation=cv2.INTER_NEAREST)
        assert np.array_equal(sheet[y0 : y0 + 64, x0 : x0 + 48], want)
    again, draws2 = contact_sheet(img, "web", 4, seed=3, scale=4, columns=3)
    assert np.array_equal(sheet, again) and draws == draws2
    with pytest.raises(ValueError, match="multiple of the scale"):
        contact_sheet(gradient_rgb(30, 30), "web", 2, scale=4)


def test_op_summaries_are_short_and_leave_defaults_out() -> None:
    from redegkit.degrade import params as P

    assert summarize_op(P.JpegParams(quality=57, lib="x")) == "jpeg quality 57"
    assert summarize_op(P.JpegParams(quality=57, subsampling="4:4:4", progressive=True)) == (
        "jpeg quality 57 subsampling 4:4:4 progressive y"
    )
    v = P.VideoParams(codec="hevc", quality=31.0, preset="fast", shifts=[(1.0, 0.0), (0.0, 0.0), (0.5, 0.0)])
    assert summarize_op(v) == "video hevc q 31 420 fast bt709 3f"
    assert summarize_op(P.PixelateParams(block=6)) == "pixelate block 6"


def test_cli_presets_list_names_and_descriptions(tmp_path: Path) -> None:
    r = runner.invoke(app, ["presets", "list"])
    assert r.exit_code == 0 and r.stdout.split() == list_presets()
    r = runner.invoke(app, ["presets", "list", "--json"])
    rows = json.loads(r.stdout)
    assert rows["video"]["builtin"] and "PyAV" in rows["video"]["description"]
    recipe = tmp_path / "r.toml"
    recipe.write_text('[presets.mine]\ndescription = "mine"\nsteps = [{ op = "pixelate", block = 4 }]\n')
    r = runner.invoke(app, ["presets", "list", "--json", "--recipe", str(recipe)])
    assert json.loads(r.stdout)["mine"] == {"builtin": False, "description": "mine"}


def test_cli_presets_show_writes_the_sheet(tmp_path: Path) -> None:
    out = tmp_path / "sheet.png"
    args = ["presets", "show", "video", "--image", str(EXAMPLES / "chelsea.png"), "-o", str(out)]
    r = runner.invoke(app, [*args, "-n", "4", "--crop", "96", "--scale", "2", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["crop"] == "96x96" and doc["draws"] == 4 and len(doc["params"]) == 4
    d = Degradation.from_json(doc["params"][0])
    assert any(op.op == "video" for op in d.ops) or d.preset == "video"
    sheet = decode_image(out)
    assert sheet.shape[1] == 3 * 96 + 4 * 4 and f"{sheet.shape[1]}x{sheet.shape[0]}" == doc["sheet"]
    first = out.read_bytes()
    r = runner.invoke(app, [*args, "-n", "4", "--crop", "96", "--scale", "2"])
    assert r.exit_code == 0 and out.read_bytes() == first  # the same seed, the same sheet
    r = runner.invoke(app, [*args, "-n", "4", "--crop", "96", "--scale", "2", "--seed", "1"])
    assert r.exit_code == 0 and out.read_bytes() != first


def test_cli_presets_show_usage_errors(tmp_path: Path) -> None:
    out = str(tmp_path / "s.png")
    r = runner.invoke(app, ["presets", "show", "nope", "--image", str(EXAMPLES / "chelsea.png"), "-o", out])
    assert r.exit_code == 2 and "unknown degradation preset" in r.output
    r = runner.invoke(app, ["presets", "show", "web", "--image", str(tmp_path / "missing.png"), "-o", out])
    assert r.exit_code == 2 and "missing.png" in r.output
    tiny = tmp_path / "tiny.png"
    cv2.imwrite(str(tiny), np.zeros((3, 3, 3), np.uint8))
    r = runner.invoke(app, ["presets", "show", "web", "--image", str(tiny), "-o", out])
    assert r.exit_code == 2 and "smaller than the scale" in r.output


def test_config_list_also_lists_the_presets() -> None:
    r = runner.invoke(app, ["config", "list"])
    assert r.exit_code == 0 and "web" not in r.stdout.split()  # stdout stays the recipe names
    assert "degradation presets" in r.output and "old-photo" in r.output
