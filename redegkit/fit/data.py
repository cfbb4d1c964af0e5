"""Data for ``fit-degradation``: real face pairs, natural HQ images, one shared degradation.

One training sample (spec, "Fitting: data for one step") holds, as uint8 CHW tensors (the model maps
them to float [-1, 1] on its device, see :meth:`redegkit.fit.step.FitModel.to_device`):

- ``face_hq``, ``face_lq``: a real face pair (pseudo-HQ, real LQ), cropped, rescaled, flipped. The LQ is
  sometimes replaced by a synthetic variant (the ``bsrgan`` preset on the HQ at sf 3-6, or on the real LQ
  at sf 1-2, resized back), so DegNet also sees synthetic degradations as "real".
- ``nat_hq``: a natural HQ crop (rescaled, colour-jittered, sometimes grayscale).
- ``nat_lq``, ``face_syn_lq``: ``nat_hq`` and ``face_hq`` under ONE sampled ``redeg-matched`` degradation
  (the same params applied to both, noise realisation included).

Randomness: sample ``index`` draws everything from ``sample_rng(seed, "fit", index)``, and the loader
asks for index ``step * global_batch + rank * batch + i``. A batch is therefore a pure function of
(seed, step, rank): it does not depend on the number of workers, and resuming at step s gives the
batches an uninterrupted run would have seen. Images that cannot be read are skipped (the next pair of
the epoch's order is used instead) and reported in the sample's ``errors``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..io.images import ImageDecodeError, decode_image
from ..io.pairs import FacePair, list_face_pairs  # noqa: F401  (re-exported for the loop)
from ..io.sources import Source, SourceError
from ..rng import sample_rng
from .config import DataConfig

INTERPS = (cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_LANCZOS4)
IMAGE_KEYS = ("face_hq", "face_lq", "nat_hq", "nat_lq", "face_syn_lq")


def _unit_hash(key: str, seed: int) -> float:
    h = hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2.0**64


def split_pairs(
    pairs: list[FacePair], fraction: float, seed: int = 0
) -> tuple[list[FacePair], list[FacePair]]:
    """Deterministic (train, held-out) split by a hash of each key.

    A pair is held out when hash(seed, key) < fraction, so adding pairs never moves old ones between
    sets. With a positive fraction and at least two pairs, at least one pair is held out (the one with
    the smallest hash), so tiny sets still get a validation signal.
    """
    if fraction <= 0 or len(pairs) < 2:
        return list(pairs), []
    hashed = sorted(pairs, key=lambda p: _unit_hash(p.key, seed))
    val = [p for p in hashed if _unit_hash(p.key, seed) < fraction] or hashed[:1]
    if len(val) == len(pairs):
        val = val[:-1]
    held = {p.key for p in val}
    return [p for p in pairs if p.key not in held], [p for p in pairs if p.key in held]


# ----------------------------------------------------------------------------- image ops


def face_box(h: int, w: int, cfg: DataConfig) -> tuple[int, int, int, int]:
    """The padding-free face box (top, bottom, left, right) scaled from ``face_ref`` to an HxW face."""
    t, b, left, r = cfg.face_box
    sy, sx = h / cfg.face_ref, w / cfg.face_ref
    return round(t * sy), round(b * sy), round(left * sx), round(r * sx)


def resize_short(img: np.ndarray, short: int, interp: int) -> np.ndarray:
    """Resize so the short side is ``short`` (aspect kept; the long side is at least ``short``)."""
    h, w = img.shape[:2]
    s = short / min(h, w)
    size = (max(short, round(w * s)), max(short, round(h * s)))
    return cv2.resize(img, size, interpolation=interp)


def random_crop(imgs: list[np.ndarray], size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The same random ``size``x``size`` window of every (equal-size) image."""
    h, w = imgs[0].shape[:2]
    y = int(rng.integers(0, h - size + 1))
    x = int(rng.integers(0, w - size + 1))
    return [im[y : y + size, x : x + size] for im in imgs]


