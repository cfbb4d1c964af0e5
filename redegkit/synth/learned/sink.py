"""The sink stage of the learned path (runs in the pool's workers): a chunk's samples -> PNGs -> tar
members, for the shard writer.

A :class:`SinkJob` is one source chunk whose learned samples all have their LQ: the chunk's HQ
pack, the packs holding its LQs (device batches, and the hybrid samples' own), and per sample
where its LQ is. A calibrated-JPEG sample arrives at the HQ resolution and is finished here first
(:func:`redegkit.bank.operators.finish_on_host`). The result is an
:class:`~redegkit.synth.messages.EncodedChunk`; the main process only appends it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ...bank.operators import finish_on_host
from ...io.images import encode_image
from ...io.shards import sample_members
from ..messages import EncodedChunk, InputDone
from .pixels import ImagePack
from .plan import DeviceSpec


@dataclass(frozen=True, slots=True)
class LqRef:
    """Where a sample's LQ is: image ``row`` of ``packs[pack]``; ``finish``: the plan of a sample
    whose JPEG, noise and downsampling are still to do."""

    pack: int
    row: int
    finish: DeviceSpec | None = None


@dataclass
class SinkInput:
    index: int
    keys: list[str] = field(default_factory=list)
    jsons: list[bytes] = field(default_factory=list)
    failure: dict[str, Any] | None = None
    skipped: dict[str, Any] | None = None


@dataclass
class SinkJob:
    """One chunk's samples, in order: ``hq_rows[k]`` is sample k's row in ``hq``, ``lq[k]`` its LQ."""

    inputs: list[SinkInput]
    hq: ImagePack
    hq_rows: list[int]
    lq: list[LqRef]
    packs: list[ImagePack]
    png_level: int
    scale: int


def encode_chunk(_state: object, job: SinkJob) -> EncodedChunk:
    """The task: PNG-encode a chunk's HQ crops and LQs and serialise every sample's tar members."""
    t0 = time.perf_counter()
    out, k = [], 0
    for inp in job.inputs:
        parts, payload = [], 0
        for key, js in zip(inp.keys, inp.jsons, strict=True):
            ref = job.lq[k]
            lq = job.packs[ref.pack].view(ref.row)
            if ref.finish is not None:
                f = ref.finish
                lq = finish_on_host(lq, jpeg=f.jpeg, scale=job.scale, interp=f.downsample, sigma=f.noise_sigma,
                                    seed=f.noise_seed)  # fmt: skip
            fields = {
                "hq.png": encode_image(job.hq.view(job.hq_rows[k]), "png", png_level=job.png_level),
                "lq.png": encode_image(lq, "png", png_level=job.png_level),
                "json": js,
            }
            members, n = sample_members(key, fields)
            parts.append(members)
            payload += n
            k += 1
        out.append(InputDone(inp.index, list(inp.keys), b"".join(parts), payload, inp.failure, inp.skipped))
    return EncodedChunk(out, {"encode": time.perf_counter() - t0})
