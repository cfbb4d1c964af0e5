"""The report of a shard folder (``redeg shards info --html``, ``redeg report OUT/``): counts, sizes,
the degradation parameters' distributions from the samples' JSON, and a grid of samples."""

from __future__ import annotations

import tarfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from . import figures as F
from .page import (
    Html,
    Page,
    ReportError,
    details,
    figs,
    figure,
    fmt,
    img_array,
    img_bytes,
    kv,
    note,
    table,
    tag,
)
from .shardfiles import iter_shard, list_tars, read_json, read_marker

_SKIP_KEYS = {"label", "op", "rng", "format", "version", "preset_sha256", "bank_sha256", "bank"}
MAX_NUMERIC_PANELS = 32
MAX_CATEGORY_PANELS = 16


@dataclass
class MethodValues:
    """What one sample's ``method`` says, flattened: numbers, categories, and the method's name."""

    name: str
    numbers: dict[str, list[float]] = field(default_factory=dict)
    categories: dict[str, list[str]] = field(default_factory=dict)

    def num(self, key: str, v: Any) -> None:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            self.numbers.setdefault(key, []).append(float(v))

    def cat(self, key: str, v: Any) -> None:
        if isinstance(v, (str, bool)):
            self.categories.setdefault(key, []).append(str(v).lower() if isinstance(v, bool) else v)


def _seedlike(key: str) -> bool:
    return key == "seed" or key.endswith("_seed") or key.endswith("sha256")


def method_values(method: Any) -> MethodValues:
    """Flatten a sample's ``method`` record (see the shard format): a preset's ops by their labels
    (``blur1.sigma_x``, ``jpeg1.quality``, ...), a bank's embedding indices, strength, noise and
    calibrated JPEG quality; seeds and hashes are left out (they are not distributions to look at)."""
    if isinstance(method, str):
        return MethodValues(method)
    if not isinstance(method, dict):
        return MethodValues("?")
    kind = str(method.get("kind", "?"))
    if kind == "preset":
        out = MethodValues(f"preset:{method.get('preset', '?')}")
        params = method.get("params") or {}
        for op in params.get("ops") or []:
            if not isinstance(op, dict):
                continue
            ns = str(op.get("label") or op.get("op") or "op")
            out.categories.setdefault("ops applied", []).append(ns)
            for k, v in op.items():
                if k in _SKIP_KEYS or _seedlike(k) or isinstance(v, bool):
                    continue
                if isinstance(v, str):
                    out.cat(f"{ns}.{k}", v)
                else:
                    out.num(f"{ns}.{k}", v)
        out.cat("final_interp", params.get("final_interp"))
        return out
    if kind == "bank":
        out = MethodValues("bank")
        for i in method.get("indices") or []:
            out.num("embedding index", i)
        weights = method.get("mix_weights") or []
        if len(weights) > 1:
            for w in weights:
                out.num("mix weight", w)
        out.num("strength", method.get("strength"))
        out.num("noise sigma", method.get("noise_sigma"))
        out.num("tiles", method.get("tiles"))
        post = method.get("post") or {}
        if isinstance(post, dict):
            out.num("calibrated JPEG quality", post.get("jpeg"))
            if post.get("noise_psd"):  # banks since the measured spectrum
                from ..bank.operators import psd_top_share  # torch: only for learned shards

                out.num("noise top-band share", psd_top_share(post["noise_psd"]))
            else:
                out.num("noise correlation radius", post.get("noise_corr"))
        for k in ("downsample", "choice", "synthesizer"):
            out.cat(k, method.get(k))
        return out
    out = MethodValues(kind)
    for k, v in method.items():
        if k in _SKIP_KEYS or _seedlike(k) or k == "kind":
            continue
        if isinstance(v, str):
            out.cat(k, v)
        else:
            out.num(k, v)
    return out


