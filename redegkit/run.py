"""The run context: which process am I, which device and precision are mine, where do I write.

Every command builds one :class:`RunContext` and asks it, instead of deciding for itself:

- **rank, local rank, world size** from ``RANK`` / ``LOCAL_RANK`` / ``WORLD_SIZE`` (set by
  ``torchrun``; without a launcher it is rank 0 of 1);
- **the device**: ``auto`` is ``cuda:LOCAL_RANK`` when CUDA is available (made the current CUDA
  device, so no rank lands on GPU 0 by accident), else the CPU; asking for CUDA where there is
  none is an error, never a silent fallback;
- **precision**: bf16 autocast on CUDA (``bf16`` or ``auto``), always fp32 on the CPU (the
  reference path); channels_last and ``cudnn.benchmark`` on CUDA;
- **the seed** of this process (``seed + rank`` for what must differ per rank);
- **the process group**: :meth:`join` creates it once (NCCL on CUDA, Gloo on the CPU) and
  :meth:`leave` destroys it if this context made it; collectives go through the context;
- **the run folder** (:meth:`folder`): one atomic writer, one metrics writer (JSONL, plus
  TensorBoard when installed) and one checkpoint save/load, all rank-0-only where that matters.

This module does not import torch at import time: stages that run no network (the classical
synthesis path, data export) use :meth:`RunContext.host` and never load it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .config import ConfigError
from .io.atomic import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    import torch

Precision = Literal["auto", "bf16", "fp32"]


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(
            f"environment variable {name}={raw!r} is not an integer (set by torchrun)"
        ) from None


def dist_env(env: Mapping[str, str] | None = None) -> tuple[int, int, int]:
    """``(rank, local_rank, world)`` from the torchrun variables, checked for consistency."""
    env = os.environ if env is None else env
    world = _env_int(env, "WORLD_SIZE", 1)
    rank = _env_int(env, "RANK", 0)
    local_rank = _env_int(env, "LOCAL_RANK", 0)
    if world < 1 or not 0 <= rank < world or local_rank < 0:
        raise ConfigError(
            f"inconsistent torchrun environment: RANK={rank}, LOCAL_RANK={local_rank}, "
            f"WORLD_SIZE={world} (need 0 <= RANK < WORLD_SIZE and LOCAL_RANK >= 0)"
        )
    return rank, local_rank, world


def pick_device(device: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: this process's GPU (``cuda:LOCAL_RANK``) when CUDA is available, else the CPU.
    ``cuda`` without an index means this rank's GPU. Asking for CUDA where there is none is an
    error that says so (no silent fallback to the CPU)."""
    import torch

    if str(device) == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"{device!r} is not a device; use auto, cpu, cuda or cuda:N") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {str(device)!r} asked for, but CUDA is not available here")
        if dev.index is None:
            dev = torch.device("cuda", local_rank)
    return dev


