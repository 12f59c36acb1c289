"""ETran (Gholami et al. 2023) and NCTI (Wang et al. 2023): their per-expert parts against values from running
each reference code itself (tests/data/etran_reference.json, ncti_reference.json), the zoo-level combination
(selection.scores.zoo_level) against the references' own combination, its NaN rules, and the analysis hook
that puts the combined rows into tables/scores.csv."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp

from score_inputs import make_inputs
from selection.scores import SCORES, compute_score, ncti
from selection.scores.etran import etran_energy, etran_lda
from selection.scores.ncti import ncti_ncc, ncti_parts, ncti_seli, ncti_vc
from selection.scores.zoo_level import ZOO_METHODS, combine, combine_values

DATA = Path(__file__).parent / "data"
ETRAN = json.loads((DATA / "etran_reference.json").read_text())
NCTI = json.loads((DATA / "ncti_reference.json").read_text())


def expert_inputs(expert):
    x = make_inputs(expert["recipe"])
    return x["features"] * expert["scale"], x["labels"]


def zoo_table(zoo, parts):
    """A scores table of one (target, shots, probe) group: one row per expert and part."""
    rows = []
    for i, expert in enumerate(zoo["experts"]):
        f, y = expert_inputs(expert)
        for part in parts:
            rows.append({"expert": f"e{i}", "target": "t", "shots": "full", "probe": "per_class_25", "method": part,
                         "score": compute_score(part, features=f, labels=y), "seconds": 1.0 + i,
                         "feature_seconds": 10.0})
    return pd.DataFrame(rows)


def test_registered():
    for name in ("etran_energy", "etran_lda", "ncti_seli", "ncti_ncc", "ncti_vc"):
        assert name in SCORES
    assert not set(ZOO_METHODS) & set(SCORES), "zoo-level methods are no per-expert scores"
    assert ZOO_METHODS["etran"].weights == (0.15, 0.85)


# --------------------------------------------------------------------------- ETran

@pytest.mark.parametrize("zoo", ETRAN["zoos"], ids=lambda z: z["name"])
def test_etran_matches_the_reference_code(zoo):
    inputs = [expert_inputs(e) for e in zoo["experts"]]
    energy = [etran_energy(features=f) for f, _ in inputs]
    lda = [etran_lda(features=f, labels=y) for f, y in inputs]
    assert energy == pytest.approx(zoo["etran_energy"], rel=1e-12)
    assert [etran_energy(features=f, as_reference=True) for f, _ in inputs] == energy
    assert lda == pytest.approx(zoo["etran_lda"], rel=1e-12, abs=1e-13)
    assert combine_values(np.c_[energy, lda], ZOO_METHODS["etran"]) == pytest.approx(zoo["etran"], abs=1e-10)
    table = combine(zoo_table(zoo, ["etran_energy", "etran_lda"]))
    combined = table[table["method"] == "etran"].set_index("expert")
    assert combined["score"].tolist() == pytest.approx(zoo["etran"], abs=1e-10)
    assert combined["seconds"].tolist() == [2 * (1.0 + i) for i in range(len(zoo["experts"]))]
    assert (combined["feature_seconds"] == 10.0).all()


def test_etran_energy_definition_and_small_n():
    """The mean negative free energy (logsumexp of the features) of the floor(0.005 N) lowest samples; below 200
    samples the reference's set is empty (NaN there: reference_errors): the default takes the lowest one,
    as_reference raises."""
    case = ETRAN["reference_errors"]["energy_n199"]
    assert case["value"] == "np.float64(nan)"
    f = make_inputs(case["recipe"])["features"]
    assert etran_energy(features=f) == pytest.approx(logsumexp(f, axis=1).min(), rel=1e-14)
    with pytest.raises(ValueError, match="none for N = 199 < 200"):
        etran_energy(features=f, as_reference=True)
    g = np.random.default_rng(0).normal(size=(1000, 8))
    assert etran_energy(features=g) == pytest.approx(np.sort(logsumexp(g, axis=1))[:5].mean(), rel=1e-14)
    with pytest.raises(ValueError, match="NaN or inf"):
        etran_energy(features=np.where(np.eye(1000, 8) > 0, np.nan, g))


def test_etran_lda_is_the_nearest_mean_posterior():
    """V V^T = I in the reference's coef = M V V^T: the posterior is softmax(x . mu_c - |mu_c|^2 / 2 + log pi_c)."""
    f = np.array([[0.0, 0.0], [0.2, 0.0], [3.0, 0.0], [3.0, 0.4], [3.2, 0.0]])
    y = np.array([0, 0, 1, 1, 1])
    mu = np.stack([f[:2].mean(0), f[2:].mean(0)])
    logits = f @ mu.T - 0.5 * (mu ** 2).sum(1) + np.log([0.4, 0.6])
    p = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
    assert etran_lda(features=f, labels=y) == pytest.approx(p[np.arange(5), y].mean(), rel=1e-14)
    # labels are names: values and order do not matter
    perm = np.array([4, 2, 0, 3, 1])
    assert etran_lda(features=f[perm], labels=np.array(["b", "b", "a", "b", "a"])) == \
        pytest.approx(etran_lda(features=f, labels=y), rel=1e-14)


