"""Scores built on the source head's probabilities on target images: LEEP."""
from __future__ import annotations

import numpy as np

from selection.scores.reference_mode import check_as_reference, reference_value
from selection.scores.registry import class_sums, finite_score, register, validate

NCE_PARC_EPS = 1e-5  # dbolya/parc NegativeCrossEntropy.forward(eps=1e-5), added to every probability

# --------------------------------------------------------------------------- LEEP

@register("leep")
def leep(*, probs, labels, as_reference=False) -> float:
    """LEEP (Nguyen et al. 2020, eq. 2); follows thuml/LogME ``LEEP.py``.

    probs (N, Z) source-class probabilities, labels (N,); returns a mean log-likelihood (<= 0,
    nats), higher = better.
    P(y, z) = (1/N) sum_{i: y_i = y} probs[i, z],  P(y | z) = P(y, z) / P(z),
    LEEP = (1/N) sum_i log sum_z P(y_i | z) probs[i, z]  (<= 0).
    Rows of ``probs`` are renormalised to sum exactly to 1, and source classes with
    P(z) = 0 get P(y | z) = 0 (they carry no mass; the reference yields NaN there).

    ``as_reference=True``: the value of thuml/LogME ``LEEP`` (commit 56551ca) and of dbolya/parc
    ``methods.LEEP`` (commit ddfca43, the code of PARC's Tables 1-2), which agree: rows are
    used as given (not renormalised) and any source class with P(z) = 0 makes the score NaN.
    Raises ValueError for bad inputs (rows not summing to 1 within 1e-4, negative entries).
    """
    exact = check_as_reference(as_reference)
    checked = validate(probs=probs, labels=labels)
    if exact:
        joint = class_sums(checked.probs, checked.labels, checked.n_classes)
        with np.errstate(divide="ignore", invalid="ignore"):
            cond = joint / joint.sum(axis=0, keepdims=True)        # 0 / 0 = NaN as the reference
            eep = np.einsum("iz,iz->i", checked.probs, cond[checked.labels])
            return reference_value(np.mean(np.log(eep)))
    p = checked.probs / checked.probs.sum(axis=1, keepdims=True)
    joint = class_sums(p, checked.labels, checked.n_classes)        # N * P(y, z)
    marginal = joint.sum(axis=0)                                      # N * P(z)
    cond = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)
    eep = np.einsum("iz,iz->i", p, cond[checked.labels])
    return finite_score(np.mean(np.log(eep)), "leep")


# --------------------------------------------------------------------------- NCE

@register("nce")
def nce(*, probs, labels, as_reference=False) -> float:
    """NCE (Tran et al. 2019) with Z = the source model's hard labels; follows thuml/LogME ``NCE.py``.

    probs (N, Z), labels (N,); returns -H(Y | Z) in nats, higher = better.
    z_i = argmax_z probs[i, z] (first on ties); empirical joint P(y, z) = #{i: y_i = y, z_i = z} / N;
    NCE = -H(Y | Z) = sum_{y, z} P(y, z) log P(y | z), in [-log C, 0] (0: z determines y).
    Uses 0 log 0 = 0: the reference evaluates 0 * log 0 as NaN whenever some (y, z) pair, or some
    source class below the largest predicted one, never occurs (and its ``np.zeros(C_t, C_s)``
    needs a shape tuple); it agrees with this wherever it is finite. The current thuml/LogME
    ``NCE`` (commit 56551ca) and tllib ``negative_conditional_entropy`` (commit c4aa59e) mask
    unpredicted z and add 1e-20 before the log: equal to this default to rounding.

    ``as_reference=True``: the value of dbolya/parc ``methods.NegativeCrossEntropy`` (commit
    ddfca43), the code of PARC's Tables 1-2: eps = 1e-5 is added to every entry of the joint
    P(y, z) (n_y x n_z, all Z = probs.shape[1] source classes) and of the marginal P(z), and
    NCE = sum_{y, z} P_eps(y, z) log(P_eps(y, z) / P_eps(z)); n_y = the distinct labels (the
    reference reads it from its dataset table: the same when every class is in the probe set).
    Raises ValueError for bad inputs.
    """
    exact = check_as_reference(as_reference)
    checked = validate(probs=probs, labels=labels)
    if exact:
        return _nce_parc(checked.probs.argmax(axis=1), checked.labels, checked.n_classes,
                         checked.probs.shape[1])
    _, z = np.unique(checked.probs.argmax(axis=1), return_inverse=True)   # predicted source classes only
    z = z.reshape(-1)
    n_z = int(z.max()) + 1
    pairs, counts = np.unique(checked.labels.astype(np.int64) * n_z + z, return_counts=True)
    marginal = np.bincount(z, minlength=n_z)                               # N * P(z)
    counts = counts.astype(np.float64)
    value = float(counts @ np.log(counts / marginal[pairs % n_z])) / z.size
    return finite_score(value + 0.0, "nce")   # + 0.0 turns -0.0 into 0.0


def _nce_parc(z: np.ndarray, y: np.ndarray, n_y: int, n_z: int) -> float:
    """dbolya/parc NCE with its additive eps. Columns of never-predicted z contribute
    eps * log(eps / eps) = 0 exactly, so only predicted columns are formed (no n_y x n_z
    matrix for 1000s of source classes)."""
    n = y.shape[0]
    used, z = np.unique(z, return_inverse=True)
    z = z.reshape(-1)
    joint = np.zeros((n_y, used.size))
    np.add.at(joint, (y, z), 1.0)
    joint = joint / n + NCE_PARC_EPS
    marginal = np.bincount(z, minlength=used.size) / n + NCE_PARC_EPS
    return reference_value(np.sum(joint * np.log(joint / marginal[None, :])))
