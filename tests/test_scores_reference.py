"""Reference-exact variants: each score's default or its ``as_reference=True`` variant equals the
public reference code on held-back inputs.

tests/data/reference_exact.json holds values from running the reference code itself (see its
"provenance" and "references": repo, file, function, commit) on the inputs ``make_inputs``
regenerates from each recipe, and which variant of the project's score reproduces each one.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from selection.run import SelectionError
from selection.scores import SCORES, compute_score
from selection.scores.clustering import nleep
from selection.scores.domain import domain_similarity
from selection.scores.evidence import logme
from selection.scores.label_correlation import parc
from selection.scores.representation import dds, rsa
from selection.scores.source_probs import leep, nce
from score_inputs import make_inputs

DATA = json.loads((Path(__file__).parent / "data" / "reference_exact.json").read_text())
REL = DATA["tolerance"]["rel"]
# scores whose default departs from a reference, so that as_reference exists
WITH_REFERENCE_VARIANT = ("parc", "rsa", "dds", "logme", "leep", "nce", "hscore", "knn_loo", "logistic",
                          "nleep", "domain_similarity")


def _options(recipe):
    options = {k: recipe[k] for k in ("pca_dim", "min_images", "gamma") if k in recipe}
    if "nleep_seed" in recipe:
        options["seed"] = recipe["nleep_seed"]
    return options


def _run(name, recipe, variant):
    extra = {"as_reference": True} if variant == "as_reference" else {}
    return compute_score(name, **make_inputs(recipe), **_options(recipe), **extra)


def _same(value, expected):
    if expected is None:               # the reference returns NaN
        return math.isnan(value)
    return value == pytest.approx(expected, rel=REL, abs=1e-12)


CASES = [(name, i, ref, variant)
         for name, cases in DATA["cases"].items() for i, case in enumerate(cases)
         for ref, variants in case["variants"].items() for variant in variants]


@pytest.mark.parametrize("name,i,ref,variant", CASES,
                         ids=[f"{n}-{i}-{r.split()[-1]}-{v}" for n, i, r, v in CASES])
def test_variant_equals_reference_code(name, i, ref, variant):
    case = DATA["cases"][name][i]
    value = _run(name, case["recipe"], variant)
    assert _same(value, case["reference"][ref]), (value, case["reference"][ref])


def test_reference_file_names_repo_function_commit():
    from selection.scores import reference_mode

    pinned = " ".join(getattr(reference_mode, k) for k in dir(reference_mode) if k.endswith("_REPO"))
    for key, ref in DATA["references"].items():
        assert set(ref) == {"repo", "file", "function", "commit"}, key
        assert len(ref["commit"]) == 40
        assert f"{ref['repo']} " in pinned and ref["commit"] in pinned, key
    used = {ref for cases in DATA["cases"].values() for case in cases for ref in case["reference"]}
    assert used == set(DATA["references"])
    assert set(WITH_REFERENCE_VARIANT) <= set(DATA["cases"])


def test_as_reference_is_needed_where_the_default_departs():
    """For every reference only as_reference reproduces, some stored case tells the two apart:
    the option is not a no-op and the default really is the corrected / paper version."""
    only_reference = {}
    for name, cases in DATA["cases"].items():
        for i, case in enumerate(cases):
            for ref, variants in case["variants"].items():
                if variants == ["as_reference"]:
                    only_reference.setdefault((name, ref), []).append(i)
    assert only_reference
    for (name, ref), indices in only_reference.items():
        differs = []
        for i in indices:
            case = DATA["cases"][name][i]
            try:
                differs.append(not _same(_run(name, case["recipe"], "default"), case["reference"][ref]))
            except ValueError:         # the default refuses what the reference turns into a number
                differs.append(True)
        assert any(differs), (name, ref)


@pytest.mark.parametrize("name", WITH_REFERENCE_VARIANT)
def test_as_reference_must_be_a_bool(name):
    assert "as_reference" in __import__("inspect").signature(SCORES[name]).parameters
    x = make_inputs(dict(seed=1, n=60, d=6, c=3, d_probe=4, z=5, n_source=80, c_source=4))
    for bad in ("yes", 1, None):
        with pytest.raises(ValueError, match="as_reference"):
            compute_score(name, **x, as_reference=bad)


# ----------------------------------------------------------------------------- hand checks of the quirks

def test_parc_reference_uses_the_noisy_label_rdm():
    from scipy.stats import spearmanr
    from sklearn.preprocessing import StandardScaler

    x = make_inputs(dict(seed=103, n=61, d=6, c=3, spread=0.4))
    f, y = StandardScaler().fit_transform(x["features"]), x["labels"]
    rows, cols = np.triu_indices(len(y), 1)
    noisy = 1 - np.corrcoef(np.eye(3)[y])[rows, cols]
    assert np.unique(noisy).size > 2           # rounding splits the "different class" ties
    expected = 100 * spearmanr(1 - np.corrcoef(f)[rows, cols], noisy)[0]
    assert parc(**x, as_reference=True) == pytest.approx(expected, rel=1e-12)
    exact = 100 * spearmanr(1 - np.corrcoef(f)[rows, cols], (y[rows] != y[cols]).astype(float))[0]
    assert parc(**x) == pytest.approx(exact, rel=1e-12)


def test_reference_variants_give_nan_where_the_reference_does():
    feats = np.array([[1.0, 2.0], [3.0, 1.0], [0.0, 0.0], [5.0, 5.0], [2.0, 2.0], [1.0, 3.0]])
    labels = np.array([0, 0, 1, 1, 2, 2])
    # two standardised dims: a row with equal standardised values has no correlation
    f = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.5], [3.0, 2.0], [4.0, 1.0], [5.0, 3.0]])
    with pytest.raises(ValueError, match="constant standardised"):
        parc(features=f[:, [0, 0]], labels=labels)
    assert math.isnan(parc(features=f[:, [0, 0]], labels=labels, as_reference=True))
    probs = np.array([[0.5, 0.5, 0.0]] * 3 + [[0.2, 0.8, 0.0]] * 3)
    y = np.array([0, 1, 0, 1, 1, 0])
    assert math.isfinite(leep(probs=probs, labels=y))
    assert math.isnan(leep(probs=probs, labels=y, as_reference=True))   # P(z=2) = 0: 0 / 0
    assert math.isfinite(rsa(features=feats, probe_features=feats[:, ::-1] + 1.0, as_reference=True))
    # a regular tetrahedron: all cosine distances equal, so the U-centred matrix is zero (CKA 0 / 0)
    tetra = np.array([[1.0, 1.0, 1.0], [1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]])
    with pytest.raises(ValueError, match="centred distance matrix"):
        dds(features=tetra, probe_features=feats[:4])
    assert math.isnan(dds(features=tetra, probe_features=feats[:4], as_reference=True))


def test_nce_reference_adds_eps_over_all_source_classes():
    probs = np.eye(4)[[0, 0, 1, 1, 1, 2]] * 0.9 + 0.025
    y = np.array([0, 0, 1, 1, 0, 1])
    n, eps = 6, 1e-5
    joint = np.zeros((2, 4))
    np.add.at(joint, (y, probs.argmax(1)), 1.0)
    joint = joint / n + eps
    marginal = joint.sum(axis=0) - 2 * eps + eps       # counts / n + eps
    expected = float(np.sum(joint * np.log(joint / marginal)))
    assert nce(probs=probs, labels=y, as_reference=True) == pytest.approx(expected, rel=1e-12)
    # the default is the exact -H(Y | Z): z=0 -> y=0, z=1 -> {1, 1, 0}, z=2 -> 1
    h = -(3 / 6) * (-(2 / 3) * np.log(2 / 3) - (1 / 3) * np.log(1 / 3))
    assert nce(probs=probs, labels=y) == pytest.approx(h, rel=1e-12)


def test_logme_reference_drops_the_zero_directions_when_n_below_d():
    x = make_inputs(dict(seed=132, n=40, d=100, c=5))
    default, reference = logme(**x), logme(**x, as_reference=True)
    assert reference > default + 1.0          # the missing (D - N) log alpha inflates it
    big = make_inputs(dict(seed=131, n=200, d=16, c=4))
    assert logme(**big) == pytest.approx(logme(**big, as_reference=True), rel=1e-12)


def test_domain_similarity_min_images_zero_keeps_every_source_class():
    x = make_inputs(dict(seed=231, n=120, d=16, c=6, n_source=400, c_source=20))
    assert domain_similarity(**x, min_images=0) == domain_similarity(**x, min_images=1)
    assert domain_similarity(**x, min_images=0) != domain_similarity(**x, min_images=25)
    with pytest.raises(ValueError, match="min_images"):
        domain_similarity(**x, min_images=-1)
    # the reference variant differs from the float64 default only by float32 rounding
    assert domain_similarity(**x, min_images=0, as_reference=True) == pytest.approx(
        domain_similarity(**x, min_images=0), rel=1e-6)


def test_nleep_log_option_and_reference_agree():
    x = make_inputs(dict(seed=191, n=200, d=20, c=4, spread=0.3))
    plain, logged = nleep(**x), nleep(**x, log=True)
    assert logged < np.log(plain) < 0         # Jensen: mean log < log mean
    assert nleep(**x, log=True, as_reference=True) == pytest.approx(logged, rel=1e-9)
    with pytest.raises(ValueError, match="log"):
        nleep(**x, log="yes")


def test_variants_config_reaches_as_reference():
    """Published-comparison variants are plain options: {score: knn_loo, options: {pca_dim: 8, as_reference: true}}."""
    from selection.run import method_table, run_method

    table = method_table(["parc"], {"parc_f32_ref": {"score": "parc", "options": {"pca_dim": 4, "as_reference": True}},
                                    "knn_f8_ref": {"score": "knn_loo", "options": {"pca_dim": 8, "as_reference": True}}})
    x = make_inputs(dict(seed=172, n=80, d=12, c=3, spread=0.5, dup=12))
    assert table["parc_f32_ref"].probe_network is None
    assert run_method(*table["parc_f32_ref"][:2], x) == parc(**x, pca_dim=4, as_reference=True)
    assert math.isfinite(run_method(*table["knn_f8_ref"][:2], x))
    with pytest.raises(SelectionError, match="no option"):
        method_table([], {"sfda_ref": {"score": "sfda", "options": {"as_reference": True}}})
