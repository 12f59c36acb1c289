"""Figures 2, 4 and 6 of the paper. Every figure writes ``<stem>.png`` and the data behind
it as ``<stem>.csv`` side by side, so the report can show both."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are rendered on cluster nodes
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402

from analysis.protocols import method_order  # noqa: E402
from analysis.tables import best_finetune, parse_expert, shots_order  # noqa: E402

DPI = 150
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def _save(fig, data: pd.DataFrame, out_png) -> pd.DataFrame:
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    data.to_csv(out_png.with_suffix(".csv"), index=False)
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    # bbox_inches="tight" keeps figure-level legends/titles placed outside the axes
    fig.savefig(out_png, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return data


def _panels(n: int, width: float, height: float, layout=None, stacked: bool = False):
    """One panel per shot setting, side by side (or stacked, for wide panels)."""
    n = max(n, 1)
    shape, size = ((n, 1), (width, height * n)) if stacked else ((1, n), (width * n, height))
    fig, axes = plt.subplots(*shape, figsize=size, squeeze=False, layout=layout)
    return fig, axes.ravel()


def fig2_finetune_error(finetune_df: pd.DataFrame, generalist: str, out_png) -> pd.DataFrame:
    """Fig. 2: top-1 test error (100 - best accuracy over lrs) of every expert per target,
    one panel per shot setting. As in the paper, each target has columns of markers: the
    generalist in red, then one column per architecture (filled: init from the generalist,
    hollow: from scratch); a black "<" flags experts beating the generalist."""
    best = best_finetune(finetune_df)
    meta = pd.DataFrame([parse_expert(e) for e in best["expert"]], index=best.index)
    data = pd.concat([best, meta], axis=1)
    data["test_error"] = 100.0 - data["test_accuracy"]
    data["is_generalist"] = data["expert"] == generalist
    gen_err = data[data["is_generalist"]].set_index(["target", "shots"])["test_error"]
    data["beats_generalist"] = data["test_error"] < [gen_err.get(k, np.nan) for k in zip(data["target"], data["shots"])]
    data = data[["expert", "arch", "source", "init", "target", "shots", "test_error",
                 "is_generalist", "beats_generalist"]]

    shots = shots_order(data["shots"])
    archs = sorted(data["arch"].unique())
    n_cols = len(archs) + 1  # generalist column + one per arch
    offsets = np.linspace(-0.3, 0.3, n_cols) if n_cols > 1 else np.zeros(1)
    fig, axes = _panels(len(shots), max(4.0, 0.9 * data["target"].nunique() + 2), 4.5)
    handles = {}
    for ax, shot in zip(axes, shots):
        d = data[data["shots"] == shot]
        targets = sorted(d["target"].unique())
        x = d["target"].map({t: i for i, t in enumerate(targets)}).to_numpy(dtype=float)
        gen = d["is_generalist"].to_numpy()
        handles["gen"] = ax.scatter(x[gen] + offsets[0], d["test_error"][gen], c="red", marker="*", s=90,
                                    zorder=3, label=f"generalist ({generalist})")
        for i, arch in enumerate(archs):
            for init, face in (("generalist", None), ("scratch", "none")):
                sel = ~gen & (d["arch"] == arch).to_numpy() & (d["init"] == init).to_numpy()
                if not sel.any():
                    continue
                color = f"C{i}"
                handles[(arch, init)] = ax.scatter(
                    x[sel] + offsets[i + 1], d["test_error"][sel], marker=_MARKERS[i % len(_MARKERS)],
                    facecolors=face or color, edgecolors=color, s=30, zorder=2,
                    label=f"{arch}, {'init: generalist' if init == 'generalist' else 'from scratch'}")
                win = sel & d["beats_generalist"].to_numpy()
                if win.any():
                    handles["win"] = ax.scatter(x[win] + offsets[i + 1] + 0.12, d["test_error"][win], c="black",
                                                marker="<", s=20, zorder=4, label="better than generalist")
        ax.set_xticks(range(len(targets)), targets, rotation=45, ha="right")
        ax.set_xlim(-0.6, len(targets) - 0.4)
        ax.set_xlabel("target task")
        ax.set_ylabel("top-1 test error (%)")
        ax.set_title(f"shots: {shot}")
        ax.grid(axis="y", alpha=0.3)
    if handles:
        fig.legend(handles=list(handles.values()), loc="upper center", ncol=min(len(handles), 4),
                   bbox_to_anchor=(0.5, 1.0), fontsize=8, frameon=False)
    fig.suptitle("Fine-tuning the model zoo: test error per expert", y=1.06)
    return _save(fig, data, out_png)


def fig4_top3_gain(selection_df: pd.DataFrame, gains_df: pd.DataFrame, out_png, k: int = 3) -> pd.DataFrame:
    """Fig. 4: heatmap of the accuracy gain over the generalist of the best of the top-k
    experts selected by each method (columns) per target (rows), next to the "best gain" and
    "worst gain" of the zoo; one panel per shot setting."""
    col = f"top{k}_gain"
    methods = method_order(selection_df["method"])
    long = pd.concat([
        selection_df[["shots", "target", "method", col]].rename(columns={"method": "column", col: "gain"}),
        gains_df[["shots", "target", "best_gain"]].assign(column="best gain").rename(columns={"best_gain": "gain"}),
        gains_df[["shots", "target", "worst_gain"]].assign(column="worst gain").rename(columns={"worst_gain": "gain"}),
    ], ignore_index=True)
    columns = methods + ["best gain", "worst gain"]
    shots = shots_order(long["shots"])
    vmax = max(float(np.nanmax(np.abs(long["gain"].to_numpy(dtype=float)))) if long["gain"].notna().any() else 0, 1e-6)
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax)  # diverging, white = no gain
    n_rows = max(long["target"].nunique(), 1)
    # constrained layout: tight_layout cannot place a colorbar shared across panels
    # many methods make wide heatmaps: stack the shot settings so labels stay readable
    fig, axes = _panels(len(shots), 0.6 * len(columns) + 1.8, 0.45 * n_rows + 2, layout="constrained",
                        stacked=len(columns) > 10)
    im = None
    for ax, shot in zip(axes, shots):
        grid = (long[long["shots"] == shot].pivot_table(index="target", columns="column", values="gain",
                                                        aggfunc="mean", dropna=False)
                .reindex(columns=columns).sort_index())
        cmap = plt.get_cmap("RdYlGn").with_extremes(bad="lightgrey")  # grey: no result for that cell
        im = ax.imshow(np.ma.masked_invalid(grid.to_numpy(dtype=float)), cmap=cmap, norm=norm, aspect="auto")
        for (i, j), v in np.ndenumerate(grid.to_numpy(dtype=float)):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=8)
        ax.axvline(len(methods) - 0.5, color="black", lw=1)  # separate methods from the bounds
        ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
        ax.set_yticks(range(len(grid.index)), grid.index)
        ax.set_xlabel("selection method")
        ax.set_ylabel("target task")
        ax.set_title(f"shots: {shot}")
    if im is not None:
        fig.colorbar(im, ax=list(axes), label="accuracy gain over generalist (% points)", shrink=0.8)
    fig.suptitle(f"Accuracy gain of the best of the top-{k} selected experts")
    rank = {"shots": {s: i for i, s in enumerate(shots)}, "column": {c: i for i, c in enumerate(columns)}}
    long = long.sort_values(["shots", "target", "column"], key=lambda c: c.map(rank[c.name]) if c.name in rank else c)
    return _save(fig, long.reset_index(drop=True), out_png)


def _grouped_bars(selection_df: pd.DataFrame, value: str, ylabel: str, title: str, out_png) -> pd.DataFrame:
    """Mean (and std) over targets per method, bars grouped by method, one colour per shots."""
    data = (selection_df.groupby(["method", "shots"], as_index=False)[value]
            .agg(mean="mean", std="std", n_targets="count")
            .rename(columns={"mean": value, "std": f"{value}_std"}))
    methods, shots = method_order(data["method"]), shots_order(data["shots"])
    data = data.sort_values(["method", "shots"], key=lambda c: c.map(
        {m: i for i, m in enumerate(methods if c.name == "method" else shots)})).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(methods) * max(len(shots), 1) * 0.5 + 3), 4))
    width = 0.8 / max(len(shots), 1)
    for i, shot in enumerate(shots):
        d = data[data["shots"] == shot].set_index("method").reindex(methods)
        ax.bar(np.arange(len(methods)) + (i - (len(shots) - 1) / 2) * width, d[value], width,
               yerr=d[f"{value}_std"].fillna(0), capsize=2, label=f"shots: {shot}", color=f"C{i}")
    ax.set_xticks(range(len(methods)), methods, rotation=30 if len(methods) > 5 else 0, ha="right" if len(methods) > 5 else "center")
    ax.set_xlabel("selection method")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.axhline(0, color="black", lw=0.8)
    ax.grid(axis="y", alpha=0.3)
    if shots:
        ax.legend(fontsize=8)
    return _save(fig, data, out_png)


def fig6a_trials_to_best(selection_df: pd.DataFrame, out_png) -> pd.DataFrame:
    """Fig. 6a: mean number of trials (fine-tunes in score order) to reach the best expert."""
    return _grouped_bars(selection_df, "trials_to_best", "trials to best expert (mean over targets)",
                         "Selections needed to find the best expert (lower is better)", out_png)


def fig6b_spearman(selection_df: pd.DataFrame, out_png) -> pd.DataFrame:
    """Fig. 6b: mean Spearman correlation between scores and fine-tuned accuracy."""
    return _grouped_bars(selection_df, "spearman", "Spearman correlation (mean over targets)",
                         "Score vs fine-tuned accuracy rank correlation (higher is better)", out_png)


def theta_f(features: np.ndarray) -> np.ndarray:
    """Theta_F as Fig. 8 shows it: the correlation between the samples' (centred) features,
    F F^T normalised to a unit diagonal."""
    f = features - features.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(f, axis=1, keepdims=True)
    f = f / np.where(norms > 0, norms, 1.0)
    return f @ f.T


def fig8_theta_f(records: list, out_png, max_experts: int = 8) -> pd.DataFrame:
    """Fig. 8: Theta_F of each expert (rows) at the saved epochs of fine-tuning (columns), samples
    grouped by class. The CSV holds, per expert and epoch, the mean Theta_F within and between
    classes and their difference (block-diagonal contrast: high when same-class features align)."""
    rows, panels = [], []
    for path in records:
        with np.load(path) as z:
            labels, epochs, expert = z["labels"], z["epochs"], str(z["expert"])
            same = labels[:, None] == labels[None, :]
            off_diagonal = ~np.eye(len(labels), dtype=bool)
            for epoch, features in zip(epochs, z["features"]):
                theta = theta_f(features.astype(np.float64))
                within, between = theta[same & off_diagonal].mean(), theta[~same].mean()
                rows.append({"expert": expert, "target": str(z["target"]), "shots": str(z["shots"]),
                             "lr": float(z["lr"]), "epoch": int(epoch), "within_class": within,
                             "between_class": between, "contrast": within - between})
                panels.append((expert, int(epoch), theta))
    data = pd.DataFrame(rows)
    # the experts whose pre-training separates the target's classes best at epoch 0, as in the paper
    start = data[data["epoch"] == data["epoch"].min()].sort_values("contrast", ascending=False)
    shown = list(start["expert"])[:max_experts]
    epochs = sorted(data["epoch"].unique())
    fig, axes = plt.subplots(len(shown), len(epochs), figsize=(2.4 * len(epochs), 2.4 * len(shown)), squeeze=False)
    lookup = {(e, ep): t for e, ep, t in panels}
    for i, expert in enumerate(shown):
        for j, epoch in enumerate(epochs):
            ax = axes[i, j]
            ax.imshow(lookup[(expert, epoch)], cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(f"epoch {epoch}", fontsize=9)
            if j == 0:
                ax.set_ylabel(expert, fontsize=8)
    target = data["target"].iloc[0] if len(data) else ""
    fig.suptitle(f"Theta_F while fine-tuning on {target} (rows: experts by epoch-0 contrast)", fontsize=10)
    return _save(fig, data, out_png)
