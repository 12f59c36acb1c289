"""PED (Li et al., ICCV 2023): potential-energy descent, a remapping of the features before a score.

Not a score itself: ``ped_remap`` moves each class of target features away from the classes it
overlaps, as fine-tuning would, and any feature score (LogME, SFDA, ...) is then computed on the
moved features. The pipeline applies it to any feature score with the method option ``ped: true``
(``selection.run.run_method``, the same path as ``pca_dim``), e.g. the benchmark variants
``logme_ped: {score: logme, options: {ped: true}}`` and ``sfda_ped: {score: sfda, options: {ped: true}}``.
"""
from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np
from scipy.spatial.distance import cdist

from selection.scores.registry import as_float_2d, class_sums, validate

PED_REPO = "lixiaotong97/PED metrics.py @ e5af6e79779cbbf16c3c1b4e1961fa74c9a282d2"

# the reference's hyperparameters: the command-line defaults of its evaluate_metric_cpu.py (the paper's runs;
# `--nsigma`: "two candidates 0.3 0.6", default 0.6) and PED_Score's eps and its fixed cap of 6 steps
TIME_STEP = 0.1
NSIGMA = 0.6
EXIT_RATIO = 0.5
CONSTANT = 1.0
EPS = 1e-3
MAX_STEPS = 6


