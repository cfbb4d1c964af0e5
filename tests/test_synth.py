"""`synthesize` with classical presets: shards, determinism, odd inputs, kill-and-resume."""

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from redegkit.cli import app
from redegkit.io.images import decode_image
from redegkit.io.shards import iter_samples, paired_dataset
from redegkit.io.sources import list_sources
from redegkit.synth import SynthConfig, crop_boxes, synthesize

from .conftest import EXAMPLES, make_odd_files

runner = CliRunner()


@pytest.fixture(scope="module")
def small_hq(tmp_path_factory):
    """Four example images shrunk to ~1/4, so that each gives a few 64-px patches quickly."""
    import cv2

    d = tmp_path_factory.mktemp("hq")
    for name in ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"]:
        img = cv2.imread(str(EXAMPLES / name))
        small = cv2.resize(img, (img.shape[1] // 4, img.shape[0] // 4), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(d / (name.split(".")[0] + ".png")), small)
    return d


def _cfg(**kw):
    base = dict(preset="realesrgan", crop=64, scale=4, seed=3, shard_max_count=5, png_level=1)
    base.update(kw)
    return SynthConfig(**base)


def _digest(out):
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.tar"))}


def test_crop_boxes_cover_image():
    boxes = crop_boxes(100, 130, 64, None, 4)
    assert boxes[0] == (0, 0, 64, 64) and (130 - 64, 100 - 64, 64, 64) in boxes
    assert len(boxes) == 6  # 3 columns (0, 64, 66) x 2 rows (0, 36)
    assert crop_boxes(50, 60, 64, None, 4) == []
    assert crop_boxes(50, 62, None, None, 4) == [(0, 0, 60, 48)]
    assert len(crop_boxes(512, 512, 64, 32, 4, max_patches=5)) == 5


@pytest.mark.parametrize("preset", ["realesrgan", "bsrgan"])
def test_presets_write_aligned_pairs_with_provenance(tmp_path, small_hq, preset):
    srcs = list_sources(small_hq)
    res = synthesize(srcs, tmp_path, _cfg(preset=preset))
    assert res.samples > 8 and not res.failures
    seen = 0
    for s in iter_samples(str(tmp_path)):
        hq, lq = decode_image(s["hq.png"]), decode_image(s["lq.png"])
        assert hq.shape == (64, 64, 3) and lq.shape == (16, 16, 3)
        meta = json.loads(s["json"])
        assert "." not in s["__key__"] and meta["key"] == s["__key__"]
        assert meta["method"]["preset"] == preset and meta["scale"] == 4 and meta["seed"] == 3
        assert meta["method"]["params"] and meta["source"].endswith(".png")
        x, y, w, h = meta["crop_box"]
        src = decode_image(small_hq / meta["source"])
        assert np.array_equal(src[y : y + h, x : x + w], hq)
        seen += 1
    assert seen == res.samples
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["samples"] == res.samples and report["shards"] == res.shards


def test_byte_identical_with_one_two_and_three_workers(tmp_path, small_hq):
    srcs = list_sources(small_hq)
    synthesize(srcs, tmp_path / "a", _cfg(workers=1))
    synthesize(srcs, tmp_path / "b", _cfg(workers=2))
    synthesize(srcs, tmp_path / "b3", _cfg(workers=3))
    a, b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert a and a == b == _digest(tmp_path / "b3")
    synthesize(srcs, tmp_path / "c", _cfg(seed=4))
    assert _digest(tmp_path / "c") != a


def test_kill_and_resume_no_duplicates_no_missing(tmp_path, small_hq):
    srcs = list_sources(small_hq)
    full = tmp_path / "full"
    synthesize(srcs, full, _cfg())
    out = tmp_path / "resumed"
    calls = {"n": 0}

    def dying_progress(n=1, **kw):
        calls["n"] += 1
        if calls["n"] == 3:  # die after the third image, mid-shard
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        synthesize(srcs, out, _cfg(), progress=dying_progress)
    assert len(list(out.glob("*.tar"))) < len(list(full.glob("*.tar")))
    with pytest.raises(FileExistsError, match="--resume"):
        synthesize(srcs, out, _cfg())
    with pytest.raises(FileExistsError, match="other options"):
        synthesize(srcs, out, _cfg(seed=99), resume=True)
    res = synthesize(srcs, out, _cfg(), resume=True)
    assert res.resumed_from_input > 0
    keys = [s["__key__"] for s in iter_samples(str(out))]
    assert len(keys) == len(set(keys))
    assert keys == [s["__key__"] for s in iter_samples(str(full))]
    assert _digest(out) == _digest(full)


def test_odd_folder_finishes_with_failures_listed(tmp_path):
    folder = tmp_path / "odd"
    files = make_odd_files(folder, size=96)
    res = synthesize(list_sources(folder), tmp_path / "out", _cfg(crop=64))
    failed = {f["path"].split("/")[-1] for f in res.failures}
    assert failed == {"truncated.jpg", "truncated.png", "empty.jpg", "not_an_image.png", "corrupt.jpg"}
    assert {s["path"].split("/")[-1] for s in res.skipped} == {"tiny.png"}
    written = {json.loads(s["json"])["source"] for s in iter_samples(str(tmp_path / "out"))}
    assert written == set(files) - failed - {"tiny.png"}
    # pad policy keeps the tiny image
    res2 = synthesize(list_sources(folder), tmp_path / "out2", _cfg(crop=64, small="pad"))
    assert not res2.skipped


def test_cli_synthesize_json_exit_codes_and_stdin(tmp_path, small_hq):
    out = tmp_path / "cli"
    r = runner.invoke(
        app,
        ["synthesize", str(small_hq), str(out), "--preset", "bsrgan", "--crop", "64", "--json", "--quiet"],
    )
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["samples"] > 0 and summary["failed"] == 0
    # stdin list, one corrupt file -> exit 1 with the failure listed
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    paths = "\n".join([str(p) for p in sorted(small_hq.iterdir())][:1] + [str(bad)])
    r = runner.invoke(
        app, ["synthesize", "-", str(tmp_path / "cli2"), "--crop", "64", "--json", "-q"], input=paths
    )
    assert r.exit_code == 1, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["failed"] == 1 and "bad.jpg" in summary["failures"][0]["path"]
    # usage errors -> 2
    r = runner.invoke(app, ["synthesize", str(small_hq), str(tmp_path / "x"), "--preset", "nope"])
    assert r.exit_code == 2 and "nope" in r.output
    r = runner.invoke(app, ["synthesize", str(tmp_path / "missing"), str(tmp_path / "y")])
    assert r.exit_code == 2
    r = runner.invoke(app, ["shards", "info", str(out), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["samples"] == summary_samples(out)
    r = runner.invoke(app, ["shards", "preview", str(out), "-o", str(tmp_path / "sheet.png"), "--n", "3"])
    assert r.exit_code == 0 and decode_image(tmp_path / "sheet.png").shape[0] > 100


def summary_samples(out):
    return sum(1 for _ in iter_samples(str(out)))


def test_recipe_with_user_preset_and_overrides(tmp_path, small_hq):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[synthesize]\npreset = "mine"\ncrop = 64\nscale = 2\n\n[presets.mine]\n' + USER_PRESET)
    r = runner.invoke(app, ["config", "show", "--recipe", str(recipe), "--section", "synthesize"])
    assert r.exit_code == 0 and json.loads(r.stdout)["synthesize"]["scale"] == 2
    r = runner.invoke(
        app,
        ["synthesize", str(small_hq), str(tmp_path / "o"), "-r", str(recipe), "--scale", "4", "--json", "-q"],
    )
    assert r.exit_code == 0, r.output
    s = next(iter_samples(str(tmp_path / "o")))
    meta = json.loads(s["json"])
    assert meta["scale"] == 4 and meta["method"]["preset"] == "mine"  # flag overrides the recipe
    bad = tmp_path / "bad.toml"
    bad.write_text("[synthesize]\ncrpo = 64\n")
    r = runner.invoke(app, ["synthesize", str(small_hq), str(tmp_path / "o2"), "-r", str(bad)])
    assert r.exit_code == 2 and "crpo" in r.output


def test_paired_dataset_reads_synth_output(tmp_path, small_hq):
    synthesize(list_sources(small_hq), tmp_path, _cfg())
    lq, hq = next(iter(paired_dataset(str(tmp_path), crop=32, scale=4, split_by_node=False)))
    assert lq.shape == (3, 8, 8) and hq.shape == (3, 32, 32)


USER_PRESET = """description = "mild blur, downscale, JPEG"
steps = [
  { op = "blur", kernel = "iso", size = [7, 15], sigma = [0.2, 1.5], p = 0.8 },
  { op = "resize", ref = "output", interp = ["bilinear", "bicubic"] },
  { op = "jpeg", quality = [60, 95] },
]
"""


def test_schema_lists_sections():
    r = runner.invoke(app, ["config", "schema"])
    assert r.exit_code == 0
    assert "synthesize" in json.loads(r.stdout)["properties"]


del shutil


def test_quiet_still_prints_errors(tmp_path):
    r = runner.invoke(app, ["synthesize", str(tmp_path / "missing"), str(tmp_path / "y"), "--quiet"])
    assert r.exit_code == 2 and "missing" in r.output and "error" in r.output


def test_torchrun_ranks_split_inputs_and_write_their_own_shards(tmp_path, small_hq):
    srcs = list_sources(small_hq)
    single = synthesize(srcs, tmp_path / "one", _cfg())
    keys_one = [s["__key__"] for s in iter_samples(str(tmp_path / "one"))]
    out = tmp_path / "two"
    r0 = synthesize(srcs, out, _cfg(), rank=0, world=2)
    r1 = synthesize(srcs, out, _cfg(), rank=1, world=2)  # the folder is shared: each rank sees its own shards
    assert r0.inputs + r1.inputs == len(srcs)
    names = sorted(p.name for p in out.glob("*.tar"))
    assert names and all(n.startswith(("shard-r000-", "shard-r001-")) for n in names)
    assert (out / "report-r000.json").is_file() and (out / "report-r001.json").is_file()
    k0 = [s["__key__"] for s in iter_samples(sorted(str(p) for p in out.glob("shard-r000-*.tar")))]
    k1 = [s["__key__"] for s in iter_samples(sorted(str(p) for p in out.glob("shard-r001-*.tar")))]
    assert not set(k0) & set(k1) and sorted(k0 + k1) == sorted(keys_one) and single.samples == len(keys_one)


def test_cli_run_that_writes_nothing_exits_1_and_names_the_fix(tmp_path):
    # A new user's first try: 400x400 photos and the default 512 crop.
    import cv2

    from .conftest import gradient_rgb

    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), gradient_rgb(400, 400))
    cv2.imwrite(str(photos / "b.png"), gradient_rgb(64, 200))  # wide enough for nothing either
    r = runner.invoke(app, ["synthesize", str(photos), str(tmp_path / "out"), "--json"])
    assert r.exit_code == 1, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["samples"] == 0 and summary["skipped"] == 2
    assert "nothing was written" in summary["error"] and "--crop 400" in summary["error"]
    assert "--small pad" in r.output and "warning:" in r.output and "2 input(s) skipped" in r.output
    # Some written, one skipped: exit 0, but the skip is a warning line.
    r = runner.invoke(app, ["synthesize", str(photos), str(tmp_path / "out2"), "--crop", "256"])
    assert r.exit_code == 0, r.output
    assert "warning:" in r.output and "1 input(s) skipped" in r.output and "--crop 64" in r.output


def test_fixed_shard_plan_holds_n_inputs_per_shard_even_when_empty(tmp_path, small_hq):
    """--shard-inputs N: shard k = inputs [kN, (k+1)N), whatever their sample counts; a row whose
    inputs all fail is an empty tar with its marker, so shard k stays a function of row k."""
    import shutil
    import tarfile

    hq = tmp_path / "hq"
    shutil.copytree(small_hq, hq)
    (hq / "zz1.png").write_bytes(b"not an image")
    (hq / "zz2.png").write_bytes(b"")
    srcs = list_sources(hq)
    res = synthesize(srcs, tmp_path / "out", _cfg(shard_inputs=2, shard_max_count=1))
    assert len(res.shards) == 3 and len(res.failures) == 2
    markers = [json.loads((tmp_path / "out" / (n + ".json")).read_text()) for n in res.shards]
    assert [m["inputs"] for m in markers] == [[0, 2], [2, 4], [4, 6]]
    assert markers[2]["count"] == 0 and len(markers[2]["failures"]) == 2
    with tarfile.open(tmp_path / "out" / res.shards[2]) as t:
        assert t.getmembers() == []
