"""How much a protocol's number can be trusted: the fine-tuning seeds' noise ceiling and 95% bootstrap
intervals ("Back to the Basics", 2024, asks every transferability result for intervals; Agostinelli et al.,
ECCV 2022, show how small setup changes flip which score wins).

Resampling units (said in every caption that shows an interval):

- a per-target row (one method, target and shots: a correlation, the top-k gain, trials to best, a regret):
  the **fine-tuning seeds**. A replicate draws as many seeds as were run, with replacement; the ground truth
  is recomputed from those runs (`analysis.tables.ground_truth_rows`, a seed drawn twice counting twice) and
  the metric with it, the scores held fixed. With one seed there is nothing to resample: NaN bounds.
- a mean over targets (`summary`): the **targets and, within each drawn target, its seeds** (two stages).

Bounds are percentiles of the replicates, so they never leave a quantity's range (no -2.5 trials). A
replicate whose metric is undefined (e.g. all drawn accuracies tied) is left out of that row's percentiles.
Every replicate of a row sees the same distinct seed draws, so the protocol runs once per distinct
multiset of seeds (10 for 3 seeds), not once per replicate.
"""
from __future__ import annotations

import warnings
from itertools import combinations
from typing import Callable

import numpy as np
import pandas as pd

from analysis.plotting import no_data, readable_grid, save_figure
from analysis.protocols import CORRELATIONS, correlations, evaluate_selection, method_order
from analysis.strategies import ranked_methods
from analysis.tables import KEYS, AnalysisError, best_finetune, ground_truth_rows, seed_means, shots_order, split_zoos

N_BOOT = 1000
LEVEL = 0.95
SEED_UNIT = "fine-tuning seeds"
SUMMARY_UNIT = "targets, then fine-tuning seeds within each"


