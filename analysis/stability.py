"""How stable the benchmark's verdicts are (issue 13, "Stability").

- Leave one out: each method's mean correlation over the targets (Spearman, Pearson, Kendall, weighted tau)
  when one expert leaves the zoo (`analysis.protocols.evaluate_selection` re-run on the remaining experts, so
  the correlations change with the ranking) and when one target leaves the mean (`leave_one_out`).
- Setup stability (Agostinelli et al., ECCV 2022, "How stable are transferability metrics evaluations?"): the
  Kendall tau between the rankings of the methods (by their mean weighted tau, and by their mean Spearman) that
  two related setups give: shot settings, model pools, PARC's probe draws and fine-tuning seeds
  (`setup_stability`).
- Static baselines: rankings that never look at the target (`static_rankings`), evaluated as selection_summary
  evaluates every method.

Scores are held as computed: leaving an expert out drops its rows, the other experts keep their scores (also
for zoo-level methods and strategies such as "<m>+l", which were normalised over the whole zoo). The reference
expert only enters the top-k gain, which no table here reports from these runs; when it is left out, another
expert stands in for it.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from analysis.intervals import selection_bootstrap, summarize_selection
from analysis.protocols import (CORRELATIONS, TIE_RTOL, evaluate_selection, kendall, method_order, order_rows,
                                probe_rows, probes_present)
from analysis.strategies import random_strategy, restrict_pool
from analysis.tables import ground_truth_rows, shots_order, split_zoos
from pipeline.layout import is_parc_draw

SETUP_METRICS = ("weighted_tau", "spearman")  # what the methods are ranked by in a setup
LEFT_OUT = ("expert", "target")
LOO_COLUMNS = ["method", "shots", "left_out", "metric", "mean", "n_targets", "n_left_out", "loo_min", "loo_max",
               "max_change", "most_influential"]
SETUP_KINDS = ("shots", "pool", "probe_draw", "seed")
SETUP_COLUMNS = ["kind", "setup_a", "setup_b", "metric", "kendall_tau", "n_methods", "n_pairs"]
MEAN = "mean"  # setup_a / setup_b of the mean row of a kind
MODEL_SIZE = "baseline_model_size"  # more parameters first
REFERENCE_ONLY = "baseline_reference_only"  # the reference expert first, every other expert tied after it
STATIC_BASELINES = (MODEL_SIZE, REFERENCE_ONLY)


def correlation_rows(finetune: pd.DataFrame, ranked: pd.DataFrame, reference_expert: str, probe: str) -> pd.DataFrame:
    """`evaluate_selection`'s correlations per (method, target, shots) of the ``probe`` rows of ``ranked``
    (columns method, target, shots and CORRELATIONS). The reference expert only sets the top-k gain, which is
    dropped: without it in ``finetune`` (left out), the first remaining expert stands in."""
    cols = ["method", "target", "shots", *CORRELATIONS]
    experts = sorted(set(finetune["expert"]))
    if not experts:
        return pd.DataFrame(columns=cols)
    reference = reference_expert if reference_expert in experts else experts[0]
    return evaluate_selection(finetune, ranked, reference, 1, probe)[cols]


def target_means(rows: pd.DataFrame, metrics=CORRELATIONS) -> pd.DataFrame:
    """Each metric's mean over the targets per (method, shots); a target where it is undefined is left out."""
    return rows.assign(shots=rows["shots"].astype(str)).groupby(["method", "shots"])[list(metrics)].mean()


def _left_out_rows(full: pd.DataFrame, variants: dict[str, pd.DataFrame], left_out: str) -> list[dict]:
    """One row per (method, shots, metric): the full mean (index method, shots of ``full``) against the means
    with each of ``variants`` (left-out name -> its means) left out."""
    rows = []
    names = sorted(variants)
    for metric in CORRELATIONS:
        loo = pd.DataFrame({name: variants[name][metric] for name in names}).reindex(full.index)
        loo = loo.reindex(columns=names)
        base = full[[metric]].to_numpy(dtype=float)
        change = loo.to_numpy(dtype=float) - base
        with np.errstate(invalid="ignore"):  # a change within rounding is none (as tie_close's ties)
            change[np.abs(change) <= TIE_RTOL * np.maximum(np.abs(base), np.abs(loo.to_numpy(dtype=float)))] = 0.0
        for i, (method, shots) in enumerate(full.index):
            finite = np.isfinite(change[i])
            j = int(np.nanargmax(np.abs(change[i]))) if finite.any() else -1
            largest = change[i, j] if j >= 0 else np.nan
            rows.append({"method": method, "shots": shots, "left_out": left_out, "metric": metric,
                         "mean": full.iloc[i][metric], "n_left_out": int(finite.sum()),
                         "loo_min": np.nanmin(loo.iloc[i]) if finite.any() else np.nan,
                         "loo_max": np.nanmax(loo.iloc[i]) if finite.any() else np.nan,
                         "max_change": largest, "most_influential": names[j] if j >= 0 and largest != 0 else ""})
    return rows


