"""Domain Similarity (Cui et al. 2018): Earth Mover's Distance between source and target class-mean features."""
from __future__ import annotations

import numbers
import os

import numpy as np

# scores are numpy-only: keep POT from importing its torch/jax/tf/cupy backends (seconds per process)
for _backend in ("PYTORCH", "JAX", "TENSORFLOW", "CUPY"):
    os.environ.setdefault(f"POT_BACKEND_DISABLE_{_backend}", "1")
import ot  # noqa: E402
import scipy.sparse
from scipy.spatial.distance import cdist

from selection.scores.reference_mode import check_as_reference, reference_value
from selection.scores.registry import as_float_2d, check_labels, check_lengths, finite_score, register, validate

EMD_MAX_ITER = 10_000_000  # network-simplex iterations; POT's default 100000 can stop early


def _class_histogram(features: np.ndarray, labels: np.ndarray, n_classes: int):
    """Class-mean features (n_classes, D) and class sizes (n_classes,) via one sparse one-hot product."""
    n = labels.shape[0]
    counts = np.bincount(labels, minlength=n_classes)
    onehot = scipy.sparse.csr_matrix((np.ones(n), (labels, np.arange(n))), shape=(n_classes, n))
    return np.asarray(onehot @ features) / counts[:, None], counts


@register("domain_similarity")
def domain_similarity(*, features, labels, source_features, source_labels, min_images=5, gamma=0.01,
                      log=False, as_reference=False) -> float:
    """Domain Similarity (Cui et al. 2018, Sec. 4.1).

    Follows richardaecn/cvpr18-inaturalist-transfer ``DomainSimilarityDemo.ipynb``.
    Each domain is a histogram over its classes: bin = the class-mean feature g_c, weight =
    n_c / sum n_c (class size). Source classes with fewer than ``min_images`` images are dropped
    before normalising (as the reference; Deshpande et al. App. C use 5; target classes are all
    kept). EMD = min_T sum_st T_st ||g_s - g_t||_2 over transport plans T with those marginals,
    solved exactly by POT ``ot.emd2`` (the reference uses pyemd on the same LP);
    score = exp(-gamma * EMD), in (0, 1], higher = more similar domains.
    features (N, D) / labels (N,) of the target, source_features (M, D) / source_labels (M,)
    from the same layer of the same model. ``min_images=0`` keeps every source class.

    ``as_reference=True``: the value of the reference notebook (commit d59d522), its float32
    steps included: class means stored as float32 (the mean itself in the input's dtype),
    class sizes as float32 and normalised in float32, ground distances by sklearn
    ``euclidean_distances`` over the float64 concatenation of the bins (rounding and zeroed
    self-distances as there), and pyemd's ``emd`` (Pele & Werman's EMD-hat, default
    extra_mass_penalty): float32 normalisation can leave the two histograms' masses unequal
    by ~1e-8, so the smaller mass is transported and |mass difference| * the largest entry
    of the notebook's square distance matrix is added (reproduced with POT, see ``_emd_hat``).
    ``log=True``: the score in log space, -gamma * EMD (<= 0; the same order, never underflows).
    The default exp(-gamma * EMD) is the paper's value exactly; where it is no longer a normal
    float (gamma * EMD > ~708, e.g. features of magnitude 1e6) it raises ValueError pointing to
    ``log=True``: before, it underflowed to 0.0, and distinct EMDs tied outside (0, 1].
    Raises ValueError for min_images < 0, gamma <= 0, mismatched inputs, no source class kept,
    an EMD solve that does not reach the optimum, or (default) that underflow.
    """
    exact = check_as_reference(as_reference)
    if not isinstance(log, (bool, np.bool_)):
        raise ValueError(f"log must be true or false; got {log!r}")
    if isinstance(min_images, bool) or not isinstance(min_images, numbers.Integral) or min_images < 0:
        raise ValueError(f"min_images must be a non-negative int; got {min_images!r}")
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not 0 < gamma < np.inf:
        raise ValueError(f"gamma must be a positive finite number; got {gamma!r}")
    target = validate(features=features, labels=labels)
    src = as_float_2d(source_features, "source_features")
    src_y = np.asarray(source_labels)
    check_lengths(src_y, "source_labels", source_features=src)
    try:
        src_y, n_src = check_labels(src_y)
    except ValueError as err:
        raise ValueError(f"source_labels: {err}") from None
    if src.shape[1] != target.features.shape[1]:
        raise ValueError(f"source_features have {src.shape[1]} columns but features have "
                         f"{target.features.shape[1]}; both must come from the same model layer")

    if exact:   # the notebook's float32 class means, from the features in their own dtype
        g_t, w_t = _class_histogram_float32(features, target.labels, target.n_classes)
        g_s, w_s = _class_histogram_float32(source_features, src_y, n_src)
    else:
        g_t, w_t = _class_histogram(target.features, target.labels, target.n_classes)
        g_s, w_s = _class_histogram(src, src_y, n_src)
    keep = w_s >= min_images
    if not keep.any():
        raise ValueError(f"domain_similarity: no source class has at least min_images={min_images} images")
    g_s, w_s = g_s[keep], w_s[keep]

    if exact:
        from sklearn.metrics.pairwise import euclidean_distances

        bins = np.float64(np.concatenate([g_s, g_t], axis=0))
        square = euclidean_distances(bins, bins)
        a, b = np.float64(w_s / np.sum(w_s)), np.float64(w_t / np.sum(w_t))   # float32 division
        emd = _emd_hat(a, b, square[: len(w_s), len(w_s):], float(square.max()))
        return reference_value(-gamma * emd if log else np.exp(-gamma * emd))
    emd, info = ot.emd2(w_s / w_s.sum(), w_t / w_t.sum(), cdist(g_s, g_t), numItermax=EMD_MAX_ITER, log=True)
    if info["result_code"] != 1:
        raise ValueError(f"domain_similarity: EMD solver did not reach the optimum ({info['warning']})")
    return finite_score(_similarity(gamma * float(emd), log), "domain_similarity")


