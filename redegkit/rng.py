"""Per-sample randomness.

There is no global RNG in redegkit. Every random decision for one sample comes from a
generator seeded by ``(global_seed, sample_key)``, so output does not depend on the
number of workers, their order, or on resuming.
"""

from __future__ import annotations

import hashlib

import numpy as np


def sample_seed(global_seed: int, key: str, *salt: str | int) -> int:
    """A 64-bit seed derived from the global seed, the sample key and optional salt."""
    h = hashlib.blake2b(digest_size=8)
    h.update(str(int(global_seed)).encode())
    h.update(b"\x00")
    h.update(key.encode("utf-8"))
    for s in salt:
        h.update(b"\x00")
        h.update(str(s).encode("utf-8"))
    return int.from_bytes(h.digest(), "little")


def seed_to_json(seed: int) -> str:
    """A 64-bit seed as it is written in shard JSON (format 2 on): a decimal string, because
    unsigned 64-bit values above 2**63 do not fit the int64 that Arrow, Parquet and
    ``datasets`` use for JSON integers."""
    return str(int(seed))


def seed_from_json(value: int | str) -> int:
    """Read a seed back from shard JSON of any format: an int (format 1) or a decimal string."""
    return int(value)


def sample_rng(global_seed: int, key: str, *salt: str | int) -> np.random.Generator:
    """A numpy Generator for one sample (PCG64, seeded from :func:`sample_seed`)."""
    return np.random.default_rng(sample_seed(global_seed, key, *salt))


def child_seed(rng: np.random.Generator) -> int:
    """Draw a seed for a sub-step (e.g. a noise realisation) from an existing generator."""
    return int(rng.integers(0, 2**63 - 1))
