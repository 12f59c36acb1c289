"""OT-NCE (Tan et al. 2021) against values from running tanyang1231/OTCE_Transferability_CVPR21 itself
(tests/data/ot_nce_reference.json), its maths on hand-made couplings, and its errors."""
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from score_inputs import make_inputs
from selection.scores import SCORES, compute_score
from selection.scores.ot_nce import ot_nce

DATA = json.loads((Path(__file__).parent / "data" / "ot_nce_reference.json").read_text())


def test_registered_with_the_cache_inputs():
    assert SCORES["ot_nce"] is ot_nce
    x = make_inputs(DATA["cases"][0]["recipe"])
    assert compute_score("ot_nce", probs=None, seed=3, **x) == ot_nce(**x)


@pytest.mark.parametrize("case", DATA["cases"], ids=lambda c: f"seed{c['recipe']['seed']}-n{c['recipe']['n']}")
def test_matches_the_reference_code(case):
    """Equal to the reference's -compute_CE(compute_coupling(...)) within rounding: the default wherever the
    reference reaches the optimal coupling, as_reference=True also where its 100000 simplex iterations stop short."""
    x = make_inputs(case["recipe"])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "numItermax reached")
        assert ot_nce(**x, as_reference=True) == pytest.approx(case["ot_nce"], rel=1e-12, abs=1e-12)
    if "default" in case["variants"]:
        assert ot_nce(**x) == pytest.approx(case["ot_nce"], rel=1e-12, abs=1e-12)
    else:   # the exact optimum: another coupling, another value (same scale)
        assert case["solver_warnings"] and abs(ot_nce(**x) - case["ot_nce"]) > 1e-4


def test_hand_made_couplings():
    """Equal source and target sizes: the optimal plan is the nearest-point matching; the NCE is that of the
    matched labels."""
    t = np.array([[0.0, 0], [10, 0], [0, 10], [10, 10]])
    s = t + 0.1
    # matching i <-> i; source label a determines target label b: H(Y_t | Y_s) = 0
    assert ot_nce(features=t, labels=[0, 0, 1, 1], source_features=s, source_labels=[5, 5, 7, 7]) == 0.0
    # one source class: NCE = -H(Y_t) = -log 2
    assert ot_nce(features=t, labels=[0, 1, 0, 1], source_features=s,
                  source_labels=[3, 3, 3, 3]) == pytest.approx(-np.log(2))
    # source labels independent of the target's: -log 2 again; more source samples than target ones split mass
    assert ot_nce(features=t, labels=[0, 1, 0, 1], source_features=s,
                  source_labels=[0, 0, 1, 1]) == pytest.approx(-np.log(2))
    s2 = np.repeat(t, 2, axis=0) + 0.1
    assert ot_nce(features=t, labels=[0, 0, 1, 1], source_features=s2,
                  source_labels=np.repeat([1, 1, 2, 2], 2)) == 0.0


def test_label_values_and_order_do_not_matter():
    x = make_inputs(DATA["cases"][0]["recipe"])
    base = ot_nce(**x)
    perm_t, perm_s = np.random.default_rng(1).permutation(100), np.random.default_rng(2).permutation(120)
    assert ot_nce(features=x["features"][perm_t], labels=np.array(list("abcd"))[x["labels"]][perm_t],
                  source_features=x["source_features"][perm_s],
                  source_labels=x["source_labels"][perm_s] * 10 + 3) == pytest.approx(base, abs=1e-12)


def test_errors():
    x = make_inputs(DATA["cases"][0]["recipe"])
    with pytest.raises(ValueError, match="source_features have 15 columns but features have 16"):
        ot_nce(**{**x, "source_features": x["source_features"][:, 1:]})
    with pytest.raises(ValueError, match="length mismatch"):
        ot_nce(**{**x, "source_labels": x["source_labels"][1:]})
    with pytest.raises(ValueError, match="need at least 2 samples"):
        ot_nce(**{**x, "features": x["features"][:1], "labels": x["labels"][:1]})
    with pytest.raises(ValueError, match="2 distinct classes"):
        ot_nce(**{**x, "labels": np.zeros(100, int)})
    bad = x["source_features"].copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="source_features contain NaN or inf"):
        ot_nce(**{**x, "source_features": bad})
    with pytest.raises(ValueError, match="source_labels contain NaN"):
        ot_nce(**{**x, "source_labels": np.where(np.arange(120) == 3, np.nan, 1.0)})
    with pytest.raises(ValueError, match="at least one source sample"):
        ot_nce(**{**x, "source_features": np.zeros((0, 16)), "source_labels": np.zeros(0, int)})
    with pytest.raises(ValueError, match="as_reference"):
        ot_nce(**x, as_reference="yes")