def _bounds(values: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bounds over axis 0 (the replicates), NaN where every replicate is NaN."""
    alpha = (1.0 - level) / 2.0
    out = np.full((2,) + values.shape[1:], np.nan)
    finite = np.isfinite(values).any(axis=0)
    if finite.any():
        out[:, finite] = np.nanpercentile(values[:, finite], [100 * alpha, 100 * (1 - alpha)], axis=0)
    return out[0], out[1]


def with_seed(runs: pd.DataFrame) -> pd.DataFrame:
    """The fine-tune table with its ``seed`` column (a table from before fine-tuning seeds: one seed, 0)."""
    return runs if "seed" in runs else runs.assign(seed=0)


class SeedBootstrap:
    """A protocol evaluated on resamples of the fine-tuning seeds of ``runs`` (the fine-tune table, one row
    per run with a ``seed`` column; without it, one seed).

    ``evaluate(ground_truth_table) -> DataFrame`` is the protocol (e.g. `analysis.protocols.evaluate_selection`
    with its other arguments bound); it receives the ground truth of one resample (`ground_truth_rows` with
    ``lr_selection``). ``keys`` index its rows, ``metrics`` are the columns that get intervals.
    """

    def __init__(self, evaluate: Callable[[pd.DataFrame], pd.DataFrame], runs: pd.DataFrame, keys: list[str],
                 metrics: list[str], lr_selection: str = "test", n_boot: int = N_BOOT, seed: int = 0):
        self.keys, self.metrics = list(keys), list(metrics)
        runs = with_seed(runs)
        seeds = sorted(runs["seed"].unique())
        self.point = evaluate(ground_truth_rows(runs, lr_selection)).reset_index(drop=True)
        self.n_seeds = len(seeds)
        rng = np.random.default_rng(seed)
        # replicate draws as sorted seed multisets; the protocol runs once per distinct one
        draws = np.sort(rng.integers(0, max(self.n_seeds, 1), size=(n_boot, self.n_seeds)), axis=1)
        self.multisets, self.draw = np.unique(draws, axis=0, return_inverse=True)
        self.draw = self.draw.reshape(-1)
        self.values = np.full((len(self.multisets), len(self.point), len(self.metrics)), np.nan)
        if self.n_seeds < 2:
            return
        by_seed = {s: runs[runs["seed"] == s] for s in seeds}
        index = pd.MultiIndex.from_frame(self.point[self.keys].astype(str))
        for i, multiset in enumerate(self.multisets):
            sample = pd.concat([by_seed[seeds[j]] for j in multiset], ignore_index=True)
            result = evaluate(ground_truth_rows(sample, lr_selection))
            result.index = pd.MultiIndex.from_frame(result[self.keys].astype(str))
            self.values[i] = result[self.metrics].reindex(index).to_numpy(dtype=float)

    def with_intervals(self, level: float = LEVEL) -> pd.DataFrame:
        """The protocol's rows (all seeds) with ``<metric>_ci_low`` / ``<metric>_ci_high`` per metric: the
        percentile interval over the seed resamples (NaN with one seed)."""
        low, high = _bounds(self.values[self.draw], level)
        out = self.point.copy()
        for j, metric in enumerate(self.metrics):
            out[f"{metric}_ci_low"], out[f"{metric}_ci_high"] = low[:, j], high[:, j]
        return out

    def summary(self, by: list[str], over: str = "target", n_boot: int = N_BOOT, seed: int = 0,
                level: float = LEVEL) -> pd.DataFrame:
        """Per ``by`` group (e.g. method and shots): each metric's mean over ``over`` (the targets; undefined
        ones left out), ``n_<over>s`` counted, and its interval from a two-stage bootstrap: ``over`` drawn
        with replacement, then for each drawn one a seed resample (one seed: targets only)."""
        rng = np.random.default_rng(seed + 1)
        point = self.point
        rows = []
        for group, idx in point.groupby(by, sort=False).indices.items():
            group = group if isinstance(group, tuple) else (group,)
            idx = np.asarray(idx)
            chosen = idx[rng.integers(0, len(idx), size=(n_boot, len(idx)))]
            if self.n_seeds >= 2:
                # a seed resample per drawn target, with the replicates' own multiset frequencies
                multiset = self.draw[rng.integers(0, len(self.draw), size=(n_boot, len(idx)))]
                values = self.values[multiset, chosen]  # (n_boot, n, metrics)
            else:
                values = point[self.metrics].to_numpy(dtype=float)[chosen]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a replicate of only undefined targets: NaN
                means = np.nanmean(values, axis=1)
            low, high = _bounds(means, level)
            own = point.loc[idx, self.metrics].to_numpy(dtype=float)
            row = dict(zip(by, group))
            row[f"n_{over}s"] = len(idx)
            for j, metric in enumerate(self.metrics):
                finite = np.isfinite(own[:, j])
                row[metric] = float(own[finite, j].mean()) if finite.any() else np.nan
                row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = low[j], high[j]
            rows.append(row)
        return pd.DataFrame(rows)


def per_seed_truth(runs: pd.DataFrame, lr_selection: str = "test") -> pd.DataFrame:
    """The best fine-tuned accuracy per (target, shots, expert) (rows) under each seed alone (columns)."""
    runs = with_seed(runs)
    return pd.DataFrame({seed: best_finetune(ground_truth_rows(g, lr_selection)).set_index(["target", "shots", "expert"])
                         ["test_accuracy"] for seed, g in runs.groupby("seed", sort=True)})


NOISE_COLUMNS = ["target", "shots", *CORRELATIONS, "n_seed_pairs", "n_experts"]


def noise_ceiling(runs: pd.DataFrame, lr_selection: str = "test") -> pd.DataFrame:
    """Per (target, shots): how well the experts' fine-tuned accuracies under one seed rank them under
    another: each correlation (`analysis.protocols.correlations`) between the accuracies of two seeds over
    the experts both have, averaged over the pairs of seeds (undefined pairs left out). No score can be
    asked to agree with the ground truth better than the ground truth agrees with itself. NaN with one seed
    (``n_seed_pairs`` 0)."""
    truth = per_seed_truth(runs, lr_selection)
    rows = []
    for (target, shots), table in truth.groupby(level=["target", "shots"], sort=True):
        pairs, n_experts = [], 0
        for a, b in combinations(table.columns, 2):
            both = table[[a, b]].dropna()
            n_experts = max(n_experts, len(both))
            pairs.append(correlations(both[a].to_numpy(), both[b].to_numpy()))
        means = {}
        for c in CORRELATIONS:
            defined = [p[c] for p in pairs if np.isfinite(p[c])]
            means[c] = float(np.mean(defined)) if defined else np.nan
        rows.append({"target": target, "shots": shots, **means, "n_seed_pairs": len(pairs),
                     "n_experts": n_experts if pairs else len(table)})
    return pd.DataFrame(rows, columns=NOISE_COLUMNS)


# --------------------------------------------------------------------------- renderers (analysis.outputs)

def seed_bootstrap(ctx, name: str, evaluate: Callable[[pd.DataFrame], pd.DataFrame], keys: list[str],
                   metrics: list[str], domains: bool = False) -> SeedBootstrap:
    """``evaluate`` over seed resamples of the single-domain zoo's runs (``domains``: of the multi-domain
    expert's domains), once per context under ``name``."""
    return ctx.memo(name, lambda: SeedBootstrap(evaluate, split_zoos(ctx.runs())[int(domains)], keys, metrics,
                                                ctx.lr_selection, seed=ctx.seed))


