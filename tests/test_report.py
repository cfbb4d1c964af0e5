"""HTML reports (redegkit.report, `redeg report`, `--html`): what each page holds, read back from the
HTML, and the helpers' numbers (flattened parameters, PCA, curves, zoom windows) on golden values.

The same reports are opened in a real browser by tests/test_report_browser.py."""

from __future__ import annotations

import base64
import io
import json
import re
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from redegkit.cli import app
from redegkit.io.images import decode_image, encode_image
from redegkit.report import ReportError, detect_kind, write_report
from redegkit.report.bank import pca_2d, synthetic_chart
from redegkit.report.pictures import crop, detail_window
from redegkit.report.run import preview_zoom, read_metrics, series_by_split
from redegkit.report.shards import method_values, scan_folder, split_constant

from .conftest import gradient_rgb

runner = CliRunner()
_IMG = re.compile(r'<img(?: class="px")? src="data:(image/[a-z+]+);base64,([A-Za-z0-9+/=]+)" alt="([^"]*)"')


def images_of(html: str) -> list[tuple[str, str, bytes]]:
    """(mime, alt, bytes) of every <img> of a page, in order."""
    return [(m, a, base64.b64decode(b)) for m, b, a in _IMG.findall(html)]


def png_shape(data: bytes) -> tuple[int, ...]:
    return decode_image(data).shape


def self_contained(html: str) -> None:
    """No reference to anything outside the file: every src/href is a data: URI or a #fragment."""
    for attr in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert attr.startswith(("data:", "#")), attr
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org", "")
    assert "https://" not in html


# ------------------------------------------------------------------------------------------------
# shard folders written by hand, in the documented format


def _png(img: np.ndarray) -> bytes:
    return encode_image(img, "png")


def write_shard(path: Path, samples: list[dict], *, marker: bool = True) -> None:
    """A tar of samples (``key``, ``hq``, ``lq`` arrays, ``meta`` dict), and its done marker."""
    with tarfile.open(path, "w") as tf:
        for s in samples:
            for name, data in (
                (f"{s['key']}.hq.png", _png(s["hq"])),
                (f"{s['key']}.json", json.dumps(s["meta"]).encode()),
                (f"{s['key']}.lq.png", _png(s["lq"])),
            ):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    if marker:
        path.with_name(path.name + ".json").write_text(json.dumps({"count": len(samples)}))


def preset_meta(key: str, q: int, sigma: float, interp: str) -> dict:
    return {
        "key": key,
        "source": f"{key.split('_')[0]}.png",
        "scale": 4,
        "hq_size": [32, 32],
        "lq_size": [8, 8],
        "redegkit_version": "0.1.0",
        "shard_format": 2,
        "method": {
            "kind": "preset",
            "preset": "mine",
            "params": {
                "format": "redegkit.degradation",
                "final_interp": interp,
                "ops": [
                    {"op": "blur", "label": "blur1", "kernel": "iso", "sigma_x": sigma, "size": 7},
                    {
                        "op": "gaussian_noise",
                        "label": "noise1",
                        "sigma": 3.0,
                        "seed": 123456789,
                        "gray": False,
                    },
                    {"op": "jpeg", "label": "jpeg1", "quality": q},
                ],
            },
        },
    }


def bank_meta(key: str, idx: int) -> dict:
    return {
        "key": key,
        "source": "b.png",
        "scale": 4,
        "hq_size": [32, 32],
        "lq_size": [8, 8],
        "method": {
            "kind": "bank",
            "indices": [idx],
            "mix_weights": [1.0],
            "strength": 1.0,
            "noise_sigma": 0.0,
            "downsample": "bicubic",
            "choice": "uniform",
            "noise_seed": "99",
            "bank_sha256": "ab" * 32,
            "post": {"jpeg": 50, "noise_corr": 0.3, "filter": [[[1.0]]], "strength": 1.0},
        },
    }


