"""Zoo-level selection methods: scores combined from per-expert parts normalised across the experts of one
(target, shots, probe set), as ETran and NCTI rank a model zoo. They are not per-expert scores (one expert's
value depends on the others), so they are not in ``SCORES``: the selection jobs compute the parts (registered
scores, listed in ``selection.methods``), and the analysis adds the combined rows to tables/scores.csv
(``analysis.tables.scores_table`` calls ``combine``), after which every protocol, table and figure treats
them like any score.

Normalisation ``minmax``: (v - min) / (max - min) over the experts of the group; the combined score is
sum_i weight_i * minmax(part_i) + offset. The reference codes scale over every model they were given;
here over the experts of the group that have every part finite.

- An expert lacking a part, or with a NaN part, gets NaN (never silently ranked) and does not enter the
  other experts' min / max.
- A group with fewer than two such experts gets NaN for all: min-max is undefined for a single expert.
- A part constant across the group's experts (max - min within rounding, ``registry.is_constant``) gets NaN
  for all: the reference's 0 / 0; rounding noise scaled to [0, 1] would read as signal.

Pools: the normalisation is over the whole group; a protocol that evaluates a sub-pool of experts (a
model pool, the multi-domain experts) sees values scaled over the full zoo, not re-scaled over the pool.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from selection.scores.registry import is_constant

GROUP = ["target", "shots", "probe"]


@dataclass(frozen=True)
class ZooMethod:
    """A zoo-level method: its per-expert parts (registered score names), their weights, the normalisation
    across the zoo and a constant offset; ``source`` names the reference code it follows."""

    parts: tuple[str, ...]
    weights: tuple[float, ...]
    normalisation: str = "minmax"
    offset: float = 0.0
    source: str = ""


_ETRAN = "mgholamikn/ETran tw.py (metric 'etran') @ d4551ed: scale() each part, 0.15 * energy + 0.85 * lda"
# ncti_vc is registered negated (higher = better): minmax(-vc) = 1 - minmax(vc), so the reference's
# minmax(seli) + minmax(ncc) - minmax(vc) is minmax(seli) + minmax(ncc) + minmax(ncti_vc) - 1
_NCTI = ("BUserName/NCTI evaluate_metric_group1_cpu.py (metric 'ncti') @ b18d395: min-max scaled parts, "
         "ncc + seli - vc")
ZOO_METHODS: dict[str, ZooMethod] = {
    "etran": ZooMethod(("etran_energy", "etran_lda"), (0.15, 0.85), source=_ETRAN),
    "ncti": ZooMethod(("ncti_seli", "ncti_ncc", "ncti_vc"), (1.0, 1.0, 1.0), offset=-1.0, source=_NCTI),
    # the same from the parts' reference variants (selection variants ref_<part> with as_reference: true)
    "ref_etran": ZooMethod(("ref_etran_energy", "ref_etran_lda"), (0.15, 0.85), source=_ETRAN),
    "ref_ncti": ZooMethod(("ref_ncti_seli", "ref_ncti_ncc", "ref_ncti_vc"), (1.0, 1.0, 1.0), offset=-1.0,
                          source=_NCTI),
}
NORMALISATIONS = ("minmax",)


def combine_values(parts: np.ndarray, method: ZooMethod) -> np.ndarray:
    """The combined scores of one group: ``parts`` (experts, len(method.parts)), NaN where missing; returns
    (experts,), NaN for an expert with a NaN part and for every expert where min-max is undefined
    (fewer than two complete experts, or a part constant across them)."""
    if method.normalisation not in NORMALISATIONS:
        raise ValueError(f"unknown zoo-level normalisation {method.normalisation!r}; known: {NORMALISATIONS}")
    parts = np.asarray(parts, dtype=float)
    out = np.full(parts.shape[0], np.nan)
    complete = np.isfinite(parts).all(axis=1)
    if complete.sum() < 2:
        return out
    v = parts[complete]
    low, high = v.min(axis=0), v.max(axis=0)
    if is_constant(high - low, np.abs(v).max(axis=0)).any():
        return out
    scaled = (v - low) / (high - low)
    out[complete] = scaled @ np.asarray(method.weights, dtype=float) + method.offset
    return out


def combine(scores_df: pd.DataFrame) -> pd.DataFrame:
    """``scores_df`` (long format: expert, target, shots, probe, method, score, seconds, feature_seconds)
    with, for every zoo-level method whose parts all occur in it, one row per expert and (target, shots,
    probe) group that has any of its parts: method = the zoo method, score = the combined value (see the
    module docstring for NaN), seconds = the sum of the parts' seconds, feature_seconds = the largest of
    the parts' (one shared forward pass). A method already present in the table is left as it is (so
    combining twice changes nothing). A missing probe (NaN, old tables) is a group of its own."""
    if scores_df.empty:
        return scores_df
    present = set(scores_df["method"])
    frames = [scores_df]
    for name, method in ZOO_METHODS.items():
        if name in present or not set(method.parts) <= present:
            continue
        rows = scores_df[scores_df["method"].isin(method.parts)]
        for key, grp in rows.groupby(GROUP, dropna=False, sort=False):
            by_expert = grp.groupby(["expert", "method"], sort=False)
            wide = by_expert["score"].mean().unstack("method").reindex(columns=list(method.parts))
            seconds = by_expert["seconds"].sum().groupby("expert", sort=False).sum()
            feature_seconds = by_expert["feature_seconds"].max().groupby("expert", sort=False).max()
            frames.append(pd.DataFrame({
                "expert": wide.index, **dict(zip(GROUP, key)), "method": name,
                "score": combine_values(wide.to_numpy(), method),
                "seconds": seconds.reindex(wide.index).to_numpy(),
                "feature_seconds": feature_seconds.reindex(wide.index).to_numpy()}))
    if len(frames) == 1:
        return scores_df
    return pd.concat(frames, ignore_index=True)[list(scores_df.columns)]
