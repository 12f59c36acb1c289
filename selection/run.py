"""Score every method on an expert's caches (numpy only: no torch import here)."""
from __future__ import annotations

import inspect
import json
import logging
import time
import zlib
from pathlib import Path

import numpy as np

from pipeline.errors import UserError
from pipeline.layout import probe_cache, setting_dir, source_cache
from selection.scores import SCORES, compute_score, load_plugins
from selection.scores.registry import pca_reduce


log = logging.getLogger("selection")


class SelectionError(UserError):
    """A selection request that cannot run: an unknown method or option, a missing cache or expert."""


def score_seed(seed: int, expert: str, target: str, shots: str) -> int:
    """A stable per-(expert, target, shots) seed for seeded methods such as Random."""
    return zlib.crc32(f"{seed}/{expert}/{target}/{shots}".encode())


def method_table(methods, variants) -> dict[str, tuple[str, dict]]:
    """Method name -> (registered score, options); fails naming any unknown score or option."""
    table = {m: (m, {}) for m in methods}
    for name, spec in (variants or {}).items():
        table[name] = (spec["score"], dict(spec.get("options") or {}))
    unknown = sorted({score for score, _ in table.values() if score not in SCORES})
    if unknown:
        raise SelectionError(f"unknown selection method(s) {unknown}; known: {', '.join(sorted(SCORES))}")
    for name, (score, options) in table.items():
        params = inspect.signature(SCORES[score]).parameters
        bad = [o for o in options if o not in params and not (o == "pca_dim" and "features" in params)]
        if bad:
            raise SelectionError(f"method {name!r}: score {score!r} has no option(s) {bad}")
    return table


def inputs_of(score: str) -> set[str]:
    return set(inspect.signature(SCORES[score]).parameters)


def run_method(score: str, options: dict, inputs: dict) -> float:
    """PCA is an option of every feature score: applied here unless the score does its own."""
    options = dict(options)
    if "pca_dim" in options and "pca_dim" not in inputs_of(score):
        inputs = {**inputs, "features": pca_reduce(np.asarray(inputs["features"], dtype=np.float64), options.pop("pca_dim"))}
    return compute_score(score, **inputs, **options)


def _load(path: Path, what: str) -> dict:
    if not path.exists():
        raise SelectionError(f"{what} {path} is missing: run the selection stage's earlier step first")
    with np.load(path) as cache:
        return {k: cache[k] for k in cache.files}


def score_expert(cfg) -> list[dict]:
    """Every method on every cache of one expert into `cfg.out` ({"rows": [...], "failures": [...]}); returns
    the rows. A method that raises on one (target, shots, probe set) is recorded there as failed, with
    its message, and the others go on: one broken score costs neither the caches nor the other scores."""
    load_plugins(cfg.plugins)
    table = method_table(cfg.methods, cfg.variants)
    cache_dir, rows, failures = Path(cfg.cache_dir), [], []
    needs = set().union(*(inputs_of(score) for score, _ in table.values()))
    source = _load(source_cache(cache_dir), "source feature cache") if "source_features" in needs else {}
    for target in cfg.targets:
        for shots in map(str, cfg.shots):
            for path in sorted(setting_dir(cache_dir, target, shots).glob("*.npz")):
                probe = path.stem
                cache = _load(path, "feature cache")
                inputs = {k: cache[k] for k in ("features", "probs", "labels", "gradients") if k in cache}
                inputs["seed"] = score_seed(cfg.seed, cfg.expert, target, shots)
                if source:
                    inputs["source_features"], inputs["source_labels"] = source["features"], source["labels"]
                if "probe_features" in needs:
                    inputs.update(_load(probe_cache(cfg.probe_dir, target, shots, probe), "probe-model features"))
                for method, (score, options) in table.items():
                    if not _has_required(score, inputs):
                        continue  # e.g. LGC's gradients exist only for the paper's probe set
                    began = time.perf_counter()
                    try:
                        value = run_method(score, options, inputs)
                    except Exception as err:  # noqa: BLE001  (recorded per method; the job and the caches live on)
                        log.exception("%s failed on %s / %s / %s / %s", method, cfg.expert, target, shots, probe)
                        failures.append({"expert": cfg.expert, "target": target, "shots": shots, "probe": probe,
                                         "method": method, "error": f"{type(err).__name__}: {err}"})
                        continue
                    rows.append({
                        "expert": cfg.expert, "target": target, "shots": shots, "probe": probe, "method": method,
                        "score": value, "seconds": time.perf_counter() - began,
                        "feature_seconds": _forward_seconds(cache, source, inputs_of(score)),
                    })
    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    Path(cfg.out).write_text(json.dumps({"rows": rows, "failures": failures}, indent=1))
    if failures:
        log.warning("%s: %d method(s) failed, recorded in %s: %s", cfg.expert, len(failures), cfg.out,
                    sorted({f["method"] for f in failures}))
    return rows


def _has_required(score: str, inputs: dict) -> bool:
    params = inspect.signature(SCORES[score]).parameters
    return all(p in inputs for p, spec in params.items() if spec.default is spec.empty)


def _forward_seconds(cache: dict, source: dict, used: set[str]) -> float:
    """The shared forward-pass time a method depends on (Random depends on none)."""
    seconds = float(cache["seconds"]) if used & {"features", "probs"} else 0.0
    if "gradients" in used:
        seconds += float(cache["gradient_seconds"])
    if "source_features" in used:
        seconds += float(source["seconds"])
    return seconds