@pytest.fixture(scope="module")
def shard_folder(tmp_path_factory) -> Path:
    """Two complete shards (a preset and a bank method) and one without its done marker: 12 samples."""
    folder = tmp_path_factory.mktemp("shards")
    hq = gradient_rgb(32, 32, 1)
    lq = cv2.resize(hq, (8, 8), interpolation=cv2.INTER_AREA)
    a = [
        {
            "key": f"img_{i:04d}",
            "hq": hq,
            "lq": lq,
            "meta": preset_meta(f"img_{i:04d}", 30 + 10 * i, 0.5 * i, "area"),
        }
        for i in range(5)
    ]
    b = [{"key": f"b_{i:04d}", "hq": hq, "lq": lq, "meta": bank_meta(f"b_{i:04d}", i % 3)} for i in range(4)]
    c = [
        {"key": f"c_{i:04d}", "hq": hq, "lq": lq, "meta": preset_meta(f"c_{i:04d}", 90, 1.0, "bicubic")}
        for i in range(3)
    ]
    write_shard(folder / "shard-000000.tar", a)
    write_shard(folder / "shard-000001.tar", b)
    write_shard(folder / "shard-000002.tar", c, marker=False)
    return folder


def test_method_values_flatten_presets_by_op_label_and_banks_by_field() -> None:
    mv = method_values(preset_meta("k", 40, 1.5, "area")["method"])
    assert mv.name == "preset:mine"
    assert mv.numbers == {
        "blur1.sigma_x": [1.5],
        "blur1.size": [7.0],
        "noise1.sigma": [3.0],
        "jpeg1.quality": [40.0],
    }
    assert mv.categories == {
        "ops applied": ["blur1", "noise1", "jpeg1"],
        "blur1.kernel": ["iso"],
        "final_interp": ["area"],
    }
    mv = method_values(bank_meta("k", 2)["method"])
    assert mv.name == "bank"
    assert mv.numbers == {
        "embedding index": [2.0],
        "strength": [1.0],
        "noise sigma": [0.0],
        "calibrated JPEG quality": [50.0],
        "noise correlation radius": [0.3],
    }  # seeds, hashes and the calibration arrays are not distributions
    assert mv.categories == {"downsample": ["bicubic"], "choice": ["uniform"]}
    # a bank with a measured noise spectrum: its top-band share (here 2 of 8 bands' power in the top 4)
    m = bank_meta("k", 2)["method"]
    psd = [
        [[w if i == j else 0.0 for j in range(3)] for i in range(3)] for w in (2, 2, 1, 1, 0.5, 0.5, 0.5, 0.5)
    ]
    m["post"] = {**m["post"], "noise_psd": psd}
    assert method_values(m).numbers["noise top-band share"] == [pytest.approx(2 / 8)]
    assert "noise correlation radius" not in method_values(m).numbers
    assert method_values({"kind": "external", "pair": 3}).name == "external"
    assert method_values("realesrgan").name == "realesrgan" and method_values(None).name == "?"


def test_split_constant() -> None:
    varying, constant = split_constant({"a": [1.0, 1.0], "b": [1.0, 2.0], "c": []})
    assert varying == {"b": [1.0, 2.0]} and constant == {"a": (1.0, 2)}


def test_scan_counts_everything_and_keeps_the_first_samples_without_markers(shard_folder: Path) -> None:
    sc = scan_folder(shard_folder, n_samples=4)
    assert sc.samples == 12 and [s["samples"] for s in sc.per_shard] == [5, 4, 3]
    assert sc.incomplete == ["shard-000002.tar"] and not sc.unreadable and not sc.broken
    assert sc.methods == {"preset:mine": 8, "bank": 4}
    assert sorted(sc.numbers["preset:mine"]["jpeg1.quality"]) == [30, 40, 50, 60, 70, 90, 90, 90]
    assert sorted(sc.numbers["bank"]["embedding index"]) == [0, 0, 1, 2]
    assert sc.categories["preset:mine"]["final_interp"] == {"area": 5, "bicubic": 3}
    # one shard has no marker: the total is unknown up front, so the grid takes the first samples
    assert [s["key"] for s in sc.shown] == ["img_0000", "img_0001", "img_0002", "img_0003"]


