"""The published numbers beside the reproduced ones and summary.md (analysis.published)."""
import numpy as np
import pandas as pd
import pytest

import analysis_fixtures as fx
from analysis.context import Context
from analysis.outputs import OUTPUTS, outputs, render
from analysis.published import (PUBLISHED_DIR, compare, compare_deshpande_table1, compare_parc_table2,
                                is_paper_benchmark, load_published, summary_markdown)
from pipeline.layout import Layout


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    fx.render(out, ["selection_eval", "parc_protocol", "wm_zero_regret"])
    return out


def test_published_tables_parse():
    names = sorted(p.stem for p in PUBLISHED_DIR.glob("*.csv"))
    assert names == ["deshpande_table1", "deshpande_table2", "deshpande_table3", "guided_table2",
                     "parc_mean_pc", "parc_table2", "parc_table3", "standard_finetune", "standard_weighted_tau"]
    for name in names:
        df = load_published(name)
        assert len(df) and (df["source"].str.len() > 0).all()
    t1 = load_published("deshpande_table1").set_index(["arch", "init", "dataset"])["accuracy"]
    assert t1[("resnet", "generalist", "resisc45")] == 96.53 and t1[("densenet", "scratch", "imagenet")] == 76.40
    assert len(t1.xs("generalist", level="init")) == 14  # 2 archs x 7 sources (ImageNet has no init row)
    t3 = load_published("deshpande_table3").set_index(["shots", "item", "method"])["multiple"]
    assert t3[("full", "brute_force", "")] == 48.17 and t3[("20", "score", "lgc")] == 15.26
    pc = load_published("parc_mean_pc").set_index("method")
    assert pc.loc["knn_loo", "pearson_mean"] == 60.8 and pc.loc["parc_pca32+l", "pearson_mean"] == 70.3
    assert load_published("parc_table2").set_index(["method", "mode"]).loc[("nce", "target"), "pearson_mean"] == 78.5
    gr = load_published("guided_table2").set_index(["method", "benchmark", "training"])["pearson"]
    assert gr[("gr_fm+parc", "vtab_15", "loo")] == 0.43 and gr[("lfc", "fine_grained_19", "")] == 0.55


def test_compare_and_adapters():
    pub = pd.DataFrame({"m": ["a", "b", "c"], "value": [1.0, 2.0, 3.0], "source": "paper"})
    rep = pd.DataFrame({"m": ["a", "b", "z"], "value": [1.5, 2.0, 9.0]})
    c = compare(rep, pub, ["m"])
    assert list(c.columns) == ["m", "reproduced", "published", "difference", "source", "reproduced_method", "note"]
    assert c["difference"].tolist()[:2] == [0.5, 0.0] and np.isnan(c["difference"].iloc[2])
    t1 = pd.DataFrame({"arch": ["resnet"], "init": ["scratch"], "imagenet": [78.54], "food101": [np.nan]})
    d = compare_deshpande_table1(t1).set_index(["arch", "init", "dataset"])["difference"]
    assert d[("resnet", "scratch", "imagenet")] == pytest.approx(1.0) and d.notna().sum() == 1
    modes = pd.DataFrame({"method": ["nce"], "shots": ["full"],
                          **{f"{m}_mean": [0.0] for m in ("source_and_arch", "architecture", "source", "target")}})
    assert compare_parc_table2(modes).set_index(["method", "mode"]).loc[("nce", "target"), "difference"] == -78.5


def test_published_outputs_only_on_the_paper_benchmark(tmp_path):
    assert not is_paper_benchmark(fx.tables()["zoo_accuracy"])
    flags = dict(multidomain=False, theta_f=False)
    assert not [o for o in outputs("artifacts", paper=False, **flags) if o.name.startswith("published_")]
    assert [o.name for o in outputs("artifacts", paper=True, **flags) if o.name.startswith("published_")] == [
        "published_deshpande_table1", "published_deshpande_table3", "published_parc_mean_pc", "published_parc_table2",
        "published_parc_table3", "published_guided_table2", "published_methods"]
    pub = load_published("deshpande_table1")
    pub = pub[pub["arch"] != "reported"]
    suffix = np.where(pub["init"] == "generalist", "-init", "")
    zoo = pd.DataFrame({"expert": pub["arch"] + "-" + pub["dataset"] + suffix,
                        "arch": pub["arch"], "source": pub["dataset"], "init": pub["init"],
                        "source_test_accuracy": pub["accuracy"], "source_images": 1})
    assert is_paper_benchmark(zoo)
    layout = Layout(tmp_path)
    render(OUTPUTS["table1_zoo_accuracy"], Context("resnet-imagenet", 3, fx.PROBE, tables={"zoo_accuracy": zoo}), layout)
    path = render(OUTPUTS["published_deshpande_table1"], Context("resnet-imagenet", 3, fx.PROBE, layout=layout), layout)
    diff = pd.read_csv(path)["difference"]
    assert len(diff) == 30 and (diff.abs() < 1e-9).all()


def test_summary_markdown(rendered):
    md = summary_markdown(fx.context(rendered))
    assert md.startswith("# Summary") and "## Mean Spearman correlation over targets" in md
    assert "| lfc |" in md and "zero regret (pool: all)" in md and "| logistic | 0.33 | 0.67 | 1.00 |" in md
    published = pd.DataFrame({"difference": [1.0, -3.0, np.nan]})
    assert "| parc_table2 | 2 | 2.00 |" in summary_markdown(fx.context(rendered, published_parc_table2=published))
    # without the evaluated tables the summary computes what it needs from the result tables
    assert "## Mean Spearman correlation over targets" in summary_markdown(fx.context())
