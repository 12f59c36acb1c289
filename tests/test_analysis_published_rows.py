"""Every published row has a reproduced counterpart (analysis.published): the mapping of a published
row to the variant its paper used (PARC's RSA / DDS rows: the variant with the probe network they
name), PARC's "+l" rows from the depth table, Guided Recommendation's per-score recommenders, and a
complete synthetic paper benchmark on which every Deshpande Table 1-3 and PARC Table 1-4 row gets a
value."""
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from analysis.context import Context
from analysis.outputs import outputs, render
from analysis.published import (PAPER_SOURCES, compare_deshpande_table3, compare_parc_mean_pc, compare_parc_table3,
                                load_published, reproduced_method)
from analysis.tables import load_table
from data_prep.rehearsal import unreproduced_rows
from analysis_fixtures import REPO
from pipeline.layout import Layout

PROBE = "per_class_25"
REFERENCE = "resnet-imagenet"
TARGETS = {"t1": {"full": 400, "20": 200, "5": 50}, "t2": {"full": 900, "20": 300, "5": 75}}
DRAWS = ("parc_draw0", "parc_draw1")


def paper_methods() -> dict[str, list[str] | None]:
    """Every method the paper benchmark computes (configs/benchmark/paper.yaml's methods and variants),
    with the probe sets a variant is limited to (None: all)."""
    selection = yaml.safe_load((REPO / "configs" / "benchmark" / "paper.yaml").read_text())["selection"]
    return {**dict.fromkeys(selection["methods"]),
            **{n: v.get("probe_sets") for n, v in (selection.get("variants") or {}).items()}}


def runs_on(sets: list[str] | None, probe: str) -> bool:
    return sets is None or probe in sets or ("parc_draws" in sets and probe in DRAWS)


def paper_tables(methods, seed: int = 0) -> dict[str, pd.DataFrame]:
    """A complete synthetic paper benchmark: the 30 experts of the paper's zoo (ResNet / DenseNet x 8
    sources, ImageNet-initialised ones), 2 targets at 3 shot settings, every method on the main
    probe set and on 2 PARC draws of the full setting, the multi-domain expert's accuracies."""
    rng = np.random.default_rng(seed)
    experts = [(f"{a}-{s}{suffix}", a, s, init) for a in ("resnet", "densenet") for s in PAPER_SOURCES
               for suffix, init in (("", "scratch"), ("-init", "generalist")) if not (s == "imagenet" and suffix)]
    zoo = pd.DataFrame([{"expert": e, "arch": a, "source": s, "init": init,
                         "source_test_accuracy": rng.uniform(50, 90), "source_images": int(rng.integers(10**4, 10**6)),
                         "parameters": 44_500_000 if a == "resnet" else 14_100_000,
                         "depth": 101 if a == "resnet" else 169, "seconds": 3600.0} for e, a, s, init in experts])
    keys = [(e, t, shots) for e, *_ in experts for t in TARGETS for shots in TARGETS[t]]
    finetune = pd.DataFrame([{"expert": e, "target": t, "shots": s, "lr": 0.01, "test_accuracy": rng.uniform(30, 90),
                              "seconds": rng.uniform(50, 100)} for e, t, s in keys])
    scores = pd.DataFrame([{"expert": e, "target": t, "shots": s, "probe": probe, "method": m,
                            "score": rng.normal(), "seconds": 0.01, "feature_seconds": 1.0}
                           for m, sets in methods.items() for e, t, s in keys
                           for probe in ((PROBE, *DRAWS) if s == "full" else (PROBE,)) if runs_on(sets, probe)])
    multidomain = pd.DataFrame([{"variant": v, "source": s, "source_test_accuracy": rng.uniform(40, 90),
                                 "source_images": 10**5, "seconds": 1.0}
                                for v in ("shared", "multi_bn", "adapter") for s in PAPER_SOURCES])
    targets = pd.DataFrame([{"target": t, "shots": s, "images": n, "classes": 10 + i}
                            for i, t in enumerate(TARGETS) for s, n in TARGETS[t].items()])
    return {"zoo_accuracy": zoo, "finetune": finetune, "scores": scores, "multidomain_accuracy": multidomain,
            "targets": targets}