@dataclass
class ShardScan:
    """Everything the report shows, gathered in one pass over the tars."""

    per_shard: list[dict[str, Any]] = field(default_factory=list)
    samples: int = 0
    incomplete: list[str] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)  # samples without hq.png, lq.png or json
    methods: Counter = field(default_factory=Counter)
    sources: Counter = field(default_factory=Counter)
    scales: Counter = field(default_factory=Counter)
    versions: Counter = field(default_factory=Counter)
    formats: Counter = field(default_factory=Counter)
    sizes: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    numbers: dict[str, dict[str, list[float]]] = field(default_factory=lambda: defaultdict(dict))
    categories: dict[str, dict[str, Counter]] = field(default_factory=lambda: defaultdict(dict))
    shown: list[dict[str, Any]] = field(default_factory=list)


def _grid_indices(total: int | None, n: int) -> set[int]:
    if not total:
        return set(range(n))
    return {int(round(i)) for i in np.linspace(0, total - 1, min(n, total))}


def scan_folder(folder: Path, n_samples: int = 12) -> ShardScan:
    """One pass over every tar: counts, sizes, flattened methods, and ``n_samples`` samples (evenly
    spaced when every shard has its done marker, else the first ones) kept for the grid."""
    tars = list_tars(folder)
    if not tars:
        raise ReportError(f"{folder}: no *.tar shards")
    sc = ShardScan()
    markers = {t.name: read_marker(t) for t in tars}
    known = all(m is not None and "count" in m for m in markers.values())
    total = sum(int(m["count"]) for m in markers.values() if m) if known else None
    want = _grid_indices(total, n_samples)
    index = 0
    for t in tars:
        marker = markers[t.name]
        if marker is None:
            sc.incomplete.append(t.name)
        count = 0
        try:
            for s in iter_shard(t):
                count += 1
                if not {"hq.png", "lq.png", "json"} <= set(s.members):
                    sc.broken.append(f"{t.name}:{s.key}")
                sc.sizes["HQ PNG (KiB)"].append(s.size("hq.png") / 1024)
                sc.sizes["LQ PNG (KiB)"].append(s.size("lq.png") / 1024)
                meta = s.json() or {}
                for name, k in (("HQ", "hq_size"), ("LQ", "lq_size")):
                    hw = meta.get(k)
                    if isinstance(hw, list) and len(hw) == 2:
                        sc.sizes[f"{name} height (px)"].append(float(hw[0]))
                        sc.sizes[f"{name} width (px)"].append(float(hw[1]))
                mv = method_values(meta.get("method"))
                sc.methods[mv.name] += 1
                sc.sources[str(meta.get("source", "?"))] += 1
                sc.scales[str(meta.get("scale", "?"))] += 1
                sc.versions[str(meta.get("redegkit_version", "?"))] += 1
                sc.formats[str(meta.get("shard_format", 1))] += 1
                for k, nums in mv.numbers.items():
                    sc.numbers[mv.name].setdefault(k, []).extend(nums)
                for k, cats in mv.categories.items():
                    sc.categories[mv.name].setdefault(k, Counter()).update(cats)
                if index in want and len(sc.shown) < n_samples:
                    sc.shown.append(
                        {
                            "key": s.key,
                            "shard": t.name,
                            "hq": s.read("hq.png"),
                            "lq": s.read("lq.png"),
                            "method": mv.name,
                            "source": meta.get("source", "?"),
                        }
                    )
                index += 1
        except (tarfile.TarError, OSError, EOFError) as e:
            sc.unreadable.append({"shard": t.name, "reason": f"{type(e).__name__}: {e}"})
        sc.samples += count
        sc.per_shard.append(
            {"shard": t.name, "samples": count, "bytes": t.stat().st_size, "done": marker is not None}
        )
    return sc


def split_constant(
    values: dict[str, list[float]],
) -> tuple[dict[str, list[float]], dict[str, tuple[float, int]]]:
    """(the keys whose values vary, {key: (its one value, count)} for the others): a histogram of
    one value says less than a line of text."""
    varying, constant = {}, {}
    for k, v in values.items():
        a = np.asarray(v, float)
        if a.size and float(np.nanmax(a) - np.nanmin(a)) == 0.0:
            constant[k] = (float(a[0]), int(a.size))
        elif a.size:
            varying[k] = v
    return varying, constant


def _tile(img: np.ndarray, side: int) -> np.ndarray:
    """Fit into side x side (area when shrinking, nearest when enlarging), on dark grey."""
    h, w = img.shape[:2]
    s = side / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    r = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_NEAREST)
    out = np.full((side, side, 3), 32, np.uint8)
    y, x = (side - nh) // 2, (side - nw) // 2
    out[y : y + nh, x : x + nw] = r
    return out


