"""Guided Recommendation (analysis.guided, analysis.guided_models; Li et al., CVPR 2023) on synthetic
result tables: leave-one-target-out isolation, what LR and the FM can learn, determinism,
the scores-table output format and the errors on bad input."""
import numpy as np
import pandas as pd
import pytest

from analysis.guided import (dataset_features, design_matrix, describe_method, model_features, recommend, table2,
                             training_labels)
from analysis.guided_models import FactorizationMachine, fm_recommender, linear_recommender
from analysis.protocols import evaluate_selection
from analysis.tables import SCORE_COLUMNS, AnalysisError

PROBE = "per_class_25"  # the main probe set
FAST = {"fm": {"steps": 300}}
KEY_COLS = ["expert", "target", "shots", "method"]  # enough for the isolation / format tests, which do not need a good fit


def synth(kind="additive", n_targets=6, seed=0, noise=0.5, with_scores=False):
    """Synthetic zoo / targets / fine-tune (/ scores) tables.

    additive: accuracy = target offset + 5 z(log parameters) + 4 [init from the generalist];
    interaction: accuracy = target offset + 8 z(log images) z(log parameters): large models win
    on large datasets and lose on small ones (the paper's example, Sec. 2.2), a dataset x model
    product that a linear model in [d, m] cannot represent.
    """
    rng = np.random.default_rng(seed)
    zoo = []
    for arch, base, depth in (("resnet", 20e6, 50), ("densenet", 8e6, 121), ("vit", 80e6, 12)):
        for src in ("generalist", "mosaic", "lattice"):
            for init in (("scratch",) if src == "generalist" else ("scratch", "generalist")):
                zoo.append({"expert": f"{arch}-{src}" + ("-init" if init == "generalist" else ""), "arch": arch,
                            "source": src, "init": init, "source_test_accuracy": 80.0,
                            "source_images": 10000 if src == "generalist" else 2000,
                            "parameters": base * rng.uniform(0.3, 3), "depth": depth, "seconds": 1.0})
    zoo = pd.DataFrame(zoo)
    targets = []
    for i in range(n_targets):
        full, classes = int(rng.uniform(200, 20000)), int(rng.integers(5, 100))
        for shots, images in (("full", full), ("20", 20 * classes), ("5", 5 * classes)):
            targets.append({"target": f"t{i}", "shots": shots, "images": images, "classes": classes,
                            "difficulty": rng.uniform(20, 90)})
    targets = pd.DataFrame(targets)
    log_p = np.log(zoo.set_index("expert")["parameters"])
    z_p = (log_p - log_p.mean()) / log_p.std()
    log_i = np.log(targets["images"])
    z_i = (log_i - log_i.mean()) / log_i.std()
    ft, scores = [], []
    for (_, t), zi in zip(targets.iterrows(), z_i):
        offset = rng.normal(0, 10)
        for e in zoo["expert"]:
            signal = 5 * z_p[e] + 4 * e.endswith("-init") if kind == "additive" else 8 * zi * z_p[e]
            acc = 60 + offset + signal + rng.normal(0, noise)
            ft += [{"expert": e, "target": t["target"], "shots": t["shots"], "lr": lr, "test_accuracy": acc - drop,
                    "seconds": 1.0} for lr, drop in ((0.01, 1.0), (0.001, 0.0))]
            scores += [{"expert": e, "target": t["target"], "shots": t["shots"], "probe": PROBE, "method": m,
                        "score": s, "seconds": 0.1, "feature_seconds": 1.0}
                       for m, s in (("oracle_noisy", acc + rng.normal(0, 2)), ("noise", rng.normal()),
                                    ("random", 0.0))]
    out = (zoo, pd.DataFrame(ft), targets)
    return (*out, pd.DataFrame(scores)) if with_scores else out


def mean_pearson(pred, ft, method):
    t = table2(pred, ft, methods=[method], probe=PROBE)
    return float(t.iloc[0, 3:].mean())


# ----------------------------------------------------------------------------- (a) isolation

def test_leave_one_target_out_never_sees_the_held_out_target():
    zoo, ft, targets, scores = synth(n_targets=4, with_scores=True)
    base = recommend(zoo, ft, scores, targets, probe=PROBE, score_methods=["oracle_noisy"], model_options=FAST)
    rng = np.random.default_rng(1)
    for target in sorted(targets["target"].unique()):
        changed = ft.copy()
        held = changed["target"] == target
        changed.loc[held, "test_accuracy"] = rng.uniform(0, 100, held.sum())  # arbitrary, not affine
        pred = recommend(zoo, changed, scores, targets, probe=PROBE, score_methods=["oracle_noisy"], model_options=FAST)
        same = base["target"] == target
        assert pred[KEY_COLS].equals(base[KEY_COLS])
        np.testing.assert_array_equal(pred.loc[same, "score"].to_numpy(), base.loc[same, "score"].to_numpy())
        # every other target trains on the changed results: its predictions move
        for other in sorted(set(targets["target"]) - {target}):
            rows = base["target"] == other
            for method in base["method"].unique():
                m = rows & (base["method"] == method)
                assert not np.allclose(pred.loc[m, "score"], base.loc[m, "score"]), (target, other, method)


