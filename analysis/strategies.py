"""Model-search strategies built on top of the selection scores, for a budget of B fine-tunes.

A strategy returns a *ranking frame*: the long format of scores.csv (expert, target, shots,
method, score, probe, tie_draw) whose ``score`` is a ranking key, higher = picked earlier.
Per (target, shots) that is an ordered list of experts (`ordered`); the top-B set is the
first B, and ties in the key are resolved by the exact expectation over uniform random
tie-breaking in analysis.protocols (so every protocol, `evaluate_selection` and
`regret_table` included, evaluates strategies like plain methods). A strategy whose choice
cannot be written as one key vector (the hybrid when the task-agnostic pick is tied) lists
equally likely alternatives under ``tie_draw`` = 0, 1, ...; the protocols average over them.

Strategies (Which Model to Transfer? Sec. 2 and 5.3; PARC Sec. 4, eq. 6):
- top-B by any score: the method's own rows (`task_aware` for `logistic` / `knn_loo`);
- `depth_calibrated`: PARC's "+l", method "<m>+l";
- `task_agnostic`: best source_test_accuracy, then largest source_images, then most parameters;
- `hybrid`: the top-1 task-agnostic expert + the top-(B-1) experts by a task-aware score;
- `random_strategy`: all experts tied (the exact expectation over random B-subsets);
- `heuristic`: PARC's Heuristic baseline (Sec. 3.2, eq. 4), from the zoo and targets tables alone.

A model pool is a filter on experts (`restrict_pool`): None (every expert), a collection of
expert ids, or a callable mapping the zoo table to a boolean mask (e.g. `arch_pool("resnet")`).
"""
from __future__ import annotations

from typing import Callable, Collection, Union

import numpy as np
import pandas as pd

from analysis.protocols import RANDOM, probe_rows, probes_present
from analysis.tables import REFERENCE_PREFIX
from pipeline.layout import is_parc_draw

Pool = Union[None, Collection[str], Callable[[pd.DataFrame], "pd.Series"]]

TASK_AGNOSTIC = "task_agnostic"
TASK_AWARE = ("logistic", "knn_loo")  # linear probe and kNN (Which Model Sec. 2, II B)
CALIBRATED = "+l"
HEURISTIC = "heuristic"  # PARC eq. 4
REF_HEURISTIC = f"{REFERENCE_PREFIX}heuristic"  # the same baseline as dbolya/parc's released code computes it
AGNOSTIC_CRITERIA = ("source_test_accuracy", "source_images", "parameters")
RANKING_COLUMNS = ["expert", "target", "shots", "method", "score", "probe", "tie_draw"]
_GROUP = ["target", "shots", "probe"]


def arch_pool(*archs: str) -> Callable[[pd.DataFrame], pd.Series]:
    """Pool of the experts of the given architecture(s) (column ``arch`` of the zoo table)."""
    return lambda zoo: zoo["arch"].isin(archs)


def pool_experts(zoo_df: pd.DataFrame, pool: Pool) -> set[str] | None:
    """Expert ids of ``pool`` (None: no restriction)."""
    if pool is None:
        return None
    if callable(pool):
        return set(zoo_df.loc[np.asarray(pool(zoo_df), dtype=bool), "expert"])
    return set(pool)


def restrict_pool(df: pd.DataFrame, zoo_df: pd.DataFrame, pool: Pool) -> pd.DataFrame:
    """The rows of ``df`` whose expert is in ``pool``."""
    experts = pool_experts(zoo_df, pool)
    return df if experts is None else df[df["expert"].isin(experts)]


def _candidates(scores_df: pd.DataFrame, zoo_df: pd.DataFrame, pool: Pool, method: str | None,
                probe: str | None) -> pd.DataFrame:
    """Scored rows (of ``method``, of ``probe``; None = all) of the pool's experts."""
    probes_present(scores_df)  # raises a clean error without a probe column
    df = scores_df if probe is None else probe_rows(scores_df, probe)
    df = restrict_pool(df.dropna(subset=["score"]), zoo_df, pool)
    return df if method is None else df[df["method"] == method]


