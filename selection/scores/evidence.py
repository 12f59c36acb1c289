"""Bayesian-evidence scores on target features: LogME (You et al.)."""
from __future__ import annotations

import numpy as np
from scipy import linalg

from selection.scores.reference_mode import check_as_reference, reference_value
from selection.scores.registry import class_sums, finite_score, register, validate

LOGME_MAX_ITER = 11     # thuml/LogME: `for _ in range(11)`
LOGME_RTOL = 1e-3       # stop when |t' - t| / t <= 1e-3, t = alpha / beta
LOGME_EPS = 1e-5        # added to m^T m and ||y - F m||^2 in the updates


def _spectrum(f: np.ndarray, labels: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(sigma, x): the r non-zero eigenvalues sigma_i = s_i^2 of F^T F and x = U_r^T Y (r, C)
    for the one-vs-rest targets Y, from the thin SVD F = U S V^T via the smaller Gram matrix.

    Eigenvalues below max(N, D) * eps * max are numerically zero and dropped: in the
    evidence a direction with sigma -> 0 is the same as a zero direction, so the cut only
    removes rounding noise (thuml's truncated_svd keeps s > 1e-10 instead).
    """
    n, d = f.shape
    if d <= n:
        vals, vecs = linalg.eigh(f.T @ f, driver="evr", check_finite=False)
    else:
        vals, vecs = linalg.eigh(f @ f.T, driver="evr", check_finite=False)
    keep = vals > max(n, d) * np.finfo(np.float64).eps * max(float(vals[-1]), 0.0)
    vals, vecs = vals[keep], vecs[:, keep]
    if d <= n:   # u_i = F v_i / s_i, so U^T Y = diag(1/s) V^T (Y^T F)^T
        x = (vecs.T @ class_sums(f, labels, n_classes).T) / np.sqrt(vals)[:, None]
    else:        # the eigenvectors of F F^T are U itself
        x = class_sums(vecs, labels, n_classes).T
    return vals, x


def _spectrum_reference(f: np.ndarray, labels: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(sigma, x) as thuml/LogME ``_fit_fixed_point`` builds them: N > D: eigen-decomposition
    of F^T F by ``np.linalg.svd`` (``truncated_svd``), s = sqrt, keeping s > 1e-10; N <= D: the
    thin ``np.linalg.svd(F)``, keeping all N singular values, zero ones included."""
    n, d = f.shape
    if n > d:
        _, s2, vh = np.linalg.svd(f.T @ f)
        s = np.sqrt(s2)
        k = int(np.sum(s > 1e-10))
        u = (f @ vh.T)[:, :k] / s[:k]
        s = s[:k]
    else:
        u, s, _ = np.linalg.svd(f, full_matrices=False)
    onehot = np.zeros((n, n_classes))
    onehot[np.arange(n), labels] = 1.0
    return s ** 2, u.T @ onehot


@register("logme")
def logme(*, features, labels, as_reference=False) -> float:
    """LogME (You et al. 2021); the fixed-point iteration of thuml/LogME ``LogME.py``
    (``_fit_fixed_point``), with the log-determinant counted correctly when N < D.

    For each class c, target y = 1[label == c], prior w ~ N(0, I / alpha) and noise
    precision beta on y = F w: with the SVD F = U S V^T of rank r, sigma_i = s_i^2 and
    x = U_r^T y, iterate from alpha = beta = 1 (at most 11 times, until |t' - t| / t <= 1e-3
    with t = alpha / beta): gamma = sum sigma/(sigma + t), m2 = sum sigma x^2/(t + sigma)^2,
    res2 = sum x^2/(1 + sigma/t)^2 + ||y||^2 - ||x||^2, alpha = gamma/(m2 + 1e-5),
    beta = (N - gamma)/(res2 + 1e-5). The evidence per sample is
    [D/2 log alpha + N/2 log beta - 1/2 log|alpha I + beta F^T F| - beta/2 res2 - alpha/2 m2
    - N/2 log 2 pi] / N, and LogME is its mean over the C classes.
    log|alpha I + beta F^T F| = sum_{i <= r} log(alpha + beta sigma_i) + (D - r) log alpha:
    the D - r zero-eigenvalue directions count. The reference sums over the r non-zero
    sigma only, which drops (D - r) log alpha and is wrong when N < D (thuml/LogME PR #24);
    for full-rank F with N > D the two agree. Classes are iterated jointly, each stopping
    at its own convergence as in the reference's per-class loop.
    features (N, D), labels (N,); returns the mean per-sample log evidence (nats), higher = better.

    ``as_reference=True``: the value of thuml/LogME ``LogME.fit`` (``_fit_fixed_point``, commit
    56551ca; the same code as TencentARC/SFDA ``LogME_Score``): its spectrum (``truncated_svd``
    with s > 1e-10 when N > D, all N singular values of the thin SVD when N <= D) and its
    log-determinant over those values only, so the (D - r) log alpha term is missing; a
    non-finite evidence is NaN. Raises ValueError for all-zero features or bad inputs.
    """
    exact = check_as_reference(as_reference)
    checked = validate(features=features, labels=labels)
    f, y, n_classes = checked.features, checked.labels, checked.n_classes
    n, d = f.shape
    sigma, x = (_spectrum_reference if exact else _spectrum)(f, y, n_classes)
    rank = sigma.shape[0]
    if rank == 0 or not sigma.max() > 0:
        raise ValueError("logme: features are all zero (rank 0); the evidence is undefined")
    sigma = sigma[:, None]
    x2 = x ** 2
    res_x2 = np.bincount(y, minlength=n_classes) - x2.sum(axis=0)   # ||y||^2 - ||x||^2

    alpha = np.ones(n_classes)
    beta = np.ones(n_classes)
    m2 = np.zeros(n_classes)
    res2 = np.zeros(n_classes)
    active = np.arange(n_classes)
    for _ in range(LOGME_MAX_ITER):
        t = alpha[active] / beta[active]
        gamma = (sigma / (sigma + t)).sum(axis=0)
        m2[active] = (sigma * x2[:, active] / (t + sigma) ** 2).sum(axis=0)
        res2[active] = (x2[:, active] / (1 + sigma / t) ** 2).sum(axis=0) + res_x2[active]
        alpha[active] = gamma / (m2[active] + LOGME_EPS)
        beta[active] = (n - gamma) / (res2[active] + LOGME_EPS)
        t_new = alpha[active] / beta[active]
        active = active[np.abs(t_new - t) / t > LOGME_RTOL]
        if active.size == 0:
            break

    log_det = np.log(alpha + beta * sigma).sum(axis=0)
    if not exact:   # the reference leaves out the D - r zero-eigenvalue directions
        log_det = log_det + (d - rank) * np.log(alpha)
    evidence = (d / 2.0 * np.log(alpha) + n / 2.0 * np.log(beta) - 0.5 * log_det
                - beta / 2.0 * res2 - alpha / 2.0 * m2 - n / 2.0 * np.log(2 * np.pi)) / n
    if exact:
        return reference_value(np.mean(evidence))
    return finite_score(np.mean(evidence), "logme")
