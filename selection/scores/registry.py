"""The score registry and the input checks every score shares."""
from __future__ import annotations

import inspect
import numbers
from dataclasses import dataclass
from typing import Callable

import numpy as np
from sklearn.decomposition import PCA

SCORES: dict[str, Callable[..., float]] = {}

PROB_SUM_TOL = 1e-4
CONSTANT_RTOL = 1e-12   # a spread below this fraction of its scale is rounding noise: "constant"
_MISSING = object()


def register(name: str) -> Callable[[Callable[..., float]], Callable[..., float]]:
    """Decorator adding a score function to ``SCORES`` under ``name``."""
    def add(fn: Callable[..., float]) -> Callable[..., float]:
        if name in SCORES:
            raise ValueError(f"score method {name!r} is already registered")
        SCORES[name] = fn
        return fn
    return add


def load_plugins(paths) -> list[str]:
    """Import user score modules (Python files, e.g. ``examples/my_scores.py``) so that their
    ``@register`` decorators add their scores to SCORES; returns the names they added. A file
    already loaded is not loaded twice."""
    import importlib.util
    import sys
    from pathlib import Path

    added = []
    for path in map(Path, paths):
        module_name = f"score_plugin_{path.stem}"
        if module_name in sys.modules:
            continue
        if not path.is_file():
            raise ValueError(f"score plugin {path} does not exist (selection.plugins lists Python files "
                             "relative to the directory Snakemake runs in)")
        before = set(SCORES)
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        added += sorted(set(SCORES) - before)
    return added


def compute_score(name: str, **inputs) -> float:
    """Run score ``name`` with the subset of ``inputs`` its signature names."""
    try:
        fn = SCORES[name]
    except KeyError:
        known = ", ".join(sorted(SCORES))
        raise ValueError(f"unknown score method {name!r}; known methods: {known}") from None
    params = inspect.signature(fn).parameters
    kwargs = {k: v for k, v in inputs.items() if k in params}
    missing = [p for p, spec in params.items() if spec.default is spec.empty and p not in kwargs]
    if missing:
        raise TypeError(f"score method {name!r} needs input(s) {missing}; got {sorted(inputs)}")
    return fn(**kwargs)


# --------------------------------------------------------------------------- validation

@dataclass(frozen=True)
class Checked:
    """Validated inputs: float64 arrays, labels relabelled to 0..n_classes-1."""

    labels: np.ndarray
    n_classes: int
    features: np.ndarray | None = None
    probs: np.ndarray | None = None


def as_float_2d(x, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric array: {err}") from None
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_samples, n_columns); got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one column; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contain NaN or inf values")
    return arr


def _missing_positions(y: np.ndarray) -> np.ndarray:
    """Positions of missing labels: None, or NaN (float arrays, or floats in an object array)."""
    if y.dtype.kind in "fc":
        return np.flatnonzero(np.isnan(y))
    if y.dtype.kind == "O":
        return np.flatnonzero([v is None or (isinstance(v, numbers.Number) and v != v) for v in y])
    return np.empty(0, dtype=np.intp)


def check_labels(labels) -> tuple[np.ndarray, int]:
    """Labels as 0..n_classes-1 and n_classes; missing labels (None/NaN) are a ValueError naming
    their positions (before: None reached np.unique and ended in a TypeError from numpy)."""
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be a 1-D array; got shape {y.shape}")
    if y.shape[0] < 2:
        raise ValueError(f"need at least 2 samples; got {y.shape[0]}")
    missing = _missing_positions(y)
    if missing.size:
        shown = missing[:10].tolist()
        raise ValueError(f"labels contain NaN/None (missing values) at {missing.size} position(s): "
                         f"{shown}{' ...' if missing.size > 10 else ''}")
    if y.dtype.kind in "fc" and not np.isfinite(y).all():
        raise ValueError("labels contain NaN or inf values")
    _, inverse = np.unique(y, return_inverse=True)
    n_classes = int(inverse.max()) + 1
    if n_classes < 2:
        raise ValueError(f"need at least 2 distinct classes in labels; got {n_classes}")
    return inverse.reshape(-1).astype(np.intp), n_classes


def check_probs(probs) -> np.ndarray:
    p = as_float_2d(probs, "probs")
    if (p < 0).any():
        raise ValueError("probs contain negative values")
    err = np.abs(p.sum(axis=1) - 1.0)
    worst = int(err.argmax())
    if err[worst] > PROB_SUM_TOL:
        raise ValueError(f"probs rows must sum to 1 (tolerance {PROB_SUM_TOL}); "
                         f"row {worst} sums to {p[worst].sum():.6g}")
    return p


def check_lengths(labels, labels_name: str = "labels", **arrays) -> None:
    """One row per label in every named array, or a ValueError naming both."""
    y = np.asarray(labels)
    for name, arr in arrays.items():
        if y.ndim >= 1 and arr.shape[0] != y.shape[0]:
            raise ValueError(f"length mismatch: {name} has {arr.shape[0]} rows "
                             f"but {labels_name} has {y.shape[0]} entries")


def validate(*, labels, features=_MISSING, probs=_MISSING) -> Checked:
    """Shared input check for every score; raises ValueError naming the problem."""
    arrays = {}
    if features is not _MISSING:
        arrays["features"] = as_float_2d(features, "features")
    if probs is not _MISSING:
        arrays["probs"] = check_probs(probs)
    y = np.asarray(labels)
    check_lengths(y, "labels", **arrays)
    inverse, n_classes = check_labels(y)
    return Checked(labels=inverse, n_classes=n_classes, **arrays)


def is_constant(spread, scale=1.0):
    """Whether a spread (ptp or standard deviation; array-like) is rounding noise: at most
    CONSTANT_RTOL * scale, with ``scale`` the magnitude the values are computed at (1 for
    correlation / cosine distances). Scores that need variation test "constant" with this,
    never with exact equality, which round-off defeats."""
    return np.asarray(spread) <= CONSTANT_RTOL * scale


def finite_score(value, name: str) -> float:
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} score is not finite ({value}): degenerate inputs")
    return value


def class_sums(x: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, D) row sums of ``x`` per class; O(N D), no one-hot matrix."""
    order = np.argsort(labels, kind="stable")
    starts = np.concatenate(([0], np.cumsum(np.bincount(labels, minlength=n_classes))[:-1]))
    return np.add.reduceat(x[order], starts, axis=0)


def pca_reduce(f: np.ndarray, pca_dim: int | None) -> np.ndarray:
    """PCA to `pca_dim` dims as dbolya/parc ``feature_reduce`` (used by PARC, DDS and the pipeline's
    `pca_dim` option of any feature score): randomized PCA (random_state=1919, iterated_power=1)."""
    if pca_dim is None:
        return f
    if isinstance(pca_dim, bool) or not isinstance(pca_dim, numbers.Integral) or pca_dim < 1:
        raise ValueError(f"pca_dim must be None or a positive int; got {pca_dim!r}")
    dim = min(int(pca_dim), f.shape[0], f.shape[1])
    return PCA(n_components=dim, svd_solver="randomized", random_state=1919,
               iterated_power=1).fit_transform(f)