def _frame(df: pd.DataFrame, method: str, score, tie_draw=0) -> pd.DataFrame:
    """A ranking frame with the given keys."""
    return df.assign(method=method, score=score, tie_draw=tie_draw).reindex(columns=RANKING_COLUMNS)


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=RANKING_COLUMNS)


def task_aware(scores_df: pd.DataFrame, method: str, zoo_df: pd.DataFrame | None = None,
               pool: Pool = None, *, probe: str) -> pd.DataFrame:
    """Top-B by any score, e.g. the linear probe (`logistic`) or kNN (`knn_loo`): the method's
    rows on the probe set ``probe`` themselves."""
    df = _candidates(scores_df, zoo_df, pool, method, probe)
    return _frame(df, method, df["score"]) if len(df) else _empty()


def random_strategy(scores_df: pd.DataFrame, zoo_df: pd.DataFrame | None = None, pool: Pool = None, *,
                    probe: str) -> pd.DataFrame:
    """Random selection: every expert scored on ``probe`` for a (target, shots), all tied (method
    ``random``: the exact expectation over uniformly random B-subsets)."""
    df = _candidates(scores_df, zoo_df, pool, None, probe).drop_duplicates(["expert", "target", "shots"])
    return _frame(df, RANDOM, 0.0) if len(df) else _empty()


def depth_calibrated(scores_df: pd.DataFrame, zoo_df: pd.DataFrame, pool: Pool = None, methods=None,
                     probe: str | None = None, ddof: int = 1) -> pd.DataFrame:
    """PARC's "+l" (Bolya et al. Sec. 4 "Capacity to Change", eq. 6, Tables 3-4), method "<m>+l":

        alpha'_s = (alpha_s - mu) / sigma + depth_s / depth_max

    mu, sigma: mean and std of the method's scores over the pool's scored experts of one
    (target, shots, probe) (sigma with ``ddof=1`` as PARC's released code, pandas ``std``;
    when sigma is 0 or undefined the z-score is 0); depth_max: the largest ``depth`` of the
    pool's experts in the zoo table (PARC's "maximum depth possible", 50 in the paper).
    Every method but ``random`` (default: all methods), on every probe (``probe=None``) or
    one. Experts without a zoo depth get a NaN score (left out by the protocols).

    A reference-code method ("ref_<m>") is calibrated as dbolya/parc ``metrics.add_plasticity``
    (commit b05d062) does: mu and sigma over all of the method's transfers of one shot setting,
    every target and every PARC draw together (the released code's results table), not per target.
    """
    df = _candidates(scores_df, zoo_df, pool, None, probe)
    methods = [m for m in (df["method"].unique() if methods is None else methods) if m != RANDOM]
    df = df[df["method"].isin(methods)]
    if df.empty:
        return _empty()
    depth = zoo_df.set_index("expert")["depth"].astype(float)
    depth_max = restrict_pool(zoo_df, zoo_df, pool)["depth"].astype(float).max()
    ref = df["method"].str.startswith(REFERENCE_PREFIX)
    kind = df["probe"].astype(str).map(lambda p: "parc_draw" if is_parc_draw(p) else p)
    keys = [df["method"], df["target"].where(~ref, ""), df["shots"], df["probe"].where(~ref, kind)]
    grouped = df["score"].groupby(keys)
    sigma = grouped.transform(lambda x: x.std(ddof=ddof))
    z = ((df["score"] - grouped.transform("mean")) / sigma).where(sigma > 0, 0.0)
    return _frame(df, df["method"] + CALIBRATED, z + df["expert"].map(depth) / depth_max)


