"""Tests for selection/scores.py: hand cases, references, invariances, bounds, bad inputs."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.decomposition import PCA

from selection.scores import SCORES, compute_score, leep, lfc, parc, random


def _clustered(n=60, d=12, c=4, seed=0, spread=1.5):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    labels[:c] = np.arange(c)
    feats = rng.normal(size=(n, d)) + spread * rng.normal(size=(c, d))[labels]
    return feats, labels


def _softmax_probs(n=60, z=9, seed=0):
    logits = 2.0 * np.random.default_rng(seed).normal(size=(n, z))
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------------- brute-force / independent references

def _lfc_brute(feats, labels):
    theta = feats @ feats.T
    k = np.where(labels[:, None] == labels[None, :], 1.0, -1.0)
    return np.corrcoef(theta.ravel(), k.ravel())[0, 1]


def _leep_loop(probs, labels):
    """LEEP straight from Nguyen et al. eq. 1-2, one loop per sample."""
    n = len(labels)
    classes = np.unique(labels)
    joint = np.array([probs[labels == y].sum(axis=0) / n for y in classes])
    cond = joint / joint.sum(axis=0)
    idx = {y: i for i, y in enumerate(classes)}
    return np.mean([np.log(cond[idx[y]] @ probs[i]) for i, y in enumerate(labels)])


def _parc_steps(feats, labels, pca_dim=None):
    """dbolya/parc methods.PARC step by step: PCA, standardise, corrcoef RDMs, Spearman * 100.

    The one-hot label RDM is rounded to 12 decimals: np.corrcoef leaves ~1e-16 noise on
    it that would break its exact ties (see the parc docstring).
    """
    if pca_dim is not None:
        feats = PCA(n_components=min(pca_dim, *feats.shape), svd_solver="randomized",
                    random_state=1919, iterated_power=1).fit_transform(feats)
    feats = (feats - feats.mean(axis=0)) / feats.std(axis=0)
    onehot = np.eye(labels.max() + 1)[labels]
    rdm_f = 1 - np.corrcoef(feats)
    rdm_y = np.round(1 - np.corrcoef(onehot), 12)
    upper = np.triu_indices(len(labels), 1)
    return spearmanr(rdm_f[upper], rdm_y[upper])[0] * 100


# ----------------------------------------------------------------------------- registry

def test_registry_and_compute_score_filters_inputs():
    assert {"lfc", "leep", "parc", "random"} <= set(SCORES)
    feats, labels = _clustered()
    probs = _softmax_probs()
    rng = np.random.default_rng(0)
    everything = dict(features=feats, labels=labels, probs=probs, seed=3, extra="ignored",
                      gradients=feats @ rng.normal(size=(feats.shape[1], 16)), probe_features=feats[:, ::-1] + 0.1,
                      source_features=feats + 1.0, source_labels=labels)
    assert compute_score("lfc", **everything) == lfc(features=feats, labels=labels)
    assert compute_score("leep", **everything) == leep(probs=probs, labels=labels)
    assert compute_score("parc", **everything) == parc(features=feats, labels=labels)
    assert compute_score("random", **everything) == random(seed=3)
    assert compute_score("parc", pca_dim=4, **everything) == parc(features=feats, labels=labels, pca_dim=4)


def test_compute_score_unknown_and_missing():
    with pytest.raises(ValueError, match=r"unknown score method 'nope'.*known methods:.*lfc.*random"):
        compute_score("nope", seed=0)
    with pytest.raises(TypeError, match=r"'leep' needs input\(s\) \['probs'\]"):
        compute_score("leep", labels=np.array([0, 1]))


def test_scores_are_keyword_only():
    with pytest.raises(TypeError):
        lfc(np.ones((2, 2)), np.array([0, 1]))


# ----------------------------------------------------------------------------- LFC

def test_lfc_hand_computed():
    # Theta = [[1,2],[2,4]], K = [[1,-1],[-1,1]]: cov = 1/4, var_T = 19/16, var_K = 1
    assert lfc(features=np.array([[1.0], [2.0]]), labels=np.array([0, 1])) == pytest.approx(1 / np.sqrt(19), rel=1e-12)
    # 4 samples: sum Theta = 13, sum Theta^2 = 15, same-label sum 9 -> cov 5/16, var_T 71/256
    feats = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert lfc(features=feats, labels=np.array([0, 0, 1, 1])) == pytest.approx(5 / np.sqrt(71), rel=1e-12)
    # orthogonal one-hot clusters: Theta = (K + 1) / 2 exactly
    perfect = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert lfc(features=perfect, labels=np.array([5, 5, 9, 9])) == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("n,d,c,offset", [(50, 7, 3, 0.0), (30, 100, 4, 1.0), (120, 40, 10, 3.0), (40, 5, 40, 0.5)])
def test_lfc_matches_brute_force(n, d, c, offset):
    feats, labels = _clustered(n, d, min(c, n), seed=n + d)
    labels = labels * 7 - 3
    feats = feats + offset
    expected = _lfc_brute(feats, labels)
    assert lfc(features=feats, labels=labels) == pytest.approx(expected, rel=1e-10, abs=1e-13)


def test_lfc_every_sample_own_class_matches_brute_force():
    feats, _ = _clustered(12, 5, 2, seed=4)
    labels = np.arange(12)
    assert lfc(features=feats, labels=labels) == pytest.approx(_lfc_brute(feats, labels), rel=1e-10)


def test_lfc_scale_invariant_and_bounded():
    feats, labels = _clustered(seed=2)
    base = lfc(features=feats, labels=labels)
    for s in (1e-6, 3.0, 1e6):
        assert lfc(features=s * feats, labels=labels) == pytest.approx(base, rel=1e-10)
    assert -1.0 <= base <= 1.0
    assert lfc(features=feats, labels=labels) > lfc(features=np.random.default_rng(9).normal(size=feats.shape), labels=labels)


def test_lfc_constant_kernel_raises():
    with pytest.raises(ValueError, match="constant"):
        lfc(features=np.zeros((5, 3)), labels=np.array([0, 1, 0, 1, 0]))
    with pytest.raises(ValueError, match="constant"):
        lfc(features=np.tile([[1.0, 2.0]], (5, 1)), labels=np.array([0, 1, 0, 1, 0]))


# ----------------------------------------------------------------------------- LEEP

def test_leep_one_hot_identity_is_zero():
    labels = np.array([0, 1, 2, 1, 0, 2])
    assert leep(probs=np.eye(3)[labels], labels=labels) == pytest.approx(0.0, abs=1e-15)


def test_leep_hand_computed():
    # P(y|z) = [[1/2, 0], [1/2, 1]]: sample terms 1/2, 1/2, 1 -> LEEP = (2/3) log(1/2)
    probs = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert leep(probs=probs, labels=np.array([0, 1, 1])) == pytest.approx(2 / 3 * np.log(0.5), rel=1e-12)
    # uninformative probs: P(y|z) = class prior -> LEEP = mean log prior(y_i)
    uniform = np.full((4, 3), 1 / 3)
    assert leep(probs=uniform, labels=np.array([0, 0, 0, 1])) == pytest.approx(
        (3 * np.log(0.75) + np.log(0.25)) / 4, rel=1e-12)


def test_leep_matches_reference_and_is_bounded():
    labels = np.random.default_rng(5).integers(0, 6, 80) * 3 + 11
    probs = _softmax_probs(80, 13, seed=5)
    value = leep(probs=probs, labels=labels)
    assert value == pytest.approx(_leep_loop(probs, labels), rel=1e-12)
    assert value <= 0.0


def test_leep_source_class_with_no_mass():
    labels = np.array([0, 1, 0, 1])
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.7, 0.3, 0.0], [0.4, 0.6, 0.0]])
    assert leep(probs=probs, labels=labels) == pytest.approx(leep(probs=probs[:, :2], labels=labels), rel=1e-12)


def test_leep_invariant_to_source_class_order():
    labels = np.random.default_rng(1).integers(0, 4, 50)
    probs = _softmax_probs(50, 7, seed=1)
    perm = np.random.default_rng(2).permutation(7)
    assert leep(probs=probs[:, perm], labels=labels) == pytest.approx(leep(probs=probs, labels=labels), rel=1e-12)


# ----------------------------------------------------------------------------- PARC

@pytest.mark.parametrize("pca_dim", [None, 5, 1000])
def test_parc_matches_reference_steps(pca_dim):
    feats, labels = _clustered(70, 16, 5, seed=3)
    assert parc(features=feats, labels=labels, pca_dim=pca_dim) == pytest.approx(
        _parc_steps(feats, labels, pca_dim), rel=1e-10)


def test_parc_two_classes_matches_unrounded_reference():
    feats, labels = _clustered(40, 8, 2, seed=6)
    rdm_y = 1 - np.corrcoef(np.eye(2)[labels])
    rdm_f = 1 - np.corrcoef((feats - feats.mean(0)) / feats.std(0))
    upper = np.triu_indices(40, 1)
    assert parc(features=feats, labels=labels) == pytest.approx(
        spearmanr(rdm_f[upper], rdm_y[upper])[0] * 100, rel=1e-10)


def test_parc_bounded_and_scale_invariant():
    feats, labels = _clustered(seed=4)
    value = parc(features=feats, labels=labels)
    assert -100.0 <= value <= 100.0
    assert value > 10.0  # clustered features agree with the labels
    assert parc(features=1e3 * feats, labels=labels) == pytest.approx(value, rel=1e-10)


def test_parc_degenerate_inputs_raise():
    with pytest.raises(ValueError, match="at least 3 samples"):
        parc(features=np.array([[0.0, 1.0], [1.0, 0.0]]), labels=np.array([0, 1]))
    with pytest.raises(ValueError, match="constant standardised features"):
        parc(features=np.arange(6.0).reshape(6, 1), labels=np.array([0, 1, 0, 1, 0, 1]))
    with pytest.raises(ValueError, match="own class"):
        parc(features=np.random.default_rng(0).normal(size=(5, 3)), labels=np.arange(5))
    with pytest.raises(ValueError, match="pca_dim"):
        parc(features=np.random.default_rng(0).normal(size=(5, 3)), labels=np.array([0, 1, 0, 1, 0]), pca_dim=0)


# ----------------------------------------------------------------------------- shared invariances

def test_scores_invariant_to_sample_order_and_relabelling():
    feats, labels = _clustered(50, 10, 4, seed=8)
    probs = _softmax_probs(50, 6, seed=8)
    perm = np.random.default_rng(8).permutation(50)
    relabel = np.array([42, -7, 1000, 3])[labels]
    for fn, kwargs in ((lfc, {"features": feats}), (leep, {"probs": probs}), (parc, {"features": feats})):
        base = fn(labels=labels, **kwargs)
        shuffled = {k: v[perm] for k, v in kwargs.items()}
        assert fn(labels=labels[perm], **shuffled) == pytest.approx(base, rel=1e-10)
        assert fn(labels=relabel, **kwargs) == pytest.approx(base, rel=1e-10)
        assert fn(labels=relabel.astype(str), **kwargs) == pytest.approx(base, rel=1e-10)


def test_random_deterministic_and_in_unit_interval():
    draws = [random(seed=s) for s in range(20)]
    assert draws == [random(seed=s) for s in range(20)]
    assert all(0.0 <= x < 1.0 for x in draws)
    assert len(set(draws)) == 20
    assert random(seed=np.int64(7)) == random(seed=7)
    for bad in (None, -1, 1.5, True):
        with pytest.raises(ValueError, match="seed"):
            random(seed=bad)


# ----------------------------------------------------------------------------- bad inputs

GOOD_F = np.random.default_rng(0).normal(size=(6, 3))
GOOD_Y = np.array([0, 1, 0, 1, 2, 2])
GOOD_P = np.full((6, 4), 0.25)


def _feature_scores():
    return [lambda f, y: lfc(features=f, labels=y), lambda f, y: parc(features=f, labels=y)]


@pytest.mark.parametrize("score", _feature_scores(), ids=["lfc", "parc"])
@pytest.mark.parametrize("feats,labels,match", [
    (GOOD_F[:1], GOOD_Y[:1], "at least 2 samples"),
    (GOOD_F, np.zeros(6, dtype=int), "at least 2 distinct classes"),
    (GOOD_F, GOOD_Y[:5], "length mismatch: features has 6 rows but labels has 5"),
    (np.where(np.eye(6, 3) > 0, np.nan, GOOD_F), GOOD_Y, "NaN or inf"),
    (np.where(np.eye(6, 3) > 0, np.inf, GOOD_F), GOOD_Y, "NaN or inf"),
    (GOOD_F, np.array([0, 1, 0, 1, np.nan, 2]), "labels contain NaN"),
    (GOOD_F.ravel(), GOOD_Y, "2-D"),
    (GOOD_F[:, :, None], GOOD_Y, "2-D"),
    (np.zeros((6, 0)), GOOD_Y, "at least one column"),
    (GOOD_F, GOOD_Y[:, None], "labels must be a 1-D"),
    (np.array([["a", "b"]] * 6), GOOD_Y, "numeric"),
])
def test_feature_scores_reject_bad_inputs(score, feats, labels, match):
    with pytest.raises(ValueError, match=match):
        score(feats, labels)


@pytest.mark.parametrize("probs,labels,match", [
    (GOOD_P[:1], GOOD_Y[:1], "at least 2 samples"),
    (GOOD_P, np.full(6, 3), "at least 2 distinct classes"),
    (GOOD_P[:4], GOOD_Y, "length mismatch: probs has 4 rows but labels has 6"),
    (np.where(np.eye(6, 4) > 0, np.nan, GOOD_P), GOOD_Y, "NaN or inf"),
    (GOOD_P * 1.01, GOOD_Y, r"sum to 1.*row 0 sums to 1.01"),
    (np.tile([[1.5, -0.5, 0.0, 0.0]], (6, 1)), GOOD_Y, "negative"),
    (GOOD_P.ravel(), GOOD_Y, "2-D"),
])
def test_leep_rejects_bad_inputs(probs, labels, match):
    with pytest.raises(ValueError, match=match):
        leep(probs=probs, labels=labels)


def test_leep_accepts_small_rounding_in_probs():
    probs = GOOD_P * (1 + 5e-5)
    assert leep(probs=probs, labels=GOOD_Y) == pytest.approx(leep(probs=GOOD_P, labels=GOOD_Y), rel=1e-12)
