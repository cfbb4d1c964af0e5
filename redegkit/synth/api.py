"""`synthesize`: the entry point that picks the producer for a config and runs the shared core.

A preset run uses :class:`redegkit.synth.classical.ClassicalProducer`; a bank run (``cfg.bank``)
loads the bank and uses :mod:`redegkit.synth.learned`, imported only then because it imports
torch (a classical run starts without it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..io.sources import Source
from .classical import ClassicalProducer
from .config import SynthConfig
from .core import Producer, SynthResult, run_synthesis

if TYPE_CHECKING:
    from .ray_engine import RayOptions


def choose_producer(cfg: SynthConfig, *, force: bool = False) -> tuple[Producer, dict[str, Any]]:
    """The producer for ``cfg`` and what it adds to the run fingerprint. A bank is loaded and
    checked here (:class:`redegkit.bank.BankError` if it does not fit the options)."""
    if cfg.bank:
        from .learned import bank_producer  # torch and the networks: only for the learned path

        return bank_producer(cfg, force=force)
    return ClassicalProducer(), {}


def synthesize(
    sources: list[Source],
    out_dir: str | Path,
    cfg: SynthConfig,
    *,
    user_presets: dict[str, Any] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    force: bool = False,
    progress: Callable[..., None] | None = None,
    rank: int | None = None,
    world: int | None = None,
    producer: Producer | None = None,
    fingerprint_extra: dict[str, Any] | None = None,
    ray: RayOptions | None = None,
) -> SynthResult:
    """Run synthesis over ``sources`` into ``out_dir`` (see :mod:`redegkit.synth.core` for the
    guarantees: deterministic, resumable, one report).

    ``producer`` defaults to the one ``cfg`` asks for (:func:`choose_producer`): the classical
    presets on CPU worker processes, or the bank's learned producer when ``cfg.bank`` is set.
    ``ray``: run the shards on a Ray cluster instead (:mod:`redegkit.synth.ray_engine`).

    Raises FileExistsError if ``out_dir`` already has shards and neither ``resume`` nor
    ``overwrite`` is set, or if ``resume`` finds a run with other options (unless ``force``).
    """
    if producer is None:
        producer, extra = choose_producer(cfg, force=force)
        fingerprint_extra = {**(fingerprint_extra or {}), **extra}
    if ray is not None:
        from .ray_engine import run_ray

        return run_ray(sources, out_dir, cfg, ray_options=ray, user_presets=user_presets,
                       resume=resume, overwrite=overwrite, force=force, progress=progress,
                       fingerprint_extra=fingerprint_extra)  # fmt: skip
    return run_synthesis(
        sources,
        out_dir,
        cfg,
        producer=producer,
        user_presets=user_presets,
        resume=resume,
        overwrite=overwrite,
        force=force,
        progress=progress,
        rank=rank,
        world=world,
        fingerprint_extra=fingerprint_extra,
    )
