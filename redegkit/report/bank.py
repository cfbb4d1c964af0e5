"""The report of a bank (``redeg bank info --html``, ``redeg report emb.pt``): counts and statistics,
the clusters as a 2-D PCA projection with k and the silhouette, one preview per cluster centre,
and the provenance: embeddings per source photo, per cluster."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from . import figures as F
from .page import Html, Page, details, figs, figure, fmt, img_array, img_bytes, kv, note, pre_json, table, tag
from .pictures import zoom_to

if TYPE_CHECKING:
    from ..bank.cluster import Clustering
    from ..bank.store import Bank

PREVIEW_MIN_SIDE = 192


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean [D], the first two principal axes [2, D], explained variance ratio [2]) of rows
    ``x`` [N, D] (SVD of the centred data; fewer than two rows or a zero spread give zero axes).
    The sign of each axis is fixed so that its largest-magnitude coefficient is positive, so the
    picture is the same on every run."""
    x = np.asarray(x, np.float64)
    mean = x.mean(0)
    axes = np.zeros((2, x.shape[1]))
    ratio = np.zeros(2)
    if len(x) >= 2:
        _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
        m = min(2, len(s))
        axes[:m] = vt[:m]
        total = float((s**2).sum())
        if total > 0:
            ratio[:m] = s[:m] ** 2 / total
        for i in range(2):
            j = int(np.argmax(np.abs(axes[i])))
            if axes[i, j] < 0:
                axes[i] = -axes[i]
    return mean, axes, ratio


