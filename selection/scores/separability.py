"""Class-separability scores on target features: H-score (Bao et al.), regularised H-score
(Ibrahim et al.), TransRate (Huang et al.) and GBC (Pandy et al.)."""
from __future__ import annotations

import numbers

import numpy as np
from scipy import linalg
from sklearn.preprocessing import StandardScaler

from selection.scores.reference_mode import check_as_reference, reference_value
from selection.scores.registry import class_sums, finite_score, pca_reduce, register, validate

PINV_RCOND = 1e-15  # tllib: np.linalg.pinv(cov, rcond=1e-15)


# --------------------------------------------------------------------------- shared linear algebra

def _centred(f: np.ndarray) -> np.ndarray:
    return f - f.mean(axis=0, keepdims=True)


def _between_rows(xc: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """B (C, D) with rows sqrt(n_c) (mean_c - mean), so B^T B = sum_i (g_i - mean)(g_i - mean)^T
    for g_i = E[f | y_i]: np.cov(g) = B^T B / (N - 1). ``xc`` must be centred."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    return class_sums(xc, labels, n_classes) / np.sqrt(counts)[:, None]


def _trace_inv(xc: np.ndarray, b: np.ndarray, scale: float, ridge: float,
               gram: np.ndarray | None = None) -> float:
    """trace(B A^+ B^T) for A = scale * Xc^T Xc + ridge * I (D x D), where the rows of B lie
    in the row span of the centred features Xc (true for ``_between_rows``).

    The pseudo-inverse drops eigenvalues <= 1e-15 * max, as np.linalg.pinv(rcond=1e-15).
    N >= D: one Cholesky solve with A (its eigendecomposition only if A is numerically
    singular). N < D: with the thin SVD Xc = U S V^T, A = V (scale S^2 + ridge) V^T on the
    row span and B has nothing outside it, so the trace is
    sum_i ||B v_i||^2 / (scale s_i^2 + ridge): nothing D x D is formed.
    ``gram``: Xc^T Xc if the caller already has it (N >= D).
    """
    n, d = xc.shape
    if d <= n:
        a = scale * (xc.T @ xc if gram is None else gram)
        a.flat[:: d + 1] += ridge
        try:
            chol = linalg.cho_factor(a, lower=True, check_finite=False)
        except linalg.LinAlgError:
            pass
        else:
            w = linalg.solve_triangular(chol[0], b.T, lower=True, check_finite=False)
            return float(np.vdot(w, w))
        evals, evecs = linalg.eigh(a, check_finite=False, driver="evr")
        proj = b @ evecs
    else:
        _, s, vt = linalg.svd(xc, full_matrices=False, check_finite=False)
        evals = scale * s ** 2 + ridge
        proj = b @ vt.T
    keep = evals > PINV_RCOND * float(np.abs(evals).max())
    if not keep.any():
        return 0.0
    return float(np.sum(proj[:, keep] ** 2 / evals[keep]))


# --------------------------------------------------------------------------- H-score

@register("hscore")
def hscore(*, features, labels, pca_dim=None, as_reference=False) -> float:
    """H-score (Bao et al. 2019); follows tllib ``ranking/hscore.py`` ``h_score`` (commit c4aa59e).

    features (N, D), labels (N,); returns a trace (>= 0, at most C - 1 for non-singular cov(f)),
    higher = better. ``pca_dim``: optional PCA first (dbolya/parc ``feature_reduce``, "HScore f=32").

    H = trace(cov(f)^+ cov(E[f | y])), both covariances with ddof = 1 (np.cov), the
    pseudo-inverse with rcond = 1e-15. Computed as trace(B (Xc^T Xc)^+ B^T) with B the
    (C, D) rows sqrt(n_c)(mean_c - mean) (the N - 1 factors cancel): one Cholesky solve
    instead of tllib's D x D pinv and product. Equals tllib whenever cov(f) is numerically
    non-singular; when N < D it works in the N-dim row span of the centred features
    (there H = C - 1 for features in general position).

    ``as_reference=True``: the value of dbolya/parc ``methods.HScore`` (``get_hscore_fast``,
    commit ddfca43), the code of PARC's Tables 1-3: features standardised per dimension
    (StandardScaler) after the optional PCA, class means divided by (n_c + 1e-8), and
    trace(np.linalg.pinv(cov_f, rcond=1e-15) @ cov_g) on the D x D matrices; when cov_f is
    singular (N <= D) this keeps the pseudo-inverse's rounding-level eigenvalues, as the
    reference does. Raises ValueError for bad inputs.
    """
    exact = check_as_reference(as_reference)
    checked = validate(features=features, labels=labels)
    if exact:
        return _hscore_parc(pca_reduce(checked.features, pca_dim), checked.labels, checked.n_classes)
    xc = _centred(pca_reduce(checked.features, pca_dim))
    b = _between_rows(xc, checked.labels, checked.n_classes)
    return finite_score(_trace_inv(xc, b, 1.0, 0.0), "hscore")


def _hscore_parc(f: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
    """dbolya/parc ``HScore.get_hscore_fast`` on standardised features (see ``hscore``)."""
    f = StandardScaler().fit_transform(f)
    onehot = np.zeros((f.shape[0], n_classes))
    onehot[np.arange(f.shape[0]), labels] = 1.0
    means = (onehot.T @ f) / (onehot.sum(axis=0)[:, None] + 1e-8)
    cov_f = np.cov(f, rowvar=False, ddof=1).reshape(f.shape[1], f.shape[1])
    cov_g = np.cov(onehot @ means, rowvar=False, ddof=1).reshape(f.shape[1], f.shape[1])
    return reference_value(np.trace(np.linalg.pinv(cov_f, rcond=1e-15) @ cov_g))


def _ledoit_wolf(xc: np.ndarray, gram: np.ndarray) -> tuple[float, float]:
    """(shrinkage, mu) of sklearn's LedoitWolf on centred data, from O(N D) moments and
    ||Xc^T Xc||_F^2 = ||Xc Xc^T||_F^2 (``gram``: the smaller of the two Gram matrices).
    mu = trace(S) / D with S = Xc^T Xc / N."""
    n, d = xc.shape
    sq_rows = np.einsum("ij,ij->i", xc, xc)
    emp_trace = float(sq_rows.sum()) / n
    mu = emp_trace / d
    if d == 1:
        return 0.0, mu
    delta_ = float(np.vdot(gram, gram)) / n ** 2
    beta_ = float(sq_rows @ sq_rows)                    # sum of <X2^T, X2> = sum_i ||x_i||^4
    beta = (beta_ / n - delta_) / (d * n)
    delta = (delta_ - 2.0 * mu * emp_trace + d * mu ** 2) / d
    beta = min(beta, delta)
    return (0.0 if beta == 0 else beta / delta), mu


@register("hscore_regularized")
def hscore_regularized(*, features, labels) -> float:
    """Regularised H-score (Ibrahim et al. 2022); follows tllib ``regularized_h_score``.

    H_a = trace(S_a^+ (1 - a) cov(E[f | y])) with S_a = (1 - a) S + a mu I the Ledoit-Wolf
    covariance of the centred features (S = Xc^T Xc / N, mu = trace(S) / D, shrinkage a
    as sklearn ``ledoit_wolf_shrinkage``) and cov(E[f | y]) with ddof = 1, as tllib mixes
    them. Computed as (1 - a) / (N - 1) * trace(B S_a^-1 B^T) with one Cholesky solve
    (N >= D) or in the N-dim row span of Xc (N < D), where S_a acts on the rows of B.
    """
    checked = validate(features=features, labels=labels)
    xc = _centred(checked.features)
    n, d = xc.shape
    gram = xc.T @ xc if d <= n else xc @ xc.T
    shrink, mu = _ledoit_wolf(xc, gram)
    b = _between_rows(xc, checked.labels, checked.n_classes)
    value = (1.0 - shrink) / (n - 1) * _trace_inv(xc, b, (1.0 - shrink) / n, shrink * mu,
                                                  gram if d <= n else None)
    return finite_score(value, "hscore_regularized")


# --------------------------------------------------------------------------- TransRate

def _coding_rate(z: np.ndarray, eps: float) -> float:
    """R(Z, eps) = 1/2 logdet(I_D + Z^T Z / (n eps)) = 1/2 logdet(I_n + Z Z^T / (n eps)),
    via the smaller Gram matrix; I + PSD is SPD, so its log-determinant comes from Cholesky."""
    n, d = z.shape
    gram = z.T @ z if d <= n else z @ z.T
    gram *= 1.0 / (n * eps)
    gram.flat[:: gram.shape[0] + 1] += 1.0
    chol = linalg.cholesky(gram, lower=True, check_finite=False)
    return float(np.sum(np.log(np.diag(chol))))


@register("transrate")
def transrate(*, features, labels, eps=1e-4) -> float:
    """TransRate (Huang et al. 2022); follows tllib ``ranking/transrate.py``.

    TrR = R(Z, eps) - (1/C) sum_c R(Z_c, eps), R(Z, eps) = 1/2 logdet(I + Z^T Z / (n eps))
    with n the rows of Z, Z the features centred once over all samples and Z_c its rows
    of class c (not re-centred), eps = 1e-4 as tllib. Each D x D log-determinant is taken
    as the equal logdet(I + Z Z^T / (n eps)) of the smaller Gram matrix when n < D.
    """
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
        raise ValueError(f"eps must be a positive number; got {eps!r}")
    checked = validate(features=features, labels=labels)
    z = _centred(checked.features)
    order = np.argsort(checked.labels, kind="stable")
    bounds = np.cumsum(np.bincount(checked.labels, minlength=checked.n_classes))[:-1]
    per_class = [_coding_rate(part, float(eps)) for part in np.split(z[order], bounds)]
    return finite_score(_coding_rate(z, float(eps)) - np.mean(per_class), "transrate")


# --------------------------------------------------------------------------- GBC

def _pca_project(f: np.ndarray, n_components: int) -> np.ndarray:
    """Exact PCA scores of ``f`` on its top ``n_components`` principal axes (sklearn
    ``PCA(svd_solver='full').fit_transform`` up to the sign of each axis), from the
    eigendecomposition of the smaller of Xc^T Xc and Xc Xc^T."""
    xc = _centred(f)
    n, d = xc.shape
    k = int(min(n_components, n, d))
    if d <= n:
        _, vecs = linalg.eigh(xc.T @ xc, subset_by_index=[d - k, d - 1], driver="evr",
                              check_finite=False)
        return xc @ vecs[:, ::-1]
    vals, vecs = linalg.eigh(xc @ xc.T, subset_by_index=[n - k, n - 1], driver="evr",
                             check_finite=False)
    return vecs[:, ::-1] * np.sqrt(np.clip(vals[::-1], 0.0, None))


GBC_VAR_FLOOR = 1e-4  # reference: tf.maximum(variance, 1e-4)


@register("gbc")
def gbc(*, features, labels, pca_dim=64, gaussian_type="spherical") -> float:
    """Gaussian Bhattacharyya Coefficient (Pandy et al. 2022); follows google-research
    ``stable_transfer/transferability/gbc.py`` with its source-selection config.

    Features are PCA-reduced to ``pca_dim`` dims (None: no PCA; clipped to min(N, D),
    where sklearn's PCA would refuse), each class c gets a Gaussian with the class mean
    mu_c and per-dim population variance floored at 1e-4 (``gaussian_type="diagonal"``),
    averaged over dims to one scalar for ``"spherical"`` (default). With s = (s_1 + s_2)/2,
    D_B = sum (mu_1 - mu_2)^2 / (8 s) + 1/2 [sum log s - 1/2 sum log s_1 - 1/2 sum log s_2],
    the sums running over dims for diagonal and over the single scalar for spherical (as
    the reference does: its log-det term is not multiplied by the dimension), and
    GBC = -sum_{c != c'} exp(-D_B(c, c')) (<= 0). Computed in float64 (the reference
    casts the PCA output to float32).
    """
    if gaussian_type not in ("spherical", "diagonal"):
        raise ValueError(f"gaussian_type must be 'spherical' or 'diagonal'; got {gaussian_type!r}")
    if pca_dim is not None and (isinstance(pca_dim, bool) or not isinstance(pca_dim, numbers.Integral)
                                or pca_dim < 1):
        raise ValueError(f"pca_dim must be None or a positive int; got {pca_dim!r}")
    checked = validate(features=features, labels=labels)
    f = checked.features if pca_dim is None else _pca_project(checked.features, int(pca_dim))
    y, n_classes = checked.labels, checked.n_classes
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)[:, None]
    means = class_sums(f, y, n_classes) / counts
    resid = f - means[y]
    var = np.maximum(class_sums(resid * resid, y, n_classes) / counts, GBC_VAR_FLOOR)
    if gaussian_type == "spherical":
        var = var.mean(axis=1, keepdims=True)
    avg = 0.5 * (var[:, None, :] + var[None, :, :])                      # (C, C, dims)
    diff2 = (means[:, None, :] - means[None, :, :]) ** 2
    if gaussian_type == "spherical":
        mahal = diff2.sum(axis=2) / avg[:, :, 0]
    else:
        mahal = (diff2 / avg).sum(axis=2)
    log_var = np.log(var).sum(axis=1)
    dist = mahal / 8.0 + 0.5 * (np.log(avg).sum(axis=2) - 0.5 * log_var[:, None] - 0.5 * log_var[None, :])
    coeff = np.exp(-dist)
    np.fill_diagonal(coeff, 0.0)
    return finite_score(-coeff.sum(), "gbc")
