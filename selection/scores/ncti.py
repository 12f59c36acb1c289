"""NCTI (Wang et al., ICCV 2023, "How Far Pre-trained Models Are from Neural Collapse on the Target Dataset
Informs their Transferability"): the per-expert parts ``ncti_seli``, ``ncti_ncc`` and ``ncti_vc``, one
per neural-collapse phenomenon. The combined ``ncti`` normalises each part across the experts of one
(target, shots, probe set) and is a zoo-level method (selection.scores.zoo_level).

Source: BUserName/NCTI @ b18d39514a3f2a7a949500b467a38b93de1428e4, ``metrics.py`` ``NCTI_Score`` (returns
the three parts), combined in ``evaluate_metric_group1_cpu.py`` (metric ``ncti``: each part min-max scaled
over the models, ``mcscore + mascore - cpscore``). Paper: the method section (SELI geometry, nearest-centre
classifier, within-class variability collapse, and their sum; section numbers not checked against the
PDF). Where paper and code differ the
code is followed: PCA to 64 dimensions first, the shrinkage exp(-(variance of the first 32 principal
components)) choosing sklearn's LDA solver, the within-class variability read from the LDA posteriors.
"""
from __future__ import annotations

import hashlib

import numpy as np
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from selection.scores.reference_mode import check_as_reference
from selection.scores.registry import finite_score, is_constant, register, validate

NCTI_REPO = "BUserName/NCTI metrics.py @ b18d39514a3f2a7a949500b467a38b93de1428e4"
PCA_DIM = 64          # PCA(n_components=64)
SHRINK_COMPONENTS = 32  # temp = max(exp(-explained_variance_[:32].sum()), 1e-10)
MIN_SHRINKAGE = 1e-10   # at this floor the reference switches to LDA(solver='svd')
PCA_SEED = 1          # evaluate_metric_group1_cpu.py: fix_python_seed(1) seeds the (global) PCA randomness
# the three parts come from one computation: the last inputs' parts are kept, so a selection job that runs
# ncti_seli, ncti_ncc and ncti_vc on the same features pays for NCTI once (keyed by a digest of the arrays)
_LAST: dict[bytes, tuple[float, float, float]] = {}


def _digest(f: np.ndarray, y: np.ndarray) -> bytes:
    h = hashlib.blake2b(digest_size=20)
    for a in (f, y):
        h.update(str((a.dtype, a.shape)).encode())
        h.update(np.ascontiguousarray(a).data)
    return h.digest()


def ncti_parts(features, labels, as_reference: bool = False) -> tuple[float, float, float]:
    """(seli, ncc, vc) exactly as ``NCTI_Score`` returns them (vc = log of the summed nuclear norms,
    lower = better). features (N, D), labels (N,).

    1. PCA to k = 64 dimensions (sklearn ``PCA``, its default solver: exact for small inputs,
       randomized for large ones, as in the reference; the randomness seeded, random_state = 1, where the
       reference draws from the global numpy state that its script seeds with 1 once per run).
    2. s = max(exp(-sum of the first 32 explained variances), 1e-10); LDA (sklearn) with solver 'svd'
       when s is the floor 1e-10, else solver 'eigen' with shrinkage s, fitted on the PCA features.
    3. Z = the LDA projection (N, min(C - 1, k)), centred; seli = ||Z||_* (nuclear norm).
    4. P = the LDA posteriors (N, C); ncc = (1/N) sum_n P[n, y_n].
    5. vc = log sum_c ||P_c||_*, P_c the rows of P of class c.

    The reference needs min(N, D) >= 64 (else sklearn's PCA raises). Default: k = min(64, N, D), equal to
    the reference wherever it runs; ``as_reference=True``: a ValueError below 64. Raises ValueError for bad
    inputs (``validate``), constant features, or N <= C (the LDA is undefined).
    """
    exact = check_as_reference(as_reference)
    checked = validate(features=features, labels=labels)
    f, y, n_classes = checked.features, checked.labels, checked.n_classes
    n, d = f.shape
    if exact and min(n, d) < PCA_DIM:
        raise ValueError(f"ncti (as_reference): the reference's PCA(n_components={PCA_DIM}) needs at least "
                         f"{PCA_DIM} samples and feature dimensions; got N = {n}, D = {d}")
    if n <= n_classes:
        raise ValueError(f"ncti: the LDA needs more samples than classes; got N = {n}, C = {n_classes}")
    key = _digest(f, y)  # as_reference only adds the check above
    if key not in _LAST:
        _LAST.clear()
        _LAST[key] = _compute(f, y, n_classes)
    return _LAST[key]


def _compute(f: np.ndarray, y: np.ndarray, n_classes: int) -> tuple[float, float, float]:
    n, d = f.shape
    if is_constant(np.ptp(f, axis=0).max(), np.abs(f).max()):
        raise ValueError("ncti: the features are constant; PCA and LDA are undefined")
    pca = PCA(n_components=min(PCA_DIM, n, d), random_state=PCA_SEED)
    x = pca.fit_transform(f)
    shrinkage = max(float(np.exp(-pca.explained_variance_[:SHRINK_COMPONENTS].sum())), MIN_SHRINKAGE)
    lda = (LinearDiscriminantAnalysis(solver="svd") if shrinkage == MIN_SHRINKAGE
           else LinearDiscriminantAnalysis(solver="eigen", shrinkage=shrinkage))
    try:
        z = lda.fit_transform(x, y)
        post = lda.predict_proba(x)
    except np.linalg.LinAlgError as err:
        raise ValueError(f"ncti: the LDA failed on these features ({err})") from None
    z = z - z.mean(axis=0, keepdims=True)
    seli = np.linalg.norm(z, ord="nuc")
    ncc = post[np.arange(n), y].mean()
    vc = np.log(sum(np.linalg.norm(post[y == c], ord="nuc") for c in range(n_classes)))
    return (finite_score(seli, "ncti_seli"), finite_score(ncc, "ncti_ncc"), finite_score(vc, "ncti_vc"))


@register("ncti_seli")
def ncti_seli(*, features, labels, as_reference=False) -> float:
    """NCTI's SELI part: the nuclear norm of the centred LDA projection of the PCA features (``ncti_parts``;
    ``NCTI_Score``'s ``all_lowfeat_nuc``). features (N, D), labels (N,); >= 0, higher = better (how far the
    class structure spans the simplex)."""
    return ncti_parts(features, labels, as_reference)[0]


@register("ncti_ncc")
def ncti_ncc(*, features, labels, as_reference=False) -> float:
    """NCTI's nearest-centre-classifier part: the mean LDA posterior of the true class (``ncti_parts``;
    ``NCTI_Score``'s ``sfda_score``). features (N, D), labels (N,); in (0, 1], higher = better."""
    return ncti_parts(features, labels, as_reference)[1]


@register("ncti_vc")
def ncti_vc(*, features, labels, as_reference=False) -> float:
    """NCTI's within-class variability part, NEGATED: -log sum_c ||P_c||_* (``ncti_parts``; ``NCTI_Score``
    returns log sum_c ||P_c||_*, lower = better, and the reference subtracts its min-max-scaled value).
    Negated here so that, like every score, higher = better; the zoo-level ``ncti`` accounts for it
    (selection.scores.zoo_level: min-max(-v) = 1 - min-max(v), hence its offset -1). features (N, D),
    labels (N,)."""
    return -ncti_parts(features, labels, as_reference)[2]
