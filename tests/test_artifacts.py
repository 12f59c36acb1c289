"""Tests of the paper artifacts (analysis.artifacts) and the published numbers (analysis.published)
on small synthetic tables with hand-computed expectations."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.artifacts import ARTIFACTS, artifact_names, artifact_path, mean_pearson, p_zero_regret, render_all
from analysis.protocols import parc_protocol
from analysis.published import (PUBLISHED_DIR, compare, compare_deshpande_table1, compare_parc_table2,
                                is_paper_benchmark, load_published, summary_markdown, write_comparisons)
from analysis.tables import AnalysisError, split_zoos

REPO = Path(__file__).resolve().parents[1]
GEN = "resnet-gen"
TARGETS = ("t1", "t2", "t3")
# best fine-tuned accuracy on the full targets; best: t1 resnet-a-init, t2 and t3 resnet-b
ACC = {"resnet-gen": (70, 60, 50), "densenet-gen": (68, 62, 48), "resnet-a": (80, 55, 45),
       "resnet-a-init": (85, 58, 52), "densenet-a": (75, 65, 40), "resnet-b": (60, 70, 55)}
ACC_MD = {"resnet-gen-md": (72, 61, 49), "resnet-a-md": (78, 59, 51), "resnet-b-md": (65, 66, 53)}
# zoo: expert -> (source_test_accuracy, source_images, parameters, depth); task-agnostic top-1: resnet-a-init
ZOO = {"resnet-gen": (60, 1000, 100, 10), "densenet-gen": (62, 1000, 80, 20), "resnet-a": (70, 100, 100, 10),
       "resnet-a-init": (75, 100, 100, 10), "densenet-a": (72, 100, 80, 20), "resnet-b": (50, 500, 100, 10),
       "resnet-gen-md": (55, 1000, 100, 10), "resnet-a-md": (65, 100, 100, 10), "resnet-b-md": (45, 500, 100, 10)}
# logistic: t1 picks the best first; t2 the best second; t3 the best third
LOGISTIC = {"t1": ["resnet-a-init", "resnet-a", "densenet-a", "resnet-b", "densenet-gen", "resnet-gen"],
            "t2": ["densenet-a", "resnet-b", "resnet-a-init", "resnet-a", "densenet-gen", "resnet-gen"],
            "t3": ["resnet-a-init", "densenet-gen", "resnet-b", "resnet-a", "densenet-a", "resnet-gen"]}


def _acc(expert, target, shots):
    acc = {**ACC, **ACC_MD}[expert][TARGETS.index(target)]
    return acc if shots == "full" else acc - (5 if expert == "densenet-gen" else 20)


def _ctx():
    from analysis.tables import parse_expert
    zoo = pd.DataFrame([{"expert": e, **parse_expert(e), "source_test_accuracy": a, "source_images": n,
                         "parameters": p, "depth": d, "seconds": 1.0} for e, (a, n, p, d) in ZOO.items()])
    grid = [(e, t, s) for e in ACC for t in TARGETS for s in ("full", "5")]
    grid += [(e, t, "full") for e in ACC_MD for t in TARGETS]
    finetune = pd.DataFrame([{"expert": e, "target": t, "shots": s, "lr": lr, "test_accuracy": _acc(e, t, s) - drop,
                              "seconds": 10.0} for e, t, s in grid for lr, drop in ((0.01, 0), (0.001, 10))])
    rows = []

    def add(method, probe, fn, shots=("full", "5"), experts=ACC):
        rows.extend({"expert": e, "target": t, "shots": s, "probe": probe, "method": method,
                     "score": float(fn(e, t, s)), "seconds": 0.1, "feature_seconds": 1.0}
                    for e in experts for t in TARGETS for s in shots)
    add("lfc", "default", lambda e, t, s: -_acc(e, t, s))  # the worst ranking
    add("knn_loo", "default", _acc)
    add("logistic", "default", lambda e, t, s: -LOGISTIC[t].index(e))
    add("random", "default", lambda e, t, s: len(e) % 7)
    for probe in ("per_class_50", "all"):
        add("lfc", probe, lambda e, t, s: _acc(e, t, "full"), shots=("full",))
    for d in (0, 1):
        draw = f"parc_draw{d}"
        # parc: Pearson 100 on every target of draw 0; -100 on t3 of draw 1
        add("parc", draw, lambda e, t, s: _acc(e, t, s) * (-1 if d == 1 and t == "t3" else 1), shots=("full",))
        add("parc_pca8", draw, _acc, shots=("full",))
        add("lfc", draw, lambda e, t, s: -_acc(e, t, s), shots=("full",))
        add("random", draw, lambda e, t, s: len(e) % 7, shots=("full",))
    add("lfc", "default", _acc, shots=("full",), experts=ACC_MD)  # the domains: a perfect ranking
    add("random", "default", lambda e, t, s: 0.0, shots=("full",), experts=ACC_MD)
    md = pd.DataFrame([{"variant": v, "source": s, "source_test_accuracy": acc + i, "source_images": n, "seconds": 1.0}
                       for v, acc in (("shared", 40.0), ("multi_bn", 60.0), ("adapter", 50.0))
                       for i, (s, n) in enumerate((("a", 100), ("b", 500), ("gen", 1000)))])
    return {"zoo": zoo, "finetune": finetune, "scores": pd.DataFrame(rows), "multidomain": md,
            "generalist": GEN, "top_k": 3}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    ctx = _ctx()
    return ctx, out, render_all(ctx, out, multidomain=True)


def _csv(out, name):
    path = artifact_path(out, name)
    return pd.read_csv(path.with_suffix(".csv"), dtype={"shots": str})


def test_registry_and_names():
    md_only = {"table2_multidomain", "fig3_multidomain_finetune", "fig5_multidomain_selection"}
    assert {n for n, a in ARTIFACTS.items() if a.multidomain} == md_only
    assert set(artifact_names(True)) == set(ARTIFACTS) and not md_only & set(artifact_names(False))
    assert all(a.kind in ("figure", "table") and a.needs <= {"zoo", "finetune", "scores", "multidomain"}
               for a in ARTIFACTS.values())
    assert artifact_path("R", "fig1_error_vs_shots") == Path("R/figures/fig1_error_vs_shots.png")
    assert artifact_path("R", "parc_table1") == Path("R/tables/parc_table1.csv")
    # cheap to import for the Snakefile: no scipy, no matplotlib
    code = "import sys, analysis.artifacts; assert not {'scipy', 'matplotlib'} & set(sys.modules), sys.modules.keys()"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_every_artifact_written(rendered):
    _, out, paths = rendered
    assert [p.stem for p in paths] == artifact_names(True)
    for p in paths:
        assert p.is_file() and p.stat().st_size > 0
        if p.suffix == ".png":
            assert len(pd.read_csv(p.with_suffix(".csv"))) > 0


def test_render_all_names_missing_inputs(tmp_path):
    ctx = {**_ctx(), "multidomain": None}
    with pytest.raises(AnalysisError, match="table2_multidomain.*multidomain"):
        render_all(ctx, tmp_path, multidomain=True)
    assert [p.stem for p in render_all(ctx, tmp_path, multidomain=False)] == artifact_names(False)


def test_table1_and_table2(rendered):
    _, out, _ = rendered
    t1 = _csv(out, "table1_zoo_accuracy")
    assert list(t1.columns) == ["arch", "init", "a", "b", "gen"]  # sources by increasing size
    assert t1[["arch", "init"]].values.tolist() == [["densenet", "scratch"], ["resnet", "scratch"],
                                                    ["resnet", "generalist"]]
    assert t1.iloc[0, 2] == 72 and np.isnan(t1.iloc[0, 3]) and t1.iloc[0, 4] == 62
    assert t1.iloc[1, 2:].tolist() == [70, 50, 60]
    assert t1.iloc[2, 2] == 75 and t1.iloc[2, 3:].isna().all()
    t2 = _csv(out, "table2_multidomain")
    assert list(t2.columns) == ["source", "single_domain", "shared", "multi_bn", "adapter"]
    # single domain: the -init expert where it exists (a), else the scratch expert
    assert t2.values.tolist() == [["a", 75, 40, 60, 50], ["b", 50, 41, 61, 51], ["gen", 60, 42, 62, 52]]


def test_table3_compute(rendered):
    _, out, _ = rendered
    t3 = _csv(out, "table3_compute").set_index("shots")
    assert list(t3.index) == ["full", "5"] and t3.columns[0] == "brute_force"
    assert t3.loc["full", "brute_force"] == pytest.approx(6.0)  # 6 experts x 20 s / the generalist's 20 s
    assert t3.loc["full", "top3_finetune:lfc"] == pytest.approx(3.0)
    assert t3.loc["full", "score:lfc"] == pytest.approx(6 * 1.1 / 20)


def test_fig1_best_zoo_vs_generalist(rendered):
    _, out, _ = rendered
    d = _csv(out, "fig1_error_vs_shots").set_index(["target", "shots", "series"])
    # full: zoo best (generalist-source experts left out) 85 / 70 / 55, generalist 70 / 60 / 50
    assert d.loc[("t1", "full", "zoo_best"), "expert"] == "resnet-a-init"
    assert d.loc[("mean", "full", "zoo_best"), "test_error"] == pytest.approx(30.0)
    assert d.loc[("mean", "full", "generalist"), "test_error"] == pytest.approx(40.0)
    # 5-shot: densenet-gen (57 on t2) would win t2 but is a generalist-source expert
    assert d.loc[("t2", "5", "zoo_best"), "expert"] == "resnet-b"
    assert d.loc[("mean", "5", "zoo_best"), "test_error"] == pytest.approx(50.0)
    assert d.loc[("mean", "5", "generalist"), "n_targets"] == 3


def test_fig3_and_fig5_multidomain(rendered):
    _, out, _ = rendered
    f3 = _csv(out, "fig3_multidomain_finetune").set_index(["expert", "target"])
    assert set(f3["group"]) == {"generalist", "generalist_md", "domain", "single_domain"}
    assert "densenet-a" not in f3.index.get_level_values(0)  # only the multi-domain expert's architecture
    assert f3.loc[("resnet-gen-md", "t1"), "beats_generalist"] and f3.loc[("resnet-a-md", "t1"), "beats_generalist"]
    assert not f3.loc[("resnet-b-md", "t1"), "beats_generalist"]
    assert not f3.loc[("resnet-a-init", "t1"), "beats_generalist"]  # only domains are flagged
    f5 = _csv(out, "fig5_multidomain_selection").set_index(["selection", "target", "column"])
    # lfc ranks the domains perfectly: top-1 gain = best domain - the generalist's domain
    assert [f5.loc[("top-1", t, "lfc"), "gain"] for t in TARGETS] == [6, 5, 4]
    assert f5.loc[("top-3", "t1", "best gain"), "gain"] == 6 and f5.loc[("top-3", "t1", "worst gain"), "gain"] == -7


def test_fig7_probe_size(rendered):
    _, out, _ = rendered
    f7 = _csv(out, "fig7_probe_size")
    assert set(f7["shots"]) == {"full"}  # only the shot setting with larger probe sets
    lfc = f7[f7["method"] == "lfc"].set_index("probe")["top3_gain"]
    # default probe: lfc picks the 3 worst (gains 0, 0, -2); the larger probes rank perfectly
    assert lfc["default"] == pytest.approx(-2 / 3)
    assert lfc["per_class_50"] == pytest.approx(10.0) and lfc["all"] == pytest.approx(10.0)


def test_parc_tables(rendered):
    ctx, out, _ = rendered
    t1 = _csv(out, "parc_table1").set_index("method")
    assert t1.loc["parc", "pearson_mean"] == pytest.approx(200 / 3)  # draws: 100 and (100 + 100 - 100) / 3
    assert t1.loc["parc", "pearson_std"] == pytest.approx(100 / 3) and t1.loc["parc", "n_draws"] == 2
    assert t1.loc["lfc", "pearson_mean"] == pytest.approx(-100) and t1.loc["random", "pearson_mean"] == 0
    assert t1.loc["parc", "time_ms"] == pytest.approx(100)
    assert t1.loc["parc", "time_with_features_ms"] == pytest.approx(1100)
    # the "source_and_arch" mode is PARC's protocol
    ft, sc = split_zoos(ctx["finetune"])[0], split_zoos(ctx["scores"])[0]
    ref = parc_protocol(ft, sc).set_index("method")
    t2 = _csv(out, "parc_table2_modes").set_index("method")
    assert t2["source_and_arch_mean"].to_dict() == pytest.approx(ref["pearson_mean"].to_dict())
    assert t2.loc["parc_pca8", "architecture_mean"] == pytest.approx(100)
    # across targets with the expert fixed: scores = accuracies on both draws
    assert t2.loc["parc_pca8", "target_mean"] == pytest.approx(100)
    assert t2.loc["lfc", "target_mean"] == pytest.approx(-100)
    by_hand = mean_pearson(ft, sc, "source").set_index("method")
    assert t2.loc["parc", "source_mean"] == pytest.approx(by_hand.loc["parc", "pearson_mean"])
    t3 = _csv(out, "parc_table3_depth").set_index("method")
    assert "random" not in t3.index and t3.loc["lfc", "original_mean"] == pytest.approx(-100)
    assert np.isfinite(t3["depth_mean"]).all()
    pca = _csv(out, "parc_fig2_pca")
    assert pca[["base", "pca_dim"]].values.tolist() == [["parc", "8"], ["parc", "full"]]
    assert pca["pearson_mean"].tolist() == pytest.approx([100, 200 / 3])


def test_which_model_regret_and_zero_regret(rendered):
    _, out, _ = rendered
    reg = _csv(out, "wm_regret_b12")
    assert set(reg["strategy"]) == {"task_agnostic", "logistic", "knn_loo", "hybrid_logistic", "hybrid_knn_loo"}
    assert set(reg["budget"]) == {1, 2} and set(reg["pool"]) == {"all"}
    r = reg[(reg["shots"] == "full")].set_index(["strategy", "target", "budget"])["rel_regret"]
    assert r[("logistic", "t2", 1)] == pytest.approx(5 / 35)  # (70 - 65) / (100 - 65)
    assert r[("logistic", "t2", 2)] == 0 and r[("knn_loo", "t3", 1)] == 0
    z = _csv(out, "wm_zero_regret")
    z = z[z["shots"] == "full"].set_index(["strategy", "budget"])["zero_regret_fraction"]
    assert [z[("logistic", b)] for b in (1, 2, 3)] == pytest.approx([1 / 3, 2 / 3, 1])
    assert [z[("hybrid_logistic", b)] for b in (1, 2, 3)] == pytest.approx([1 / 3, 1 / 3, 1])
    assert [z[("task_agnostic", b)] for b in (1, 2)] == pytest.approx([1 / 3, 1 / 3])
    assert z[("random", 1)] == pytest.approx(1 / 6) and z[("random", 6)] == 1
    assert z[("knn_loo", 1)] == 1


def test_pools_option(tmp_path):
    from analysis.artifacts import wm_zero_regret
    from analysis.strategies import arch_pool
    ctx = {**_ctx(), "pools": {"all": None, "resnet": arch_pool("resnet")}}
    z = wm_zero_regret(ctx, tmp_path / "z.png")
    assert set(z["pool"]) == {"all", "resnet"}
    res = z[(z["pool"] == "resnet") & (z["shots"] == "full")].set_index(["strategy", "budget"])["zero_regret_fraction"]
    assert res[("random", 1)] == pytest.approx(1 / 4)  # 4 resnet experts, one best per target


def test_p_zero_regret_ties():
    assert p_zero_regret([3, 2, 1], [1, 5, 2], 1) == 0 and p_zero_regret([3, 2, 1], [1, 5, 2], 2) == 1
    assert p_zero_regret([0, 0, 0, 0], [1, 2, 3, 4], 2) == pytest.approx(1 / 2)  # 1 - C(3,2)/C(4,2)
    assert p_zero_regret([1, 0, 0, 0], [4, 2, 3, 4], 1) == 1


def test_published_tables_parse():
    names = sorted(p.stem for p in PUBLISHED_DIR.glob("*.csv"))
    assert names == ["deshpande_table1", "deshpande_table2", "deshpande_table3", "guided_table2",
                     "parc_mean_pc", "parc_table2", "parc_table3"]
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
    assert list(c.columns) == ["m", "reproduced", "published", "difference", "source"]
    assert c["difference"].tolist()[:2] == [0.5, 0.0] and np.isnan(c["difference"].iloc[2])
    t1 = pd.DataFrame({"arch": ["resnet"], "init": ["scratch"], "imagenet": [78.54], "food101": [np.nan]})
    d = compare_deshpande_table1(t1).set_index(["arch", "init", "dataset"])["difference"]
    assert d[("resnet", "scratch", "imagenet")] == pytest.approx(1.0) and d.notna().sum() == 1
    modes = pd.DataFrame({"method": ["nce"], "shots": ["full"],
                          **{f"{m}_mean": [0.0] for m in ("source_and_arch", "architecture", "source", "target")}})
    assert compare_parc_table2(modes).set_index(["method", "mode"]).loc[("nce", "target"), "difference"] == -78.5


def test_write_comparisons_only_on_paper_benchmark(tmp_path):
    ctx = _ctx()
    assert not is_paper_benchmark(ctx["zoo"]) and write_comparisons(ctx, tmp_path / "tables") == []
    from analysis.artifacts import table1_zoo_accuracy
    pub = load_published("deshpande_table1")
    pub = pub[pub["arch"] != "reported"]
    suffix = np.where(pub["init"] == "generalist", "-init", "")
    zoo = pd.DataFrame({"expert": pub["arch"] + "-" + pub["dataset"] + suffix,
                        "arch": pub["arch"], "source": pub["dataset"], "init": pub["init"],
                        "source_test_accuracy": pub["accuracy"], "source_images": 1})
    assert is_paper_benchmark(zoo)
    table1_zoo_accuracy({"zoo": zoo}, tmp_path / "tables" / "table1_zoo_accuracy.csv")
    paths = write_comparisons({"zoo": zoo}, tmp_path / "tables")
    assert [p.name for p in paths] == ["published_deshpande_table1.csv"]
    diff = pd.read_csv(paths[0])["difference"]
    assert len(diff) == 30 and (diff.abs() < 1e-9).all()


def test_summary_markdown(rendered, tmp_path):
    ctx, out, _ = rendered
    md = summary_markdown(ctx, out / "tables")
    assert md.startswith("# Summary") and "## Mean Spearman correlation over targets" in md
    assert "| lfc |" in md and "zero regret (pool: all)" in md and "| logistic | 0.33 | 0.67 | 1.00 |" in md
    pd.DataFrame({"difference": [1.0, -3.0, np.nan]}).to_csv(tmp_path / "published_x.csv", index=False)
    assert "| x | 2 | 2.00 |" in summary_markdown(ctx, tmp_path)
