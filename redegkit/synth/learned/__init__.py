"""The learned producer of ``redeg synthesize --bank emb.pt``: HQ crops -> LQ through a bank.

Named stages with typed messages, each in its own module:

    plan     SamplePlan / CalibrationPost (pydantic, recorded in the sample JSON), DeviceSpec;
             draw_plan(cfg, tables, key): everything random about a sample, from its key
    source   workers: read, decode, crop, plan, JSON, hybrid presets -> SourceChunk
    device   main: DeviceStage (batcher, batches in flight) + degrade_batch(synth, ctx, batch)
    post     the post steps after the bank's calibration (where a new step goes)
    sink     workers: PNG encodes and tar members -> EncodedChunk
    engine   LearnedProducer: the stages wired together, in input order

This package imports torch; the classical path (:mod:`redegkit.synth.classical`) does not.
Determinism: every random choice comes from the sample's key, every sample is computed alone on
the CPU (batch boundaries are fixed by the sample sequence on CUDA), networks run in eval mode and
the noise is a counter-based hash: one seed gives byte-identical shards whatever ``--workers``
and, on the CPU, ``--batch``.
"""

from __future__ import annotations

from typing import Any

from ...bank import BankError, build_synthesizer, load_bank, module_sha256
from ...io import storage
from ...models.checkpoints import load_fitted
from ..config import SynthConfig
from .engine import LearnedProducer
from .plan import CalibrationPost, ChoiceTable, DeviceSpec, SamplePlan, draw_plan

__all__ = [
    "CalibrationPost",
    "ChoiceTable",
    "DeviceSpec",
    "LearnedProducer",
    "SamplePlan",
    "bank_producer",
    "draw_plan",
]


def bank_producer(cfg: SynthConfig, *, force: bool = False) -> tuple[LearnedProducer, dict[str, Any]]:
    """Load ``cfg.bank`` (and ``cfg.model`` when given), check the options against it, and return
    the producer plus what goes into the run fingerprint. Raises :class:`BankError` on a bad bank
    or options that do not fit it; a ``--model`` whose DegNet did not make the bank is refused
    unless ``force``."""
    assert cfg.bank is not None
    bank = load_bank(cfg.bank)
    encoder, generator = build_synthesizer(bank)
    prov: dict[str, Any] = {
        "bank": storage.basename(cfg.bank),
        "bank_sha256": bank.sha256,
        "synthesizer": "bank",
    }
    if cfg.model:
        nets = load_fitted(cfg.model)
        if module_sha256(nets["degnet"]) != bank.degnet_sha256 and not force:
            raise BankError(
                f"{cfg.model}: its DegNet did not make {cfg.bank}; its generator would read the bank's "
                "embeddings in another space (pass --force to use it anyway)"
            )
        encoder, generator = nets["encoder"], nets["generator"]
        if generator.style_dim != bank.dim:
            raise BankError(
                f"{cfg.model}: generator takes {generator.style_dim}-d embeddings, the bank holds {bank.dim}-d"
            )
        prov.update(synthesizer=storage.shown(cfg.model), synthesizer_sha256=module_sha256(generator))
    n = len(bank)
    if cfg.choice == "index" or cfg.index:
        if not cfg.index or any(not 0 <= i < n for i in cfg.index) or len(cfg.index) > 2:
            raise BankError(
                f"--index needs one or two indices in [0, {n - 1}] (the bank holds {n}), got {cfg.index}"
            )
    if cfg.choice == "weighted" and float(bank.weights.sum()) <= 0:
        raise BankError(f"{cfg.bank}: all sampling weights are 0; --choice weighted has nothing to draw")
    producer = LearnedProducer(bank, encoder, generator, prov)
    return producer, {"bank_sha256": bank.sha256, "model": prov.get("synthesizer_sha256")}
