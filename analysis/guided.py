"""Learned model recommendation: Li et al., "Guided Recommendation for Model Fine-Tuning"
(CVPR 2023), trained leave-one-target-out on this benchmark's own fine-tuning history.

What the paper specifies and how it is used here:
- Sec. 3.1, eq. 6: the recommender maps (model features v_i, dataset features v_j, optional
  model-selection scores U_ij) to a predicted fine-tuning score; ranking the experts of a
  target by that prediction is a model-selection method. `recommend` writes the predictions
  in the format of scores.csv, so every protocol evaluates them like any other score.
- Sec. 3.2: two recommenders on the concatenated features z = [d, m(, U)]:
  linear regression (LR; "the first two terms" of the FM) and a second-order factorization
  machine (FM, Rendle 2010): w0 + sum_i w_i z_i + sum_{i<j} <u_i, u_j> z_i z_j.
- Sec. 3.3: dataset embedding = task difficulty, number of samples, number of classes; model
  embedding = architecture family, input size, number of parameters, GMACs, pre-trained
  domain. "Additional features": existing model-selection scores.
- Sec. 4.1 / 4.2.3 / Table 2: leave-one-out (LOO) over downstream datasets: for each
  dataset, train on every other dataset's history and predict that one; report the mean
  Pearson correlation between prediction and fine-tuned accuracy over the datasets of a
  benchmark (`table2`, one column per shot setting, which plays the role of a benchmark).

What the paper leaves open, and the choices made here:
- Rows: one training row per (expert, target, shots), label = best fine-tuned test accuracy
  over the learning-rate grid (`analysis.tables.best_finetune`). A "dataset" is a (target,
  shots) pair, since its image count differs per shot setting. Leave-one-TARGET-out: all
  shot settings of the held-out target are left out of training.
- Labels: the paper regresses raw top-1 accuracy. Here, by default (``label="zscore"``),
  accuracies are standardised per (target, shots) over the experts with a result
  (population std; a constant group becomes 0): a recommender is judged by how it ranks
  experts within one target, and raw accuracies would spend the fit on predicting how hard
  each target is. ``label="accuracy"`` keeps the paper's raw labels.
- Features: log-scaled counts (images, classes, parameters, GMACs, input size, depth,
  source images), one-hot categoricals (arch family, source, init). In each fold every
  column is standardised with the training rows' mean / std; a column constant on the
  training rows is dropped; missing values (an optional zoo column absent for some expert,
  a score missing for a row) become 0 after standardisation, i.e. the training mean.
- Difficulty convention: ``targets_df.difficulty`` = the linear-probe accuracy (the `logistic`
  score, percent) of one fixed backbone, the reference expert, on that (target, shots)'s probe
  set; higher = easier (the paper's "MS score calculated with a fixed backbone", Sec. 3.3;
  built by `difficulty_table`). Training data only: the test sets stay hidden.
- Score features: each method's score on the main probe set, z-scored per (target, shots) over the
  experts (a per-target monotone rescaling does not change what a score ranks, and raw
  scales differ by orders of magnitude between methods and targets).
- LR: ridge regression with a small penalty (alpha=1 on the summed squared error, intercept
  unpenalised), because the one-hot blocks are collinear with the intercept; the paper says
  only "linear regression". FM: k=8 latent factors, full-batch Adam on the mean squared
  error with L2 on weights and factors, fixed number of steps, factors drawn from a seeded
  normal: deterministic given ``seed``. The paper gives no FM hyperparameters.
- Not used: the ImageNet-only training history (Table 1 and the "ImageNet" columns of
  Table 2; this zoo has no 400-model source history) and dataset-ID features (Fig. 5; an
  ID of a held-out dataset has no training rows under LOO, so it cannot change a ranking).
"""
from __future__ import annotations

import logging
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from analysis.guided_models import RECOMMENDERS, leave_one_target_out
from analysis.protocols import RANDOM, candidate_groups, method_order, pearson, probe_rows
from analysis.tables import KEYS, AnalysisError, best_finetune, shots_order

