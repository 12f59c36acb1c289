"""A benchmark definition (configs/benchmark/*.yaml): what the DAG covers, validated before any job runs.

`load_benchmark` checks a config against configs/schema/benchmark.schema.yaml, fills the schema's
defaults, then checks what a schema cannot (names that must resolve to files, points that must lie
on the grid). Every error is a `BenchmarkError` whose message names the key path and the value.
"""
from __future__ import annotations

import copy
import inspect
from pathlib import Path

import yaml

from pipeline.errors import UserError
from pipeline.stages import CONFIGS, compose, find_config

SCHEMA = CONFIGS / "schema" / "benchmark.schema.yaml"
DEFAULT = CONFIGS / "benchmark" / "mini.yaml"


class BenchmarkError(UserError):
    """A benchmark config that cannot run: the message names the key path and the offending value."""


def _key_path(parts) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(parts)) \
        or "(top level)"


def _fill_defaults(schema: dict, value):
    """The schema's `default`s for absent keys, recursively (objects only; null blocks stay null)."""
    if not isinstance(value, dict):
        return value
    for key, sub in schema.get("properties", {}).items():
        if key not in value and "default" in sub:
            value[key] = copy.deepcopy(sub["default"])
        if key in value:
            value[key] = _fill_defaults(sub, value[key])
    return value


