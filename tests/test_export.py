"""redeg export (folders, BasicSR LMDB, Parquet), redeg shards pack, and shard JSON format 2."""

from __future__ import annotations

import json
import tarfile

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from redegkit.cli import app
from redegkit.io.export import DONE_MARKER, STAGING, ExportOptions, export_shards, lmdb_key, shard_urls
from redegkit.io.images import decode_image, encode_image
from redegkit.io.shards import SHARD_FORMAT, ShardWriter, iter_samples, paired_dataset
from redegkit.io.sources import list_sources
from redegkit.rng import sample_seed, seed_from_json
from redegkit.synth import SynthConfig, synthesize

from .conftest import gradient_rgb

runner = CliRunner()
ODD_KEYS = ["plain_0", "with space 1", "café_ünïcode_2", "日本_3"]


def _sample(i: int, scale: int = 2, size: int = 16) -> dict[str, bytes]:
    hq = gradient_rgb(size, size, seed=i)
    lq = np.ascontiguousarray(hq[::scale, ::scale])
    meta = {
        "key": ODD_KEYS[i % 4],
        "i": i,
        "scale": scale,
        "sample_seed": str(2**64 - 1 - i),
        "shard_format": 2,
    }
    return {"hq.png": encode_image(hq), "lq.png": encode_image(lq), "json": json.dumps(meta).encode()}


@pytest.fixture()
def tiny_shards(tmp_path):
    """Two shards, four samples, keys with spaces and unicode."""
    out = tmp_path / "shards"
    sink = ShardWriter(out, max_count=2)
    for i, key in enumerate(ODD_KEYS):
        sink.add_sample(key, _sample(i))
        sink.end_input(i + 1)
    sink.close()
    return out


def _shard_samples(folder):
    return {s["__key__"]: s for s in iter_samples(str(folder))}


def _export(tiny_shards, out, **kw):
    return export_shards(shard_urls([str(tiny_shards)]), out, ExportOptions(**kw))


def test_folders_round_trip_bytes_and_provenance(tiny_shards, tmp_path):
    ref = _shard_samples(tiny_shards)
    res = _export(tiny_shards, tmp_path / "f", format="folders", hq_dir="H", lq_dir="L")
    assert res.samples == 4 and not res.failures and res.scales == {2: 4}
    out = tmp_path / "f"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["H", "L", "meta.jsonl", "dataset.yml", DONE_MARKER]
    )
    for key, s in ref.items():
        assert (out / "H" / f"{key}.png").read_bytes() == s["hq.png"]
        assert (out / "L" / f"{key}.png").read_bytes() == s["lq.png"]
    lines = [json.loads(x) for x in (out / "meta.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["key"] for r in lines] == list(ref) and all(
        r["provenance"] == json.loads(ref[r["key"]]["json"]) for r in lines
    )
    yaml = pytest.importorskip("yaml")
    block = yaml.safe_load((out / "dataset.yml").read_text())
    assert block["scale"] == 2 and block["train"]["type"] == "PairedImageDataset"
    assert (
        block["train"]["dataroot_gt"] == str((out / "H").resolve())
        and block["train"]["io_backend"]["type"] == "disk"
    )
    assert block["train"]["gt_size"] == 16


def test_folders_webp_lossless_lq_keeps_pixels(tiny_shards, tmp_path):
    ref = _shard_samples(tiny_shards)
    _export(tiny_shards, tmp_path / "w", format="folders", lq_format="webp-lossless")
    for key, s in ref.items():
        got = decode_image(tmp_path / "w" / "lq" / f"{key}.webp")
        assert np.array_equal(got, decode_image(s["lq.png"]))


def basicsr_lmdb_read(gt_folder, lq_folder):
    """What BasicSR's paired LMDB dataset does: keys from meta_info.txt (``line.split('.')[0]``), the
    same set in both, sorted; each value ``txn.get(key.encode('ascii'))``, decoded with cv2 (BGR)."""
    import lmdb

    with open(f"{lq_folder}/meta_info.txt") as fin:
        lq_keys = [line.split(".")[0] for line in fin]
    with open(f"{gt_folder}/meta_info.txt") as fin:
        gt_keys = [line.split(".")[0] for line in fin]
    assert set(lq_keys) == set(gt_keys)
    envs = {
        c: lmdb.open(p, readonly=True, lock=False, readahead=False)
        for c, p in (("gt", gt_folder), ("lq", lq_folder))
    }
    out = {}
    for key in sorted(lq_keys):
        pair = []
        for client in ("gt", "lq"):
            with envs[client].begin(write=False) as txn:
                buf = txn.get(key.encode("ascii"))
            pair.append(cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_COLOR))
        out[key] = pair
    return out


