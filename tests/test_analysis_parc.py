"""PARC (analysis.parc): its Tables 1-3 and Fig. 2a on the small benchmark, and the protocol's
agreement with analysis.protocols.parc_protocol."""
import numpy as np
import pytest

import analysis_fixtures as fx
from analysis.parc import mean_pearson, parc_probes
from analysis.strategies import HEURISTIC, REF_HEURISTIC, all_strategies, heuristic
from analysis.protocols import parc_protocol
from analysis.tables import split_zoos


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    fx.render(out, ["parc_table1", "parc_table2_modes", "parc_table3_depth", "parc_fig2_pca"])
    return out


def test_parc_tables(rendered):
    out, t = rendered, fx.tables()
    t1 = fx.read(out, "parc_table1").set_index("method")
    assert t1.loc["parc", "pearson_mean"] == pytest.approx(200 / 3)  # draws: 100 and (100 + 100 - 100) / 3
    assert t1.loc["parc", "pearson_std"] == pytest.approx(100 / 3) and t1.loc["parc", "n_draws"] == 2
    assert t1.loc["lfc", "pearson_mean"] == pytest.approx(-100) and t1.loc["random", "pearson_mean"] == 0
    assert t1.loc["parc", "time_ms"] == pytest.approx(100)
    assert t1.loc["parc", "time_with_features_ms"] == pytest.approx(1100)
    # the "source_and_arch" mode is PARC's protocol
    ft, sc = split_zoos(t["finetune"])[0], split_zoos(t["scores"])[0]
    ref = parc_protocol(ft, sc).set_index("method")
    t2 = fx.read(out, "parc_table2_modes").set_index("method")
    assert t2.loc[ref.index, "source_and_arch_mean"].to_dict() == pytest.approx(ref["pearson_mean"].to_dict())
    assert t2.loc["parc_pca8", "architecture_mean"] == pytest.approx(100)
    # across targets with the expert fixed: scores = accuracies on both draws
    assert t2.loc["parc_pca8", "target_mean"] == pytest.approx(100)
    assert t2.loc["lfc", "target_mean"] == pytest.approx(-100)
    by_hand = mean_pearson(ft, sc, parc_probes(sc, fx.PROBE), "source").set_index("method")
    assert t2.loc["parc", "source_mean"] == pytest.approx(by_hand.loc["parc", "pearson_mean"])
    t3 = fx.read(out, "parc_table3_depth").set_index("method")
    assert "random" not in t3.index and t3.loc["lfc", "original_mean"] == pytest.approx(-100)
    assert np.isfinite(t3["depth_mean"]).all()
    pca = fx.read(out, "parc_fig2_pca")
    assert pca[["base", "pca_dim"]].values.tolist() == [["parc", "8"], ["parc", "full"]]
    assert pca["pearson_mean"].tolist() == pytest.approx([100, 200 / 3])




def test_parc_probes_fall_back_to_the_main_probe_set():
    sc = fx.tables()["scores"]
    assert parc_probes(sc, fx.PROBE) == ["parc_draw0", "parc_draw1"]
    assert parc_probes(sc[sc["probe"] == fx.PROBE], fx.PROBE) == [fx.PROBE]


def test_heuristic_by_hand():
    """PARC eq. 4: depth + log(source images + target images); the reference code: depth +
    log(source images) - log(target images). Fixture: resnet depth 10, densenet 20; sources gen
    1000, a 100, b 500 images; targets 100 (full) and 20 (5-shot) training images."""
    t = fx.tables()
    sc = split_zoos(t["scores"])[0]
    h = heuristic(sc, t["zoo_accuracy"], t["targets"]).set_index(["expert", "target", "shots", "probe"])["score"]
    assert h[("resnet-gen", "t1", "full", fx.PROBE)] == pytest.approx(10 + np.log(1100))
    assert h[("densenet-a", "t2", "5", fx.PROBE)] == pytest.approx(20 + np.log(120))
    assert h[("resnet-b", "t3", "full", "parc_draw1")] == pytest.approx(10 + np.log(600))
    ref = heuristic(sc, t["zoo_accuracy"], t["targets"], reference=True)
    ref = ref.set_index(["expert", "target", "shots", "probe"])["score"]
    assert ref[("resnet-gen", "t1", "full", fx.PROBE)] == pytest.approx(10 + np.log(10))
    assert ref[("densenet-a", "t2", "5", fx.PROBE)] == pytest.approx(20 + np.log(100 / 20))
    # one row per (expert, target, shots, probe) with scores; the same value on every probe
    assert len(h) == len(sc.drop_duplicates(["expert", "target", "shots", "probe"]))
    # a (target, shots) missing from the targets table gets NaN; no targets table, no rows
    assert np.isnan(heuristic(sc, t["zoo_accuracy"], t["targets"].iloc[1:])["score"]).any()
    assert all_strategies(sc, t["zoo_accuracy"], probe=fx.PROBE).query("method == @HEURISTIC").empty
    both = all_strategies(sc, t["zoo_accuracy"], probe=fx.PROBE, targets_df=t["targets"])
    assert {HEURISTIC, REF_HEURISTIC} <= set(both["method"])


def test_heuristic_in_parc_tables(rendered):
    """Table 1: the Heuristic's mean Pearson by hand (one value per target, std 0 over draws), no time."""
    t1 = fx.read(rendered, "parc_table1").set_index("method")
    depth = {"resnet-gen": 10, "densenet-gen": 20, "resnet-a": 10, "resnet-a-init": 10, "densenet-a": 20,
             "resnet-b": 10}
    src = {"resnet-gen": 1000, "densenet-gen": 1000, "resnet-a": 100, "resnet-a-init": 100, "densenet-a": 100,
           "resnet-b": 500}
    experts = list(depth)
    pcs = [100 * np.corrcoef([depth[e] + np.log(src[e] + 100) for e in experts],
                             [fx.acc(e, target, "full") for e in experts])[0, 1] for target in fx.TARGETS]
    assert t1.loc[HEURISTIC, "pearson_mean"] == pytest.approx(np.mean(pcs))
    assert t1.loc[HEURISTIC, "pearson_std"] == pytest.approx(0) and np.isnan(t1.loc[HEURISTIC, "time_ms"])
    assert REF_HEURISTIC in t1.index
    assert HEURISTIC in set(fx.read(rendered, "parc_table2_modes")["method"])

