"""The degradation bank: baking, the file format and its errors, clustering, merge/filter, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from redegkit.bank import (
    BakeConfig,
    BankError,
    bake,
    bank_info,
    build_synthesizer,
    cluster_embeddings,
    filter_bank,
    list_pairs,
    load_bank,
    merge_banks,
    save_bank,
)
from redegkit.cli import app
from redegkit.models.redeg import DegNet, SynNetEncoder, SynNetGenerator

from .fit_helpers import corrupt_png, make_face_pairs

TINY = {"size": 64, "width": 1 / 16}


def tiny_nets(seed: int = 0, style_dim: int = 32) -> tuple[DegNet, SynNetEncoder, SynNetGenerator]:
    """Random 1/16-wide networks at size 64. The generator's noise-injection weights (0 at init)
    are set to 0.5 so the content reaches the output, as it does after training."""
    torch.manual_seed(seed)
    d = DegNet(style_dim=style_dim, **TINY).eval()
    e = SynNetEncoder(**TINY).eval()
    g = SynNetGenerator(style_dim=style_dim, n_mlp=2, **TINY).eval()
    with torch.no_grad():
        for m in g.modules():
            if type(m).__name__ == "NoiseInjection":
                m.weight.fill_(0.5)
    return d, e, g


def make_bank(root: Path, *, each: bool = False, crops: int = 2, seed: int = 0, noise: float = 0.0) -> Path:
    """Face pairs under ``root/pairs`` baked with tiny random nets into ``root/emb.pt`` (``noise``:
    the LQs' noise std before their JPEG, so that the bank's calibration has a noise spectrum)."""
    pairs = make_face_pairs(root / "pairs", size=128, manifest=True, noise=noise)
    d, e, g = tiny_nets(seed)
    res = bake(str(pairs), d, e, g, BakeConfig(crops=crops, each=each, face_box=None, device="cpu"))
    return save_bank(root / "emb.pt", res.bank)


@pytest.fixture(scope="module")
def bank_path(tmp_path_factory) -> Path:
    return make_bank(tmp_path_factory.mktemp("bank"))


# ------------------------------------------------------------------------------------------------
# Baking and the file


def test_bake_round_trip(tmp_path: Path) -> None:
    pairs = make_face_pairs(tmp_path / "pairs", size=128, manifest=True)
    d, e, g = tiny_nets()
    cfg = BakeConfig(crops=3, face_box=None, device="cpu")
    res = bake(str(pairs), d, e, g, cfg)
    assert res.pairs == 4 and not res.failures and len(res.bank) == 4 and res.bank.dim == 32
    p = save_bank(tmp_path / "emb.pt", res.bank)
    raw = torch.load(p, weights_only=True)  # the documented way to read it
    assert raw["format"] == "redegkit.bank" and raw["version"] == 2
    assert set(raw["calibration"]) == {"filter", "color", "noise_cov", "noise_corr", "noise_psd", "jpeg"}
    b = load_bank(p)
    assert all(torch.equal(b.calibration[k], res.bank.calibration[k]) for k in raw["calibration"])
    # a bank baked before noise_psd loads with it all zero (its noise: covariance and radius)
    older = {**raw, "calibration": {k: v for k, v in raw["calibration"].items() if k != "noise_psd"}}
    torch.save(older, tmp_path / "before-psd.pt")
    cal = load_bank(tmp_path / "before-psd.pt").calibration
    assert cal is not None and cal["noise_psd"].shape == (4, 8, 3, 3) and not cal["noise_psd"].any()
    # a version-1 file (no calibration) still loads, and then synthesizes uncalibrated
    old = {k: v for k, v in raw.items() if k != "calibration"}
    torch.save({**old, "version": 1}, tmp_path / "v1.pt")
    assert load_bank(tmp_path / "v1.pt").calibration is None
    assert torch.equal(b.embeddings, res.bank.embeddings) and torch.equal(b.identity, res.bank.identity)
    assert b.records == res.bank.records and torch.equal(b.weights, torch.ones(4))
    assert b.degnet_sha256 == res.bank.degnet_sha256 and len(b.sha256) == 64
    r = b.records[0]
    assert r["pair"] == "astronaut0" and r["source"] == "examples/astronaut0.png"
    assert len(r["crop_boxes"]) == 3 and all(box[2:] == [64, 64] for box in r["crop_boxes"])
    # The stored synthesizer computes what the original networks compute.
    enc, gen = build_synthesizer(b)
    x, z = torch.rand(1, 3, 64, 64) * 2 - 1, b.embeddings[:1]
    with torch.no_grad():
        assert torch.allclose(gen(z, enc(x)), g(z, e(x)), atol=1e-6)
    # Crops are seeded by the pair key: baking again gives the same bank; each-mode crops average to it.
    again = bake(str(pairs), d, e, g, cfg)
    assert torch.equal(again.bank.embeddings, res.bank.embeddings)
    each = bake(str(pairs), d, e, g, cfg.model_copy(update={"each": True}))
    assert len(each.bank) == 12 and each.bank.records[1]["key"] == "astronaut0_c01"
    assert torch.allclose(each.bank.embeddings.reshape(4, 3, -1).mean(1), res.bank.embeddings, atol=1e-6)


def test_bake_skips_corrupt_pair_and_reads_folders(tmp_path: Path) -> None:
    pairs = make_face_pairs(tmp_path / "pairs", size=64)  # hq/ + lq/ only, no manifest
    corrupt_png(pairs / "hq" / "camera0.png")
    refs, fails = list_pairs(pairs)
    assert len(refs) == 4 and not fails
    res = bake(refs, *tiny_nets(), BakeConfig(crops=1, device="cpu"))
    assert res.pairs == 3 and len(res.bank) == 3
    assert len(res.failures) == 1 and "camera0" in res.failures[0]["path"]
    # the default face box (rows 60:500, cols 60:450 of 512) leaves < 64 px of a 64 face: it is
    # upscaled to DegNet's size, and both are recorded
    r = res.bank.records[0]
    assert r["region"] == [8, 8, 48, 54] and r["region_resize"] == pytest.approx(64 / 48, abs=1e-4)


def test_corrupt_bank_is_a_clear_error_and_never_runs_code(tmp_path: Path, bank_path: Path) -> None:
    data = bank_path.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(BankError, match="not a readable bank"):
        load_bank(tmp_path / "trunc.pt")
    (tmp_path / "noise.pt").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(BankError, match="not a readable bank"):
        load_bank(tmp_path / "noise.pt")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"format": "redegkit.bank", "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(BankError):
        load_bank(tmp_path / "evil.pt")
    assert not marker.exists()
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(BankError, match="not a redegkit bank"):
        load_bank(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_bank(tmp_path / "missing.pt")


def test_newer_version_and_width_mismatch(tmp_path: Path, bank_path: Path) -> None:
    raw = torch.load(bank_path, weights_only=True)
    torch.save({**raw, "version": 99}, tmp_path / "new.pt")
    with pytest.raises(BankError, match="newer"):
        load_bank(tmp_path / "new.pt")
    # embeddings of another width than the generator takes
    torch.save(
        {**raw, "embeddings": torch.zeros(len(raw["records"]), 16), "identity": torch.zeros(16)},
        tmp_path / "wide.pt",
    )
    with pytest.raises(BankError, match="32-d embeddings but the bank holds 16-d"):
        load_bank(tmp_path / "wide.pt")
    torch.save({**raw, "records": raw["records"][:1]}, tmp_path / "records.pt")
    with pytest.raises(BankError, match="records"):
        load_bank(tmp_path / "records.pt")


# ------------------------------------------------------------------------------------------------
# Structure, merge, filter


def test_clustering_finds_k_and_is_deterministic() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, (3, 16))
    x = np.concatenate([c + rng.normal(0, 0.3, (12, 16)) for c in centres]).astype(np.float32)
    a, b = cluster_embeddings(x), cluster_embeddings(x)
    assert a.k == 3 and np.array_equal(a.labels, b.labels)
    for j in range(3):  # each true blob is one cluster
        assert len(set(a.labels[j * 12 : (j + 1) * 12].tolist())) == 1
    assert sorted(np.bincount(a.labels).tolist()) == [12, 12, 12]
    blob = rng.normal(0, 1, (40, 16)).astype(np.float32)  # one Gaussian: no structure
    assert cluster_embeddings(blob).k == 1


def test_matmul_distances_equal_the_direct_formulas() -> None:
    from redegkit.bank.cluster import nearest_neighbour_distances, silhouette

    rng = np.random.default_rng(1)
    x = (rng.normal(5, 1, (60, 24)) + rng.integers(0, 3, (60, 1)) * 4).astype(np.float32)
    labels = rng.integers(0, 3, 60)
    d = np.sqrt(((x[:, None].astype(np.float64) - x[None]) ** 2).sum(-1))  # the O(N^2 D) way, small N
    a = np.array([d[i, (labels == labels[i]) & (np.arange(60) != i)].mean() for i in range(60)])
    b = np.array([min(d[i, labels == k].mean() for k in range(3) if k != labels[i]) for i in range(60)])
    assert silhouette(x, labels) == pytest.approx(float(((b - a) / np.maximum(a, b)).mean()), abs=1e-9)
    np.fill_diagonal(d, np.inf)
    assert np.allclose(nearest_neighbour_distances(x), d.min(1), atol=1e-6)
    assert np.allclose(nearest_neighbour_distances(x, np.array([3, 7])), d.min(1)[[3, 7]], atol=1e-6)


def test_clustering_a_large_bank_stays_small_in_memory() -> None:
    # 3,000 x 512: the pairwise-difference version needed 2000^2 x 512 x 8 B = 16 GB per array here.
    import tracemalloc

    from redegkit.bank.store import Bank, pack_module

    rng = np.random.default_rng(0)
    n, dim = 3000, 512
    truth = rng.integers(0, 3, n)
    e = rng.normal(0, 4, (3, dim))[truth] + rng.normal(0, 1, (n, dim))
    _, enc, gen = tiny_nets(style_dim=dim)
    bank = Bank(
        embeddings=torch.from_numpy(e.astype(np.float32)),
        identity=torch.zeros(dim),
        records=[{"pair": f"p{i}", "source": f"photo{i // 2}.jpg"} for i in range(n)],
        synthesizer={"encoder": pack_module(enc), "generator": pack_module(gen)},
        degnet_sha256="0" * 64,
    )
    tracemalloc.start()
    try:
        info = bank_info(bank)  # clusters (k-means for k = 2..8, sampled silhouette) and nearest neighbours
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    assert info["clusters"]["k"] == 3 and sorted(info["clusters"]["sizes"]) == sorted(
        np.bincount(truth).tolist()
    )
    assert info["nearest_neighbour"]["sampled"] == 2000 and info["nearest_neighbour"]["near_duplicates"] == 0
    kept = filter_bank(bank, clusters=[0])  # the same (cached) clustering
    assert (
        len(kept) == info["clusters"]["sizes"][0]
        and len({truth[int(r["pair"][1:])] for r in kept.records}) == 1
    )


def test_info_merge_filter(tmp_path: Path, bank_path: Path) -> None:
    b = load_bank(bank_path)
    info = bank_info(b)
    assert info["embeddings"] == 4 and info["dim"] == 32 and info["pairs"] == 4
    assert info["clusters"]["k"] >= 1 and sum(info["clusters"]["sizes"]) == 4
    assert set(info["calibration"]) >= {
        "noise_std_grey_levels",
        "noise_top_band_share",
        "jpeg_quality",
        "hq_filter_gain",
    }
    json.dumps(info)  # plain data
    m = merge_banks([b, load_bank(bank_path)])
    assert (
        len(m) == 8 and torch.equal(m.embeddings[4:], b.embeddings) and m.records[4]["bank"] == str(bank_path)
    )
    assert all(torch.equal(m.calibration[k][4:], b.calibration[k]) for k in b.calibration)  # merged along
    assert all(torch.equal(m.subset([5]).calibration[k][0], b.calibration[k][1]) for k in b.calibration)
    other = make_bank(tmp_path / "other", seed=1)  # other random networks
    with pytest.raises(BankError, match="different synthesizer and DegNet"):
        merge_banks([b, load_bank(other)])
    forced = merge_banks([b, load_bank(other)], force=True)
    assert forced.synthesizer_sha256 == b.synthesizer_sha256 and forced.meta["merge_forced"]
    f = filter_bank(m, sources=["*astronaut*"])
    assert len(f) == 4 and all("astronaut" in r["source"] for r in f.records)
    assert len(filter_bank(m, exclude_sources=["*astronaut*"])) == 4
    assert len(filter_bank(m, clusters=[0])) == bank_info(m)["clusters"]["sizes"][0]
    with pytest.raises(BankError, match="no embedding"):
        filter_bank(m, keys=["nope*"])


# ------------------------------------------------------------------------------------------------
# CLI


def _official_dir(root: Path) -> Path:
    """Tiny networks saved the way the authors publish theirs: {'params': state_dict}."""
    d, e, g = tiny_nets()
    root.mkdir(parents=True)
    for net, name in ((d, "net_deg_init"), (e, "net_synE_init"), (g, "net_synG_init")):
        torch.save({"params": net.state_dict()}, root / f"{name}.pth")
    return root


def test_cli_bake_info_preview_merge_filter(tmp_path: Path) -> None:
    runner = CliRunner()
    pairs = make_face_pairs(tmp_path / "pairs", size=128, manifest=True)
    official = _official_dir(tmp_path / "official")
    emb = tmp_path / "emb.pt"
    r = runner.invoke(
        app,
        [
            "bake",
            "--from-official",
            str(official),
            "--pairs",
            str(pairs),
            "-o",
            str(emb),
            "--crops",
            "2",
            "--each",
            "--device",
            "cpu",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["embeddings"] == 8 and out["dim"] == 32 and "CC BY-NC-SA 4.0" in out["licence"]
    b = load_bank(emb)
    assert b.degnet_sha256 == out["degnet_sha256"] and "CC BY-NC-SA" in b.meta["licence"]

    r = runner.invoke(app, ["bank", "info", str(emb), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["embeddings"] == 8
    r = runner.invoke(app, ["bank", "info", str(emb)])
    assert r.exit_code == 0 and "clusters" in r.output

    sheet = tmp_path / "sheet.png"
    r = runner.invoke(
        app,
        [
            "bank",
            "preview",
            str(emb),
            "--image",
            "examples/chelsea.png",
            "-o",
            str(sheet),
            "--n",
            "3",
            "--size",
            "64",
            "--device",
            "cpu",
        ],
    )
    assert r.exit_code == 0, r.output
    from redegkit.io.images import decode_image

    # chelsea (451x300) shrunk to 64x43, enlarged 5x (nearest) to a short side >= 192: 320x215 tiles,
    # an 18-px caption under each. Row 1: HQ | generator identity reconstruction; then per embedding
    # (3): generator only | + calibration
    img = decode_image(sheet)
    assert img.shape[1] == 2 * 320 + 3 * 4 and img.shape[0] == 4 * (215 + 18) + 5 * 4

    merged = tmp_path / "merged.pt"
    r = runner.invoke(
        app, ["bank", "merge", str(emb), str(emb), "-o", str(merged), "--weights", "1,3", "--json"]
    )
    assert r.exit_code == 0, r.output
    m = load_bank(merged)
    assert len(m) == 16 and m.weights.tolist() == [1.0] * 8 + [3.0] * 8

    kept = tmp_path / "kept.pt"
    r = runner.invoke(app, ["bank", "filter", str(merged), "-o", str(kept), "--key", "camera*", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["embeddings"] == 8

    (tmp_path / "bad.pt").write_bytes(b"not a bank")
    r = runner.invoke(app, ["bank", "info", str(tmp_path / "bad.pt")])
    assert r.exit_code == 2 and "not a readable bank" in r.output
    r = runner.invoke(app, ["bake", "--from-official", str(tmp_path), "--pairs", str(pairs), "-o", str(emb)])
    assert r.exit_code == 2 and "net_deg_init" in r.output  # the missing official file is named


def test_preview_tiles_say_what_they_show(bank_path: Path) -> None:
    """bank preview: the identity tile is the generator's reconstruction (not the HQ); each
    embedding's "+ calibration" tile is its generator output through the bank's calibration: equal
    to it under an identity calibration, blocky under a JPEG q10 one; without calibration there is
    no such tile; a cluster centre borrows its nearest member's calibration."""
    from dataclasses import replace

    from redegkit.bank.calibrate import identity_calibration
    from redegkit.bank.cluster import cluster_bank
    from redegkit.bank.preview import PreviewRenderer, preview_entries, render_preview
    from redegkit.io.images import decode_image
    from redegkit.metrics.stats import blockiness

    bank = load_bank(bank_path)
    img = decode_image("examples/chelsea.png")
    r = PreviewRenderer(bank, img, device="cpu", size=64)
    assert max(r.image.shape[:2]) == 64 and not np.array_equal(r.identity(), r.image)
    entries = preview_entries(bank, 3, centres=False)  # evenly spaced through the 4 embeddings
    assert [e.calibration_index for e in entries] == [0, 2, 3] and entries[0].label.startswith("#0 ")

    flat = replace(bank, calibration=identity_calibration(len(bank)))
    raw, cal = PreviewRenderer(flat, img, device="cpu", size=64).entry(preview_entries(flat, 1, False)[0])
    assert cal is not None and np.array_equal(raw, cal)
    # an identity colour map takes the low frequencies from the HQ (the tiny generator's output is
    # nearly flat grey), then JPEG q10 adds 8x8 blocks
    colour = identity_calibration(len(bank))
    colour["color"][:, :, :3] = torch.eye(3)
    r = PreviewRenderer(replace(bank, calibration=colour), img, device="cpu", size=64)
    raw, cal = r.entry(entries[0])
    assert cal is not None
    err = [float(np.abs(x.astype(float) - r.image).mean()) for x in (raw, cal)]
    assert err[1] < err[0] - 10, err
    colour["jpeg"][:] = 10
    _, blocky = PreviewRenderer(replace(bank, calibration=colour), img, device="cpu", size=64).entry(
        entries[0]
    )
    assert blocky is not None and blockiness(blocky) > blockiness(cal) + 0.05

    bare = replace(bank, calibration=None)
    assert all(e.calibration_index is None for e in preview_entries(bare, 3, False))
    sheet = render_preview(bare, img, n=3, size=64, device="cpu")
    assert sheet.shape[1] == 2 * 320 + 3 * 4  # rows of one tile (and HQ | identity on top): 2 columns
    with_cal = render_preview(bank, img, n=3, size=64, device="cpu")
    assert with_cal.shape == sheet.shape  # the same 2 columns; every row full now

    cl = cluster_bank(bank)
    for c, e in enumerate(preview_entries(bank, 0, centres=True)):
        members = np.flatnonzero(cl.labels == c)
        d = np.linalg.norm(bank.embeddings.numpy()[members] - cl.centres[c], axis=1)
        assert e.calibration_index == int(members[np.argmin(d)]) and e.label.startswith(f"cluster {c} (n=")
