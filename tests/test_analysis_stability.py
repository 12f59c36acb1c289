"""Issue 13, "Stability": leave-one-expert/target-out, setup stability (Agostinelli et al. 2022) and the static
baselines, on zoos of 3-4 experts small enough to check by hand (Spearman of n experts: 1 - 6 sum d^2 / (n^3 - n))."""
import numpy as np
import pandas as pd
import pytest

from analysis.context import Context
from analysis.intervals import selection_summary
from analysis.stability import (LOO_COLUMNS, SETUP_COLUMNS, leave_one_out, setup_rows, stability_leave_one_out,
                                static_baselines, static_rankings)
from analysis_fixtures import context

P = "p"


def _finetune(acc: dict, shots="full") -> pd.DataFrame:
    """acc[target][expert] = best fine-tuned accuracy (one lr, one seed)."""
    return pd.DataFrame([{"expert": e, "target": t, "shots": shots, "lr": 0.01, "test_accuracy": a, "seconds": 1.0}
                         for t, by_expert in acc.items() for e, a in by_expert.items()])


def _scores(scores: dict, shots="full", probe=P) -> pd.DataFrame:
    """scores[method][target][expert] = score."""
    return pd.DataFrame([{"expert": e, "target": t, "shots": shots, "probe": probe, "method": m, "score": float(s)}
                         for m, by_target in scores.items() for t, by_expert in by_target.items()
                         for e, s in by_expert.items()])


def _row(df, **match) -> pd.Series:
    sel = df
    for key, value in match.items():
        sel = sel[sel[key] == value]
    assert len(sel) == 1, match
    return sel.iloc[0]


def test_leaving_one_expert_out_recomputes_the_correlations_on_the_rest():
    # accuracies a > b > c; m scores a, c, b: Spearman 1 - 6*2/24 = 0.5, Kendall (2 - 1)/3 = 1/3;
    # without a: (b, c) reversed, -1; without b or c: in order, +1
    ft = _finetune({"t1": {"a": 30, "b": 20, "c": 10}})
    sc = _scores({"m": {"t1": {"a": 3, "b": 1, "c": 2}}, "random": {"t1": {"a": 1, "b": 2, "c": 3}}})
    out = leave_one_out(ft, sc, "a", P)  # a is the reference expert: leaving it out works all the same
    assert list(out.columns) == LOO_COLUMNS
    assert len(out) == 2 * 2 * 4  # methods x {expert, target} x correlations, one shot setting
    for metric, full in (("spearman", 0.5), ("kendall", 1 / 3)):
        row = _row(out, method="m", left_out="expert", metric=metric)
        assert row["mean"] == pytest.approx(full) and row["n_targets"] == 1 and row["n_left_out"] == 3
        assert (row["loo_min"], row["loo_max"]) == pytest.approx((-1.0, 1.0))
        assert row["max_change"] == pytest.approx(-1.0 - full) and row["most_influential"] == "a"
    # one target: leaving it out leaves no mean
    row = _row(out, method="m", left_out="target", metric="spearman")
    assert row["n_left_out"] == 0 and np.isnan(row["max_change"]) and row["most_influential"] == ""
    # random is its expectation, 0, whatever is left out: no change, nobody influential
    row = _row(out, method="random", left_out="expert", metric="spearman")
    assert row["mean"] == 0 and row["max_change"] == 0 and row["most_influential"] == ""
    assert out["method"].tolist()[0] == "m" and out["method"].tolist()[-1] == "random"


