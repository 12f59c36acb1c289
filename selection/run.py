"""Score every method on an expert's caches (numpy only: no torch import here)."""
from __future__ import annotations

import inspect
import json
import logging
import time
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from pipeline.errors import UserError
from pipeline.layout import is_parc_draw, probe_cache, probe_network_dir, setting_dir, source_cache
from selection.scores import SCORES, compute_score, load_plugins
from selection.scores.ped import check_ped_option, ped_option
from selection.scores.registry import pca_reduce


log = logging.getLogger("selection")


# why a score cannot be computed for an expert: the input it lacks -> the reason recorded (not a failure:
# the expert does not have what the score reads)
MISSING_INPUT = {
    "probs": "the expert has no classification head of its own (no source-class probabilities)",
    "gradients": "LGC reads the gradients of a convolutional layer; the expert has none",
    "source_features": "needs the expert's source images: only an expert trained by this pipeline, with its "
                       "source dataset prepared in the same run (an expert from a zoo file has none)",
    "source_labels": "needs the expert's source images (see source_features)",
    "probe_features": "needs RSA/DDS's probe network trained on this target (the benchmark's probe_model stage), "
                      "which this run does not train",
}


class SelectionError(UserError):
    """A selection request that cannot run: an unknown method or option, a missing cache or expert."""


def score_seed(seed: int, expert: str, target: str, shots: str) -> int:
    """A stable per-(expert, target, shots) seed for seeded methods such as Random."""
    return zlib.crc32(f"{seed}/{expert}/{target}/{shots}".encode())


class Method(NamedTuple):
    """A method of the run: its registered score, options and, for a score that reads probe-network
    features, the probe network (None: the benchmark's first, `probe_network_names[0]`); `probe_sets`:
    the only probe sets it runs on (names, or "parc_draws" for every PARC draw; None: all)."""

    score: str
    options: dict
    probe_network: str | None = None
    probe_sets: tuple[str, ...] | None = None

    def runs_on(self, probe: str) -> bool:
        """Whether the method runs on probe set `probe` (e.g. PARC's reference H-score, a pinv of the
        d x d covariance, only on the draws PARC's tables read)."""
        return self.probe_sets is None or probe in self.probe_sets or \
            ("parc_draws" in self.probe_sets and is_parc_draw(probe))


def method_table(methods, variants, probe_networks=None) -> dict[str, Method]:
    """Method name -> Method; fails naming any unknown score or option, or a variant's `probe_network`
    that is not among `probe_networks` (when given) or whose score reads no probe-network features."""
    table = {m: Method(m, {}) for m in methods}
    for name, spec in (variants or {}).items():
        sets = spec.get("probe_sets")
        table[name] = Method(spec["score"], dict(spec.get("options") or {}), spec.get("probe_network"),
                             tuple(sets) if sets is not None else None)
    unknown = sorted({m.score for m in table.values() if m.score not in SCORES})
    if unknown:
        raise SelectionError(f"unknown selection method(s) {unknown}; known: {', '.join(sorted(SCORES))}")
    for name, (score, options, network, _) in table.items():
        params = inspect.signature(SCORES[score]).parameters
        bad = [o for o in options if o not in params and not (o in ("pca_dim", "ped") and "features" in params)]
        if bad:
            raise SelectionError(f"method {name!r}: score {score!r} has no option(s) {bad}")
        if "ped" in options and "ped" not in params:
            try:
                check_ped_option(options["ped"])
            except ValueError as err:
                raise SelectionError(f"method {name!r}: {err}") from None
        if network is not None and "probe_features" not in params:
            raise SelectionError(f"method {name!r}: probe_network {network!r} is for scores that read probe-network "
                                 f"features (rsa, dds), not {score!r}")
        if network is not None and probe_networks is not None and network not in probe_networks:
            raise SelectionError(f"method {name!r}: probe_network {network!r} is not among the probe networks "
                                 f"{list(probe_networks)}")
    return table


def probe_network_of(method: Method, probe_networks) -> str | None:
    """The probe network whose features `method` reads (its own, else the first); None if it reads none."""
    if "probe_features" not in inputs_of(method.score):
        return None
    return method.probe_network or probe_networks[0]


def inputs_of(score: str) -> set[str]:
    return set(inspect.signature(SCORES[score]).parameters)


def run_method(score: str, options: dict, inputs: dict) -> float:
    """PED (`ped`, selection.scores.ped) and PCA (`pca_dim`) are options of every feature score: applied here to
    its features, PED first (the remapping reads the model's own features), unless the score does its own."""
    options = dict(options)
    if "ped" in options and "ped" not in inputs_of(score):
        inputs = {**inputs, "features": ped_option(inputs["features"], inputs.get("labels"), options.pop("ped"))}
    if "pca_dim" in options and "pca_dim" not in inputs_of(score):
        inputs = {**inputs, "features": pca_reduce(np.asarray(inputs["features"], dtype=np.float64), options.pop("pca_dim"))}
    return compute_score(score, **inputs, **options)