def _sample_figure(s: dict[str, Any], side: int) -> Html:
    from ..io.images import decode_image

    try:
        hq = decode_image(s["hq"]) if s["hq"] else None
        lq = decode_image(s["lq"]) if s["lq"] else None
    except Exception as e:  # noqa: BLE001  (a corrupt PNG is shown as such, not a crashed report)
        return figure(tag("p", f"{s['key']}: {e}"), "unreadable sample")
    if hq is None or lq is None:
        return figure(tag("p", f"{s['key']}: no hq.png or lq.png"), "incomplete sample")
    lq_up = cv2.resize(lq, (hq.shape[1], hq.shape[0]), interpolation=cv2.INTER_NEAREST)
    pair = np.concatenate([_tile(hq, side), np.full((side, 4, 3), 255, np.uint8), _tile(lq_up, side)], 1)
    cap = Html(
        f"<b>{s['key']}</b><br>HQ {hq.shape[1]}x{hq.shape[0]} | LQ {lq.shape[1]}x{lq.shape[0]} "
        f"(nearest up) · {s['method']} · {s['source']}"
    )
    return figure(img_array(pair, f"sample {s['key']}: HQ and LQ", pixelated=True), cap)


def _counts_text(c: Counter) -> str:
    return ", ".join(f"{k}: {v:,}" for k, v in c.most_common())


def shards_report(folder: str | Path, *, samples: int = 12, tile: int = 160) -> Page:
    """The page for a shard folder (see the module doc)."""
    folder = Path(folder)
    sc = scan_folder(folder, samples)
    run = read_json(folder / "report.json") or {}
    nbytes = sum(s["bytes"] for s in sc.per_shard)
    page = Page(
        f"Shards: {folder.name or folder}",
        [f"{sc.samples:,} samples in {len(sc.per_shard)} shard(s), {nbytes / 1e6:,.1f} MB · {folder}"],
        source=str(folder),
    )
    page.add("Counts", *_counts(sc, run, nbytes))
    page.add("Shards", *_shards(sc))
    page.add("Sizes", *_sizes(sc))
    page.add("Degradation parameters", *_parameters(sc))
    how = "evenly spaced through the folder" if not sc.incomplete else "the first ones"
    page.add(
        "Samples",
        note(
            f"{len(sc.shown)} samples ({how}): HQ | LQ, the LQ enlarged by nearest neighbour to the HQ size."
        ),
        figs(*(_sample_figure(s, tile) for s in sc.shown)),
    )
    return page


def _counts(sc: ShardScan, run: dict[str, Any], nbytes: int) -> list[Html]:
    """Samples, shards, bytes, methods, scales and versions (and the run's report.json, when there is
    one); what is incomplete, unreadable, broken or failed."""
    failures = run.get("failures") or []
    counts: list[tuple[str, Any]] = [
        ("samples", f"{sc.samples:,}"),
        ("shards", f"{len(sc.per_shard)} ({len(sc.incomplete)} without a done marker)"),
        ("bytes", f"{nbytes:,} ({nbytes / max(sc.samples, 1) / 1024:.1f} KiB per sample)"),
        ("methods", _counts_text(sc.methods)),
        ("scale", _counts_text(sc.scales)),
        ("source images", f"{len(sc.sources):,}"),
        ("redegkit version", _counts_text(sc.versions)),
        ("shard format", _counts_text(sc.formats)),
    ]
    if run:
        counts += [
            ("run report", "report.json"),
            ("inputs", run.get("inputs", "-")),
            ("failed inputs", len(failures)),
            ("skipped inputs", len(run.get("skipped") or [])),
            ("pairs/s", run.get("pairs_per_s", "-")),
        ]
    parts = [kv(counts)]
    if sc.incomplete:
        parts.append(
            note(
                f"{len(sc.incomplete)} shard(s) have no done marker (an interrupted run? synthesize "
                f"--resume finishes it): {', '.join(sc.incomplete[:10])}"
            )
        )
    if sc.unreadable:
        parts.append(tag("h3", "Unreadable shards"))
        parts.append(table(["shard", "reason"], [[u["shard"], u["reason"]] for u in sc.unreadable]))
    if sc.broken:
        parts.append(
            note(f"{len(sc.broken)} sample(s) lack hq.png, lq.png or json: {', '.join(sc.broken[:5])}")
        )
    if failures:
        rows = [[f.get("path", "?"), f.get("reason", "?")] for f in failures[:50]]
        parts.append(
            details(f"{len(failures)} failed input(s) (from report.json)", table(["path", "reason"], rows))
        )
    return parts


