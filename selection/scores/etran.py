"""ETran (Gholami et al., ICCV 2023, "ETran: Energy-Based Transferability Estimation"): the per-expert parts
``etran_energy`` and ``etran_lda``. The combined ``etran`` scales each part across the experts of one
(target, shots, probe set) and is a zoo-level method (selection.scores.zoo_level), not a per-expert score.

Source: mgholamikn/ETran @ d4551ed8f41f4ed6eba08b9cc1a78bae178acd19, ``metrics.py`` (``Energy_Score``,
``LDA_Score`` with its class ``LDA``), called as ``evaluate_metric.py`` calls them (metrics ``energy`` and
``lda``); the combination in ``tw.py`` (metric ``etran``). Paper: the method section (energy score S_en, LDA-based
classification score S_cls, SVD-based regression score S_reg). Paper vs code: the paper sums three
scores; the code ranks classification with 0.15 * scaled energy + 0.85 * scaled LDA score (``tw.py``), no
regression score (its ``_solve_eigen2`` is dead code), and applies the energy to the penultimate
*features* (``Energy_Score(X_features, 0.5, 'bot')``), not to logits. Here: the code.
"""
from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from selection.scores.reference_mode import check_as_reference
from selection.scores.registry import as_float_2d, class_sums, finite_score, is_constant, register, validate

ETRAN_REPO = "mgholamikn/ETran metrics.py @ d4551ed8f41f4ed6eba08b9cc1a78bae178acd19"
ENERGY_PERCENT = 0.5   # evaluate_metric.py: Energy_Score(X_features, 0.5, 'bot')


def energy_count(n: int) -> int:
    """How many lowest-energy samples the reference averages: ``int(percent * 10) * n // 1000`` (0.5% of
    the samples, rounded down; 0 below 200 samples)."""
    return int(ENERGY_PERCENT * 10) * n // 1000


@register("etran_energy")
def etran_energy(*, features, as_reference=False) -> float:
    """ETran's energy score (``Energy_Score(X, 0.5, 'bot')``): per sample the negative free energy
    -E(x) = logsumexp_d x_d over the D feature values (the features read as logits), and the mean of
    -E over the floor(0.005 N) samples with the lowest -E. features (N, D); returns a float in the
    features' units, higher = better (the reference ranks the experts by it as it is).

    The reference's set of samples is empty below N = 200 (its mean is NaN). Default: at least the one
    lowest sample, so the default equals the reference for every N >= 200 and is defined below it.
    ``as_reference=True``: the reference's count exactly, a ValueError where that set is empty.
    Raises ValueError for non-finite or non-2-D features.
    """
    exact = check_as_reference(as_reference)
    f = as_float_2d(features, "features")
    n = f.shape[0]
    k = energy_count(n)
    if k == 0:
        if exact:
            raise ValueError(f"etran_energy (as_reference): the reference averages the int(0.5 * 10) * N // 1000 "
                             f"lowest-energy samples, none for N = {n} < 200: its value is undefined (NaN)")
        k = 1
    neg_energy = logsumexp(f, axis=1)
    lowest = np.partition(neg_energy, k - 1)[:k]
    return finite_score(np.mean(lowest), "etran_energy")


@register("etran_lda")
def etran_lda(*, features, labels, as_reference=False) -> float:
    """ETran's LDA-based classification score (``LDA_Score``): the mean posterior of the true class,
    (1/N) sum_n p(y_n | x_n), under the reference's ``LDA`` classifier. features (N, D), labels (N,);
    returns a value in (0, 1], higher = better.

    The reference fits the class means mu_c, the priors pi_c = N_c / N, the shrunk within-class
    scatter S_w and S_b = S_t - S_w, sorts the eigenvectors V of ``np.linalg.eigh(inv(S_w) @ S_b)`` and
    sets coef = M V V^T, intercept_c = -1/2 mu_c . coef_c + log pi_c, p = softmax(X coef^T + intercept).
    V holds all D eigenvectors of a symmetric matrix (``eigh`` reads the lower triangle), so V V^T = I and
    coef = M: the classifier is the nearest class mean with unit isotropic covariance,
    p(c | x) = softmax_c(x . mu_c - 1/2 ||mu_c||^2 + log pi_c), whatever the shrinkage. That is what is
    computed here, in O(N D C) (tests/data/etran_reference.json: equal to the reference within 1e-12).

    Where the reference cannot run: its shrinkage comes from 3 power iterations on S_w started at
    S_w 1 (``iterative_A``), which is 0 when every sample's deviation from its class mean sums to 0
    over the features (e.g. zero within-class scatter, every class one point); the reference then
    fails (NaN shrinkage, ``LinAlgError``), and so does this score, with a ValueError. ``as_reference``
    changes nothing (accepted so that a ``ref_`` variant of ETran can be configured). Raises ValueError
    for bad inputs (see ``validate``).
    """
    check_as_reference(as_reference)
    checked = validate(features=features, labels=labels)
    f, y, n_classes = checked.features, checked.labels, checked.n_classes
    counts = np.bincount(y, minlength=n_classes)
    means = class_sums(f, y, n_classes) / counts[:, None]
    deviation_sums = (f - means[y]).sum(axis=1)
    if is_constant(np.abs(deviation_sums).max(), np.abs(f).max() * f.shape[1]):
        raise ValueError("etran_lda: every sample's deviation from its class mean sums to 0 over the features "
                         "(e.g. no within-class scatter): the reference's shrinkage (power iteration from "
                         "S_w 1 = 0) is undefined and its LDA fails")
    logits = f @ means.T - 0.5 * np.einsum("cd,cd->c", means, means) + np.log(counts / f.shape[0])
    log_post = logits - logsumexp(logits, axis=1, keepdims=True)
    return finite_score(np.mean(np.exp(log_post[np.arange(f.shape[0]), y])), "etran_lda")
