"""Combine per-job JSON records into the long result tables (CSV) used by every analysis.

Record formats (written by the zoo / fine-tune / selection stages):
- zoo metrics: one JSON object per expert;
- fine-tune and score records: ``{"rows": [...]}`` with one row per job item; a score record
  also lists ``"failures"``: the methods that raised on one (target, shots, probe set);
- a prepared target's ``stats.json``: ``short_classes`` (per few-shot setting, the classes trained
  on fewer images than the shot count) and ``dropped`` (files and classes left out, with reasons).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from pipeline.errors import UserError
from pipeline.layout import Expert


class AnalysisError(UserError):
    """A user mistake (missing file, unknown expert, ...): `python -m analysis` reports it in one
    line without a traceback (`pipeline.errors.one_line_errors`)."""


ZOO_COLUMNS = ["expert", "arch", "source", "init", "source_test_accuracy", "source_images", "parameters", "depth", "seconds"]
TARGET_COLUMNS = ["target", "shots", "images", "classes"]
MULTIDOMAIN_COLUMNS = ["variant", "source", "source_test_accuracy", "source_images", "seconds"]
FINETUNE_COLUMNS = ["expert", "target", "shots", "lr", "test_accuracy", "seconds"]
FINETUNE_OPTIONAL = ("seed", "val_accuracy")
# the ground truth a table judges scores against (the benchmark's lr_selection): the best test accuracy over
# the lr grid (the paper's), or the test accuracy at the lr best on the held-out validation part
LR_SELECTIONS = ("test", "validation")
LR_SELECTION_LABEL = {"test": "the best lr on test, the paper's", "validation": "the lr chosen on validation data"}
SCORE_COLUMNS = ["expert", "target", "shots", "probe", "method", "score", "seconds", "feature_seconds"]
FAILURE_COLUMNS = ["expert", "target", "shots", "probe", "method", "error"]
DATA_NOTE_COLUMNS = ["dataset", "kind", "shots", "class", "images", "path", "reason"]
KEYS = ["expert", "target", "shots"]
# a method "ref_<m>" is the variant of <m> that reproduces its paper's reference code (selection
# variants with ``as_reference: true``; PARC's heuristic and "+l" as dbolya/parc computes them)
REFERENCE_PREFIX = "ref_"

# the init column's values, by the kind of pipeline.layout.Expert (the tables keep these names); "zoo":
# an expert of a zoo file, trained elsewhere
INIT = {"scratch": "scratch", "init": "generalist", "md": "multidomain"}
ZOO = "zoo"


def parse_expert(expert: str) -> dict:
    """Split an expert id into arch, source and init (`pipeline.layout.Expert`): ``{arch}-{source}``
    (init "scratch"), ``{arch}-{source}-init`` (from the generalist's weights: "generalist") or
    ``{arch}-{source}-md`` (a domain of the multi-domain expert: "multidomain"). Any other id names an
    expert of the benchmark's zoo file (its names never read as those ids: pipeline.benchmark): arch its
    own name, source and init "zoo"."""
    try:
        parsed = Expert.parse(expert)
    except ValueError:
        return {"arch": str(expert), "source": ZOO, "init": ZOO}
    return {"arch": parsed.arch, "source": parsed.source, "init": INIT[parsed.kind]}


def is_domain_expert(expert: str) -> bool:
    return parse_expert(expert)["init"] == "multidomain"


def with_meta(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with the columns arch, source, init parsed from its expert ids (`parse_expert`)."""
    meta = pd.DataFrame(list(df["expert"].map(parse_expert)), index=df.index, columns=["arch", "source", "init"])
    return pd.concat([df.drop(columns=[c for c in meta if c in df]), meta], axis=1)


def split_zoos(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(single-domain experts, domains of the multi-domain expert): the paper selects within each
    zoo separately (Fig. 4 / Fig. 5)."""
    domain = df["expert"].map(is_domain_expert).astype(bool)
    return df[~domain].reset_index(drop=True), df[domain].reset_index(drop=True)


def shots_order(values: Iterable) -> list[str]:
    """Shot settings as in the paper: "full" first, then decreasing numbers of shots."""
    uniq = {str(v) for v in values}
    return sorted(uniq, key=lambda s: (0, 0) if s == "full" else (1, -int(s)) if s.isdigit() else (2, s))


def load_record(path) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise AnalysisError(f"record file not found: {path}") from None
    except json.JSONDecodeError as e:
        raise AnalysisError(f"record file {path} is not valid JSON: {e}") from None


def _frame(rows: list[dict], columns: list[str], what: str, optional: tuple[str, ...] = ()) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=None if rows else columns)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise AnalysisError(f"{what} records lack columns {missing}")
    df = df[columns + [c for c in optional if c in df.columns]].copy()
    if "shots" in df:  # JSON may carry 20 or "20"; shots are always labels, never numbers
        df["shots"] = df["shots"].astype(str)
    return df


def zoo_table(paths: Iterable) -> pd.DataFrame:
    """Table 1: one row per expert from its zoo-metrics record (with the model meta-features of
    Guided Recommendation, GMACs and input size, where the record has them)."""
    return _frame([load_record(p) for p in paths], ZOO_COLUMNS, "zoo", optional=("gmacs", "input_size"))


def multidomain_table(paths: Iterable) -> pd.DataFrame:
    """Table 2: source test accuracy of each multi-domain variant on each source (long format)."""
    rows = [{"variant": r["variant"], "source": source, "source_test_accuracy": acc,
             "source_images": r["source_images"][source], "seconds": r["seconds"]}
            for r in map(load_record, paths) for source, acc in r["source_test_accuracy"].items()]
    return _frame(rows, MULTIDOMAIN_COLUMNS, "multi-domain")


def finetune_table(paths: Iterable) -> pd.DataFrame:
    """One row per expert x target x shots x learning rate x seed (``seed`` and ``val_accuracy`` where the
    records have them: records from before fine-tuning seeds lack both)."""
    rows = [r for p in paths for r in load_record(p).get("rows", [])]
    return _frame(rows, FINETUNE_COLUMNS, "fine-tune", optional=FINETUNE_OPTIONAL)


def scores_table(paths: Iterable) -> pd.DataFrame:
    """One row per expert x target x shots x selection method, the zoo-level methods (ETran, NCTI: parts
    normalised across the experts of one target, shots and probe set; selection.scores.zoo_level) included."""
    from selection.scores.zoo_level import combine  # numpy / pandas / sklearn, no torch; imported when used

    rows = [r for p in paths for r in load_record(p).get("rows", [])]
    return combine(_frame(rows, SCORE_COLUMNS, "score"))


def score_failures_table(paths: Iterable) -> pd.DataFrame:
    """One row per failed score (expert, target, shots, probe, method, error) from the score
    records' ``failures``; the empty table with these columns when every score was computed."""
    rows = [r for p in paths for r in load_record(p).get("failures", [])]
    return _frame(rows, FAILURE_COLUMNS, "score failure")


def data_notes_table(target_dirs: Iterable) -> pd.DataFrame:
    """What preparation changed in each target (its ``stats.json``; a target without one, or
    without these keys, has no notes): kind ``short_class`` (per few-shot setting: a class with
    fewer training images than the shot count, trained on all it has: class, images, shots),
    ``dropped_file`` (path, class where known, reason) and ``dropped_class`` (class, reason)."""
    rows = []
    for d in map(Path, target_dirs):
        stats = load_record(d / "stats.json") if (d / "stats.json").is_file() else {}
        for shots, short in sorted((stats.get("short_classes") or {}).items()):
            rows += [{"dataset": d.name, "kind": "short_class", "shots": str(shots), "class": r["class"],
                      "images": r["images"], "path": "",
                      "reason": f"{r['images']} training images, fewer than {r.get('shots', shots)} shots: "
                                "trained on all it has"} for r in short]
        dropped = stats.get("dropped") or {}
        rows += [{"dataset": d.name, "kind": "dropped_file", "shots": "", "class": f.get("class", ""), "images": None,
                  "path": f.get("path", ""), "reason": f.get("reason", "") + (f" ({f['detail']})" if f.get("detail") else "")}
                 for f in dropped.get("files", [])]
        rows += [{"dataset": d.name, "kind": "dropped_class", "shots": "", "class": c.get("class", ""), "images": None,
                  "path": "", "reason": c.get("reason", "")} for c in dropped.get("classes", [])]
    df = _frame(rows, DATA_NOTE_COLUMNS, "data note")
    return df.assign(images=pd.to_numeric(df["images"]).astype("Int64"))  # a count, empty where none


def targets_table(target_dirs: Iterable) -> pd.DataFrame:
    """Dataset meta-features per (target, shots): training images of that setting and classes,
    from each prepared target's splits.json and classes.json."""
    rows = []
    for d in map(Path, target_dirs):
        splits, classes = load_record(d / "splits.json"), load_record(d / "classes.json")
        rows += [{"target": d.name, "shots": shots, "images": len(index), "classes": len(classes)}
                 for shots, index in splits["train"].items()]
    return _frame(rows, TARGET_COLUMNS, "target")


def fill_probe(scores_df: pd.DataFrame, main_probe: str) -> pd.DataFrame:
    """``scores_df`` with a ``probe`` column in which a missing value (or a missing column: a score
    table from before probe sets were named) reads as ``main_probe``, the benchmark's main probe
    set (e.g. ``per_class_25``). Every protocol filters on that column."""
    probe = scores_df["probe"].fillna(main_probe).astype(str) if "probe" in scores_df else main_probe
    return scores_df.assign(probe=probe)


def load_table(path) -> pd.DataFrame:
    """Read a result CSV, keeping shots (and methods) as strings."""
    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"table not found: {path} (run step=tables first)")
    return pd.read_csv(path, dtype={"shots": str, "method": str, "expert": str, "target": str})


def seed_means(finetune_df: pd.DataFrame) -> pd.DataFrame:
    """Per (expert, target, shots, lr): test_accuracy and val_accuracy averaged over the rows (the seeds; a
    seed listed twice counts twice, as a bootstrap resample does), mean seconds and ``n_seeds`` (rows)."""
    df = finetune_df.assign(val_accuracy=finetune_df["val_accuracy"] if "val_accuracy" in finetune_df else np.nan)
    return (df.groupby(KEYS + ["lr"], as_index=False, sort=False)
            .agg(test_accuracy=("test_accuracy", "mean"), val_accuracy=("val_accuracy", "mean"),
                 seconds=("seconds", "mean"), n_seeds=("test_accuracy", "size")))


def ground_truth_rows(finetune_df: pd.DataFrame, lr_selection: str = "test") -> pd.DataFrame:
    """The fine-tune table every protocol reads (`best_finetune` then takes the max over its lr rows),
    from the runs of all seeds (`seed_means`):

    - ``test``: one row per lr with the mean over seeds; the best over the lrs is the paper's ground truth
      (Deshpande Sec. 4.2; with one seed exactly the paper's);
    - ``validation``: one row per (expert, target, shots): the mean test accuracy at the lr with the best
      mean val_accuracy (lrs tied on it within TIE_RTOL: the mean of their test accuracies, the expectation
      of a random choice among them; ``lr`` NaN then), ``seconds`` the whole grid's.

    Raises AnalysisError for an unknown selection, or for ``validation`` on runs without val_accuracy."""
    if lr_selection not in LR_SELECTIONS:
        raise AnalysisError(f"lr_selection={lr_selection!r} is not one of {list(LR_SELECTIONS)}")
    means = seed_means(finetune_df)
    if lr_selection == "test":
        return means[FINETUNE_COLUMNS]
    if len(means) and means["val_accuracy"].isna().all():
        raise AnalysisError("lr_selection=validation needs val_accuracy, but no fine-tuning run held out a "
                            "validation part: set validation_fraction (e.g. 0.2) in the finetune preset")
    val = means["val_accuracy"].to_numpy(dtype=float)
    best_val = means.assign(v=val).groupby(KEYS, sort=False)["v"].transform("max").to_numpy(dtype=float)
    chosen = means[np.isfinite(val) & (best_val - val <= 1e-9 * np.abs(best_val))]
    rows = (chosen.groupby(KEYS, as_index=False, sort=False)
            .agg(lr=("lr", lambda x: x.iloc[0] if len(x) == 1 else np.nan), test_accuracy=("test_accuracy", "mean")))
    grid_seconds = means.groupby(KEYS, as_index=False, sort=False)["seconds"].sum()
    rows = grid_seconds.merge(rows, on=KEYS, how="left")  # a setting with no finite val_accuracy: NaN accuracy
    return rows[FINETUNE_COLUMNS]


def best_finetune(finetune_df: pd.DataFrame) -> pd.DataFrame:
    """Per (expert, target, shots): best test accuracy over the lr grid, and the grid's total seconds.

    The paper reports the best accuracy over eta in {0.01, 0.005, 0.001}, so one
    "fine-tune" costs the whole grid.
    """
    return (finetune_df.groupby(KEYS, as_index=False, sort=False)
            .agg(test_accuracy=("test_accuracy", "max"), seconds=("seconds", "sum")))


# --------------------------------------------------------------------------- step=tables renderers
# (`analysis.outputs`): each combines one kind of per-job record listed in ctx.records

def zoo_accuracy(ctx) -> pd.DataFrame:
    """zoo_accuracy.csv from the zoo-metrics records."""
    return zoo_table(ctx.records["zoo"])


def finetune(ctx) -> pd.DataFrame:
    """finetune.csv from the fine-tune records."""
    return finetune_table(ctx.records["finetune"])


def scores(ctx) -> pd.DataFrame:
    """scores.csv from the score records."""
    return scores_table(ctx.records["scores"])


def score_failures(ctx) -> pd.DataFrame:
    """score_failures.csv from the score records' failures."""
    return score_failures_table(ctx.records["scores"])


def data_notes(ctx) -> pd.DataFrame:
    """data_notes.csv from the prepared target directories' stats.json."""
    return data_notes_table(ctx.records.get("target_dirs", []))


def targets(ctx) -> pd.DataFrame:
    """targets.csv from the prepared target directories."""
    return targets_table(ctx.records["target_dirs"])


def multidomain_accuracy(ctx) -> pd.DataFrame:
    """multidomain_accuracy.csv from the multi-domain expert's records."""
    return multidomain_table(ctx.records["multidomain"])