def test_leaving_one_target_out_moves_the_mean_over_targets():
    # 4 experts, accuracies a > b > c > d everywhere; Spearman 0.8 on t1 (c, d swapped), 1 on t2, -0.4 on t3
    # (score ranks 1, 3, 4, 2: sum d^2 = 14): mean 1.4/3; without t1 0.3, without t2 0.2, without t3 0.9
    acc = {"a": 40, "b": 30, "c": 20, "d": 10}
    ft = _finetune({t: acc for t in ("t1", "t2", "t3")})
    sc = _scores({"m": {"t1": {"a": 4, "b": 3, "c": 1, "d": 2}, "t2": {"a": 4, "b": 3, "c": 2, "d": 1},
                        "t3": {"a": 1, "b": 3, "c": 4, "d": 2}}})
    row = _row(leave_one_out(ft, sc, "a", P), left_out="target", metric="spearman")
    assert row["mean"] == pytest.approx(1.4 / 3) and row["n_targets"] == 3 and row["n_left_out"] == 3
    assert (row["loo_min"], row["loo_max"]) == pytest.approx((0.2, 0.9))
    assert row["max_change"] == pytest.approx(0.9 - 1.4 / 3) and row["most_influential"] == "t3"


def test_setup_stability_is_the_kendall_tau_between_method_rankings():
    # accuracies a > b > c; m1 perfect, m2 = (a, c, b) (Spearman 0.5), m3 reversed (-1) at full;
    # at 5 shots m1 and m2 swap roles: rankings m1 > m2 > m3 and m2 > m1 > m3, tau = (2 - 1)/3
    acc = {"t1": {"a": 30, "b": 20, "c": 10}}
    perfect, swapped, reversed_ = {"a": 3, "b": 2, "c": 1}, {"a": 3, "b": 1, "c": 2}, {"a": 1, "b": 2, "c": 3}
    ft = pd.concat([_finetune(acc), _finetune(acc, "5")], ignore_index=True)
    sc = pd.concat([_scores({"m1": {"t1": perfect}, "m2": {"t1": swapped}, "m3": {"t1": reversed_}}),
                    _scores({"m1": {"t1": swapped}, "m2": {"t1": perfect}, "m3": {"t1": reversed_}}, "5")],
                   ignore_index=True)
    out = setup_rows(ft, sc, "a", P)
    assert list(out.columns) == SETUP_COLUMNS
    assert out["kind"].tolist() == ["shots"] * 4 and out["metric"].tolist() == ["weighted_tau", "spearman"] * 2
    pair = _row(out, setup_a="shots=full", metric="spearman")
    assert pair["setup_b"] == "shots=5" and pair["kendall_tau"] == pytest.approx(1 / 3) and pair["n_methods"] == 3
    assert _row(out, setup_a="shots=full", metric="weighted_tau")["kendall_tau"] == pytest.approx(1 / 3)
    mean = _row(out, setup_a="mean", metric="spearman")
    assert mean["kendall_tau"] == pytest.approx(1 / 3) and mean["n_pairs"] == 1


def test_setup_stability_over_pools_seeds_and_probe_draws():
    # pools: a > b > c > d; m2 = (c, b, a, d) by score order is -0.2 on all four (sum d^2 = 12) but perfect
    # on {a, b, c}, tied with m1 there: tau-b of (1, -0.2, -1) and (1, 1, -1) = 2 / sqrt(3 * 2)
    acc = {"a": 40, "b": 30, "c": 20, "d": 10}
    ft = _finetune({"t1": acc})
    sc = _scores({"m1": {"t1": {"a": 4, "b": 3, "c": 2, "d": 1}}, "m2": {"t1": {"a": 3, "b": 2, "c": 1, "d": 4}},
                  "m3": {"t1": {"a": 1, "b": 2, "c": 3, "d": 4}}})
    zoo = pd.DataFrame({"expert": list(acc), "arch": ["x", "x", "x", "y"]})
    out = setup_rows(ft, sc, "a", P, zoo=zoo, pools={"all": None, "abc": ["a", "b", "c"]})
    pool = _row(out, kind="pool", setup_a="pool=all; shots=full", metric="spearman")
    assert pool["setup_b"] == "pool=abc; shots=full" and pool["kendall_tau"] == pytest.approx(2 / np.sqrt(6))
    # seeds: seed 1 reverses the accuracies, so every method's correlation changes sign: tau -1
    runs = pd.concat([_finetune({"t1": acc}).assign(seed=0),
                      _finetune({"t1": {"a": 10, "b": 20, "c": 30, "d": 45}}).assign(seed=1)], ignore_index=True)
    out = setup_rows(ft, sc, "a", P, runs=runs)
    seed = _row(out, kind="seed", setup_a="seed=0; shots=full", metric="spearman")
    assert seed["setup_b"] == "seed=1; shots=full" and seed["kendall_tau"] == pytest.approx(-1.0)
    assert _row(out, kind="seed", setup_a="mean", metric="weighted_tau")["kendall_tau"] == pytest.approx(-1.0)
    # probe draws: draw 1 scores m1 and m3 the other way round: (1, -0.2, -1) against (-1, -0.2, 1), tau -1
    draws = pd.concat([sc.assign(probe="parc_draw0"),
                       sc.assign(probe="parc_draw1", method=sc["method"].replace({"m1": "m3", "m3": "m1"}))])
    out = setup_rows(ft, pd.concat([sc, draws], ignore_index=True), "a", P)
    draw = _row(out, kind="probe_draw", setup_a="probe=parc_draw0; shots=full", metric="spearman")
    assert draw["kendall_tau"] == pytest.approx(-1.0) and draw["n_methods"] == 3
    # a single seed, pool or draw has no pairs: only the shot settings' kind (here one setting: no rows)
    assert setup_rows(ft, sc, "a", P, zoo=zoo, pools={"all": None}, runs=runs[runs["seed"] == 0]).empty