def noise_ceiling_table(ctx) -> pd.DataFrame:
    """noise_ceiling.csv: `noise_ceiling` of the single-domain zoo under the benchmark's ground truth."""
    return noise_ceiling(split_zoos(ctx.runs())[0], ctx.lr_selection)


def finetune_ground_truth(ctx) -> pd.DataFrame:
    """finetune_ground_truth.csv: per (expert, target, shots) both ground truths, means over the seeds: the
    paper's (``best_on_test_accuracy`` at ``best_on_test_lr``) and the lr chosen on validation data
    (``validation_accuracy`` at ``validation_lr``; NaN without a validation part, lr NaN when lrs tie),
    ``n_seeds``, the standard deviation over seeds of the ground truth the tables use (``seed_std``) and
    which one that is (``ground_truth``)."""
    runs = ctx.runs()
    means = seed_means(runs)
    best_lr = means.loc[means.fillna({"test_accuracy": -np.inf}).groupby(KEYS, sort=False)["test_accuracy"].idxmax()]
    out = best_lr[KEYS + ["test_accuracy", "lr", "n_seeds"]].rename(
        columns={"test_accuracy": "best_on_test_accuracy", "lr": "best_on_test_lr"})
    try:
        val = ground_truth_rows(runs, "validation")[KEYS + ["test_accuracy", "lr"]].rename(
            columns={"test_accuracy": "validation_accuracy", "lr": "validation_lr"})
    except AnalysisError:  # no validation part was held out
        val = out[KEYS].assign(validation_accuracy=np.nan, validation_lr=np.nan)
    out = out.merge(val, on=KEYS, how="left")
    std = per_seed_truth(runs, ctx.lr_selection).std(axis=1, ddof=1).rename("seed_std").reset_index()
    out = out.merge(std, on=KEYS, how="left").assign(ground_truth=ctx.lr_selection)
    return out[KEYS + ["n_seeds", "best_on_test_accuracy", "best_on_test_lr", "validation_accuracy", "validation_lr",
                       "seed_std", "ground_truth"]].reset_index(drop=True)


def selection_bootstrap(ctx, scores: pd.DataFrame | None = None, name: str = "selection_bootstrap") -> SeedBootstrap:
    """Sec. 4.3's protocol (`evaluate_selection`) on the fine-tuning seeds' resamples for the rankings
    ``scores`` (default: every method and strategy, `analysis.strategies.ranked_methods`), once per context."""
    ranked, k = ranked_methods(ctx) if scores is None else scores, ctx.top_k
    return seed_bootstrap(ctx, name, lambda truth: evaluate_selection(truth, ranked, ctx.reference_expert, k, ctx.probe_set),
                          ["method", "target", "shots"], [*CORRELATIONS, f"top{k}_gain", "trials_to_best"])


def summarize_selection(ctx, boot: SeedBootstrap) -> pd.DataFrame:
    """Per method and shots, each metric of `selection_bootstrap`'s rows averaged over the targets with its
    95% interval (targets, then seeds resampled: `SeedBootstrap.summary`), ``degenerate_targets`` (targets
    on which the method tied every expert), the ground truth used and ``n_seeds``."""
    summary = boot.summary(["method", "shots"], seed=ctx.seed)
    degenerate = boot.point.groupby(["method", "shots"], sort=False)["degenerate"].sum().rename("degenerate_targets")
    summary = summary.merge(degenerate.reset_index(), on=["method", "shots"], how="left")
    return summary.assign(ground_truth=ctx.lr_selection, n_seeds=boot.n_seeds)


