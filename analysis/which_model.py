"""Which Model to Transfer? Finding a Needle in the Growing Haystack (Renggli et al., CVPR
2022): regret of model-search strategies per budget (Sec. 3, eq. 1-2; Figs. 3-4, 6) and the
fraction of targets with zero regret against the budget (Fig. 7).

A strategy (`analysis.strategies`: task-agnostic, task-aware linear / kNN, hybrid, random)
picks B experts to fine-tune; its regret compares the best of them with the best expert of the
pool (lower = better, 0 = the best expert was picked). Renderers take the
`analysis.context.Context` (and, for a figure, the .png path) and return what they write.
"""
from __future__ import annotations

from math import comb

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from analysis.intervals import seed_bootstrap
from analysis.plotting import grid, no_data, save_figure
from analysis.protocols import candidate_groups, regret_table, topk_split
from analysis.strategies import (TASK_AWARE, hybrid, random_strategy, ranked_methods, restrict_pool, task_agnostic,
                                 task_aware)
from analysis.tables import best_finetune, shots_order

ORACLE = "task_agnostic_oracle"  # Fig. 7: ranks by mean fine-tuned accuracy over targets
WM_REGRET = ("task_agnostic", "logistic", "knn_loo", "hybrid_logistic", "hybrid_knn_loo")
WM_ZERO = ("task_agnostic", ORACLE, "logistic", "knn_loo", "hybrid_logistic", "hybrid_knn_loo", "random")
WM_LABELS = {"task_agnostic": "task-agnostic", ORACLE: "task-agnostic oracle", "logistic": "linear",
             "knn_loo": "kNN", "hybrid_logistic": "hybrid linear", "hybrid_knn_loo": "hybrid kNN", "random": "random"}
ZERO_REGRET_COLUMNS = ["strategy", "shots", "budget", "zero_regret_fraction", "n_targets"]


def regret(ctx) -> pd.DataFrame:
    """regret.csv: eq. 1-2 per budget for every method and strategy of step=evaluate
    (`analysis.protocols.regret_table` on the main probe set), each regret with its 95% interval over the
    fine-tuning seeds (`analysis.intervals`; NaN with one seed)."""
    ranked = ranked_methods(ctx)
    return seed_bootstrap(ctx, "regret_bootstrap", lambda truth: regret_table(truth, ranked, ctx.probe_set),
                          ["method", "target", "shots", "budget"], ["abs_regret", "rel_regret", "rel_delta"]
                          ).with_intervals()


def p_zero_regret(scores, values, budget: int) -> float:
    """Probability (in [0, 1]) that the top-``budget`` experts by ``scores`` hold a best expert by
    ``values`` (zero regret), ties at the cut-off drawn uniformly: 1 - C(g - b, r) / C(g, r) for
    r drawn from a tie group of g holding b best experts, 1 when a surely selected expert is best."""
    v = np.asarray(values, dtype=float)
    sure, boundary, r = topk_split(scores, budget)
    best = v == v.max()
    if (sure & best).any():
        return 1.0
    g, b = int(boundary.sum()), int((boundary & best).sum())
    return 1.0 - comb(g - b, r) / comb(g, r)


def pool_rankings(ctx, pool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fine-tunes, ranking frames) of one model pool (`analysis.strategies.Pool`): task-agnostic,
    the task-agnostic oracle, the task-aware scores (logistic, knn_loo), the hybrids and random,
    on the single-domain experts' scores on the main probe set."""
    zoo, probe = ctx.single("zoo_accuracy"), ctx.probe_set
    ft, sc = (restrict_pool(ctx.single(n), zoo, pool) for n in ("finetune", "scores"))
    aware = [m for m in TASK_AWARE if (sc["method"] == m).any()]
    candidates = random_strategy(sc, zoo, pool, probe=probe)
    mean_acc = best_finetune(ft).groupby(["expert", "shots"])["test_accuracy"].mean()
    oracle = candidates.assign(method=ORACLE, score=[mean_acc.get(key, np.nan) for key in
                                                     zip(candidates["expert"], candidates["shots"])])
    frames = [task_agnostic(sc, zoo, pool, probe=probe), oracle,
              *(task_aware(sc, m, zoo, pool, probe=probe) for m in aware),
              *(hybrid(sc, zoo, m, pool, probe=probe) for m in aware), candidates]
    frames = [f for f in frames if len(f)]
    return ft, (pd.concat(frames, ignore_index=True) if frames else candidates)


def _strategy_order(present, order) -> list[str]:
    return [s for s in order if s in set(present)]