def test_etran_lda_where_the_reference_fails():
    case = ETRAN["reference_errors"]["lda_zero_within_scatter"]
    assert "LinAlgError" in case["value"]
    f = np.repeat(np.arange(3.0)[:, None] * np.ones((1, 4)), 5, axis=0)
    y = np.repeat(np.arange(3), 5)
    with pytest.raises(ValueError, match="shrinkage .* is undefined"):
        etran_lda(features=f, labels=y)
    # deviations from the class means that sum to 0 over the features: the reference's power iteration starts at 0
    g = f + np.tile([[1.0, -1.0, 0.0, 0.0], [-1.0, 1.0, 0.0, 0.0]], (8, 1))[:15]
    with pytest.raises(ValueError, match="shrinkage .* is undefined"):
        etran_lda(features=g, labels=y)
    with pytest.raises(ValueError, match="2 distinct classes"):
        etran_lda(features=f, labels=np.zeros(15))


# --------------------------------------------------------------------------- NCTI

@pytest.mark.parametrize("zoo", NCTI["zoos"], ids=lambda z: z["name"])
def test_ncti_matches_the_reference_code(zoo):
    """Equal to NCTI_Score's parts within rounding: exact PCA on the small zoos; on zoo_randomized_pca the reference's
    randomized PCA with the global numpy state it seeds (here random_state=1)."""
    rel = 1e-12 if zoo["name"] != "zoo_randomized_pca" else 1e-9
    parts = np.array([ncti_parts(*expert_inputs(e)) for e in zoo["experts"]])
    assert parts[:, 0] == pytest.approx(zoo["ncti_seli"], rel=rel)
    assert parts[:, 1] == pytest.approx(zoo["ncti_ncc"], rel=rel)
    assert parts[:, 2] == pytest.approx(zoo["ncti_vc"], rel=rel)
    f, y = expert_inputs(zoo["experts"][0])
    assert (ncti_seli(features=f, labels=y), ncti_ncc(features=f, labels=y), ncti_vc(features=f, labels=y)) == \
        (parts[0, 0], parts[0, 1], -parts[0, 2])
    if zoo["name"] != "zoo_randomized_pca":
        table = combine(zoo_table(zoo, ["ncti_seli", "ncti_ncc", "ncti_vc"]))
        combined = table[table["method"] == "ncti"]["score"].tolist()
        assert combined == pytest.approx(zoo["ncti"], abs=1e-9)
    assert combine_values(parts * [1, 1, -1], ZOO_METHODS["ncti"]) == pytest.approx(zoo["ncti"], abs=1e-6)


def test_ncti_covers_both_lda_solvers():
    solvers = {s.split(",")[0] for z in NCTI["zoos"] for s in z["lda_solver"]}
    assert solvers == {"svd", "eigen"}


def test_ncti_where_the_reference_cannot_run():
    for name in ("pca_d_below_64", "pca_n_below_64"):
        case = NCTI["reference_errors"][name]
        assert case["value"].startswith("ValueError: n_components=64")
        f, y = expert_inputs({"recipe": case["recipe"], "scale": 1.0})
        with pytest.raises(ValueError, match="needs at least 64 samples and feature dimensions"):
            ncti_seli(features=f, labels=y, as_reference=True)
        assert np.isfinite(ncti_seli(features=f, labels=y))   # default: PCA to min(64, N, D)
    f, y = expert_inputs({"recipe": {"seed": 0, "n": 100, "d": 16, "c": 5}, "scale": 1.0})
    with pytest.raises(ValueError, match="more samples than classes"):
        ncti_ncc(features=f[:6], labels=np.arange(6))
    with pytest.raises(ValueError, match="constant"):
        ncti_vc(features=np.ones((100, 16)), labels=y)
    bad = f.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        ncti_seli(features=bad, labels=y)