@pytest.fixture(scope="module")
def paper_results(tmp_path_factory):
    """A results folder holding the published_* tables of the complete synthetic paper benchmark,
    rendered by the registry's renderers (every output they read, in the registry's order)."""
    out = tmp_path_factory.mktemp("paper")
    active = {o.name: o for o in outputs(multidomain=True, theta_f=False, paper=True) if o.step != "tables"}
    todo, stack = set(), [n for n in active if n.startswith("published_")]
    while stack:
        name = stack.pop()
        if name in active and name not in todo:
            todo.add(name)
            stack += list(active[name].reads)
    ctx = Context(REFERENCE, 3, PROBE, layout=Layout(out), tables=paper_tables(paper_methods()))
    for name, o in active.items():
        if name in todo:
            render(o, ctx, Layout(out))
    return out


@pytest.fixture(scope="module")
def published(paper_results):
    """{name: the published_<name> table} of `paper_results`."""
    return {p.stem.removeprefix("published_"): load_table(p) for p in (paper_results / "tables").glob("published_*.csv")}


def test_every_published_row_has_a_reproduced_value(published):
    """Deshpande Tables 1-3 and PARC Tables 1-4 (with Fig. 2b): no row without a reproduced value, PARC's
    AlexNet and ResNet-50 probe-network rows included."""
    names = ["deshpande_table1", "deshpande_table2", "deshpande_table3", "parc_mean_pc", "parc_table2", "parc_table3"]
    empty = []
    for name in names:
        df = published[name]
        pub = load_published(name)
        pub = pub[pub["arch"] != "reported"] if name == "deshpande_table1" else pub
        assert len(df) == len(pub) * (2 if name == "parc_table3" else 1), name  # Table 3: original and depth
        method = df["method"].fillna("") if "method" in df else pd.Series("", index=df.index)
        empty += [(name, m) for m in method[df["reproduced"].isna()]]
    assert empty == []
    # Guided Recommendation (a reference point): the scores and every recommender, per-score ones included
    gr = published["guided_table2"]
    assert gr["reproduced"].notna().all() and {"gr_linear+lfc", "gr_fm+logme", "gr_fm+parc"} <= set(gr["method"])


def test_the_rehearsals_check_finds_no_row_without_a_value_and_names_a_missing_one(paper_results, tmp_path):
    """`make rehearsal` fails when a Deshpande / PARC row has no reproduced value (data_prep.rehearsal):
    on the complete benchmark none; with PARC's AlexNet DDS variant left out, its row, named."""
    assert unreproduced_rows(paper_results) == []
    shutil.copytree(paper_results, tmp_path / "r")
    table = tmp_path / "r" / "tables" / "published_parc_mean_pc.csv"
    df = pd.read_csv(table)
    df.loc[df["method"] == "dds_alexnet_probe", "reproduced"] = np.nan
    df.to_csv(table, index=False)
    (tmp_path / "r" / "tables" / "published_deshpande_table2.csv").unlink()
    missing = unreproduced_rows(tmp_path / "r")
    assert missing[0].startswith("deshpande_table2: no table") and len(missing) == 2
    assert missing[1].startswith("parc_mean_pc: method=dds_alexnet_probe")


def test_rows_compare_with_the_variant_their_paper_used(published):
    """published_methods: PARC's rows with the dbolya/parc variants (ref_*), its "+l" rows with the
    depth-calibrated reference variant, DDS and Deshpande's scores as default, Deshpande's Domain
    Similarity with its notebook's variant; PARC's RSA / DDS rows with the variant reading the probe
    network they name (ResNet-50, AlexNet), named in the note."""
    m = published["methods"].set_index(["table", "method"])
    used = m["reproduced_method"].fillna("")
    assert used[("parc_mean_pc", "knn_loo")] == "ref_knn_loo" and used[("parc_mean_pc", "heuristic")] == "ref_heuristic"
    assert used[("parc_mean_pc", "knn_loo+l")] == "ref_knn_loo+l"
    assert used[("parc_mean_pc", "parc_pca32+l")] == "ref_parc_pca32+l"
    assert used[("parc_table3", "hscore")] == "ref_hscore" and used[("parc_table2", "nce")] == "ref_nce"
    assert used[("deshpande_table3", "domain_similarity")] == "ref_domain_similarity"
    assert used[("deshpande_table3", "leep")] == "leep" and used[("guided_table2", "parc")] == "parc"
    resnet50 = {("parc_mean_pc", "rsa"): "ref_rsa_resnet50_probe", ("parc_mean_pc", "dds"): "dds_resnet50_probe",
                ("parc_mean_pc", "rsa_pca32"): "ref_rsa_resnet50_probe_pca32",
                ("parc_mean_pc", "rsa_pca32+l"): "ref_rsa_resnet50_probe_pca32+l",
                ("parc_mean_pc", "rsa_pca64"): "ref_rsa_resnet50_probe_pca64",
                ("parc_mean_pc", "dds_pca64"): "dds_resnet50_probe_pca64",
                ("parc_table2", "rsa"): "ref_rsa_resnet50_probe", ("parc_table2", "dds"): "dds_resnet50_probe",
                ("parc_table3", "rsa"): "ref_rsa_resnet50_probe", ("parc_table3", "dds"): "dds_resnet50_probe"}
    alexnet = {("parc_mean_pc", "rsa_alexnet_probe"): "ref_rsa_alexnet_probe",
               ("parc_mean_pc", "dds_alexnet_probe"): "dds_alexnet_probe"}
    for row, variant in {**resnet50, **alexnet}.items():
        assert used[row] == variant and m.loc[row, "reproduced_rows"] == m.loc[row, "rows"] > 0, row
        assert ("ResNet-50" if row in resnet50 else "AlexNet") in m.loc[row, "note"], row
    assert "reference code: ref_rsa_alexnet_probe" in m.loc[("parc_mean_pc", "rsa_alexnet_probe"), "note"]
    notes = " ".join(m["note"].fillna(""))
    assert "stands for" not in notes and "not reproduced" not in notes and "no reproduced value" not in notes


