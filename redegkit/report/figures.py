"""The reports' charts, drawn by matplotlib (Agg canvas, no pyplot state) into SVG or PNG bytes.

Each function takes plain numbers and returns ``(bytes, mime)`` for :func:`.page.img_bytes`. Charts
with few marks are SVG (sharp at any zoom); scatter plots of many points are PNG (an SVG of
20,000 circles would weigh megabytes and slow the page down).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import numpy as np

Figure = tuple[bytes, str]
_SVG_MAX_POINTS = 2000


def new_figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(w, h), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, fmt: str = "svg") -> Figure:
    buf = io.BytesIO()
    # no dates or software strings in the file: the same data gives the same bytes
    meta = {"Date": None, "Creator": None} if fmt == "svg" else {"Software": None}
    fig.savefig(buf, format=fmt, metadata=meta, dpi=100)
    return buf.getvalue(), "image/svg+xml" if fmt == "svg" else "image/png"


def _panels(n: int, cols: int, w: float, h: float):
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    fig = new_figure(w * cols, h * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _style(ax, title: str, fontsize: int = 9) -> None:
    ax.set_title(title, fontsize=fontsize)
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.3, linewidth=0.5)


def bar_panels(
    labels: Sequence[str],
    values: Mapping[str, Sequence[float | None]],
    *,
    highlight: Sequence[str] = (),
    cols: int = 3,
    xlabel: str = "",
) -> Figure:
    """One horizontal bar panel per key of ``values`` (e.g. a statistic), one bar per label (e.g. a
    candidate, in the given order, top to bottom); labels in ``highlight`` are drawn darker."""
    fig, axes = _panels(len(values), cols, 3.6, 0.5 + 0.24 * len(labels))
    y = np.arange(len(labels))
    colours = ["#2f5fb3" if lab in highlight else "#9db3d8" for lab in labels]
    ncol = max(1, min(cols, len(values)))
    for i, (ax, (name, vals)) in enumerate(zip(axes, values.items(), strict=True)):
        v = np.array([np.nan if x is None else float(x) for x in vals])
        ax.barh(y, np.nan_to_num(v), color=colours)
        ax.set_yticks(y, labels if i % ncol == 0 else [""] * len(labels))  # names on each row's first
        ax.invert_yaxis()
        _style(ax, name)
        ax.grid(True, axis="x", alpha=0.3)
        ax.grid(False, axis="y")
        if xlabel:
            ax.set_xlabel(xlabel, fontsize=7)
    return save_figure(fig)


def histogram_panels(
    panels: Mapping[str, Mapping[str, Sequence[float]]],
    *,
    bins: int = 30,
    cols: int = 3,
    filled: str | None = None,
    legends: Mapping[str, Mapping[str, str]] | None = None,
) -> Figure:
    """One panel per key of ``panels``; in each, one histogram per series (densities on shared
    bins). The series named ``filled`` is drawn filled grey (e.g. the real photos), the others as
    outlines. ``legends[panel][series]`` is a series' legend text in that panel (else its name)."""
    fig, axes = _panels(len(panels), cols, 4.0, 2.8)
    for ax, (name, series) in zip(axes, panels.items(), strict=True):
        arrays = {k: np.asarray(v, float) for k, v in series.items() if len(v)}
        arrays = {k: a[np.isfinite(a)] for k, a in arrays.items()}
        arrays = {k: a for k, a in arrays.items() if a.size}
        if not arrays:
            ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
            _style(ax, name)
            continue
        allv = np.concatenate(list(arrays.values()))
        lo, hi = float(allv.min()), float(allv.max())
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, bins + 1)
        for k, a in arrays.items():
            text = (legends or {}).get(name, {}).get(k, k)
            if k == filled:
                ax.hist(a, bins=edges, density=True, color="0.75", label=text)
            else:
                ax.hist(a, bins=edges, density=True, histtype="step", linewidth=1.5, label=text)
        _style(ax, name)
        if len(arrays) > 1:
            ax.legend(fontsize=6)
    return save_figure(fig)


def value_histograms(panels: Mapping[str, Sequence[float]], *, bins: int = 24, cols: int = 4) -> Figure:
    """Small multiples: one histogram per key (e.g. a degradation parameter), count on y; the
    panel title says how many values it holds."""
    fig, axes = _panels(len(panels), cols, 2.7, 1.9)
    for ax, (name, vals) in zip(axes, panels.items(), strict=True):
        a = np.asarray(vals, float)
        a = a[np.isfinite(a)]
        if a.size and float(a.max() - a.min()) < 1e-12:
            ax.bar([float(a[0])], [a.size], width=1.0 if abs(a[0]) >= 1 else 0.1, color="#5b7fc0")
        elif a.size:
            uniq = np.unique(a)
            if uniq.size <= bins and np.allclose(uniq, np.round(uniq)):  # integers: one bar each
                ax.bar(uniq, [int((a == u).sum()) for u in uniq], width=0.8, color="#5b7fc0")
            else:
                ax.hist(a, bins=bins, color="#5b7fc0")
        _style(ax, f"{name} (n={a.size:,})", fontsize=8)
    return save_figure(fig)