def heuristic(scores_df: pd.DataFrame, zoo_df: pd.DataFrame, targets_df: pd.DataFrame, pool: Pool = None,
              probe: str | None = None, reference: bool = False) -> pd.DataFrame:
    """PARC's Heuristic baseline (Bolya et al. Sec. 3.2, eq. 4; Tables 1-2), method "heuristic"
    (higher = predicted to transfer better; it needs no features):

        heuristic_s^t = l_s + log(|D^s| + |D^t|)

    l_s: the expert's ``depth`` (zoo table: weight layers, as the 50 of ResNet-50); |D^s|: its
    ``source_images``; |D^t|: the target's training ``images`` of that shot setting (targets
    table). ``reference=True``, method "ref_heuristic": the value of dbolya/parc ``metrics.py``
    ``add_heuristic`` (commit b05d062), l_s + log|D^s| - log|D^t|, which the released code
    computes instead of eq. 4. The value does not depend on the probe set: one row per
    (expert, target, shots, probe) that has scores (by any method) on ``probe`` (None = every
    probe), so it enters every protocol beside the scores (PARC's std over draws is 0). Experts
    or (target, shots) missing from the tables get NaN (left out by the protocols)."""
    df = _candidates(scores_df, zoo_df, pool, None, probe).drop_duplicates(["expert", *_GROUP])
    if df.empty or targets_df is None or targets_df.empty:
        return _empty()
    zoo = zoo_df.set_index("expert")
    depth, source_images = (df["expert"].map(zoo[c].astype(float)) for c in ("depth", "source_images"))
    images = targets_df.assign(shots=targets_df["shots"].astype(str)).set_index(["target", "shots"])["images"]
    target_images = pd.Series([images.get(key, np.nan) for key in zip(df["target"], df["shots"].astype(str))],
                              index=df.index, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = (depth + np.log(source_images) - np.log(target_images) if reference
                 else depth + np.log(source_images + target_images))
    return _frame(df, REF_HEURISTIC if reference else HEURISTIC, value)


def heuristics(scores_df: pd.DataFrame, zoo_df: pd.DataFrame, targets_df: pd.DataFrame | None, pool: Pool = None,
               probe: str | None = None) -> pd.DataFrame:
    """`heuristic` as eq. 4 and as the reference code (both methods), or no rows without a
    targets table."""
    if targets_df is None:
        return _empty()
    frames = [heuristic(scores_df, zoo_df, targets_df, pool, probe, reference=r) for r in (False, True)]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else _empty()


def agnostic_rank(zoo_df: pd.DataFrame) -> pd.Series:
    """Task-agnostic key per expert (Which Model Sec. 2, II A, as adapted to this zoo): higher
    source_test_accuracy first, then larger source_images, then more parameters; experts
    equal on all three share a key (a tie). Criteria absent from the table are skipped and a
    missing value ranks last. Dense: 1 = worst, consecutive integers."""
    cols = [c for c in AGNOSTIC_CRITERIA if c in zoo_df]
    crit = zoo_df.set_index("expert")[cols].astype(float).fillna(-np.inf)
    if not cols:
        return pd.Series(1, index=crit.index, dtype=float)
    return crit.groupby(cols, sort=True).ngroup().astype(float) + 1  # lexicographic ascending


def _dense(keys: pd.Series) -> pd.Series:
    return keys.rank(method="dense")


def task_agnostic(scores_df: pd.DataFrame, zoo_df: pd.DataFrame, pool: Pool = None, *, probe: str) -> pd.DataFrame:
    """The same ranking for every (target, shots), over the pool's experts scored there on
    ``probe`` (by any method): the dense rank of `agnostic_rank` among them (experts not in the
    zoo last)."""
    df = _candidates(scores_df, zoo_df, pool, None, probe).drop_duplicates(["expert", *_GROUP])
    if df.empty:
        return _empty()
    keys = df["expert"].map(agnostic_rank(zoo_df)).fillna(0.0)
    return _frame(df, TASK_AGNOSTIC, keys.groupby([df[c] for c in _GROUP]).transform(_dense))


def hybrid(scores_df: pd.DataFrame, zoo_df: pd.DataFrame, aware: str, pool: Pool = None, *,
           probe: str) -> pd.DataFrame:
    """Which Model Sec. 5.3: "selects both the top-1 task-agnostic model and the top-(B-1)
    task-aware models", method "hybrid_<aware>". Candidates: the pool's experts with an
    ``aware`` score for the (target, shots). Key: the task-agnostic top-1 first, then the
    others by the dense rank of their ``aware`` score, so that a task-aware pick equal to the
    task-agnostic one is skipped (no duplicates: the set always has B distinct experts).
    When several experts tie for the task-agnostic top-1, each is the first pick with equal
    probability: one ``tie_draw`` per tied expert. Scores of the probe set ``probe``."""
    df = _candidates(scores_df, zoo_df, pool, aware, probe)
    agnostic = agnostic_rank(zoo_df)
    frames = []
    for _, grp in df.groupby(_GROUP, sort=False):
        keys = grp["expert"].map(agnostic).fillna(0.0)
        for draw, first in enumerate(grp.index[keys == keys.max()]):
            key = _dense(grp["score"].drop(first))
            key[first] = key.max() + 1 if len(key) else 1.0
            frames.append(_frame(grp, f"hybrid_{aware}", key.reindex(grp.index), draw))
    return pd.concat(frames, ignore_index=True) if frames else _empty()


def all_strategies(scores_df: pd.DataFrame, zoo_df: pd.DataFrame, pool: Pool = None, *, probe: str,
                   targets_df: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every strategy as extra ranking rows: task_agnostic and hybrid_<aware> for each TASK_AWARE
    method with scores (on the main probe set ``probe``), "<m>+l" for every method on every probe,
    PARC's heuristic (`heuristics`, on every probe; with ``targets_df`` only) and ``random`` when
    the score table has none. Plain methods (top-B by their scores, `task_aware`) are the score rows."""
    frames = [task_agnostic(scores_df, zoo_df, pool, probe=probe), heuristics(scores_df, zoo_df, targets_df, pool),
              *(hybrid(scores_df, zoo_df, aware, pool, probe=probe) for aware in TASK_AWARE
                if (scores_df["method"] == aware).any()),
              depth_calibrated(scores_df, zoo_df, pool)]
    if not (scores_df["method"] == RANDOM).any():
        frames.append(random_strategy(scores_df, zoo_df, pool, probe=probe))
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else _empty()


def ordered(ranking_df: pd.DataFrame) -> dict[tuple, list[list[str]]]:
    """The ordered list of experts per (method, target, shots, probe, tie_draw): groups of
    experts with equal keys (ties) in pick order; top-B = the first B experts, drawn
    uniformly from the group at the cut-off."""
    df = ranking_df.assign(tie_draw=ranking_df["tie_draw"].fillna(0)).dropna(subset=["score"])
    out = {}
    for key, grp in df.groupby(["method", *_GROUP, "tie_draw"], sort=False):
        by_key = grp.groupby("score")["expert"].apply(sorted)
        out[key] = [by_key[s] for s in sorted(by_key.index, reverse=True)]
    return out


def ranked_methods(ctx) -> pd.DataFrame:
    """Every way of ranking the single-domain experts that step=evaluate evaluates, as ranking
    rows: the scores, the learned recommenders (`analysis.guided.learned_recommendations`) and
    every strategy (`all_strategies` on the main probe set over the whole zoo table, whose
    largest depth sets PARC's depth_max); computed once per context."""
    from analysis.guided import learned_recommendations

    def make():
        scores = ctx.single("scores")
        return pd.concat([scores, learned_recommendations(ctx),
                          all_strategies(scores, ctx.table("zoo_accuracy"), probe=ctx.probe_set,
                                         targets_df=ctx.table("targets", optional=True))], ignore_index=True)
    return ctx.memo("ranked_methods", make)


def scores_with_heuristics(ctx) -> pd.DataFrame:
    """The single-domain zoo's scores plus PARC's heuristic rows (`heuristics`, every probe; no
    seconds: PARC reports its time as N/A), the methods of PARC's Tables 1-3; once per context."""
    def make():
        scores = ctx.single("scores")
        extra = heuristics(scores, ctx.table("zoo_accuracy"), ctx.table("targets", optional=True))
        return pd.concat([scores, extra.drop(columns="tie_draw")], ignore_index=True) if len(extra) else scores
    return ctx.memo("scores_with_heuristics", make)
