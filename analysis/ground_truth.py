"""A zoo benchmark's evaluation against a shipped ground truth (the field's standard benchmark: LogME /
SFDA / ETran / NCTI's 11 ImageNet models x 11 targets), with nothing fine-tuned here.

The benchmark's `ground_truth` CSV (`pipeline.benchmark.read_ground_truth`: model, target, accuracy,
source, optionally shots) gives each zoo expert's fine-tuning accuracy on each target, or, with
`ground_truth: finetune`, the zoo's fine-tuning records of this run do (the best accuracy over the lrs); every score of every expert is
joined to it, and each method is evaluated per target by weighted Kendall tau (the papers' metric:
LogME Sec. 5, SFDA Sec. 4.1, both `scipy.stats.weightedtau` on (accuracy, score)) beside Kendall,
Pearson and Spearman. The benchmark's `published_scores` CSV (method, target, weighted_tau, source)
puts the papers' own numbers beside the reproduced ones.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.plotting import save_figure
from analysis.protocols import correlations
from analysis.tables import (LR_SELECTION_LABEL, AnalysisError, best_finetune, finetune_table, ground_truth_rows,
                             load_record, scores_table)
from pipeline.benchmark import FINETUNE_GROUND_TRUTH, BenchmarkError, read_ground_truth, read_published_scores

GROUND_TRUTH_SCORE_COLUMNS = ["expert", "target", "shots", "probe", "method", "score", "accuracy", "accuracy_source"]
EVAL_COLUMNS = ["method", "target", "shots", "probe", "weighted_tau", "kendall", "pearson", "spearman", "n_experts"]
NOT_COMPUTABLE_COLUMNS = ["expert", "method", "reason"]
MEAN = "mean"  # the target of a method's row averaged over the targets


def _record(ctx, key: str) -> str:
    paths = ctx.records.get(key) or []
    if not paths:
        raise AnalysisError(f"the ground-truth evaluation needs {key}=<csv> (the benchmark's `{key}`)")
    return str(paths[0])


def _main_rows(ctx) -> pd.DataFrame:
    """ground_truth_eval's rows of the full setting on the main probe set (what the papers' tables show)."""
    ev = ctx.table("ground_truth_eval")
    return ev[(ev["shots"].astype(str) == "full") & (ev["probe"] == ctx.probe_set)]


def ground_truth_scores(ctx) -> pd.DataFrame:
    """Every score row of the zoo's records with its expert's ground-truth accuracy on that target (%,
    higher = better) and where that accuracy comes from. Raises AnalysisError for a ground truth that
    misses an (expert, target) pair that has scores."""
    scores = scores_table(ctx.records.get("scores", []))
    experts, targets = sorted(scores["expert"].unique()), sorted(scores["target"].unique())
    if _record(ctx, "ground_truth") == FINETUNE_GROUND_TRUTH:
        runs = ground_truth_rows(finetune_table(ctx.records.get("finetune", [])), ctx.lr_selection)
        truth = best_finetune(runs).rename(columns={"test_accuracy": "accuracy"}).assign(
            accuracy_source=f"fine-tuned in this run, mean over seeds at {LR_SELECTION_LABEL[ctx.lr_selection]}")
    else:
        try:
            points = list(scores[["expert", "target", "shots"]].drop_duplicates().itertuples(index=False, name=None))
            truth = read_ground_truth(_record(ctx, "ground_truth"), experts, targets, sorted(scores["shots"].unique()),
                                      points)
        except BenchmarkError as err:
            raise AnalysisError(str(err)) from None
        truth = truth.rename(columns={"model": "expert", "source": "accuracy_source"})
    scores = scores.assign(probe=scores["probe"].fillna(ctx.probe_set))
    return scores.merge(truth, on=["expert", "target", "shots"], how="left")[GROUND_TRUTH_SCORE_COLUMNS]


def _evaluate(group: pd.DataFrame, method: str, experts: int) -> dict:
    """One method on one (target, shots, probe): its correlations with the ground truth over the experts.
    An expert of the `experts` scored on the target without a finite score here (a score that failed or
    came out NaN / inf) makes every correlation NaN: never ranked on the rest; `n_experts` counts the
    finite scores."""
    finite = np.isfinite(group["score"].to_numpy(dtype=float))
    if finite.sum() < experts:
        values = dict.fromkeys(("weighted_tau", "kendall", "pearson", "spearman"), float("nan"))
    else:
        values = correlations(group["score"], group["accuracy"], random=method == "random",
                              names=("weighted_tau", "kendall", "pearson", "spearman"))
    return {**values, "n_experts": int(finite.sum())}


def ground_truth_eval(ctx) -> pd.DataFrame:
    """Per method, target, shot setting and probe set: weighted tau, Kendall tau-b, Pearson and Spearman
    between the experts' scores and their ground-truth accuracies (higher = better; Random: its exact
    expectation, 0; NaN where an expert lacks a finite score, e.g. the score failed for it), and, per method, shots and probe, their mean over the targets (target "mean"; NaN
    when a target's value is NaN)."""
    joined = ctx.table("ground_truth_scores")
    keys = ["method", "target", "shots", "probe"]
    experts = joined.groupby("target")["expert"].nunique()  # every expert with any score on the target
    rows = [{**dict(zip(keys, key)), **_evaluate(group, key[0], experts[key[1]])}
            for key, group in joined.groupby(keys, sort=True)]
    per_target = pd.DataFrame(rows, columns=EVAL_COLUMNS)
    metric_cols = ["weighted_tau", "kendall", "pearson", "spearman"]
    mean = per_target.groupby(["method", "shots", "probe"], sort=True).agg(
        {**{c: lambda s: s.mean(skipna=False) for c in metric_cols}, "n_experts": "min"}).reset_index()
    mean["target"] = MEAN
    return pd.concat([per_target, mean[EVAL_COLUMNS]], ignore_index=True)


def published_ground_truth(ctx) -> pd.DataFrame:
    """The published weighted tau of each (method, target) beside the reproduced one on the benchmark's
    main probe set and full training set: method, target, reproduced, published, difference, source.
    Empty (with these columns) when the benchmark names no `published_scores`."""
    columns = ["method", "target", "reproduced", "published", "difference", "source"]
    if not ctx.records.get("published_scores"):
        return pd.DataFrame(columns=columns)
    try:
        published = read_published_scores(_record(ctx, "published_scores"))
    except BenchmarkError as err:
        raise AnalysisError(str(err)) from None
    ev = _main_rows(ctx)
    merged = published.rename(columns={"weighted_tau": "published"}).merge(
        ev[["method", "target", "weighted_tau"]].rename(columns={"weighted_tau": "reproduced"}),
        on=["method", "target"], how="left")
    merged["difference"] = merged["reproduced"] - merged["published"]
    return merged[columns]


def fig_ground_truth_weighted_tau(ctx, out_png) -> pd.DataFrame:
    """Heatmap of weighted tau (method x target, the main probe set of the full setting; the last column
    the mean over targets), the layout of SFDA Table 1 / LogME Table 2."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    data = _main_rows(ctx)[["method", "target", "weighted_tau"]].reset_index(drop=True)
    grid = data.pivot(index="method", columns="target", values="weighted_tau")
    grid = grid[[c for c in grid.columns if c != MEAN] + ([MEAN] if MEAN in grid.columns else [])]
    if MEAN in grid.columns:
        grid = grid.sort_values(MEAN, ascending=False)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * max(len(grid.columns), 1), 1.0 + 0.35 * max(len(grid), 1)))
    if grid.empty:
        ax.text(0.5, 0.5, "no scores on the main probe set", ha="center", va="center")
        ax.set_axis_off()
    else:
        sns.heatmap(grid, ax=ax, annot=True, fmt=".2f", cmap="RdBu_r", center=0, vmin=-1, vmax=1,
                    cbar_kws={"label": "weighted Kendall tau"})
        ax.set_xlabel("target")
        ax.set_ylabel("method")
    ax.set_title(f"Score vs. ground-truth fine-tuning accuracy ({ctx.probe_set})")
    return save_figure(fig, data, out_png)


def not_computable(ctx) -> pd.DataFrame:
    """The methods an expert lacks an input for (no source head for LEEP / NCE, no source data for
    Domain Similarity, no convolution for LGC): expert, method, reason, from the score records."""
    rows = [r for p in ctx.records.get("scores", []) for r in load_record(p).get("not_computable", [])]
    return pd.DataFrame(rows, columns=NOT_COMPUTABLE_COLUMNS)
