"""`synthesize --engine ray` on a real local Ray (``ray.init(num_cpus=2)``, once for the module):
the same shards as a local run with the same shard plan, on disk and on S3, for classical and bank
runs; a worker killed mid-shard is retried with the same result; resume keeps every marked shard."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from redegkit.cli import app
from redegkit.io import storage
from redegkit.io.sources import list_sources
from redegkit.synth import SynthConfig, synthesize
from redegkit.synth.ray_engine import RayOptions

from .conftest import shrunk_examples

ray = pytest.importorskip("ray")
runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def ray_local():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def hq(tmp_path_factory):
    d = tmp_path_factory.mktemp("hq")
    shrunk_examples(d, ("astronaut", "brick", "chelsea", "coffee", "camera", "grass", "gravel"), 96)
    return d


def _cfg(**kw):
    return SynthConfig(**{**dict(preset="realesrgan", crop=32, scale=2, seed=9, shard_inputs=2), **kw})


def _hashes(where: str | Path) -> dict[str, str]:
    names = storage.list_files(where)
    return {
        n: hashlib.sha256(storage.read_bytes(storage.join(where, n))).hexdigest()
        for n in sorted(names)
        if n.endswith(".tar")
    }


def test_classical_local_s3_and_ray_give_the_same_shards(tmp_path, hq, bucket):
    srcs = list_sources(hq)
    local = synthesize(srcs, tmp_path / "local", _cfg(workers=2))
    assert len(local.shards) == 4  # 7 inputs, 2 per shard
    on_ray = synthesize(srcs, tmp_path / "ray", _cfg(), ray=RayOptions())
    on_ray_s3 = synthesize(srcs, bucket + "/ray", _cfg(), ray=RayOptions())
    want = _hashes(tmp_path / "local")
    assert _hashes(tmp_path / "ray") == want and _hashes(bucket + "/ray") == want
    assert on_ray.shards == on_ray_s3.shards == local.shards and on_ray.samples == local.samples
    report = json.loads((tmp_path / "ray" / "report.json").read_text())
    assert report["runtime"]["engine"] == "ray" and report["samples"] == local.samples
    assert set(report) == set(json.loads((tmp_path / "local" / "report.json").read_text()))
    # the markers too: same inputs, keys, failures
    for name in local.shards:
        a = json.loads((tmp_path / "local" / (name + ".json")).read_text())
        assert a == json.loads(storage.read_text(f"{bucket}/ray/{name}.json"))


def test_bank_run_on_a_ray_actor_equals_the_local_run(tmp_path, bucket):
    from .test_bank import make_bank

    bank = make_bank(tmp_path / "bank", each=True, noise=6.0)  # with noise spectra
    storage.write_bytes(bucket + "/emb.pt", bank.read_bytes())
    d = tmp_path / "hq"
    d.mkdir()
    shrunk_examples(d, ("astronaut", "brick", "chelsea"), 64)
    srcs = list_sources(d)
    base = dict(crop=32, scale=4, tile=32, batch=4, device="cpu", seed=3, shard_inputs=2, preset=None)
    local = synthesize(srcs, tmp_path / "local", SynthConfig(bank=str(bank), **base))
    remote = synthesize(
        srcs, bucket + "/out", SynthConfig(bank=bucket + "/emb.pt", **base), ray=RayOptions(actors=2)
    )
    assert remote.samples == local.samples > 0 and remote.shards == local.shards
    assert _hashes(bucket + "/out") == _hashes(tmp_path / "local")


def test_a_worker_killed_mid_shard_is_retried_with_the_same_result(tmp_path, hq):
    big = tmp_path / "big"
    big.mkdir()
    shrunk_examples(big, ("astronaut", "brick", "chelsea", "coffee", "camera", "grass"), 320)
    srcs = list_sources(big)
    cfg = _cfg(shard_inputs=3, crop=32)
    want = synthesize(srcs, tmp_path / "local", cfg)
    out = tmp_path / "ray"
    out.mkdir()
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(res=synthesize(srcs, out, cfg, ray=RayOptions())))
    t.start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and t.is_alive() and time.monotonic() < deadline:
        for p in out.glob(".shard-*.tmp"):  # a shard being written: ".shard-000001.tar.<pid>.tmp"
            pid = int(p.name.split(".")[-2])
            os.kill(pid, signal.SIGKILL)
            killed = p.name
            break
        time.sleep(0.002)
    t.join(300)
    assert killed is not None, "no shard was caught mid-write"
    assert result["res"].shards == want.shards and _hashes(out) == _hashes(tmp_path / "local")
    assert not list(out.glob(".*.tmp"))  # the killed worker's temporary tar is cleaned up


def test_resume_keeps_every_marked_shard_and_redoes_the_rest(tmp_path, hq):
    srcs = list_sources(hq)
    out = tmp_path / "out"
    first = synthesize(srcs, out, _cfg(), ray=RayOptions())
    want = _hashes(out)
    (out / (first.shards[0] + ".json")).unlink()  # shard 0 without its marker, shard 2 gone
    (out / first.shards[2]).unlink()
    (out / (first.shards[2] + ".json")).unlink()
    again = synthesize(srcs, out, _cfg(), ray=RayOptions(), resume=True)
    report = json.loads((out / "report.json").read_text())
    assert report["runtime"]["rows"] == 2 and again.samples == first.samples and _hashes(out) == want


def test_cli_engine_ray(tmp_path, hq):
    out = tmp_path / "cli"
    r = runner.invoke(app, ["synthesize", str(hq), str(out), "--engine", "ray", "--shard-inputs", "3", "--crop", "32",
                            "--scale", "2", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["shards"] == 3 and summary["samples"] > 0 and summary["inputs"] == 7