def leave_one_out(finetune: pd.DataFrame, ranked: pd.DataFrame, reference_expert: str, probe: str) -> pd.DataFrame:
    """Per method, shots, kind of removal (``expert``: one expert leaves the zoo and every correlation is
    recomputed on the rest; ``target``: one target leaves the mean) and correlation: ``mean`` over the targets
    with nothing left out (``n_targets`` where it is defined), ``n_left_out`` removals that leave it defined,
    their range (``loo_min``, ``loo_max``), ``max_change`` (the leave-one-out mean minus ``mean`` of largest
    magnitude, signed; a change within a relative 1e-9 is none) and ``most_influential``, the expert or target
    whose removal gives it (the first by name on a tie; empty when no removal changes the mean)."""
    ranked = probe_rows(ranked, probe)
    rows = correlation_rows(finetune, ranked, reference_expert, probe)
    if rows.empty:
        return pd.DataFrame(columns=LOO_COLUMNS)
    full = target_means(rows)
    counts = rows.assign(shots=rows["shots"].astype(str)).groupby(["method", "shots"])[list(CORRELATIONS)].count()
    experts = sorted(set(finetune["expert"]) & set(ranked["expert"]))
    by_expert = {e: target_means(correlation_rows(finetune[finetune["expert"] != e], ranked[ranked["expert"] != e],
                                                  reference_expert, probe)) for e in experts}
    by_target = {t: target_means(rows[rows["target"] != t]) for t in sorted(set(rows["target"]))}
    out = pd.DataFrame(_left_out_rows(full, by_expert, "expert") + _left_out_rows(full, by_target, "target"))
    out["n_targets"] = [counts.loc[(m, s), metric] for m, s, metric in zip(out["method"], out["shots"], out["metric"])]
    out = order_rows(out, method=method_order(out["method"]), shots=shots_order(out["shots"]), left_out=list(LEFT_OUT),
                     metric=list(CORRELATIONS))
    return out[LOO_COLUMNS]


def ranking_agreement(a: pd.Series, b: pd.Series) -> tuple[float, int]:
    """(Kendall tau-b between the rankings of the methods by ``a`` and by ``b``, the number of methods with a
    value in both); NaN with fewer than 2 methods or a constant ranking (`analysis.protocols.kendall`: means
    equal within rounding are ties)."""
    both = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").dropna()
    return kendall(both["a"].to_numpy(), both["b"].to_numpy()), len(both)


def _pair_rows(kind: str, setups: dict[str, pd.DataFrame]) -> list[dict]:
    """One row per pair of ``setups`` (label -> mean metrics per method) and metric of SETUP_METRICS."""
    rows = []
    for a, b in combinations(setups, 2):
        for metric in SETUP_METRICS:
            tau, n = ranking_agreement(setups[a][metric], setups[b][metric])
            rows.append({"kind": kind, "setup_a": a, "setup_b": b, "metric": metric, "kendall_tau": tau,
                         "n_methods": n, "n_pairs": int(np.isfinite(tau))})
    return rows


def _per_shots(kind: str, factor: str, means: dict[str, pd.DataFrame]) -> list[dict]:
    """Pairs of the values of ``factor`` (value -> method means indexed by method and shots) at each shot
    setting (a setup: one value and one shot setting)."""
    rows = []
    present = {s for m in means.values() for s in m.index.get_level_values("shots")}
    for shots in shots_order(present):
        setups = {f"{factor}={value}; shots={shots}": m.xs(shots, level="shots") for value, m in means.items()
                  if shots in m.index.get_level_values("shots")}
        rows += _pair_rows(kind, setups)
    return rows


def _draw_key(probe: str) -> tuple[int, str]:
    return len(probe), probe  # parc_draw2 before parc_draw10


