"""The two recommenders of Guided Recommendation (Li et al., CVPR 2023, Sec. 3.2) and their
leave-one-target-out protocol (Sec. 4.2.3); `analysis.guided` builds their inputs and outputs.

A recommender maps (training features, training labels, test features) to predicted labels:
`linear_recommender` (ridge regression, "the first two terms" of the FM) and `fm_recommender`
(a second-order factorization machine, Rendle 2010); both standardise features and labels with
the training rows' statistics, so a fold never sees its held-out target.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
import pandas as pd

from analysis.tables import KEYS, AnalysisError


def _standardise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardise columns with the training rows' statistics; drop columns constant (or
    all-missing) on them; missing values -> 0 (the training mean)."""
    with np.errstate(all="ignore"):
        mu, sd = np.nanmean(x_train, axis=0), np.nanstd(x_train, axis=0)
    keep = np.isfinite(mu) & (np.nan_to_num(sd) > 1e-12)

    def scale(x):
        return np.nan_to_num((x[:, keep] - mu[keep]) / sd[keep], nan=0.0)

    return scale(x_train), scale(x_test)


def _standardise_labels(y: np.ndarray) -> tuple[np.ndarray, float, float]:
    mu, sd = float(np.mean(y)), float(np.std(y))
    sd = sd if sd > 0 else 1.0
    return (y - mu) / sd, mu, sd


def linear_recommender(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                       alpha: float = 1.0, seed: int = 0) -> np.ndarray:
    """LR of Sec. 3.2 (the first two terms of the FM): ridge regression
    min ||y - w0 - X w||^2 + alpha ||w||^2 on standardised features, intercept unpenalised,
    solved in closed form (``seed`` unused: kept for a common signature)."""
    x_train, x_test = _standardise(np.asarray(x_train, float), np.asarray(x_test, float))
    y, mu, sd = _standardise_labels(np.asarray(y_train, float))
    p = x_train.shape[1]
    if p == 0:
        return np.full(len(x_test), mu)
    w = np.linalg.solve(x_train.T @ x_train + alpha * np.eye(p), x_train.T @ y)  # centred X: w0 = mean(y) = 0
    return mu + sd * (x_test @ w)


class FactorizationMachine:
    """Second-order factorization machine (Rendle 2010), eq. in Sec. 3.2 of Li et al.:

        y(z) = w0 + sum_i w_i z_i + sum_{i<j} <u_i, u_j> z_i z_j,

    the pairwise term computed in O(k n) as 0.5 * sum_f [(z.U_f)^2 - (z^2).(U_f^2)].
    Fitted by full-batch Adam on 0.5 * mean squared error + l2_linear ||w||^2 +
    l2_factors ||U||^2 (w0 unpenalised), ``steps`` iterations, U drawn from
    N(0, init_std^2) with ``seed``: deterministic given the seed.
    """

    def __init__(self, k: int = 8, steps: int = 1500, lr: float = 0.02, l2_linear: float = 1e-3,
                 l2_factors: float = 1e-3, init_std: float = 0.1, seed: int = 0):
        self.k, self.steps, self.lr = k, steps, lr
        self.l2_linear, self.l2_factors, self.init_std, self.seed = l2_linear, l2_factors, init_std, seed

    @staticmethod
    def _predict(x, w0, w, u):
        xu = x @ u
        return w0 + x @ w + 0.5 * np.sum(xu ** 2 - (x ** 2) @ (u ** 2), axis=1), xu

    def fit(self, x: np.ndarray, y: np.ndarray) -> "FactorizationMachine":
        x, y = np.asarray(x, float), np.asarray(y, float)
        n, p = x.shape
        rng = np.random.default_rng(self.seed)
        params = [np.array(y.mean()), np.zeros(p), rng.normal(0.0, self.init_std, (p, self.k))]
        m = [np.zeros_like(a) for a in params]
        v = [np.zeros_like(a) for a in params]
        b1, b2, eps = 0.9, 0.999, 1e-8
        x2 = x ** 2
        for t in range(1, self.steps + 1):
            w0, w, u = params
            pred, xu = self._predict(x, w0, w, u)
            r = (pred - y) / n
            grads = [np.array(r.sum()), x.T @ r + 2 * self.l2_linear * w,
                     x.T @ (r[:, None] * xu) - u * (x2.T @ r)[:, None] + 2 * self.l2_factors * u]
            for i, g in enumerate(grads):
                m[i] = b1 * m[i] + (1 - b1) * g
                v[i] = b2 * v[i] + (1 - b2) * g * g
                params[i] = params[i] - self.lr * (m[i] / (1 - b1 ** t)) / (np.sqrt(v[i] / (1 - b2 ** t)) + eps)
        self.w0_, self.w_, self.u_ = params
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self._predict(np.asarray(x, float), self.w0_, self.w_, self.u_)[0]


def fm_recommender(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, seed: int = 0,
                   **fm_options) -> np.ndarray:
    """FM of Sec. 3.2 on standardised features and standardised labels (see
    `FactorizationMachine` for the options)."""
    x_train, x_test = _standardise(np.asarray(x_train, float), np.asarray(x_test, float))
    y, mu, sd = _standardise_labels(np.asarray(y_train, float))
    fm = FactorizationMachine(seed=seed, **fm_options).fit(x_train, y)
    return mu + sd * fm.predict(x_test)


RECOMMENDERS: dict[str, Callable] = {"linear": linear_recommender, "fm": fm_recommender}


def leave_one_target_out(rows: pd.DataFrame, features: pd.DataFrame, labels: pd.DataFrame,
                         recommender: Callable, seed: int = 0, **options) -> pd.DataFrame:
    """Sec. 4.2.3 (LOO): for each target of ``rows``, fit ``recommender`` on the labelled
    rows of every OTHER target (all shot settings of the held-out target excluded) and
    predict the held-out target's rows.

    rows: (expert, target, shots) to predict; features: their design matrix (same order);
    labels: (expert, target, shots, label) of the training history. Returns ``rows`` with
    ``score`` (the prediction) and ``seconds`` (the fold's fit + predict time over its rows).
    """
    rows = rows[KEYS].reset_index(drop=True)
    x = features.to_numpy(dtype=float)
    lab = rows.merge(labels[KEYS + ["label"]], on=KEYS, how="left")["label"].to_numpy(dtype=float)
    labelled = np.isfinite(lab)
    score, seconds = np.full(len(rows), np.nan), np.full(len(rows), np.nan)
    for target in sorted(rows["target"].unique()):
        test = (rows["target"] == target).to_numpy()
        train = labelled & ~test
        if not train.any():
            raise AnalysisError(f"guided recommendation: no fine-tune results on targets other than {target!r} "
                                "to train on; leave-one-target-out needs at least 2 targets")
        start = time.perf_counter()
        score[test] = recommender(x[train], lab[train], x[test], seed=seed, **options)
        seconds[test] = (time.perf_counter() - start) / test.sum()
    return rows.assign(score=score, seconds=seconds)
