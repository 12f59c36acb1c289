"""Scores comparing the model's representation with a small probe model trained on the target: RSA and DDS."""
from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from sklearn.preprocessing import StandardScaler

from selection.scores.reference_mode import check_as_reference, reference_value
from selection.scores.registry import as_float_2d, finite_score, is_constant, pca_reduce, register, validate


def _paired(features, probe_features, labels, min_samples: int, name: str):
    """Validate features / probe_features (same images, same row order) and optional labels."""
    f = as_float_2d(features, "features")
    p = as_float_2d(probe_features, "probe_features")
    if p.shape[0] != f.shape[0]:
        raise ValueError(f"length mismatch: probe_features has {p.shape[0]} rows "
                         f"but features has {f.shape[0]} rows")
    if labels is not None:
        validate(features=f, labels=labels)  # only checks the labels match the rows
    if f.shape[0] < min_samples:
        raise ValueError(f"{name} needs at least {min_samples} samples; got {f.shape[0]}")
    return f, p


def _upper(mat: np.ndarray) -> np.ndarray:
    """Strict upper triangle, row-major (the order of np.triu_indices(n, 1))."""
    return mat[np.triu(np.ones(mat.shape, dtype=bool), 1)]


# --------------------------------------------------------------------------- RSA

def _row_corr(x: np.ndarray, name: str) -> np.ndarray:
    """(N, N) Pearson correlation between the rows of x (np.corrcoef(x)) as one Gram matrix."""
    if is_constant(np.ptp(x, axis=1), np.abs(x).max(axis=1)).any():
        raise ValueError(f"rsa: some row of {name} is constant; its correlation with other "
                         "samples is undefined")
    z = x - x.mean(axis=1, keepdims=True)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    return z @ z.T


@register("rsa")
def rsa(*, features, probe_features, labels=None, pca_dim=None, as_reference=False) -> float:
    """RSA (Dwivedi & Roig 2019) as Deshpande et al. 2021, App. C, eq. 9-11.

    features (N, D) and probe_features (N, D') of the same images in the same order; returns a
    Spearman correlation in [-1, 1], higher = better. rdm_f(i, j) = 1 - Pearson(f(x_i), f(x_j))
    on the raw features, likewise rdm_small on ``probe_features`` (the same images through a
    small network trained on the target); score = Spearman(rdm_f, rdm_small) over the strict
    upper triangle. ``pca_dim``: optional PCA of each set first (as dbolya/parc ``feature_reduce``).
    ``labels`` is not used by RSA; if given it is only checked against the rows.

    ``as_reference=True``: the value of dbolya/parc ``methods.RSA.forward`` (commit ddfca43), the
    code behind PARC's Tables 1-2: each set is standardised per feature (StandardScaler) before
    the RDMs and the score is 100 * the Spearman correlation, in [-100, 100]; degenerate inputs
    give NaN as there. Raises ValueError for N < 3, a constant row or RDM (default) or bad inputs.
    "Constant" allows rounding (``is_constant``): before, an RDM that is 0 only up to round-off
    (e.g. rows that are positive rescalings of one pattern) gave a finite score ranking that noise.
    """
    exact = check_as_reference(as_reference)
    f, p = _paired(features, probe_features, labels, 3, "rsa")
    f, p = pca_reduce(f, pca_dim), pca_reduce(p, pca_dim)
    if exact:
        with np.errstate(divide="ignore", invalid="ignore"):
            rdm_f = 1.0 - _upper(np.corrcoef(StandardScaler().fit_transform(f)))
            rdm_p = 1.0 - _upper(np.corrcoef(StandardScaler().fit_transform(p)))
            return reference_value(100.0 * spearmanr(rdm_f, rdm_p)[0])
    rdm_f = 1.0 - _upper(_row_corr(f, "features"))
    rdm_p = 1.0 - _upper(_row_corr(p, "probe_features"))
    for rdm, name in ((rdm_f, "features"), (rdm_p, "probe_features")):
        if is_constant(np.ptp(rdm)):
            raise ValueError(f"rsa: the RDM of {name} is constant (up to rounding); rank correlation undefined")
    return finite_score(spearmanr(rdm_f, rdm_p)[0], "rsa")


# --------------------------------------------------------------------------- DDS

def _cosine_rdm(x: np.ndarray) -> np.ndarray:
    """1 - cosine similarity of rows (sklearn cosine_similarity: all-zero rows get similarity 0)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    z = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    return 1.0 - z @ z.T


def _u_center(gram: np.ndarray) -> np.ndarray:
    """Unbiased (U-) centering of a symmetric matrix (Szekely & Rizzo 2014), in place; diagonal zeroed."""
    n = gram.shape[0]
    np.fill_diagonal(gram, 0.0)
    means = gram.sum(axis=0) / (n - 2)
    means -= means.sum() / (2 * (n - 1))
    gram -= means[:, None]
    gram -= means[None, :]
    np.fill_diagonal(gram, 0.0)
    return gram


@register("dds")
def dds(*, features, probe_features, pca_dim=None, as_reference=False) -> float:
    """DDS (Dwivedi et al. 2020); follows dbolya/parc ``methods.DDS`` (cosine distance, z-score, debiased CKA).

    features (N, D) and probe_features (N, D') of the same images; returns a value in
    [-100, 100], higher = better.

    Optional PCA of each set to ``pca_dim`` dims (randomized, random_state=1919 as in PARC),
    per-feature standardisation (StandardScaler), D = 1 - cosine similarity between samples for
    each set, both U-centred (unbiased HSIC); score = 100 * <D_f, D_p>_F / (||D_f||_F ||D_p||_F),
    i.e. 100 * debiased CKA of the two distance matrices, in [-100, 100].

    The default equals the reference (dbolya/parc ``DDS.get_similarity_from_rdms``, commit ddfca43) up to
    rounding; ``as_reference=True`` only returns NaN where the reference divides 0 by 0 (a zero
    centred distance matrix) instead of raising ValueError. The default tests that matrix for zero
    up to rounding (``is_constant``; cosine distances lie in [0, 2]), not for exact zeros.
    """
    exact = check_as_reference(as_reference)
    f, p = _paired(features, probe_features, None, 4, "dds")
    grams = []
    for x, name in ((f, "features"), (p, "probe_features")):
        x = StandardScaler().fit_transform(pca_reduce(x, pca_dim))
        grams.append(_u_center(_cosine_rdm(x)))
        if not np.any(grams[-1]) and exact:
            return float("nan")
        if is_constant(np.ptp(grams[-1])):
            raise ValueError(f"dds: the centred distance matrix of {name} is zero "
                             "(all samples equidistant); CKA undefined")
    d_f, d_p = grams
    value = np.vdot(d_f, d_p) / (np.linalg.norm(d_f) * np.linalg.norm(d_p))
    return finite_score(100.0 * value, "dds")
