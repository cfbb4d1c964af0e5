"""fit-degradation data: listing face pairs, the held-out split, samples, determinism, bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from redegkit.config import resolve_config
from redegkit.fit.config import DataConfig, FitConfig
from redegkit.fit.data import (
    IMAGE_KEYS,
    FacePair,
    StepBatchSampler,
    build_dataset,
    face_box,
    list_face_pairs,
    load_validation,
    make_loader,
    split_pairs,
)
from redegkit.io.sources import SourceError, list_sources

from .fit_helpers import corrupt_png, make_face_pairs, natural_paths


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory):
    return make_face_pairs(tmp_path_factory.mktemp("pairs"))


@pytest.fixture(scope="module")
def smoke() -> FitConfig:
    return resolve_config("fit", "recipes/smoke.toml")


def _dataset(pairs, cfg: FitConfig, **over):
    data = cfg.data.model_copy(update=over) if over else cfg.data
    return build_dataset(
        pairs, list_sources(natural_paths()), data, crop=cfg.crop, seed=cfg.seed, length=10_000
    )


def test_folder_and_manifest_listing_agree(tmp_path, pairs_dir):
    pairs, failures = list_face_pairs(pairs_dir)
    assert len(pairs) == 4 and failures == []
    assert all(
        p.hq.parent.name == "hq" and p.lq.parent.name == "lq" and p.hq.name == p.lq.name for p in pairs
    )
    assert all("." not in p.key for p in pairs)
    man = make_face_pairs(tmp_path / "m", manifest=True)
    by_manifest, _ = list_face_pairs(man / "pairs.jsonl")
    assert sorted(p.key for p in by_manifest) == ["astronaut0", "astronaut12", "camera0", "camera12"]
    assert list_face_pairs(man)[0] == by_manifest  # a folder with pairs.jsonl reads the manifest


def test_listing_reports_missing_counterparts(tmp_path):
    root = make_face_pairs(tmp_path / "p", manifest=True)
    (root / "lq" / "camera0.png").unlink()
    pairs, failures = list_face_pairs(root)
    assert len(pairs) == 3 and failures[0]["path"].endswith("camera0.png")
    (root / "pairs.jsonl").unlink()
    pairs, failures = list_face_pairs(root)
    assert len(pairs) == 3 and "no LQ image" in failures[0]["reason"]
    with pytest.raises(SourceError, match="hq/ and lq/"):
        list_face_pairs(tmp_path / "nowhere")


def test_split_is_deterministic_disjoint_and_stable(pairs_dir):
    pairs, _ = list_face_pairs(pairs_dir)
    train, val = split_pairs(pairs, 0.25, seed=0)
    assert len(val) >= 1 and len(train) + len(val) == len(pairs)
    assert {p.key for p in train}.isdisjoint({p.key for p in val})
    assert {p.key for p in split_pairs(pairs[::-1], 0.25, seed=0)[1]} == {p.key for p in val}  # order-free
    # with many pairs the share is about the fraction, and adding pairs never moves old ones
    many = [FacePair(f"k{i}", pairs[0].hq, pairs[0].lq) for i in range(2000)]
    t1, v1 = split_pairs(many[:1000], 0.1)
    t2, v2 = split_pairs(many, 0.1)
    assert 60 < len(v1) < 140
    assert {p.key for p in v1} == {p.key for p in v2 if int(p.key[1:]) < 1000}
    assert split_pairs(pairs, 0.0) == (pairs, [])


def test_face_box_scales_with_face_size():
    cfg = DataConfig()
    assert face_box(512, 512, cfg) == (60, 500, 60, 450)
    assert face_box(256, 256, cfg) == (30, 250, 30, 225)


def test_sample_shapes_ranges_and_matched_degradation(pairs_dir, smoke):
    pairs, _ = list_face_pairs(pairs_dir)
    ds = _dataset(pairs, smoke)
    s = ds[7]
    for k in IMAGE_KEYS:
        assert s[k].shape == (3, 64, 64) and s[k].dtype == torch.uint8
        assert s[k].float().std() > 5  # an image, not a constant
    assert s["errors"] == [] and s["index"] == 7
    # the matched LQs differ from their HQs (they were degraded) ...
    assert (s["nat_lq"].float() - s["nat_hq"].float()).abs().mean() > 1
    assert (s["face_syn_lq"].float() - s["face_hq"].float()).abs().mean() > 1
    # ... and the same params on the same image give the same LQ (one shared degradation)
    from redegkit.rng import sample_rng

    hq = s["face_hq"].permute(1, 2, 0).numpy()
    a = ds.matched_part(hq, hq, sample_rng(0, "t"))
    assert np.array_equal(a[0], a[1])


def test_samples_are_a_function_of_the_index_only(pairs_dir, smoke):
    pairs, _ = list_face_pairs(pairs_dir)
    a, b = _dataset(pairs, smoke), _dataset(pairs, smoke)
    for i in (0, 5, 123):
        sa, sb = a[i], b[i]  # fresh dataset, same index: identical
        assert all(torch.equal(sa[k], sb[k]) for k in IMAGE_KEYS)
    assert not torch.equal(a[0]["nat_hq"], a[1]["nat_hq"])


def test_loader_batches_do_not_depend_on_workers(pairs_dir, smoke):
    pairs, _ = list_face_pairs(pairs_dir)
    ds = _dataset(pairs, smoke)
    b0 = list(make_loader(ds, start=3, end=5, batch=2, workers=0))
    b2 = list(make_loader(ds, start=3, end=5, batch=2, workers=2))
    assert [b["index"] for b in b0] == [[6, 7], [8, 9]]
    for x, y in zip(b0, b2, strict=True):
        assert all(torch.equal(x[k], y[k]) for k in IMAGE_KEYS)


def test_step_sampler_gives_ranks_disjoint_slices():
    r0 = list(StepBatchSampler(2, 4, batch=3, rank=0, world=2))
    r1 = list(StepBatchSampler(2, 4, batch=3, rank=1, world=2))
    assert r0 == [[12, 13, 14], [18, 19, 20]] and r1 == [[15, 16, 17], [21, 22, 23]]


def test_corrupt_pair_is_skipped_and_reported(tmp_path, smoke):
    root = make_face_pairs(tmp_path / "p")
    bad = corrupt_png(root / "hq" / "camera0.png")
    pairs, _ = list_face_pairs(root)
    ds = _dataset(pairs, smoke)
    errors, keys = [], set()
    for i in range(8):  # two epochs: the bad pair is drawn at least twice
        s = ds[i]
        errors += s["errors"]
        keys.add(s["key"])
        assert s["face_hq"].shape == (3, 64, 64)
    assert {e["path"] for e in errors} == {str(bad)}
    assert not any(k.startswith("camera0") for k in keys)


def test_synthetic_variants_replace_the_real_lq(pairs_dir, smoke):
    pairs, _ = list_face_pairs(pairs_dir)
    never = _dataset(pairs, smoke, syn_from_hq_p=0.0, syn_from_lq_p=0.0)
    always = _dataset(pairs, smoke, syn_from_hq_p=1.0, syn_from_lq_p=0.0)
    a, b = never[3], always[3]
    assert torch.equal(a["face_hq"], b["face_hq"])  # the crop is drawn before the variant
    assert not torch.equal(a["face_lq"], b["face_lq"])


def test_validation_images_are_deterministic_center_crops(pairs_dir, smoke):
    pairs, _ = list_face_pairs(pairs_dir)
    v1, f1 = load_validation(pairs[:2], list_sources(natural_paths()), smoke.data, 64)
    v2, _ = load_validation(pairs[:2], list_sources(natural_paths()), smoke.data, 64)
    assert f1 == [] and v1["face_hq"].shape == (2, 64, 64, 3) and v1["nat_hq"].shape == (2, 64, 64, 3)
    assert all(np.array_equal(v1[k], v2[k]) for k in ("face_hq", "face_lq", "nat_hq"))


def test_manifest_records_are_json_with_keys(tmp_path):
    root = make_face_pairs(tmp_path / "p", manifest=True)
    with (root / "pairs.jsonl").open("a") as f:
        f.write("{not json\n" + json.dumps({"nokey": 1}) + "\n")
    pairs, failures = list_face_pairs(root)
    assert (
        len(pairs) == 4 and len(failures) == 2 and all("bad manifest record" in x["reason"] for x in failures)
    )


def test_face_rescale_false_keeps_the_pairs_own_pixels(pairs_dir, smoke):
    """With face_rescale = false every face crop is an exact window of the (boxed) pair, possibly
    flipped, so its noise grain and 8x8 JPEG grid reach the networks untouched; with the spec's
    rescale it is (almost always) resampled."""
    from redegkit.io.images import decode_image

    pairs, _ = list_face_pairs(pairs_dir)
    keep = _dataset(pairs, smoke, face_rescale=False, syn_from_hq_p=0.0, syn_from_lq_p=0.0, gray_p=0.0)
    spec = _dataset(pairs, smoke, syn_from_hq_p=0.0, syn_from_lq_p=0.0, gray_p=0.0)

    def is_window(crop: np.ndarray, full: np.ndarray) -> bool:
        import cv2

        for c in (crop, crop[:, ::-1], crop[::-1], crop[::-1, ::-1]):
            res = cv2.matchTemplate(full, np.ascontiguousarray(c), cv2.TM_SQDIFF)
            if res.min() < 0.5:  # sum of squared differences; DFT round-off stays far below 1 grey level
                return True
        return False

    for i in range(3):
        s = keep[i]
        pair = next(p for p in pairs if p.key == s["key"])
        t, b, left, r = face_box(*decode_image(pair.hq).shape[:2], smoke.data)
        lq_full = decode_image(pair.lq)[t:b, left:r]
        assert is_window(s["face_lq"].permute(1, 2, 0).numpy(), lq_full)
    assert not all(
        is_window(
            spec[i]["face_lq"].permute(1, 2, 0).numpy(),
            decode_image(next(p for p in pairs if p.key == spec[i]["key"]).lq),
        )
        for i in range(3)
    )
