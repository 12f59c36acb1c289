"""PED's feature remapping (Li et al. 2023) against lixiaotong97/PED run itself (tests/data/ped_reference.json):
the remapped features, PED+LogME and PED+SFDA; the `ped` option of any feature score in the selection stage."""
import json
from pathlib import Path

import numpy as np
import pytest

from score_inputs import make_inputs
from selection.run import SelectionError, method_table, run_method
from selection.scores import compute_score
from selection.scores.clustering import sfda
from selection.scores.evidence import logme
from selection.scores.ped import ped_option, ped_remap

DATA = json.loads((Path(__file__).parent / "data" / "ped_reference.json").read_text())
IDS = [f"seed{c['recipe']['seed']}-{c['general']}" for c in DATA["cases"]]


def _inputs(case):
    x = make_inputs(case["recipe"])
    general = None if case["general"] == "own" else x["source_features"]
    return x["features"], x["labels"], general


@pytest.mark.parametrize("case", DATA["cases"], ids=IDS)
def test_remap_matches_the_reference(case):
    """The features the reference's PED_Score hands to its score, within rounding (also with other
    hyperparameters, a step cut short by the exit ratio, and no move at all when no classes overlap)."""
    features, labels, general = _inputs(case)
    moved = ped_remap(features, labels, general_features=general, **case["hyperparameters"])
    np.testing.assert_allclose(moved, np.array(case["remapped"]), rtol=1e-12, atol=1e-12)
    assert case["moved"] == (not np.array_equal(moved, features))


@pytest.mark.parametrize("case", DATA["cases"], ids=IDS)
def test_ped_logme_and_sfda_match_the_reference(case):
    """Our logme / sfda on our remapped features = the reference's PED_Score(type=LOGME / SFDA). For N <= D
    the reference's LogME is thuml's (logme's as_reference=True; the default counts the full log-determinant)."""
    features, labels, general = _inputs(case)
    moved = ped_remap(features, labels, general_features=general, **case["hyperparameters"])
    as_reference = features.shape[0] <= features.shape[1]
    assert logme(features=moved, labels=labels, as_reference=as_reference) == pytest.approx(case["logme"], rel=1e-10)
    assert sfda(features=moved, labels=labels) == pytest.approx(case["sfda"], rel=1e-10)
    # the reference's values on the reference's own remapped features, too
    ref = np.array(case["remapped"])
    assert logme(features=ref, labels=labels, as_reference=as_reference) == pytest.approx(case["logme"], rel=1e-10)
    assert sfda(features=ref, labels=labels) == pytest.approx(case["sfda"], rel=1e-10)


def test_defaults_are_the_reference_command_line():
    case = DATA["cases"][0]
    assert case["hyperparameters"] == dict(exit_ratio=0.5, time_step=0.1, nsigma=0.6, constant=1.0, eps=0.001)
    features, labels, _ = _inputs(case)
    np.testing.assert_array_equal(ped_remap(features, labels), ped_remap(features, labels, **case["hyperparameters"]))
    np.testing.assert_array_equal(ped_option(features, labels, True), ped_remap(features, labels))
    np.testing.assert_array_equal(ped_option(features, labels, False), features)
    np.testing.assert_array_equal(ped_option(features, labels, {"nsigma": 0.3}),
                                  ped_remap(features, labels, nsigma=0.3))


def test_remap_moves_classes_apart_and_keeps_labels_and_shape():
    """Whole classes move (within-class offsets kept), overlapping class means get farther apart, label values
    and order are free."""
    features, labels, _ = _inputs(DATA["cases"][0])
    moved = ped_remap(features, labels)
    assert moved.shape == features.shape
    for c in range(4):
        d = moved[labels == c] - features[labels == c]
        np.testing.assert_allclose(d, np.broadcast_to(d[0], d.shape), atol=1e-12)
    means = lambda f: np.array([f[labels == c].mean(0) for c in range(4)])  # noqa: E731
    gaps = lambda m: np.linalg.norm(m[:, None] - m[None], axis=-1)[np.triu_indices(4, 1)]  # noqa: E731
    assert (gaps(means(moved)) >= gaps(means(features)) - 1e-12).all()
    perm = np.random.default_rng(0).permutation(len(labels))
    np.testing.assert_allclose(ped_remap(features[perm], np.array(list("wxyz"))[labels][perm]), moved[perm],
                               rtol=1e-12, atol=1e-12)


