"""`synthesize` errors: an input problem is a failure record, a bug stops the run (keeping the
finished shards), out-of-memory fails a batch's inputs, a torch.compile failure is reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from redegkit.bank.apply import Synthesizer
from redegkit.cli import app
from redegkit.degrade.ops import ImageTooSmallError
from redegkit.io.shards import iter_samples
from redegkit.io.sources import list_sources
from redegkit.synth import PresetDegrader, SynthConfig, synthesize
from redegkit.synth.learned import LearnedProducer

from .conftest import shrunk_examples, worker_children
from .test_bank import make_bank

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def hq(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("hq")
    shrunk_examples(d, ("astronaut", "brick", "chelsea", "coffee"), 64)
    return d


@pytest.fixture(scope="module")
def bank(tmp_path_factory) -> Path:
    return make_bank(tmp_path_factory.mktemp("bank"))


def classical(**kw) -> SynthConfig:
    return SynthConfig(
        **{"preset": "realesrgan", "crop": 32, "scale": 4, "seed": 1, "shard_max_count": 4, **kw}
    )


def learned(bank: Path, **kw) -> SynthConfig:
    return SynthConfig(
        **{
            "bank": str(bank),
            "crop": 32,
            "scale": 4,
            "tile": 32,
            "batch": 4,
            "device": "cpu",
            "seed": 1,
            "shard_max_count": 4,
            **kw,
        }
    )


def failing_on(n: int, error: Exception, real):
    calls = []

    def call(self, *args, **kw):
        calls.append(1)
        if len(calls) == n:
            raise error
        return real(self, *args, **kw)

    return call


def test_a_bug_stops_the_run_with_its_traceback_and_resume_finishes_it(tmp_path, hq, monkeypatch):
    srcs = list_sources(hq)
    full = synthesize(srcs, tmp_path / "full", classical())
    # 4 patches per image, 4 per shard: the bug on image 3 comes after two finished shards
    monkeypatch.setattr(
        PresetDegrader, "__call__", failing_on(9, TypeError("a bug in a degrader"), PresetDegrader.__call__)
    )
    with pytest.raises(TypeError, match="a bug in a degrader"):
        synthesize(srcs, tmp_path / "cut", classical())
    kept = sorted(p.name for p in (tmp_path / "cut").glob("*.tar"))
    assert kept == ["shard-000000.tar", "shard-000001.tar"]
    assert all((tmp_path / "cut" / f"{k}.json").is_file() for k in kept)  # done markers: finished
    monkeypatch.undo()
    res = synthesize(srcs, tmp_path / "cut", classical(), resume=True)
    assert res.resumed_from_input == 2 and not res.failures
    digest = {p.name: p.read_bytes() for p in sorted((tmp_path / "full").glob("*.tar"))}
    assert digest == {p.name: p.read_bytes() for p in sorted((tmp_path / "cut").glob("*.tar"))}
    assert full.samples == res.samples == 16


def test_an_input_problem_is_a_failure_record_and_the_run_goes_on(tmp_path, hq, monkeypatch):
    monkeypatch.setattr(
        PresetDegrader,
        "__call__",
        failing_on(5, ImageTooSmallError("resize target 0x3"), PresetDegrader.__call__),
    )
    res = synthesize(list_sources(hq), tmp_path / "out", classical())
    assert [Path(f["path"]).name for f in res.failures] == ["brick.png"]
    assert "ImageTooSmallError" in res.failures[0]["reason"] and res.samples == 12


def test_learned_path_bug_stops_and_out_of_memory_fails_the_batch(tmp_path, hq, bank, monkeypatch):
    srcs = list_sources(hq)
    full = synthesize(srcs, tmp_path / "full", learned(bank))
    # on the CPU the synthesizer runs once per sample: call 9 is the first patch of image 3
    monkeypatch.setattr(
        Synthesizer, "__call__", failing_on(9, RuntimeError("a bug in the synthesizer"), Synthesizer.__call__)
    )
    with pytest.raises(RuntimeError, match="a bug in the synthesizer"):
        synthesize(srcs, tmp_path / "bug", learned(bank))
    kept = sorted((tmp_path / "bug").glob("*.tar"))  # what was finished before the bug stays, marked
    assert all(p.with_name(p.name + ".json").is_file() for p in kept)
    assert sum(1 for _ in iter_samples([str(p) for p in kept])) < 16
    monkeypatch.undo()
    res = synthesize(srcs, tmp_path / "bug", learned(bank), resume=True)
    assert res.samples == 16 and not res.failures
    for p in sorted((tmp_path / "full").glob("*.tar")):
        assert (tmp_path / "bug" / p.name).read_bytes() == p.read_bytes()
    oom = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    monkeypatch.setattr(Synthesizer, "__call__", failing_on(5, oom, Synthesizer.__call__))
    res = synthesize(srcs, tmp_path / "oom", learned(bank))
    assert [Path(f["path"]).name for f in res.failures] == ["brick.png"]  # batch 2 = image 2's 4 patches
    assert "out of memory: lower --batch or --tile" in res.failures[0]["reason"] and res.samples == 12
    assert full.samples == 16


def test_a_torch_compile_failure_is_recorded_in_the_report(tmp_path, hq, bank, monkeypatch):
    class BrokenCompile(torch.nn.Module):
        def forward(self, x, z):
            raise RuntimeError("BackendCompilerFailed: inductor could not build a kernel")

    real = LearnedProducer._synthesizer

    def compiled_synthesizer(self, cfg):  # CPU never compiles: stand in for a CUDA run whose compile fails
        synth = real(self, cfg)
        if synth.compile_error is None and synth.compiled is None:
            synth.compiled = BrokenCompile()
        return synth

    monkeypatch.setattr(LearnedProducer, "_synthesizer", compiled_synthesizer)
    res = synthesize(list_sources(hq), tmp_path / "out", learned(bank))
    assert res.samples == 16 and not res.failures  # the eager fallback finished the run
    runtime = json.loads(res.report_path.read_text())["runtime"]
    assert runtime["device"] == "cpu" and runtime["compiled"] is False
    assert "BackendCompilerFailed" in runtime["compile_error"]
    assert sum(1 for _ in iter_samples(str(tmp_path / "out"))) == 16


def test_out_of_memory_in_the_compiled_call_is_not_a_compiler_failure() -> None:
    """An OOM from the compiled synthesizer propagates (the batch is too big; eager would not fit
    either) instead of being recorded as a compile error and silently switching to eager."""
    from .test_bank import tiny_nets

    _, e, g = tiny_nets()
    synth = Synthesizer(e, g, compile=False)

    def oom(*_a, **_k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    synth.compiled = oom
    with pytest.raises(torch.OutOfMemoryError):
        synth(torch.zeros(1, 3, 64, 64), torch.zeros(1, 32))
    assert synth.compile_error is None and synth.compiled is oom

    def broken(*_a, **_k):
        raise RuntimeError("inductor: lowering failed")

    synth.compiled = broken  # a real compiler failure still falls back to eager, and is recorded
    out = synth(torch.zeros(1, 3, 64, 64), torch.zeros(1, 32))
    assert out.shape == (1, 3, 64, 64) and "lowering failed" in synth.compile_error and synth.compiled is None


def test_learned_workers_die_with_a_killed_main_process(tmp_path):
    # SIGKILL (or the OOM killer) gives the main process no chance to stop its pool; its forked
    # workers must not stay behind blocked on the task queue
    import os
    import signal
    import subprocess
    import time

    if not sys.platform.startswith("linux"):
        pytest.skip("parent-death signal is Linux-only")
    from .conftest import ROOT

    hq = tmp_path / "hq"
    hq.mkdir()
    for i in range(40):
        (hq / f"b{i:02d}.png").write_bytes((ROOT / "examples" / "brick.png").read_bytes())
    from .test_bank import make_bank

    bank = make_bank(tmp_path / "bank")  # the learned path's pool: its workers stayed behind
    code = (
        "import sys; from redegkit.cli import main; sys.argv = ['redeg', 'synthesize', '--bank', "
        f"'{bank}', '{hq}', '{tmp_path / 'out'}', '--crop', '32', '--workers', '2', '--quiet']; main()"
    )
    p = subprocess.Popen([sys.executable, "-c", code])
    children: list[int] = []
    for _ in range(1200):  # wait until both workers exist (start-up imports torch: seconds on a busy box)
        time.sleep(0.05)
        try:
            children = [int(c) for c in open(f"/proc/{p.pid}/task/{p.pid}/children").read().split()]
        except FileNotFoundError:
            break
        if len(children) >= 2:
            break
    assert len(children) >= 2, "the run ended before its workers could be seen"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    deadline = time.time() + 10
    alive = children
    while alive and time.time() < deadline:
        time.sleep(0.1)
        alive = [
            c
            for c in alive
            if os.path.exists(f"/proc/{c}") and "Z" not in open(f"/proc/{c}/stat").read().split()[2]
        ]
    for c in alive:
        os.kill(c, signal.SIGKILL)
    assert not alive, f"workers {alive} outlived the killed main process"


@pytest.fixture
def small_disk(tmp_path):
    """A 900 KiB tmpfs (a real file system that fills up: ENOSPC from the kernel, no stand-in);
    skipped where this process may not mount one (not root, no tmpfs)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=900k", "tmpfs", str(disk)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip() or r.returncode})")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_full_disk_is_a_clear_error_and_keeps_finished_shards(tmp_path, small_disk):
    """The output disk fills up mid-run: the CLI says so in one line (exit 1, no traceback), the
    shards finished before stay (with their markers), and once there is room --resume finishes
    the run with the bytes of an uninterrupted one."""
    bank = make_bank(tmp_path / "bank")
    hq = tmp_path / "hq"
    for i in range(4):
        shrunk_examples(hq / f"d{i}", ("astronaut", "brick", "chelsea", "coffee"), 64)
    opts = ["--crop", "32", "--workers", "2", "--shard-count", "8", "--device", "cpu", "--quiet"]
    full = tmp_path / "full"
    r = CliRunner().invoke(app, ["synthesize", "--bank", str(bank), str(hq), str(full), *opts])
    assert r.exit_code == 0, r.output
    # 680 KiB of shards: with the part files they are made from, more than the disk holds (the first
    # shard always fits: both chunks' parts, under 700 KiB, and its own 90)
    assert sum(p.stat().st_size for p in full.glob("*.tar")) > 600 << 10
    out = small_disk / "out"
    r = CliRunner().invoke(app, ["synthesize", "--bank", str(bank), str(hq), str(out), *opts])
    assert r.exit_code == 1, r.output
    said = " ".join(r.output.split())
    assert "shard writer failed: OSError: [Errno 28] No space left on device" in said
    assert "--resume" in said and "Traceback" not in said
    kept = sorted(out.glob("*.tar"))
    assert kept and all(p.with_name(p.name + ".json").is_file() for p in kept)
    for p in kept:  # finished shards are whole
        assert p.read_bytes() == (full / p.name).read_bytes()
    subprocess.run(["mount", "-o", "remount,size=4m", str(small_disk)], check=True)
    r = CliRunner().invoke(app, ["synthesize", "--bank", str(bank), str(hq), str(out), *opts, "--resume"])
    assert r.exit_code == 0, r.output
    assert [p.read_bytes() for p in sorted(out.glob("*.tar"))] == [
        p.read_bytes() for p in sorted(full.glob("*.tar"))
    ]
    assert not (out / ".redeg-parts").exists() and not list(out.glob(".*.tmp"))


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="reads /proc")
def test_a_failed_run_stops_its_workers_at_once(tmp_path, bank, monkeypatch):
    """A run that fails while inputs remain stops the pool before the error leaves synthesize(),
    even while the caller keeps the exception (and so its frames) alive."""
    hq = tmp_path / "hq"
    for i in range(6):
        shrunk_examples(hq / f"d{i}", ("astronaut", "brick", "chelsea", "coffee"), 64)
    monkeypatch.setattr(
        Synthesizer, "__call__", failing_on(3, RuntimeError("a bug in the synthesizer"), Synthesizer.__call__)
    )
    with pytest.raises(RuntimeError, match="a bug") as kept:
        synthesize(list_sources([str(hq)]), tmp_path / "out", learned(bank, workers=2))
    pid = os.getpid()
    assert kept.value is not None and worker_children(pid) == []
