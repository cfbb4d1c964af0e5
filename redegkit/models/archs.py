"""The architecture table: names, factories and state-dict detectors, filled by the model modules.

This is the bottom of :mod:`redegkit.models`: it imports nothing of ours, so a model module
(``rrdb``, ``redeg``, ``discriminators``) registers itself here without importing the checkpoint
loader, and :mod:`.checkpoints` reads the table after :mod:`.registry` has imported every model
module. The import graph stays one way: checkpoints -> registry -> model modules -> archs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

StateDict = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class ArchSpec:
    name: str
    factory: Callable[..., nn.Module]
    # state dict -> hparams for `factory(**hparams)`, or None when the keys are not this arch's
    detect: Callable[[StateDict], dict[str, Any] | None]


ARCHS: dict[str, ArchSpec] = {}


def register_arch(
    name: str, factory: Callable[..., nn.Module], detect: Callable[[StateDict], dict | None]
) -> None:
    ARCHS[name] = ArchSpec(name, factory, detect)