def setup_rows(finetune: pd.DataFrame, ranked: pd.DataFrame, reference_expert: str, probe: str, *,
               zoo: pd.DataFrame | None = None, pools: dict | None = None, runs: pd.DataFrame | None = None,
               lr_selection: str = "test") -> pd.DataFrame:
    """`setup_stability` from the tables: ``finetune`` (the ground truth, seeds averaged), ``ranked`` (ranking
    rows), the main ``probe``; ``pools`` (name -> `analysis.strategies.Pool` over ``zoo``) and ``runs`` (the
    fine-tune table per seed) when given."""
    def means(ft, rk, p=probe):
        return target_means(correlation_rows(ft, rk, reference_expert, p), SETUP_METRICS)

    main = means(finetune, ranked)
    rows = _pair_rows("shots", {f"shots={s}": main.xs(s, level="shots")
                                for s in shots_order(main.index.get_level_values("shots"))})
    if pools and len(pools) > 1:
        rows += _per_shots("pool", "pool", {name: means(*(restrict_pool(df, zoo, pool) for df in (finetune, ranked)))
                                            for name, pool in pools.items()})
    draws = sorted((p for p in probes_present(ranked) if is_parc_draw(p)), key=_draw_key)
    if len(draws) > 1:
        rows += _per_shots("probe_draw", "probe", {d: means(finetune, ranked, d) for d in draws})
    if runs is not None and "seed" in runs and runs["seed"].nunique() > 1:
        rows += _per_shots("seed", "seed", {str(s): means(ground_truth_rows(g, lr_selection), ranked)
                                            for s, g in runs.groupby("seed", sort=True)})
    out = []
    for kind in SETUP_KINDS:  # each kind's pairs, then their mean per metric
        pairs = [r for r in rows if r["kind"] == kind]
        out += pairs
        for metric in SETUP_METRICS if pairs else ():
            sel = [r for r in pairs if r["metric"] == metric]
            tau = [r["kendall_tau"] for r in sel if np.isfinite(r["kendall_tau"])]
            out.append({"kind": kind, "setup_a": MEAN, "setup_b": MEAN, "metric": metric,
                        "kendall_tau": float(np.mean(tau)) if tau else np.nan,
                        "n_methods": min(r["n_methods"] for r in sel), "n_pairs": len(tau)})
    return pd.DataFrame(out, columns=SETUP_COLUMNS)


def static_rankings(scores: pd.DataFrame, zoo: pd.DataFrame, reference_expert: str, probe: str) -> pd.DataFrame:
    """Ranking rows (`analysis.strategies`' format) of the static baselines over every expert scored on
    ``probe`` (by any method) per (target, shots): ``baseline_model_size``, the expert's ``parameters`` (an
    expert missing from ``zoo`` gets NaN and leaves the comparison), and ``baseline_reference_only``, 1 for
    ``reference_expert`` and 0 for every other expert (exact ties: its top-1 is the reference expert, the rest
    of its top-k a random draw). The third, the source accuracy, is ``task_agnostic`` (source_test_accuracy
    first, its ties broken by source_images and parameters), evaluated in selection_summary."""
    candidates = random_strategy(scores, zoo, probe=probe)
    size = candidates["expert"].map(zoo.set_index("expert")["parameters"].astype(float))
    reference = (candidates["expert"] == reference_expert).astype(float)
    return pd.concat([candidates.assign(method=MODEL_SIZE, score=size),
                      candidates.assign(method=REFERENCE_ONLY, score=reference)], ignore_index=True)


# --------------------------------------------------------------------------- renderers (analysis.outputs)

def stability_leave_one_out(ctx) -> pd.DataFrame:
    """stability_leave_one_out.csv: `leave_one_out` of every score (not the strategies built on them: a third of
    the time) on the single-domain zoo and the main probe set."""
    return leave_one_out(ctx.single("finetune"), ctx.single("scores"), ctx.reference_expert, ctx.probe_set)


def setup_stability(ctx) -> pd.DataFrame:
    """setup_stability.csv: `setup_rows` of every score (the transferability metrics Agostinelli et al. rank)
    over the shot settings, the model pools (ctx.pools), PARC's probe draws and the fine-tuning seeds of the
    single-domain zoo."""
    return setup_rows(ctx.single("finetune"), ctx.single("scores"), ctx.reference_expert, ctx.probe_set,
                      zoo=ctx.table("zoo_accuracy"), pools=ctx.pools, runs=split_zoos(ctx.runs())[0],
                      lr_selection=ctx.lr_selection)


def static_baselines(ctx) -> pd.DataFrame:
    """static_baselines.csv: selection_summary's metrics and intervals for the static baselines."""
    ranked = static_rankings(ctx.single("scores"), ctx.table("zoo_accuracy"), ctx.reference_expert, ctx.probe_set)
    if ranked["score"].notna().sum() == 0:  # nothing scored on the main probe set: the header alone
        metrics = [*CORRELATIONS, f"top{ctx.top_k}_gain", "trials_to_best"]
        return pd.DataFrame(columns=["method", "shots", "n_targets", *[f"{m}{end}" for m in metrics
                                                                       for end in ("", "_ci_low", "_ci_high")],
                                     "degenerate_targets", "ground_truth", "n_seeds"])
    out = summarize_selection(ctx, selection_bootstrap(ctx, ranked, name="static_baselines_bootstrap"))
    return order_rows(out, method=list(STATIC_BASELINES), shots=shots_order(out["shots"]))
