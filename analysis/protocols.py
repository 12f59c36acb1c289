"""Evaluation protocols shared by the four papers: one place for the maths every table and
figure builds on.

- Deshpande et al. Sec. 4.3: top-k accuracy gain over the reference expert (Fig. 4), trials to
  best and Spearman correlation (Fig. 6), top-k gain per probe size (Fig. 7,
  `probe_size_ablation`); Pearson, Kendall tau and weighted tau as in the later
  transferability literature.
- Which Model to Transfer? Sec. 3, eq. 1-2: absolute / relative regret and the relative
  delta of a budget of B fine-tunes (`regret_table`).
- PARC (Bolya et al.) Sec. 3.1, eq. 2: mean Pearson correlation over targets, mean and
  std over the probe-set draws (`parc_protocol`).

The reference expert is the expert every gain is measured against (the paper's ImageNet
expert; in this benchmark the reference architecture trained on the generalist source).

Ties in selection scores are resolved by the EXACT expectation over uniform random
tie-breaking rather than by an arbitrary sort order, so that results do not depend on
row order. Scores equal within a relative TIE_RTOL are ties (`tie_close`, applied by every
function here that orders scores): round-off is no signal (H-score is C - 1 up to rounding for
every expert when N <= D). The ``random``
baseline is treated as if all its scores were tied, which gives the exact expectation over
random selections instead of one seeded draw; a method whose scores are all tied on a
(target, shots) is flagged ``degenerate`` in `evaluate_selection`. An expert without a
finite score or accuracy leaves that comparison, for every metric alike, with a warning.

Score tables carry a ``probe`` column (the probe set a score was computed on; fill a table
without one with `analysis.tables.fill_probe`) and may carry ``tie_draw`` (equally likely
alternatives of a randomised strategy, see analysis.strategies: every metric is averaged over
them, which is exact for expectations). The main probe set (``per_class_25`` in the paper) is
always passed in: it is the analysis config's ``probe_set``.
"""
from __future__ import annotations

import logging
from math import comb

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, pearsonr, spearmanr, weightedtau

from analysis.tables import KEYS, AnalysisError, best_finetune, shots_order
from pipeline.layout import PROBE_ALL, is_parc_draw, probe_per_class

log = logging.getLogger("analysis")

RANDOM = "random"
TIE_RTOL = 1e-9  # scores closer than this, relative to their size, are ties
ACCURACY_SCALE = 100.0  # fine-tuned accuracies are percentages; eq. 2 of Which Model needs [0, 1]
CORRELATIONS = ("spearman", "pearson", "kendall", "weighted_tau")


def tie_close(scores, rtol: float = TIE_RTOL) -> np.ndarray:
    """``scores`` (finite) with the values that lie within ``rtol`` of their neighbour in sorted order,
    relative to the larger magnitude, set to their group's smallest value: exact ties for every protocol.
    (8 H-scores 7.999999999999993 ... 8.000000000000004 become one tie, as ../shared/cases/scores/case_13.)"""
    s = np.asarray(scores, dtype=float).copy()
    order = np.argsort(s, kind="stable")
    for prev, cur in zip(order[:-1], order[1:]):
        if s[cur] - s[prev] <= rtol * max(abs(s[cur]), abs(s[prev])):
            s[cur] = s[prev]  # s[prev] already holds its group's smallest value
    return s


def method_order(methods) -> list[str]:
    """Methods alphabetically with the `random` baseline last (as in Figs. 4 and 6)."""
    return sorted({m for m in methods if m}, key=lambda m: (m == RANDOM, m))


def topk_split(scores, k: int):
    """Split experts into those surely in the top-k, the tie group at the cut-off, and
    the number ``r`` of experts drawn uniformly from that group.

    Returns (sure mask, boundary mask, r).
    """
    s = tie_close(scores)
    k = min(k, len(s))
    kth = np.sort(s)[::-1][k - 1]
    sure, boundary = s > kth, s == kth
    return sure, boundary, k - int(sure.sum())


