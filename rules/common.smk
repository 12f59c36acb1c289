# Identity of every job, built from the validated config; checks that fail before any job runs.
import os
import sys
from pathlib import Path

import yaml

envvars:
    "PATH",


# jobs run `python -m <stage>` with the interpreter that runs Snakemake (the project's venv)
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
RESULTS = Path(config["results"])
SHOTS = [str(s) for s in config["shots"]]
TARGETS = config["targets"]
SOURCES = config["sources"]
GENERALIST = config["generalist"]
ARCHS = config["architectures"]
SEED = config["seed"]
THREADS = config["threads"]
SELECTION = config["selection"]
OVERRIDES = config["overrides"]
FULL_TARGETS = config.get("full_targets", TARGETS)
MULTIDOMAIN = config.get("multidomain")
THETA_F = config.get("theta_f")
POOLS = config.get("pools", {"all": None})



def fail(message):
    # a user mistake: one clear line, no traceback, before any job runs
    sys.stderr.write(f"benchmark config error: {message}\n")
    sys.exit(1)


def load_dataset_config(name):
    path = Path(workflow.basedir) / "configs" / "dataset" / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        fail(f"unknown dataset {name!r}: there is no {path.relative_to(workflow.basedir)}; known: {', '.join(known)}")
    return yaml.safe_load(path.read_text())


def check_config():
    if GENERALIST not in SOURCES:
        fail(f"generalist {GENERALIST!r} is not among the sources {SOURCES}")
    if config["reference_arch"] not in ARCHS:
        fail(f"reference_arch {config['reference_arch']!r} is not among the architectures {list(ARCHS)}")
    for short, hydra_name in ARCHS.items():
        if not (Path(workflow.basedir) / "configs" / "arch" / f"{hydra_name}.yaml").exists():
            fail(f"architecture {short!r}: there is no configs/arch/{hydra_name}.yaml")
    if "full" in SHOTS and set(FULL_TARGETS) - set(TARGETS):
        fail(f"full_targets {sorted(set(FULL_TARGETS) - set(TARGETS))} are not among the targets")
    if MULTIDOMAIN:
        if MULTIDOMAIN["arch"] not in ARCHS:
            fail(f"multidomain.arch {MULTIDOMAIN['arch']!r} is not among the architectures {list(ARCHS)}")
        if MULTIDOMAIN["finetune_variant"] not in MULTIDOMAIN["variants"]:
            fail(f"multidomain.finetune_variant {MULTIDOMAIN['finetune_variant']!r} is not among its variants "
                 f"{MULTIDOMAIN['variants']}")
    for name, archs in POOLS.items():
        if archs is not None and set(archs) - set(ARCHS):
            fail(f"pool {name!r} names architectures {sorted(set(archs) - set(ARCHS))} that are not in architectures")
    if THETA_F:
        point = (THETA_F["target"], str(THETA_F["shots"]), float(THETA_F["lr"]))
        in_grid = point[0] in (FULL_TARGETS if point[1] == "full" else TARGETS) and point[1] in SHOTS
        if not in_grid or point[2] not in [float(lr) for lr in config["finetune_lrs"]]:
            fail(f"theta_f {THETA_F} is not a point of the fine-tuning grid (targets / full_targets, shots, finetune_lrs)")
    datasets = {name: load_dataset_config(name) for name in SOURCES + TARGETS}
    for name in TARGETS:
        per_class = datasets[name].get("train_per_class")
        for s in SHOTS:
            if s != "full" and per_class is not None and int(s) > per_class:
                fail(f"shots={s} exceeds the {per_class} training images per class of target {name!r} "
                     f"(configs/dataset/{name}.yaml); lower the shot count")
    from selection.scores import SCORES, load_plugins

    try:
        load_plugins(SELECTION.get("plugins", []))
    except Exception as err:  # a user's file: report what broke, no traceback
        fail(f"selection.plugins: {type(err).__name__}: {err}")
    unknown = [m for m in SELECTION["methods"] if m not in SCORES]
    unknown += [v["score"] for v in SELECTION["variants"].values() if v["score"] not in SCORES]
    if unknown:
        fail(f"unknown selection method(s) {unknown}; known: {', '.join(sorted(SCORES))}")
    return datasets


DATASETS = check_config()


def expert_ids():
    """{arch}-{source} from scratch; {arch}-{source}-init from the generalist's weights."""
    ids = []
    for arch in ARCHS:
        for source in SOURCES:
            ids.append(f"{arch}-{source}")
            if source != GENERALIST:
                ids.append(f"{arch}-{source}-init")
    return ids


