"""The plan of one learned sample: which embedding, how strong, what follows the generator.

Everything random about a learned sample is drawn here, by :func:`draw_plan`, from
``sample_rng(seed, key)`` and the bank's tables: nothing later draws. The plan is a pydantic
model (:class:`SamplePlan`, like :mod:`redegkit.degrade.params`) and is recorded, whole, in the
sample's JSON as ``method``; :class:`CalibrationPost` is its ``post``, the bank's per-embedding
calibration mixed for this sample and rounded, so a sample can be reproduced from its JSON. The
device stage reads the compact :class:`DeviceSpec` derived from it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from ...rng import sample_rng, sample_seed, seed_to_json
from ..config import SynthConfig

Lists = list[Any]  # nested lists of floats, as stored in the JSON


class CalibrationPost(BaseModel):
    """What follows the generator for one sample (the JSON's ``method.post``): the strength and,
    with the bank's calibration, its mixed filters, colour map, noise covariance and correlation
    radius, the calibrated noise's seed and the JPEG quality (0: none). Absent fields: no such step."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strength: float
    filter: Lists | None = None
    color: Lists | None = None
    noise_cov: Lists | None = None
    noise_corr: float | None = None
    noise_psd: Lists | None = None  # banks baked before it have none (their noise: cov and corr)
    noise_seed: str | None = None
    jpeg: int | None = None
    steps: dict[str, Any] | None = None  # the run's post steps (redegkit.synth.learned.post)

    @property
    def calibrated(self) -> bool:
        return self.noise_corr is not None


class SamplePlan(BaseModel):
    """The learned degradation of one sample (the JSON's ``method``, with the bank's provenance)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    choice: str
    indices: list[int]
    mix_weights: list[float]
    strength: float
    noise_sigma: float
    noise_seed: int  # written as a decimal string (seed_to_json)
    downsample: str
    tiles: int
    post: CalibrationPost | None = None

    def method(self, provenance: dict[str, Any]) -> dict[str, Any]:
        """The sample JSON's ``method`` record."""
        # the fields' values as they are (plain numbers, strings, lists; pydantic keeps them in
        # __dict__): the same JSON as model_dump's, without its serializer's cost per sample
        rec = {"kind": "bank", **provenance, **self.__dict__, "noise_seed": seed_to_json(self.noise_seed)}
        del rec["post"]
        if self.post is not None:
            rec["post"] = {k: v for k, v in self.post.__dict__.items() if v is not None}
        return rec


@dataclass(frozen=True)  # no slots: a slotted dataclass unpickles through fields(), 2x slower
class DeviceSpec:
    """What the device stage needs of a plan (small: it crosses from a worker per sample)."""

    indices: tuple[int, ...]
    mix_weights: tuple[float, ...]
    strength: float
    noise_sigma: float
    noise_seed: int
    downsample: str
    calibrated: bool  # the bank's calibration arrays apply (mixed by indices and weights)
    cal_seed: int  # the calibrated noise's seed
    jpeg: int  # a calibrated JPEG quality (0: none): such samples are finished on the host
    steps: dict[str, Any] | None = None  # the post steps drawn for this sample (by name)

    @property
    def mix_key(self) -> tuple[tuple[int, ...], tuple[float, ...]]:
        return self.indices, self.mix_weights


def device_spec(plan: SamplePlan) -> DeviceSpec:
    post = plan.post
    cal = post is not None and post.calibrated
    return DeviceSpec(
        tuple(plan.indices), tuple(plan.mix_weights), plan.strength, plan.noise_sigma, plan.noise_seed,
        plan.downsample, cal, int(post.noise_seed) if cal and post and post.noise_seed else 0,
        int(post.jpeg or 0) if cal and post else 0, post.steps if post is not None else None,
    )  # fmt: skip


@dataclass
class ChoiceTable:
    """What drawing an embedding index needs: the bank size, cluster labels, normalised weights."""

    n: int
    labels: np.ndarray | None
    weights: np.ndarray | None


def parse_mix_preset(spec: str | None) -> tuple[str | None, float]:
    """``"realesrgan:0.3"`` -> ("realesrgan", 0.3); None -> (None, 0.0)."""
    if not spec:
        return None, 0.0
    name, _, share = spec.rpartition(":")
    return name, float(share)


def hybrid_coin(cfg: SynthConfig, key: str, share: float) -> bool:
    """Whether a hybrid run sends this sample through the classical preset. The coin has its own
    salt, so a preset sample degrades exactly as a classical run of that preset would."""
    return float(sample_rng(cfg.seed, key, "hybrid").random()) < share


def _pick(cfg: SynthConfig, table: ChoiceTable, rng: np.random.Generator, slot: int) -> int:
    if cfg.index:  # a fixed index wins over the choice mode
        return int(cfg.index[min(slot, len(cfg.index) - 1)])
    if cfg.choice == "cluster":
        assert table.labels is not None
        members = np.flatnonzero(table.labels == int(rng.integers(int(table.labels.max()) + 1)))
        return int(members[int(rng.integers(len(members)))])
    if cfg.choice == "weighted":
        return int(rng.choice(table.n, p=table.weights))
    return int(rng.integers(table.n))


class Calibration:
    """The bank's per-embedding calibration (float64 numpy), mixed per plan with caches: the
    JSON's rounded numbers (:meth:`post_of`) and, from exactly those numbers, the float32 arrays the
    device applies (:meth:`arrays`)."""

    def __init__(self, cal: dict[str, Any] | None) -> None:
        self.np = None if cal is None else {k: _as_np(v, k) for k, v in cal.items()}
        self._mixed = functools.lru_cache(maxsize=4096)(self._mix)
        self.arrays = functools.lru_cache(maxsize=4096)(self._arrays)

    def __getstate__(self) -> dict[str, Any]:
        return {"np": self.np}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(None)  # type: ignore[misc]
        self.np = state["np"]

    def post_of(
        self, cfg: SynthConfig, key: str, idx: list[int], wts: list[float], s: float
    ) -> CalibrationPost | None:
        """What follows the generator (None: nothing; strength 1 and no calibration)."""
        if self.np is None or not cfg.calibration:
            return None if s == 1.0 else CalibrationPost.model_construct(strength=s)
        q = int(self.np["jpeg"][idx[max(range(len(wts)), key=wts.__getitem__)]])  # the first largest weight
        q = 0 if q == 0 or s == 0 else int(round(100 - s * (100 - q)))
        seed = seed_to_json(sample_seed(cfg.seed, key, "calib-noise"))
        return CalibrationPost.model_construct(
            strength=s, **self._mixed(tuple(idx), tuple(wts)), noise_seed=seed, jpeg=q
        )

    def _mix(self, idx: tuple[int, ...], wts: tuple[float, ...]) -> dict[str, Any]:
        """The embeddings' calibration mixed with the weights, rounded (the JSON's numbers)."""
        assert self.np is not None
        cal = self.np

        def mix(name: str) -> np.ndarray:
            return sum(cal[name][i] * w for i, w in zip(idx, wts, strict=True))

        def rnd(a: np.ndarray) -> Lists:
            return [rnd(x) for x in a] if a.ndim > 1 else [round(float(v), 7) for v in a.tolist()]

        out = {"filter": rnd(mix("filter")), "color": rnd(mix("color")), "noise_cov": rnd(mix("noise_cov")),
               "noise_corr": round(float(mix("noise_corr")), 5)}  # fmt: skip
        if "noise_psd" in cal and any(cal["noise_psd"][i].any() for i in idx):
            out["noise_psd"] = rnd(mix("noise_psd"))  # spectra mix as the fields' powers do
        return out

    def _arrays(self, idx: tuple[int, ...], wts: tuple[float, ...]) -> dict[str, Any]:
        m = self._mixed(idx, wts)
        return {k: np.asarray(v, np.float32) if isinstance(v, list) else v for k, v in m.items()}


def _as_np(v: Any, name: str) -> np.ndarray:
    a = v.numpy() if hasattr(v, "numpy") else np.asarray(v)
    return a if name == "jpeg" else a.astype(np.float64)


def draw_plan(cfg: SynthConfig, table: ChoiceTable, cal: Calibration, key: str, tiles: int) -> SamplePlan:
    """The learned degradation of one sample from ``sample_rng(seed, key)`` (the draws in this
    order: embedding(s), mix weight, strength, noise coin and level, interpolation)."""
    rng = sample_rng(cfg.seed, key)
    indices, weights = [_pick(cfg, table, rng, 0)], [1.0]
    if cfg.mix:
        indices.append(_pick(cfg, table, rng, 1))
        t = float(rng.random())
        weights = [round(1.0 - t, 6), round(t, 6)]
    lo = cfg.strength if cfg.strength_min is None else min(cfg.strength_min, cfg.strength)
    strength = cfg.strength if lo == cfg.strength else float(rng.uniform(lo, cfg.strength))
    sigma = 0.0
    if float(rng.random()) < cfg.noise_prob:
        sigma = int(rng.integers(0, round(cfg.noise_max * 100) + 1)) / 100.0
    interp = cfg.down[int(rng.integers(len(cfg.down)))]
    strength = round(strength, 6)
    choice: Literal["index", "uniform", "cluster", "weighted"] = "index" if cfg.index else cfg.choice
    return SamplePlan.model_construct(
        choice=choice, indices=indices, mix_weights=weights, strength=strength, noise_sigma=sigma,
        noise_seed=sample_seed(cfg.seed, key, "noise"), downsample=interp, tiles=tiles,
        post=cal.post_of(cfg, key, indices, weights, strength),
    )  # fmt: skip
