# Identity of every job, from the validated benchmark (pipeline.benchmark) and the one layout module
# (pipeline.layout); `stage_shell` builds every stage's command line.
import os
import sys
from pathlib import Path

from pipeline.benchmark import probe_networks_used
from pipeline.layout import Expert, Layout, domain_experts, per_class_probe, probe_sets, zoo_experts
from pipeline.stages import STAGES, compose, config_dirs_env, identity_overrides, stage_overrides

envvars:
    "PATH",


# jobs run `python -m <stage>` with the interpreter that runs Snakemake (the project's venv)
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])

LAYOUT = Layout(config["results"])
RESULTS = LAYOUT.results
PRESET = config["preset"]
SEED = config["seed"]
THREADS = config["threads"]
SHOTS = config["shots"]
TARGETS = config["targets"]
SOURCES = config["sources"]
GENERALIST = config["generalist"]
ARCHS = config["architectures"]
SELECTION = config["selection"]
PROBES = config["probe_sets"]
FULL_TARGETS = config["full_targets"] or TARGETS
MULTIDOMAIN = config["multidomain"]
THETA_F = config["theta_f"]
POOLS = config["pools"] or {"all": None}
# the paper's probe set of every shot setting, named by its size (per_class_25)
PROBE_SET = per_class_probe(PROBES["per_class"])

SINGLE_DOMAIN_EXPERTS = zoo_experts(ARCHS, SOURCES, GENERALIST)
DOMAIN_EXPERTS = domain_experts(MULTIDOMAIN["arch"], SOURCES) if MULTIDOMAIN else []
EXPERTS = SINGLE_DOMAIN_EXPERTS + DOMAIN_EXPERTS
VARIANTS = MULTIDOMAIN["variants"] if MULTIDOMAIN else []
# the expert every gain is measured against (the paper's ResNet-101 ImageNet expert)
REFERENCE_EXPERT = str(Expert(config["reference_arch"], GENERALIST))
# RSA/DDS's probe networks (the first is plain rsa / dds's) and those some method reads (decided once)
PROBE_NETWORKS = config["probe_networks"]
PROBE_NETWORKS_USED = probe_networks_used(SELECTION, PROBE_NETWORKS)

NEVER = "(?!x)x"  # a wildcard pattern that matches nothing (an empty choice)


wildcard_constraints:
    expert="|".join(EXPERTS),
    variant="|".join(VARIANTS) or NEVER,
    dataset="|".join(SOURCES + TARGETS),
    target="|".join(TARGETS),
    network="|".join(PROBE_NETWORKS_USED) or NEVER,


def identity(**values):
    """A job's identity as quoted Hydra overrides (`key=value`), skipping None."""
    return " ".join(f"'{o}'" for o in identity_overrides(**values))


def stage_shell(stage, step=None, launcher=False):
    """The one command line of every rule: the stage's module with its step and the benchmark's preset,
    then the job's identity (`params.identity`), its own Hydra run directory (`params.run_dir`) and its
    log. `launcher` runs under torchrun when the profile gives the job several GPUs."""
    head = stage_overrides(stage, PRESET, config["config_dirs"], step)
    env = " ".join(f"{k}={v}" for k, v in config_dirs_env(config["config_dirs"]).items())
    python = "{params.launcher}" if launcher else "python -m"
    return (f"{env + ' ' if env else ''}{python} {STAGES[stage].module} {' '.join(head)} seed={SEED} {{params.identity}} "
            "hydra.run.dir={params.run_dir} hydra.job.chdir=false > {log} 2>&1")


def launcher(wildcards, resources):
    """`python -m` on one process; torchrun with one process per GPU when the job was given
    several (`gpu` comes from the profile: profiles/slurm sets it per rule)."""
    n = int(resources.get("gpu", 0))
    return f"torchrun --standalone --nproc_per_node={n} -m" if n > 1 else "python -m"


def target_probe_sets(shots):
    return probe_sets(shots, PROBES["per_class"], PROBES["ablation_per_class"], PROBES["parc_draws"])


def target_splits():
    return [LAYOUT.splits(t) for t in TARGETS]


def expert_caches(expert):
    caches = [LAYOUT.feature_cache(expert, t, s, p) for t in TARGETS for s in SHOTS for p in target_probe_sets(s)]
    return caches + [LAYOUT.source_cache(expert)]


def probe_model_caches(network, target):
    return [LAYOUT.probe_model_cache(network, target, s, p) for s in SHOTS for p in target_probe_sets(s)]


def get_zoo_inputs(wc):
    expert = Expert.parse(wc.expert)
    inputs = {"source": LAYOUT.splits(expert.source)}
    if expert.kind == "init":
        inputs["init"] = LAYOUT.expert_weights(Expert(expert.arch, GENERALIST))
    return inputs


def get_selection_inputs(wc):
    inputs = {
        "weights": LAYOUT.expert_weights(wc.expert),
        "targets": target_splits(),
        "source": LAYOUT.splits(Expert.parse(wc.expert).source),
    }
    if PROBE_NETWORKS_USED:
        # one manifest per (network, target), written after its caches (pipeline.layout.probe_manifest)
        inputs["probe_features"] = [LAYOUT.probe_model_manifest(n, t) for n in PROBE_NETWORKS_USED for t in TARGETS]
    return inputs


# ---------------------------------------------------------------- analysis outputs (analysis/outputs.py)
from analysis.outputs import files as output_files, outputs as analysis_outputs, step_inputs, write_captions
from analysis.published import is_paper_zoo

# which conditional outputs this benchmark has; the published numbers only on the paper's zoo
ANALYSIS_CONDITIONS = dict(multidomain=bool(MULTIDOMAIN), theta_f=bool(THETA_F), paper=is_paper_zoo(SOURCES, ARCHS))
# top-k has one owner, the analysis stage's config (with the benchmark's preset); the report's
# captions are written from the registry with it and the paper's probe set
TOP_K = compose("analysis", PRESET, config_dirs=config["config_dirs"]).top_k
# absolute: Snakemake resolves a relative caption path against this rules file's folder
CAPTIONS = write_captions(LAYOUT.run_dir("analysis", "captions").resolve(), TOP_K, PROBE_SET)


def step_outputs(step):
    """A step's files; the main file of each output (a table, a figure's .png) goes to the report."""
    out = []
    for o in analysis_outputs(step, **ANALYSIS_CONDITIONS):
        main, *data = output_files(LAYOUT, o)
        out += [report(main, caption=CAPTIONS / f"{o.name}.rst", category=o.category), *data]
    return out


def step_tables(step):
    """The tables a step reads that other steps write."""
    return step_inputs(LAYOUT, step, **ANALYSIS_CONDITIONS)


def analysis_identity(**extra):
    """Who the reference expert and the paper's probe set are, for every step but tables."""
    return identity(results_dir=RESULTS, reference_expert=REFERENCE_EXPERT, probe_set=PROBE_SET,
                    multidomain=bool(MULTIDOMAIN), **extra)