def test_mapping_by_hand():
    """A published row takes the reference variant where the benchmark has one, else the default;
    "+l" rows their base's; Deshpande's LEEP stays default while PARC's takes ref_leep."""
    assert reproduced_method("parc", "leep", {"leep", "ref_leep"}) == "ref_leep"
    assert reproduced_method("deshpande", "leep", {"leep", "ref_leep"}) == "leep"
    assert reproduced_method("parc", "logistic", {"logistic"}) == "logistic"  # no reference variant: default
    # PARC's RSA / DDS rows: the variant with the probe network they name, "ref_" where PARC's code made them
    assert reproduced_method("parc", "rsa_pca32+l", {"ref_rsa_resnet50_probe_pca32+l"}) == \
        "ref_rsa_resnet50_probe_pca32+l"
    assert reproduced_method("parc", "rsa", {"rsa", "ref_rsa", "ref_rsa_resnet50_probe"}) == "ref_rsa_resnet50_probe"
    assert reproduced_method("parc", "rsa", {"rsa"}) == "rsa_resnet50_probe"  # absent: no value, not ResNet-18's
    assert reproduced_method("parc", "dds", {"dds", "ref_dds_resnet50_probe"}) == "dds_resnet50_probe"  # DDS: default
    assert reproduced_method("parc", "rsa_alexnet_probe", {"ref_rsa_alexnet_probe"}) == "ref_rsa_alexnet_probe"
    assert reproduced_method("parc", "dds_alexnet_probe", {"dds_alexnet_probe"}) == "dds_alexnet_probe"
    assert reproduced_method("deshpande", "rsa", {"rsa", "ref_rsa_resnet50_probe"}) == "rsa"  # App. C's ResNet-18
    t1 = pd.DataFrame({"method": ["knn_loo", "ref_knn_loo", "ref_parc_pca32"], "shots": "full",
                       "pearson_mean": [10.0, 20.0, 30.0]})
    depth = pd.DataFrame({"method": ["knn_loo", "ref_knn_loo", "ref_parc_pca32", "ref_rsa_resnet50_probe"], "shots": "full",
                          "original_mean": [10.0, 20.0, 30.0, 1.0], "depth_mean": [40.0, 50.0, 60.0, 2.0]})
    pc = compare_parc_mean_pc(t1, depth).set_index("method")
    assert pc.loc["knn_loo", "reproduced"] == 20 and pc.loc["knn_loo", "difference"] == pytest.approx(20 - 60.8)
    assert pc.loc["knn_loo+l", "reproduced"] == 50 and pc.loc["parc_pca32+l", "reproduced"] == 60
    assert pc.loc["parc_pca32", "reproduced"] == 30 and pc.loc["parc_pca32", "reproduced_method"] == "ref_parc_pca32"
    assert np.isnan(pc.loc["logistic+l", "reproduced"])  # neither logistic nor ref_logistic was computed
    t3 = compare_parc_table3(depth).set_index(["method", "calibration"])
    assert t3.loc[("knn_loo", "depth"), "reproduced"] == 50 and t3.loc[("rsa", "original"), "reproduced"] == 1
    assert "ResNet-50" in t3.loc[("rsa", "original"), "note"] and np.isnan(t3.loc[("dds", "original"), "reproduced"])
    cost = pd.DataFrame({"shots": "full", "item": "score", "method": ["leep", "ref_leep", "domain_similarity",
                                                                      "ref_domain_similarity"],
                         "multiple": [1.0, 2.0, 3.0, 4.0]})
    d3 = compare_deshpande_table3(cost).set_index(["shots", "item", "method"])["reproduced"]
    assert d3[("full", "score", "leep")] == 1 and d3[("full", "score", "domain_similarity")] == 4


