"""OT-NCE (Tan et al., CVPR 2021, OTCE): the negative conditional entropy of the target labels given the
source labels, with source and target samples paired by the optimal-transport coupling of their features."""
from __future__ import annotations

import os

import numpy as np

# scores are numpy-only: keep POT from importing its torch/jax/tf/cupy backends (seconds per process)
for _backend in ("PYTORCH", "JAX", "TENSORFLOW", "CUPY"):
    os.environ.setdefault(f"POT_BACKEND_DISABLE_{_backend}", "1")
import ot  # noqa: E402

from selection.scores.reference_mode import check_as_reference, reference_value  # noqa: E402
from selection.scores.registry import as_float_2d, check_lengths, finite_score, register, validate  # noqa: E402

OTCE_REPO = "tanyang1231/OTCE_Transferability_CVPR21 compute_otce_demo.py @ d844b87c90cd3f11bf46d6b83feb69ddb041e1e2"
EMD_MAX_ITER = 10_000_000     # network-simplex iterations: enough for the exact optimum at N = M = 2500
REFERENCE_MAX_ITER = 100_000  # the reference's numItermax (it stops short of the optimum from N ~ 1000 on)


@register("ot_nce")
def ot_nce(*, features, labels, source_features, source_labels, as_reference=False) -> float:
    """OT-based NCE (Tan et al. 2021: the simplified, auxiliary-free score of the paper's appendix, which
    the reference README recommends over OTCE); follows tanyang1231/OTCE_Transferability_CVPR21
    ``compute_otce_demo.py`` ``compute_coupling`` + ``compute_CE`` (commit d844b87).

    features (N, D) / labels (N,) of the target, source_features (M, D) / source_labels (M,) from the
    same layer of the same model. Coupling: the exact optimal transport plan P (M, N) between the
    uniform distributions on the source and on the target samples for the cost
    C_ij = ||s_i - t_j||^2 (POT ``ot.emd``, network simplex); joint label distribution
    P(y_s, y_t) = sum_{i: y_s, j: y_t} P_ij, P(y_s) = sum_{y_t} P(y_s, y_t);
    OT-NCE = -H(Y_t | Y_s) = sum P(y_s, y_t) log(P(y_s, y_t) / P(y_s)) (nats, 0 log 0 = 0), in
    [-log C_t, 0], higher = better (0: the source label determines the target label).

    Paper vs code: the paper's OTCE combines this task difference with the domain difference (the
    Wasserstein distance) by weights fitted on auxiliary tasks with known transfer accuracy; the
    reference code (and its README) computes only the coupling, W and the conditional entropy, as here.
    Departures from the code, both for the exact optimum of the problem the code states: the cost in
    float64 (the code: geomloss ``squared_distances`` on float32 tensors) and up to 10^7 simplex
    iterations with a ValueError when the optimum is not reached (the code: ``numItermax=100000``,
    which stops short of the optimum somewhere between 1500 and 2000 samples a side on random
    features, POT only warning). Where the code reaches its optimum the two agree to rounding
    (tests/data/ot_nce_reference.json). Both use the expansion ||s||^2 - 2 s.t + ||t||^2; here it is
    clipped at 0. Cost: the (M, N) cost and plan matrices, an O(M N D) product and the network
    simplex (about 4 s at M = N = 2500, D = 2048 on 2 cores).

    ``as_reference=True``: the code's value: the cost in float32 (the features cast to float32, the
    same expansion, not clipped) and at most 100000 simplex iterations, the plan taken as it stands;
    NaN where that is not finite. Raises ValueError for bad inputs (see ``validate``; the source labels may hold a
    single class, as the code allows), feature widths that differ, or (default) a solve that does not
    reach the optimum.
    """
    exact = check_as_reference(as_reference)
    target = validate(features=features, labels=labels)
    src = as_float_2d(source_features, "source_features")
    src_y = np.asarray(source_labels)
    if src_y.ndim != 1:
        raise ValueError(f"source_labels must be a 1-D array; got shape {src_y.shape}")
    check_lengths(src_y, "source_labels", source_features=src)
    if src_y.shape[0] == 0:
        raise ValueError("ot_nce needs at least one source sample; source_features has none")
    if src_y.dtype.kind in "fc" and not np.isfinite(src_y).all():
        raise ValueError("source_labels contain NaN or inf values")
    _, src_y = np.unique(src_y, return_inverse=True)
    src_y = src_y.reshape(-1)
    if src.shape[1] != target.features.shape[1]:
        raise ValueError(f"source_features have {src.shape[1]} columns but features have "
                         f"{target.features.shape[1]}; both must come from the same model layer")

    dtype = np.float32 if exact else np.float64
    cost = _squared_distances(src.astype(dtype), target.features.astype(dtype), clip=not exact).astype(np.float64)
    m, n = cost.shape
    plan, log = ot.emd(np.full(m, 1.0 / m), np.full(n, 1.0 / n), cost,
                       numItermax=REFERENCE_MAX_ITER if exact else EMD_MAX_ITER, log=True)
    if not exact and log["result_code"] != 1:
        raise ValueError(f"ot_nce: optimal transport solver did not reach the optimum ({log['warning']})")
    value = _negative_conditional_entropy(plan, src_y, target.labels, int(src_y.max()) + 1, target.n_classes)
    return reference_value(value) if exact else finite_score(value + 0.0, "ot_nce")


def _squared_distances(a: np.ndarray, b: np.ndarray, clip: bool) -> np.ndarray:
    """(M, N) ||a_i - b_j||^2 by the expansion ||a||^2 - 2 a.b + ||b||^2 in the arrays' dtype (geomloss
    ``squared_distances``), optionally clipped at 0 (rounding can leave it slightly negative)."""
    d = (a * a).sum(axis=1)[:, None] - 2.0 * (a @ b.T) + (b * b).sum(axis=1)[None, :]
    return np.maximum(d, 0, out=d) if clip else d


def _negative_conditional_entropy(plan: np.ndarray, ys: np.ndarray, yt: np.ndarray, n_s: int, n_t: int) -> float:
    """sum_{a,b} J_ab log(J_ab / sum_b' J_ab') with J the plan summed over (source label, target label)."""
    rows, cols = np.nonzero(plan)
    joint = np.zeros((n_s, n_t))
    np.add.at(joint, (ys[rows], yt[cols]), plan[rows, cols])
    marginal = joint.sum(axis=1, keepdims=True)
    used = joint > 0
    return float(np.sum(joint[used] * np.log((joint / np.where(marginal > 0, marginal, 1.0))[used])))