# ----------------------------------------------------------------------------- (b) what they learn

def test_both_recommenders_learn_additive_meta_feature_effects():
    zoo, ft, targets = synth("additive", n_targets=6)
    pred = recommend(zoo, ft, None, targets, probe=PROBE)
    assert set(pred["method"]) == {"gr_linear", "gr_fm"}
    assert mean_pearson(pred, ft, "gr_linear") > 0.95
    assert mean_pearson(pred, ft, "gr_fm") > 0.95


def test_fm_captures_a_dataset_by_model_interaction_that_lr_cannot():
    zoo, ft, targets = synth("interaction", n_targets=10, seed=1)
    pred = recommend(zoo, ft, None, targets, probe=PROBE)
    lr, fm = mean_pearson(pred, ft, "gr_linear"), mean_pearson(pred, ft, "gr_fm")
    assert fm > 0.75
    assert lr < 0.4
    assert fm > lr + 0.4


def test_score_features_help_when_meta_features_carry_no_signal():
    zoo, ft, targets, scores = synth("additive", n_targets=4, seed=2, with_scores=True)
    # accuracy unrelated to meta-features: shuffle the labels within each (target, shots)
    rng = np.random.default_rng(0)
    best = ft[ft["lr"] == 0.001].copy()
    best["test_accuracy"] = best.groupby(["target", "shots"])["test_accuracy"].transform(
        lambda x: rng.permutation(x.to_numpy()))
    noisy = best.assign(score=best["test_accuracy"] + rng.normal(0, 2, len(best)))[["expert", "target", "shots",
                                                                                   "score"]]
    scores = (scores.drop(columns="score").merge(noisy, on=["expert", "target", "shots"])
              .pipe(lambda s: s[s["method"] == "oracle_noisy"]))
    pred = recommend(zoo, best, scores, targets, probe=PROBE, per_score=True)
    assert {"gr_linear+scores", "gr_fm+scores", "gr_linear+oracle_noisy", "gr_fm+oracle_noisy"} <= set(pred["method"])
    own = mean_pearson(scores, best, "oracle_noisy")  # the score itself as a selection method
    assert own > 0.8
    for method in ("gr_linear+scores", "gr_fm+scores", "gr_linear+oracle_noisy", "gr_fm+oracle_noisy"):
        assert mean_pearson(pred, best, method) > own - 0.05, method
    assert mean_pearson(pred, best, "gr_linear") < 0.5


def test_fm_pairwise_term_matches_the_double_sum_and_fits_a_product():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    fm = FactorizationMachine(k=3, seed=0)
    fm.w0_, fm.w_, fm.u_ = 0.5, rng.normal(size=4), rng.normal(size=(4, 3))
    naive = fm.w0_ + x @ fm.w_ + sum(fm.u_[i] @ fm.u_[j] * x[:, i] * x[:, j] for i in range(4) for j in range(i + 1, 4))
    np.testing.assert_allclose(fm.predict(x), naive, rtol=1e-10)
    y = 2 * x[:, 0] * x[:, 1] + x[:, 2]
    assert np.corrcoef(fm_recommender(x, y, x, k=2, steps=1500), y)[0, 1] > 0.99
    assert np.corrcoef(linear_recommender(x, y, x), y)[0, 1] < 0.6


# ----------------------------------------------------------------------------- (c) determinism

def test_deterministic_given_the_seed():
    zoo, ft, targets, scores = synth(n_targets=3, with_scores=True)
    a = recommend(zoo, ft, scores, targets, probe=PROBE, seed=3, model_options=FAST)
    b = recommend(zoo, ft, scores, targets, probe=PROBE, seed=3, model_options=FAST)
    c = recommend(zoo, ft, scores, targets, probe=PROBE, seed=4, model_options=FAST)
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))
    fm = a["method"].str.startswith("gr_fm")
    assert not np.allclose(a.loc[fm, "score"], c.loc[fm, "score"])  # FM init depends on the seed
    np.testing.assert_array_equal(a.loc[~fm, "score"], c.loc[~fm, "score"])  # LR is closed-form


# ----------------------------------------------------------------------------- (d) format

