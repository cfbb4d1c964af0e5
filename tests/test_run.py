"""The run context: rank, local rank, world size and device from the torchrun environment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from redegkit.config import ConfigError
from redegkit.run import RunContext


@pytest.fixture
def four_gpus(monkeypatch):
    """A machine with 4 CUDA devices, as far as device resolution can tell (nothing runs on them)."""
    current = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: current.append(torch.device(d)))
    return current


def test_torchrun_ranks_get_their_own_gpu(four_gpus):
    env = {"RANK": "5", "LOCAL_RANK": "1", "WORLD_SIZE": "8"}
    ctx = RunContext.from_env("auto", "bf16", env=env)
    assert (ctx.rank, ctx.local_rank, ctx.world) == (5, 1, 8) and not ctx.main and ctx.distributed
    assert ctx.device == torch.device("cuda", 1) and four_gpus == [torch.device("cuda", 1)]  # made current
    assert ctx.precision == "bf16"
    assert RunContext.from_env("cuda", env=env).device == torch.device("cuda", 1)  # "cuda" = this rank's GPU
    assert RunContext.from_env("cuda:3", env=env).device == torch.device("cuda", 3)  # an explicit index wins
    single = RunContext.from_env("auto", env={})
    assert (single.rank, single.world, single.device) == (0, 1, torch.device("cuda", 0)) and single.main


def test_cpu_runs_fp32_and_bad_environments_are_clear_errors(four_gpus):
    ctx = RunContext.from_env("cpu", "bf16", env={"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"})
    assert ctx.device == torch.device("cpu") and ctx.precision == "fp32" and four_gpus == []
    with pytest.raises(ConfigError, match="4 CUDA device"):
        RunContext.from_env("auto", env={"RANK": "4", "LOCAL_RANK": "4", "WORLD_SIZE": "8"})
    with pytest.raises(ConfigError, match="RANK=2.*WORLD_SIZE=2"):
        RunContext.from_env("auto", env={"RANK": "2", "LOCAL_RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(ConfigError, match="LOCAL_RANK='x'"):
        RunContext.from_env("auto", env={"LOCAL_RANK": "x"})


def test_synthesize_bank_puts_each_rank_on_its_gpu(four_gpus, monkeypatch, tmp_path):
    # The learned producer builds its synthesizer on the context's device: stop it right there.
    from redegkit.io.sources import list_sources
    from redegkit.synth import SynthConfig, synthesize
    from redegkit.synth.learned import engine

    from .test_bank import make_bank
    from .test_synth_errors import learned

    class Reached(Exception):
        pass

    def fake_synthesizer(*args, ctx, **kw):
        raise Reached(ctx.device)

    monkeypatch.setattr(engine, "Synthesizer", fake_synthesizer)
    for k, v in {"RANK": "3", "LOCAL_RANK": "2", "WORLD_SIZE": "4"}.items():
        monkeypatch.setenv(k, v)
    bank = make_bank(tmp_path / "bank")
    hq = tmp_path / "hq"
    hq.mkdir()
    for i in range(4):
        shutil.copy(Path(__file__).resolve().parents[1] / "examples" / "brick.png", hq / f"b{i}.png")
    cfg: SynthConfig = learned(bank, device="auto")
    with pytest.raises(Reached) as e:
        synthesize(list_sources(hq), tmp_path / "out", cfg)
    assert e.value.args[0] == torch.device("cuda", 2)


@pytest.mark.slow
def test_torchrun_two_cpu_ranks_of_synthesize_bank(tmp_path):
    from .test_bank import make_bank

    redeg = shutil.which("redeg", path=os.path.dirname(sys.executable))
    assert redeg is not None
    bank = make_bank(tmp_path / "bank")
    hq = tmp_path / "hq"
    hq.mkdir()
    for i in range(3):
        shutil.copy(Path(__file__).resolve().parents[1] / "examples" / "brick.png", hq / f"b{i}.png")
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        redeg,
        "synthesize",
        str(hq),
        str(out),
        "--bank",
        str(bank),
        "--crop",
        "32",
        "--tile",
        "32",
        "--max-patches",
        "2",
        "--device",
        "cpu",
        "--json",
        "--quiet",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    if p.returncode != 0:  # show the first error lines of the ranks, not only the launcher's summary
        first = [ln for ln in p.stderr.splitlines() if "rror" in ln or "Traceback" in ln][:20]
        pytest.fail(f"torchrun exit {p.returncode}:\n" + "\n".join(first) + "\n...\n" + p.stderr[-1500:])
    reports = [json.loads((out / f"report-r{r:03d}.json").read_text()) for r in (0, 1)]
    assert [(r["rank"], r["world"], r["inputs"]) for r in reports] == [(0, 2, 2), (1, 2, 1)]
    assert [(r["runtime"]["device"], r["runtime"]["local_rank"]) for r in reports] == [("cpu", 0), ("cpu", 1)]
    assert sum(r["samples"] for r in reports) == 6
    assert sorted(p.name for p in out.glob("*.tar")) == ["shard-r000-000000.tar", "shard-r001-000000.tar"]


def test_precision_layout_and_host_context(four_gpus):
    gpu = RunContext.from_env("auto", "auto", channels_last=True, env={})
    assert gpu.precision == "bf16" and gpu.channels_last and gpu.amp_dtype == torch.bfloat16
    assert RunContext.from_env("auto", "fp32", env={}).precision == "fp32"
    cpu = RunContext.local("cpu", "bf16", channels_last=True)
    assert (cpu.precision, cpu.channels_last, cpu.amp_dtype) == ("fp32", False, None)
    assert cpu.memory_format == torch.contiguous_format
    with pytest.raises(ConfigError, match="precision must be"):
        RunContext.from_env("cpu", "fp16", env={})
    host = RunContext.host(seed=3, env={"RANK": "1", "WORLD_SIZE": "2"})
    assert (host.rank, host.world, host.device, host.seed) == (1, 2, None, 3)
    with pytest.raises(RuntimeError, match="no device"):
        host.to_device(torch.zeros(1))


def test_host_context_does_not_import_torch():
    code = (
        "import sys; from redegkit.run import RunContext; c = RunContext.host(env={}); "
        "c.folder('.'); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_single_process_collectives_and_rank0_only_folder(tmp_path):
    ctx = RunContext.local("cpu")
    assert ctx.join() is ctx and not ctx._owns_group  # no torchrun: no group is made
    assert ctx.mean_over_ranks({"b": torch.tensor(2.0), "a": torch.tensor(0.5)}) == {"a": 0.5, "b": 2.0}
    assert ctx.gather({"x": 1}) == [{"x": 1}]
    net = torch.nn.Linear(2, 2)
    assert ctx.ddp(net) is net
    other = RunContext(rank=1, world=2, device=torch.device("cpu"))
    other.folder(tmp_path / "r1").write_json("report.json", {"a": 1})
    other.folder(tmp_path / "r1").metrics(tensorboard=None).write({"step": 1})
    assert not (tmp_path / "r1").exists()  # only rank 0 writes
    f = ctx.folder(tmp_path / "r0")
    f.write_json("report.json", {"a": 1})
    f.save_checkpoint("last.pt", {"step": 4})
    assert json.loads((tmp_path / "r0" / "report.json").read_text()) == {"a": 1}
    assert f.load_checkpoint("last.pt")["step"] == 4


def test_metrics_writer_resume_drops_later_records(tmp_path):
    from redegkit.run import MetricsWriter

    m = MetricsWriter(tmp_path / "run" / "metrics.jsonl")
    for s in (1, 2, 3, 4):
        m.write({"split": "train", "step": s, "loss": 1.0 / s})
    m.keep_until(2)  # resumed from the step-2 checkpoint: steps 3 and 4 will be logged again
    lines = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2]
    m.keep_until(0)  # a fresh run in the same folder starts an empty log
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