def test_lmdb_reads_as_basicsr_reads_it(tiny_shards, tmp_path):
    pytest.importorskip("lmdb")
    ref = _shard_samples(tiny_shards)
    res = _export(tiny_shards, tmp_path / "l", format="lmdb")
    assert res.samples == 4 and not res.failures
    out = tmp_path / "l"
    got = basicsr_lmdb_read(str(out / "hq.lmdb"), str(out / "lq.lmdb"))
    assert sorted(got) == sorted(lmdb_key(k) for k in ref)
    for key, s in ref.items():
        gt, lq = got[lmdb_key(key)]
        assert np.array_equal(gt[..., ::-1], decode_image(s["hq.png"]))
        assert np.array_equal(lq[..., ::-1], decode_image(s["lq.png"]))
    line = (out / "hq.lmdb" / "meta_info.txt").read_text().splitlines()[0]
    assert line == f"{lmdb_key(ODD_KEYS[0])}.png (16,16,3) 1"
    assert lmdb_key("with space 1") == "with%20space%201" and lmdb_key("plain_0") == "plain_0"
    recs = [json.loads(x) for x in (out / "meta.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {r["lmdb_key"]: r["key"] for r in recs} == {lmdb_key(k): k for k in ref}


def test_parquet_round_trip_row_groups_and_files(tiny_shards, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    ref = _shard_samples(tiny_shards)
    res = _export(tiny_shards, tmp_path / "p", format="parquet", max_rows_per_file=3, row_group_rows=2)
    assert res.files == ["train-00000.parquet", "train-00001.parquet"]
    rows = []
    for name in res.files:
        f = pq.ParquetFile(tmp_path / "p" / name)
        assert f.metadata.num_row_groups == (2 if name.endswith("0.parquet") else 1)  # 2+1 rows, then 1
        rows += f.read().to_pylist()
    assert [r["key"] for r in rows] == list(ref)
    for r in rows:
        s = ref[r["key"]]
        assert r["hq"]["bytes"] == s["hq.png"] and r["lq"]["bytes"] == s["lq.png"]
        assert json.loads(r["json"]) == json.loads(s["json"])


def test_one_corrupt_sample_is_a_failure_record(tmp_path):
    out = tmp_path / "s"
    sink = ShardWriter(out)
    for i in range(3):
        fields = _sample(i)
        if i == 1:
            fields["lq.png"] = b"\x89PNG\r\n\x1a\n not really"
        sink.add_sample(f"k{i}", fields)
        sink.end_input(i + 1)
    sink.close()
    r = runner.invoke(app, ["export", str(out), str(tmp_path / "e"), "--json", "-q"])
    assert r.exit_code == 1, r.output
    summary = json.loads(r.stdout)
    assert summary["samples"] == 2 and len(summary["failures"]) == 1
    assert "k1" in summary["failures"][0]["path"] and "shard-000000.tar" in summary["failures"][0]["path"]
    assert sorted(p.stem for p in (tmp_path / "e" / "hq").iterdir()) == ["k0", "k2"]
    assert (tmp_path / "e" / DONE_MARKER).is_file()


def test_truncated_shard_and_empty_input(tiny_shards, tmp_path):
    tar = tiny_shards / "shard-000001.tar"
    tar.write_bytes(tar.read_bytes()[:700])  # cut inside the first member
    res = _export(tiny_shards, tmp_path / "t", format="folders")
    assert res.samples >= 2 and any("shard-000001.tar" in f["path"] for f in res.failures)
    empty = tmp_path / "empty"
    empty.mkdir()
    r = runner.invoke(app, ["export", str(empty), str(tmp_path / "x")])
    assert r.exit_code == 2 and "no *.tar shards" in r.output and str(empty) in r.output
    r = runner.invoke(app, ["export", str(tmp_path / "missing.tar"), str(tmp_path / "x")])
    assert r.exit_code == 2 and "missing.tar" in r.output
    # a shard with no samples exports nothing, cleanly
    with tarfile.open(empty / "shard-000000.tar", "w"):
        pass
    res = export_shards([str(empty / "shard-000000.tar")], tmp_path / "z", ExportOptions())
    assert res.samples == 0 and not res.failures and (tmp_path / "z" / DONE_MARKER).is_file()


def test_interrupted_export_never_looks_done_and_overwrite_redoes_it(tiny_shards, tmp_path):
    out = tmp_path / "o"
    urls = shard_urls([str(tiny_shards)])

    def die(n=1, **kw):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_shards(urls, out, ExportOptions(format="folders"), progress=die)
    assert [p.name for p in out.iterdir()] == [STAGING]  # nothing a trainer would pick up, no marker
    r = runner.invoke(app, ["export", str(tiny_shards), str(out)])
    assert r.exit_code == 2 and "interrupted export" in r.output and "--overwrite" in r.output
    r = runner.invoke(app, ["export", str(tiny_shards), str(out), "--overwrite", "--json", "-q"])
    assert r.exit_code == 0 and json.loads(r.stdout)["samples"] == 4
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["hq", "lq", "meta.jsonl", "dataset.yml", DONE_MARKER]
    )
    # --overwrite removes only what an export wrote (its marker lists it), never a name alone
    (out / "notes.txt").write_text("mine")
    r = runner.invoke(app, ["export", str(tiny_shards), str(out), "--overwrite"])
    assert r.exit_code == 2 and "notes.txt" in r.output and (out / "notes.txt").is_file()
    mine = tmp_path / "mine"
    (mine / "hq").mkdir(parents=True)
    (mine / "hq" / "photo.png").write_bytes(b"precious")
    r = runner.invoke(app, ["export", str(tiny_shards), str(mine), "--overwrite"])
    assert r.exit_code == 2 and (mine / "hq" / "photo.png").read_bytes() == b"precious"


def test_stdin_workers_and_brace_pattern_agree(tiny_shards, tmp_path):
    r = runner.invoke(app, ["export", "-", str(tmp_path / "a"), "-q", "--json"], input=f"{tiny_shards}\n")
    assert r.exit_code == 0, r.output
    brace = str(tiny_shards / "shard-{000000..000001}.tar")
    r = runner.invoke(app, ["export", brace, str(tmp_path / "b"), "-q", "--workers", "2"])
    assert r.exit_code == 0, r.output
    for sub in ("hq", "lq"):
        a = {p.name: p.read_bytes() for p in (tmp_path / "a" / sub).iterdir()}
        assert a == {p.name: p.read_bytes() for p in (tmp_path / "b" / sub).iterdir()}
    assert (tmp_path / "a" / "meta.jsonl").read_text() == (tmp_path / "b" / "meta.jsonl").read_text()


def test_pack_an_exported_folder_gives_the_same_pixels(tiny_shards, tmp_path):
    ref = _shard_samples(tiny_shards)
    _export(tiny_shards, tmp_path / "f", format="folders")
    r = runner.invoke(
        app,
        [
            "shards",
            "pack",
            str(tmp_path / "f" / "hq"),
            str(tmp_path / "f" / "lq"),
            str(tmp_path / "packed"),
            "--shard-count",
            "3",
            "--json",
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["scale"] == 2
    got = _shard_samples(tmp_path / "packed")
    assert sorted(got) == sorted(ref)  # the keys survive (spaces and unicode included)
    for key, s in got.items():
        assert np.array_equal(decode_image(s["hq.png"]), decode_image(ref[key]["hq.png"]))
        assert np.array_equal(decode_image(s["lq.png"]), decode_image(ref[key]["lq.png"]))
        meta = json.loads(s["json"])
        assert meta["method"] == "external" and meta["source_hq"] == f"{key}.png" and meta["scale"] == 2
    pairs = list(paired_dataset(str(tmp_path / "packed"), crop=8, scale=2, split_by_node=False))
    assert len(pairs) == 4 and tuple(pairs[0][0].shape) == (3, 4, 4)


def test_pack_reports_each_bad_file(tmp_path):
    hq, lq = tmp_path / "HR", tmp_path / "LR"
    hq.mkdir()
    lq.mkdir()
    img = gradient_rgb(16, 16)
    for name in ("0001", "0002", "0003", "0004"):
        cv2.imwrite(str(hq / f"{name}.png"), img)
    cv2.imwrite(str(lq / "0001x4.png"), img[::4, ::4])
    cv2.imwrite(str(lq / "0002x4.png"), img[::2, ::2])  # wrong size
    (lq / "0003x4.png").write_bytes(b"not an image")  # unreadable
    cv2.imwrite(str(lq / "0009x4.png"), img[::4, ::4])  # no HQ partner; 0004 has no LQ partner
    r = runner.invoke(
        app,
        [
            "shards",
            "pack",
            str(hq),
            str(lq),
            str(tmp_path / "o"),
            "--lq-suffix",
            "x4",
            "--scale",
            "4",
            "--json",
            "-q",
        ],
    )
    assert r.exit_code == 1, r.output
    s = json.loads(r.stdout)
    assert s["samples"] == 1
    reasons = {f["path"].rsplit("/", 1)[-1]: f["reason"] for f in s["failures"]}
    assert set(reasons) == {"0002.png", "0003x4.png", "0004.png", "0009x4.png"}
    assert "not x4" in reasons["0002.png"] and "no LQ partner" in reasons["0004.png"]
    assert "no HQ partner" in reasons["0009x4.png"]


# ------------------------------------------------------------------------------------------------
# Shard JSON format 2: every integer fits int64, seeds are strings; format 1 still reads


def _ints(x):
    if isinstance(x, bool):
        return
    if isinstance(x, int):
        yield x
    elif isinstance(x, dict):
        for v in x.values():
            yield from _ints(v)
    elif isinstance(x, list):
        for v in x:
            yield from _ints(v)


def _synth_cfg() -> SynthConfig:
    return SynthConfig(
        preset="realesrgan", crop=32, max_patches=2, seed=5, shard_max_count=1
    )  # a shard an image


@pytest.fixture(scope="module")
def synth_shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    for i in range(2):
        cv2.imwrite(str(root / f"img{i}.png"), gradient_rgb(64, 64, seed=i))
    synthesize(list_sources(str(root)), root / "out", _synth_cfg())
    return root / "out"


def test_synthesized_json_fits_int64_and_seeds_read_back(synth_shards):
    metas = [json.loads(s["json"]) for s in iter_samples(str(synth_shards))]
    assert len(metas) == 4
    for m in metas:
        assert m["shard_format"] == SHARD_FORMAT == 2
        assert all(-(2**63) <= v < 2**63 for v in _ints(m))
        assert seed_from_json(m["sample_seed"]) == sample_seed(5, m["key"])
    assert seed_from_json(2**64 - 5) == 2**64 - 5  # a format-1 integer reads the same way
    marker = json.loads((synth_shards / "shard-000000.tar.json").read_text())
    assert marker["shard_format"] == 2


def test_format1_shards_resume_and_export(synth_shards, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(synth_shards, run)
    # make it look like a format-1 run killed before it finished: an old marker, the rest gone
    m = json.loads((run / "shard-000000.tar.json").read_text())
    m.pop("shard_format")
    (run / "shard-000000.tar.json").write_text(json.dumps(m))
    for p in list(run.glob("shard-00000[1-9].tar*")):
        p.unlink()
    src = list_sources(str(synth_shards.parent))
    res = synthesize(src, run, _synth_cfg(), resume=True)
    assert res.samples == 4 and res.resumed_from_input == 1
    assert json.loads((run / "shard-000001.tar.json").read_text())["shard_format"] == 2
    assert [s["__key__"] for s in iter_samples(str(run))] == [
        s["__key__"] for s in iter_samples(str(synth_shards))
    ]
    # an old sample (integer seed above 2**63) exports to Parquet: the JSON travels as text
    pytest.importorskip("pyarrow")
    old = ShardWriter(tmp_path / "old")
    old.add_sample("a", {**_sample(0), "json": json.dumps({"sample_seed": 2**64 - 3, "scale": 2}).encode()})
    old.close()
    r = export_shards(shard_urls([str(tmp_path / "old")]), tmp_path / "pq", ExportOptions(format="parquet"))
    assert r.samples == 1 and not r.failures


def test_datasets_loads_synthesized_shards_and_parquet(synth_shards, tmp_path):
    datasets = pytest.importorskip("datasets")
    cache = str(tmp_path / "hf")
    ds = datasets.load_dataset(
        "webdataset", data_files={"train": str(synth_shards / "*.tar")}, split="train", cache_dir=cache
    )
    assert ds.num_rows == 4
    row = ds[0]
    hq, lq = np.asarray(row["hq.png"].convert("RGB")), np.asarray(row["lq.png"].convert("RGB"))
    ref = next(iter_samples(str(synth_shards)))
    assert np.array_equal(hq, decode_image(ref["hq.png"])) and np.array_equal(lq, decode_image(ref["lq.png"]))
    assert seed_from_json(row["json"]["sample_seed"]) == sample_seed(5, row["__key__"])
    export_shards(shard_urls([str(synth_shards)]), tmp_path / "pq", ExportOptions(format="parquet"))
    pds = datasets.load_dataset(
        "parquet", data_files={"train": str(tmp_path / "pq" / "*.parquet")}, split="train", cache_dir=cache
    )
    assert pds.num_rows == 4 and isinstance(pds.features["hq"], datasets.Image)
    r = pds[0]
    assert np.array_equal(np.asarray(r["hq"].convert("RGB")), decode_image(ref["hq.png"]))
    assert json.loads(r["json"])["key"] == r["key"]


def test_learned_path_json_fits_int64(tmp_path):
    from .test_bank import make_bank

    bank = make_bank(tmp_path / "bank", each=True)
    (tmp_path / "hq").mkdir()
    cv2.imwrite(str(tmp_path / "hq" / "a.png"), gradient_rgb(64, 64, seed=3))
    cfg = SynthConfig(
        bank=str(bank), crop=32, max_patches=2, tile=32, batch=2, device="cpu", seed=3, noise_prob=1.0
    )
    synthesize(list_sources(str(tmp_path / "hq")), tmp_path / "out", cfg)
    metas = [json.loads(s["json"]) for s in iter_samples(str(tmp_path / "out"))]
    assert len(metas) == 2
    for m in metas:
        assert m["method"]["kind"] == "bank" and m["shard_format"] == 2
        assert all(-(2**63) <= v < 2**63 for v in _ints(m))
        assert seed_from_json(m["method"]["noise_seed"]) == sample_seed(3, m["key"], "noise")
