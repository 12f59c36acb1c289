"""Tests for PACTran (selection/scores/pactran.py): equality with the reference implementation
(google-research/pactran_metrics compute_metrics.py, values in tests/data/pactran_reference.json),
direction, defaults, and the errors bad inputs raise."""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest

from selection.scores import SCORES, compute_score
from selection.scores.pactran import pactran

FIXTURE = json.loads((Path(__file__).parent / "data" / "pactran_reference.json").read_text())
RTOL = {"dirichlet": 1e-12, "gamma": 1e-12, "gauss": 1e-9}


@functools.lru_cache(maxsize=None)
def make_case(seed, n, d, c, z, spread):
    """The fixture's input recipe (its "recipe" field)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    labels[:c] = np.arange(c)
    centers = rng.normal(size=(c, d))
    features = rng.normal(size=(n, d)) + spread * centers[labels]
    logits = rng.normal(size=(n, z)) + spread * rng.normal(size=(c, z))[labels]
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    for arr in (features, labels, probs):
        arr.flags.writeable = False
    return features, labels, probs


def _entries():
    for case in FIXTURE["cases"]:
        recipe = tuple(case[k] for k in ("seed", "n", "d", "c", "z", "spread"))
        for entry in case["entries"]:
            opts = ",".join(f"{k}={v}" for k, v in entry["options"].items())
            yield pytest.param(recipe, entry, id=f"{entry['prior']}[{opts}]-seed{case['seed']}-{case['n']}x{case['d']}")


@pytest.mark.parametrize("recipe,entry", list(_entries()))
def test_equals_reference(recipe, entry):
    features, labels, probs = make_case(*recipe)
    value = pactran(features=features, labels=labels, probs=probs, prior=entry["prior"], **entry["options"])
    assert entry["expected"] == -entry["reference_bound"]
    np.testing.assert_allclose(value, entry["expected"], rtol=RTOL[entry["prior"]], atol=0)


def test_fixture_names_the_reference():
    ref = FIXTURE["reference"]
    assert ref["repo"] == "google-research/pactran_metrics" and len(ref["commit"]) == 40
    assert {e["prior"] for case in FIXTURE["cases"] for e in case["entries"]} == {"dirichlet", "gamma", "gauss"}


def test_registered_with_defaults():
    assert SCORES["pactran"] is pactran
    features, labels, probs = make_case(0, 120, 32, 4, 10, 1.0)
    default = compute_score("pactran", features=features, labels=labels, probs=probs, seed=123)
    gauss = pactran(features=features, labels=labels, prior="gauss", lda_factor=1.0, s2_factor=100.0, init_seed=0)
    assert type(default) is float and default == gauss
    # s2_factor defaults to 100 * lda_factor, the reference's first value for each lambda
    assert pactran(features=features, labels=labels, lda_factor=10.0) == \
        pactran(features=features, labels=labels, lda_factor=10.0, s2_factor=1000.0)
    assert pactran(features=features, labels=labels, probs=probs, prior="dirichlet") == \
        pactran(features=features, labels=labels, probs=probs, prior="dirichlet", alpha=1.0)


def test_labels_relabelled_and_inputs_untouched():
    features, labels, probs = make_case(1, 60, 96, 6, 20, 0.5)
    names = np.array(list("abcdef"))[labels]
    for prior in ("dirichlet", "gamma", "gauss"):
        assert pactran(features=features, labels=names, probs=probs, prior=prior) == \
            pactran(features=features, labels=labels, probs=probs, prior=prior)


@pytest.mark.parametrize("prior", ["dirichlet", "gamma", "gauss"])
def test_higher_is_better(prior):
    """Features / source probabilities that carry the labels score above ones that do not."""
    rng = np.random.default_rng(5)
    n, c = 200, 4
    labels = np.repeat(np.arange(c), n // c)
    noise = rng.normal(size=(n, 16))
    informative = noise + 3.0 * np.eye(c, 16)[labels]
    logit_noise = rng.normal(size=(n, 8))
    sharp = np.exp(logit_noise + 4.0 * np.eye(c, 8)[labels])
    flat = np.exp(logit_noise)
    good = pactran(features=informative, labels=labels, probs=sharp / sharp.sum(1, keepdims=True), prior=prior)
    bad = pactran(features=noise, labels=labels, probs=flat / flat.sum(1, keepdims=True), prior=prior)
    assert good > bad


def test_dirichlet_gamma_ignore_features():
    features, labels, probs = make_case(2, 300, 16, 10, 7, 2.0)
    other = np.zeros_like(features)
    for prior in ("dirichlet", "gamma"):
        assert pactran(features=features, labels=labels, probs=probs, prior=prior) == \
            pactran(features=other, labels=labels, probs=probs, prior=prior)


@pytest.mark.parametrize("kwargs,match", [
    (dict(prior="laplace"), "unknown prior"),
    (dict(prior="dirichlet", probs=None), "needs probs"),
    (dict(prior="gamma", probs=None), "needs probs"),
    (dict(prior="dirichlet", alpha=0.0), "alpha"),
    (dict(prior="gauss", lda_factor=-1.0), "lda_factor"),
    (dict(prior="gauss", s2_factor=float("inf")), "s2_factor"),
    (dict(prior="gauss", init_seed=-1), "init_seed"),
    (dict(prior="gauss", labels=np.array([0]), rows=1), "at least 2 samples"),
    (dict(prior="dirichlet", labels=np.array([1]), rows=1), "at least 2 samples"),
    (dict(prior="gauss", labels=np.zeros(120, int)), "2 distinct classes"),
    (dict(prior="gamma", labels=np.zeros(120, int)), "2 distinct classes"),
    (dict(prior="gauss", features=np.ones((119, 32))), "length mismatch"),
    (dict(prior="dirichlet", probs=np.full((120, 10), 0.2)), "sum to 1"),
])
def test_bad_input_raises(kwargs, match):
    features, labels, probs = make_case(0, 120, 32, 4, 10, 1.0)
    kwargs = dict(kwargs)
    rows = kwargs.pop("rows", None)
    inputs = {"features": features[:rows], "labels": labels[:rows], "probs": probs[:rows], **kwargs}
    with pytest.raises(ValueError, match=match):
        pactran(**inputs)


def test_nan_features_and_probs_raise():
    features, labels, probs = make_case(0, 120, 32, 4, 10, 1.0)
    bad_f = features.copy()
    bad_f[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        pactran(features=bad_f, labels=labels)
    bad_p = probs.copy()
    bad_p[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        pactran(features=features, labels=labels, probs=bad_p, prior="gamma")
