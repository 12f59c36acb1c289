"""Scores that correlate feature similarities with label similarities: LFC (Deshpande et al.) and PARC (Bolya et al.)."""
from __future__ import annotations


import numpy as np
from scipy.stats import spearmanr
from sklearn.preprocessing import StandardScaler

from selection.scores.reference_mode import check_as_reference, reference_value
from selection.scores.registry import class_sums, finite_score, is_constant, pca_reduce, register, validate

# --------------------------------------------------------------------------- LFC

def _gram_sq_norm(f: np.ndarray) -> float:
    """||F F^T||_F^2 = ||F^T F||_F^2, via the smaller of the two Gram matrices."""
    gram = f.T @ f if f.shape[1] <= f.shape[0] else f @ f.T
    return float(np.vdot(gram, gram))


@register("lfc")
def lfc(*, features, labels) -> float:
    """Label-Feature Correlation (Deshpande et al. 2021, Sec. 3.3, normalised as eq. 8).

    Pearson correlation over all N*N entries of Theta_F = F F^T (raw features) and
    K_Y (K_ij = +1 if y_i == y_j else -1, diagonal included), without any N x N matrix, from
    centred quantities: with m the mean feature, G = F - m and a_i = m . g_i,
    Theta_ij - mean(Theta) = a_i + a_j + g_i . g_j, so
    sum (Theta - mean)^2 = 2N ||a||^2 + ||G^T G||_F^2 and
    sum (Theta - mean) K = 4 sum_c n_c A_c + 2 sum_c ||h_c||^2 (h_c, A_c: class sums of g, a).
    Centred moments (not E[T^2] - E[T]^2, which cancels) keep it right at any common
    feature offset (before, an offset of 1e5 gave a false "constant" error). Invariant to
    scaling F by a positive constant; NOT to an offset, which changes F F^T by definition.
    """
    checked = validate(features=features, labels=labels)
    f = checked.features
    scale = np.abs(f).max()
    if scale > 0:
        f = f / scale  # LFC is scale invariant; this only guards against overflow
    n = f.shape[0]
    m = float(n) * n
    mean = f.mean(axis=0)
    g = f - mean
    g -= g.mean(axis=0)   # two-pass correction: sum g = 0 to rounding of g, not of f
    a = g @ mean
    h = class_sums(g, checked.labels, checked.n_classes)
    counts = np.bincount(checked.labels).astype(np.float64)
    a_c = h @ mean

    var_t = (2.0 * n * float(a @ a) + _gram_sq_norm(g)) / m
    mean_t = float(mean @ mean)
    if is_constant(np.sqrt(var_t), np.sqrt(var_t + mean_t ** 2)):
        raise ValueError("lfc: feature similarity matrix F F^T is constant (e.g. all features "
                         "zero or all samples identical); correlation undefined")
    cov_tk = (4.0 * float(counts @ a_c) + 2.0 * float(np.vdot(h, h))) / m
    mean_k = (2.0 * float(counts @ counts) - m) / m
    var_k = 1.0 - mean_k ** 2
    corr = cov_tk / np.sqrt(var_t * var_k)
    return finite_score(np.clip(corr, -1.0, 1.0), "lfc")


# --------------------------------------------------------------------------- PARC

@register("parc")
def parc(*, features, labels, pca_dim=None, as_reference=False) -> float:
    """PARC (Bolya et al. 2021, Sec. 5); follows dbolya/parc ``methods.PARC``.

    features (N, D), labels (N,); returns 100 * a Spearman correlation, in [-100, 100], higher =
    better. Optional PCA to ``pca_dim`` dims, per-feature standardisation (StandardScaler),
    feature RDM = 1 - corrcoef(rows), label RDM = 1 - corrcoef(one-hot rows), which is
    0 for same-label pairs and a constant > 0 otherwise; score = 100 * Spearman of the
    two RDMs over the strict upper triangle. The label RDM is built as that exact
    same/different indicator: the reference's float corrcoef of one-hot rows leaves
    ~1e-16 noise that splits its ties and shifts the rank correlation.

    ``as_reference=True``: the value of ``methods.PARC.forward`` (commit ddfca43): the label RDM is
    ``1 - np.corrcoef(np.eye(C)[y])`` with its rounding noise (C = the distinct labels; the
    reference takes C from its dataset table, the same when every class is in the probe set),
    and degenerate inputs (a constant standardised row) give NaN as the reference does.
    Raises ValueError for N < 3, a constant label RDM (default only) or bad inputs. The default
    tests "constant" rows and feature RDM up to rounding (``is_constant``), not by exact equality.
    """
    exact = check_as_reference(as_reference)
    checked = validate(features=features, labels=labels)
    n = checked.features.shape[0]
    if n < 3:
        raise ValueError(f"parc needs at least 3 samples (one pair gives no rank correlation); got {n}")
    feats = StandardScaler().fit_transform(pca_reduce(checked.features, pca_dim))
    rows, cols = np.triu_indices(n, 1)
    if exact:
        with np.errstate(divide="ignore", invalid="ignore"):
            feat_rdm = 1.0 - np.corrcoef(feats)[rows, cols]
            label_rdm = 1.0 - np.corrcoef(np.eye(checked.n_classes)[checked.labels])[rows, cols]
            return reference_value(100.0 * spearmanr(feat_rdm, label_rdm)[0])
    if is_constant(np.ptp(feats, axis=1)).any():
        raise ValueError("parc: some sample has constant standardised features (need >= 2 "
                         "informative feature dims); row correlation undefined")
    feat_rdm = 1.0 - np.corrcoef(feats)[rows, cols]
    label_rdm = (checked.labels[rows] != checked.labels[cols]).astype(np.float64)
    if label_rdm.min() == label_rdm.max():
        raise ValueError("parc: every sample has its own class, so the label RDM is constant")
    if is_constant(np.ptp(feat_rdm)):
        raise ValueError("parc: the feature RDM is constant (up to rounding); rank correlation undefined")
    return finite_score(100.0 * spearmanr(feat_rdm, label_rdm)[0], "parc")
