"""`redeg eval match`: the distance, the candidate kinds, the ranking, the files, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from redegkit.cli import app
from redegkit.eval.match import (
    MATCH_STATS,
    SPREAD_FLOORS,
    Candidate,
    MatchConfig,
    MatchError,
    image_stats,
    match,
    parse_candidate,
    robust_spread,
    wasserstein1,
)
from redegkit.io.images import decode_image, encode_image, write_image
from redegkit.io.shards import ShardWriter
from redegkit.io.sources import list_sources

from .conftest import EXAMPLES

runner = CliRunner()
NAMES = ("astronaut", "brick", "camera", "chelsea", "coffee", "grass", "gravel")
CFG = MatchConfig(max_side=64, max_images=16, scale=2, bins=10)


def _crops(name: str, side: int = 64) -> list[np.ndarray]:
    """Four side x side crops from one example photo shrunk to 2*side (tiny and fast)."""
    img = cv2.resize(
        decode_image(EXAMPLES / f"{name}.png"), (2 * side, 2 * side), interpolation=cv2.INTER_AREA
    )
    return [img[y : y + side, x : x + side] for y in (0, side) for x in (0, side)]


def _jpeg_blur(img: np.ndarray, quality: int = 25, sigma: float = 0.8) -> np.ndarray:
    x = cv2.GaussianBlur(img, (0, 0), sigma)
    return decode_image(encode_image(x, "jpg", quality=quality))


def _noise(img: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).round().astype(np.uint8)


def _folder(root: Path, images: list[np.ndarray]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        write_image(root / f"{i:03d}.png", img)
    return root


def _shards(root: Path, images: list[np.ndarray]) -> Path:
    """A shard folder whose samples' lq (and hq) are exactly ``images``."""
    sink = ShardWriter(root, max_count=5)
    for i, img in enumerate(images):
        png = encode_image(img, "png")
        sink.add_sample(f"s{i:04d}", {"hq.png": png, "lq.png": png, "json": b"{}"})
        sink.end_input(i + 1)
    sink.close()
    return root


@pytest.fixture(scope="module")
def real_images() -> list[np.ndarray]:
    # The "real" photos: blurred and JPEG-compressed at q25, from the first four examples.
    return [_jpeg_blur(c) for n in NAMES[:4] for c in _crops(n)[:2]]


@pytest.fixture(scope="module")
def real_dir(tmp_path_factory, real_images) -> Path:
    return _folder(tmp_path_factory.mktemp("real"), real_images)


# The distance --------------------------------------------------------------------------------
def test_wasserstein1_golden_values():
    assert wasserstein1([0, 1, 2, 3], [0.5, 1.5, 2.5, 3.5]) == pytest.approx(0.5)
    # Unequal sizes: quantile steps at 1/2 vs 1/3, 2/3; |0 - 0.5| on (1/3, 2/3] = 1/6.
    assert wasserstein1([0, 1], [0, 0.5, 1]) == pytest.approx(1 / 6)
    assert wasserstein1([3, 1, 2], [2, 3, 1]) == 0.0  # order does not matter
    with pytest.raises(ValueError, match="empty"):
        wasserstein1([], [1.0])


def test_wasserstein1_equals_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for n, m in ((7, 7), (5, 12), (31, 4)):
        a, b = rng.normal(0, 1, n), rng.gamma(2.0, 1.0, m)
        assert wasserstein1(a, b) == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-12, abs=1e-12)


def test_robust_spread_is_iqr_over_1349_with_a_floor():
    assert robust_spread([0, 1, 2, 3, 4], 0.0) == pytest.approx(2.0 / 1.349)
    assert robust_spread([5, 5, 5], 0.25) == 0.25
    assert set(SPREAD_FLOORS) == set(MATCH_STATS) and all(v > 0 for v in SPREAD_FLOORS.values())


