"""Label-Gradient Correlation (Deshpande et al. 2021) and the count-sketch projection of per-sample gradients."""
from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse

from selection.scores.label_correlation import lfc
from selection.scores.registry import as_float_2d, check_lengths, register

# --------------------------------------------------------------------------- count sketch

def count_sketch(matrix, dim, seed) -> np.ndarray:
    """Count sketch of the rows of ``matrix`` (N, p) to (N, dim) (Charikar et al. 2002; feature hashing).

    Input coordinate j goes to output h(j) with sign s(j): out[:, h(j)] += s(j) * matrix[:, j], with
    h(j) uniform on {0..dim-1} and s(j) uniform on {-1, +1}, drawn by numpy default_rng(seed)
    (h first, then s). E_{h,s}[<Sx, Sy>] = <x, y>. O(N p) time via one sparse (p, dim) matrix
    with p non-zeros. The projection depends only on (p, dim, seed), so batches of one model
    can be sketched separately and stacked. Floating inputs keep their dtype; others become float64.
    """
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim < 1:
        raise ValueError(f"dim must be a positive int; got {dim!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative int; got {seed!r}")
    m = np.asarray(matrix)
    if m.dtype.kind != "f":
        m = as_float_2d(m, "matrix")
    if m.ndim != 2 or m.shape[1] == 0:
        raise ValueError(f"matrix must be a 2-D array (n_samples, n_columns >= 1); got shape {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError("matrix contain NaN or inf values")
    p = m.shape[1]
    rng = np.random.default_rng(int(seed))
    buckets = rng.integers(0, int(dim), size=p)
    signs = rng.integers(0, 2, size=p).astype(m.dtype) * 2 - 1
    sketch = scipy.sparse.csr_matrix((signs, (np.arange(p), buckets)), shape=(p, int(dim)))
    return np.asarray((sketch.T @ m.T).T)


# --------------------------------------------------------------------------- LGC

@register("lgc")
def lgc(*, gradients, labels) -> float:
    """Label-Gradient Correlation (Deshpande et al. 2021, eq. 7 normalised as eq. 8).

    Pearson correlation over all N*N entries of Theta = G G^T and K_Y (+1 same label, -1
    otherwise), G = per-sample gradients of the output w.r.t. the last conv layer, already
    randomly projected to p dims (``count_sketch``; p = 10,000 in the paper). This is exactly
    LFC's correlation with G in place of the features, so it is computed by ``lfc`` (and shares
    its centred moments: right at any common gradient offset, where raw moments cancelled).
    """
    g = as_float_2d(gradients, "gradients")
    check_lengths(labels, gradients=g)
    try:
        return lfc(features=g, labels=labels)
    except ValueError as err:
        raise ValueError(f"lgc (LFC on the gradients): {err}") from None