def expected_topk_max(scores, values, k: int) -> float:
    """E[max of ``values`` over the top-k experts by ``scores``], ties broken uniformly.

    With the boundary group's values sorted ascending (g of them, r drawn),
    P(max of the draw is the j-th smallest) = C(j-1, r-1) / C(g, r).
    """
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return float("nan")
    sure, boundary, r = topk_split(scores, k)
    a0 = v[sure].max() if sure.any() else -np.inf
    b = np.sort(v[boundary])
    g = len(b)
    probs = np.array([comb(j - 1, r - 1) for j in range(1, g + 1)], dtype=float) / comb(g, r)
    return float(np.sum(probs * np.maximum(a0, b)))


def expected_topk_sum(scores, values, k: int) -> float:
    """E[sum of ``values`` over the top-k experts], ties broken uniformly (each of the g
    tied experts is drawn with probability r/g). Used for the cost of fine-tuning the top-k."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return float("nan")
    sure, boundary, r = topk_split(scores, k)
    return float(v[sure].sum() + r * v[boundary].mean())


def expected_trials_to_best(scores, values) -> float:
    """Expected number of experts fine-tuned in descending score order until one with the
    highest value is reached. Within the first tie group holding a best expert (g experts,
    b of them best), the first best one sits at expected position (g+1)/(b+1)."""
    s, v = tie_close(scores), np.asarray(values, dtype=float)
    if len(v) == 0:
        return float("nan")
    best = v == v.max()
    s_star = s[best].max()
    group = s == s_star
    return float((s > s_star).sum() + (group.sum() + 1) / ((group & best).sum() + 1))


def _correlation(statistic, scores, values) -> float:
    """``statistic(scores, values).statistic``; NaN when undefined (constant input) or when a value is
    NaN or infinite: every correlation alike (scipy's weightedtau would rank a NaN lowest). Scores within
    TIE_RTOL are ties (`tie_close`)."""
    s, v = np.asarray(scores, dtype=float), np.asarray(values, dtype=float)
    if len(s) < 2 or not (np.isfinite(s).all() and np.isfinite(v).all()):
        return float("nan")
    s = tie_close(s)
    if np.all(s == s[0]) or np.all(v == v[0]):
        return float("nan")
    return float(statistic(s, v).statistic)


def spearman(scores, values) -> float:
    """Spearman rank correlation (mid-ranks for ties); NaN when undefined (constant input)."""
    return _correlation(spearmanr, scores, values)


def pearson(scores, values) -> float:
    """Pearson correlation (PARC's metric, Bolya et al. Sec. 3.1); NaN when undefined."""
    return _correlation(pearsonr, scores, values)


def kendall(scores, values) -> float:
    """Kendall tau-b (accounts for ties); NaN when undefined."""
    return _correlation(kendalltau, scores, values)


def weighted_tau(scores, values) -> float:
    """Weighted Kendall tau as the transferability literature uses it (LogME, SFDA, ...):
    ``scipy.stats.weightedtau`` with its defaults, i.e. additive hyperbolic weights
    1/(r+1) on the decreasing ranks, averaged over the rankings by scores and by values
    (so symmetric in its arguments). NaN when undefined."""
    return _correlation(weightedtau, scores, values)


def correlations(scores, values, random: bool = False, names=CORRELATIONS) -> dict[str, float]:
    """The correlations ``names`` (default: all of CORRELATIONS) between ``scores`` and ``values``.

    ``random=True``: the expectation over uniformly random orders, 0 (exact for Spearman,
    Pearson and Kendall; for weighted tau exact when the values are distinct), NaN when
    undefined (fewer than 2 experts or constant values).
    """
    if random:
        v = np.asarray(values, dtype=float)
        value = 0.0 if len(v) > 1 and np.ptp(v) > 0 else float("nan")
        return dict.fromkeys(names, value)
    fns = {"spearman": spearman, "pearson": pearson, "kendall": kendall, "weighted_tau": weighted_tau}
    return {name: fns[name](scores, values) for name in names}


def relative_delta(s1, s2, scale: float = ACCURACY_SCALE) -> float:
    """Which Model to Transfer? eq. 2: (s1 - s2) / (1 - min(s1, s2)) with accuracies in [0, 1];
    here accuracies are given on ``scale`` (percent), i.e. (s1 - s2) / (scale - min(s1, s2)).
    0 when both are perfect (0/0). An accuracy above ``scale`` is rounding (an expectation over tied
    experts that all reach 100% can come out at 100.00000000000001) and counts as ``scale``."""
    s1, s2 = min(float(s1), scale), min(float(s2), scale)
    num, den = s1 - s2, scale - min(s1, s2)
    return 0.0 if den == 0 and num == 0 else float(num / den)


def probe_rows(scores_df: pd.DataFrame, probe: str) -> pd.DataFrame:
    """The rows of a score table computed on the probe set ``probe``. Raises AnalysisError when
    the table has no ``probe`` column (fill it with `analysis.tables.fill_probe`)."""
    return scores_df[_probe_column(scores_df) == probe]


def probes_present(scores_df: pd.DataFrame) -> set[str]:
    """The probe sets a score table (with a ``probe`` column) has rows for."""
    return set(_probe_column(scores_df))


def _probe_column(scores_df: pd.DataFrame) -> pd.Series:
    if "probe" not in scores_df:
        raise AnalysisError("the score table has no probe column; fill it with analysis.tables.fill_probe "
                            "(a missing probe reads as the main probe set)")
    return scores_df["probe"].astype(str)


def candidate_groups(finetune_df: pd.DataFrame, scores_df: pd.DataFrame, probe: str):
    """Yield ``(method, target, shots, draws)`` per (method, target, shots) of the ``probe`` rows.

    The candidate pool is every expert with both a score and a fine-tune result for that
    (target, shots); experts with a NaN score or a NaN accuracy (a diverged fine-tune) are left out,
    the latter with a warning naming them. ``draws`` lists one ``(scores, best fine-tuned accuracies
    in %)`` pair per equally likely ``tie_draw`` (one pair without that column), experts in the same
    order in every pair. ``random`` is given all-tied scores (the expectation over random selections).
    """
    best = best_finetune(finetune_df)
    merged = probe_rows(scores_df, probe).dropna(subset=["score"]).merge(best[KEYS + ["test_accuracy"]], on=KEYS)
    lost = merged[~np.isfinite(merged["test_accuracy"].to_numpy(dtype=float))]
    if len(lost):
        pairs = sorted(set(zip(lost["expert"], lost["target"], lost["shots"])))
        log.warning("left out of the comparisons: %d (expert, target, shots) without a finite fine-tuned accuracy: %s",
                    len(pairs), ", ".join(f"{e} on {t} ({s})" for e, t, s in pairs[:10]))
        merged = merged.drop(index=lost.index)
    merged = (merged.assign(tie_draw=merged["tie_draw"].fillna(0) if "tie_draw" in merged else 0)
              .sort_values(["tie_draw", "expert"], kind="stable"))  # groupby keeps this order
    for (method, target, shots), grp in merged.groupby(["method", "target", "shots"], sort=False):
        draw, acc = grp["tie_draw"].to_numpy(), grp["test_accuracy"].to_numpy(dtype=float)
        s = np.zeros(len(acc)) if method == RANDOM else grp["score"].to_numpy(dtype=float)
        yield method, target, shots, [(s[draw == d], acc[draw == d]) for d in np.unique(draw)]


def _draw_mean(per_draw: list[dict]) -> dict[str, float]:
    """Key-wise mean of the metrics of equally likely tie draws (exact for expectations)."""
    return {key: float(np.mean([m[key] for m in per_draw])) for key in per_draw[0]}


def reference_accuracy(best: pd.DataFrame, reference_expert: str) -> pd.Series:
    """Best fine-tuned accuracy (%) of the reference expert per (target, shots), from a
    `best_finetune` table. Raises AnalysisError when the expert has no fine-tune result."""
    g = best[best["expert"] == reference_expert]
    if g.empty:
        known = ", ".join(sorted(best["expert"].unique())) or "none"
        raise AnalysisError(f"reference expert {reference_expert!r} not in the fine-tune table (experts: {known}); "
                            f"set reference_expert=<expert id>")
    return g.set_index(["target", "shots"])["test_accuracy"]


def evaluate_selection(finetune_df: pd.DataFrame, scores_df: pd.DataFrame, reference_expert: str,
                       k: int, probe: str) -> pd.DataFrame:
    """Deshpande et al. Sec. 4.3, per (method, target, shots) of the ``probe`` rows: spearman,
    pearson, kendall, weighted_tau (higher = better), top{k}_gain (percentage points of the best
    of the method's top-k experts over ``reference_expert``; higher = better), trials_to_best
    (lower = better, 1 is perfect), n_experts (candidates: see candidate_groups), degenerate (True:
    a method other than Random gave every candidate the same score, up to TIE_RTOL; its numbers are
    then those of a random choice, not a ranking). Raises AnalysisError when the reference expert has
    no fine-tune result."""
    ref_acc = reference_accuracy(best_finetune(finetune_df), reference_expert)
    rows = []
    for method, target, shots, draws in candidate_groups(finetune_df, scores_df, probe):
        ref = ref_acc.get((target, shots), np.nan)
        metrics = _draw_mean([{**correlations(s, acc, random=method == RANDOM),
                               f"top{k}_gain": expected_topk_max(s, acc, k) - ref,
                               "trials_to_best": expected_trials_to_best(s, acc)} for s, acc in draws])
        degenerate = method != RANDOM and len(draws[0][0]) > 1 and all(np.ptp(tie_close(s)) == 0 for s, _ in draws)
        rows.append({"method": method, "target": target, "shots": shots, **metrics, "n_experts": len(draws[0][1]),
                     "degenerate": degenerate})
    cols = ["method", "target", "shots", *CORRELATIONS, f"top{k}_gain", "trials_to_best", "n_experts", "degenerate"]
    return pd.DataFrame(rows, columns=cols)


REGRET_COLUMNS = ["method", "target", "shots", "budget", "abs_regret", "rel_regret", "rel_delta"]


def regret_table(finetune_df: pd.DataFrame, scores_df: pd.DataFrame, probe: str) -> pd.DataFrame:
    """Regret of fine-tuning the top-B experts of every method / strategy (Which Model to
    Transfer? Sec. 3), per (method, target, shots) and budget B = 1..n_experts:

    - s(m) = E[max_{m' in S_B} acc(m')], the expected best fine-tuned accuracy of the
      top-B set (ties and `random`: exact expectation over uniform random choice);
    - abs_regret = ORACLE - s(m), ORACLE = max over the candidates of acc (eq. 1);
    - rel_regret = r(m) = Delta(ORACLE, s(m)), the relative delta of eq. 2,
      Delta(m1, m2) = (s(m1) - s(m2)) / (1 - min(s(m1), s(m2))) with accuracies in [0, 1];
    - rel_delta = Delta(s(m), s(Random)): the method against Random selection at the same
      budget (positive = better than Random), eq. 2 between two strategies.

    Regrets: lower = better, 0 = the best expert is in the top-B set.
    """
    rows = []
    for method, target, shots, draws in candidate_groups(finetune_df, scores_df, probe):
        accuracy = draws[0][1]
        oracle, n = float(accuracy.max()), len(accuracy)
        for budget in range(1, n + 1):
            s = float(np.mean([expected_topk_max(sc, acc, budget) for sc, acc in draws]))
            s_random = expected_topk_max(np.zeros(n), accuracy, budget)  # all tied = uniform random
            rows.append({"method": method, "target": target, "shots": shots, "budget": budget,
                         "abs_regret": oracle - s, "rel_regret": relative_delta(oracle, s),
                         "rel_delta": relative_delta(s, s_random)})
    return pd.DataFrame(rows, columns=REGRET_COLUMNS)


PARC_COLUMNS = ["method", "shots", "pearson_mean", "pearson_std", "n_draws"]


def draw_std(values: pd.Series) -> float:
    """Std (population, ddof=0, as PARC's released evaluation code) of a value over probe draws;
    NaN for a single draw, where a spread is undefined (not 0)."""
    return float(values.std(ddof=0)) if len(values) > 1 else float("nan")


# mean, std and count over probe draws: pandas named aggregations of a groupby's "pc" column
OVER_DRAWS = {"pearson_mean": "mean", "pearson_std": draw_std, "n_draws": "count"}


def order_rows(df: pd.DataFrame, **orders) -> pd.DataFrame:
    """Sort ``df`` by the columns named in ``orders``, each by its given ordered list of values."""
    return (df.sort_values(list(orders), key=lambda c: c.map({v: i for i, v in enumerate(orders[c.name])}))
            .reset_index(drop=True))


def parc_protocol(finetune_df: pd.DataFrame, scores_df: pd.DataFrame) -> pd.DataFrame:
    """PARC's protocol (Bolya et al. Sec. 3.1, eq. 2, Tables 1-3), per method and shots:
    for each probe draw d ("parc_draw*" rows), PC_d = mean over targets of
    100 * pearsonr(scores, best fine-tuned accuracy); pearson_mean / pearson_std = mean and
    std (population, ddof=0, as PARC's released evaluation code; NaN for one draw) of PC_d over
    the draws.
    Methods without "parc_draw*" rows are absent; no such rows gives an empty table.
    Targets where the correlation is undefined (constant input) are left out of the mean.
    """
    draws = sorted(p for p in probes_present(scores_df) if is_parc_draw(p))
    rows = [{"method": method, "shots": shots, "draw": probe, "target": target,
             "pc": 100 * _draw_mean([correlations(s, acc, method == RANDOM, ("pearson",))
                                     for s, acc in pairs])["pearson"]}
            for probe in draws for method, target, shots, pairs in candidate_groups(finetune_df, scores_df, probe)]
    if not rows:
        return pd.DataFrame(columns=PARC_COLUMNS)
    per_draw = pd.DataFrame(rows).groupby(["method", "shots", "draw"], as_index=False)["pc"].mean()
    out = (per_draw.dropna(subset=["pc"]).groupby(["method", "shots"], as_index=False)["pc"]
           .agg(**OVER_DRAWS))
    return order_rows(out, method=method_order(out["method"]), shots=shots_order(out["shots"]))[PARC_COLUMNS]


def ablation_probes(scores_df: pd.DataFrame, main_probe: str) -> list[str]:
    """Deshpande et al. Fig. 7's probe sets present in a score table, in order of size: the main
    probe set, every other ``per_class_<k>`` by increasing k, then ``all``."""
    present = probes_present(scores_df) - {main_probe}
    per_class = sorted((p for p in present if probe_per_class(p) is not None), key=probe_per_class)
    return [main_probe, *per_class, *([PROBE_ALL] if PROBE_ALL in present else [])]


def probe_size_ablation(finetune_df: pd.DataFrame, scores_df: pd.DataFrame, reference_expert: str,
                        k: int, main_probe: str) -> pd.DataFrame:
    """Deshpande et al. Fig. 7: per method, shots and probe set (`ablation_probes`), the mean over
    targets of the top-k gain over the reference expert (percentage points, higher = better;
    columns method, shots, probe, top{k}_gain, n_targets). Only methods with rows on a probe set
    other than ``main_probe``; empty (with its header) when the score table has none."""
    cols = ["method", "shots", "probe", f"top{k}_gain", "n_targets"]
    probes = ablation_probes(scores_df, main_probe)
    methods = {m for p in probes[1:] for m in probe_rows(scores_df, p)["method"]}
    sub = scores_df[scores_df["method"].isin(methods)]
    ev = pd.concat([evaluate_selection(finetune_df, sub, reference_expert, k, p).assign(probe=p)
                    for p in probes], ignore_index=True)
    if ev.empty:
        return pd.DataFrame(columns=cols)
    out = (ev.groupby(["method", "shots", "probe"], as_index=False)[f"top{k}_gain"]
           .agg(**{f"top{k}_gain": "mean", "n_targets": "count"}))
    return order_rows(out, method=method_order(out["method"]), shots=shots_order(out["shots"]), probe=probes)[cols]


def gain_bounds(finetune_df: pd.DataFrame, reference_expert: str) -> pd.DataFrame:
    """Deshpande Fig. 4's "Best Gain" / "Worst Gain", per (target, shots): best_gain / worst_gain =
    max / min over experts of the best fine-tuned accuracy minus the reference expert's
    (percentage points), n_experts. Raises AnalysisError for an unknown reference expert."""
    best = best_finetune(finetune_df)
    ref_acc = reference_accuracy(best, reference_expert)
    best["gain"] = best["test_accuracy"] - [ref_acc.get(key, np.nan) for key in zip(best["target"], best["shots"])]
    return (best.groupby(["target", "shots"], as_index=False, sort=False)
            .agg(best_gain=("gain", "max"), worst_gain=("gain", "min"), n_experts=("expert", "size")))