def center_crop(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    return img[y : y + size, x : x + size]


def to_gray(img: np.ndarray) -> np.ndarray:
    g = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(np.repeat(g[:, :, None], 3, axis=2))


def color_jitter(img: np.ndarray, rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    """Brightness, contrast and saturation, each scaled by a factor drawn from [lo, hi]."""
    f = rng.uniform(lo, hi, size=3)
    x = img.astype(np.float32) * f[0]
    gray = cv2.cvtColor(np.clip(x, 0, 255).astype(np.float32), cv2.COLOR_RGB2GRAY)
    x = (x - gray.mean()) * f[1] + gray.mean()
    gray = cv2.cvtColor(np.clip(x, 0, 255).astype(np.float32), cv2.COLOR_RGB2GRAY)[:, :, None]
    x = (x - gray) * f[2] + gray
    return (np.clip(x, 0, 255) + 0.5).astype(np.uint8)


def _resize_to(img: np.ndarray, size: int, interp: int) -> np.ndarray:
    if img.shape[0] == size and img.shape[1] == size:
        return img
    return cv2.resize(img, (size, size), interpolation=interp)


# ----------------------------------------------------------------------------- the dataset


class FitDataset(Dataset):
    """Map-style dataset: ``dataset[index]`` is sample ``index`` of the run (see the module docstring).

    ``pairs`` are the training face pairs, ``naturals`` the natural HQ sources, ``crop`` the network size.
    ``presets`` maps preset names to objects from :func:`redegkit.degrade.get_preset` (resolved by
    :func:`build_dataset`). Samples are dicts of uint8 CHW tensors (RGB) plus ``index``, ``key`` and
    ``errors`` (list of ``{"path", "reason"}`` for images skipped on the way).
    """

    def __init__(
        self,
        pairs: list[FacePair],
        naturals: list[Source],
        cfg: DataConfig,
        *,
        crop: int,
        seed: int,
        length: int,
        presets: dict[str, Any],
    ) -> None:
        if not pairs:
            raise SourceError("no training face pairs")
        if not naturals:
            raise SourceError("no natural HQ images")
        self.pairs, self.naturals, self.cfg = list(pairs), list(naturals), cfg
        self.crop, self.seed, self.length, self.presets = crop, seed, length, presets
        self._orders: dict[tuple[str, int], np.ndarray] = {}
        self._bad: set[str] = set()  # per worker process: files already known to be unreadable

    def __len__(self) -> int:
        return self.length

    def _order(self, what: str, epoch: int, n: int) -> np.ndarray:
        # one permutation per epoch: every pair is seen once per epoch, in a seed-fixed order
        k = (what, epoch)
        if k not in self._orders:
            if len(self._orders) > 8:
                self._orders.clear()
            self._orders[k] = sample_rng(self.seed, f"{what}-order", epoch).permutation(n)
        return self._orders[k]

    def _read(self, path: Path, errors: list[dict[str, str]]) -> np.ndarray | None:
        if str(path) in self._bad:
            return None
        try:
            return decode_image(path)
        except ImageDecodeError as e:
            self._bad.add(str(path))
            errors.append({"path": e.path, "reason": e.reason})
            return None

    def _pick_face(self, index: int, errors: list[dict[str, str]]) -> tuple[FacePair, np.ndarray, np.ndarray]:
        n = len(self.pairs)
        order = self._order("face", index // n, n)
        for k in range(n):  # a bad pair is replaced by the next one of this epoch's order
            pair = self.pairs[order[(index + k) % n]]
            hq, lq = self._read(pair.hq, errors), self._read(pair.lq, errors)
            if hq is None or lq is None:
                continue
            if hq.shape != lq.shape:
                self._bad.add(str(pair.lq))
                errors.append(
                    {"path": str(pair.lq), "reason": f"LQ {lq.shape[:2]} and HQ {hq.shape[:2]} differ"}
                )
                continue
            return pair, hq, lq
        raise SourceError(f"none of the {n} face pairs could be read (see the errors above)")

    def _pick_natural(self, index: int, errors: list[dict[str, str]]) -> np.ndarray:
        n = len(self.naturals)
        order = self._order("natural", index // n, n)
        for k in range(n):
            img = self._read(self.naturals[order[(index + k) % n]].path, errors)
            if img is not None:
                return img
        raise SourceError(f"none of the {n} natural images could be read")

    def face_part(
        self, hq: np.ndarray, lq: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Crop box, random rescale (short side in [crop, box short side]), crop, flips, synthetic
        variant of the LQ, grayscale. Returns (hq, lq) uint8 crop x crop."""
        cfg, crop = self.cfg, self.crop
        h, w = hq.shape[:2]
        t, b, left, r = face_box(h, w, cfg)
        hq, lq = hq[t:b, left:r], lq[t:b, left:r]
        short = min(hq.shape[:2])
        target = int(round(rng.uniform(crop, max(crop, short))))
        interp = INTERPS[int(rng.integers(len(INTERPS)))]
        if cfg.face_rescale or short < crop:
            hq, lq = resize_short(hq, target, interp), resize_short(lq, target, interp)
        hq, lq = random_crop([hq, lq], crop, rng)
        if rng.random() < cfg.hflip_p:
            hq, lq = hq[:, ::-1], lq[:, ::-1]
        if rng.random() < cfg.vflip_p:
            hq, lq = hq[::-1], lq[::-1]
        hq, lq = np.ascontiguousarray(hq), np.ascontiguousarray(lq)
        u = rng.random()
        if u < cfg.syn_from_hq_p:
            lq = self._synthetic(hq, "syn_from_hq", cfg.syn_from_hq_scales, rng)
        elif u < cfg.syn_from_hq_p + cfg.syn_from_lq_p:
            lq = self._synthetic(lq, "syn_from_lq", cfg.syn_from_lq_scales, rng)
        if rng.random() < cfg.gray_p:
            hq, lq = to_gray(hq), to_gray(lq)
        return hq, lq

    def _synthetic(
        self, img: np.ndarray, preset: str, scales: list[int], rng: np.random.Generator
    ) -> np.ndarray:
        from ..degrade import apply_degradation, sample_degradation

        sf = int(scales[int(rng.integers(len(scales)))])
        params = sample_degradation(self.presets[preset], rng, scale=sf)
        out = apply_degradation(img, params, scale=sf)
        return _resize_to(out, self.crop, INTERPS[int(rng.integers(len(INTERPS)))])

    def natural_part(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Rescale by a factor in [crop/m, 1] (m = min(short, cap)), crop, jitter, grayscale."""
        cfg, crop = self.cfg, self.crop
        if cfg.natural_max_short is not None and min(img.shape[:2]) > cfg.natural_max_short:
            img = resize_short(img, cfg.natural_max_short, cv2.INTER_AREA)
        short = min(img.shape[:2])
        m = min(short, cfg.natural_rescale_cap)
        lo = min(1.0, crop / m)
        f = rng.uniform(lo, 1.0) if lo < 1.0 else 1.0
        target = max(crop, int(round(short * f)))
        if target != short:
            img = resize_short(img, target, INTERPS[int(rng.integers(len(INTERPS)))])
        (img,) = random_crop([img], crop, rng)
        img = np.ascontiguousarray(img)
        if rng.random() < cfg.jitter_p:
            img = color_jitter(img, rng, *cfg.jitter)
        if rng.random() < cfg.gray_p:
            img = to_gray(img)
        return img

    def matched_part(
        self, face_hq: np.ndarray, nat_hq: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, Any]:
        """Both HQ crops under one sampled degradation; returns (face_lq, nat_lq, params)."""
        from ..degrade import apply_degradation, sample_degradation

        params = sample_degradation(self.presets["matched"], rng)
        face_lq = _resize_to(apply_degradation(face_hq, params), self.crop, cv2.INTER_LINEAR)
        nat_lq = _resize_to(apply_degradation(nat_hq, params), self.crop, cv2.INTER_LINEAR)
        return face_lq, nat_lq, params

    def __getitem__(self, index: int) -> dict[str, Any]:
        errors: list[dict[str, str]] = []
        rng = sample_rng(self.seed, "fit", int(index))
        pair, hq, lq = self._pick_face(int(index), errors)
        face_hq, face_lq = self.face_part(hq, lq, rng)
        nat_hq = self.natural_part(self._pick_natural(int(index), errors), rng)
        face_syn_lq, nat_lq, _ = self.matched_part(face_hq, nat_hq, rng)
        imgs = {
            "face_hq": face_hq,
            "face_lq": face_lq,
            "nat_hq": nat_hq,
            "nat_lq": nat_lq,
            "face_syn_lq": face_syn_lq,
        }
        # uint8 until the model's device: a quarter of the bytes to collate, pin and copy
        out: dict[str, Any] = {
            k: torch.from_numpy(np.ascontiguousarray(v.transpose(2, 0, 1))) for k, v in imgs.items()
        }
        out.update(index=int(index), key=pair.key, errors=errors)
        return out


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack image tensors to uint8 [B, 3, crop, crop]; keep indices, keys and the flattened error list."""
    out: dict[str, Any] = {k: torch.stack([s[k] for s in samples]) for k in IMAGE_KEYS}
    out["index"] = [s["index"] for s in samples]
    out["key"] = [s["key"] for s in samples]
    out["errors"] = [e for s in samples for e in s["errors"]]
    return out


class StepBatchSampler(Sampler[list[int]]):
    """Yields, for step = start … end-1, the indices ``step*batch*world + rank*batch + i``.

    Each rank gets its own disjoint slice of the global batch (DistributedSampler-like), and a run
    resumed at ``start`` sees exactly the batches of an uninterrupted run.
    """

    def __init__(self, start: int, end: int, batch: int, rank: int = 0, world: int = 1) -> None:
        self.start, self.end, self.batch, self.rank, self.world = start, end, batch, rank, world

    def __len__(self) -> int:
        return max(0, self.end - self.start)

    def __iter__(self):
        g = self.batch * self.world
        for step in range(self.start, self.end):
            base = step * g + self.rank * self.batch
            yield list(range(base, base + self.batch))


def build_dataset(
    pairs: list[FacePair],
    naturals: list[Source],
    cfg: DataConfig,
    *,
    crop: int,
    seed: int,
    length: int,
    user_presets: dict[str, Any] | None = None,
    interp_quirk: bool = False,
) -> FitDataset:
    """Resolve the presets (built-in or the recipe's ``[presets.NAME]``) and build the dataset.

    ``interp_quirk`` switches the matched preset's quirk steps to the reference's always-bilinear resize."""
    from ..degrade import get_preset

    matched = get_preset(cfg.matched_preset, user_presets)
    if interp_quirk:
        matched = matched.model_copy(update={"interp_quirk": True})
    presets = {
        "syn_from_hq": get_preset(cfg.syn_from_hq_preset, user_presets),
        "syn_from_lq": get_preset(cfg.syn_from_lq_preset, user_presets),
        "matched": matched,
    }
    return FitDataset(pairs, naturals, cfg, crop=crop, seed=seed, length=length, presets=presets)


def make_loader(
    dataset: FitDataset, *, start: int, end: int, batch: int, rank: int = 0, world: int = 1, workers: int = 0
) -> DataLoader:
    """A DataLoader over steps [start, end) for one rank (batches are a function of the step only)."""
    return DataLoader(
        dataset,
        batch_sampler=StepBatchSampler(start, end, batch, rank, world),
        num_workers=workers,
        collate_fn=collate,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None,
    )


# ----------------------------------------------------------------------------- validation


def load_validation(
    pairs: list[FacePair], naturals: list[Source], cfg: DataConfig, crop: int
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Deterministic held-out images: each pair's face box, short side resized to ``crop`` (area),
    center crop. Returns ``({"face_hq", "face_lq", "nat_hq": uint8 [N, crop, crop, 3], "key": [..]},
    failures)``; ``nat_hq`` holds natural images prepared the same way (cycling), to show a real
    embedding applied to a natural image. Unreadable files are skipped and returned as failures;
    the dict is empty when no pair could be read.
    """
    failures: list[dict[str, str]] = []
    hqs, lqs, keys = [], [], []
    for p in pairs:
        try:
            hq, lq = decode_image(p.hq), decode_image(p.lq)
        except ImageDecodeError as e:
            failures.append({"path": e.path, "reason": e.reason})
            continue
        if hq.shape != lq.shape:
            failures.append({"path": str(p.lq), "reason": f"LQ {lq.shape[:2]} and HQ {hq.shape[:2]} differ"})
            continue
        h, w = hq.shape[:2]
        t, b, left, r = face_box(h, w, cfg)
        prep = [center_crop(resize_short(x[t:b, left:r], crop, cv2.INTER_AREA), crop) for x in (hq, lq)]
        hqs.append(prep[0])
        lqs.append(prep[1])
        keys.append(p.key)
    if not hqs:
        return {}, failures
    nats: list[np.ndarray] = []
    for src in naturals:
        if len(nats) >= len(hqs):
            break
        try:
            img = decode_image(src.path)
        except ImageDecodeError as e:
            failures.append({"path": e.path, "reason": e.reason})
            continue
        nats.append(center_crop(resize_short(img, crop, cv2.INTER_AREA), crop))
    nats = [nats[i % len(nats)] for i in range(len(hqs))] if nats else list(hqs)
    return {
        "face_hq": np.stack(hqs),
        "face_lq": np.stack(lqs),
        "nat_hq": np.stack(nats),
        "key": keys,
    }, failures
