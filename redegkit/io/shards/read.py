"""Reading WebDataset shards: listing, raw samples, the paired (lq, hq) training pipeline, and a
quick standard-library scan for summaries.

:func:`iter_samples` and :func:`paired_dataset` import WebDataset (and so torch) when called;
:func:`scan_tar` and :func:`shards_info` need only the standard library.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import storage
from .write import MARKER_SUFFIX


def list_shards(spec: str | Path | list[str]) -> list[str]:
    """Shard URLs from a folder (every ``*.tar`` in it, sorted), a brace pattern, or a list; a
    folder, glob or pattern may be a URL (``s3://bucket/shards/``: one list call)."""
    if isinstance(spec, list):
        return [str(s) for s in spec]
    if storage.is_remote(spec):
        return _list_remote(str(spec))
    p = Path(str(spec))
    if p.is_dir():
        return [str(x) for x in sorted(p.glob("*.tar"))]
    if "{" in str(spec):
        import braceexpand

        return list(braceexpand.braceexpand(str(spec)))
    if "*" in str(spec) or "?" in str(spec):
        import glob

        return sorted(glob.glob(str(spec)))
    return [str(spec)]


def _list_remote(spec: str) -> list[str]:
    if "{" in spec:
        import braceexpand

        return list(braceexpand.braceexpand(spec))
    fs, path = storage.url_to_fs(spec)
    head = spec[: len(spec) - len(path)] if spec.endswith(path) else spec.split("://")[0] + "://"
    with storage.errors(spec):
        if "*" in path or "?" in path:
            return [head + p for p in sorted(fs.glob(path))]
        if spec.endswith(".tar"):
            return [spec]
    return [storage.join(spec, n) for n in sorted(storage.list_files(spec)) if n.endswith(".tar")]


def _gopen_fsspec(url: str, mode: str = "rb", bufsize: int = 8192, **kw: Any) -> Any:
    """WebDataset's opener for a URL scheme it does not read itself: a streaming fsspec file
    (8 MiB read-ahead), with the storage options in force."""
    fs, path = storage.url_to_fs(url)
    with storage.errors(url):
        return fs.open(path, "rb", block_size=1 << 23, cache_type="readahead")


def register_url_schemes(urls: list[str]) -> None:
    """Let WebDataset read these URLs through fsspec (``s3://``, ``gs://``, ``memory://`` …): its
    own openers shell out to ``curl``/``gsutil``, which know neither our options nor fsspec's
    credentials. Registered once per process; DataLoader workers forked later inherit it."""
    import importlib
    from urllib.parse import urlparse

    schemes = importlib.import_module("webdataset.gopen").gopen_schemes  # the module, not its function
    for url in urls:
        if storage.is_remote(url):
            schemes[urlparse(url).scheme] = _gopen_fsspec


def iter_samples(urls: str | Path | list[str]) -> Iterator[dict[str, Any]]:
    """Raw samples (dict of field -> bytes, with ``__key__`` and ``__url__``), in shard order."""
    import webdataset as wds  # here, not at the top: it imports torch

    shard_urls = list_shards(urls)
    register_url_schemes(shard_urls)
    for url in shard_urls:
        # no node/worker splitting: this reads everything, also inside a torchrun process
        ds = wds.WebDataset(
            url, shardshuffle=False, empty_check=False, nodesplitter=None, workersplitter=None
        )
        yield from ds


@dataclass
class ReadStats:
    """Per-process counters of the reader (each DataLoader worker has its own)."""

    ok: int = 0
    corrupt: int = 0
    last_error: str = ""


def _decode_pair(sample: dict[str, Any], lq_key: str, hq_key: str, stats: ReadStats):
    from ..images import ImageDecodeError, decode_image

    key = sample.get("__key__", "?")
    try:
        if lq_key not in sample or hq_key not in sample:
            raise ImageDecodeError(key, f"sample lacks {lq_key!r} or {hq_key!r} (has {sorted(sample)})")
        lq = decode_image(sample[lq_key], path=f"{sample.get('__url__', '')}:{key}.{lq_key}")
        hq = decode_image(sample[hq_key], path=f"{sample.get('__url__', '')}:{key}.{hq_key}")
    except ImageDecodeError as e:
        stats.corrupt += 1
        stats.last_error = str(e)
        return None
    stats.ok += 1
    return key, lq, hq


def paired_crop(
    lq: np.ndarray, hq: np.ndarray, crop: int, scale: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Aligned random crop: an ``crop``×``crop`` HQ patch and the matching ``crop/scale`` LQ patch.

    ``hq`` must be ``scale`` × ``lq`` in size (as redegkit shards are). If ``lq`` has the HQ size
    (scale-1 data), use ``scale=1``.
    """
    if crop % scale:
        raise ValueError(f"HQ crop {crop} must be a multiple of the scale {scale}")
    lc = crop // scale
    h, w = lq.shape[:2]
    if hq.shape[0] != h * scale or hq.shape[1] != w * scale:
        raise ValueError(f"misaligned pair: hq {hq.shape[:2]} is not {scale} x lq {lq.shape[:2]}")
    if h < lc or w < lc:
        raise ValueError(f"LQ {h}x{w} smaller than the LQ crop {lc}")
    y = int(rng.integers(0, h - lc + 1))
    x = int(rng.integers(0, w - lc + 1))
    return lq[y : y + lc, x : x + lc], hq[y * scale : (y + lc) * scale, x * scale : (x + lc) * scale]


def paired_dataset(
    urls: str | Path | list[str],
    *,
    crop: int | None = 256,
    scale: int = 4,
    lq_key: str = "lq.png",
    hq_key: str = "hq.png",
    shuffle: int = 0,
    resampled: bool = False,
    seed: int = 0,
    augment: bool = False,
    split_by_node: bool = True,
    stats: ReadStats | None = None,
    transform: Callable | None = None,
    as_uint8: bool = False,
):
    """A WebDataset pipeline of aligned ``(lq, hq)`` float tensors in [-1, 1], CHW.

    - ``as_uint8``: yield uint8 CHW tensors instead (a quarter of the bytes through DataLoader
      workers, pinned memory and the host-to-device copy); convert on the device with
      :meth:`redegkit.run.RunContext.to_device`, which maps them exactly as ``to_tensor``.

    - ``crop``: HQ patch size (LQ patch = crop / scale); None keeps whole images.
    - ``shuffle``: sample shuffle buffer (0 = off); ``resampled``: endless, shard-resampling
      stream for multi-node DDP (each rank draws shards independently).
    - ``augment``: random h-flip and 90° rotations, applied to both images alike.
    - Corrupt samples are counted in ``stats`` and skipped, never raised.
    Randomness per sample comes from ``(seed, key)``, so crops do not depend on worker layout;
    pass a different ``seed`` per pass over the data (epoch) to get new crops. With
    ``resampled=True`` the shard draw comes from WebDataset and is not reproducible.

    Example::

        ds = paired_dataset("out/shard-{000000..000009}.tar", crop=256, scale=4, shuffle=1000)
        loader = torch.utils.data.DataLoader(ds.batched(16), batch_size=None, num_workers=4)
        for lq, hq in loader: ...   # lq [16,3,64,64], hq [16,3,256,256]
    """
    import webdataset as wds  # here, not at the top: it imports torch

    from ...rng import sample_rng
    from ..images import to_tensor

    stats = stats if stats is not None else ReadStats()
    shard_urls = list_shards(urls)
    register_url_schemes(shard_urls)
    nodesplitter = wds.split_by_node if split_by_node else None
    ds = wds.WebDataset(
        shard_urls,
        resampled=resampled,
        shardshuffle=(100 if shuffle else False) if not resampled else True,
        nodesplitter=None if resampled else nodesplitter,
        workersplitter=wds.split_by_worker,
        handler=wds.warn_and_continue,
        empty_check=False,
        seed=seed,
    )
    if shuffle:
        ds = ds.shuffle(shuffle, seed=seed)

    def to_pair(sample):
        dec = _decode_pair(sample, lq_key, hq_key, stats)
        if dec is None:
            return None
        key, lq, hq = dec
        rng = sample_rng(seed, key, "crop")
        if crop is not None:
            try:
                lq, hq = paired_crop(lq, hq, crop, scale, rng)
            except ValueError as e:
                stats.corrupt += 1
                stats.last_error = f"{key}: {e}"
                return None
        if augment:
            if rng.random() < 0.5:
                lq, hq = lq[:, ::-1], hq[:, ::-1]
            k = int(rng.integers(0, 4))
            lq, hq = np.rot90(lq, k), np.rot90(hq, k)
        if as_uint8:
            pair = (_chw_uint8(lq), _chw_uint8(hq))
        else:
            pair = (to_tensor(np.ascontiguousarray(lq)), to_tensor(np.ascontiguousarray(hq)))
        return transform(pair) if transform is not None else pair

    return ds.map(to_pair).select(lambda x: x is not None)


def _chw_uint8(img: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def scan_tar(path: str | Path) -> Iterator[dict[str, Any]]:
    """The samples of one shard (a path or URL), read with the standard library (no WebDataset, no
    torch): dicts of field -> bytes with ``__key__`` and ``__url__``, grouped as WebDataset groups
    them (consecutive regular members sharing the name up to the first dot of the file name; names
    starting and ending with ``__`` are skipped). For quick scans such as :func:`shards_info`."""
    sample: dict[str, Any] | None = None
    with storage.open_input(path) as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        for member in tar:
            if not member.isreg():
                continue
            folder, _, base = member.name.rpartition("/")
            if not folder and base.startswith("__") and base.endswith("__"):
                continue
            stem, dot, suffix = base.partition(".")
            if not dot or not stem:
                continue
            key = f"{folder}/{stem}" if folder else stem
            if sample is None or sample["__key__"] != key:
                if sample is not None:
                    yield sample
                sample = {"__key__": key, "__url__": str(path)}
            f = tar.extractfile(member)
            sample[suffix.lower()] = f.read() if f is not None else b""
    if sample is not None:
        yield sample


def shards_info(out_dir: str | Path) -> dict[str, Any]:
    """Summary of a shard folder (a path or URL: one list call) from its done markers (fast) or by
    scanning tars without markers."""
    files = storage.list_files(out_dir)
    tars = sorted(n for n in files if n.endswith(".tar"))
    total, nbytes, incomplete = 0, 0, []
    methods: dict[str, int] = {}
    per_shard = []
    for name in tars:
        where = storage.join(out_dir, name)
        if name + MARKER_SUFFIX in files:
            meta = json.loads(storage.read_text(where + MARKER_SUFFIX))
            n = int(meta["count"])
        else:
            incomplete.append(name)
            n = sum(1 for _ in scan_tar(where))
        total += n
        nbytes += files[name]
        per_shard.append({"shard": name, "count": n, "bytes": files[name]})
    # provenance summary from the sample JSONs of the first shard (cheap)
    if tars:
        for s in scan_tar(storage.join(out_dir, tars[0])):
            if "json" in s:
                m = json.loads(s["json"]).get("method", {})
                name = (
                    m if isinstance(m, str) else (m.get("preset") or m.get("kind") or "?")
                )  # pack: "external"
                methods[name] = methods.get(name, 0) + 1
    return {
        "folder": storage.redact(str(out_dir)),
        "shards": len(tars),
        "samples": total,
        "bytes": nbytes,
        "incomplete_shards": incomplete,
        "methods_in_first_shard": methods,
        "per_shard": per_shard,
    }


def tar_bytes_to_json(b: bytes) -> dict[str, Any]:
    return json.load(io.BytesIO(b))