def _shards(sc: ShardScan) -> list[Html | str]:
    """The per-shard table (folded when long, the first 200 shards)."""
    rows = [
        [s["shard"], fmt(s["samples"]), f"{s['bytes'] / 1e6:.2f}", "yes" if s["done"] else "no"]
        for s in sc.per_shard[:200]
    ]
    shard_table = table(["shard", "samples", "MB", "done marker"], rows, numeric=(1, 2))
    more = note(f"(the first 200 of {len(sc.per_shard)} shards)") if len(sc.per_shard) > 200 else ""
    return [shard_table if len(sc.per_shard) <= 20 else details("per-shard table", shard_table), more]


def _sizes(sc: ShardScan) -> list[Html | str]:
    """What is the same in every sample as text; histograms of what varies; samples per source."""
    varying, constant = split_constant({k: v for k, v in sc.sizes.items() if v})
    size_parts: list[Html] = []
    if varying:
        size_fig = F.value_histograms(varying)
        size_parts.append(
            figure(img_bytes(*size_fig, "size histograms"), "PNG bytes and image sides of the samples.")
        )
    src_fig = F.count_bars(dict(sc.sources), title="samples per source image")
    size_parts.append(
        figure(img_bytes(*src_fig, "samples per source image"), "Samples cut from each source image.")
    )
    return [
        note("The same in every sample: " + ", ".join(f"{k} = {fmt(v, 1)}" for k, (v, _) in constant.items()))
        if constant
        else "",
        figs(*size_parts),
    ]


def _parameters(sc: ShardScan) -> list[Html]:
    """Per method: histograms of its numbers (constants as text) and bars of its categories."""
    param_parts = [
        note(
            "From every sample's JSON: each op's numbers by its label (a preset's optional ops appear "
            "only in the samples that drew them; 'ops applied' counts them), or a bank's embedding "
            "indices, strength and calibration. Seeds and hashes are left out."
        )
    ]
    for name, nums in sc.numbers.items():
        param_parts.append(tag("h3", f"{name} ({sc.methods[name]:,} samples)"))
        param_parts += _method_numbers(name, nums)
        cats = sc.categories.get(name) or {}
        if cats:
            ck = sorted(cats)[:MAX_CATEGORY_PANELS]
            fig = F.category_panels({k: dict(cats[k]) for k in ck})
            param_parts.append(img_bytes(*fig, f"{name}: categorical parameters"))
    for name in sc.methods:
        if name not in sc.numbers and name in sc.categories:
            param_parts.append(tag("h3", f"{name} ({sc.methods[name]:,} samples)"))
            fig = F.category_panels({k: dict(v) for k, v in sorted(sc.categories[name].items())})
            param_parts.append(img_bytes(*fig, f"{name}: categorical parameters"))
    return param_parts


def _method_numbers(name: str, nums: dict[str, list[float]]) -> list[Html]:
    """One method's numeric parameters: histograms of the most common that vary, the constant ones as text."""
    parts = []
    varying, constant = split_constant(nums)
    keys = sorted(varying, key=lambda k: -len(varying[k]))[:MAX_NUMERIC_PANELS]
    if keys:
        fig = F.value_histograms({k: varying[k] for k in sorted(keys)})
        parts.append(img_bytes(*fig, f"{name}: parameter distributions"))
    if len(varying) > len(keys):
        parts.append(note(f"(the {len(keys)} parameters found in the most samples of {len(varying)})"))
    if constant:
        parts.append(
            note(
                "The same in every sample that has it: "
                + ", ".join(f"{k} = {fmt(v, 4)} ({n:,})" for k, (v, n) in sorted(constant.items()))
            )
        )
    return parts
