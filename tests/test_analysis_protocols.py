"""The shared protocols (analysis.protocols: correlations, regret, PARC's draws, the probe-size
ablation) and the model-search strategies (analysis.strategies) on small synthetic tables with
hand-computed expectations; step=evaluate end to end."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from analysis.__main__ import run
from analysis.config import AnalysisConfig
from analysis.tables import AnalysisError, fill_probe
from analysis import protocols as P
from analysis.protocols import (correlations, evaluate_selection, parc_protocol, probe_size_ablation,
                                regret_table, relative_delta)
from analysis.strategies import (agnostic_rank, arch_pool, depth_calibrated, hybrid, ordered,
                                 task_agnostic)

REPO = Path(__file__).resolve().parents[1]
A, B, C, D = "resnet-a", "densenet-b", "resnet-gen", "densenet-c"
GEN = C
PROBE = "per_class_25"  # the main probe set
ACC = {A: 90.0, B: 80.0, C: 70.0, D: 60.0}  # best fine-tuned accuracy on every target
# task-agnostic order B (best source accuracy), C (tie on accuracy: most images),
# D (tie with A on accuracy and images: more parameters), A
ZOO = pd.DataFrame([
    {"expert": A, "arch": "resnet", "source_test_accuracy": 80.0, "source_images": 1000, "parameters": 10, "depth": 25},
    {"expert": B, "arch": "densenet", "source_test_accuracy": 90.0, "source_images": 500, "parameters": 5, "depth": 50},
    {"expert": C, "arch": "resnet", "source_test_accuracy": 80.0, "source_images": 2000, "parameters": 1, "depth": 100},
    {"expert": D, "arch": "densenet", "source_test_accuracy": 80.0, "source_images": 1000, "parameters": 20, "depth": 75},
])
LOGISTIC = {B: 0.9, A: 0.8, D: 0.5, C: 0.1}  # its top-1 is the task-agnostic pick B
KNN = {A: 0.2, B: 0.1, C: 0.9, D: 0.5}
M = {A: 3, B: 1, C: 2, D: 0}


def _finetune(targets=("t", "v")):
    return pd.DataFrame([{"expert": e, "target": t, "shots": "full", "lr": lr, "test_accuracy": acc - drop,
                          "seconds": 10.0} for t in targets for e, acc in ACC.items()
                         for lr, drop in ((0.01, 5.0), (0.005, 0.0))])


def _scores(*blocks, probe_column=True):
    """blocks: (method, target, probe, {expert: score})."""
    rows = [{"expert": e, "target": t, "shots": "full", "method": m, "score": s, "seconds": 0.1,
             "feature_seconds": 1.0, "probe": p} for m, t, p, d in blocks for e, s in d.items()]
    df = pd.DataFrame(rows)
    return df if probe_column else df.drop(columns="probe")


def _regret(df, method, target="t"):
    r = df[(df["method"] == method) & (df["target"] == target)]
    return r.set_index("budget")[["abs_regret", "rel_regret", "rel_delta"]]


def test_correlations_by_hand():
    # scores (3, 1, 2, 0) vs accuracies (90, 80, 70, 60): one discordant pair (B, C)
    c = correlations([3, 1, 2, 0], [90, 80, 70, 60])
    assert c["spearman"] == pytest.approx(1 - 6 * 2 / (4 * 15))  # d = (0, -1, 1, 0)
    assert c["pearson"] == pytest.approx(40 / np.sqrt(5 * 500))  # centred (1.5,-.5,.5,-1.5).(15,5,-5,-15)
    assert c["kendall"] == pytest.approx((5 - 1) / 6)
    # hyperbolic weights 1/(r+1) on both rankings (A, C, B, D) and (A, B, C, D): the discordant
    # pair weighs 1/2 + 1/3 out of (n-1) * (1 + 1/2 + 1/3 + 1/4) = 25/4
    assert c["weighted_tau"] == pytest.approx((25 / 4 - 2 * 5 / 6) / (25 / 4))
    assert all(np.isnan(v) for v in correlations([1, 1, 1], [1, 2, 3]).values())
    assert correlations([5, 1, 3], [1, 2, 3], random=True) == dict.fromkeys(c, 0.0)


def test_evaluate_selection_columns_and_main_probe():
    sc = pd.concat([_scores(("m", "t", PROBE, M), ("random", "t", PROBE, {A: 9, B: 1, C: 2, D: 3})),
                    # another probe: must not leak into the main probe set's evaluation
                    _scores(("m", "t", "per_class_50", {A: 0, B: 1, C: 2, D: 3}))])
    ev = evaluate_selection(_finetune(["t"]), sc, GEN, 1, PROBE).set_index("method")
    assert list(ev.columns[2:]) == ["spearman", "pearson", "kendall", "weighted_tau", "top1_gain",
                                    "trials_to_best", "n_experts", "degenerate"]
    assert ev.loc["m", "pearson"] == pytest.approx(0.8) and ev.loc["m", "kendall"] == pytest.approx(2 / 3)
    assert ev.loc["m", "weighted_tau"] == pytest.approx(11 / 15) and ev.loc["m", "top1_gain"] == 20.0
    assert (ev.loc["random", ["spearman", "pearson", "kendall", "weighted_tau"]] == 0).all()
    assert ev.loc["random", "top1_gain"] == pytest.approx(75 - 70)  # mean over experts
    # no probe column at all: every row is the main probe set, once filled; unfilled, a clean error
    old = sc[sc["probe"] == PROBE].drop(columns="probe")
    ev2 = evaluate_selection(_finetune(["t"]), fill_probe(old, PROBE), GEN, 1, PROBE)
    pd.testing.assert_frame_equal(ev2, ev.reset_index()[ev2.columns])
    with pytest.raises(AnalysisError, match="no probe column"):
        evaluate_selection(_finetune(["t"]), old, GEN, 1, PROBE)


def test_regret_with_ties_and_random():
    sc = _scores(("tie", "t", PROBE, {A: 1, B: 2, C: 2, D: 2}), ("random", "t", PROBE, M))
    rg = regret_table(_finetune(["t"]), sc, PROBE)
    assert list(rg.columns) == ["method", "target", "shots", "budget", "abs_regret", "rel_regret", "rel_delta"]
    tie = _regret(rg, "tie")
    # B=1: one of the tied {80, 70, 60}; B=2: two of them, max 80, 80, 70; B=3: all three
    s = {1: 70.0, 2: 230 / 3, 3: 80.0, 4: 90.0}
    for b, sb in s.items():
        assert tie.loc[b, "abs_regret"] == pytest.approx(90 - sb)
        assert tie.loc[b, "rel_regret"] == pytest.approx((0.9 - sb / 100) / (1 - sb / 100))  # eq. 2 in [0, 1]
    assert tie.loc[2, "rel_regret"] == pytest.approx(4 / 7)
    # against Random at the same budget: B=1 selects 70 vs Random's 75, so Delta = (0.70 - 0.75) / 0.30
    assert tie.loc[1, "rel_delta"] == pytest.approx(-0.05 / 0.30) and tie.loc[4, "rel_delta"] == 0.0
    # random: exact expectation over B-subsets of {90, 80, 70, 60}, its seeded scores ignored
    rnd = _regret(rg, "random")
    s = {1: 75.0, 2: (3 * 90 + 2 * 80 + 70) / 6, 3: (3 * 90 + 80) / 4, 4: 90.0}
    assert rnd["abs_regret"].to_dict() == pytest.approx({b: 90 - v for b, v in s.items()})
    assert rnd["rel_regret"].to_dict() == pytest.approx({1: 0.6, 2: 0.4, 3: 0.2, 4: 0.0})
    assert rnd["rel_delta"].to_dict() == pytest.approx({b: 0.0 for b in s})
    assert relative_delta(100.0, 100.0) == 0.0 and relative_delta(80.0, 90.0) == pytest.approx(-0.5)
    # a perfect oracle against an expectation rounded just above 100% (the rehearsal's 3-image tests)
    assert relative_delta(100.0, 100.00000000000001) == 0.0 == relative_delta(100.00000000000001, 100.0)


def test_task_agnostic_tie_breaking():
    key = agnostic_rank(ZOO)
    assert sorted(ZOO["expert"], key=lambda e: -key[e]) == [B, C, D, A]
    sc = _scores(("m", "t", PROBE, M))
    assert ordered(task_agnostic(sc, ZOO, probe=PROBE))[("task_agnostic", "t", "full", PROBE, 0)] == [[B], [C], [D], [A]]
    # without source_images C and A, D tie on accuracy: parameters decide (D 20, A 10, C 1)
    key = agnostic_rank(ZOO.drop(columns="source_images"))
    assert key[B] > key[D] > key[A] > key[C]
    # a full tie stays a tie: top-1 is one of them at random
    zoo = ZOO.assign(parameters=[10, 5, 1, 10], source_images=[1000, 500, 2000, 1000])
    ta = task_agnostic(sc, zoo, probe=PROBE)
    assert ordered(ta)[("task_agnostic", "t", "full", PROBE, 0)] == [[B], [C], [D, A]]  # ids sorted
    rg = _regret(regret_table(_finetune(["t"]), ta, PROBE), "task_agnostic")
    # B=3: B, C and one of A (90), D (60) -> E[max] = (90 + 80) / 2
    assert rg["abs_regret"].to_dict() == pytest.approx({1: 10.0, 2: 10.0, 3: 5.0, 4: 0.0})
    # a pool: the densenets only
    ta = task_agnostic(sc, ZOO, pool=arch_pool("densenet"), probe=PROBE)
    assert ordered(ta)[("task_agnostic", "t", "full", PROBE, 0)] == [[B], [D]]


def test_hybrid_skips_the_duplicate():
    sc = _scores(("logistic", "t", PROBE, LOGISTIC), ("knn_loo", "t", PROBE, KNN))
    hy = hybrid(sc, ZOO, "logistic", probe=PROBE)
    # the task-agnostic pick B is also logistic's top-1: B=2 takes the next one, A
    assert ordered(hy)[("hybrid_logistic", "t", "full", PROBE, 0)] == [[B], [A], [D], [C]]
    assert _regret(regret_table(_finetune(["t"]), hy, PROBE), "hybrid_logistic")["abs_regret"].to_dict() == {
        1: 10.0, 2: 0.0, 3: 0.0, 4: 0.0}
    hk = hybrid(sc, ZOO, "knn_loo", probe=PROBE)
    assert ordered(hk)[("hybrid_knn_loo", "t", "full", PROBE, 0)] == [[B], [C], [D], [A]]
    rg = regret_table(_finetune(["t"]), pd.concat([sc, hk]), PROBE)
    assert _regret(rg, "hybrid_knn_loo")["abs_regret"].to_dict() == {1: 10.0, 2: 10.0, 3: 10.0, 4: 0.0}
    assert _regret(rg, "knn_loo")["abs_regret"].to_dict() == {1: 20.0, 2: 20.0, 3: 0.0, 4: 0.0}


def test_hybrid_with_tied_task_agnostic_pick():
    # B and C tie on every task-agnostic criterion: each is the first pick half of the time
    zoo = ZOO.assign(source_test_accuracy=[80, 90, 90, 80], source_images=[1000, 500, 500, 1000],
                     parameters=[10, 5, 5, 20])
    hy = hybrid(_scores(("logistic", "t", PROBE, LOGISTIC)), zoo, "logistic", probe=PROBE)
    o = ordered(hy)
    assert o[("hybrid_logistic", "t", "full", PROBE, 0)] == [[B], [A], [D], [C]]
    assert o[("hybrid_logistic", "t", "full", PROBE, 1)] == [[C], [B], [A], [D]]
    rg = _regret(regret_table(_finetune(["t"]), hy, PROBE), "hybrid_logistic")
    # B=1: (80 + 70) / 2; B=2: ({B, A} -> 90 + {C, B} -> 80) / 2
    assert rg["abs_regret"].to_dict() == pytest.approx({1: 15.0, 2: 5.0, 3: 0.0, 4: 0.0})
    ev = evaluate_selection(_finetune(["t"]), hy, GEN, 2, PROBE).set_index("method")
    assert ev.loc["hybrid_logistic", "top2_gain"] == pytest.approx(85 - 70)
    assert ev.loc["hybrid_logistic", "trials_to_best"] == pytest.approx((2 + 3) / 2)


def test_depth_calibration():
    sc = _scores(("p", "t", PROBE, {A: 0, B: 0, C: 0, D: 4}), ("const", "t", PROBE, dict.fromkeys(ACC, 7.0)),
                 ("p", "t", "parc_draw0", {A: 0, B: 4, C: 0, D: 0}), ("random", "t", PROBE, M))
    cal = depth_calibrated(sc, ZOO)
    assert set(cal["method"]) == {"p+l", "const+l"}  # not random
    got = cal.set_index(["method", "probe", "expert"])["score"]
    # mean 1, std (ddof=1) sqrt(12/3) = 2 -> z (-.5, -.5, -.5, 1.5); depth / 100 = (.25, .5, 1, .75)
    for e, v in {A: -0.25, B: 0.0, C: 0.5, D: 2.25}.items():
        assert got[("p+l", PROBE, e)] == pytest.approx(v)
    assert got[("p+l", "parc_draw0", B)] == pytest.approx(1.5 + 0.5)  # each probe z-scored on its own
    for e in ACC:  # constant scores: z-score 0, the depth term alone
        assert got[("const+l", PROBE, e)] == pytest.approx(ZOO.set_index("expert").loc[e, "depth"] / 100)
    # pool {A, B}: the z-score and the maximum depth (50) are over the pool only
    got = depth_calibrated(sc, ZOO, pool=[A, B], probe=PROBE).set_index(["method", "expert"])["score"]
    assert got[("p+l", A)] == pytest.approx(0.5) and got[("p+l", B)] == pytest.approx(1.0)
    assert len(got) == 4


def test_depth_calibration_of_a_reference_method_pools_targets_and_draws():
    """"ref_<m>+l" as dbolya/parc metrics.add_plasticity: one mean and std (ddof=1) over every target
    and PARC draw of the method (per shot setting); other probe sets apart."""
    sc = _scores(("ref_p", "t", "parc_draw0", {A: 0, B: 0, C: 0, D: 4}),
                 ("ref_p", "v", "parc_draw1", dict.fromkeys(ACC, 4)), ("ref_p", "t", PROBE, {A: 1, B: 2, C: 3, D: 4}))
    got = depth_calibrated(sc, ZOO).set_index(["target", "probe", "expert"])["score"]
    mean, std = 20 / 8, np.sqrt(30 / 7)  # over (0, 0, 0, 4, 4, 4, 4, 4)
    assert got[("t", "parc_draw0", A)] == pytest.approx((0 - mean) / std + 0.25)
    assert got[("v", "parc_draw1", D)] == pytest.approx((4 - mean) / std + 0.75)
    assert got[("t", PROBE, D)] == pytest.approx(1.5 / np.sqrt(5 / 3) + 0.75)


def test_parc_protocol_mean_and_std_over_draws():
    sc = _scores(("m", "t", "parc_draw0", M), ("m", "v", "parc_draw0", {A: 4, B: 3, C: 2, D: 1}),
                 ("m", "t", "parc_draw1", {A: 1, B: 2, C: 3, D: 4}), ("m", "v", "parc_draw1", {A: 4, B: 3, C: 2, D: 1}),
                 ("m", "t", PROBE, {A: 1, B: 2, C: 3, D: 4}),  # not a PARC draw
                 ("only_default", "t", PROBE, M),
                 ("random", "t", "parc_draw0", M), ("random", "t", "parc_draw1", M))
    out = parc_protocol(_finetune(), sc)
    assert list(out.columns) == ["method", "shots", "pearson_mean", "pearson_std", "n_draws"]
    assert list(out["method"]) == ["m", "random"]  # methods without parc_draw rows are skipped
    m = out.set_index("method").loc["m"]
    # draw 0: mean(0.8, 1.0) = 90; draw 1: mean(-1, 1) = 0 -> 45 +- 45 (population std)
    assert m["pearson_mean"] == pytest.approx(45.0) and m["pearson_std"] == pytest.approx(45.0)
    assert m["n_draws"] == 2 and out.set_index("method").loc["random", "pearson_mean"] == 0.0
    empty = parc_protocol(_finetune(), fill_probe(_scores(("m", "t", PROBE, M), probe_column=False), PROBE))
    assert empty.empty and list(empty.columns) == list(out.columns)
    one = parc_protocol(_finetune(), sc[sc["probe"] != "parc_draw1"]).set_index("method").loc["m"]
    assert one["pearson_mean"] == pytest.approx(90.0) and one["n_draws"] == 1
    assert np.isnan(one["pearson_std"])  # a spread over one draw is undefined, not 0


def test_probe_size_ablation():
    top = lambda e: {x: (1.0 if x == e else 0.0) for x in ACC}  # noqa: E731
    sc = _scores(("m", "t", PROBE, top(D)), ("m", "v", PROBE, top(A)),
                 ("m", "t", "per_class_50", top(A)), ("m", "v", "per_class_50", top(A)),
                 ("m", "t", "all", top(B)), ("m", "v", "all", top(A)),
                 ("n", "t", PROBE, top(A)))  # main probe set only: not part of the ablation
    out = probe_size_ablation(_finetune(), sc, GEN, 1, PROBE)
    assert list(out.columns) == ["method", "shots", "probe", "top1_gain", "n_targets"]
    assert list(out["probe"]) == [PROBE, "per_class_50", "all"] and set(out["method"]) == {"m"}
    # top-1 gain over the reference expert (70): main probe set (-10 + 20) / 2, per_class_50 20, all (10 + 20) / 2
    assert out["top1_gain"].tolist() == pytest.approx([5.0, 20.0, 15.0])
    assert (out["n_targets"] == 2).all()
    empty = probe_size_ablation(_finetune(), sc[sc["probe"] == PROBE], GEN, 3, PROBE)
    assert empty.empty and list(empty.columns) == ["method", "shots", "probe", "top3_gain", "n_targets"]


def _results_dir(root: Path, scores: pd.DataFrame) -> Path:
    tables = root / "tables"
    tables.mkdir(parents=True)
    _finetune().to_csv(tables / "finetune.csv", index=False)
    scores.to_csv(tables / "scores.csv", index=False)
    ZOO.assign(source="s", init="scratch", seconds=1.0).to_csv(tables / "zoo_accuracy.csv", index=False)
    return root


def test_evaluate_cli_writes_every_table(tmp_path):
    blocks = [(m, t, PROBE, d) for t in ("t", "v")
              for m, d in (("m", M), ("logistic", LOGISTIC), ("knn_loo", KNN), ("random", M))]
    blocks += [("m", t, p, M) for t in ("t", "v") for p in ("parc_draw0", "parc_draw1", "per_class_50")]
    res = _results_dir(tmp_path / "res", _scores(*blocks))
    r = subprocess.run([sys.executable, "-m", "analysis", "preset=mini/analysis", "step=evaluate", f"results_dir={res}",
                        f"reference_expert={GEN}", f"probe_set={PROBE}", f"hydra.run.dir={tmp_path / 'hydra'}", "hydra.job.chdir=false"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    read = lambda name: pd.read_csv(res / "tables" / f"{name}.csv", dtype={"shots": str})  # noqa: E731
    ev = read("selection_eval")
    assert {"pearson", "kendall", "weighted_tau", "top3_gain"} <= set(ev.columns)
    strategies = {"task_agnostic", "hybrid_logistic", "hybrid_knn_loo", "m+l", "logistic+l", "knn_loo+l"}
    assert set(ev["method"]) == {"m", "logistic", "knn_loo", "random"} | strategies
    assert (ev.groupby("method").size() == 2).all()  # main probe set only: one row per target
    rg = read("regret").set_index(["method", "target", "budget"])
    assert rg.loc[("task_agnostic", "t", 1), "abs_regret"] == 10.0
    assert rg.loc[("hybrid_logistic", "v", 2), "abs_regret"] == 0.0
    assert rg.loc[("random", "t", 1), "abs_regret"] == 15.0 and len(rg) == 4 * 2 * 10
    parc = read("parc_protocol").set_index("method")
    assert set(parc.index) == {"m", "m+l"} and parc.loc["m", "pearson_mean"] == pytest.approx(80.0)
    assert parc.loc["m", "pearson_std"] == 0.0 and parc.loc["m", "n_draws"] == 2
    ab = read("probe_size_ablation")
    assert set(ab["method"]) == {"m"} and list(ab["probe"]) == [PROBE, "per_class_50"]
    assert len(read("compute_cost")) > 0

    # an older score table without the probe column: PARC and ablation tables empty but headed
    res = _results_dir(tmp_path / "old", _scores(*blocks[:8], probe_column=False))
    cfg = OmegaConf.merge(OmegaConf.structured(AnalysisConfig),
                          {"step": "evaluate", "results_dir": str(res), "reference_expert": GEN, "probe_set": PROBE})
    written = {p.stem for p in run(cfg)}
    # no targets.csv here: the learned recommenders are skipped (with a warning), their tables empty
    assert written == {"selection_eval", "selection_summary", "noise_ceiling", "finetune_ground_truth", "compute_cost",
                       "regret", "parc_protocol", "probe_size_ablation", "gr_table2", "recommendations"}
    for name in ("parc_protocol", "probe_size_ablation"):
        df = pd.read_csv(res / "tables" / f"{name}.csv")
        assert df.empty and len(df.columns) == 5
    assert "task_agnostic" in set(pd.read_csv(res / "tables" / "selection_eval.csv")["method"])


def test_round_off_is_a_tie_not_a_ranking():
    """../shared/cases/scores/case_13: H-score is C - 1 up to rounding for every expert when N <= D; the
    protocols treat scores within a relative 1e-9 as exact ties (NaN correlation, the mean accuracy as
    the expected top-1, (N + 1) / 2 trials) and flag the method degenerate."""
    from selection.scores import SCORES

    rng = np.random.default_rng(0)
    y = np.arange(45) % 9
    acc = np.array([61., 64., 66., 70., 72., 75., 78., 81.])
    scores = [SCORES["hscore"](features=rng.normal(size=(45, 2048)) * (1 + k), labels=y) for k in range(8)]
    assert len(set(scores)) > 1 and np.ptp(scores) < 1e-13  # the rounding the protocols saw as signal
    assert np.ptp(P.tie_close(scores)) == 0
    # every protocol function, given the raw scores, sees the tie
    assert np.isnan(P.spearman(scores, acc)) and np.isnan(P.kendall(scores, acc))
    assert P.expected_topk_max(scores, acc, 1) == pytest.approx(70.875)
    assert P.expected_trials_to_best(scores, acc) == 4.5
    experts = [f"resnet-s{i}" for i in range(8)]
    ft = pd.DataFrame({"expert": experts, "target": "t", "shots": "5", "lr": 0.01, "test_accuracy": acc, "seconds": 1.0})
    sc = pd.DataFrame({"expert": experts, "target": "t", "shots": "5", "method": "hscore", "score": scores,
                       "probe": "per_class_25"})
    row = P.evaluate_selection(ft, sc, "resnet-s0", 1, "per_class_25").iloc[0]
    assert row["degenerate"] and np.isnan(row["spearman"]) and row["trials_to_best"] == 4.5
    assert row["top1_gain"] == pytest.approx(70.875 - 61.0)
    # distinct scores are no ties, however close their ranks
    assert list(P.tie_close([1.0, 1.0 + 1e-6, 3.0])) == [1.0, 1.0 + 1e-6, 3.0]


def test_a_nan_accuracy_leaves_every_comparison_alike(caplog):
    """../shared/cases/scores/case_8: every correlation is NaN on NaN input (weighted tau too), and an
    expert whose fine-tuning diverged leaves every protocol's comparison, with a warning naming it."""
    s, acc = [1., 2., 3., 4.], [61., np.nan, 70., 75.]
    assert all(np.isnan(f(s, acc)) for f in (P.spearman, P.pearson, P.kendall, P.weighted_tau))
    experts = ["resnet18-a", "resnet18-b", "resnet18-c", "resnet50-gen"]
    ft = pd.DataFrame({"expert": experts, "target": "t1", "shots": "full", "lr": 0.01,
                       "test_accuracy": [61.0, np.nan, 70.0, 65.0], "seconds": 1.0})
    sc = pd.DataFrame({"expert": experts, "target": "t1", "shots": "full", "method": "logme",
                       "score": [0.1, 0.4, 0.2, 0.05], "probe": "per_class_25"})
    with caplog.at_level("WARNING", logger="analysis"):
        row = P.evaluate_selection(ft, sc, "resnet50-gen", 1, "per_class_25").iloc[0]
    assert "resnet18-b on t1 (full)" in caplog.text
    assert row["n_experts"] == 3 and row["trials_to_best"] == 1.0 and row["top1_gain"] == pytest.approx(5.0)
    assert row["weighted_tau"] == pytest.approx(P.weighted_tau([0.1, 0.2, 0.05], [61.0, 70.0, 65.0]))
    regret = P.regret_table(ft, sc, "per_class_25")
    assert len(regret) == 3 and regret["abs_regret"].notna().all()