def wm_regret_b12(ctx, out_png) -> pd.DataFrame:
    """Figs. 3-4 (6): relative regret r(m) per target with budget B = 1 (transparent bars) and
    B = 2 (solid) of the task-agnostic, linear (logistic), kNN (knn_loo) and hybrid strategies,
    one row of panels per strategy, one column per model pool and shot setting."""
    frames = []
    for name, pool in ctx.pools.items():
        ft, ranked = pool_rankings(ctx, pool)
        reg = regret_table(ft, ranked[ranked["method"].isin(WM_REGRET)], ctx.probe_set)
        frames.append(reg[reg["budget"] <= 2].assign(pool=name))
    data = pd.concat(frames, ignore_index=True).rename(columns={"method": "strategy"})
    data = data[["pool", "strategy", "target", "shots", "budget", "rel_regret", "abs_regret"]]
    strategies, shots, pools = _strategy_order(data["strategy"], WM_REGRET), shots_order(data["shots"]), list(ctx.pools)
    data = data.sort_values(["pool", "strategy", "shots", "target", "budget"], key=lambda c: c.map(
        {v: i for i, v in enumerate({"pool": pools, "strategy": strategies, "shots": shots}[c.name])})
        if c.name in ("pool", "strategy", "shots") else c).reset_index(drop=True)
    targets = sorted(data["target"].unique())
    columns = [(p, s) for p in pools for s in shots]
    n_rows, n_cols = max(len(strategies), 1), max(len(columns), 1)
    fig, axes = plt.subplots(n_rows, n_cols, squeeze=False, sharey=True,
                             figsize=(max(3.0, 0.45 * len(targets) + 1.5) * n_cols, 2.4 * n_rows))
    for i, strategy in enumerate(strategies):
        for j, (pool, shot) in enumerate(columns):
            ax, d = axes[i, j], data[(data["strategy"] == strategy) & (data["pool"] == pool) & (data["shots"] == shot)]
            for budget, alpha in ((1, 0.35), (2, 1.0)):  # B = 2 never exceeds B = 1: drawn in front
                y = d[d["budget"] == budget].set_index("target")["rel_regret"].reindex(targets)
                ax.bar(range(len(targets)), y.to_numpy(dtype=float), color=f"C{i}", alpha=alpha, label=f"B = {budget}")
            ax.set_xticks(range(len(targets)), targets, rotation=90, fontsize=7)
            ax.set_title(f"{WM_LABELS.get(strategy, strategy)} | pool: {pool} | shots: {shot}", fontsize=8)
            ax.grid(axis="y", alpha=0.3)
        axes[i, 0].set_ylabel("relative regret")
        axes[i, 0].legend(fontsize=7)
    if not strategies:
        no_data(axes[0, 0], "task-agnostic / task-aware strategies")
    fig.suptitle("Relative regret of model-search strategies with budgets B = 1 and B = 2")
    return save_figure(fig, data, out_png)


def zero_regret_curve(finetune: pd.DataFrame, ranked: pd.DataFrame, probe: str) -> pd.DataFrame:
    """Fig. 7: per method and shots, for every budget B up to the largest pool, the fraction of
    targets (higher = better) on which the top-B experts hold a best one (exact expectation over
    tie draws and over random selection), from the ``probe`` rows of ``ranked``. Columns:
    strategy, shots, budget, zero_regret_fraction, n_targets."""
    groups = list(candidate_groups(finetune, ranked, probe))
    if not groups:
        return pd.DataFrame(columns=ZERO_REGRET_COLUMNS)
    n_max = max(len(draws[0][1]) for *_, draws in groups)
    rows = [(m, s, b, float(np.mean([p_zero_regret(sc, acc, b) for sc, acc in draws])))
            for m, t, s, draws in groups for b in range(1, n_max + 1)]
    return (pd.DataFrame(rows, columns=["strategy", "shots", "budget", "p"])
            .groupby(["strategy", "shots", "budget"], as_index=False)["p"]
            .agg(zero_regret_fraction="mean", n_targets="count"))[ZERO_REGRET_COLUMNS]


def wm_zero_regret(ctx, out_png) -> pd.DataFrame:
    """Fig. 7: fraction of targets with zero regret against the budget B per strategy
    (task-agnostic, its oracle ranking by mean fine-tuned accuracy over all targets, linear, kNN,
    hybrids, random), one panel per model pool and shot setting."""
    data = pd.concat([zero_regret_curve(*pool_rankings(ctx, pool), ctx.probe_set).assign(pool=name)
                      for name, pool in ctx.pools.items()], ignore_index=True)
    data = data[data["strategy"].isin(WM_ZERO)][["pool", "strategy", "shots", "budget", "zero_regret_fraction",
                                                 "n_targets"]]
    strategies, shots = _strategy_order(data["strategy"], WM_ZERO), shots_order(data["shots"])
    names = [(p, s) for p in ctx.pools for s in shots]
    fig, axes = grid(len(names), 4.0, 3.2, ncols=max(len(shots), 1))
    for ax, (pool, shot) in zip(axes, names):
        d = data[(data["pool"] == pool) & (data["shots"] == shot)]
        for i, strategy in enumerate(strategies):
            c = d[d["strategy"] == strategy]
            ax.plot(c["budget"], c["zero_regret_fraction"], marker=".", label=WM_LABELS.get(strategy, strategy),
                    color="grey" if strategy == "random" else f"C{i}",
                    ls="--" if strategy in (ORACLE, "random") else "-")
        ax.set_ylim(-0.02, 1.02)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("budget B (experts fine-tuned)")
        ax.set_ylabel("fraction of targets with zero regret")
        ax.set_title(f"pool: {pool} | shots: {shot}", fontsize=9)
        ax.grid(alpha=0.3)
    if names:
        axes[0].legend(fontsize=7)
    else:
        no_data(axes[0], "strategies")
    fig.suptitle("Optimal picks as a function of the budget")
    return save_figure(fig, data.reset_index(drop=True), out_png)