def test_gr_table2_has_the_per_score_recommenders(tmp_path):
    """Guided Recommendation Table 2's "d, m, S_X" rows: each score alone as the extra feature."""
    import analysis_fixtures as fx
    fx.render(tmp_path, ["gr_table2"], scores=pd.concat([fx.tables()["scores"], fx.tables()["scores"].query(
        "method == 'knn_loo'").assign(method="logme")]))
    gr = fx.read(tmp_path, "gr_table2").set_index("method")
    per_score = {f"gr_{m}+{s}" for m in ("linear", "fm") for s in ("lfc", "logme")}  # Table 2's (no parc here)
    assert per_score <= set(gr.index) and not {"gr_linear+random", "gr_fm+knn_loo", "gr_fm+parc"} & set(gr.index)
    assert gr.loc["gr_fm+lfc", "features"] == "d, m, lfc" and gr.loc["gr_linear+logme", "model"] == "LR"
    assert np.isfinite(gr.loc[sorted(per_score), "full"]).all()
    assert {"gr_linear", "gr_fm", "gr_linear+scores", "gr_fm+scores"} <= set(gr.index)


def test_score_failures_and_data_notes(tmp_path):
    """step=tables: score_failures.csv from the records' failures, data_notes.csv from each target's
    stats.json; summary.md names every failed method and every note."""
    import json

    import analysis_fixtures as fx
    from analysis.published import summary_markdown
    from analysis.tables import DATA_NOTE_COLUMNS, FAILURE_COLUMNS, data_notes_table, score_failures_table

    failure = {"expert": "resnet-a", "target": "t1", "shots": "5", "probe": PROBE, "method": "gbc",
               "error": "ValueError: singular covariance"}
    (tmp_path / "a.json").write_text(json.dumps({"rows": [], "failures": [failure]}))
    (tmp_path / "b.json").write_text(json.dumps({"rows": []}))  # a record from before failures were recorded
    failures = score_failures_table([tmp_path / "a.json", tmp_path / "b.json"])
    assert list(failures.columns) == FAILURE_COLUMNS and failures.to_dict("records") == [failure]
    assert list(score_failures_table([tmp_path / "b.json"]).columns) == FAILURE_COLUMNS
    target, plain = tmp_path / "cub200", tmp_path / "dtd"
    target.mkdir(), plain.mkdir()
    (target / "stats.json").write_text(json.dumps({
        "short_classes": {"20": [{"class": "tern", "images": 12, "shots": 20}]},
        "dropped": {"files": [{"path": "raw/tern/x.jpg", "reason": "unreadable image", "detail": "truncated",
                               "class": "tern"}],
                    "classes": [{"class": "gull", "reason": "no images"}]}}))
    (plain / "stats.json").write_text(json.dumps({"name": "dtd"}))
    notes = data_notes_table([target, plain, tmp_path / "absent"])
    assert list(notes.columns) == DATA_NOTE_COLUMNS and notes["dataset"].unique().tolist() == ["cub200"]
    by_kind = notes.set_index("kind")
    assert by_kind.loc["short_class", ["shots", "class", "images"]].tolist() == ["20", "tern", 12]
    assert by_kind.loc["dropped_file", "reason"] == "unreadable image (truncated)"
    assert by_kind.loc["dropped_file", "path"] == "raw/tern/x.jpg" and by_kind.loc["dropped_class", "class"] == "gull"
    md = summary_markdown(fx.context(score_failures=failures, data_notes=notes))
    assert "## Failed scores" in md and "| resnet-a | t1 | 5 | per_class_25 | gbc | ValueError: singular covariance |" in md
    assert "## Data notes" in md and "| cub200 | short_class | 20 | tern | 12 |" in md and "gull" in md
    empty = summary_markdown(fx.context(score_failures=failures.iloc[:0], data_notes=notes.iloc[:0]))
    assert "## Failed scores" not in empty and "## Data notes" not in empty
