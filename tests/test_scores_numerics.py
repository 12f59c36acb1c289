"""Numerical faults fixed as kinds (issue 14, deliverable 7), each with its right value:
Pearson from centred moments (LFC, LGC), "constant" up to rounding (RSA, DDS, PARC, LFC),
N-LEEP on large features (as sklearn GaussianMixture), Domain Similarity past exp underflow,
and missing labels (None / NaN) in the shared validation."""
from __future__ import annotations

import math
import re
from fractions import Fraction

import numpy as np
import pytest

from selection.scores import SCORES
from selection.scores.registry import CONSTANT_RTOL, check_labels, is_constant


# ----------------------------------------------------------------------------- LFC / LGC: centred moments

def _case9_features(n=60, d=16, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    return rng.normal(size=(n, d)) + np.eye(n_classes)[y] @ rng.normal(size=(n_classes, d)), y


def _lfc_exact(f: np.ndarray, y: np.ndarray) -> float:
    """Pearson over the N*N entries of F F^T and K (+1 same label, -1 otherwise) in exact rational
    arithmetic on the given floats: the raw-moment formula is right when nothing rounds."""
    rows = [[Fraction(float(v)) for v in row] for row in f]
    t = [sum(a * b for a, b in zip(ri, rj)) for ri in rows for rj in rows]
    k = [1 if yi == yj else -1 for yi in y for yj in y]
    m = len(t)
    st, sk = sum(t), sum(k)
    cov = m * sum(ti * ki for ti, ki in zip(t, k)) - st * sk
    var_t = m * sum(ti * ti for ti in t) - st * st
    var_k = m * sum(ki * ki for ki in k) - sk * sk
    return float(cov) / math.sqrt(float(var_t) * float(var_k))


@pytest.mark.parametrize("offset", [0.0, 1e4, 1e5, 1e6])
def test_lfc_lgc_match_exact_correlation_at_any_common_offset(offset):
    # case 9: at 1e5 the raw moments gave a false "F F^T is constant"; the true value is ~9.496e-06
    f, y = _case9_features()
    g = f + offset
    exact = _lfc_exact(g, y)
    assert SCORES["lfc"](features=g, labels=y) == pytest.approx(exact, rel=1e-6)
    assert SCORES["lgc"](gradients=g, labels=y) == pytest.approx(exact, rel=1e-6)
    if offset == 1e5:
        assert exact == pytest.approx(9.49624e-06, rel=1e-5)


@pytest.mark.parametrize("n,d,offset", [(25, 40, 3e5), (31, 5, -2e4)])
def test_lfc_unbalanced_classes_and_wide_features_at_an_offset(n, d, offset):
    # unbalanced classes keep the offset's cross term (a_i) in the covariance; D > N takes the other Gram
    rng = np.random.default_rng(n)
    y = rng.integers(0, 4, size=n)
    y[:4] = np.arange(4)
    f = rng.normal(size=(n, d)) + np.eye(4)[y] @ rng.normal(size=(4, d)) + offset * rng.uniform(0.5, 1.5, d)
    assert SCORES["lfc"](features=f, labels=y) == pytest.approx(_lfc_exact(f, y), rel=1e-6)


def test_lfc_identical_samples_at_an_offset_are_constant():
    f = np.tile(np.random.default_rng(1).normal(size=(1, 8)) + 1e5, (12, 1))
    with pytest.raises(ValueError, match="constant"):
        SCORES["lfc"](features=f, labels=np.arange(12) % 3)


# ----------------------------------------------------------------------------- "constant" up to rounding

def test_is_constant_is_relative_to_its_scale():
    assert is_constant(0.0, 0.0)
    assert is_constant(CONSTANT_RTOL * 5.0, 5.0)
    assert not is_constant(1e-9)
    assert is_constant(np.array([0.0, 1e-13, 1.0])).tolist() == [True, True, False]


def _case12():
    rng = np.random.default_rng(0)
    n, d = 30, 95
    probe = rng.normal(size=(n, 12))
    same = np.repeat(rng.normal(size=(1, d)), n, axis=0)
    p = rng.normal(size=d)
    collinear = rng.uniform(.5, 3, n)[:, None] * p + rng.normal(size=n)[:, None]
    return probe, same, collinear, rng.permutation(n)


def test_rsa_rdm_constant_up_to_rounding_raises():
    # case 12: finite 0.050 / 0.036 / 0.054 before, changing with the row order
    probe, same, collinear, perm = _case12()
    for feats, prb in ((same, probe), (collinear, probe), (collinear[perm], probe[perm])):
        with pytest.raises(ValueError, match="RDM of features is constant"):
            SCORES["rsa"](features=feats, probe_features=prb)
    with pytest.raises(ValueError, match="RDM of probe_features is constant"):
        SCORES["rsa"](features=probe, probe_features=collinear)


def test_dds_equidistant_samples_up_to_rounding_raise():
    # one-hot rows are equidistant: the centred distance matrix was 1e-14 noise and DDS 1.8e-14
    probe = np.random.default_rng(0).normal(size=(8, 5))
    with pytest.raises(ValueError, match="centred distance matrix of features is zero"):
        SCORES["dds"](features=np.eye(8) * 3.0, probe_features=probe)
    assert math.isnan(SCORES["dds"](features=np.ones((8, 3)), probe_features=probe, as_reference=True))


def test_parc_row_constant_up_to_rounding_raises():
    # a sample equal to the mean feature standardises to rounding noise: PARC was 11.1 from it
    rng = np.random.default_rng(0)
    f = rng.normal(size=(29, 7)) * 3 + 1.7
    f = np.vstack([f, f.mean(axis=0)]) * 10.0 ** 0.3
    with pytest.raises(ValueError, match="constant standardised features"):
        SCORES["parc"](features=f, labels=np.arange(30) % 3)


def test_rsa_dds_parc_lfc_keep_real_variation():
    rng = np.random.default_rng(3)
    f, y = rng.normal(size=(20, 6)), np.arange(20) % 2
    for name, kw in (("rsa", dict(features=f, probe_features=f[:, ::-1])),
                     ("dds", dict(features=f, probe_features=f[:, :3])),
                     ("parc", dict(features=f, labels=y)), ("lfc", dict(features=f, labels=y))):
        assert np.isfinite(SCORES[name](**kw))


# ----------------------------------------------------------------------------- N-LEEP on large features

def test_nleep_case14_fits_where_sklearn_does():
    # case 14: ValueError (collapsed samples) before; sklearn GaussianMixture gives 1.0
    rng = np.random.default_rng(0)
    c, n = 4, 80
    y = np.arange(n) % c
    f = (rng.normal(size=(n, 30)) + 2 * np.eye(c)[y] @ rng.normal(size=(c, 30))) * 1e4
    assert SCORES["nleep"](features=f, labels=y) == pytest.approx(1.0, abs=1e-12)
    assert SCORES["nleep"](features=f, labels=y, as_reference=True) == pytest.approx(1.0, abs=1e-12)


def test_nleep_large_features_equal_sklearn_gaussian_mixture():
    # classes 0/1 and 2/3 share a cluster: a value well inside (0, 1). reg_covar is absolute, so the
    # right value is sklearn's on the same input (x1 gives 0.61218, not this)
    rng = np.random.default_rng(0)
    c, n = 4, 80
    y = np.arange(n) % c
    f = (rng.normal(size=(n, 30)) + 3 * np.eye(2)[y // 2] @ rng.normal(size=(2, 30))) * 3e4
    reference = SCORES["nleep"](features=f, labels=y, as_reference=True)
    assert reference == pytest.approx(0.6148338984481881, rel=1e-6)
    assert SCORES["nleep"](features=f, labels=y) == pytest.approx(reference, rel=1e-9)


def test_nleep_still_fails_where_sklearn_fails():
    rng = np.random.default_rng(0)
    y = np.arange(80) % 4
    f = (rng.normal(size=(80, 30)) + 0.7 * np.eye(4)[y] @ rng.normal(size=(4, 30))) * 1e6
    with pytest.raises(ValueError, match="nleep: Fitting the mixture model failed"):
        SCORES["nleep"](features=f, labels=y, as_reference=True)
    with pytest.raises(ValueError, match="collapsed samples"):
        SCORES["nleep"](features=f, labels=y)


# ----------------------------------------------------------------------------- Domain Similarity underflow

def _shifted(shift, scale):
    rng = np.random.default_rng(0)
    f, y = rng.normal(size=(60, 5)), np.arange(60) % 6
    return dict(features=(f + shift) * scale, labels=y, source_features=f * scale, source_labels=y)


def test_domain_similarity_log_space_keeps_the_order_of_large_emds():
    # case 5: both 0.0 before. A translation by s * 1e6 in every one of 5 dims has EMD sqrt(5) s 1e6
    scores = [SCORES["domain_similarity"](**_shifted(s, 1e6), log=True) for s in (1.0, 2.0)]
    assert scores[0] == pytest.approx(-0.01 * math.sqrt(5) * 1e6, rel=1e-12)
    assert scores[1] == pytest.approx(-0.01 * math.sqrt(5) * 2e6, rel=1e-12)
    for s in (1.0, 2.0):
        with pytest.raises(ValueError, match="underflows .* use log=True"):
            SCORES["domain_similarity"](**_shifted(s, 1e6))


@pytest.mark.parametrize("scale", [1.0, 1e3, 3e4])
def test_domain_similarity_default_is_exp_of_log_where_it_does_not_underflow(scale):
    kw = _shifted(1.0, scale)
    value = SCORES["domain_similarity"](**kw)
    assert value == np.exp(SCORES["domain_similarity"](**kw, log=True))
    assert 0.0 < value <= 1.0
    ref = SCORES["domain_similarity"](**kw, as_reference=True)
    assert np.log(ref) == pytest.approx(SCORES["domain_similarity"](**kw, as_reference=True, log=True), rel=1e-6)


def test_domain_similarity_log_must_be_bool():
    with pytest.raises(ValueError, match="log must be true or false"):
        SCORES["domain_similarity"](**_shifted(1.0, 1.0), log="yes")


# ----------------------------------------------------------------------------- missing labels

@pytest.mark.parametrize("labels,positions", [
    ([0, 1, 2] * 13 + [None], "1 position(s): [39]"),                          # case 18
    (np.array([0.0, 1.0, np.nan, 1.0, np.nan]), "2 position(s): [2, 4]"),
    (np.array(["a", None, "b", float("nan")], dtype=object), "2 position(s): [1, 3]"),
])
def test_check_labels_names_missing_values(labels, positions):
    with pytest.raises(ValueError, match=re.escape("labels contain NaN/None (missing values) at " + positions)):
        check_labels(labels)


def test_every_labelled_score_rejects_a_missing_label_with_a_value_error():
    rng = np.random.default_rng(0)
    labels = [0, 1, 2] * 13 + [None]
    p, f = rng.dirichlet(np.ones(6), size=40), rng.normal(size=(40, 5))
    with pytest.raises(ValueError, match="missing values"):
        SCORES["leep"](probs=p, labels=labels)
    for name in ("lfc", "parc", "logme", "sfda", "nleep"):
        with pytest.raises(ValueError, match="missing values"):
            SCORES[name](features=f, labels=labels)
    ok = np.array([0, 1, 2] * 13 + [0])
    with pytest.raises(ValueError, match="source_labels: labels contain NaN/None"):
        SCORES["domain_similarity"](features=f, labels=ok, source_features=f, source_labels=labels)
    assert check_labels(np.array(["b", "a", "b"]))[1] == 2