@dataclass
class RunContext:
    """One process of one run: rank / local rank / world size, device, precision, seed.

    ``device`` is ``None`` for a host-only context (:meth:`host`): no network runs and torch is
    never imported. ``precision`` is what the networks run in: bf16 only on CUDA."""

    rank: int = 0
    local_rank: int = 0
    world: int = 1
    device: torch.device | None = None
    precision: Literal["bf16", "fp32"] = "fp32"
    channels_last: bool = False
    seed: int = 0
    _owns_group: bool = field(default=False, repr=False, compare=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_env(
        cls,
        device: str | torch.device = "auto",
        precision: Precision = "auto",
        *,
        channels_last: bool = True,
        cudnn_benchmark: bool = True,
        seed: int = 0,
        env: Mapping[str, str] | None = None,
    ) -> RunContext:
        """The context of this process from the torchrun variables (``env``, default
        ``os.environ``). A CUDA device is made the current one and, with ``cudnn_benchmark``,
        cuDNN picks its fastest kernels. Raises :class:`ConfigError` for inconsistent variables,
        a local rank without its GPU or an unknown precision."""
        import torch

        rank, local_rank, world = dist_env(env)
        dev = pick_device(device, local_rank)
        if precision not in ("auto", "bf16", "fp32"):
            raise ConfigError(f"precision must be auto, bf16 or fp32, got {precision!r}")
        cuda = dev.type == "cuda"
        if cuda:
            count = torch.cuda.device_count()
            if dev.index >= count:
                raise ConfigError(
                    f"device {dev} (LOCAL_RANK={local_rank}) asked for, but this machine has "
                    f"{count} CUDA device(s); start at most {count} processes per node"
                )
            torch.cuda.set_device(dev)
            if cudnn_benchmark:
                torch.backends.cudnn.benchmark = True
        return cls(
            rank=rank,
            local_rank=local_rank,
            world=world,
            device=dev,
            precision="bf16" if cuda and precision != "fp32" else "fp32",
            channels_last=cuda and channels_last,
            seed=seed,
        )

    @classmethod
    def local(
        cls,
        device: str | torch.device = "cpu",
        precision: Precision = "auto",
        channels_last: bool = True,
        seed: int = 0,
    ) -> RunContext:
        """A single-process context on ``device`` that ignores the torchrun variables (library
        use: benchmarks, tests, one network in a notebook). Does not change global CUDA state."""
        dev = pick_device(device)
        cuda = dev.type == "cuda"
        return cls(
            device=dev,
            precision="bf16" if cuda and precision != "fp32" else "fp32",
            channels_last=cuda and channels_last,
            seed=seed,
        )

    @classmethod
    def host(cls, seed: int = 0, env: Mapping[str, str] | None = None) -> RunContext:
        """A context without a device, for stages that run no network; torch is not imported."""
        rank, local_rank, world = dist_env(env)
        return cls(rank=rank, local_rank=local_rank, world=world, seed=seed)

    # ------------------------------------------------------------------ who and where
    @property
    def main(self) -> bool:
        """Rank 0: the process that speaks for the run (writes reports, metrics, checkpoints)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def cuda(self) -> bool:
        return self.device is not None and self.device.type == "cuda"

    def _need_device(self) -> torch.device:
        if self.device is None:
            raise RuntimeError("this run context has no device (RunContext.host); build it with from_env")
        return self.device

    def describe(self) -> dict[str, Any]:
        """What a report records about where the run ran."""
        return {
            "device": str(self.device) if self.device is not None else "cpu (no network)",
            "rank": self.rank,
            "local_rank": self.local_rank,
            "world": self.world,
            "precision": self.precision,
            "channels_last": self.channels_last,
        }

    # ------------------------------------------------------------------ precision and layout
    @property
    def amp_dtype(self) -> torch.dtype | None:
        """``torch.bfloat16`` when networks run under autocast, else ``None``."""
        if self.precision != "bf16":
            return None
        import torch

        return torch.bfloat16

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on CUDA, a no-op otherwise."""
        if self.precision != "bf16":
            return contextlib.nullcontext()
        import torch

        return torch.autocast(self._need_device().type, dtype=torch.bfloat16)

    @property
    def memory_format(self) -> torch.memory_format:
        import torch

        return torch.channels_last if self.channels_last else torch.contiguous_format

    def place(self, *modules: Any) -> None:
        """Move modules (``None`` is skipped) to the device, with their 4-D parameters and buffers
        in the context's memory format (tensor by tensor: ``Module.to(memory_format=...)`` refuses
        modules that hold 5-D tensors, as StyleGAN2-style modulated convolutions do)."""
        import torch

        dev = self._need_device()
        for m in modules:
            if m is None:
                continue
            m.to(dev)
            if self.channels_last:
                with torch.no_grad():
                    for t in [*m.parameters(), *m.buffers()]:
                        if t.dim() == 4:
                            t.data = t.data.contiguous(memory_format=torch.channels_last)

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        """A batch to the device (non-blocking from pinned memory) in the context's memory format.
        uint8 images (what the loaders ship: a quarter of float32's bytes) become float in
        [-1, 1] on the device, with exactly the mapping of :func:`redegkit.io.images.to_tensor`."""
        import torch

        x = x.to(self._need_device(), non_blocking=True)
        if x.dtype == torch.uint8:
            from .io.images import u8_to_unit

            x = u8_to_unit(x)
        return x.contiguous(memory_format=self.memory_format) if x.dim() == 4 else x

    def seed_torch(self, per_rank: bool = True) -> None:
        """Seed torch's global RNG with ``seed`` (``+ rank`` with ``per_rank``)."""
        import torch

        torch.manual_seed(self.seed + (self.rank if per_rank else 0))

    # ------------------------------------------------------------------ the process group
    def join(self) -> RunContext:
        """Create the process group under torchrun (once; NCCL on CUDA, Gloo on the CPU)."""
        if not self.distributed:
            return self
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if self.cuda else "gloo")
            self._owns_group = True
        return self

    def leave(self) -> None:
        """Destroy the process group if :meth:`join` created it."""
        if self._owns_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self._owns_group = False

    def __enter__(self) -> RunContext:
        return self.join()

    def __exit__(self, *exc: object) -> None:
        self.leave()

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def mean_over_ranks(self, values: dict[str, torch.Tensor]) -> dict[str, float]:
        """0-d tensors as floats, averaged over ranks (one all-reduce; the only host sync)."""
        import torch

        names = sorted(values)
        if not names:
            return {}
        vec = torch.stack([values[k].detach().float().to(self._need_device()) for k in names])
        if self.distributed:
            import torch.distributed as dist

            dist.all_reduce(vec)
            vec /= self.world
        return dict(zip(names, vec.tolist(), strict=True))

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` without a group."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def ddp(self, module: Any) -> Any:
        """``module`` wrapped in DistributedDataParallel under torchrun, else itself."""
        if not self.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(module, device_ids=[self._need_device().index] if self.cuda else None)

    # ------------------------------------------------------------------ the run folder
    def folder(self, path: str | os.PathLike) -> RunFolder:
        """The run folder ``path``; only rank 0 writes through it."""
        return RunFolder(Path(path), writer=self.main)


def rng_state() -> dict[str, Any]:
    """The global torch RNG states (CPU and every CUDA device) for a checkpoint."""
    import torch

    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved (CUDA states only where CUDA is available)."""
    import torch

    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class MetricsWriter:
    """Appends one JSON object per record to ``metrics.jsonl`` and, when TensorBoard is installed,
    adds each finite number as a scalar (tag ``split/name`` when the record has a ``split``).
    Disabled (every call a no-op) on ranks other than 0."""

    def __init__(self, path: Path, enabled: bool = True, tensorboard: Path | None = None) -> None:
        self.path, self.enabled, self._tb = path, enabled, None
        if enabled:
            path.parent.mkdir(parents=True, exist_ok=True)
            if tensorboard is not None:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError:  # optional: pip install tensorboard
                    pass
                else:
                    self._tb = SummaryWriter(str(tensorboard))

    def keep_until(self, step: int) -> None:
        """Resuming from ``step``: drop the records logged after it (``step = 0``: start afresh)."""
        if not self.enabled or not self.path.is_file():
            return
        if step <= 0:
            self.path.unlink()
            return
        keep = [
            ln
            for ln in self.path.read_text(encoding="utf-8").splitlines()
            if ln.strip() and json.loads(ln).get("step", 0) <= step
        ]
        atomic_write_text(self.path, "".join(ln + "\n" for ln in keep))

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            prefix = f"{record['split']}/" if "split" in record else ""
            for k, v in record.items():
                if (
                    k != "step"
                    and isinstance(v, (int, float))
                    and not isinstance(v, bool)
                    and math.isfinite(v)
                ):
                    self._tb.add_scalar(prefix + k, v, record["step"])

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


@dataclass
class RunFolder:
    """A run's output folder: reports, metrics and checkpoints, written atomically by rank 0."""

    path: Path
    writer: bool = True

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, obj: Any) -> Path:
        """``name`` (relative to the folder) as JSON, atomically; rank 0 only."""
        p = self.path / name
        if self.writer:
            atomic_write_json(p, obj)
        return p

    def metrics(self, name: str = "metrics.jsonl", tensorboard: str | None = "tb") -> MetricsWriter:
        return MetricsWriter(
            self.path / name,
            enabled=self.writer,
            tensorboard=self.path / tensorboard if tensorboard else None,
        )

    def save_checkpoint(self, name: str, obj: Any) -> Path:
        """A module (as a redegkit checkpoint) or a state dict, atomically; rank 0 only."""
        from .models.checkpoints import save_checkpoint

        p = self.path / name
        if self.writer:
            save_checkpoint(p, obj)
        return p

    def load_checkpoint(self, name: str, map_location: Any = "cpu") -> dict[str, Any]:
        """The raw checkpoint dict ``name`` (errors name the file)."""
        from .models.checkpoints import load_raw

        return load_raw(self.path / name, map_location)