def ped_remap(features, labels, *, general_features=None, time_step=TIME_STEP, nsigma=NSIGMA,
              exit_ratio=EXIT_RATIO, constant=CONSTANT, eps=EPS, max_steps=MAX_STEPS) -> np.ndarray:
    """PED's feature remapping (Li et al. 2023); follows lixiaotong97/PED
    ``metrics.py`` ``PED_Score`` / ``One_Step_PED`` (commit e5af6e7).

    features (N, D), labels (N,) of the target; returns the moved features, (N, D) float64, in the
    features' own scale. Each step, in the space standardised by the per-dimension mean m and
    std s = max(std, eps) of ``general_features`` (M, D) (the reference: the model's features of
    ImageNet val; ``None``: the features themselves, i.e. the expert's own features; the same m, s
    at every step):
      mu_c = class mean, R_c = sqrt(sum_d var_c,d) (population variance), for each pair of classes
      a != b with d_ab = ||mu_a - mu_b||: overlap F_ab = max(nsigma (R_a + R_b) - d_ab, 0), step length
      l_ab = min(time_step^2 / 2 * constant * F_ab, F_ab); class a moves by
      delta_a = sum_b l_ab (mu_a - mu_b) / d_ab (away from every class it overlaps), each sample by its
      class's delta: x <- ((x - m) / s + delta_y) s + m.
    The first step's sum_{c,d} |delta_c,d| is the reference change; a step is taken while its own
    change / the reference change > ``exit_ratio``, at most ``max_steps`` steps (the first is always
    taken unless nothing overlaps: then the features come back unchanged, as the reference's
    0/0 change ratio does). Two classes with the same mean (identical samples, say) make the
    reference's repulsion direction 0/0, its change NaN and its loop stop; here too the moves stop
    at that step (at the first step: the features come back unchanged, the score is that of the
    plain features, as the reference's). Cost O(N D + steps * C^2 D): classes move rigidly, so the
    steps update the class means only (the reference re-derives means and radii from the moved features).

    Source: the paper's Sec. 3 (the force-driven motion of class representations) and App. B
    (the rescaling, as the code's own comment points to); the paper's text was not at hand while
    writing this, so the code is followed throughout. Its hyperparameters are those of the run
    script's command line, not ``PED_Score``'s keyword defaults (nsigma=2.0 there, 0.6 on the
    command line the README runs). ``nsigma`` enters the reference as |nsigma|; here it must be positive.

    Raises ValueError for bad features or labels (see ``validate``), general features with another
    number of columns, non-positive time_step / nsigma / constant / eps, exit_ratio outside [0, 1),
    or max_steps < 1.
    """
    checked = validate(features=features, labels=labels)
    x, y, n_classes = checked.features, checked.labels, checked.n_classes
    for name, value in (("time_step", time_step), ("nsigma", nsigma), ("constant", constant), ("eps", eps)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < np.inf:
            raise ValueError(f"ped: {name} must be a positive finite number; got {value!r}")
    if isinstance(exit_ratio, bool) or not isinstance(exit_ratio, numbers.Real) or not 0 <= exit_ratio < 1:
        raise ValueError(f"ped: exit_ratio must be a number in [0, 1); got {exit_ratio!r}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, numbers.Integral) or max_steps < 1:
        raise ValueError(f"ped: max_steps must be a positive int; got {max_steps!r}")
    general = x if general_features is None else as_float_2d(general_features, "general_features")
    if general.shape[1] != x.shape[1]:
        raise ValueError(f"ped: general_features have {general.shape[1]} columns but features have {x.shape[1]}; "
                         "both must come from the same model layer")
    shift, scale = general.mean(axis=0), np.maximum(general.std(axis=0), eps)
    counts = np.bincount(y, minlength=n_classes)[:, None]

    # classes move rigidly, so each step needs only the class means (moved by delta) and the class radii
    # (unchanged): the reference recomputes both from the moved features, the same up to rounding
    z = (x - shift) / scale
    means = class_sums(z, y, n_classes) / counts
    radius = np.sqrt((class_sums((z - means[y]) ** 2, y, n_classes) / counts).sum(axis=1))
    moved = np.zeros_like(means)
    first = None
    for _ in range(max_steps):
        delta = _class_moves(means, radius, float(nsigma), 0.5 * float(time_step) ** 2 * float(constant))
        if delta is None:   # coincident class means: the reference's change is NaN and its loop stops
            break
        change = float(np.abs(delta).sum())
        if first is None:
            first = change
        if first == 0.0 or not change / first > exit_ratio:
            break
        moved += delta
        means = means + delta
    if not moved.any():
        return x.copy()
    return (z + moved[y]) * scale + shift


def _class_moves(means: np.ndarray, radius: np.ndarray, nsigma: float, half_t2_k: float) -> np.ndarray | None:
    """One step's (C, D) move of each class from the (C, D) class means and (C,) radii: the pairwise
    repulsion of ``ped_remap``; None when two classes have the same mean."""
    dist = cdist(means, means)
    np.fill_diagonal(dist, np.inf)
    if (dist == 0).any():
        return None
    overlap = np.maximum(nsigma * (radius[:, None] + radius[None, :]) - dist, 0.0)
    weight = np.minimum(half_t2_k * overlap, overlap) / dist   # l_ab / d_ab; 0 on the diagonal (d = inf)
    return weight.sum(axis=1)[:, None] * means - weight @ means


def ped_option(features, labels, value, general_features=None) -> np.ndarray:
    """The pipeline's ``ped`` method option: ``True`` -> ``ped_remap`` with the reference's
    hyperparameters, ``False`` -> the features unchanged, a mapping -> ``ped_remap`` with those keyword
    arguments (e.g. ``{nsigma: 0.3}``, the paper's other candidate). Raises ValueError otherwise."""
    kwargs = check_ped_option(value)
    if kwargs is None:
        return np.asarray(features, dtype=np.float64)
    return ped_remap(features, labels, general_features=general_features, **kwargs)


_PED_KEYWORDS = ("time_step", "nsigma", "exit_ratio", "constant", "eps", "max_steps")


def check_ped_option(value) -> dict | None:
    """``ped`` option -> ``ped_remap`` keyword arguments (None: off); ValueError naming a bad value."""
    if isinstance(value, (bool, np.bool_)):
        return {} if value else None
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(_PED_KEYWORDS))
        if unknown:
            raise ValueError(f"ped option: unknown setting(s) {unknown}; known: {list(_PED_KEYWORDS)}")
        return dict(value)
    raise ValueError(f"ped option must be true, false or a mapping of {list(_PED_KEYWORDS)}; got {value!r}")