def synthetic_chart(side: int = 128) -> np.ndarray:
    """A synthetic HQ image for previews when no --image is given: smooth gradients, a flat
    patch, fine stripes and sharp-edged shapes (what blur, noise, colour and blocks act on)."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / (side - 1)
    img = np.stack([200 * xx + 30, 160 * yy + 50, 200 * (1 - xx) * (1 - yy) + 30], -1)
    q = side // 2
    img[:q, :q] = 128  # flat grey: where noise and blocks show
    stripes = ((np.arange(q) // 2) % 2 * 180 + 40).astype(np.float32)
    img[q:, :q] = stripes[None, :, None]
    out = np.clip(img, 0, 255).astype(np.uint8)
    cv2.circle(out, (q + q // 2, q // 2), q // 3, (230, 40, 40), -1)
    cv2.rectangle(out, (q + 6, q + 6), (side - 8, side - 8), (20, 20, 20), 2)
    cv2.putText(
        out, "redeg", (q + 10, q + q // 2 + 6), cv2.FONT_HERSHEY_SIMPLEX, side / 320, (255, 255, 255), 1
    )
    return out


def _source(record: dict[str, Any]) -> str:
    return str(record.get("source_path") or record.get("source") or "?")


def bank_report(
    path: str | Path,
    *,
    image: str | Path | np.ndarray | None = None,
    size: int = 128,
    device: str = "cpu",
) -> Page:
    """The page for a bank file. The previews degrade ``image`` (a path or RGB uint8; shrunk to
    ``size`` on its long side), or a synthetic test chart when None."""
    from ..bank import bank_info, cluster_bank, load_bank

    bank = load_bank(path)
    info = bank_info(bank)
    cl = cluster_bank(bank)
    n = len(bank)
    page = Page(
        f"Bank: {Path(path).name}",
        [
            f"{n:,} degradation embeddings ({bank.dim}-d) from {info['source_photos']} source photo(s) · {path}"
        ],
        source=str(path),
    )
    if info.get("licence"):
        page.subtitle.append(
            f"Licence: {info['licence']} (the bank carries these weights; data made with it too)"
        )
    page.add("Summary", *_summary(bank, info))
    page.add("Clusters", *_clusters(bank, cl, info))
    page.add("Cluster centres", *_centres(bank, image, size, device))
    page.add("Provenance", *_provenance(bank, cl))
    return page


def _summary(bank: Bank, info: dict[str, Any]) -> list[Html | str]:
    """Counts, norms, nearest neighbours, calibration, licence and hashes; the settings folded."""
    nn_d = info.get("nearest_neighbour") or {}
    cal = info.get("calibration")
    return [
        kv(
            [
                ("embeddings", f"{len(bank):,} x {bank.dim}-d"),
                ("face pairs / source photos", f"{info['pairs']} / {info['source_photos']}"),
                ("norm", "{mean} ± {std} (min {min}, max {max})".format(**info["norm"])),
                ("distance to identity", "{mean} ± {std}".format(**info["distance_to_identity"])),
                (
                    "nearest neighbour",
                    f"mean {nn_d.get('mean')}, median pairwise {nn_d.get('median_pairwise')}, "
                    f"{nn_d.get('near_duplicates')} near-duplicates"
                    if nn_d
                    else "-",
                ),
                ("calibration", "yes" if cal else "none (synthesize applies the generator only)"),
                ("licence", info.get("licence") or "-"),
                ("DegNet sha256", info["degnet_sha256"]),
                ("file sha256", info["sha256"]),
            ]
        ),
        details("synthesizer", pre_json(info["synthesizer"])),
        details("calibration statistics", pre_json(cal)) if cal else "",
        details("bake settings", pre_json(info.get("bake"))) if info.get("bake") else "",
    ]


def _clusters(bank: Bank, cl: Clustering, info: dict[str, Any]) -> list[Html]:
    """k, the silhouette and the sizes; the PCA scatter and the silhouette curve."""
    emb = bank.embeddings.double().numpy()
    mean, axes, ratio = pca_2d(emb)
    xy = (emb - mean) @ axes.T
    cxy = (cl.centres.astype(np.float64) - mean) @ axes.T
    sizes = np.bincount(cl.labels, minlength=cl.k).tolist()
    scatter = F.scatter_clusters(
        xy,
        cl.labels,
        cxy,
        title=f"{len(bank):,} embeddings, k = {cl.k}",
        axis_labels=(f"PC 1 ({ratio[0]:.0%} of the variance)", f"PC 2 ({ratio[1]:.0%})"),
    )
    items = [
        figure(
            img_bytes(*scatter, "the embeddings projected on their first two principal axes"),
            "Each embedding projected on the bank's first two principal axes (PCA), coloured by "
            "cluster; crosses: the cluster centres.",
        )
    ]
    if cl.silhouettes:
        sil = F.silhouette_curve(cl.silhouettes, cl.k)
        items.append(
            figure(
                img_bytes(*sil, "silhouette by k"),
                "Mean silhouette of k-means for each k tried; k = 1 when none is clear enough.",
            )
        )
    chosen = cl.silhouettes.get(cl.k)
    return [
        kv(
            [
                ("k", cl.k),
                ("silhouette", fmt(chosen, 4) if chosen is not None else "- (one cluster)"),
                ("sizes", sizes),
                ("method", info["clusters"]["method"]),
            ]
        ),
        figs(*items),
    ]


def _cell(img: np.ndarray, alt: str, text: str | Html) -> Html:
    """A grid cell: the image enlarged by nearest neighbour, its caption below."""
    return tag("td", img_array(zoom_to(img, PREVIEW_MIN_SIDE), alt, pixelated=True), tag("div", text))


def _centres(bank: Bank, image: str | Path | np.ndarray | None, size: int, device: str) -> list[Html]:
    """Each cluster centre applied to the HQ image (generator only, and calibrated), beside the HQ
    and the generator's identity reconstruction."""
    from ..bank.preview import PreviewRenderer, preview_entries
    from ..io.images import decode_image

    if image is None:
        hq, what = (
            synthetic_chart(size),
            f"a synthetic {size}x{size} test chart (give --image to use a photo)",
        )
    elif isinstance(image, np.ndarray):
        hq, what = image, "the given image"
    else:
        hq, what = decode_image(image), str(image)
    r = PreviewRenderer(bank, hq, device=device, size=size)
    grid_rows = [
        tag(
            "tr",
            _cell(r.image, "HQ", "HQ input"),
            _cell(
                r.identity(),
                "identity reconstruction",
                "generator identity reconstruction G(identity, E(HQ)); not --strength 0, which is the HQ",
            ),
        )
    ]
    for e in preview_entries(bank, 0, centres=True):
        raw, calibrated = r.entry(e)
        cells = [_cell(raw, f"{e.label} generator only", f"{e.label}: the centre, generator only")]
        if calibrated is not None:
            cells.append(
                _cell(
                    calibrated,
                    f"{e.label} calibrated",
                    f"{e.label}: + the calibration of its nearest member #{e.calibration_index} "
                    "(what synthesize applies)",
                )
            )
        grid_rows.append(tag("tr", *cells))
    return [
        note(
            f"Each cluster centre applied to {what}, at the HQ resolution (before the SR downsampling), "
            "enlarged by nearest neighbour."
        ),
        tag("table", tag("tbody", *grid_rows), cls="grid"),
    ]


def _provenance(bank: Bank, cl: Clustering) -> list[Html | str]:
    """Embeddings per source photo, and per cluster: the bars and the table of the 200 largest."""
    sources = Counter(_source(r) for r in bank.records)
    by_cluster: dict[str, Counter] = {}
    for rec, lab in zip(bank.records, cl.labels.tolist(), strict=True):
        by_cluster.setdefault(_source(rec), Counter())[int(lab)] += 1
    rows = [[s, c, *(by_cluster[s].get(j, 0) for j in range(cl.k))] for s, c in sources.most_common(200)]
    bars = F.count_bars(dict(sources), title="embeddings per source photo")
    return [
        note(
            "Embeddings per source photo (the photo a face pair was cut from), and how they fall into the "
            "clusters: a cluster made of one photo's faces is that photo's degradation."
        ),
        figure(img_bytes(*bars, "embeddings per source photo"), ""),
        table(
            ["source photo", "embeddings", *(f"cluster {j}" for j in range(cl.k))],
            rows,
            numeric=range(1, 2 + cl.k),
        ),
        note(f"(the 200 largest of {len(sources)} sources)") if len(sources) > 200 else "",
    ]


__all__ = ["bank_report", "pca_2d", "synthetic_chart"]
