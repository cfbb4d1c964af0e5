"""The presets built from the new ops (web, video, scan, phone, old-photo): shipped as TOML, drawing
the ops they name, and run end to end through `synthesize` and `eval match` on tiny images."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from redegkit.degrade import get_preset, list_presets, sample_degradation
from redegkit.degrade.presets import PRESET_DIR, toml_presets
from redegkit.eval.match import MatchConfig, match, parse_candidate
from redegkit.io.images import decode_image, encode_image, write_image
from redegkit.io.shards import iter_samples
from redegkit.io.sources import list_sources
from redegkit.rng import sample_rng
from redegkit.synth import SynthConfig, synthesize

from .conftest import EXAMPLES

NEW = ["web", "video", "scan", "phone", "old-photo"]
# ops each preset must draw (over 80 draws), and the codec ops whose records name their library
EXPECTED_OPS = {
    "web": {"resize", "jpeg", "webp", "avif", "sharpen", "blur"},
    "video": {"resize", "video", "interlace", "tone", "blur"},
    "scan": {"halftone", "dither", "blur", "resize", "gaussian_noise", "jpeg", "color"},
    "phone": {"camera_isp", "sharpen", "blur", "jpeg", "resize"},
    "old-photo": {"blur", "color", "tone", "salt_pepper", "speckle_noise", "gaussian_noise", "jpeg"},
}
CODEC_OPS = {"jpeg", "webp", "avif", "jpeg2000", "video"}


def test_the_new_presets_ship_as_toml_with_one_line_descriptions() -> None:
    files = toml_presets()
    assert set(files) == set(NEW) and all((PRESET_DIR / f"{n}.toml").is_file() for n in NEW)
    assert set(NEW) <= set(list_presets())
    for name in NEW:
        p = get_preset(name)
        assert p.name == name and "\n" not in p.description and 40 < len(p.description) < 250
        first = (PRESET_DIR / f"{name}.toml").read_text().splitlines()[0]
        assert first.startswith(f"# {name}:"), first


@pytest.mark.parametrize("name", NEW)
def test_each_preset_draws_its_ops(name: str) -> None:
    preset = get_preset(name)
    seen: Counter[str] = Counter()
    for i in range(80):
        d = sample_degradation(preset, sample_rng(2, name, i), scale=4)
        seen.update(o.op for o in d.ops)
        for o in d.ops:
            if o.op in CODEC_OPS:
                assert o.lib and any(ch.isdigit() for ch in o.lib)
    assert EXPECTED_OPS[name] <= set(seen), (name, seen)


def test_preset_structure_web_and_video() -> None:
    web = [sample_degradation(get_preset("web"), sample_rng(5, "w", i)) for i in range(200)]
    codec = Counter(next(o.op for o in d.ops if o.label == "codec") for d in web)
    assert abs(codec["jpeg"] / 200 - 0.55) < 0.1 and abs(codec["webp"] / 200 - 0.35) < 0.1
    subs = Counter(o.subsampling for d in web for o in d.ops if o.op == "jpeg" and o.label == "codec")
    assert subs["4:2:0"] > subs["4:4:4"] > subs["4:2:2"] > 0
    assert abs(sum(any(o.label == "reupload" for o in d.ops) for d in web) / 200 - 0.25) < 0.08
    video = [sample_degradation(get_preset("video"), sample_rng(5, "v", i)) for i in range(200)]
    codecs = Counter(o.codec for d in video for o in d.ops if o.op == "video")
    assert set(codecs) == {"h264", "hevc", "vp9", "av1", "mpeg2", "mpeg4"} and codecs["h264"] > codecs["vp9"]
    clips = [o for d in video for o in d.ops if o.op == "video"]
    assert all(len(o.shifts) == 5 and o.shifts[2] == (0.0, 0.0) for o in clips)
    assert all(o.pix_fmt == "yuv420p" for o in clips if o.codec in ("mpeg4", "av1"))
    assert 0.03 < sum(o.chroma_delay > 0 for o in clips) / 200 < 0.2
    assert 0.15 < sum(o.bpp is not None for o in clips) / 200 < 0.35


@pytest.fixture(scope="module")
def tiny_hq(tmp_path_factory) -> Path:
    """Three example photos shrunk to 96 px wide: a few 64-px crops each."""
    d = tmp_path_factory.mktemp("hq")
    for name in ("astronaut", "chelsea", "coffee"):
        img = decode_image(EXAMPLES / f"{name}.png")
        h, w = img.shape[:2]
        write_image(d / f"{name}.png", cv2.resize(img, (96, 96 * h // w), interpolation=cv2.INTER_AREA))
    return d


@pytest.mark.parametrize("name", NEW)
def test_each_preset_runs_through_synthesize(tmp_path: Path, tiny_hq: Path, name: str) -> None:
    cfg = SynthConfig(preset=name, crop=64, scale=4, seed=1, shard_max_count=4, png_level=1)
    res = synthesize(list_sources(tiny_hq), tmp_path / "out", cfg)
    assert res.samples >= 3 and not res.failures
    ops = set()
    for s in iter_samples(str(tmp_path / "out")):
        hq, lq = decode_image(s["hq.png"]), decode_image(s["lq.png"])
        assert hq.shape == (64, 64, 3) and lq.shape == (16, 16, 3)
        meta = json.loads(s["json"])
        assert meta["method"] == {**meta["method"], "kind": "preset", "preset": name}
        record = meta["method"]["params"]
        assert record["preset"] == name and record["preset_sha256"] == get_preset(name).sha256
        ops.update(o["op"] for o in record["ops"])
        assert all(o["lib"] for o in record["ops"] if o["op"] in CODEC_OPS)
    assert ops & (EXPECTED_OPS[name] - {"resize", "blur"})


def test_video_preset_gives_the_same_bytes_with_one_and_two_workers(tmp_path: Path, tiny_hq: Path) -> None:
    base = dict(preset="video", crop=64, scale=2, seed=7, shard_max_count=4, png_level=1)
    synthesize(list_sources(tiny_hq), tmp_path / "a", SynthConfig(**base, workers=1))
    synthesize(list_sources(tiny_hq), tmp_path / "b", SynthConfig(**base, workers=2))
    a = {p.name: p.read_bytes() for p in sorted((tmp_path / "a").glob("*.tar"))}
    b = {p.name: p.read_bytes() for p in sorted((tmp_path / "b").glob("*.tar"))}
    assert a and a == b


def test_new_presets_run_through_eval_match(tmp_path: Path, tiny_hq: Path) -> None:
    # the "real" photos: other images, degraded by the web preset itself (JPEG / WebP / AVIF)
    real = tmp_path / "real"
    real.mkdir()
    web = get_preset("web")
    from redegkit.degrade import apply_degradation

    for name in ("brick", "camera", "grass", "gravel", "rocket"):
        path = EXAMPLES / f"{name}.png"
        img = decode_image(path if path.exists() else EXAMPLES / f"{name}.jpg")
        img = cv2.resize(img, (128, 128), interpolation=cv2.INTER_AREA)
        for k, (y, x) in enumerate(((0, 0), (0, 64), (64, 0), (64, 64))):
            d = sample_degradation(web, sample_rng(0, name, k), scale=2)
            lq = apply_degradation(np.ascontiguousarray(img[y : y + 64, x : x + 64]), d, scale=2)
            (real / f"{name}{k}.png").write_bytes(encode_image(lq, "png"))
    cfg = MatchConfig(max_side=32, max_images=12, scale=2, bins=8)
    cands = [parse_candidate(f"preset:{n}") for n in NEW]
    res = match(list_sources(real), cands, tmp_path / "match", cfg, hq_sources=list_sources(tiny_hq))
    assert {c.label for c in res.candidates} == {f"preset:{n}" for n in NEW}
    assert all(c.images > 0 and np.isfinite(c.overall) for c in res.candidates)
    report = json.loads((tmp_path / "match" / "report.json").read_text())
    assert [c["label"] for c in report["candidates"]] == res.ranking
    assert all((tmp_path / "match").glob("hist_*.png"))