def test_classes_with_the_same_mean_stop_the_moves_as_the_reference():
    """The reference's direction is 0/0 there: its change is NaN, its loop stops, the plain features are scored."""
    deg = DATA["degenerate"]
    f = make_inputs(deg["recipe"])["features"]
    twins, labels = np.concatenate([f[:10], f[:10], f[10:20] + 5.0]), np.repeat([0, 1, 2], 10)
    assert deg["unchanged"] and deg["one_step_calls"] == 1
    np.testing.assert_array_equal(ped_remap(twins, labels), twins)
    assert run_method("logme", {"ped": True}, {"features": twins, "labels": labels}) == pytest.approx(deg["logme"],
                                                                                                      rel=1e-10)
    assert run_method("sfda", {"ped": True}, {"features": twins, "labels": labels}) == pytest.approx(deg["sfda"],
                                                                                                     rel=1e-10)


def test_errors():
    features, labels, _ = _inputs(DATA["cases"][0])
    with pytest.raises(ValueError, match="general_features have 5 columns but features have 16"):
        ped_remap(features, labels, general_features=features[:, :5])
    with pytest.raises(ValueError, match="time_step must be a positive"):
        ped_remap(features, labels, time_step=0)
    with pytest.raises(ValueError, match="nsigma must be a positive"):
        ped_remap(features, labels, nsigma=-0.6)
    with pytest.raises(ValueError, match="exit_ratio"):
        ped_remap(features, labels, exit_ratio=1.0)
    with pytest.raises(ValueError, match="max_steps"):
        ped_remap(features, labels, max_steps=0)
    with pytest.raises(ValueError, match="NaN"):
        ped_remap(np.where(np.arange(16) == 2, np.nan, features), labels)
    with pytest.raises(ValueError, match="need at least 2 samples"):
        ped_remap(features[:1], labels[:1])
    with pytest.raises(ValueError, match="ped option must be true, false or a mapping"):
        ped_option(features, labels, "yes")
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['sigma'\]"):
        ped_option(features, labels, {"sigma": 0.3})


def test_ped_option_of_any_feature_score_in_the_selection_stage():
    """`{score: logme, options: {ped: true}}` (and sfda, and with PCA) = the score on the remapped features; a
    score without features or a bad value is named when the method table is built."""
    features, labels, _ = _inputs(DATA["cases"][0])
    variants = {"logme_ped": {"score": "logme", "options": {"ped": True}},
                "sfda_ped": {"score": "sfda", "options": {"ped": True}},
                "parc_ped_pca8": {"score": "parc", "options": {"ped": {"nsigma": 0.3}, "pca_dim": 8}},
                "hscore_ped_pca8": {"score": "hscore", "options": {"ped": True, "pca_dim": 8}}}
    table = method_table(["logme"], variants)
    inputs = {"features": features, "labels": labels, "seed": 1}
    moved = ped_remap(features, labels)
    assert run_method("logme", table["logme_ped"].options, inputs) == logme(features=moved, labels=labels) \
        == pytest.approx(DATA["cases"][0]["logme"], rel=1e-10)
    assert run_method("sfda", table["sfda_ped"].options, inputs) == sfda(features=moved, labels=labels) \
        == pytest.approx(DATA["cases"][0]["sfda"], rel=1e-10)
    assert run_method("parc", table["parc_ped_pca8"].options, inputs) == compute_score(
        "parc", features=ped_remap(features, labels, nsigma=0.3), labels=labels, pca_dim=8)
    from selection.scores.registry import pca_reduce
    assert run_method("hscore", table["hscore_ped_pca8"].options, inputs) == compute_score(
        "hscore", features=pca_reduce(moved, 8), labels=labels)
    assert run_method("logme", {"ped": False}, inputs) == logme(features=features, labels=labels)
    assert table["logme_ped"].options == {"ped": True}   # the table's options are not consumed by a run
    with pytest.raises(SelectionError, match="score 'leep' has no option"):
        method_table([], {"leep_ped": {"score": "leep", "options": {"ped": True}}})
    with pytest.raises(SelectionError, match="method 'logme_ped': ped option must be true, false or a mapping"):
        method_table([], {"logme_ped": {"score": "logme", "options": {"ped": "yes"}}})