PREFIX = "gr_"
MODELS = ("linear", "fm")
SCORES_SUFFIX = "+scores"
ZOO_REQUIRED = ["expert", "arch", "source", "init", "source_images", "parameters", "depth"]
ZOO_OPTIONAL = ["gmacs", "input_size"]  # used when the zoo table has them
TARGET_REQUIRED = ["target", "shots", "images", "classes", "difficulty"]
FINETUNE_REQUIRED = ["expert", "target", "shots", "test_accuracy"]
SCORE_REQUIRED = ["expert", "target", "shots", "method", "score"]
OUTPUT_COLUMNS = ["expert", "target", "shots", "probe", "method", "score", "seconds", "feature_seconds"]
LABELS = ("zscore", "accuracy")
# Table 2's "d, m, S_X" rows: the scores Li et al. add one at a time (each costs a recommender per
# model and fold, so the rest of this benchmark's scores enter through "+scores" only)
TABLE2_SCORES = ("lfc", "logme", "parc")
log = logging.getLogger("analysis")


# --------------------------------------------------------------------------- inputs

def _require(df: pd.DataFrame | None, columns: Sequence[str], what: str) -> pd.DataFrame:
    """``df`` with its shots as strings, or an AnalysisError naming the missing columns."""
    if df is None:
        raise AnalysisError(f"guided recommendation: the {what} table is missing (None)")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise AnalysisError(f"guided recommendation: the {what} table lacks columns {missing} "
                            f"(it has {list(df.columns)}); rebuild it with step=tables")
    if "shots" in df:
        df = df.assign(shots=df["shots"].astype(str))
    return df


def _log(values: pd.Series) -> pd.Series:
    """Natural log of a positive count; a non-positive or missing value becomes NaN (imputed later)."""
    v = pd.to_numeric(values, errors="coerce").astype(float)
    return np.log(v.where(v > 0))


def _one_hot(values: pd.Series, name: str) -> pd.DataFrame:
    return pd.get_dummies(values.astype(str), prefix=name, prefix_sep="=", dtype=float)


# --------------------------------------------------------------------------- meta-features

DIFFICULTY_METHODS = ("logistic", "knn_loo", "logme")  # linear probe first, as the paper suggests


def difficulty_table(targets_df: pd.DataFrame, scores_df: pd.DataFrame, backbone: str, probe: str) -> pd.DataFrame:
    """targets_df (target, shots, images, classes) plus ``difficulty``: the score of the fixed
    `backbone` expert per (target, shots) on the probe set ``probe``, by the first method of
    DIFFICULTY_METHODS the benchmark computes (missing, i.e. the training mean, if none)."""
    sc = probe_rows(scores_df, probe)
    sc = sc[sc["expert"] == backbone]
    method = next((m for m in DIFFICULTY_METHODS if (sc["method"] == m).any()), None)
    if method is None:
        return targets_df.assign(difficulty=np.nan)
    difficulty = sc[sc["method"] == method].set_index(["target", "shots"])["score"].rename("difficulty")
    return targets_df.join(difficulty, on=["target", "shots"])


def dataset_features(targets_df: pd.DataFrame) -> pd.DataFrame:
    """Dataset embedding d (Sec. 3.3), one row per (target, shots): log_images (number of
    training samples of that shot setting), log_classes, difficulty (accuracy of a fixed small
    probe model; higher = easier)."""
    df = _require(targets_df, TARGET_REQUIRED, "targets")
    dup = df.duplicated(["target", "shots"])
    if dup.any():
        raise AnalysisError(f"guided recommendation: the targets table has duplicate (target, shots) rows: "
                            f"{df.loc[dup, ['target', 'shots']].values.tolist()}")
    out = pd.DataFrame({"log_images": _log(df["images"]), "log_classes": _log(df["classes"]),
                        "difficulty": pd.to_numeric(df["difficulty"], errors="coerce").astype(float)})
    out.index = pd.MultiIndex.from_frame(df[["target", "shots"]])
    return out