def validate_schema(config: dict) -> dict:
    """The config with defaults filled; raises BenchmarkError at the first schema violation, naming
    its key path and value (e.g. `selection.methods: [] should be non-empty`)."""
    import jsonschema

    schema = yaml.safe_load(SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        where = _key_path(list(err.absolute_path))
        raise BenchmarkError(f"{where}: {err.message} ({SCHEMA.relative_to(CONFIGS.parent)})")
    return _fill_defaults(schema, copy.deepcopy(config))


def dataset_config(name: str, key: str, config_dirs=()) -> dict:
    """dataset/<name>.yaml of the benchmark's config_dirs or configs/, as a dict; BenchmarkError naming
    `key` when there is none."""
    path = find_config(f"dataset/{name}.yaml", config_dirs)
    if path is None:
        known = ", ".join(sorted(p.stem for p in (CONFIGS / "dataset").glob("*.yaml")))
        raise BenchmarkError(f"{key}: unknown dataset {name!r}: there is no configs/dataset/{name}.yaml "
                             f"(nor in config_dirs {list(config_dirs)}); known: {known}")
    return yaml.safe_load(path.read_text())


def selection_methods(selection: dict) -> list[str]:
    """Every score name the benchmark computes: its methods and the scores behind its variants."""
    return list(selection["methods"]) + [v["score"] for v in (selection.get("variants") or {}).values()]


def probe_networks_used(selection: dict, probe_networks: list[str]) -> list[str]:
    """The probe networks (of the benchmark's `probe_networks`, in its order) whose features some method
    reads (a score with `probe_features`: RSA, DDS): a variant's `probe_network`, else the first."""
    from selection.scores import SCORES

    def reads(score):
        return score in SCORES and "probe_features" in inspect.signature(SCORES[score]).parameters

    used = {probe_networks[0] for m in selection["methods"] if reads(m)}
    used |= {v.get("probe_network") or probe_networks[0] for v in (selection.get("variants") or {}).values()
             if reads(v["score"])}
    return [n for n in probe_networks if n in used]


def check(config: dict) -> dict:
    """Cross checks a schema cannot express; returns {dataset name: its config}. Raises BenchmarkError."""
    sources, targets, archs = config["sources"], config["targets"], config["architectures"]
    _check_zoo(config)
    if sources or not config["zoo"]:  # else a zoo benchmark: nothing is trained here
        if len(sources) < 2 or not archs or config["generalist"] is None or config["reference_arch"] is None:
            raise BenchmarkError("sources, architectures, generalist, reference_arch: a benchmark trains its experts on "
                                 "at least 2 sources with at least one architecture (naming the generalist and the "
                                 "reference architecture), or scores a `zoo` of experts trained elsewhere")
        if config["generalist"] not in sources:
            raise BenchmarkError(f"generalist: {config['generalist']!r} is not among the sources {sources}")
        if config["reference_arch"] not in archs:
            raise BenchmarkError(f"reference_arch: {config['reference_arch']!r} is not among the architectures "
                                 f"{list(archs)}")
    dirs = config["config_dirs"]
    for d in dirs:
        if not Path(d).is_dir():
            raise BenchmarkError(f"config_dirs: {d!r} is not a folder")
    for short, name in archs.items():
        if find_config(f"arch/{name}.yaml", dirs) is None:
            raise BenchmarkError(f"architectures.{short}: there is no configs/arch/{name}.yaml")
    full_targets = config.get("full_targets") or targets
    if set(full_targets) - set(targets):
        raise BenchmarkError(f"full_targets: {sorted(set(full_targets) - set(targets))} are not among the targets")
    md = config.get("multidomain")
    if md:
        if md["arch"] not in archs:
            raise BenchmarkError(f"multidomain.arch: {md['arch']!r} is not among the architectures {list(archs)}")
        if md["finetune_variant"] not in md["variants"]:
            raise BenchmarkError(f"multidomain.finetune_variant: {md['finetune_variant']!r} is not among "
                                 f"multidomain.variants {md['variants']}")
    for name, pool in (config.get("pools") or {}).items():
        if pool is not None and set(pool) - set(archs):
            raise BenchmarkError(f"pools.{name}: {sorted(set(pool) - set(archs))} are not among the architectures")
    datasets = {n: dataset_config(n, "sources" if n in sources else "targets", dirs) for n in sources + targets}
    for name in targets:
        per_class = datasets[name].get("train_per_class")
        too_many = [s for s in config["shots"] if s != "full" and per_class is not None and int(s) > per_class]
        if too_many:
            raise BenchmarkError(f"shots: {too_many[0]} exceeds the {per_class} training images per class of target "
                                 f"{name!r} (configs/dataset/{name}.yaml); lower the shot count")
    _check_methods(config["selection"])
    _check_presets(config)
    _check_probe_networks(config)
    return datasets


def _check_zoo(config: dict) -> None:
    """A `zoo` file's experts (trained elsewhere) join a benchmark in one of two ways, checked here before
    any job runs (the zoo file parses: entries, names, files; no model loads: zoo_training.zoo.read_zoo):

    - beside the experts trained here (`sources`): fine-tuned and scored like them, evaluated together;
      their names must not read as a trained expert's id ({arch}-{source}[-init|-md]); no `ground_truth`;
    - alone (no `sources`, a zoo benchmark; the field's standard benchmark): against a `ground_truth` CSV
      with an accuracy for every expert on every target and shot setting, or `finetune`
      (FINETUNE_GROUND_TRUTH: the zoo is fine-tuned here with the preset's grid)."""
    zoo, truth, published = config["zoo"], config["ground_truth"], config["published_scores"]
    if config["sources"] and config["probe_sets"]["per_class"] is None:
        raise BenchmarkError("probe_sets.per_class: null (every training image) is for a zoo benchmark; experts "
                             "trained here also score their source's probe set, which would be every source image")
    if not zoo:
        for key, value in (("ground_truth", truth), ("published_scores", published)):
            if value:
                raise BenchmarkError(f"{key}: {value!r} is read only with a `zoo` (a benchmark of experts trained "
                                     "elsewhere); experts trained here get their ground truth by fine-tuning")
        return
    from zoo_training.zoo import ZooError, read_zoo

    try:
        names = [e.name for e in read_zoo(zoo)]
    except ZooError as err:
        raise BenchmarkError(f"zoo: {err}") from None
    if config["sources"]:
        from pipeline.layout import Expert

        for key, value in (("ground_truth", truth), ("published_scores", published)):
            if value:
                raise BenchmarkError(f"{key}: with `sources` every expert, the zoo's too, gets its ground truth by "
                                     f"fine-tuning here; drop {key} (or the sources, for a zoo benchmark)")
        for name in names:
            try:
                Expert.parse(name)
            except ValueError:
                continue
            raise BenchmarkError(f"zoo: expert name {name!r} reads as the id of an expert trained here "
                                 "({arch}-{source}[-init|-md]); rename it in the zoo file (e.g. with '_' or '.')")
        return
    if config["multidomain"] or config["theta_f"]:
        raise BenchmarkError("zoo: a zoo benchmark (no sources) has no multi-domain expert and no Theta_F grid point; "
                             "drop `multidomain` and `theta_f`")
    if not truth:
        raise BenchmarkError("ground_truth: a zoo benchmark needs the fine-tuning accuracies of its experts: a CSV "
                             "with columns model, target, accuracy, source (e.g. report/published/standard_finetune.csv), "
                             f"or {FINETUNE_GROUND_TRUTH!r} to fine-tune the zoo here")
    if truth != FINETUNE_GROUND_TRUTH:
        read_ground_truth(truth, names, config["targets"], config["shots"])
    if published:
        read_published_scores(published)


GROUND_TRUTH_COLUMNS = ("model", "target", "accuracy", "source")
FINETUNE_GROUND_TRUTH = "finetune"  # a zoo benchmark's `ground_truth` that fine-tunes the zoo here
PUBLISHED_COLUMNS = ("method", "target", "weighted_tau", "source")


def _read_csv(path: str, key: str, columns: tuple[str, ...]):
    import pandas as pd

    if not Path(path).is_file():
        raise BenchmarkError(f"{key}: {path!r} is not a file")
    table = pd.read_csv(path)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise BenchmarkError(f"{key}: {path} has no column(s) {missing} (it needs {list(columns)})")
    return table


def read_ground_truth(path: str, experts: list[str], targets: list[str], shots=("full",), points=None):
    """The ground-truth CSV (GROUND_TRUTH_COLUMNS, optionally `shots`, default "full"; `model` names a zoo
    expert, `accuracy` in %, higher = better, `source` where the number comes from) restricted to
    `experts` x `targets` x `shots`, as a DataFrame with a `shots` column. Every (expert, target, shots)
    of that product, or of `points` when given, needs an accuracy. Raises BenchmarkError naming a
    missing column, a repeated row, a non-numeric accuracy, or the first point without an accuracy."""
    import pandas as pd

    table = _read_csv(path, "ground_truth", GROUND_TRUTH_COLUMNS)
    table["shots"] = table["shots"].astype(str) if "shots" in table else "full"
    table["accuracy"] = pd.to_numeric(table["accuracy"], errors="coerce")
    table = table[table["model"].isin(experts) & table["target"].isin(targets) & table["shots"].isin(shots)]
    if table["accuracy"].isna().any():
        row = table[table["accuracy"].isna()].iloc[0]
        raise BenchmarkError(f"ground_truth: {path}: the accuracy of {row['model']} on {row['target']} is not a number")
    keys = ["model", "target", "shots"]
    if table.duplicated(keys).any():
        row = table[table.duplicated(keys)].iloc[0]
        raise BenchmarkError(f"ground_truth: {path} lists {row['model']} on {row['target']} ({row['shots']}) twice")
    have = set(zip(*(table[k] for k in keys)))
    wanted = points if points is not None else [(e, t, s) for s in shots for t in targets for e in experts]
    missing = [p for p in wanted if tuple(p) not in have]
    if missing:
        e, t, s = missing[0]
        raise BenchmarkError(f"ground_truth: {path} has no accuracy for {len(missing)} (expert, target, shots) point(s) "
                             f"of this benchmark, e.g. {e} on {t} ({s}; a CSV without a `shots` column is the full "
                             "setting)")
    return table.reset_index(drop=True)


def read_published_scores(path: str):
    """The published correlations CSV (PUBLISHED_COLUMNS), as a DataFrame. Raises BenchmarkError."""
    return _read_csv(path, "published_scores", PUBLISHED_COLUMNS)


def _check_methods(selection: dict) -> None:
    from selection.scores import SCORES, load_plugins

    try:
        load_plugins(selection.get("plugins") or [])
    except Exception as err:  # a user's file: report what broke, no traceback
        raise BenchmarkError(f"selection.plugins: {type(err).__name__}: {err}") from None
    unknown = [m for m in selection_methods(selection) if m not in SCORES]
    if unknown:
        raise BenchmarkError(f"selection.methods: unknown method(s) {unknown}; known: {', '.join(sorted(SCORES))}")


def _check_probe_networks(config: dict) -> None:
    """Every variant's `probe_network` is one of the benchmark's `probe_networks`, and each of those has a
    definition in the selection config (configs/probe_network/<name>.yaml, composed by configs/selection.yaml
    or the benchmark's preset)."""
    networks = config["probe_networks"]
    for name, spec in (config["selection"].get("variants") or {}).items():
        if spec.get("probe_network") is not None and spec["probe_network"] not in networks:
            raise BenchmarkError(f"selection.variants.{name}.probe_network: {spec['probe_network']!r} is not among "
                                 f"probe_networks {networks}")
    try:
        defined = set(compose("selection", config["preset"], config_dirs=config["config_dirs"]).probe_networks)
    except ValueError as err:
        raise BenchmarkError(f"preset: {err}") from None
    missing = [n for n in networks if n not in defined]
    if missing:
        raise BenchmarkError(f"probe_networks: {missing} have no definition in the selection config (defined: "
                             f"{sorted(defined)}): add configs/probe_network/<name>.yaml and `- /probe_network@"
                             f"probe_networks.<name>: <name>` to the defaults of configs/preset/{config['preset']}/"
                             "selection.yaml")


def _check_presets(config: dict) -> None:
    """The benchmark's fine-tuning preset composes (configs/preset/<preset>/finetune.yaml), and Fig. 8's
    point lies on its lr grid. The other stages' presets compose when their jobs start."""
    preset = config["preset"]
    try:
        lrs = [float(lr) for lr in compose("finetune", preset, config_dirs=config["config_dirs"]).lrs]
    except ValueError as err:
        raise BenchmarkError(f"preset: {err}") from None
    theta_f = config.get("theta_f")
    if theta_f:
        point = (theta_f["target"], str(theta_f["shots"]), float(theta_f["lr"]))
        grid_targets = (config.get("full_targets") or config["targets"]) if point[1] == "full" else config["targets"]
        if point[0] not in grid_targets or point[1] not in config["shots"] or point[2] not in lrs:
            raise BenchmarkError(f"theta_f: {theta_f} is not a point of the fine-tuning grid (targets / full_targets, "
                                 f"shots, and the lrs {lrs} of configs/preset/{preset}/finetune.yaml)")


def load_benchmark(config: dict | None) -> dict:
    """The validated benchmark with defaults filled in: `config` as given (the whole config), or the
    embedded mini benchmark when none is given. Raises BenchmarkError."""
    if not config or "benchmark" not in config:
        # only command-line --config keys, no benchmark file: they apply on top of the default benchmark
        config = {**yaml.safe_load(DEFAULT.read_text()), **(config or {})}
    config = validate_schema(config)
    config["preset"] = config["preset"] or config["benchmark"]  # the schema's default is null
    config["shots"] = [str(s) for s in config["shots"]]
    config["datasets"] = check(config)
    return config
