"""Object storage: URLs for inputs and shards (a real S3 API on loopback: moto's server), manifests,
resume on S3, errors that name the URL, and no credential in any output."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import fsspec
import pytest
from typer.testing import CliRunner

from redegkit.cli import app
from redegkit.io import storage
from redegkit.io.shards import find_resume_point, iter_samples
from redegkit.io.sources import list_sources, read_manifest, source_key
from redegkit.synth import SynthConfig, synthesize

from .conftest import FAKE_KEY, FAKE_SECRET, shrunk_examples

runner = CliRunner()
NAMES = ("astronaut", "chelsea", "coffee", "brick", "camera")


@pytest.fixture(scope="module")
def hq(tmp_path_factory):
    """Five small example images (each gives a few 32-px crops)."""
    d = tmp_path_factory.mktemp("hq")
    shrunk_examples(d, NAMES, 96)
    return d


def _cfg(**kw):
    return SynthConfig(**{**dict(preset="realesrgan", crop=32, scale=2, seed=5, shard_max_count=4), **kw})


def _s3(url: str):
    return fsspec.core.url_to_fs(url, endpoint_url=storage.storage_options()["s3"]["endpoint_url"])


def _tars_local(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.tar"))}


def _tars_s3(url: str) -> dict[str, bytes]:
    fs, path = _s3(url)
    fs.invalidate_cache()
    return {Path(p).name: fs.cat_file(p) for p in sorted(fs.glob(path + "/*.tar"))}


def _upload(folder: Path, url: str) -> None:
    fs, path = _s3(url)
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            fs.pipe_file(f"{path}/{p.relative_to(folder).as_posix()}", p.read_bytes())


# --- unit: URLs, options, redaction (memory:// is one process) -----------------------------------


def test_paths_and_urls_share_one_api(tmp_path):
    assert not storage.is_remote(str(tmp_path)) and not storage.is_remote("file:///x")
    assert storage.is_remote("s3://b/k") and storage.is_remote("simplecache::s3://b/k")
    assert storage.protocol("simplecache::gs://b/k") == "gs" and storage.join("s3://b/", "x") == "s3://b/x"
    for base in (str(tmp_path), "memory://redeg-unit"):
        storage.write_text(storage.join(base, "a.json"), "{}")
        assert storage.read_text(storage.join(base, "a.json")) == "{}"
        assert storage.list_files(base) == {"a.json": 2} and storage.exists(storage.join(base, "a.json"))
        storage.remove(storage.join(base, "a.json"))
        assert storage.list_files(base) == {}


def test_storage_options_are_parsed_and_never_printed():
    try:
        storage.set_storage_options('{"s3": {"key": "AKIAXXXX", "secret": "s3cr3t-value"}}')
        assert storage.storage_options()["s3"]["secret"] == "s3cr3t-value"
        msg = storage.redact("failed with key=AKIAXXXX secret s3cr3t-value at s3://u:pw@b/k")
        assert "s3cr3t-value" not in msg and "AKIAXXXX" not in msg and "u:pw" not in msg
        with pytest.raises(ValueError, match="JSON"):
            storage.set_storage_options("{not json")
    finally:
        storage.set_storage_options(None)


# --- inputs: a folder, a prefix listing and a manifest give the same keys, seeds, order ----------


def _plan(sources) -> list[tuple[str, str]]:
    return [(s.rel, source_key(s.rel)) for s in sources]


def test_folder_prefix_listing_and_manifests_agree(tmp_path, hq, bucket):
    import pyarrow as pa
    import pyarrow.parquet as pq

    _upload(hq, bucket + "/hq")
    folder = list_sources(hq)
    listing = list_sources(bucket + "/hq/")
    assert _plan(listing) == _plan(folder) and all(str(s.path).startswith(bucket) for s in listing)
    rows = [{"url": f"{bucket}/hq/{s.rel}", "key": s.rel} for s in folder]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "m.txt").write_text("# url<TAB>key\n" + "".join(f"{r['url']}\t{r['key']}\n" for r in rows))
    pq.write_table(
        pa.table({"url": [r["url"] for r in rows], "key": [r["key"] for r in rows]}), tmp_path / "m.parquet"
    )
    _upload(tmp_path, bucket + "/manifests")
    for m in ("m.jsonl", "m.txt", "m.parquet"):
        assert _plan(read_manifest(tmp_path / m)) == _plan(folder), m
        assert _plan(read_manifest(f"{bucket}/manifests/{m}")) == _plan(folder), m
    # relative entries of a manifest beside the images: no key needed
    (hq / "list.txt").write_text("".join(f"{s.rel}\n" for s in folder))
    try:
        assert _plan(read_manifest(hq / "list.txt")) == _plan(folder)
    finally:
        (hq / "list.txt").unlink()
    # the samples: same keys and seeds (source_path says where each was read from)
    a = synthesize(folder, tmp_path / "a", _cfg())
    b = synthesize(read_manifest(tmp_path / "m.parquet"), tmp_path / "b", _cfg())
    strip = [{k: v for k, v in json.loads(s["json"]).items() if k != "source_path"}
             for s in iter_samples(str(tmp_path / "a"))]  # fmt: skip
    assert a.samples == b.samples and strip == [
        {k: v for k, v in json.loads(s["json"]).items() if k != "source_path"}
        for s in iter_samples(str(tmp_path / "b"))
    ]


# --- shards on S3: the same bytes, the same resume ----------------------------------------------


def test_s3_sink_gives_the_local_shards_and_a_report(tmp_path, hq, bucket):
    srcs = list_sources(hq)
    local = synthesize(srcs, tmp_path / "local", _cfg(workers=2))
    remote = synthesize(srcs, bucket + "/out", _cfg(workers=2))
    assert remote.shards == local.shards and remote.samples == local.samples
    assert _tars_s3(bucket + "/out") == _tars_local(tmp_path / "local")
    names = storage.list_files(bucket + "/out")
    assert all(n + ".json" in names for n in local.shards) and "report.json" in names and "run.json" in names
    report = json.loads(storage.read_text(bucket + "/out/report.json"))
    assert report["shards"] == local.shards and report["out"] == bucket + "/out"
    # inputs read from S3 too (the JSON's source_path is the URL; everything else is the same)
    _upload(hq, bucket + "/hq-in")
    from_s3 = synthesize(list_sources(bucket + "/hq-in/"), tmp_path / "from-s3", _cfg())
    assert from_s3.samples == local.samples and not from_s3.failures


def test_interrupted_s3_run_resumes_only_missing_shards(tmp_path, hq, bucket):
    srcs = list_sources(hq)
    cfg = _cfg(shard_max_count=3)
    full = synthesize(srcs, tmp_path / "ref", cfg)
    assert len(full.shards) >= 4
    out = bucket + "/run"
    synthesize(srcs, out, cfg)
    fs, path = _s3(out)
    # the state a killed run leaves: shard 1 uploaded without its marker, shards after it gone
    fs.rm_file(f"{path}/{full.shards[1]}.json")
    for name in full.shards[2:]:
        fs.rm_file(f"{path}/{name}")
        fs.rm_file(f"{path}/{name}.json")
    fs.pipe_file(f"{path}/{full.shards[3]}", b"half a tar")  # a stray one after the gap
    rp = find_resume_point(out)
    assert rp.next_shard == 1 and full.shards[1] in rp.removed
    r = runner.invoke(app, ["synthesize", str(hq), out, "--preset", "realesrgan", "--crop", "32", "--scale", "2",
                            "--seed", "5", "--shard-count", "3", "--json"])  # fmt: skip
    assert r.exit_code == 2 and "--resume" in r.output
    res = synthesize(srcs, out, cfg, resume=True)
    assert res.resumed_from_input > 0 and res.samples == full.samples
    assert _tars_s3(out) == _tars_local(tmp_path / "ref")
    keys = [s["__key__"] for s in iter_samples([str(tmp_path / "ref" / n) for n in full.shards])]
    assert len(keys) == len(set(keys)) == res.samples
    with pytest.raises(FileExistsError, match="other options"):
        synthesize(srcs, out, _cfg(shard_max_count=3, seed=6), resume=True)


def test_torchrun_ranks_write_disjoint_shards_to_s3_and_one_report(hq, bucket):
    srcs = list_sources(hq)
    out = bucket + "/ranks"
    r0 = synthesize(srcs, out, _cfg(), rank=0, world=2)
    assert not storage.exists(out + "/report.json")  # rank 1 has not finished
    r1 = synthesize(srcs, out, _cfg(), rank=1, world=2)
    merged = json.loads(storage.read_text(out + "/report.json"))
    assert merged["samples"] == r0.samples + r1.samples and merged["shards"] == r0.shards + r1.shards
    assert not set(r0.shards) & set(r1.shards) and [r["rank"] for r in merged["ranks"]] == [0, 1]


# --- errors and credentials ---------------------------------------------------------------------


def test_bad_url_and_missing_credentials_are_one_line_naming_the_url(tmp_path, hq, s3_endpoint, monkeypatch):
    r = runner.invoke(
        app, ["synthesize", str(hq), "s3://no-such-bucket-redeg/out", "--crop", "32", "--scale", "2"]
    )
    assert r.exit_code in (1, 2) and "s3://no-such-bucket-redeg/out" in r.output
    assert "Traceback" not in r.output
    r = runner.invoke(app, ["synthesize", "s3://no-such-bucket-redeg/hq/", str(tmp_path / "o")])
    assert r.exit_code == 2 and "s3://no-such-bucket-redeg/hq/" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["synthesize", "nope://x/y", str(tmp_path / "o")])
    assert r.exit_code == 2 and "nope://x/y" in r.output and "Traceback" not in r.output
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # a new process would hold no session with credentials
    r = runner.invoke(app, ["synthesize", "s3://some-bucket/hq/", str(tmp_path / "o")])
    monkeypatch.undo()
    s3fs.S3FileSystem.clear_instance_cache()
    assert r.exit_code == 2 and "s3://some-bucket/hq/" in r.output and "credentials" in r.output
    assert "Traceback" not in r.output


def test_credentials_appear_in_no_output_file(tmp_path, hq, bucket):
    opts = json.dumps({"s3": {"key": FAKE_KEY, "secret": FAKE_SECRET}})
    out = bucket + "/secret-run"
    r = runner.invoke(app, ["--storage-options", opts, "synthesize", str(hq), out, "--crop", "32", "--scale", "2",
                            "-j", "2", "--json", "--storage-options", opts])  # fmt: skip
    assert r.exit_code == 0, r.output
    fs, path = _s3(out)
    files = {p: fs.cat_file(p) for p in fs.find(path)}
    assert any(p.endswith("report.json") for p in files) and any(p.endswith(".tar") for p in files)
    for blob in [*files.values(), r.output.encode()]:
        assert FAKE_SECRET.encode() not in blob and FAKE_KEY.encode() not in blob
    storage.set_storage_options(None)


# --- reading shards from S3: train-sr, shards info/preview, export; banks to and from URLs -------


def test_train_sr_streams_shards_from_s3(tmp_path, bucket):
    from redegkit.config import resolve_config
    from redegkit.sr.train import train_sr

    from .sr_helpers import TINY, write_shard

    for i in range(2):
        write_shard(tmp_path / "shards" / f"shard-{i:06d}.tar", n=6, seed=i)
    _upload(tmp_path / "shards", bucket + "/shards")
    data = {**TINY, "steps": 3, "val_every": 3, "ckpt_every": 1000, "val": bucket + "/shards/shard-000001.tar",
            "data": {**TINY["data"], "num_workers": 1}}  # fmt: skip
    res = train_sr(resolve_config("train_sr", None, data), bucket + "/shards/", tmp_path / "run")
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert res.step == 3 and [r["step"] for r in records if "l1" in r] == [1, 2, 3]
    assert any(r.get("val_images") == 6 for r in records)  # --val read from S3 too


def test_shards_info_preview_and_export_read_s3(tmp_path, hq, bucket):
    out = bucket + "/shards"
    res = synthesize(list_sources(hq), out, _cfg())
    r = runner.invoke(app, ["shards", "info", out, "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert (
        info["samples"] == res.samples and info["shards"] == len(res.shards) and not info["incomplete_shards"]
    )
    r = runner.invoke(app, ["shards", "preview", out, "-o", bucket + "/sheet.png", "--n", "2"])
    assert r.exit_code == 0, r.output
    assert storage.read_bytes(bucket + "/sheet.png")[:8] == b"\x89PNG\r\n\x1a\n"
    r = runner.invoke(app, ["export", out, bucket + "/export", "--format", "folders", "--json"])
    assert r.exit_code == 0, r.output
    fs, root = _s3(bucket + "/export")
    paths = fs.find(root)
    assert root + "/export.json" in paths and sum(p.endswith(".png") for p in paths) == 2 * res.samples


def test_bank_saved_to_and_loaded_from_a_url(tmp_path, bucket):
    from redegkit.bank import load_bank, save_bank

    from .test_bank import make_bank

    local = load_bank(make_bank(tmp_path, each=True))
    url = bucket + "/banks/emb.pt"
    save_bank(url, local)
    back = load_bank(url)
    assert back.sha256 == local.sha256 == hashlib.sha256(storage.read_bytes(url)).hexdigest()
    assert back.path == url and len(back) == len(local)