def model_features(zoo_df: pd.DataFrame) -> pd.DataFrame:
    """Model embedding m (Sec. 3.3), one row per expert: one-hot arch family, source (the
    pre-trained domain) and init; log of parameters, depth and source images; log GMACs and
    log input size when the zoo table has those columns."""
    df = _require(zoo_df, ZOO_REQUIRED, "zoo")
    if df["expert"].duplicated().any():
        raise AnalysisError(f"guided recommendation: the zoo table lists experts more than once: "
                            f"{sorted(df.loc[df['expert'].duplicated(), 'expert'].unique())}")
    numeric = {"log_parameters": _log(df["parameters"]), "log_depth": _log(df["depth"]),
               "log_source_images": _log(df["source_images"])}
    numeric.update({f"log_{c}": _log(df[c]) for c in ZOO_OPTIONAL if c in df})
    out = pd.concat([_one_hot(df["arch"], "arch"), _one_hot(df["source"], "source"),
                     _one_hot(df["init"], "init"), pd.DataFrame(numeric)], axis=1)
    out.index = pd.Index(df["expert"], name="expert")
    return out


def score_features(scores_df: pd.DataFrame | None, methods: Sequence[str], probe: str) -> pd.DataFrame:
    """Additional features U (Sec. 3.3): per method in ``methods``, its score on ``probe``
    z-scored per (target, shots) over the experts (population std; constant group -> 0),
    one column ``score=<method>`` per method, indexed by (expert, target, shots)."""
    if not methods:
        return pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=KEYS))
    df = probe_rows(_require(scores_df, SCORE_REQUIRED, "scores"), probe)
    df = df[df["method"].isin(methods)].dropna(subset=["score"])
    if df.duplicated(KEYS + ["method"]).any():
        raise AnalysisError(f"guided recommendation: the scores table has several {probe} rows for one "
                            "(expert, target, shots, method); keep one row per score")
    grouped = df.groupby(["method", "target", "shots"])["score"]
    std = grouped.transform(lambda x: x.std(ddof=0))
    z = ((df["score"] - grouped.transform("mean")) / std).where(std > 0, 0.0)
    wide = df.assign(z=z).pivot_table(index=KEYS, columns="method", values="z", aggfunc="first")
    wide = wide.reindex(columns=list(methods))
    wide.columns = [f"score={m}" for m in wide.columns]
    return wide


def available_score_methods(scores_df: pd.DataFrame | None, probe: str) -> list[str]:
    """Methods with scores on ``probe`` that can serve as features: all but ``random``
    (constant by construction) and this module's own predictions (``gr_*``)."""
    if scores_df is None or len(scores_df) == 0 or "method" not in scores_df:
        return []
    methods = probe_rows(scores_df, probe).dropna(subset=["score"])["method"].astype(str).unique()
    return sorted(m for m in methods if m != RANDOM and not m.startswith(PREFIX))


def design_matrix(rows: pd.DataFrame, zoo_df: pd.DataFrame, targets_df: pd.DataFrame,
                  scores_df: pd.DataFrame | None = None, score_methods: Sequence[str] = (),
                  probe: str | None = None) -> pd.DataFrame:
    """Concatenated features z = [d, m, U] (Sec. 3.2) for every (expert, target, shots) of
    ``rows`` (same order), before per-fold standardisation; U from the scores on ``probe``
    (needed with ``score_methods``). Raises when an expert is not in the zoo table or a
    (target, shots) is not in the targets table."""
    rows = rows[KEYS].assign(shots=rows["shots"].astype(str)).reset_index(drop=True)
    m, d = model_features(zoo_df), dataset_features(targets_df)
    unknown = sorted(set(rows["expert"]) - set(m.index))
    if unknown:
        raise AnalysisError(f"guided recommendation: experts {unknown} have fine-tune results but no row in "
                            f"the zoo table (zoo_accuracy.csv); add their zoo records")
    pairs = pd.MultiIndex.from_frame(rows[["target", "shots"]])
    lacking = sorted(set(pairs) - set(d.index))
    if lacking:
        raise AnalysisError(f"guided recommendation: (target, shots) {lacking} have no meta-features in the "
                            f"targets table (columns {TARGET_REQUIRED}); add them")
    parts = [d.reindex(pairs).reset_index(drop=True), m.reindex(rows["expert"]).reset_index(drop=True)]
    if score_methods:
        if probe is None:
            raise AnalysisError("guided recommendation: score features need the probe set they were computed on")
        u = score_features(scores_df, score_methods, probe)
        parts.append(u.reindex(pd.MultiIndex.from_frame(rows)).reset_index(drop=True))
    return pd.concat(parts, axis=1)


