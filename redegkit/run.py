"""Which process am I, which device is mine, which precision: the run context, from the environment.

Under ``torchrun`` every process gets ``RANK``, ``LOCAL_RANK`` (its index on this machine) and
``WORLD_SIZE``. A process must then use ``cuda:LOCAL_RANK`` and make it the current CUDA device;
without that, every rank of a node lands on GPU 0. :meth:`RunContext.from_env` does both, once,
for the stage that asks (today ``synthesize --bank``); without a launcher it is rank 0 of 1.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch

from .config import ConfigError
from .device import pick_device

Precision = Literal["bf16", "fp32"]


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not an integer (set by torchrun)") from None


@dataclass(frozen=True)
class RunContext:
    """rank / local rank / world size, this process's device, and its compute precision.

    ``precision`` is what the networks run in: the requested one on CUDA, always fp32 on the CPU
    (the reference path)."""

    rank: int = 0
    local_rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: Precision = "fp32"

    @property
    def main(self) -> bool:
        """Rank 0: the process that speaks for the run."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @classmethod
    def from_env(cls, device: str | torch.device = "auto", precision: Precision = "bf16",
                 env: Mapping[str, str] | None = None) -> RunContext:
        """The context of this process from ``RANK`` / ``LOCAL_RANK`` / ``WORLD_SIZE`` (``env``,
        default ``os.environ``). ``device="auto"`` or ``"cuda"`` means ``cuda:LOCAL_RANK`` when
        CUDA is available (else the CPU); a CUDA device is also made the current one. Raises
        :class:`ConfigError` for inconsistent variables or a local rank without its GPU."""
        env = os.environ if env is None else env
        world = _env_int(env, "WORLD_SIZE", 1)
        rank = _env_int(env, "RANK", 0)
        local_rank = _env_int(env, "LOCAL_RANK", 0)
        if world < 1 or not 0 <= rank < world or local_rank < 0:
            raise ConfigError(f"inconsistent torchrun environment: RANK={rank}, LOCAL_RANK={local_rank}, "
                              f"WORLD_SIZE={world} (need 0 <= RANK < WORLD_SIZE and LOCAL_RANK >= 0)")
        dev = pick_device(device, local_rank)
        if dev.type == "cuda":
            count = torch.cuda.device_count()
            if dev.index >= count:
                raise ConfigError(f"device {dev} (LOCAL_RANK={local_rank}) asked for, but this machine has "
                                  f"{count} CUDA device(s); start at most {count} processes per node")
            torch.cuda.set_device(dev)
        if precision not in ("bf16", "fp32"):
            raise ConfigError(f"precision must be bf16 or fp32, got {precision!r}")
        return cls(rank=rank, local_rank=local_rank, world=world, device=dev,
                   precision=precision if dev.type == "cuda" else "fp32")
