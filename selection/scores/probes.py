"""Probe classifiers on frozen features: 1-NN leave-one-out and half-split logistic regression (Bolya et al. 2021)."""
from __future__ import annotations

import numbers

import numpy as np
from scipy.optimize import minimize

from selection.scores.reference_mode import check_as_reference, reference_value
from selection.scores.registry import finite_score, register, validate

_KNN_BLOCK = 2048  # rows of the distance matrix held at once

# --------------------------------------------------------------------------- 1-NN leave-one-out

@register("knn_loo")
def knn_loo(*, features, labels, as_reference=False) -> float:
    """1-NN leave-one-out accuracy in percent (Bolya et al. 2021, "1-NN CV"); follows dbolya/parc ``methods.kNN``.

    100 * mean_i [y_nn(i) == y_i],  nn(i) = argmin_{j != i} ||f_i - f_j||_2  on the raw features
    (k=1, metric 'l2', no PCA, no standardisation). Ties go to the lowest index. The reference sorts each row of the
    distance matrix and takes position 1, assuming the sample itself sits at position 0; with
    exact duplicate rows it can vote for the sample itself. Here the sample is always excluded.
    features (N, D), labels (N,); returns percent in [0, 100], higher = better.

    ``as_reference=True``: the value of dbolya/parc ``methods.kNN(k=1)`` (commit ddfca43), the
    "1-NN CV" of PARC's Tables 1-3: sklearn ``pairwise_distances(metric='l2')`` (float rounding
    included), ``np.argsort`` of each row and the neighbour at sorted position 1, which is the
    sample itself when a duplicate or a rounding-level tie sorts before it.
    Raises ValueError for bad inputs.
    """
    exact = check_as_reference(as_reference)
    checked = validate(features=features, labels=labels)
    if exact:
        return _knn_parc(checked.features, checked.labels)
    f = checked.features - checked.features.mean(axis=0)  # distances are translation invariant
    sq = np.einsum("ij,ij->i", f, f)
    n = f.shape[0]
    nearest = np.empty(n, dtype=np.intp)
    for start in range(0, n, _KNN_BLOCK):
        stop = min(start + _KNN_BLOCK, n)
        d2 = sq[start:stop, None] + sq[None, :] - 2.0 * (f[start:stop] @ f.T)
        d2[np.arange(stop - start), np.arange(start, stop)] = np.inf
        nearest[start:stop] = d2.argmin(axis=1)
    return finite_score(100.0 * np.mean(checked.labels[nearest] == checked.labels), "knn_loo")


def _knn_parc(f: np.ndarray, labels: np.ndarray) -> float:
    """dbolya/parc ``kNN.forward`` with k = 1: position 1 of each argsorted distance row."""
    from sklearn.metrics import pairwise_distances

    nearest = np.argsort(pairwise_distances(f, metric="l2"), axis=-1)[:, 1]
    return reference_value(100.0 * np.mean(labels[nearest] == labels))


# --------------------------------------------------------------------------- logistic

def _fit_multinomial(x: np.ndarray, y: np.ndarray, n_classes: int, c_reg: float, tol: float,
                     max_iter: int) -> np.ndarray:
    """(D + 1, n_classes) weights (last row: intercepts) of L2 multinomial logistic regression, fitted as
    the 2021-era sklearn (0.24) ``LogisticRegression(multi_class='multinomial', solver='lbfgs')`` did:
    L-BFGS-B from zero on sum_i -log softmax(x_i W + b)[y_i] + ||W||^2 / (2 C) (intercept unpenalised), scipy's
    default ftol / maxls, gtol=tol, maxiter=max_iter."""
    n, d = x.shape
    onehot = np.zeros((n, n_classes))
    onehot[np.arange(n), y] = 1.0
    alpha = 1.0 / c_reg

    def loss_grad(w_flat):
        w = w_flat.reshape(d + 1, n_classes)
        logits = x @ w[:d] + w[d]
        logits -= logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        loss = -np.vdot(onehot, log_p) + 0.5 * alpha * np.vdot(w[:d], w[:d])
        diff = np.exp(log_p) - onehot
        grad = np.empty_like(w)
        grad[:d] = x.T @ diff + alpha * w[:d]
        grad[d] = diff.sum(axis=0)
        return loss, grad.ravel()

    res = minimize(loss_grad, np.zeros((d + 1) * n_classes), method="L-BFGS-B", jac=True,
                   options={"gtol": tol, "maxiter": max_iter})
    return res.x.reshape(d + 1, n_classes)


@register("logistic")
def logistic(*, features, labels, seed=0, as_reference=False) -> float:
    """Half-split logistic-regression accuracy in percent (Bolya et al. 2021); follows dbolya/parc ``SplitLogistic``.

    Samples are shuffled by ``numpy.random.default_rng(seed).permutation(N)``; the first
    N - floor(N/2) train and the rest test (the reference's ``split_data(., 0.5)``). The reference
    classifier, sklearn ``LogisticRegression(multi_class='multinomial', solver='lbfgs', C=1,
    max_iter=20, tol=0.1, random_state=0)`` on raw features (L2, intercept, no scaling), is
    reproduced with its objective as sklearn 0.24 had it, sum of losses + ||W||^2 / 2 (classes =
    those in the training half, also for 2 classes); score = 100 * test accuracy.
    Deviations: the reference splits in the given order (a class-sorted probe set would train
    and test on different classes), hence the seeded shuffle. Current sklearn divides the
    objective by N_train and dropped ``multi_class``, so its tol=0.1 stops lbfgs at iteration 0;
    for >= 3 classes this equals current sklearn with tol = 0.1 / N_train (checked in the tests).
    features (N, D), labels (N,); returns percent in [0, 100], higher = better.

    ``as_reference=True``: the value of dbolya/parc ``SplitLogistic`` (commit ddfca43), the
    "Logistic" of PARC's Tables 1-3: no shuffle, the first N - floor(N/2) rows in the given
    order train (``seed`` is ignored), the same classifier. Raises ValueError when the training
    half holds a single class (sklearn refuses to fit) or for bad inputs.
    """
    exact = check_as_reference(as_reference)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative int; got {seed!r}")
    checked = validate(features=features, labels=labels)
    n = checked.features.shape[0]
    order = np.arange(n) if exact else np.random.default_rng(int(seed)).permutation(n)
    n_train = n - n // 2
    train, test = order[:n_train], order[n_train:]
    classes, y_train = np.unique(checked.labels[train], return_inverse=True)
    if classes.size < 2:
        raise ValueError(f"logistic: the training half (seed={seed}) holds a single class; "
                         "need at least 2 classes among the first N - N//2 shuffled samples")
    w = _fit_multinomial(checked.features[train], y_train.reshape(-1), classes.size,
                         c_reg=1.0, tol=1e-1, max_iter=20)
    x_test = checked.features[test]
    predicted = classes[(x_test @ w[:-1] + w[-1]).argmax(axis=1)]
    return finite_score(100.0 * np.mean(predicted == checked.labels[test]), "logistic")