def training_labels(finetune_df: pd.DataFrame, label: str = "zscore") -> pd.DataFrame:
    """Per (expert, target, shots): ``label`` = the best fine-tuned accuracy over the lr grid,
    standardised per (target, shots) over the experts (``"zscore"``, population std, a
    constant group gives 0) or raw (``"accuracy"``, the paper's choice)."""
    if label not in LABELS:
        raise AnalysisError(f"guided recommendation: unknown label {label!r}; choose one of {LABELS}")
    df = _require(finetune_df, FINETUNE_REQUIRED, "fine-tune")
    df = df.assign(seconds=df["seconds"] if "seconds" in df else 0.0).dropna(subset=["test_accuracy"])
    best = best_finetune(df)[KEYS + ["test_accuracy"]]
    y = best["test_accuracy"].astype(float)
    if label == "zscore":
        grouped = y.groupby([best["target"], best["shots"]])
        std = grouped.transform(lambda x: x.std(ddof=0))
        y = ((y - grouped.transform("mean")) / std).where(std > 0, 0.0)
    return best[KEYS].assign(label=y.to_numpy()).reset_index(drop=True)


def _check_targets(labels: pd.DataFrame) -> None:
    targets = sorted(labels["target"].unique())
    if len(targets) < 2:
        raise AnalysisError(f"guided recommendation needs fine-tune results on at least 2 targets for "
                            f"leave-one-target-out training; got {len(targets)} ({', '.join(targets) or 'none'})")


def recommend(zoo_df: pd.DataFrame, finetune_df: pd.DataFrame, scores_df: pd.DataFrame | None,
              targets_df: pd.DataFrame, *, probe: str, score_methods: Iterable[str] | None = None, seed: int = 0,
              models: Sequence[str] = MODELS, per_score: bool = False, label: str = "zscore",
              model_options: dict | None = None, base: bool = True) -> pd.DataFrame:
    """Guided-recommendation predictions (higher = predicted better) in the format of scores.csv
    (probe set ``probe``, the one the score features come from; feature_seconds 0), one row per
    expert of the zoo x (target, shots) of the targets table:

    - ``gr_<model>``: meta-features d, m only (Table 2 "d, m");
    - ``gr_<model>+scores``: d, m and the scores ``score_methods`` (default: every method
      scored on ``probe`` but ``random`` and ``gr_*``; skipped when there are none);
    - ``gr_<model>+<method>`` (``per_score=True``): d, m and one score (Table 2 "d, m, S_X");

    for <model> in ``models`` (``linear``, ``fm``), each trained leave-one-target-out on the
    labels of `training_labels` (``label``); ``base=False`` leaves out the first two (with
    ``per_score``: only the per-score recommenders). ``model_options``: per model, keyword options of
    its recommender (e.g. ``{"fm": {"k": 4}}``). Raises AnalysisError with fewer than 2
    fine-tuned targets, missing columns, unknown models or score methods.
    """
    unknown = [m for m in models if m not in RECOMMENDERS]
    if unknown:
        raise AnalysisError(f"guided recommendation: unknown models {unknown}; choose from {list(RECOMMENDERS)}")
    labels = training_labels(finetune_df, label)
    _check_targets(labels)
    zoo, targets = _require(zoo_df, ZOO_REQUIRED, "zoo"), _require(targets_df, TARGET_REQUIRED, "targets")
    known = available_score_methods(scores_df, probe)
    if score_methods is None:
        score_methods = known
    else:
        score_methods = list(score_methods)
        missing = [m for m in score_methods if m not in known]
        if missing:
            raise AnalysisError(f"guided recommendation: score methods {missing} have no {probe} scores "
                                f"to use as features (available: {known or 'none'})")
    design_matrix(labels, zoo, targets)  # every fine-tuned expert / (target, shots) has meta-features
    rows = (zoo[["expert"]].merge(targets[["target", "shots"]], how="cross")[KEYS]
            .sort_values(KEYS, kind="stable").reset_index(drop=True))
    feature_sets = {"": []} if base else {}
    if score_methods:
        if base:
            feature_sets[SCORES_SUFFIX] = score_methods
        if per_score:
            feature_sets.update({f"+{m}": [m] for m in score_methods})
    options = model_options or {}
    frames = []
    for suffix, methods in feature_sets.items():
        x = design_matrix(rows, zoo, targets, scores_df, methods, probe)
        for model in models:
            pred = leave_one_target_out(rows, x, labels, RECOMMENDERS[model], seed, **options.get(model, {}))
            frames.append(pred.assign(method=f"{PREFIX}{model}{suffix}", probe=probe, feature_seconds=0.0))
    return pd.concat(frames, ignore_index=True)[OUTPUT_COLUMNS] if frames else pd.DataFrame(columns=OUTPUT_COLUMNS)


