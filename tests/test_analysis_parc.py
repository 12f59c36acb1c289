"""PARC (analysis.parc): its Tables 1-3 and Fig. 2a on the small benchmark, and the protocol's
agreement with analysis.protocols.parc_protocol."""
import numpy as np
import pytest

import analysis_fixtures as fx
from analysis.parc import mean_pearson, parc_probes
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
    assert t2["source_and_arch_mean"].to_dict() == pytest.approx(ref["pearson_mean"].to_dict())
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
