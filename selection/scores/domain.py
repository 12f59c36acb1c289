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

from selection.scores.registry import as_float_2d, check_labels, check_lengths, finite_score, register, validate

EMD_MAX_ITER = 10_000_000  # network-simplex iterations; POT's default 100000 can stop early


def _class_histogram(features: np.ndarray, labels: np.ndarray, n_classes: int):
    """Class-mean features (n_classes, D) and class sizes (n_classes,) via one sparse one-hot product."""
    n = labels.shape[0]
    counts = np.bincount(labels, minlength=n_classes)
    onehot = scipy.sparse.csr_matrix((np.ones(n), (labels, np.arange(n))), shape=(n_classes, n))
    return np.asarray(onehot @ features) / counts[:, None], counts


@register("domain_similarity")
def domain_similarity(*, features, labels, source_features, source_labels, min_images=5, gamma=0.01) -> float:
    """Domain Similarity (Cui et al. 2018, Sec. 4.1).

    Follows richardaecn/cvpr18-inaturalist-transfer ``DomainSimilarityDemo.ipynb``.
    Each domain is a histogram over its classes: bin = the class-mean feature g_c, weight =
    n_c / sum n_c (class size). Source classes with fewer than ``min_images`` images are dropped
    before normalising (as the reference; Deshpande et al. App. C use 5; target classes are all
    kept). EMD = min_T sum_st T_st ||g_s - g_t||_2 over transport plans T with those marginals,
    solved exactly by POT ``ot.emd2`` (the reference uses pyemd on the same LP);
    score = exp(-gamma * EMD), in (0, 1].
    """
    if isinstance(min_images, bool) or not isinstance(min_images, numbers.Integral) or min_images < 1:
        raise ValueError(f"min_images must be a positive int; got {min_images!r}")
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

    g_t, w_t = _class_histogram(target.features, target.labels, target.n_classes)
    g_s, w_s = _class_histogram(src, src_y, n_src)
    keep = w_s >= min_images
    if not keep.any():
        raise ValueError(f"domain_similarity: no source class has at least min_images={min_images} images")
    g_s, w_s = g_s[keep], w_s[keep]

    emd, log = ot.emd2(w_s / w_s.sum(), w_t / w_t.sum(), cdist(g_s, g_t),
                       numItermax=EMD_MAX_ITER, log=True)
    if log["result_code"] != 1:
        raise ValueError(f"domain_similarity: EMD solver did not reach the optimum ({log['warning']})")
    return finite_score(np.exp(-gamma * float(emd)), "domain_similarity")