# --------------------------------------------------------------------------- Table 2

_MODEL_NAMES = {"linear": "LR", "fm": "FM"}


def describe_method(method: str) -> tuple[str, str]:
    """(model, features) of a method as Table 2 names them: ``gr_fm+parc`` -> ("FM", "d, m, parc");
    any other method is a feature-based score: ("feature-based", method)."""
    if method.startswith(PREFIX):
        model, _, extra = method[len(PREFIX):].partition("+")
        if model in _MODEL_NAMES:
            return _MODEL_NAMES[model], "d, m" + (f", {extra}" if extra else "")
    return "feature-based", method


def _pearson(method: str, scores, values) -> float:
    """`analysis.protocols.pearson`; for ``random`` its expectation over random orders (0, or
    NaN when undefined), as in `evaluate_selection`."""
    if method == RANDOM:
        v = np.asarray(values, dtype=float)
        return 0.0 if len(v) > 1 and np.ptp(v) > 0 else float("nan")
    return pearson(scores, values)


def _pearson_per_target(results: pd.DataFrame, finetune_df: pd.DataFrame | None, probe: str | None) -> pd.DataFrame:
    """(method, target, shots, pearson) from an evaluate_selection table (its ``pearson``
    column) or from a scores-format table of predictions and the fine-tune table."""
    if "pearson" in results:
        return _require(results, ["method", "target", "shots", "pearson"], "selection evaluation")
    _require(results, SCORE_REQUIRED, "predictions")
    if finetune_df is None:
        raise AnalysisError("table2: a table of predictions (scores format) needs finetune_df to correlate with; "
                            "or pass the selection evaluation (selection_eval.csv) instead")
    ft = _require(finetune_df, FINETUNE_REQUIRED, "fine-tune")
    ft = ft.assign(seconds=ft["seconds"] if "seconds" in ft else 0.0)
    if probe is None:
        raise AnalysisError("table2: a table of predictions (scores format) needs the probe set to evaluate")
    preds = results.assign(shots=results["shots"].astype(str))
    rows = [{"method": method, "target": target, "shots": shots,
             "pearson": float(np.mean([_pearson(method, s, acc) for s, acc in draws]))}
            for method, target, shots, draws in candidate_groups(ft, preds, probe)]
    return pd.DataFrame(rows, columns=["method", "target", "shots", "pearson"])


