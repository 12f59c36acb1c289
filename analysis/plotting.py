"""Plotting helpers every paper's figures share (matplotlib, headless).

Every figure is written as ``<name>.png`` with the data behind it as ``<name>.csv`` beside it
(`save_figure`), so the report shows both and other tools read the numbers, not the pixels.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are rendered on cluster nodes
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402

DPI = 150
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def save_figure(fig, data: pd.DataFrame, out_png) -> pd.DataFrame:
    """Write ``fig`` to ``out_png`` and ``data`` to the .csv beside it; returns ``data``."""
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    data.to_csv(out_png.with_suffix(".csv"), index=False)
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    # bbox_inches="tight" keeps figure-level legends/titles placed outside the axes
    fig.savefig(out_png, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return data


def panels(n: int, width: float, height: float, layout=None, stacked: bool = False):
    """(figure, axes) with ``n`` panels (at least one) of ``width`` x ``height`` inches, side by
    side (or stacked, for wide panels)."""
    n = max(n, 1)
    shape, size = ((n, 1), (width, height * n)) if stacked else ((1, n), (width * n, height))
    fig, axes = plt.subplots(*shape, figsize=size, squeeze=False, layout=layout)
    return fig, axes.ravel()


def grid(n: int, width: float, height: float, ncols: int = 4):
    """(figure, axes) with ``n`` panels in rows of at most ``ncols``; unused axes hidden."""
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    return fig, axes.ravel()


MAX_ASPECT = 2.5  # width : height of a figure that stays readable once shrunk to a page or screen


def readable_grid(n: int, width: float, height: float, max_aspect: float = MAX_ASPECT):
    """(figure, axes) with ``n`` panels of ``width`` x ``height`` inches in as many columns as keep the
    figure at most ``max_aspect`` wide for its height (constrained layout: titles never overlap);
    unused axes hidden."""
    n = max(n, 1)
    ncols = next(c for c in range(n, 0, -1) if c * width <= max_aspect * -(-n // c) * height or c == 1)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False,
                             layout="constrained")
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    return fig, axes.ravel()


def no_data(ax, what: str) -> None:
    """Say on ``ax`` that the result tables hold no ``what`` (an empty figure still renders)."""
    ax.text(0.5, 0.5, f"no {what} in the result tables", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def bars(ax, data: pd.DataFrame, x: str, hue: str, value: str, x_order: list, hue_order: list,
         labels=None) -> None:
    """Grouped bars of ``value``: groups along ``x``, one colour per ``hue`` (legend: ``labels``)."""
    width = 0.8 / max(len(hue_order), 1)
    for i, h in enumerate(hue_order):
        y = data[data[hue] == h].set_index(x)[value].reindex(x_order)
        ax.bar(np.arange(len(x_order)) + (i - (len(hue_order) - 1) / 2) * width, y.to_numpy(dtype=float), width,
               color=f"C{i}", label=(labels or {}).get(h, h))
    ax.set_xticks(range(len(x_order)), x_order, rotation=30 if len(x_order) > 5 else 0,
                  ha="right" if len(x_order) > 5 else "center")
    ax.axhline(0, color="black", lw=0.8)
    ax.grid(axis="y", alpha=0.3)


def gain_norm(gain: pd.Series) -> TwoSlopeNorm:
    """Diverging colour scale centred on 0 (white = no gain), symmetric around the largest |gain|."""
    finite = gain.astype(float).abs()
    vmax = max(float(finite.max()) if finite.notna().any() else 0.0, 1e-6)
    return TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax)


def gain_heatmap(ax, table: pd.DataFrame, norm, separator: int):
    """One gain heatmap (rows: targets, columns: methods then bounds) with its values written in
    the cells; grey = no result; a vertical line after the first ``separator`` columns."""
    values = table.to_numpy(dtype=float)
    im = ax.imshow(np.ma.masked_invalid(values), cmap=plt.get_cmap("RdYlGn").with_extremes(bad="lightgrey"),
                   norm=norm, aspect="auto")
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=8)
    ax.axvline(separator - 0.5, color="black", lw=1)
    ax.set_xticks(range(len(table.columns)), table.columns, rotation=45, ha="right")
    ax.set_yticks(range(len(table.index)), table.index)
    ax.set_xlabel("selection method")
    ax.set_ylabel("target task")
    return im


def heatmaps(long: pd.DataFrame, panel_of: pd.Series, panel_names: list, columns: list, n_methods: int,
             title: str, colorbar: str, out_png) -> pd.DataFrame:
    """Gain heatmaps of ``long`` (columns target, column, gain), one per panel (``panel_of``: each
    row's panel name), as Deshpande Figs. 4 and 5; writes the figure and ``long`` beside it."""
    norm = gain_norm(long["gain"])
    fig, axes = panels(len(panel_names), 0.6 * len(columns) + 1.8, 0.45 * max(long["target"].nunique(), 1) + 2,
                       layout="constrained", stacked=len(columns) > 10)
    im = None
    for ax, panel in zip(axes, panel_names):
        table = (long[(panel_of == panel).to_numpy()].pivot_table(index="target", columns="column", values="gain",
                                                          aggfunc="mean", dropna=False)
                 .reindex(columns=columns).sort_index())
        im = gain_heatmap(ax, table, norm, n_methods)
        ax.set_title(panel)
    if not panel_names:
        no_data(axes[0], "selections")
    if im is not None:
        # constrained layout: tight_layout cannot place a colorbar shared across panels
        fig.colorbar(im, ax=list(axes), label=colorbar, shrink=0.8)
    fig.suptitle(title)
    return save_figure(fig, long, out_png)