def test_output_in_the_scores_table_format_and_through_the_protocols():
    zoo, ft, targets, scores = synth(n_targets=3, with_scores=True)
    pred = recommend(zoo, ft, scores, targets, probe=PROBE, model_options=FAST)
    assert list(pred.columns) == SCORE_COLUMNS
    assert set(pred["method"]) == {"gr_linear", "gr_fm", "gr_linear+scores", "gr_fm+scores"}
    assert (pred["probe"] == PROBE).all() and (pred["feature_seconds"] == 0).all()
    assert pred["score"].notna().all() and (pred["seconds"] >= 0).all()
    assert pred["shots"].map(type).eq(str).all()
    assert len(pred) == 4 * len(zoo) * len(targets)
    assert not pred.duplicated(["expert", "target", "shots", "method"]).any()
    # the predictions go through the protocols as scores do, and table2 agrees with them
    ev = evaluate_selection(ft, pd.concat([scores, pred], ignore_index=True), "resnet-generalist", 3, PROBE)
    assert {"gr_fm", "gr_linear+scores"} <= set(ev["method"])
    t_ev, t_pred = table2(ev), table2(pd.concat([scores, pred], ignore_index=True), ft, probe=PROBE)
    pd.testing.assert_frame_equal(t_ev, t_pred)
    assert list(t_ev.columns) == ["model", "features", "method", "full", "20", "5"]
    assert list(t_ev["method"]) == ["noise", "oracle_noisy", "random", "gr_linear", "gr_linear+scores",
                                    "gr_fm", "gr_fm+scores"]
    assert describe_method("gr_fm+parc") == ("FM", "d, m, parc")
    assert (t_ev.loc[t_ev["method"] == "random", ["full", "20", "5"]] == 0).all().all()


def test_meta_features():
    zoo, _, targets = synth(n_targets=2)
    d = dataset_features(targets)
    assert list(d.columns) == ["log_images", "log_classes", "difficulty"]
    assert d.loc[("t0", "full"), "log_images"] == pytest.approx(np.log(targets.loc[0, "images"]))
    m = model_features(zoo)
    assert {"arch=resnet", "arch=vit", "source=mosaic", "init=generalist", "log_parameters", "log_depth",
            "log_source_images"} <= set(m.columns)
    assert "log_gmacs" not in m
    m2 = model_features(zoo.assign(gmacs=np.linspace(0.5, 10, len(zoo)), input_size=224))
    assert {"log_gmacs", "log_input_size"} <= set(m2.columns)
    x = design_matrix(zoo[["expert"]].assign(target="t1", shots="5"), zoo, targets)
    assert len(x) == len(zoo) and not x.isna().any().any()


def test_zscore_labels():
    _, ft, _ = synth(n_targets=2)
    lab = training_labels(ft)
    g = lab.groupby(["target", "shots"])["label"]
    np.testing.assert_allclose(g.mean(), 0, atol=1e-12)
    np.testing.assert_allclose(g.std(ddof=0), 1)
    raw = training_labels(ft, label="accuracy")
    assert raw["label"].max() == pytest.approx(ft["test_accuracy"].max())


# ----------------------------------------------------------------------------- (e) bad input

def test_bad_input_gives_clear_errors():
    zoo, ft, targets, scores = synth(n_targets=2, with_scores=True)
    one = ft[ft["target"] == "t0"]
    with pytest.raises(AnalysisError, match="at least 2 targets.*got 1 \\(t0\\)"):
        recommend(zoo, one, scores, targets, probe=PROBE)
    with pytest.raises(AnalysisError, match=r"zoo table lacks columns \['depth'\]"):
        recommend(zoo.drop(columns="depth"), ft, scores, targets, probe=PROBE)
    with pytest.raises(AnalysisError, match=r"targets table lacks columns \['difficulty'\]"):
        recommend(zoo, ft, scores, targets.drop(columns="difficulty"), probe=PROBE)
    with pytest.raises(AnalysisError, match=r"fine-tune table lacks columns \['test_accuracy'\]"):
        recommend(zoo, ft.drop(columns="test_accuracy"), scores, targets, probe=PROBE)
    with pytest.raises(AnalysisError, match="no meta-features in the targets table"):
        recommend(zoo, ft, scores, targets[targets["shots"] != "5"], probe=PROBE)
    with pytest.raises(AnalysisError, match="no row in the zoo table"):
        recommend(zoo.iloc[1:], ft, scores, targets, probe=PROBE)
    with pytest.raises(AnalysisError, match="score methods \\['parc'\\] have no per_class_25 scores"):
        recommend(zoo, ft, scores, targets, probe=PROBE, score_methods=["parc"])
    with pytest.raises(AnalysisError, match="unknown label"):
        recommend(zoo, ft, scores, targets, probe=PROBE, label="rank")
    with pytest.raises(AnalysisError, match="needs finetune_df"):
        table2(scores)