NEVER = "(?!x)x"  # a wildcard pattern that matches nothing (an empty choice)
SINGLE_DOMAIN_EXPERTS = expert_ids()
# the domains of the multi-domain expert, each a fine-tunable expert: {arch}-{source}-md
DOMAIN_EXPERTS = [f"{MULTIDOMAIN['arch']}-{s}-md" for s in SOURCES] if MULTIDOMAIN else []
EXPERTS = SINGLE_DOMAIN_EXPERTS + DOMAIN_EXPERTS
VARIANTS = MULTIDOMAIN["variants"] if MULTIDOMAIN else []
REFERENCE_EXPERT = f"{config['reference_arch']}-{GENERALIST}"


wildcard_constraints:
    expert="|".join(EXPERTS),
    variant="|".join(VARIANTS) or NEVER,
    dataset="|".join(SOURCES + TARGETS),
    target="|".join(TARGETS),


def expert_parts(expert):
    """(arch, source, init): init is True for the generalist-initialised (check-mark) experts."""
    arch, source, *kind = expert.split("-")
    return arch, source, kind == ["init"]


def is_domain_expert(expert):
    return expert.endswith("-md")


def launcher(wildcards, resources):
    """`python -m` on one process; torchrun with one process per GPU when the job was given
    several (`gpu` comes from the profile: profiles/slurm sets it per rule)."""
    n = int(resources.get("gpu", 0))
    return f"torchrun --standalone --nproc_per_node={n} -m" if n > 1 else "python -m"


def hydra_list(values):
    return "[" + ",".join(str(v) for v in values) + "]"


def hydra_dict(mapping):
    """A nested dict as a Hydra override value, e.g. {parc_pca32:{score:parc,options:{pca_dim:32}}}."""
    if isinstance(mapping, dict):
        return "{" + ",".join(f"{k}:{hydra_dict(v)}" for k, v in mapping.items()) + "}"
    return str(mapping)


def probe_names(shots):
    """Probe sets per shot setting (data_prep.prepare.probe_indices): the default everywhere; the
    probe-size ablation and PARC's draws on the full setting."""
    names = ["default"]
    if shots == "full":
        ablation = SELECTION["probe_ablation_per_class"]
        names += [f"per_class_{k}" for k in ablation] + (["all"] if ablation else [])
        names += [f"parc_draw{i}" for i in range(SELECTION["parc_draws"])]
    return names


def probe_files(root, target):
    return [Path(root) / target / s / f"{p}.npz" for s in SHOTS for p in probe_names(s)]


def expert_caches(expert):
    root = RESULTS / "features" / expert
    return [f for t in TARGETS for f in probe_files(root, t)] + [root / "source.npz"]


def probe_model_caches(target):
    return probe_files(RESULTS / "probe_models", target)


def uses_probe_model():
    from selection.scores import SCORES
    import inspect

    scores = list(SELECTION["methods"]) + [v["score"] for v in SELECTION["variants"].values()]
    return any("probe_features" in inspect.signature(SCORES[s]).parameters for s in scores)


USES_PROBE_MODEL = uses_probe_model()  # decided once, not per job

def selection_inputs(wc):
    inputs = {
        "weights": expert_weights(wc.expert),
        "targets": [data_dir(t) / "splits.json" for t in TARGETS],
        "source": data_dir(expert_parts(wc.expert)[1]) / "splits.json",
    }
    if USES_PROBE_MODEL:
        inputs["probe_features"] = [f for t in TARGETS for f in probe_model_caches(t)]
    return inputs


def overrides(stage):
    return " ".join(f"'{o}'" for o in OVERRIDES.get(stage, []))


def data_dir(dataset):
    return RESULTS / "data" / dataset


def expert_weights(expert):
    return RESULTS / "experts" / expert / "model.pt"


def run_dir(stage, *parts):
    return RESULTS / "runs" / stage / Path(*parts)


def zoo_inputs(wc):
    arch, source, init = expert_parts(wc.expert)
    inputs = {"source": data_dir(source) / "splits.json"}
    if init:
        inputs["init"] = expert_weights(f"{arch}-{GENERALIST}")
    return inputs


from pipeline.layout import Layout

LAYOUT = Layout(RESULTS)
PROBE_SET = "default"  # the main probe set's name (per_class_{probe_per_class} once data_prep names it so)