def test_ncti_parts_are_computed_once_per_input(monkeypatch):
    calls = []
    compute = ncti._compute
    monkeypatch.setattr(ncti, "_compute", lambda *a: calls.append(1) or compute(*a))
    f, y = expert_inputs({"recipe": {"seed": 3, "n": 120, "d": 20, "c": 4}, "scale": 1.0})
    first = [compute_score(m, features=f, labels=y) for m in ("ncti_seli", "ncti_ncc", "ncti_vc")]
    assert len(calls) == 1
    g = f.copy()
    g[0, 0] += 1.0
    assert compute_score("ncti_seli", features=g, labels=y) != first[0] and len(calls) == 2


# --------------------------------------------------------------------------- zoo-level combination

def _rows(values, method, probe="per_class_25", target="t"):
    return [{"expert": e, "target": target, "shots": "5", "probe": probe, "method": method, "score": v,
             "seconds": 0.5, "feature_seconds": 2.0} for e, v in values.items()]


def test_combine_nan_rules():
    energy = {"a": 1.0, "b": 3.0, "c": 2.0, "d": 5.0}
    lda = {"a": 0.2, "b": 0.4, "c": np.nan, "d": 0.3}          # c: a NaN part; e: a part missing
    df = pd.DataFrame(_rows(energy, "etran_energy") + _rows(lda, "etran_lda") + _rows({"e": 1.0}, "etran_energy")
                      + _rows({"a": 1.0}, "etran_energy", probe="all") + _rows({"a": 0.5}, "etran_lda", probe="all"))
    out = combine(df)
    got = out[out["method"] == "etran"].set_index(["probe", "expert"])["score"]
    # over a, b, d only: energy (0, 0.5, 1), lda (0, 1, 0.5)
    assert got[("per_class_25", "a")] == 0.0
    assert got[("per_class_25", "b")] == pytest.approx(0.15 * 0.5 + 0.85)
    assert got[("per_class_25", "d")] == pytest.approx(0.15 + 0.85 * 0.5)
    assert np.isnan(got[("per_class_25", "c")]) and np.isnan(got[("per_class_25", "e")])
    assert np.isnan(got[("all", "a")])                          # a single expert: min-max undefined
    rows = out[out["method"] == "etran"].set_index(["probe", "expert"])
    assert rows.loc[("per_class_25", "a"), "seconds"] == 1.0 and rows.loc[("per_class_25", "e"), "seconds"] == 0.5
    assert (rows["feature_seconds"] == 2.0).all() and (rows["shots"] == "5").all()
    assert list(out.columns) == list(df.columns)
    assert "ncti" not in set(out["method"])                     # its parts are absent
    pd.testing.assert_frame_equal(combine(out), out)             # combining twice changes nothing


def test_combine_constant_part_and_missing_probe():
    df = pd.DataFrame(_rows({"a": 1.0, "b": 1.0 + 1e-15, "c": 1.0}, "etran_energy")
                      + _rows({"a": 0.1, "b": 0.2, "c": 0.3}, "etran_lda"))
    out = combine(df)
    assert out[out["method"] == "etran"]["score"].isna().all()   # energy constant within rounding: 0/0
    df2 = df.assign(probe=np.nan, score=[1.0, 2.0, 3.0, 0.1, 0.2, 0.3])
    out2 = combine(df2)
    assert out2[out2["method"] == "etran"]["score"].tolist() == pytest.approx([0.0, 0.5, 1.0])
    assert combine(df.iloc[:0]).empty


def test_scores_table_carries_the_combined_rows(tmp_path):
    """analysis: tables/scores.csv (scores_table) gets the zoo-level rows, so every protocol sees them."""
    from analysis.tables import scores_table

    zoo = NCTI["zoos"][0]
    table = zoo_table(zoo, ["ncti_seli", "ncti_ncc", "ncti_vc"])
    paths = []
    for expert, rows in table.groupby("expert"):
        path = tmp_path / f"{expert}.json"
        path.write_text(json.dumps({"rows": rows.to_dict("records"), "failures": []}))
        paths.append(path)
    scores = scores_table(paths)
    assert set(scores["method"]) == {"ncti_seli", "ncti_ncc", "ncti_vc", "ncti"}
    assert scores[scores["method"] == "ncti"]["score"].tolist() == pytest.approx(zoo["ncti"], abs=1e-9)
