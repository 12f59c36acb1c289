"""Deshpande et al. (analysis.deshpande, analysis.cost and the Sec. 4.3 protocol): top-k gain,
trials to best, Spearman, Table 1-3, Figs. 1-8, on small synthetic tables with hand-computed
expectations."""
import math

import numpy as np
import pandas as pd
import pytest

import analysis_fixtures as fx
from analysis.context import Context
from analysis.cost import compute_cost
from analysis.deshpande import fig2_finetune_error, fig4_top3_gain, fig6a_trials_to_best, fig6b_spearman
from analysis.protocols import (evaluate_selection, expected_topk_max, expected_trials_to_best, gain_bounds,
                                spearman)
from analysis.tables import AnalysisError, best_finetune, shots_order

GEN = "resnet-generalist"
PROBE = "per_class_25"
# best accuracy (%) and per-lr seconds of each expert on target "t"
ACC = {GEN: 70.0, "resnet-a": 90.0, "resnet-b": 80.0, "densenet-c-init": 60.0, "densenet-d": 50.0}
SEC_T = {GEN: 10.0, "resnet-a": 10.0, "resnet-b": 20.0, "densenet-c-init": 5.0, "densenet-d": 5.0}
SEC_V = {e: (30.0 if e == "resnet-b" else 10.0) for e in ACC}
SCORES = {  # method -> expert -> score
    "good": {"resnet-a": 4, "resnet-b": 3, GEN: 2, "densenet-c-init": 1, "densenet-d": 0},
    "bad": {"resnet-a": 0, "resnet-b": 1, GEN: 2, "densenet-c-init": 3, "densenet-d": 4},
    "tie": {"resnet-a": 1, "resnet-b": 1, GEN: 1, "densenet-c-init": 1, "densenet-d": 5},
    "const": {e: 7.0 for e in ACC},
    "random": {"resnet-a": 0.9, "resnet-b": 0.1, GEN: 0.5, "densenet-c-init": 0.3, "densenet-d": 0.2},
}


def _finetune_df():
    rows = []
    for target, sec in (("t", SEC_T), ("v", SEC_V)):
        for e, acc in ACC.items():
            # the best lr is the middle one: best_finetune must take the max, not the first
            for lr, delta in ((0.01, -3.0), (0.005, 0.0), (0.001, -1.0)):
                rows.append({"expert": e, "target": target, "shots": "full", "lr": lr,
                             "test_accuracy": acc + delta, "seconds": sec[e]})
    return pd.DataFrame(rows)


def _scores_df():
    return pd.DataFrame([{"expert": e, "target": target, "shots": "full", "method": m, "score": s,
                          "seconds": 0.2, "feature_seconds": 1.0, "probe": PROBE}
                         for target in ("t", "v") for m, d in SCORES.items() for e, s in d.items()])


@pytest.fixture(scope="module")
def evaluation():
    ev = evaluate_selection(_finetune_df(), _scores_df(), GEN, 3, PROBE)
    return ev[ev["target"] == "t"].set_index("method")


def test_shots_order_and_best_finetune():
    assert shots_order(["5", "full", "20", 20]) == ["full", "20", "5"]
    best = best_finetune(_finetune_df()).set_index(["expert", "target"])
    assert best.loc[("resnet-b", "t"), "test_accuracy"] == 80.0
    assert best.loc[("resnet-b", "t"), "seconds"] == 60.0  # the whole lr grid is one fine-tune


def test_topk_gain(evaluation):
    g = evaluation["top3_gain"]
    assert g["good"] == pytest.approx(20.0)  # {a, b, gen} -> 90 - 70
    assert g["bad"] == pytest.approx(0.0)  # {d, c, gen} -> 70 - 70
    # tie: d sure, 2 of the 4 tied {60,70,80,90}: P(max = j-th smallest) = C(j-1,1)/C(4,2)
    assert g["tie"] == pytest.approx((70 * 1 + 80 * 2 + 90 * 3) / 6 - 70)
    # all tied: 3 of {50..90}: C(j-1,2)/C(5,3) -> (70*1 + 80*3 + 90*6)/10 = 85
    assert g["const"] == pytest.approx(15.0)
    assert g["random"] == pytest.approx(15.0)  # seeded scores ignored: exact expectation
    assert (evaluation["n_experts"] == 5).all()


def test_topk_max_edge_cases():
    assert expected_topk_max([9, 1, 1, 1], [95, 10, 20, 30], 2) == pytest.approx(95.0)
    assert expected_topk_max([1, 2, 3], [5, 6, 7], 10) == pytest.approx(7.0)  # k > m: all experts
    assert expected_topk_max([0, 0, 0, 0], [1, 2, 3, 4], 1) == pytest.approx(2.5)  # k=1: the mean


