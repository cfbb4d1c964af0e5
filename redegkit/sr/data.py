"""Training and validation data for ``train-sr``, on top of :func:`redegkit.io.shards.paired_dataset`.

The training stream is endless, deterministic and resumable:

- Each rank reads its own share of the shards (``resampled``: draws shards with replacement),
  through ``paired_dataset`` (shard + sample shuffling, paired random crops, flips/rotations,
  corrupt samples counted and skipped). Each pass over the shards ("epoch") is reseeded, so
  crops and order differ between passes.
- The stream restarts every ``segment_steps`` steps from a seed of (seed, segment). Resuming at
  step ``s`` rebuilds segment ``s // segment_steps`` and drops its first ``s % segment_steps``
  batches, so the batches after a resume are exactly those of an uninterrupted run (for the
  same batch size and worker count) at the cost of replaying at most one segment.
- LQ at HQ size (``lq_resolution = "high"``, the reference's set-up) is processed as the
  reference does: with p 0.4 Gaussian noise (sigma in {0, 0.01, ..., 0.2} on [-1, 1]), clamped to
  [-1, 1], then resized to 1/scale (bilinear or bicubic, not antialiased; not clamped after, so
  bicubic can overshoot slightly). ``resize_modes`` may name the antialiased ``-aa`` kernels.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Generator, Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..console import log
from ..io import storage
from ..io.images import ImageDecodeError, decode_image, u8_to_unit
from ..io.shards import ReadStats, list_shards, paired_dataset
from ..io.shards.read import register_url_schemes
from ..io.sources import list_sources
from ..rng import sample_seed
from .config import SRDataConfig

Batch = tuple[torch.Tensor, torch.Tensor]


class DataError(ValueError):
    """Training or validation data that cannot be used (message names the shards)."""


def _peek_samples(urls: list[str]) -> Iterator[dict]:
    """Raw samples in shard order, read by this process alone (also under torchrun, where
    WebDataset's default node splitter would refuse to run)."""
    register_url_schemes(urls)
    for url in urls:
        yield from wds.WebDataset(
            url, shardshuffle=False, nodesplitter=None, workersplitter=None, empty_check=False
        )


def detect_lq_resolution(
    urls: list[str], lq_key: str = "lq.png", hq_key: str = "hq.png", limit: int = 16
) -> str:
    """'low' when LQ is smaller than HQ (redegkit shards), 'high' when both have one size."""
    for n, sample in enumerate(_peek_samples(urls)):
        if n >= limit:
            break
        try:
            lq, hq = decode_image(sample[lq_key]), decode_image(sample[hq_key])
        except (KeyError, ImageDecodeError):
            continue
        return "high" if lq.shape[:2] == hq.shape[:2] else "low"
    raise DataError(f"no readable {lq_key}/{hq_key} sample in the first {limit} samples of {urls[:3]} …")


class HighResLQ:
    """Turns an HQ-sized LQ patch into the network input: optional noise, then a 1/scale resize."""

    def __init__(self, scale: int, cfg: SRDataConfig, rng: np.random.Generator) -> None:
        self.scale, self.cfg, self.rng = scale, cfg, rng

    def __call__(self, pair: Batch) -> Batch:
        lq, hq = pair
        if lq.dtype == torch.uint8:  # the stream ships uint8; the noise and resize work in float
            lq = u8_to_unit(lq)
        if self.rng.random() < self.cfg.noise_prob:
            sigma = int(self.rng.integers(0, round(self.cfg.noise_sigma_max * 100) + 1)) / 100.0
            g = torch.Generator().manual_seed(int(self.rng.integers(0, 2**62)))
            lq = lq + torch.randn(lq.shape, generator=g) * sigma
        lq = lq.clamp(-1, 1)  # as the reference: clamp the noisy LQ, then resize (and no clamp after)
        if self.scale > 1:
            mode = self.cfg.resize_modes[int(self.rng.integers(0, len(self.cfg.resize_modes)))]
            kernel, antialias = mode.removesuffix("-aa"), mode.endswith("-aa")
            size = (lq.shape[-2] // self.scale, lq.shape[-1] // self.scale)
            lq = F.interpolate(lq[None], size=size, mode=kernel, align_corners=False, antialias=antialias)[0]
        return lq, hq


class EndlessPairs(IterableDataset):
    """Yields ``(lq [B,3,h,w], hq [B,3,H,W], worker, corrupt_so_far)`` forever, for one rank: uint8
    (the LQ is float in [-1, 1] when it was made from an HQ-sized LQ), converted on the device."""

    def __init__(
        self,
        urls: list[str],
        cfg: SRDataConfig,
        *,
        scale: int,
        batch: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
        lq_resolution: str = "low",
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.urls, self.cfg, self.scale, self.batch = urls, cfg, scale, batch
        self.seed, self.rank, self.world = seed, rank, world
        self.lq_resolution, self.num_workers = lq_resolution, max(1, num_workers)

    def _epoch_urls(self, epoch: int) -> list[str]:
        rng = np.random.default_rng(sample_seed(self.seed, "shards", self.rank, epoch))
        if self.cfg.resampled:
            n = max(self.num_workers, len(self.urls) // self.world, 1)
            return [self.urls[i] for i in rng.integers(0, len(self.urls), n)]
        mine = self.urls[self.rank :: self.world]
        return [mine[i] for i in rng.permutation(len(mine))]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, int, int]]:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        stats = ReadStats()
        pending: list[Batch] = []
        empty_epochs = 0
        for epoch in itertools.count():
            ep_seed = sample_seed(self.seed, "epoch", self.rank, epoch)
            transform = None
            if self.lq_resolution == "high":
                transform = HighResLQ(
                    self.scale, self.cfg, np.random.default_rng(sample_seed(ep_seed, "lq", worker))
                )
            ds = paired_dataset(
                self._epoch_urls(epoch),
                crop=self.cfg.hq_crop,
                scale=self.scale if self.lq_resolution == "low" else 1,
                lq_key=self.cfg.lq_key,
                hq_key=self.cfg.hq_key,
                shuffle=self.cfg.shuffle_buffer,
                resampled=False,
                seed=ep_seed,
                augment=self.cfg.augment,
                split_by_node=False,
                stats=stats,
                transform=transform,
                as_uint8=True,
            )
            got = 0
            for pair in ds:
                got += 1
                pending.append(pair)
                if len(pending) == self.batch:
                    lq = torch.stack([p[0] for p in pending])
                    hq = torch.stack([p[1] for p in pending])
                    pending = []
                    yield lq, hq, worker, stats.corrupt
            empty_epochs = 0 if got else empty_epochs + 1
            if empty_epochs >= 2:
                raise DataError(
                    f"rank {self.rank} worker {worker}: no usable samples in its shards "
                    f"({stats.corrupt} corrupt; last error: {stats.last_error or 'none'}); "
                    f"check --shards and the field names {self.cfg.lq_key!r}/{self.cfg.hq_key!r}"
                )


class TrainStream:
    """Batches for one rank, from step ``start`` on; see the module doc for exact resuming."""

    def __init__(
        self,
        shards: str | Path | list[str],
        cfg: SRDataConfig,
        *,
        scale: int,
        batch: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
        pin_memory: bool = False,
    ) -> None:
        self.urls = list_shards(shards)
        # local files must exist; URLs and "pipe:" specs (object stores) are left to WebDataset
        missing = [u for u in self.urls if not re.match(r"^[a-z][a-z0-9+.-]+:", u) and not Path(u).is_file()]
        if not self.urls or missing:
            raise DataError(f"shards not found: {', '.join((missing or [str(shards)])[:3])}")
        if not cfg.resampled and len(self.urls) < world:
            raise DataError(
                f"{len(self.urls)} shard(s) for {world} ranks: use more shards or data.resampled = true"
            )
        self.cfg, self.scale, self.batch, self.seed = cfg, scale, batch, seed
        self.rank, self.world, self.pin_memory = rank, world, pin_memory
        self.lq_resolution = (
            detect_lq_resolution(self.urls, cfg.lq_key, cfg.hq_key)
            if cfg.lq_resolution == "auto"
            else cfg.lq_resolution
        )
        per_rank = len(self.urls) if cfg.resampled else len(self.urls[rank::world])
        # every worker needs at least one shard per pass, or it would never yield
        self.num_workers = min(cfg.num_workers, per_rank)
        self.corrupt_before = 0  # corrupt samples seen in finished segments (and before a resume)
        self._corrupt_now: dict[int, int] = {}

    @property
    def corrupt(self) -> int:
        """Corrupt samples skipped so far by this rank's readers."""
        return self.corrupt_before + sum(self._corrupt_now.values())

    def batches(self, start: int = 0) -> Generator[Batch, None, None]:
        """Endless ``(lq, hq)`` CPU batches for steps ``start, start+1, …``."""
        k = self.cfg.segment_steps
        for segment in itertools.count(start // k):
            ds = EndlessPairs(
                self.urls,
                self.cfg,
                scale=self.scale,
                batch=self.batch,
                seed=sample_seed(self.seed, "segment", segment),
                rank=self.rank,
                world=self.world,
                lq_resolution=self.lq_resolution,
                num_workers=self.num_workers,
            )
            loader = DataLoader(
                ds,
                batch_size=None,
                num_workers=self.num_workers,
                pin_memory=self.pin_memory,
                prefetch_factor=4 if self.num_workers else None,
            )
            skip = start - segment * k if segment == start // k else 0
            it = iter(loader)
            for i in range(k):
                lq, hq, worker, corrupt = next(it)
                self._corrupt_now[int(worker)] = int(corrupt)
                if i >= skip:
                    yield lq, hq
            self.corrupt_before += sum(self._corrupt_now.values())
            self._corrupt_now = {}
            del it, loader  # shuts the workers down before the next segment starts


# ----------------------------------------------------------------------------------------------
# Validation


def _fit_scale(
    lq: np.ndarray, hq: np.ndarray | None, scale: int, resize: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Crop so that hq = scale x lq exactly; downscale an HQ-sized LQ (no noise) when ``resize``."""
    if hq is None:
        return lq, None
    h, w = (hq.shape[0] // scale) * scale, (hq.shape[1] // scale) * scale
    hq = hq[:h, :w]
    if resize:
        lq = cv2.resize(lq[:h, :w], (w // scale, h // scale), interpolation=cv2.INTER_AREA)
    else:
        lq = lq[: h // scale, : w // scale]
        if lq.shape[0] * scale != h or lq.shape[1] * scale != w:
            raise DataError(
                f"validation pair is not aligned at x{scale}: lq {lq.shape[:2]}, hq {hq.shape[:2]}"
            )
    return lq, hq


def load_val_set(
    spec: str | Path, cfg: SRDataConfig, scale: int, max_images: int = 16
) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """``[(name, lq, hq or None)]`` RGB uint8, with hq = scale x lq.

    ``spec``: a folder with ``lq/`` and ``hq/`` sub-folders (pairs matched by relative path
    without extension), a folder of LQ images only (previews, no metrics), or shard(s).
    An unreadable or misaligned image is skipped with a warning that names it (as a corrupt
    shard sample is), so one bad file never stops a training run.
    """
    p = str(spec)
    out: list[tuple[str, np.ndarray, np.ndarray | None]] = []
    folder = "{" not in p and storage.is_dir(p)
    if folder and storage.is_dir(storage.join(p, "lq")):
        hq_by_stem = {}
        if storage.is_dir(storage.join(p, "hq")):
            hq_by_stem = {
                Path(s.rel).with_suffix("").as_posix(): s.path for s in list_sources(storage.join(p, "hq"))
            }
        for s in list_sources(storage.join(p, "lq")):
            if len(out) >= max_images:
                break
            stem = Path(s.rel).with_suffix("").as_posix()
            hq_path = hq_by_stem.get(stem)
            try:
                lq, hq = decode_image(s.path), (decode_image(hq_path) if hq_path else None)
                out.append((stem, *_fit_scale(lq, hq, scale, hq is not None and lq.shape == hq.shape)))
            except ImageDecodeError as e:
                log.warning("validation image skipped: %s", e)
            except DataError as e:
                log.warning("validation pair skipped: %s: %s", s.path, e)
    elif folder and not any(n.endswith(".tar") for n in storage.list_files(p)):
        for s in list_sources(p):
            if len(out) >= max_images:
                break
            try:
                out.append((Path(s.rel).with_suffix("").as_posix(), decode_image(s.path), None))
            except ImageDecodeError as e:
                log.warning("validation image skipped: %s", e)
    else:
        for sample in _peek_samples(list_shards(spec)):
            if len(out) >= max_images:
                break
            try:
                lq, hq = decode_image(sample[cfg.lq_key]), decode_image(sample[cfg.hq_key])
                out.append((sample["__key__"], *_fit_scale(lq, hq, scale, lq.shape == hq.shape)))
            except (KeyError, ImageDecodeError):
                continue
            except DataError as e:
                log.warning(
                    "validation sample skipped: %s (%s): %s", sample["__key__"], sample.get("__url__"), e
                )
    if not out:
        raise DataError(f"{spec}: no validation images found")
    return out