def test_static_baselines_rank_by_size_and_by_the_reference_alone():
    # accuracies b > a > c; parameters b > c > a; a is the reference expert
    ft = _finetune({"t1": {"a": 20, "b": 30, "c": 10}})
    sc = _scores({"m": {"t1": {"a": 1, "b": 2, "c": 3}}})
    zoo = pd.DataFrame({"expert": ["a", "b", "c"], "parameters": [10, 30, 20]})
    ranked = static_rankings(sc, zoo, "a", P)
    assert sorted(ranked["method"].unique()) == ["baseline_model_size", "baseline_reference_only"]
    ref = ranked[ranked["method"] == "baseline_reference_only"].set_index("expert")["score"]
    assert ref.to_dict() == {"a": 1.0, "b": 0.0, "c": 0.0}
    ctx = Context("a", 1, P, tables={"finetune": ft, "scores": sc, "zoo_accuracy": zoo})
    out = static_baselines(ctx).set_index("method")
    assert list(out.index) == ["baseline_model_size", "baseline_reference_only"]
    size, only = out.loc["baseline_model_size"], out.loc["baseline_reference_only"]
    # size: score ranks (1, 3, 2) against accuracy ranks (2, 3, 1): Spearman 1 - 6*2/24; picks b, 10 points over a
    assert size["spearman"] == pytest.approx(0.5) and size["top1_gain"] == 10 and size["trials_to_best"] == 1
    # reference only: picks a (gain 0); then b and c tied, the best b found after (2 + 1)/(1 + 1) more on average;
    # ranks (3, 1.5, 1.5) against (2, 3, 1): Spearman 0
    assert only["spearman"] == pytest.approx(0.0) and only["top1_gain"] == 0 and only["trials_to_best"] == 2.5
    assert only["n_targets"] == 1 and only["degenerate_targets"] == 0


def test_on_the_small_benchmark_the_full_means_are_selection_summarys():
    ctx = context()
    loo, summary = stability_leave_one_out(ctx), selection_summary(ctx).set_index(["method", "shots"])
    for metric in ("spearman", "weighted_tau"):
        rows = loo[(loo["left_out"] == "expert") & (loo["metric"] == metric)].set_index(["method", "shots"])
        # every score, not the strategies built on them
        assert set(rows.index) == {i for i in summary.index if i[0] in set(ctx.single("scores")["method"])}
        assert np.allclose(rows["mean"], summary.loc[rows.index, metric], equal_nan=True)
    # knn_loo ranks by the accuracies themselves: 1 whatever is left out
    knn = loo[(loo["method"] == "knn_loo") & (loo["metric"] == "spearman")]
    assert (knn["mean"] == 1).all() and (knn["max_change"] == 0).all() and (knn["most_influential"] == "").all()