def count_bars(counts: Mapping[str, int], *, title: str, max_items: int = 30) -> Figure:
    """Horizontal bars of counts, largest first (at most ``max_items``; the rest summed as "other")."""
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(items) > max_items:
        rest = sum(v for _, v in items[max_items - 1 :])
        items = [*items[: max_items - 1], (f"other ({len(counts) - max_items + 1})", rest)]
    fig = new_figure(5.5, 0.6 + 0.22 * max(len(items), 1))
    ax = fig.subplots()
    y = np.arange(len(items))
    ax.barh(y, [v for _, v in items], color="#5b7fc0")
    ax.set_yticks(y, [k if len(k) <= 40 else k[:37] + "..." for k, _ in items])
    ax.invert_yaxis()
    _style(ax, title)
    ax.grid(False, axis="y")
    return save_figure(fig)


def category_panels(panels: Mapping[str, Mapping[str, int]], *, cols: int = 4) -> Figure:
    """Small multiples of categorical counts (e.g. interpolation modes, blur kernels)."""
    fig, axes = _panels(len(panels), cols, 2.7, 1.9)
    for ax, (name, counts) in zip(axes, panels.items(), strict=True):
        items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:12]
        ax.bar(range(len(items)), [v for _, v in items], color="#5b7fc0")
        ax.set_xticks(range(len(items)), [k[:12] for k, _ in items], rotation=35, ha="right")
        _style(ax, name, fontsize=8)
    return save_figure(fig)


def curves(
    panels: Mapping[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]],
    *,
    cols: int = 3,
    xlabel: str = "step",
) -> Figure:
    """One panel per key; in each, one line per series ``(x, y)``. A panel whose values are all
    positive and span more than two decades gets a log y axis."""
    fig, axes = _panels(len(panels), cols, 3.6, 2.5)
    for ax, (name, series) in zip(axes, panels.items(), strict=True):
        ys = []
        for label, (x, y) in series.items():
            ya = np.asarray(y, float)
            ax.plot(x, ya, linewidth=1.2, marker="o" if len(x) <= 30 else None, markersize=2.5, label=label)
            ys.append(ya[np.isfinite(ya)])
        allv = np.concatenate(ys) if ys else np.array([])
        if allv.size and allv.min() > 0 and allv.max() / allv.min() > 100:
            ax.set_yscale("log")
        _style(ax, name)
        ax.set_xlabel(xlabel, fontsize=7)
        if len(series) > 1:
            ax.legend(fontsize=6)
    return save_figure(fig)


def scatter_clusters(
    xy: np.ndarray,
    labels: np.ndarray,
    centres: np.ndarray,
    *,
    title: str,
    axis_labels: tuple[str, str] = ("PC 1", "PC 2"),
) -> Figure:
    """Points [N, 2] coloured by cluster label, the cluster centres [k, 2] as numbered crosses."""
    fig = new_figure(6.0, 4.6)
    ax = fig.subplots()
    cmap = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    k = len(centres)
    size = 14 if len(xy) < 500 else 4
    for c in range(k):
        m = labels == c
        ax.scatter(xy[m, 0], xy[m, 1], s=size, color=cmap[c % len(cmap)], alpha=0.7, label=f"cluster {c}")
    for c in range(k):
        ax.scatter(*centres[c], marker="X", s=120, color=cmap[c % len(cmap)], edgecolors="black")
        ax.annotate(str(c), centres[c], xytext=(5, 5), textcoords="offset points", fontsize=9, weight="bold")
    ax.set_xlabel(axis_labels[0], fontsize=8)
    ax.set_ylabel(axis_labels[1], fontsize=8)
    _style(ax, title)
    if k <= 8:
        ax.legend(fontsize=7)
    return save_figure(fig, "svg" if len(xy) <= _SVG_MAX_POINTS else "png")


def silhouette_curve(by_k: Mapping[int, float], chosen: int) -> Figure:
    """Silhouette against k, the chosen k marked."""
    fig = new_figure(3.6, 2.5)
    ax = fig.subplots()
    ks = sorted(by_k)
    ax.plot(ks, [by_k[k] for k in ks], marker="o", linewidth=1.2)
    if chosen in by_k:
        ax.scatter([chosen], [by_k[chosen]], s=80, facecolors="none", edgecolors="#d62728", linewidths=1.5)
    ax.set_xlabel("k", fontsize=8)
    _style(ax, "silhouette by k (chosen: circled)")
    return save_figure(fig)
