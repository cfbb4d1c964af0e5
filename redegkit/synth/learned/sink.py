"""The sink stage of the learned path (runs in the pool's workers): LQs -> ``lq.png`` tar members.

A :class:`SinkJob` holds a source chunk's learned samples once the device has made all their LQs:
per sample its key and where its LQ is (image ``row`` of ``packs[pack]``). A calibrated-JPEG
sample arrives at the HQ resolution and is finished here first
(:func:`redegkit.bank.operators.finish_on_host`). The ``lq.png`` members go to the chunk's sink
part file; what comes back is where each went. The shard writer's post-shard step puts a sample's
source members (``hq.png``, ``json``) and its sink member in order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ...bank.operators import finish_on_host
from ...io.images import encode_image
from ...io.shards import PartRef, ShardWriterError, tar_member_parts
from .pixels import ImagePack
from .plan import DeviceSpec


@dataclass(frozen=True)  # no slots: a slotted dataclass unpickles through fields(), 2x slower
class LqRef:
    """Where a sample's LQ is: image ``row`` of ``packs[pack]``; ``finish``: the plan of a sample
    whose JPEG, noise and downsampling are still to do."""

    pack: int
    row: int
    finish: DeviceSpec | None = None


@dataclass
class SinkJob:
    keys: list[str]
    lq: list[LqRef]
    packs: list[ImagePack]
    png_level: int
    scale: int
    part: str  # the part file the members go to


@dataclass
class SinkDone:
    """Per sample of the job: where its ``lq.png`` member is, and its PNG's bytes (payload)."""

    members: list[PartRef]
    payloads: list[int]
    seconds: float


def encode_lqs(_state: object, job: SinkJob) -> SinkDone:
    """The task: finish (calibrated JPEG) and PNG-encode a chunk's LQs into its sink part file."""
    try:
        return _encode_lqs(job)
    except OSError as e:  # writing the part file: a full disk, a lost mount
        raise ShardWriterError(f"shard writer failed: {type(e).__name__}: {e}") from e


def _encode_lqs(job: SinkJob) -> SinkDone:
    t0 = time.perf_counter()
    Path(job.part).parent.mkdir(parents=True, exist_ok=True)
    refs, payloads, offset = [], [], 0
    with open(job.part, "wb") as part:
        for key, ref in zip(job.keys, job.lq, strict=True):
            lq = job.packs[ref.pack].view(ref.row)
            if ref.finish is not None:
                f = ref.finish
                lq = finish_on_host(lq, jpeg=f.jpeg, scale=job.scale, interp=f.downsample, sigma=f.noise_sigma,
                                    seed=f.noise_seed)  # fmt: skip
            png = encode_image(lq, "png", png_level=job.png_level)
            size = 0
            for piece in tar_member_parts(f"{key}.lq.png", png):
                part.write(piece)
                size += len(piece)
            refs.append(PartRef(job.part, offset, size))
            payloads.append(len(png))
            offset += size
    return SinkDone(refs, payloads, time.perf_counter() - t0)
