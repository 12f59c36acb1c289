"""Combine per-job JSON records into the long result tables (CSV) used by every analysis.

Record formats (written by the zoo / fine-tune / selection stages):
- zoo metrics: one JSON object per expert;
- fine-tune and score records: ``{"rows": [...]}`` with one row per job item.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable

import pandas as pd


class AnalysisError(ValueError):
    """A user mistake (missing file, unknown expert, ...): reported without a traceback."""


ZOO_COLUMNS = ["expert", "arch", "source", "init", "source_test_accuracy", "source_images", "parameters", "depth", "seconds"]
TARGET_COLUMNS = ["target", "shots", "images", "classes"]
MULTIDOMAIN_COLUMNS = ["variant", "source", "source_test_accuracy", "source_images", "seconds"]
FINETUNE_COLUMNS = ["expert", "target", "shots", "lr", "test_accuracy", "seconds"]
SCORE_COLUMNS = ["expert", "target", "shots", "probe", "method", "score", "seconds", "feature_seconds"]
KEYS = ["expert", "target", "shots"]
TABLE_FILES = {"zoo": "zoo_accuracy.csv", "finetune": "finetune.csv", "scores": "scores.csv",
               "multidomain": "multidomain_accuracy.csv", "targets": "targets.csv"}

_EXPERT_ID = re.compile(r"^(?P<arch>[a-z0-9_]+)-(?P<source>[a-z0-9_]+)(?P<kind>-init|-md)?$")
_INIT = {None: "scratch", "-init": "generalist", "-md": "multidomain"}


def parse_expert(expert: str) -> dict:
    """Split an expert id into arch, source and init: ``{arch}-{source}`` (from scratch),
    ``{arch}-{source}-init`` (from the generalist's weights) or ``{arch}-{source}-md`` (a domain of
    the multi-domain expert)."""
    m = _EXPERT_ID.match(expert)
    if m is None:
        raise AnalysisError(f"malformed expert id {expert!r} (expected {{arch}}-{{source}}[-init|-md])")
    return {"arch": m["arch"], "source": m["source"], "init": _INIT[m["kind"]]}


def is_domain_expert(expert: str) -> bool:
    return parse_expert(expert)["init"] == "multidomain"


def split_zoos(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(single-domain experts, domains of the multi-domain expert): the paper selects within each
    zoo separately (Fig. 4 / Fig. 5)."""
    domain = df["expert"].map(is_domain_expert).astype(bool)
    return df[~domain].reset_index(drop=True), df[domain].reset_index(drop=True)


def shots_order(values: Iterable) -> list[str]:
    """Shot settings as in the paper: "full" first, then decreasing numbers of shots."""
    uniq = {str(v) for v in values}
    return sorted(uniq, key=lambda s: (0, 0) if s == "full" else (1, -int(s)) if s.isdigit() else (2, s))


def _load_json(path) -> dict:
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
    return _frame([_load_json(p) for p in paths], ZOO_COLUMNS, "zoo", optional=("gmacs", "input_size"))


def multidomain_table(paths: Iterable) -> pd.DataFrame:
    """Table 2: source test accuracy of each multi-domain variant on each source (long format)."""
    rows = [{"variant": r["variant"], "source": source, "source_test_accuracy": acc,
             "source_images": r["source_images"][source], "seconds": r["seconds"]}
            for r in map(_load_json, paths) for source, acc in r["source_test_accuracy"].items()]
    return _frame(rows, MULTIDOMAIN_COLUMNS, "multi-domain")


def finetune_table(paths: Iterable) -> pd.DataFrame:
    """One row per expert x target x shots x learning rate."""
    rows = [r for p in paths for r in _load_json(p).get("rows", [])]
    return _frame(rows, FINETUNE_COLUMNS, "fine-tune")


def scores_table(paths: Iterable) -> pd.DataFrame:
    """One row per expert x target x shots x selection method."""
    rows = [r for p in paths for r in _load_json(p).get("rows", [])]
    return _frame(rows, SCORE_COLUMNS, "score")


def targets_table(target_dirs: Iterable) -> pd.DataFrame:
    """Dataset meta-features per (target, shots): training images of that setting and classes,
    from each prepared target's splits.json and classes.json."""
    rows = []
    for d in map(Path, target_dirs):
        splits, classes = _load_json(d / "splits.json"), _load_json(d / "classes.json")
        rows += [{"target": d.name, "shots": shots, "images": len(index), "classes": len(classes)}
                 for shots, index in splits["train"].items()]
    return _frame(rows, TARGET_COLUMNS, "target")


def write_tables(zoo_records, finetune_records, score_records, out_dir, multidomain_records=(),
                 target_dirs=()) -> dict[str, Path]:
    """Write zoo_accuracy.csv, finetune.csv, scores.csv, targets.csv (and multidomain_accuracy.csv
    when the benchmark has a multi-domain expert) under ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = {"zoo": zoo_table(zoo_records), "finetune": finetune_table(finetune_records),
              "scores": scores_table(score_records), "targets": targets_table(target_dirs)}
    if multidomain_records:
        frames["multidomain"] = multidomain_table(multidomain_records)
    paths = {}
    for name, df in frames.items():
        paths[name] = out_dir / TABLE_FILES[name]
        df.to_csv(paths[name], index=False)
    return paths


def load_table(path) -> pd.DataFrame:
    """Read a result CSV, keeping shots (and methods) as strings."""
    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"table not found: {path} (run step=tables first)")
    return pd.read_csv(path, dtype={"shots": str, "method": str, "expert": str, "target": str})


def best_finetune(finetune_df: pd.DataFrame) -> pd.DataFrame:
    """Per (expert, target, shots): best test accuracy over the lr grid, and the grid's total seconds.

    The paper reports the best accuracy over eta in {0.01, 0.005, 0.001}, so one
    "fine-tune" costs the whole grid.
    """
    return (finetune_df.groupby(KEYS, as_index=False, sort=False)
            .agg(test_accuracy=("test_accuracy", "max"), seconds=("seconds", "sum")))