def selection_summary(ctx) -> pd.DataFrame:
    """selection_summary.csv: `summarize_selection` of every method and strategy."""
    return summarize_selection(ctx, selection_bootstrap(ctx))


def summary_bars(summary: pd.DataFrame, value: str, xlabel: str, title: str, out_png,
                 ceiling: pd.DataFrame | None = None, value_range: tuple[float, float] | None = None) -> pd.DataFrame:
    """Mean over targets of ``value`` per method of ``summary`` (`summarize_selection`'s rows) as horizontal
    bars with their 95% intervals, one panel per shot setting (readable at any number of methods); hatched
    grey: a method degenerate on every target of that setting (all experts tied: a random choice, not a
    ranking); ``ceiling``: noise_ceiling.csv, its mean over targets drawn as a line and its range over
    targets as a band."""
    cols = ["method", "shots", value, f"{value}_ci_low", f"{value}_ci_high", "n_targets", "degenerate_targets"]
    data = summary[cols].assign(kind="method")
    shots, methods = shots_order(data["shots"]), method_order(data["method"])[::-1]  # first method on top
    if ceiling is not None and len(ceiling) and ceiling[value].notna().any():
        band = (ceiling.groupby("shots", as_index=False)[value].agg(["mean", "min", "max", "count"])
                .rename(columns={"mean": value, "min": f"{value}_ci_low", "max": f"{value}_ci_high", "count": "n_targets"}))
        data = pd.concat([data, band.assign(method="noise ceiling", degenerate_targets=0, kind="noise_ceiling")[
            cols + ["kind"]]], ignore_index=True)
    fig, axes = readable_grid(len(shots), 3.6, max(2.5, 0.22 * len(methods) + 1.2))
    for ax, shot in zip(axes, shots):
        d = data[(data["shots"] == shot) & (data["kind"] == "method")].set_index("method").reindex(methods)
        y, mean = np.arange(len(methods)), d[value].to_numpy(dtype=float)
        low, high = d[f"{value}_ci_low"].to_numpy(dtype=float), d[f"{value}_ci_high"].to_numpy(dtype=float)
        degenerate = (d["degenerate_targets"] >= d["n_targets"]).to_numpy() & (d["n_targets"] > 0).to_numpy()
        colors = np.where(degenerate, "lightgrey", "C0")
        bars = ax.barh(y, mean, color=colors, height=0.7)
        for bar, deg in zip(bars, degenerate):
            bar.set_hatch("///" if deg else None)
        has = np.isfinite(low) & np.isfinite(high)
        ax.errorbar(mean[has], y[has], xerr=[mean[has] - low[has], high[has] - mean[has]], fmt="none", ecolor="black",
                    capsize=2, lw=0.8)
        c = data[(data["shots"] == shot) & (data["kind"] == "noise_ceiling")]
        if len(c):
            ax.axvspan(float(c[f"{value}_ci_low"].iloc[0]), float(c[f"{value}_ci_high"].iloc[0]), color="orange", alpha=0.2,
                       label="noise ceiling (range over targets)")
            ax.axvline(float(c[value].iloc[0]), color="orange", lw=1.5, label="noise ceiling (mean)")
        ax.set_yticks(y, methods, fontsize=7)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_title(f"shots: {shot}", fontsize=9)
        ax.axvline(0, color="black", lw=0.8)
        if value_range is not None:
            ax.set_xlim(*value_range)
        ax.grid(axis="x", alpha=0.3)
    if not shots:
        no_data(axes[0], "selections")
    elif ceiling is not None and (data["kind"] == "noise_ceiling").any():
        axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{title}\nbars: mean over targets, whiskers: 95% bootstrap interval (targets, seeds); "
                 "hatched: degenerate (all experts tied)", fontsize=9)
    return save_figure(fig, data.reset_index(drop=True), out_png)
