"""`redeg eval transfer`: pairs, crops, truth, candidates, scores and the target, at tiny scale."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from redegkit.cli import app
from redegkit.degrade import get_preset
from redegkit.eval.transfer import TransferConfig, eval_transfer, has_random_noise, make_pairs, ranking
from redegkit.io.images import decode_image
from redegkit.io.sources import list_sources

from .conftest import shrunk_examples
from .test_bank import make_bank

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "benchmarks" / "fidelity_suite.toml"
USER = {
    "jpeg30": {"steps": [{"op": "jpeg", "quality": 30}]},
    "noisy": {"steps": [{"op": "gaussian_noise", "sigma": 5}]},
}
TINY = {
    "views": 2,
    "view_size": 64,
    "crop": 64,
    "crops_per_image": 2,
    "scale": 2,
    "sheet_rows": 2,
    "presets": ["realesrgan", "bsrgan-x2"],
}


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    return shrunk_examples(tmp_path_factory.mktemp("imgs"), ("astronaut", "camera", "brick", "coffee"), 160)


@pytest.fixture(scope="module")
def bank(tmp_path_factory) -> Path:
    return make_bank(tmp_path_factory.mktemp("bank"))


def test_suite_is_five_known_degradations_none_builtin() -> None:
    from redegkit.config import load_toml
    from redegkit.degrade import list_presets

    suite = load_toml(SUITE)["presets"]
    assert len(suite) >= 5 and not set(suite) & set(list_presets())
    noisy = {n for n, spec in suite.items() if has_random_noise(get_preset(n, suite))}
    assert noisy == {"sensor-noise-blur", "strong-combo"}


def test_pairs_are_views_under_the_known_degradation(tmp_path: Path, images) -> None:
    cfg = TransferConfig(**TINY)
    srcs = list_sources([str(images["astronaut"])])
    make_pairs(srcs, get_preset("jpeg30", USER), tmp_path, cfg)
    recs = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert len(recs) == 2
    for r in recs:
        hq, lq = (
            decode_image(tmp_path / "hq" / f"{r['key']}.png"),
            decode_image(tmp_path / "lq" / f"{r['key']}.png"),
        )
        assert hq.shape == lq.shape == (64, 64, 3)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(hq, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 30])
        assert np.array_equal(lq, cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))


def test_a_preset_scored_against_itself_wins_exactly(tmp_path: Path, images, bank: Path) -> None:
    """D = a deterministic preset, also given as a candidate: at x1 it reproduces the truth bit for
    bit (distance 0, PSNR inf); at x2 (its own resize vs the truth's downsampling) it still ranks
    first. The identity and the bank without calibration are scored too."""
    cfg = TransferConfig(**TINY)
    res = eval_transfer(
        list_sources([str(images["astronaut"])]),
        list_sources([str(images["brick"]), str(images["coffee"])]),
        "jpeg30",
        tmp_path / "o",
        cfg=cfg,
        bank=bank,
        extra_presets=["jpeg30"],
        user_presets=USER,
    )
    rep = res.report
    assert set(rep["scores"]) == {"x1", "x2"} and not rep["random_noise"]
    for sc in ("x1", "x2"):
        name, best = ranking(rep, sc)[0]
        assert name == "preset:jpeg30"
        if sc == "x1":
            assert best["distance"]["overall"] == 0.0 and best["psnr"] == float("inf")
        assert {"bank", "bank (no calibration)", "identity", "preset:realesrgan"} <= set(rep["scores"][sc])
        assert rep["scores"][sc]["identity"]["distance"]["blockiness"] > 0  # the truth has blocks, the HQ not
    assert (tmp_path / "o" / "sheet.png").is_file()
    assert (
        json.loads((tmp_path / "o" / "report.json").read_text())["target"]["x1"]["best_preset"]
        in TINY["presets"]
    )


def test_evaluation_images_must_not_be_faces(tmp_path: Path, images, bank: Path) -> None:
    srcs = list_sources([str(images["astronaut"])])
    with pytest.raises(ValueError, match="must not be used in fitting"):
        eval_transfer(
            srcs, srcs, "jpeg30", tmp_path, cfg=TransferConfig(**TINY), bank=bank, user_presets=USER
        )


def test_cli_fits_bakes_and_scores(tmp_path: Path, images) -> None:
    """The whole benchmark from the command line with a 3-step tiny fit: exit 0, a ranked table,
    report.json with every candidate at both scales and the target's verdict."""
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        "[fit]\nsteps = 3\nbatch = 2\ncrop = 64\nlr = 2e-3\nlog_every = 1\nval_every = 100\n"
        "checkpoint_every = 100\n"
        "[fit.model]\nstyle_dim = 16\nn_mlp = 1\nwidth = 0.0625\n"
        "[fit.data]\nface_box = [0, 512, 0, 512]\nface_rescale = false\nval_fraction = 0.0\nworkers = 0\n"
        "[fit.loss]\nuse_perceptual = false\n"
        "[bake]\nface_box = [0, 512, 0, 512]\ncrops = 1\ndevice = 'cpu'\n"
        "[eval_transfer]\nviews = 2\nview_size = 64\ncrop = 64\ncrops_per_image = 1\nscale = 2\n"
        "presets = ['bsrgan-x2']\n"
    )
    r = CliRunner().invoke(
        app,
        [
            "eval",
            "transfer",
            str(images["brick"]),
            str(images["coffee"]),
            "-f",
            str(images["astronaut"]),
            "-f",
            str(images["camera"]),
            "-d",
            "sensor-noise-blur",
            "--presets",
            str(SUITE),
            "-r",
            str(recipe),
            "-o",
            str(tmp_path / "o"),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    rep = json.loads((tmp_path / "o" / "report.json").read_text())
    assert rep["random_noise"] and "noise_ratio" in out["target"]["x1"]
    assert set(rep["scores"]["x2"]) == {"bank", "bank (no calibration)", "preset:bsrgan-x2", "identity"}
    assert (tmp_path / "o" / "fit" / "last.pt").is_file() and (tmp_path / "o" / "emb.pt").is_file()
