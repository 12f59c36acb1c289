"""Tests for the probe, NCE, RSA/DDS, Domain Similarity, feature-sparsity and LGC scores.

Reference values in tests/data/reference_more.json come from transcriptions of the reference
code (see its "provenance"); the inputs are regenerated here from each stored recipe.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from selection.scores import SCORES, compute_score
from selection.scores.domain import domain_similarity
from selection.scores.gradient import count_sketch, lgc
from selection.scores.label_correlation import lfc
from selection.scores.probes import knn_loo, logistic
from selection.scores.representation import dds, rsa
from selection.scores.source_probs import nce
from selection.scores.sparsity import feature_metrics
from score_inputs import make_inputs

REFERENCE = json.loads((Path(__file__).parent / "data" / "reference_more.json").read_text())
NEW_SCORES = ("knn_loo", "logistic", "nce", "rsa", "dds", "domain_similarity", "feature_metrics", "lgc")


def _score_kwargs(recipe):
    extra = {k: recipe[k] for k in ("pca_dim", "min_images", "gamma") if k in recipe}
    if "split_seed" in recipe:
        extra["seed"] = recipe["split_seed"]
    return extra


# ----------------------------------------------------------------------------- references

REF_CASES = [(name, i, case) for name, cases in REFERENCE["cases"].items() for i, case in enumerate(cases)]


@pytest.mark.parametrize("name,i,case", REF_CASES, ids=[f"{n}-{i}" for n, i, _ in REF_CASES])
def test_matches_reference_transcription(name, i, case):
    recipe = case["recipe"]
    value = compute_score(name, **make_inputs(recipe), **_score_kwargs(recipe))
    assert value == pytest.approx(case["reference"], rel=1e-6)
    if "emd" in case:  # the score saturates for small gamma; check the distance itself too
        assert -np.log(value) / recipe.get("gamma", 0.01) == pytest.approx(case["emd"], rel=1e-6)


def test_reference_file_covers_every_new_score_but_feature_metrics():
    assert set(REFERENCE["cases"]) == set(NEW_SCORES) - {"feature_metrics"}
    assert "provenance" in REFERENCE


def test_registry_and_keyword_only():
    assert set(NEW_SCORES) <= set(SCORES)
    x = make_inputs(dict(seed=1, n=40, d=6, c=3, d_probe=4, z=5, n_source=60, c_source=4, p=8))
    for name in NEW_SCORES:
        assert isinstance(compute_score(name, **x, seed=0, extra="ignored"), float)
    with pytest.raises(TypeError):
        knn_loo(x["features"], x["labels"])
    with pytest.raises(TypeError, match=r"'rsa' needs input\(s\) \['probe_features'\]"):
        compute_score("rsa", features=x["features"])


# ----------------------------------------------------------------------------- 1-NN / logistic

def test_knn_hand_computed():
    col = np.array([[0.0], [1.0], [10.0], [11.0]])
    assert knn_loo(features=col, labels=np.array([0, 0, 1, 1])) == 100.0
    assert knn_loo(features=col, labels=np.array([0, 1, 0, 1])) == 0.0
    # nn: 0->1 (right), 1->0 (right), 2->1 (wrong)
    assert knn_loo(features=np.array([[0.0], [1.0], [3.0]]), labels=np.array([0, 0, 1])) == pytest.approx(200 / 3)
    # sample 1 is equidistant from 0 and 2: lowest index wins -> only sample 2 is right
    assert knn_loo(features=np.array([[0.0], [1.0], [2.0]]), labels=np.array([0, 1, 1])) == pytest.approx(100 / 3)
    # exact duplicates with other labels: the sample itself never votes
    dup = np.array([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0], [5.0, 5.0]])
    assert knn_loo(features=dup, labels=np.array([0, 1, 0, 1])) == 0.0


def test_knn_uses_euclidean_distance_on_raw_features():
    # column scaling changes the nearest neighbour (no standardisation)
    feats = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    labels = np.array([0, 0, 1])
    assert knn_loo(features=feats, labels=labels) == pytest.approx(200 / 3)
    assert knn_loo(features=feats * [5.0, 1.0], labels=labels) == pytest.approx(100 / 3)


def test_knn_large_input_in_blocks_matches_brute_force(monkeypatch):
    import selection.scores.probes as probes
    x = make_inputs(dict(seed=5, n=97, d=7, c=4, spread=0.6))
    full = knn_loo(**x)
    monkeypatch.setattr(probes, "_KNN_BLOCK", 10)
    assert knn_loo(**x) == full
    d2 = ((x["features"][:, None] - x["features"][None]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    assert full == pytest.approx(100 * np.mean(x["labels"][d2.argmin(1)] == x["labels"]), rel=1e-12)


def test_logistic_separable_binary_and_determinism():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 30)
    feats = rng.normal(size=(60, 4)) + 6.0 * labels[:, None]
    assert logistic(features=feats, labels=labels) == 100.0
    x = make_inputs(dict(seed=3, n=90, d=12, c=4, spread=0.3))
    assert logistic(**x, seed=5) == logistic(**x, seed=5)
    values = {logistic(**x, seed=s) for s in range(6)}
    assert len(values) > 1  # the seed picks the split
    assert all(0.0 <= v <= 100.0 for v in values)


def test_logistic_split_follows_seeded_permutation():
    # a class-sorted probe set: the reference's in-order split would train on class 0 only
    labels = np.repeat([0, 1, 2], 10)
    feats = np.random.default_rng(1).normal(size=(30, 3)) + 4.0 * np.eye(3)[labels]
    assert logistic(features=feats, labels=labels, seed=0) >= 80.0


# ----------------------------------------------------------------------------- NCE

def _one_hot_probs(z, n_z):
    return np.eye(n_z)[z]


def test_nce_hand_computed():
    # H(Y|Z) = P(z=0) H(1/2, 1/2) + P(z=1) * 0 = log(2) / 2; the (y=0, z=1) cell is empty
    probs = _one_hot_probs(np.array([0, 0, 1, 1]), 2)
    assert nce(probs=probs, labels=np.array([0, 1, 1, 1])) == pytest.approx(-0.5 * np.log(2), rel=1e-12)
    # z determines y -> 0; a constant z -> -H(Y)
    assert nce(probs=_one_hot_probs(np.array([2, 0, 2, 0]), 3), labels=np.array([5, 7, 5, 7])) == 0.0
    labels = np.array([0, 0, 0, 1])
    prior = np.array([0.75, 0.25])
    assert nce(probs=np.full((4, 3), 1 / 3), labels=labels) == pytest.approx(prior @ np.log(prior), rel=1e-12)


def test_nce_uses_argmax_and_ignores_unpredicted_source_classes():
    labels = np.array([0, 1, 0, 1, 1])
    soft = np.array([[0.6, 0.4, 0.0], [0.3, 0.7, 0.0], [0.9, 0.1, 0.0], [0.45, 0.55, 0.0], [0.2, 0.8, 0.0]])
    hard = _one_hot_probs(soft.argmax(1), 3)
    assert nce(probs=soft, labels=labels) == nce(probs=hard, labels=labels)
    assert nce(probs=soft, labels=labels) == pytest.approx(nce(probs=soft[:, [1, 0]] / 1.0, labels=labels), rel=1e-12)


def test_nce_bounds():
    for seed in range(5):
        x = make_inputs(dict(seed=seed, n=80, d=2, c=5, z=7))
        value = nce(probs=x["probs"], labels=x["labels"])
        assert -np.log(5) - 1e-12 <= value <= 0.0


# ----------------------------------------------------------------------------- RSA / DDS

def test_rsa_hand_computed():
    feats = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])   # RDM (ab, ac, bc) = (1.5, 0.5, 0.5)
    probe = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 2.0, 0.0]])   # RDM = (1.5, 1.0, 1 - sqrt(3)/2)
    assert rsa(features=feats, probe_features=probe) == pytest.approx(np.sqrt(3) / 2, rel=1e-12)
    assert rsa(features=probe, probe_features=probe) == pytest.approx(1.0)


def test_rsa_dds_identity_and_invariances():
    x = make_inputs(dict(seed=8, n=50, d=10, c=4, d_probe=6))
    f, p = x["features"], x["probe_features"]
    assert rsa(features=f, probe_features=f) == pytest.approx(1.0, rel=1e-12)
    assert dds(features=f, probe_features=f) == pytest.approx(100.0, rel=1e-12)
    base_rsa, base_dds = rsa(features=f, probe_features=p), dds(features=f, probe_features=p)
    assert -1.0 <= base_rsa <= 1.0 and -100.0 <= base_dds <= 100.0
    # RSA: per-row affine maps keep Pearson between rows; DDS: per-column affine maps are standardised away
    rows = 3.0 * f + np.arange(50)[:, None]
    assert rsa(features=rows, probe_features=p, labels=x["labels"]) == pytest.approx(base_rsa, rel=1e-10)
    cols = f * np.linspace(0.5, 4.0, 10) + np.arange(10)
    assert dds(features=cols, probe_features=p) == pytest.approx(base_dds, rel=1e-10)
    perm = np.random.default_rng(0).permutation(50)
    assert rsa(features=f[perm], probe_features=p[perm]) == pytest.approx(base_rsa, rel=1e-10)
    assert dds(features=f[perm], probe_features=p[perm]) == pytest.approx(base_dds, rel=1e-10)
    assert dds(features=f, probe_features=p, pca_dim=4) != pytest.approx(base_dds, rel=1e-6)


# ----------------------------------------------------------------------------- Domain Similarity

def _domains():
    target = np.array([[0.0], [0.0], [2.0], [2.0]])
    target_y = np.array([0, 0, 1, 1])
    source = np.array([[0.0]] * 5 + [[4.0]] * 5 + [[100.0]])
    source_y = np.array([3] * 5 + [7] * 5 + [9])
    return dict(features=target, labels=target_y, source_features=source, source_labels=source_y)


def test_domain_similarity_hand_computed():
    d = _domains()
    # the 1-image source class is dropped: EMD between {0: .5, 4: .5} and {0: .5, 2: .5} is 1
    assert domain_similarity(**d) == pytest.approx(np.exp(-0.01), rel=1e-12)
    assert domain_similarity(**d, gamma=0.3) == pytest.approx(np.exp(-0.3), rel=1e-12)
    # kept: 1-D EMD = integral of |CDF_s - CDF_t| = (1 + 12 + 96) / 11
    assert domain_similarity(**d, min_images=1) == pytest.approx(np.exp(-0.01 * 109 / 11), rel=1e-12)
    same = dict(features=d["features"], labels=d["labels"], source_features=d["features"], source_labels=d["labels"])
    assert domain_similarity(**same, min_images=1) == pytest.approx(1.0, abs=1e-15)


def test_domain_similarity_invariances_and_bounds():
    x = make_inputs(dict(seed=4, n=60, d=5, c=4, n_source=150, c_source=12))
    kw = {k: x[k] for k in ("features", "labels", "source_features", "source_labels")}
    base = domain_similarity(**kw)
    assert 0.0 < base <= 1.0
    pt, ps = np.random.default_rng(1).permutation(60), np.random.default_rng(2).permutation(150)
    shuffled = dict(features=kw["features"][pt], labels=kw["labels"][pt] * 3 + 1,
                    source_features=kw["source_features"][ps], source_labels=kw["source_labels"][ps].astype(str))
    assert domain_similarity(**shuffled) == pytest.approx(base, rel=1e-10)


# ----------------------------------------------------------------------------- feature metrics

def test_feature_metrics_hand_computed_and_bounds():
    # zero fraction 3/8; Hoyer: one-hot row 1, flat row 0 -> 0.5 * 3/8 + 0.5 * 1/2
    assert feature_metrics(features=np.array([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])) == pytest.approx(0.4375)
    assert feature_metrics(features=np.zeros((3, 5))) == 1.0
    assert feature_metrics(features=np.ones((3, 5))) == 0.0
    x = make_inputs(dict(seed=2, n=30, d=20, c=3, relu=True))["features"]
    value = feature_metrics(features=x)
    assert 0.0 <= value <= 1.0
    assert feature_metrics(features=7.0 * x[::-1]) == pytest.approx(value, rel=1e-12)
    assert feature_metrics(features=x * (x > 1.0)) > value  # sparser -> higher


# ----------------------------------------------------------------------------- LGC / count sketch

def test_lgc_is_lfc_on_gradients():
    assert lgc(gradients=np.array([[1.0], [2.0]]), labels=np.array([0, 1])) == pytest.approx(1 / np.sqrt(19), rel=1e-12)
    x = make_inputs(dict(seed=6, n=40, d=2, c=3, p=25))
    assert lgc(gradients=x["gradients"], labels=x["labels"]) == lfc(features=x["gradients"], labels=x["labels"])


def test_count_sketch_hand_and_determinism():
    m = np.random.default_rng(0).normal(size=(5, 9))
    out = count_sketch(m, 4, 3)
    rng = np.random.default_rng(3)
    buckets, signs = rng.integers(0, 4, 9), rng.integers(0, 2, 9) * 2 - 1
    expected = np.zeros((5, 4))
    for j in range(9):
        expected[:, buckets[j]] += signs[j] * m[:, j]
    assert np.allclose(out, expected, rtol=0, atol=1e-14)
    assert np.array_equal(count_sketch(m, 4, 3), out)
    assert not np.array_equal(count_sketch(m, 4, 4), out)
    assert np.array_equal(count_sketch(m[:2], 4, 3), out[:2])          # batches stack
    assert count_sketch(m.astype(np.float32), 4, 3).dtype == np.float32
    assert count_sketch(np.arange(6).reshape(2, 3), 2, 0).dtype == np.float64


def test_count_sketch_preserves_inner_products_in_expectation():
    rng = np.random.default_rng(0)
    pair = rng.normal(size=(2, 40))
    pair[1] += pair[0]
    exact = pair[0] @ pair[1]
    draws = np.array([np.prod(count_sketch(pair, 8, s), axis=0).sum() for s in range(2000)])
    assert abs(draws.mean() - exact) < 4 * draws.std() / np.sqrt(draws.size)
    norms = np.array([np.sum(count_sketch(pair[:1], 8, s) ** 2) for s in range(2000)])
    assert abs(norms.mean() - pair[0] @ pair[0]) < 4 * norms.std() / np.sqrt(norms.size)


# ----------------------------------------------------------------------------- shared invariances

def test_invariant_to_sample_order_and_relabelling():
    x = make_inputs(dict(seed=9, n=60, d=8, c=4, z=6, p=12, spread=0.8))
    perm = np.random.default_rng(9).permutation(60)
    relabel = np.array([42, -7, 1000, 3])[x["labels"]]
    cases = ((knn_loo, {"features": x["features"]}), (nce, {"probs": x["probs"]}),
             (lgc, {"gradients": x["gradients"]}))
    for fn, kwargs in cases:
        base = fn(labels=x["labels"], **kwargs)
        assert fn(labels=x["labels"][perm], **{k: v[perm] for k, v in kwargs.items()}) == pytest.approx(base, rel=1e-10)
        assert fn(labels=relabel, **kwargs) == pytest.approx(base, rel=1e-10)
        assert fn(labels=relabel.astype(str), **kwargs) == pytest.approx(base, rel=1e-10)
    # logistic: the split depends on the sample order (seeded shuffle), not on the label values
    base = logistic(features=x["features"], labels=x["labels"], seed=2)
    assert logistic(features=x["features"], labels=relabel.astype(str), seed=2) == pytest.approx(base)


# ----------------------------------------------------------------------------- bad inputs

F6 = np.random.default_rng(0).normal(size=(6, 3))
Y6 = np.array([0, 1, 0, 1, 2, 2])
NAN6 = np.where(np.eye(6, 3) > 0, np.nan, F6)


@pytest.mark.parametrize("fn", [knn_loo, logistic], ids=["knn_loo", "logistic"])
@pytest.mark.parametrize("feats,labels,match", [
    (F6[:1], Y6[:1], "at least 2 samples"),
    (F6, np.zeros(6, dtype=int), "at least 2 distinct classes"),
    (F6, Y6[:5], "length mismatch: features has 6 rows but labels has 5"),
    (NAN6, Y6, "NaN or inf"),
    (F6.ravel(), Y6, "2-D"),
])
def test_probes_reject_bad_inputs(fn, feats, labels, match):
    with pytest.raises(ValueError, match=match):
        fn(features=feats, labels=labels)


def test_logistic_bad_seed_and_single_class_training_half():
    for bad in (-1, 1.5, None, True):
        with pytest.raises(ValueError, match="seed"):
            logistic(features=F6, labels=Y6, seed=bad)
    labels = np.array([0, 0, 0, 1])
    seed = next(s for s in range(50) if np.unique(labels[np.random.default_rng(s).permutation(4)[:2]]).size == 1)
    with pytest.raises(ValueError, match="training half .* single class"):
        logistic(features=F6[:4], labels=labels, seed=seed)


@pytest.mark.parametrize("probs,labels,match", [
    (np.full((6, 4), 0.25)[:4], Y6, "length mismatch: probs has 4 rows but labels has 6"),
    (np.full((6, 4), 0.3), Y6, "sum to 1"),
    (np.where(np.eye(6, 4) > 0, np.nan, 0.25), Y6, "NaN or inf"),
    (np.full((6, 4), 0.25), np.full(6, 3), "at least 2 distinct classes"),
])
def test_nce_rejects_bad_inputs(probs, labels, match):
    with pytest.raises(ValueError, match=match):
        nce(probs=probs, labels=labels)


@pytest.mark.parametrize("fn", [rsa, dds], ids=["rsa", "dds"])
def test_rsa_dds_reject_bad_inputs(fn):
    with pytest.raises(ValueError, match="length mismatch: probe_features has 5 rows but features has 6 rows"):
        fn(features=F6, probe_features=F6[:5])
    with pytest.raises(ValueError, match="probe_features contain NaN or inf"):
        fn(features=F6, probe_features=NAN6)
    with pytest.raises(ValueError, match="features contain NaN or inf"):
        fn(features=NAN6, probe_features=F6)
    with pytest.raises(ValueError, match="at least"):
        fn(features=F6[:2], probe_features=F6[:2])


def test_rsa_dds_specific_errors():
    with pytest.raises(ValueError, match="length mismatch: features has 6 rows but labels has 5"):
        rsa(features=F6, probe_features=F6, labels=Y6[:5])
    with pytest.raises(ValueError, match="row of probe_features is constant"):
        rsa(features=F6, probe_features=np.where(np.arange(6)[:, None] == 2, 5.0, F6))
    with pytest.raises(ValueError, match="pca_dim"):
        dds(features=F6, probe_features=F6, pca_dim=0)
    with pytest.raises(ValueError, match="centred distance matrix of probe_features is zero"):
        dds(features=F6, probe_features=np.ones((6, 3)))


def test_domain_similarity_rejects_bad_inputs():
    d = _domains()
    with pytest.raises(ValueError, match="length mismatch: source_features has 11 rows but source_labels has 10"):
        domain_similarity(**{**d, "source_labels": d["source_labels"][:10]})
    with pytest.raises(ValueError, match="source_features contain NaN"):
        domain_similarity(**{**d, "source_features": np.full((11, 1), np.nan)})
    with pytest.raises(ValueError, match="source_labels: need at least 2 distinct classes"):
        domain_similarity(**{**d, "source_labels": np.zeros(11)})
    with pytest.raises(ValueError, match="source_features have 2 columns but features have 1"):
        domain_similarity(**{**d, "source_features": np.zeros((11, 2))})
    with pytest.raises(ValueError, match="no source class has at least min_images=6"):
        domain_similarity(**d, min_images=6)
    for bad in (-1, 2.5, True):  # 0 is allowed: keep every source class
        with pytest.raises(ValueError, match="min_images"):
            domain_similarity(**d, min_images=bad)
    for bad in (0, -1.0, np.inf, "x"):
        with pytest.raises(ValueError, match="gamma"):
            domain_similarity(**d, gamma=bad)
    with pytest.raises(ValueError, match="length mismatch: features has 4 rows but labels has 3"):
        domain_similarity(**{**d, "labels": d["labels"][:3]})


def test_feature_metrics_lgc_count_sketch_reject_bad_inputs():
    with pytest.raises(ValueError, match="NaN or inf"):
        feature_metrics(features=NAN6)
    with pytest.raises(ValueError, match="2-D"):
        feature_metrics(features=F6.ravel())
    with pytest.raises(ValueError, match="at least 2 feature dims"):
        feature_metrics(features=F6[:, :1])
    with pytest.raises(ValueError, match="gradients contain NaN or inf"):
        lgc(gradients=NAN6, labels=Y6)
    with pytest.raises(ValueError, match="length mismatch: gradients has 6 rows but labels has 5"):
        lgc(gradients=F6, labels=Y6[:5])
    with pytest.raises(ValueError, match="lgc .*constant"):
        lgc(gradients=np.zeros((6, 3)), labels=Y6)
    with pytest.raises(ValueError, match="at least 2 distinct classes"):
        lgc(gradients=F6, labels=np.zeros(6))
    for kwargs, match in (({"dim": 0}, "dim"), ({"dim": 2.0}, "dim"), ({"seed": -1}, "seed"), ({"seed": None}, "seed")):
        with pytest.raises(ValueError, match=match):
            count_sketch(F6, **{"dim": 2, "seed": 0, **kwargs})
    with pytest.raises(ValueError, match="2-D"):
        count_sketch(F6.ravel(), 2, 0)
    with pytest.raises(ValueError, match="NaN or inf"):
        count_sketch(NAN6, 2, 0)