def test_image_stats_uses_a_centre_crop():
    big = cv2.resize(decode_image(EXAMPLES / "chelsea.png"), (200, 160), interpolation=cv2.INTER_AREA)
    centre = big[(160 - 64) // 2 : (160 - 64) // 2 + 64, (200 - 64) // 2 : (200 - 64) // 2 + 64]
    assert image_stats(big, 64) == image_stats(centre, 64)
    st = image_stats(big, 64)
    assert set(st) == set(MATCH_STATS)
    assert st["cast_r"] * 0.299 + st["cast_g"] * 0.587 + st["cast_b"] * 0.114 == pytest.approx(0.0, abs=1e-9)


def test_parse_candidate_syntax(tmp_path: Path):
    assert parse_candidate("preset:bsrgan") == Candidate("preset", "bsrgan", "preset:bsrgan")
    assert parse_candidate("bank:runs/emb.pt") == Candidate("bank", "runs/emb.pt", "bank:runs/emb.pt")
    assert parse_candidate("shards:out") == Candidate("shards", "out", "shards:out")
    assert parse_candidate(str(tmp_path)).kind == "shards"
    with pytest.raises(MatchError, match="unknown kind"):
        parse_candidate("presets:bsrgan")
    with pytest.raises(MatchError, match="nothing after"):
        parse_candidate("bank:")


# match ---------------------------------------------------------------------------------------
def test_real_set_as_its_own_candidate_scores_exactly_zero(tmp_path: Path, real_dir: Path, real_images):
    own = _shards(tmp_path / "own", real_images[::-1])  # another order: distributions, not pairs
    res = match(list_sources(real_dir), [parse_candidate(str(own))], tmp_path / "out", CFG)
    (c,) = res.candidates
    assert c.images == len(real_images) and c.overall == 0.0
    assert all(v == 0.0 for v in c.distances.values())


def test_like_degraded_candidate_ranks_above_a_different_one(tmp_path: Path, real_dir: Path):
    others = [c for n in NAMES[4:] for c in _crops(n)]  # other photos than the real set's
    like = _shards(tmp_path / "like", [_jpeg_blur(c) for c in others])
    noisy = _shards(tmp_path / "noisy", [_noise(c, 6.0, i) for i, c in enumerate(others)])
    clean = _shards(tmp_path / "clean", others)
    cands = [parse_candidate(str(p)) for p in (noisy, clean, like)]
    res = match(list_sources(real_dir), cands, tmp_path / "out", CFG)
    assert res.ranking[0] == str(like)
    by = {c.label: c.distances for c in res.candidates}
    # the noisy candidate is told apart by its noise, the clean one by its missing blocks and blur
    assert by[str(noisy)]["noise"] > 3 * by[str(like)]["noise"]
    assert by[str(clean)]["blockiness"] > 2 * by[str(like)]["blockiness"]
    assert by[str(clean)]["sharpness"] > 3 * by[str(like)]["sharpness"]


def test_report_and_histograms_are_written(tmp_path: Path, real_dir: Path, real_images):
    own = _shards(tmp_path / "own", real_images)
    noisy = _shards(tmp_path / "noisy", [_noise(c, 8.0, i) for i, c in enumerate(real_images)])
    out = tmp_path / "out"
    res = match(list_sources(real_dir), [parse_candidate(str(noisy)), parse_candidate(str(own))], out, CFG)
    rep = json.loads((out / "report.json").read_text())
    assert rep["ranking"] == [str(own), str(noisy)] == res.ranking
    assert [c["rank"] for c in rep["candidates"]] == [1, 2]
    assert rep["candidates"][0]["overall"] == 0.0 and rep["candidates"][1]["overall"] > 0.5
    assert rep["real"]["images"] == len(real_images) and set(rep["real"]["spread"]) == set(MATCH_STATS)
    assert len(rep["per_image"]["real"]) == len(real_images)
    expected = {
        f"hist_{s}.png"
        for s in ("noise", "spectral_slope", "sharpness", "blockiness", "saturation", "contrast", "cast")
    }
    assert set(rep["histograms"]) == expected == {p.name for p in res.histograms}
    for name in expected:
        png = cv2.imread(str(out / name))
        assert png is not None and png.shape[0] > 100 and png.std() > 1  # a drawn figure


def test_bad_images_are_failure_records_not_crashes(tmp_path: Path, real_images):
    real = _folder(tmp_path / "real", real_images[:4])
    (real / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    write_image(real / "tiny.png", real_images[0][:5, :5])  # decodes, but too small to measure
    sink = ShardWriter(tmp_path / "cand", max_count=10)
    for i, img in enumerate(real_images[:3]):
        sink.add_sample(f"k{i}", {"lq.png": encode_image(img), "hq.png": encode_image(img), "json": b"{}"})
    sink.add_sample("kbad", {"lq.png": b"garbage", "hq.png": b"garbage", "json": b"{}"})
    sink.end_input(4)
    sink.close()
    res = match(list_sources(real), [parse_candidate(str(tmp_path / "cand"))], tmp_path / "out", CFG)
    paths = {f["path"]: f for f in res.failures}
    assert str(real / "broken.jpg") in paths and paths[str(real / "broken.jpg")]["set"] == "real"
    assert any(p.endswith("tiny.png") and "8x8" in f["reason"] for p, f in paths.items())
    assert any("kbad" in p and f["set"] == str(tmp_path / "cand") for p, f in paths.items())
    assert len(res.real) == 4 and res.candidates[0].images == 3


def test_a_candidate_without_usable_images_ranks_last_with_its_error(
    tmp_path: Path, real_dir: Path, real_images
):
    sink = ShardWriter(tmp_path / "junk", max_count=10)
    sink.add_sample("k0", {"lq.png": b"garbage", "hq.png": b"garbage", "json": b"{}"})
    sink.end_input(1)
    sink.close()
    own = _shards(tmp_path / "own", real_images)
    cands = [parse_candidate(str(tmp_path / "junk")), parse_candidate(str(own))]
    res = match(list_sources(real_dir), cands, tmp_path / "out", CFG)
    assert res.ranking == [str(own), str(tmp_path / "junk")]
    last = res.candidates[-1]
    assert last.distances is None and last.error == "no usable LQ image" and len(last.failures) == 1
    assert len(res.histograms) == 7


def test_errors_before_any_work(tmp_path: Path, real_dir: Path):
    src = list_sources(real_dir)
    with pytest.raises(MatchError, match="--hq"):
        match(src, [parse_candidate("preset:bsrgan")], tmp_path, CFG)
    with pytest.raises(FileNotFoundError, match="not a folder of shards"):
        match(src, [parse_candidate(str(tmp_path / "nope"))], tmp_path, CFG)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no \\*.tar shards"):
        match(src, [parse_candidate(str(tmp_path / "empty"))], tmp_path, CFG)
    with pytest.raises(MatchError, match="given twice"):
        match(src, [parse_candidate("preset:bsrgan")] * 2, tmp_path, CFG, hq_sources=src)
    with pytest.raises(MatchError, match="no candidates"):
        match(src, [], tmp_path, CFG)


# Synthesized candidates and the CLI ---------------------------------------------------------
@pytest.fixture(scope="module")
def hq_dir(tmp_path_factory) -> Path:
    return _folder(tmp_path_factory.mktemp("hq"), [c for n in NAMES[4:] for c in _crops(n, 96)[:2]])


def test_cli_presets_json_and_exit_codes(tmp_path: Path, real_dir: Path, hq_dir: Path):
    own = _shards(tmp_path / "own", [decode_image(s.path) for s in list_sources(real_dir)])
    out = tmp_path / "out"
    args = [
        "eval",
        "match",
        str(real_dir),
        "-c",
        "preset:realesrgan",
        "-c",
        "preset:bsrgan",
        "-c",
        str(own),
        "--hq",
        str(hq_dir),
        "-o",
        str(out),
        "--max-side",
        "48",
        "--scale",
        "2",
        "--json",
    ]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    assert doc["best"] == str(own) and doc["failures"] == []
    ranks = {row["label"]: row for row in doc["ranking"]}
    assert set(ranks) == {"preset:realesrgan", "preset:bsrgan", str(own)}
    assert ranks["preset:bsrgan"]["images"] == 6 and ranks["preset:bsrgan"]["overall"] > 0
    assert (out / "report.json").is_file() and (out / "hist_noise.png").is_file()
    # the rich table, without --json
    r = runner.invoke(app, args[:-1])
    assert r.exit_code == 0 and "preset:bsrgan" in r.output and "overall" in r.output


def test_cli_usage_errors_exit_2(tmp_path: Path, real_dir: Path, hq_dir: Path):
    base = ["eval", "match", str(real_dir), "-o", str(tmp_path / "o")]
    for extra, msg in (
        ([], "--candidate"),
        (["-c", "preset:bsrgan"], "--hq"),
        (["-c", "preset:nosuch", "--hq", str(hq_dir)], "nosuch"),
        (["-c", "bank:" + str(tmp_path / "none.pt"), "--hq", str(hq_dir)], "not found"),
        (["-c", "blah:x"], "unknown kind"),
    ):
        r = runner.invoke(app, [*base, *extra])
        assert r.exit_code == 2, (extra, r.output)
        assert msg in r.output, (extra, r.output)


def test_cli_bad_real_image_exits_1_naming_it(tmp_path: Path, real_images):
    real = _folder(tmp_path / "real", real_images[:3])
    (real / "zero.png").write_bytes(b"")
    own = _shards(tmp_path / "own", real_images[:3])
    r = runner.invoke(app, ["eval", "match", str(real), "-c", str(own), "-o", str(tmp_path / "o"), "--json"])
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    assert [f["path"] for f in doc["failures"]] == [str(real / "zero.png")]
    assert doc["ranking"][0]["overall"] == 0.0


def test_bank_candidate_runs_the_learned_path(tmp_path: Path, real_dir: Path, hq_dir: Path):
    pytest.importorskip("torch")
    from .test_bank import make_bank

    bank = make_bank(tmp_path / "bank")
    cfg = MatchConfig(max_side=32, max_images=3, scale=2, device="cpu")
    res = match(
        list_sources(real_dir),
        [parse_candidate(f"bank:{bank}")],
        tmp_path / "out",
        cfg,
        hq_sources=list_sources(hq_dir),
    )
    (c,) = res.candidates
    assert c.kind == "bank" and c.images == 3 and c.overall is not None and c.overall > 0
    assert not res.failures


RECIPE = """
[eval_match]
max_side = 48
scale = 2

[presets.jpeg_only]
[[presets.jpeg_only.steps]]
op = "resize"
ref = "output"
interp = "area"
[[presets.jpeg_only.steps]]
op = "jpeg"
quality = [20, 30]

[presets.noise_only]
[[presets.noise_only.steps]]
op = "resize"
ref = "output"
interp = "area"
[[presets.noise_only.steps]]
op = "gaussian_noise"
sigma = [8, 12]
"""


def test_cli_recipe_presets_rank_the_matching_one_first(tmp_path: Path, hq_dir: Path):
    # The "real" photos: other photos, downscaled x2 and saved at JPEG q25, like the jpeg_only preset.
    small = [
        cv2.resize(c, (48, 48), interpolation=cv2.INTER_AREA) for n in NAMES[:4] for c in _crops(n, 96)[:2]
    ]
    real = _folder(tmp_path / "real", [decode_image(encode_image(c, "jpg", quality=25)) for c in small])
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE)
    r = runner.invoke(
        app,
        [
            "eval",
            "match",
            str(real),
            "-c",
            "preset:noise_only",
            "-c",
            "preset:jpeg_only",
            "--hq",
            str(hq_dir),
            "-o",
            str(tmp_path / "o"),
            "-r",
            str(recipe),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    assert [row["label"] for row in doc["ranking"]] == ["preset:jpeg_only", "preset:noise_only"]
    rep = json.loads((tmp_path / "o" / "report.json").read_text())
    assert rep["config"]["max_side"] == 48 and rep["config"]["scale"] == 2  # from [eval_match]
    jpeg, noise = (row["distances"] for row in doc["ranking"])
    assert noise["noise"] > 3 * jpeg["noise"] and noise["blockiness"] > jpeg["blockiness"]