def test_shards_report_page(shard_folder: Path, tmp_path: Path) -> None:
    res = write_report(shard_folder, tmp_path / "r.html")
    assert res.kind == "shards" and res.sections == [
        "Counts",
        "Shards",
        "Sizes",
        "Degradation parameters",
        "Samples",
    ]
    html = res.path.read_text()
    self_contained(html)
    assert "12 samples in 3 shard(s)" in html and "1 shard(s) have no done marker" in html
    imgs = images_of(html)
    samples = [x for x in imgs if x[1].startswith("sample ")]
    assert len(samples) == 12  # 12 <= the grid's default 12: every sample
    h, w, _ = png_shape(samples[0][2])
    assert (h, w) == (160, 2 * 160 + 4)  # HQ | LQ (nearest up), 160-px tiles
    assert {m for m, _, _ in imgs} == {"image/png", "image/svg+xml"}
    # constant values are a line of text, not a one-bar histogram
    assert "noise1.sigma = 3.0000 (8)" in html and "HQ height (px) = 32.0" in html


def test_evenly_spaced_samples_and_a_corrupt_shard(tmp_path: Path) -> None:
    hq = gradient_rgb(16, 16, 2)
    lq = hq[::4, ::4].copy()
    write_shard(
        tmp_path / "a.tar",
        [
            {"key": f"k_{i:03d}", "hq": hq, "lq": lq, "meta": preset_meta(f"k_{i:03d}", 50, 1.0, "area")}
            for i in range(10)
        ],
    )
    sc = scan_folder(tmp_path, n_samples=3)
    assert [s["key"] for s in sc.shown] == ["k_000", "k_004", "k_009"]  # markers: evenly spaced
    (tmp_path / "b.tar").write_bytes(b"not a tar at all" * 100)
    (tmp_path / "b.tar.json").write_text('{"count": 4}')
    html = write_report(tmp_path, tmp_path / "r.html").path.read_text()
    assert "Unreadable shards" in html and "b.tar" in html