def _similarity(exponent: float, log: bool) -> float:
    """-exponent (log space) or exp(-exponent), refusing an exp that is no longer a normal float
    (distinct EMDs would round to the same subnormal or to 0.0)."""
    if log:
        return -exponent
    if exponent > -np.log(np.finfo(np.float64).tiny):
        raise ValueError(f"domain_similarity: exp(-gamma * EMD) underflows (gamma * EMD = {exponent:.6g} "
                         "> 708); use log=True for the score -gamma * EMD (same order) or a smaller gamma")
    return float(np.exp(-exponent))


def _emd_hat(a: np.ndarray, b: np.ndarray, ground: np.ndarray, max_distance: float) -> float:
    """pyemd ``emd(w_1, w_2, D)`` for bins that do not overlap: an optimal transport of the smaller
    total mass (a zero-cost dummy bin absorbs the excess of the larger histogram) plus
    |sum a - sum b| * max_distance."""
    excess = float(b.sum() - a.sum())
    a = np.append(a, max(excess, 0.0))
    b = np.append(b, max(-excess, 0.0))
    cost = np.zeros((a.size, b.size))
    cost[:-1, :-1] = ground
    flow, log = ot.emd2(a, b, cost, numItermax=EMD_MAX_ITER, log=True)
    if log["result_code"] != 1:
        raise ValueError(f"domain_similarity: EMD solver did not reach the optimum ({log['warning']})")
    return float(flow) + abs(excess) * max_distance


def _class_histogram_float32(features, labels: np.ndarray, n_classes: int):
    """Class means and sizes as the reference notebook stores them: np.mean over each class in the
    features' own floating dtype, then float32; sizes as float32."""
    x = np.asarray(features)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    means = np.zeros((n_classes, x.shape[1]), dtype=np.float32)
    for c in range(n_classes):
        means[c] = np.mean(x[labels == c], axis=0)
    return means, np.bincount(labels, minlength=n_classes).astype(np.float32)
