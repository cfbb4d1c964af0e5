"""The messages between the stages of `synthesize` that every producer shares.

A run is a list of :class:`WorkItem` (its inputs, in order). A producer turns them into
:class:`EncodedChunk` s, in input order: per input an :class:`InputDone` with its samples already
serialised as tar members, or the record of why it has none. The core hands those to the shard
writer. The learned producer's own messages (plans, crops, device batches, sink jobs) live in
:mod:`redegkit.synth.learned`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io.shards import PartRef, part_path
from ..io.sources import Source


@dataclass(frozen=True)
class RunTarget:
    """Where a run writes (what a producer needs whose workers write part files)."""

    out: Path
    prefix: str
    rank: int
    run: str = field(default_factory=lambda: f"{os.getpid()}x{os.urandom(3).hex()}")  # this run's

    def part(self, first_input: int, kind: str) -> str:
        """The ``kind`` part file of the chunk of inputs that starts at ``first_input``."""
        return str(part_path(self.out, self.prefix, self.rank, first_input, kind, self.run))


@dataclass(frozen=True)
class WorkItem:
    """One input of the run: its position in this rank's input list, and its file."""

    index: int
    source: Source


@dataclass
class InputDone:
    """One input, finished: its samples' tar members (consecutive, in sample order) or why there
    are none (``failure``: it could not be used; ``skipped``: the policy left it out)."""

    index: int
    keys: list[str] = field(default_factory=list)
    members: bytes | tuple[PartRef, ...] = b""  # the bytes, or where workers wrote them (in order)
    payload: int = 0  # the samples' field bytes (what a shard's max_bytes counts)
    failure: dict[str, Any] | None = None
    skipped: dict[str, Any] | None = None

    @property
    def records(self) -> list[dict[str, Any]]:
        return [r for r in (self.failure, self.skipped) if r]


@dataclass
class EncodedChunk:
    """Consecutive finished inputs and the seconds each stage spent on them."""

    inputs: list[InputDone]
    timings: dict[str, float] = field(default_factory=dict)


TIMING_KEYS = ("read", "decode", "degrade", "encode")


def new_timings() -> dict[str, float]:
    return dict.fromkeys(TIMING_KEYS, 0.0)