def _load(path: Path, what: str) -> dict:
    if not path.exists():
        raise SelectionError(f"{what} {path} is missing: run the selection stage's earlier step first")
    with np.load(path) as cache:
        return {k: cache[k] for k in cache.files}


def score_expert(cfg) -> list[dict]:
    """Every method on every cache of one expert into `cfg.out` ({"rows": [...], "failures": [...],
    "not_computable": [...]}); returns the rows. A method that raises on one (target, shots, probe set) is
    recorded there as failed, with its message, and the others go on: one broken score costs neither the
    caches nor the other scores. A score that comes out NaN or infinite keeps its row and is recorded as
    failed too (the protocols leave it out: it is never dropped without a word)."""
    load_plugins(cfg.plugins)
    networks = list(cfg.probe_network_names)
    table = method_table(cfg.methods, cfg.variants, networks)
    reads = {name: probe_network_of(m, networks) for name, m in table.items()}
    cache_dir, rows, failures, lacking = Path(cfg.cache_dir), [], [], {}
    needs = set().union(*(inputs_of(m.score) for m in table.values()))
    # an expert without source data here (a zoo expert): no source cache; Domain Similarity is not computable
    source = _load(source_cache(cache_dir), "source feature cache") \
        if "source_features" in needs and (cfg.source_dir or source_cache(cache_dir).exists()) else {}
    for target in cfg.targets:
        for shots in map(str, cfg.shots):
            for path in sorted(setting_dir(cache_dir, target, shots).glob("*.npz")):
                probe = path.stem
                cache = _load(path, "feature cache")
                inputs = {k: cache[k] for k in ("features", "probs", "labels", "gradients") if k in cache}
                if cfg.standardize_features:
                    inputs["features"] = standardize(inputs["features"])
                inputs["seed"] = score_seed(cfg.seed, cfg.expert, target, shots)
                if source:
                    inputs["source_features"], inputs["source_labels"] = source["features"], source["labels"]
                running = {name: m for name, m in table.items() if m.runs_on(probe)}
                probe_features = {  # the features of each probe network that a method running here reads
                    network: _load(probe_cache(probe_network_dir(cfg.probe_dir, network), target, shots, probe),
                                   f"probe network {network}'s features")["probe_features"]
                    for network in sorted({reads[name] for name in running} - {None})}
                for method, (score, options, _, _) in running.items():
                    method_inputs = inputs if reads[method] is None else \
                        {**inputs, "probe_features": probe_features[reads[method]]}
                    missing = _missing_inputs(score, method_inputs)
                    if missing:
                        if probe == cfg.probe_set:  # elsewhere by design: LGC's gradients exist only here
                            lacking.setdefault(method, missing[0])
                        continue
                    began = time.perf_counter()
                    try:
                        value = run_method(score, options, method_inputs)
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
                    if not np.isfinite(value):  # kept in the scores table, left out of every comparison: said
                        failures.append({"expert": cfg.expert, "target": target, "shots": shots, "probe": probe,
                                         "method": method, "error": f"NonFiniteScore: the score is {value!r}; the "
                                         "expert is left out of this method's comparisons here"})
    scored = {r["method"] for r in rows}
    not_computable = [{"expert": cfg.expert, "method": m, "reason": MISSING_INPUT.get(i, f"no {i}")}
                      for m, i in lacking.items() if m not in scored]
    for entry in not_computable:
        log.info("%s: %s is not computable: %s", cfg.expert, entry["method"], entry["reason"])
    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    Path(cfg.out).write_text(json.dumps({"rows": rows, "failures": failures, "not_computable": not_computable},
                                        indent=1))
    if failures:
        log.warning("%s: %d method(s) failed, recorded in %s: %s", cfg.expert, len(failures), cfg.out,
                    sorted({f["method"] for f in failures}))
    return rows


def _missing_inputs(score: str, inputs: dict) -> list[str]:
    params = inspect.signature(SCORES[score]).parameters
    return [p for p, spec in params.items() if spec.default is spec.empty and p not in inputs]


def standardize(features: np.ndarray) -> np.ndarray:
    """Each feature dimension to zero mean and unit variance over the probe set (a constant one to 0):
    Guided Recommendation's normalisation (Li et al. 2023, Fig. 1), sklearn's StandardScaler."""
    from sklearn.preprocessing import StandardScaler

    return StandardScaler().fit_transform(np.asarray(features, dtype=np.float64))


def _forward_seconds(cache: dict, source: dict, used: set[str]) -> float:
    """The shared forward-pass time a method depends on (Random depends on none)."""
    seconds = float(cache["seconds"]) if used & {"features", "probs"} else 0.0
    if "gradients" in used:
        seconds += float(cache["gradient_seconds"])
    if "source_features" in used:
        seconds += float(source["seconds"])
    return seconds