def table2(results: pd.DataFrame, finetune_df: pd.DataFrame | None = None,
           methods: Iterable[str] | None = None, probe: str | None = None) -> pd.DataFrame:
    """Guided Recommendation Table 2: the mean over targets of the Pearson correlation between
    a method's scores (for ``gr_*``: predicted performance) and the best fine-tuned accuracy,
    one column per shot setting (the "benchmark"), rows: feature-based scores, then LR, then
    FM, each with features "d, m", "d, m, scores", "d, m, <score>".

    ``results``: the selection evaluation (`evaluate_selection`, selection_eval.csv: its
    per-target ``pearson``) or predictions in the scores format (with ``finetune_df``; the
    correlation is `analysis.protocols.pearson` on the probe set ``probe``). ``methods``: the
    methods to show (default: all). Targets with an undefined correlation are left out of
    the mean. Columns: model, features, method, then the shot settings.
    """
    per_target = _pearson_per_target(results, finetune_df, probe)
    if methods is not None:
        per_target = per_target[per_target["method"].isin(list(methods))]
    shots = shots_order(per_target["shots"])
    if per_target.empty:
        return pd.DataFrame(columns=["model", "features", "method", *shots])
    wide = (per_target.dropna(subset=["pearson"]).groupby(["method", "shots"])["pearson"].mean()
            .unstack("shots").reindex(columns=shots).reset_index())
    wide.columns.name = None
    described = wide["method"].map(describe_method)
    wide.insert(0, "features", [f for _, f in described])
    wide.insert(0, "model", [m for m, _ in described])
    model_rank = {"feature-based": 0, "LR": 1, "FM": 2}
    base = method_order(wide.loc[wide["model"] == "feature-based", "method"])
    key = [(model_rank[m], base.index(meth) if m == "feature-based" else 0,
            f != "d, m", f != "d, m, scores", f) for m, f, meth in zip(wide["model"], wide["features"], wide["method"])]
    order = sorted(range(len(wide)), key=lambda i: key[i])
    return wide.iloc[order].reset_index(drop=True)[["model", "features", "method", *shots]]


# --------------------------------------------------------------------------- outputs

def learned_recommendations(ctx, per_score: bool = False) -> pd.DataFrame:
    """The recommenders' predictions on this benchmark (`recommend`, leave-one-target-out on the
    single-domain zoo's fine-tunes, dataset difficulty from the reference expert's scores), in
    the scores table's format; ``per_score``: instead, the recommenders with each score of
    TABLE2_SCORES the benchmark has as the one extra feature (Table 2's "d, m, S_X", methods
    gr_<model>+<score>). No rows, with a
    warning, when there are fewer than 2 fine-tuned targets or a (target, shots) lacks a row in
    targets.csv (computed once per context)."""
    def make():
        finetune, scores = ctx.single("finetune"), ctx.single("scores")
        targets = ctx.table("targets", optional=True)
        targets = (difficulty_table(targets, scores, ctx.reference_expert, ctx.probe_set) if targets is not None
                   else pd.DataFrame(columns=["target", "shots"]))
        if finetune["target"].nunique() >= 2 and set(zip(finetune["target"], finetune["shots"])) <= set(
                zip(targets["target"], targets["shots"])):
            known = available_score_methods(scores, ctx.probe_set)
            methods = [m for m in TABLE2_SCORES if m in known] if per_score else None
            if methods == []:
                return scores.iloc[:0]
            return recommend(ctx.single("zoo_accuracy"), finetune, scores, targets, probe=ctx.probe_set,
                             score_methods=methods, seed=ctx.seed, per_score=per_score, base=not per_score)
        log.warning("no learned recommenders: they need 2 or more fine-tuned targets, each in targets.csv")
        return scores.iloc[:0]
    return ctx.memo("learned_recommendations" + ("_per_score" if per_score else ""), make)


def recommendations(ctx) -> pd.DataFrame:
    """recommendations.csv: `learned_recommendations` (methods gr_*), scores.csv's columns."""
    return learned_recommendations(ctx)


def gr_table2(ctx) -> pd.DataFrame:
    """Guided Recommendation Table 2 (`table2`) of the scores and the learned recommenders: with
    "d, m", with every score and with each score alone as the extra feature (Sec. 3.3)."""
    predictions = pd.concat([ctx.single("scores"), learned_recommendations(ctx),
                             learned_recommendations(ctx, per_score=True)], ignore_index=True)
    return table2(predictions, ctx.single("finetune"), probe=ctx.probe_set)