def test_trials_to_best(evaluation):
    t = evaluation["trials_to_best"]
    assert t["good"] == 1.0 and t["bad"] == 5.0
    assert t["tie"] == pytest.approx(1 + 5 / 2)  # after d, a is in a tie group of 4: (4+1)/(1+1)
    assert t["const"] == pytest.approx(3.0) and t["random"] == pytest.approx(3.0)  # (5+1)/(1+1)
    # two best experts in a tie group of 4 behind one expert: 1 + (4+1)/(2+1)
    assert expected_trials_to_best([3, 1, 1, 1, 1], [50, 90, 90, 60, 70]) == pytest.approx(1 + 5 / 3)


def test_spearman(evaluation):
    s = evaluation["spearman"]
    assert s["good"] == pytest.approx(1.0) and s["bad"] == pytest.approx(-1.0)
    assert math.isnan(s["const"])  # undefined for constant scores
    assert s["random"] == 0.0  # expectation over random orders
    # tie: ranks of scores (mid-ranks) vs accuracies, by hand: scores (a,b,gen,c,d)=(1,1,1,1,5)
    # -> ranks (2.5,2.5,2.5,2.5,5); accuracies (90,80,70,60,50) -> ranks (5,4,3,2,1)
    x, y = np.array([2.5, 2.5, 2.5, 2.5, 5]), np.array([5, 4, 3, 2, 1.0])
    assert s["tie"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert spearman([1, 2, 3], [3, 1, 2]) == pytest.approx(-0.5)


def test_gain_bounds():
    b = gain_bounds(_finetune_df(), GEN).set_index("target")
    assert b.loc["t", "best_gain"] == 20.0 and b.loc["t", "worst_gain"] == -20.0


def test_unknown_reference_expert():
    with pytest.raises(AnalysisError, match="reference expert 'vit-nope' not in the fine-tune table"):
        evaluate_selection(_finetune_df(), _scores_df(), "vit-nope", 3, PROBE)


def test_compute_cost():
    c = compute_cost(_finetune_df(), _scores_df(), GEN, 3, PROBE)
    m = c.set_index(["item", "method"])["multiple"]
    assert list(c.columns) == ["shots", "item", "method", "multiple"]
    # brute force: t 150/30 = 5, v (4*30 + 90)/30 = 7, mean over targets 6
    assert m[("brute_force", "")] == pytest.approx(6.0)
    # good top-3 {a, b, gen}: t 120/30 = 4, v (30+90+30)/30 = 5
    assert m[("top3_finetune", "good")] == pytest.approx(4.5)
    # tie: d + 2 of 4 tied (expected 2 * mean): t (15 + 2*135/4)/30 = 2.75, v (30 + 2*180/4)/30 = 4
    assert m[("top3_finetune", "tie")] == pytest.approx((2.75 + 4.0) / 2)
    # random: 3 * mean of all: t 90/30 = 3, v 3*210/5/30 = 4.2
    assert m[("top3_finetune", "random")] == pytest.approx(3.6)
    # score: 5 experts * (1.0 feature + 0.2 score) = 6 s; t 6/30, v 6/30
    assert m[("score", "good")] == pytest.approx(0.2)
    assert c["item"].iloc[0] == "brute_force" and c["method"].iloc[-1] == "random"


def test_figures_2_4_6_write_the_png_and_its_data(tmp_path):
    ft, sc = _finetune_df(), _scores_df()
    ft20 = ft.assign(shots="20", test_accuracy=ft["test_accuracy"] - 10)  # a second shot setting
    ctx = Context(GEN, 3, PROBE, tables={"finetune": pd.concat([ft, ft20], ignore_index=True),
                                         "scores": pd.concat([sc, sc.assign(shots="20")], ignore_index=True)})
    for fig in (fig2_finetune_error, fig4_top3_gain, fig6a_trials_to_best, fig6b_spearman):
        data = fig(ctx, tmp_path / f"{fig.__name__}.png")
        assert (tmp_path / f"{fig.__name__}.png").stat().st_size > 1000
        csv = pd.read_csv(tmp_path / f"{fig.__name__}.csv", dtype={"shots": str})
        assert len(csv) == len(data) > 0 and set(csv["shots"]) == {"full", "20"}
    gains = pd.read_csv(tmp_path / "fig4_top3_gain.csv", dtype={"shots": str}).query("shots == 'full' and target == 't'")
    assert gains.set_index("column").loc["good", "gain"] == pytest.approx(20.0)


# --------------------------------------------------------------------------- the small benchmark

@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    fx.render(out, ["table1_zoo_accuracy", "table2_multidomain", "table3_compute", "fig1_error_vs_shots",
                    "fig3_multidomain_finetune", "fig5_multidomain_selection", "fig7_probe_size"])
    return out


def test_table1_and_table2(rendered):
    out = rendered
    t1 = fx.read(out, "table1_zoo_accuracy")
    assert list(t1.columns) == ["arch", "init", "a", "b", "gen"]  # sources by increasing size
    assert t1[["arch", "init"]].values.tolist() == [["densenet", "scratch"], ["resnet", "scratch"],
                                                    ["resnet", "generalist"]]
    assert t1.iloc[0, 2] == 72 and np.isnan(t1.iloc[0, 3]) and t1.iloc[0, 4] == 62
    assert t1.iloc[1, 2:].tolist() == [70, 50, 60]
    assert t1.iloc[2, 2] == 75 and t1.iloc[2, 3:].isna().all()
    t2 = fx.read(out, "table2_multidomain")
    assert list(t2.columns) == ["source", "single_domain", "shared", "multi_bn", "adapter"]
    # single domain: the -init expert where it exists (a), else the scratch expert
    assert t2.values.tolist() == [["a", 75, 40, 60, 50], ["b", 50, 41, 61, 51], ["gen", 60, 42, 62, 52]]


def test_table3_compute(rendered):
    out = rendered
    t3 = fx.read(out, "table3_compute").set_index("shots")
    assert list(t3.index) == ["full", "5"] and t3.columns[0] == "brute_force"
    assert t3.loc["full", "brute_force"] == pytest.approx(6.0)  # 6 experts x 20 s / the generalist's 20 s
    assert t3.loc["full", "top3_finetune:lfc"] == pytest.approx(3.0)
    assert t3.loc["full", "score:lfc"] == pytest.approx(6 * 1.1 / 20)


def test_fig1_best_zoo_vs_generalist(rendered):
    out = rendered
    d = fx.read(out, "fig1_error_vs_shots").set_index(["target", "shots", "series"])
    # full: zoo best (generalist-source experts left out) 85 / 70 / 55, generalist 70 / 60 / 50
    assert d.loc[("t1", "full", "zoo_best"), "expert"] == "resnet-a-init"
    assert d.loc[("mean", "full", "zoo_best"), "test_error"] == pytest.approx(30.0)
    assert d.loc[("mean", "full", "generalist"), "test_error"] == pytest.approx(40.0)
    # 5-shot: densenet-gen (57 on t2) would win t2 but is a generalist-source expert
    assert d.loc[("t2", "5", "zoo_best"), "expert"] == "resnet-b"
    assert d.loc[("mean", "5", "zoo_best"), "test_error"] == pytest.approx(50.0)
    assert d.loc[("mean", "5", "generalist"), "n_targets"] == 3


def test_fig3_and_fig5_multidomain(rendered):
    out = rendered
    f3 = fx.read(out, "fig3_multidomain_finetune").set_index(["expert", "target"])
    assert set(f3["group"]) == {"generalist", "generalist_md", "domain", "single_domain"}
    assert "densenet-a" not in f3.index.get_level_values(0)  # only the multi-domain expert's architecture
    assert f3.loc[("resnet-gen-md", "t1"), "beats_generalist"] and f3.loc[("resnet-a-md", "t1"), "beats_generalist"]
    assert not f3.loc[("resnet-b-md", "t1"), "beats_generalist"]
    assert not f3.loc[("resnet-a-init", "t1"), "beats_generalist"]  # only domains are flagged
    f5 = fx.read(out, "fig5_multidomain_selection").set_index(["selection", "target", "column"])
    # lfc ranks the domains perfectly: top-1 gain = best domain - the generalist's domain
    assert [f5.loc[("top-1", t, "lfc"), "gain"] for t in fx.TARGETS] == [6, 5, 4]
    assert f5.loc[("top-3", "t1", "best gain"), "gain"] == 6 and f5.loc[("top-3", "t1", "worst gain"), "gain"] == -7


def test_fig7_probe_size(rendered):
    out = rendered
    f7 = fx.read(out, "fig7_probe_size")
    assert set(f7["shots"]) == {"full"}  # only the shot setting with larger probe sets
    lfc = f7[f7["method"] == "lfc"].set_index("probe")["top3_gain"]
    # main probe: lfc picks the 3 worst (gains 0, 0, -2); the larger probes rank perfectly
    assert lfc[fx.PROBE] == pytest.approx(-2 / 3)
    assert list(f7["probe"].drop_duplicates()) == [fx.PROBE, "per_class_50", "all"]
    assert lfc["per_class_50"] == pytest.approx(10.0) and lfc["all"] == pytest.approx(10.0)


def test_fig8_theta_f_contrast(tmp_path):
    from analysis.deshpande import fig8_theta_f, theta_f
    f = np.array([[1.0, 0.0], [2.0, 0.1], [0.0, 1.0], [0.1, 2.0]])
    assert np.allclose(np.diag(theta_f(f)), 1.0) and theta_f(f).shape == (4, 4)
    record = tmp_path / "r.npz"
    np.savez(record, labels=np.array([0, 0, 1, 1]), epochs=np.array([0, 3]), features=np.stack([f, f]),
             expert="resnet-a", target="t", shots="full", lr=0.01)
    ctx = Context(GEN, 3, PROBE, records={"theta_f": [record]})
    data = fig8_theta_f(ctx, tmp_path / "fig8.png")
    assert list(data["epoch"]) == [0, 3] and (data["contrast"] > 0).all()
