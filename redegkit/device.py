"""Choosing the torch device: one rule for every stage."""

from __future__ import annotations

import torch

from .config import ConfigError


def pick_device(device: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: this process's GPU (``cuda:LOCAL_RANK`` under torchrun) when CUDA is available,
    else the CPU. ``cuda`` without an index means this rank's GPU. Asking for CUDA where there is
    none is an error that says so (no silent fallback to the CPU)."""
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