def test_detect_kind(tmp_path: Path, shard_folder: Path) -> None:
    assert detect_kind(shard_folder) == "shards"
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
    assert detect_kind(tmp_path / "run") == "run"
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "report.json").write_text('{"ranking": [], "per_image": {}}')
    assert detect_kind(tmp_path / "m") == "match"
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "report.json").write_text('{"scores": {}, "degradation": "x"}')
    assert detect_kind(tmp_path / "t") == "transfer"
    (tmp_path / "b.pt").write_bytes(b"")
    assert detect_kind(tmp_path / "b.pt") == "bank"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="not a shard folder"):
        detect_kind(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        detect_kind(tmp_path / "nothing")


# ------------------------------------------------------------------------------------------------
# training runs


def test_metrics_series_and_preview_zoom(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text(
        '{"split": "train", "step": 1, "loss": 2.0, "lr": 0.1}\n'
        '{"split": "train", "step": 2, "loss": 1.0, "lr": 0.1, "ok": true}\n'
        '{"split": "val", "step": 2, "psnr": 20.5}\n'
        "not json, cut by a crash\n"
        '{"split": "train", "step": 2, "loss": 0.5, "lr": 0.1, "x": NaN}\n'
    )
    recs, bad = read_metrics(tmp_path / "metrics.jsonl")
    assert len(recs) == 4 and bad == 1
    s = series_by_split(recs)
    assert s["train"]["loss"] == ([1, 2], [2.0, 0.5])  # a re-logged step (resume) replaces the first
    assert s["val"] == {"psnr": ([2], [20.5])} and "ok" not in s["train"] and "x" not in s["train"]
    assert [preview_zoom(t) for t in (None, 32, 64, 100, 192, 256)] == [1, 6, 3, 2, 1, 1]


def make_run_folder(run: Path) -> np.ndarray:
    """A fit run folder as 0.1.0 wrote it before previews were enlarged: 64-px tiles. Returns the preview."""
    (run / "previews").mkdir(parents=True)
    (run / "metrics.jsonl").write_text(
        "".join(
            json.dumps({"split": "train", "step": i, "same_deg": 1 / i, "pixel": 2 / i}) + "\n"
            for i in range(1, 6)
        )
        + json.dumps({"split": "val", "step": 5, "psnr": 21.0, "recon_l1": 0.2})
        + "\n"
    )
    (run / "config.json").write_text(json.dumps({"crop": 64, "loss": {}}))
    (run / "report.json").write_text(json.dumps({"steps": 5, "seconds": 1.5}))
    old = np.full((2 * 64 + 3 * 4, 4 * 64 + 5 * 4, 3), 200, np.uint8)
    old[4:68, 4:68] = gradient_rgb(64, 64, 3)
    cv2.imwrite(str(run / "previews" / "step_0000005.png"), old)
    return old


def test_run_report_enlarges_small_previews(tmp_path: Path) -> None:
    run = tmp_path / "run"
    old = make_run_folder(run)
    res = write_report(run, tmp_path / "r.html")
    assert res.kind == "run" and res.sections == [
        "Summary",
        "Training losses",
        "Validation (val)",
        "Previews",
    ]
    html = res.path.read_text()
    self_contained(html)
    assert "fit-degradation: run" in html and "shown enlarged 3x by nearest neighbour" in html
    prev = [x for x in images_of(html) if x[1].startswith("preview")]
    assert len(prev) == 1 and png_shape(prev[0][2])[:2] == (3 * old.shape[0], 3 * old.shape[1])


# ------------------------------------------------------------------------------------------------
# pictures, PCA


def test_detail_window_is_on_the_8x8_grid_and_finds_the_texture() -> None:
    img = np.full((64, 64, 3), 128, np.uint8)
    rng = np.random.default_rng(0)
    img[40:56, 16:40] = rng.integers(0, 255, (16, 24, 3), dtype=np.uint8)
    y, x = detail_window(img, 16)
    assert (y % 8, x % 8) == (0, 0) and y == 40 and x in (16, 24)
    assert crop(img, y, x, 16).shape == (16, 16, 3)


def test_pca_2d_golden() -> None:
    rng = np.random.default_rng(0)
    t = rng.normal(size=200)
    x = np.stack([3 * t, -4 * t, 0.0 * t], 1) + np.array([1.0, 2.0, 3.0])  # a line: one axis, all variance
    mean, axes, ratio = pca_2d(x)
    assert (
        np.allclose(mean, x.mean(0))
        and ratio[0] == pytest.approx(1.0)
        and ratio[1] == pytest.approx(0.0, abs=1e-12)
    )
    # the line's direction is (3, -4, 0) / 5; its largest coefficient (-0.8) is made positive
    assert np.allclose(axes[0], [-0.6, 0.8, 0.0])
    assert pca_2d(np.ones((1, 4)))[2].tolist() == [0.0, 0.0]


def test_test_chart() -> None:
    c = synthetic_chart(64)
    assert c.shape == (64, 64, 3) and c.dtype == np.uint8 and c[:32, :32].std() == 0 and c.std() > 30


# ------------------------------------------------------------------------------------------------
# eval transfer, eval match, banks: made by the real commands at tiny sizes


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """A tiny bank, an eval transfer folder (with it), an eval match folder (with --html) and a
    synthesize --preset shard folder, made by the library and the CLI."""
    from redegkit.eval.transfer import TransferConfig, eval_transfer
    from redegkit.io.sources import list_sources

    from .conftest import shrunk_examples
    from .test_bank import make_bank

    root = tmp_path_factory.mktemp("made")
    imgs = shrunk_examples(root / "imgs", ("astronaut", "brick", "coffee", "chelsea"), 128)
    bank = make_bank(root / "bank")
    cfg = TransferConfig(
        views=2,
        view_size=64,
        crop=64,
        crops_per_image=2,
        scale=2,
        sheet_rows=3,
        presets=["realesrgan", "bsrgan-x2"],
    )
    eval_transfer(
        list_sources([str(imgs["astronaut"])]),
        list_sources([str(imgs["brick"]), str(imgs["coffee"])]),
        "jpeg-only",
        root / "transfer",
        cfg=cfg,
        bank=bank,
        user_presets={"jpeg-only": {"steps": [{"op": "jpeg", "quality": 25}]}},
    )
    r = runner.invoke(
        app,
        [
            "eval",
            "match",
            str(imgs["brick"]),
            str(imgs["coffee"]),
            str(imgs["chelsea"]),
            "-c",
            "preset:realesrgan",
            "-c",
            "preset:bsrgan",
            "--hq",
            str(root / "imgs"),
            "--max-side",
            "32",
            "-o",
            str(root / "match"),
            "--html",
            str(root / "match.html"),
            "--json",
            "--quiet",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["html"] == str(root / "match.html")
    r = runner.invoke(
        app,
        [
            "synthesize",
            "--preset",
            "realesrgan",
            "--crop",
            "32",
            "--workers",
            "1",
            str(root / "imgs"),
            str(root / "shards"),
            "--quiet",
        ],
    )
    assert r.exit_code == 0, r.output
    return {
        "root": root,
        "bank": bank,
        "transfer": root / "transfer",
        "match": root / "match",
        "shards": root / "shards",
        "image": imgs["chelsea"],
    }


def test_transfer_report_grid_and_ranking(made: dict[str, Path], tmp_path: Path) -> None:
    folder = made["transfer"]
    rep = json.loads((folder / "report.json").read_text())
    assert len(list((folder / "truth").glob("*.png"))) == len(rep["crops"]) == 4
    res = write_report(folder, tmp_path / "t.html")
    assert res.kind == "transfer"
    assert res.sections == ["Summary", "Target", "Ranking at x1", "Ranking at x2", "Crops"]
    html = res.path.read_text()
    self_contained(html)
    # the ranked table is eval transfer's ranking
    from redegkit.eval.transfer import ranking

    x1 = html.split('id="ranking-at-x1"')[1].split("</table>")[0]
    names = re.findall(r"<tr(?: class=\"hl\")?><td>\d+</td><td>([^<]+)</td>", x1)
    assert names == [n for n, _ in ranking(rep, "x1")]
    best = rep["target"]["x1"]["best_preset"]
    grid = html.split('id="crops"')[1]
    heads = re.findall(r"<th>([^<]+)</th>", grid)
    assert heads == [
        "HQ crop",
        "real LQ: the known D(HQ)",
        "learned LQ: bank",
        "bank without calibration",
        f"best preset LQ: {best}",
    ]
    imgs = [x for x in images_of(grid)]
    assert len(imgs) == 3 * 5 * 2  # 3 crops x 5 columns x (crop, inset)
    whole, inset = imgs[0], imgs[1]
    assert png_shape(whole[2])[:2] == (128, 128) and png_shape(inset[2])[:2] == (
        192,
        192,
    )  # 2x crop, 6x inset
    # the inset is the crop's window enlarged 6x by nearest neighbour, at a position on the 8x8 grid
    k = rep["sheet_crops"][0]
    m = re.search(rf"{k}: inset 32x32 px at x=(\d+), y=(\d+)", grid)
    assert m and int(m.group(1)) % 8 == 0 and int(m.group(2)) % 8 == 0
    x, y = int(m.group(1)), int(m.group(2))
    hq = decode_image(folder / "crops" / f"{k}.png")
    assert np.array_equal(decode_image(inset[2]), crop(hq, y, x, 32).repeat(6, 0).repeat(6, 1))
    # truth/ is written by eval transfer; without it the report recomputes D(crop): the same pixels
    truth = decode_image(folder / "truth" / f"{k}.png")
    assert np.array_equal(decode_image(imgs[3][2]), crop(truth, y, x, 32).repeat(6, 0).repeat(6, 1))
    moved = folder.parent / "truth-moved"
    (folder / "truth").rename(moved)
    try:
        again = write_report(folder, tmp_path / "t2.html").path.read_text()
    finally:
        moved.rename(folder / "truth")
    assert images_of(again.split('id="crops"')[1])[3][2] == imgs[3][2]


def test_comparison_figure(made: dict[str, Path]) -> None:
    from redegkit.report.transfer import comparison_figure

    png = comparison_figure(made["transfer"], rows=2)
    h, w, _ = png_shape(png)
    assert w > 600 and h > 600


def test_match_report(made: dict[str, Path]) -> None:
    html = (made["root"] / "match.html").read_text()
    self_contained(html)
    rep = json.loads((made["match"] / "report.json").read_text())
    ranked = re.findall(
        r"<tr(?: class=\"hl\")?><td>(\d+)</td><td>([^<]+)</td>", html.split('id="ranking"')[1]
    )
    assert [n for _, n in ranked] == rep["ranking"]
    assert len(images_of(html)) == 2  # the distance bars, the histograms (one figure, a panel per statistic)


def test_bank_report_and_cli(made: dict[str, Path], tmp_path: Path) -> None:
    from redegkit.bank import cluster_bank, load_bank

    out = tmp_path / "b.html"
    r = runner.invoke(
        app, ["bank", "info", str(made["bank"]), "--html", str(out), "--image", str(made["image"])]
    )
    assert r.exit_code == 0, r.output
    html = out.read_text()
    self_contained(html)
    cl = cluster_bank(load_bank(made["bank"]))
    assert f"<dt>k</dt><dd>{cl.k}</dd>" in html
    imgs = images_of(html)
    alts = [a for _, a, _ in imgs]
    assert alts[:2] == ["the embeddings projected on their first two principal axes", "silhouette by k"]
    assert "identity reconstruction" in alts
    assert sum(a.endswith("generator only") for a in alts) == cl.k
    assert sum(a.endswith("calibrated") for a in alts) == cl.k  # make_bank calibrates
    assert "embeddings per source photo" in alts
    for _, a, data in imgs:
        if a in ("HQ", "identity reconstruction") or a.endswith(("generator only", "calibrated")):
            assert min(png_shape(data)[:2]) >= 192


def test_cli_report_and_html_flags(made: dict[str, Path], tmp_path: Path) -> None:
    r = runner.invoke(
        app, ["shards", "info", str(made["shards"]), "--html", str(tmp_path / "s.html"), "--json"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["html"] == str(tmp_path / "s.html") and (tmp_path / "s.html").is_file()
    r = runner.invoke(app, ["report", str(made["transfer"]), "-o", str(tmp_path / "t.html"), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["kind"] == "transfer"
    r = runner.invoke(app, ["report", str(tmp_path), "-o", str(tmp_path / "x.html")])
    assert r.exit_code == 2 and "not a shard folder" in r.output
    r = runner.invoke(app, ["report", str(made["shards"]), "--kind", "nope"])
    assert r.exit_code == 2 and "--kind" in r.output
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a bank")
    r = runner.invoke(app, ["report", str(bad), "-o", str(tmp_path / "b.html")])
    assert r.exit_code == 2, r.output


# ------------------------------------------------------------------------------------------------
# every kind of report in a real browser


def _browser_check():
    """tools/browser_check.py as a module (tools/ is not a package)."""
    import importlib.util
    import sys

    from .conftest import ROOT

    if "browser_check" not in sys.modules:
        spec = importlib.util.spec_from_file_location("browser_check", ROOT / "tools" / "browser_check.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules["browser_check"] = mod  # before exec: its dataclasses look their module up
        spec.loader.exec_module(mod)
    return sys.modules["browser_check"]


@pytest.fixture(scope="module")
def reports(made: dict[str, Path], shard_folder: Path) -> dict[str, Path]:
    root = made["root"]
    make_run_folder(root / "run")
    out = {"match": root / "match.html"}  # written by eval match --html
    for kind, target in [
        ("shards", made["shards"]),
        ("shards-by-hand", shard_folder),
        ("transfer", made["transfer"]),
        ("bank", made["bank"]),
        ("run", root / "run"),
    ]:
        out[kind] = write_report(target, root / f"{kind}.html").path
    return out


@pytest.mark.parametrize("kind", ["shards", "shards-by-hand", "transfer", "match", "bank", "run"])
def test_report_renders_in_chromium(reports: dict[str, Path], kind: str) -> None:
    """Headless Chromium loads the page: every image decodes (naturalWidth > 0), nothing is logged
    as an error (network failures included), the screenshot is not blank, and it loads in < 2 s."""
    bc = _browser_check()
    if bc.find_chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run installs it when missing)")
    html = reports[kind]
    res = bc.check_page(html, timeout=60)
    n_img = len(re.findall(r"<img ", html.read_text()))
    assert res.images == n_img > 0
    assert res.broken_images == [] and res.console_errors == []
    assert res.screenshot_std > 5, "the screenshot is blank"
    assert 0 < res.load_ms < 2000
    assert res.ok


def test_browser_check_sees_broken_images_and_errors(tmp_path: Path) -> None:
    """The browser check can fail: a missing image and a script error are reported."""
    bc = _browser_check()
    if bc.find_chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run installs it when missing)")
    page = tmp_path / "bad.html"
    page.write_text(
        '<!doctype html><html><head><link rel="icon" href="data:,"></head><body><h1>x</h1>'
        '<img src="missing.png" alt="gone"><script>console.error("boom"); undefinedFn();</script></body></html>'
    )
    res = bc.check_page(page)
    assert res.broken_images == ["gone"] and not res.ok
    text = " | ".join(res.console_errors)
    assert "boom" in text and "undefinedFn" in text and "missing.png" in text
