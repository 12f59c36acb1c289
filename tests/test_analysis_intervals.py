"""Issue 13: fine-tuning seeds, the validation ground truth, the noise ceiling and bootstrap intervals, on
tables small enough to check by hand."""
import numpy as np
import pandas as pd
import pytest

from analysis.intervals import SeedBootstrap, noise_ceiling
from analysis.protocols import evaluate_selection
from analysis.tables import AnalysisError, best_finetune, ground_truth_rows


def _runs(acc: dict, val: dict | None = None, target="t", shots="full") -> pd.DataFrame:
    """acc[(expert, lr, seed)] = test accuracy (val: the same keys -> val_accuracy)."""
    return pd.DataFrame([{"expert": e, "target": target, "shots": shots, "lr": lr, "seed": s, "test_accuracy": a,
                          "val_accuracy": (val or {}).get((e, lr, s), np.nan), "seconds": 1.0}
                         for (e, lr, s), a in acc.items()])


def test_the_paper_ground_truth_is_the_best_lr_of_the_seed_means_and_validation_chooses_on_validation():
    acc = {("a", 0.1, 0): 50, ("a", 0.1, 1): 70, ("a", 0.01, 0): 64, ("a", 0.01, 1): 62,
           ("b", 0.1, 0): 40, ("b", 0.1, 1): 40, ("b", 0.01, 0): 30, ("b", 0.01, 1): 34}
    val = {("a", 0.1, 0): 10, ("a", 0.1, 1): 10, ("a", 0.01, 0): 30, ("a", 0.01, 1): 20,  # a: 0.01 on validation
           ("b", 0.1, 0): 20, ("b", 0.1, 1): 30, ("b", 0.01, 0): 30, ("b", 0.01, 1): 20}  # b: a tie, 25 = 25
    runs = _runs(acc, val)
    test = best_finetune(ground_truth_rows(runs, "test")).set_index("expert")
    assert test.loc["a", "test_accuracy"] == 63.0 and test.loc["b", "test_accuracy"] == 40.0  # max of (60, 63), (40, 32)
    assert test.loc["a", "seconds"] == 2.0  # one grid (two lrs), not one per seed
    chosen = ground_truth_rows(runs, "validation").set_index("expert")
    assert chosen.loc["a", "test_accuracy"] == 63.0 and chosen.loc["a", "lr"] == 0.01
    assert chosen.loc["b", "test_accuracy"] == 36.0 and np.isnan(chosen.loc["b", "lr"])  # the mean of 40 and 32
    assert chosen.loc["a", "seconds"] == 2.0
    with pytest.raises(AnalysisError, match="validation_fraction"):
        ground_truth_rows(_runs(acc), "validation")
    with pytest.raises(AnalysisError, match="not one of"):
        ground_truth_rows(runs, "best")


def test_noise_ceiling_is_the_seed_to_seed_correlation():
    acc = {("a", 0.1, 0): 1, ("b", 0.1, 0): 2, ("c", 0.1, 0): 3, ("a", 0.1, 1): 1, ("b", 0.1, 1): 3, ("c", 0.1, 1): 2}
    ceiling = noise_ceiling(_runs(acc)).iloc[0]
    assert ceiling["spearman"] == pytest.approx(0.5) and ceiling["pearson"] == pytest.approx(0.5)
    assert ceiling["kendall"] == pytest.approx(1 / 3) and ceiling["n_seed_pairs"] == 1 and ceiling["n_experts"] == 3
    one = noise_ceiling(_runs({k: v for k, v in acc.items() if k[2] == 0})).iloc[0]
    assert np.isnan(one["spearman"]) and one["n_seed_pairs"] == 0 and one["n_experts"] == 3


def _selection(runs_by_target: dict, scores: dict, seeds=(0, 1, 2)):
    """A SeedBootstrap of evaluate_selection; scores[expert] the same on every target."""
    runs = pd.concat([_runs(acc, target=t) for t, acc in runs_by_target.items()], ignore_index=True)
    sc = pd.DataFrame([{"expert": e, "target": t, "shots": "full", "probe": "p", "method": "m", "score": s}
                       for t in runs_by_target for e, s in scores.items()])
    metrics = ["spearman", "top1_gain", "trials_to_best"]
    return SeedBootstrap(lambda truth: evaluate_selection(truth, sc, "a", 1, "p"), runs, ["method", "target", "shots"],
                         metrics)


def test_intervals_over_seeds_stay_in_range_and_collapse_without_noise():
    # target u: the same accuracies under every seed, so every resample gives the point value
    steady = {(e, 0.1, s): a for s in (0, 1, 2) for e, a in (("a", 50), ("b", 60), ("c", 70))}
    # target v: seed 2 reverses b and c, so the ranking of b and c depends on the seeds drawn
    noisy = {(e, 0.1, s): a for s in (0, 1, 2) for e, a in (("a", 50), ("b", 60 if s < 2 else 75), ("c", 70))}
    boot = _selection({"u": steady, "v": noisy}, {"a": 1.0, "b": 2.0, "c": 3.0})
    rows = boot.with_intervals().set_index("target")
    assert rows.loc["u", "spearman"] == 1.0 and rows.loc["u", "spearman_ci_low"] == rows.loc["u", "spearman_ci_high"] == 1.0
    assert rows.loc["v", "spearman_ci_low"] < 1.0 == rows.loc["v", "spearman_ci_high"]
    assert 1.0 <= rows.loc["v", "trials_to_best_ci_low"] <= rows.loc["v", "trials_to_best_ci_high"] <= 3.0
    assert len(boot.multisets) == 10  # 3 seeds: the protocol ran once per distinct multiset, not 1,000 times
    # the mean over targets, resampling targets then seeds: u is always 1, v below it in some resamples
    summary = boot.summary(["method", "shots"]).iloc[0]
    assert summary["n_targets"] == 2 and summary["spearman_ci_high"] == 1.0
    assert summary["spearman_ci_low"] < summary["spearman"] <= 1.0


def test_one_seed_has_no_interval_over_seeds_but_the_summary_resamples_targets():
    one = {t: {(e, 0.1, 0): a for e, a in zip("abc", accs)} for t, accs in (("u", (50, 60, 70)), ("v", (50, 70, 60)))}
    boot = _selection(one, {"a": 1.0, "b": 2.0, "c": 3.0})
    rows = boot.with_intervals()
    assert rows["spearman_ci_low"].isna().all() and rows["spearman_ci_high"].isna().all()
    summary = boot.summary(["method", "shots"]).iloc[0]
    assert summary["spearman"] == pytest.approx(0.75)  # (1 + 0.5) / 2
    assert summary["spearman_ci_low"] == pytest.approx(0.5) and summary["spearman_ci_high"] == pytest.approx(1.0)
    rerun = _selection(one, {"a": 1.0, "b": 2.0, "c": 3.0}).summary(["method", "shots"])
    pd.testing.assert_frame_equal(rerun, boot.summary(["method", "shots"]))  # seeded: the same bounds
