# Identity of every job, from the validated benchmark (pipeline.benchmark) and the one layout module
# (pipeline.layout); `stage_shell` builds every stage's command line.
import functools
import os
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from pipeline.benchmark import probe_networks_used
from pipeline.layout import Expert, Layout, domain_experts, per_class_probe, probe_sets, zoo_experts
from pipeline.resources import Site, all_images, download_mb, held_out_images, train_images
from pipeline.stages import STAGES, compose, config_dirs_env, identity_overrides, stage_overrides

envvars:
    "PATH",


# jobs run `python -m <stage>` with the interpreter that runs Snakemake (the project's venv)
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])

LAYOUT = Layout(config["results"])
RESULTS = LAYOUT.results
PRESET = config["preset"]
SEED = config["seed"]
FINETUNE_SEEDS = [SEED + i for i in range(config["finetune_seeds"])]
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
VARIANTS = MULTIDOMAIN["variants"] if MULTIDOMAIN else []
# experts trained elsewhere, by their zoo-file names (zoo_training/zoo.py; pipeline.benchmark._check_zoo):
# beside the experts trained here they are fine-tuned and scored like them; alone (no sources: a zoo
# benchmark) they are scored against the benchmark's ground truth, a CSV or, with `ground_truth:
# finetune`, their fine-tuning here
ZOO_FILE = config["zoo"]
if ZOO_FILE:
    from zoo_training.zoo import local_files, read_zoo

    ZOO = {e.name: e for e in read_zoo(ZOO_FILE)}
else:
    ZOO = {}
ZOO_BENCHMARK = bool(ZOO) and not SOURCES
FINETUNE_ZOO = bool(ZOO) and (bool(SOURCES) or config["ground_truth"] == "finetune")
TRAINED_EXPERTS = SINGLE_DOMAIN_EXPERTS + DOMAIN_EXPERTS
EXPERTS = TRAINED_EXPERTS + list(ZOO)
# the expert every gain is measured against (the paper's ResNet-101 ImageNet expert); none in a zoo benchmark
REFERENCE_EXPERT = str(Expert(config["reference_arch"], GENERALIST)) if SOURCES else None
# RSA/DDS's probe networks (the first is plain rsa / dds's) and those some method reads (decided once)
PROBE_NETWORKS = config["probe_networks"]
PROBE_NETWORKS_USED = probe_networks_used(SELECTION, PROBE_NETWORKS)

NEVER = "(?!x)x"  # a wildcard pattern that matches nothing (an empty choice)


wildcard_constraints:
    expert="|".join(map(re.escape, EXPERTS)),
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
    log. `launcher`: the job starts through pipeline.launch, which assigns its GPUs (`resources.job_gpus`),
    runs `resources.ranks` torchrun ranks and says its device; else `python -m pipeline.warm` (CPU-only stages:
    a fork of the run's warm server, pipeline.warm, or `python -m` without one)."""
    head = stage_overrides(stage, PRESET, config["config_dirs"], step)
    env = " ".join(f"{k}={v}" for k, v in config_dirs_env(config["config_dirs"]).items())
    python = (f"python -m pipeline.launch --gpus {{resources.job_gpus}} --ranks {{resources.ranks}} "
              f"--node-gpus {given('gpu') or 0}" if launcher else "python -m pipeline.warm")
    return (f"{env + ' ' if env else ''}{python} {STAGES[stage].module} {' '.join(head)} seed={SEED} {{params.identity}} "
            "hydra.run.dir={params.run_dir} hydra.job.chdir=false > {log} 2>&1")


# ---------------------------------------------------------------- what a job asks of the machine
SITE = Site(config["site"], config["device"])
DATASETS = config["datasets"]


def given(name):
    """The run's `--resources <name>=N` (None when not given)."""
    resource = workflow.global_resources.get(name)
    value = getattr(resource, "value", resource)
    return None if value is None else int(value)


def gpu_cap():
    """The most GPUs a job may take: the run's `--resources gpu` (None: none given, every job on the
    CPU). A cluster job (`--mode remote`) is started without the run's --resources, so it takes what it
    wants; the main process that submitted it made sure the cap never cut that (below)."""
    if workflow.remote_exec:
        return SITE.gpus_per_node
    cap = given("gpu")
    if not workflow.local_exec and (cap or 0) < SITE.gpus_per_node:
        raise WorkflowError(f"--resources gpu={cap}: a cluster run must allow at least site.gpus_per_node="
                            f"{SITE.gpus_per_node} GPUs at once (profiles/slurm sets gpu=64)")
    return cap


def job_resources(rule, runtime):
    """Snakemake resources of `rule`'s jobs (pipeline.resources): `job_gpus` and `ranks` for the
    launcher; `gpu`, counted against --resources gpu (and SLURM's --gpus); SLURM's partition, account,
    gres, CPUs and memory; `runtime` from `runtime(wildcards, gpus, ranks)` in minutes, its unit
    written out ("90m") so that no Snakemake release reads it as seconds."""

    def gpus():
        return SITE.gpus(rule, gpu_cap())

    def ranks():
        return SITE.ranks(rule, gpu_cap())

    out = {"job_gpus": lambda wc: gpus(), "ranks": lambda wc: ranks(),
           "runtime": lambda wc: f"{runtime(wc, gpus(), ranks())}m"}
    for key in ("slurm_partition", "slurm_account", "gres", "gpu", "cpus_per_task", "mem_mb"):
        out[key] = lambda wc, key=key: SITE.slurm(gpus(), ranks()).get(key)
    return out


@functools.cache
def stage_config(stage):
    """A stage's composed configuration for this benchmark (epochs, grids: the work of its jobs; the
    training stages with the reference architecture, which their schedule does not depend on)."""
    arch = [f"arch={ARCHS[config['reference_arch']]}"] if stage in ("zoo_training", "multidomain") else []
    return compose(stage, PRESET, arch, config_dirs=config["config_dirs"])


def probe_set_count(shots):
    return len(target_probe_sets(shots))


def data_prep_runtime(wc, gpus, ranks):
    """Download at `site.download_mb_per_second`, then decode and resize every image."""
    ds = DATASETS[wc.dataset]
    seconds = download_mb(ds) / SITE.download_mb_per_second + all_images(ds) / SITE.prepare_images_per_second
    return SITE.runtime_minutes(gpus=gpus, ranks=ranks, cpu_seconds=seconds)


def zoo_runtime(wc, gpus, ranks):
    """The schedule's epochs over the source's training images, then its test set."""
    expert = Expert.parse(wc.expert)
    source = DATASETS[expert.source]
    return SITE.runtime_minutes(gpus=gpus, ranks=ranks, arch=ARCHS[expert.arch], forward=held_out_images(source),
                                train=stage_config("zoo_training").train.epochs * train_images(source))


def multidomain_runtime(wc, gpus, ranks):
    """`per_source_cap` images per source per epoch, then every source's test set."""
    cfg = stage_config("multidomain")
    return SITE.runtime_minutes(gpus=gpus, ranks=ranks, arch=ARCHS[MULTIDOMAIN["arch"]],
                                train=cfg.train.epochs * cfg.per_source_cap * len(SOURCES),
                                forward=sum(held_out_images(DATASETS[s]) for s in SOURCES))


def finetune_runtime(wc, gpus, ranks):
    """Every grid point: the recipe's epochs over the target's training images in that shot setting,
    then its test set."""
    cfg = stage_config("finetune")
    expert = None if wc.expert in ZOO else Expert.parse(wc.expert)
    shots = ["full"] if expert and expert.kind == "md" else SHOTS
    points = [(t, s) for t in TARGETS for s in shots if s != "full" or t in FULL_TARGETS]
    return SITE.runtime_minutes(gpus=gpus, ranks=ranks, arch=ARCHS[expert.arch] if expert else "default",
                                train=len(cfg.lrs) * cfg.train.epochs * sum(train_images(DATASETS[t], s) for t, s in points),
                                forward=len(cfg.lrs) * sum(held_out_images(DATASETS[t]) for t, _ in points))


def selection_runtime(wc, gpus, ranks):
    """A forward pass over every probe set (at most the setting's training images each) and the
    expert's source probe set, then every score on every probe set (`site.score_seconds` each). A zoo
    expert runs at the site's default speed and has no source set."""
    sets = [(t, s) for t in TARGETS for s in SHOTS for _ in range(probe_set_count(s))]
    forward = sum(train_images(DATASETS[t], s) for t, s in sets)
    if wc.expert in ZOO:
        arch = "default"
    else:
        expert = Expert.parse(wc.expert)
        arch = ARCHS[expert.arch]
        forward += PROBES["per_class"] * DATASETS[expert.source]["num_classes"]
    return SITE.runtime_minutes(gpus=gpus, ranks=ranks, arch=arch, cpu_seconds=SITE.score_seconds * len(sets),
                                forward=forward)


def probe_model_runtime(wc, gpus, ranks):
    """The probe network trained on the target in every shot setting, then its probe sets' features."""
    ds, epochs = DATASETS[wc.target], stage_config("selection").probe_train.epochs
    return SITE.runtime_minutes(gpus=gpus, ranks=ranks, arch=wc.network,
                                train=epochs * sum(train_images(ds, s) for s in SHOTS),
                                forward=sum(probe_set_count(s) * train_images(ds, s) for s in SHOTS))


def target_probe_sets(shots):
    return probe_sets(shots, PROBES["per_class"], PROBES["ablation_per_class"], PROBES["parc_draws"])


def target_splits():
    return [LAYOUT.splits(t) for t in TARGETS]


def expert_caches(expert, source=True):
    """Its caches of every probe set and, with `source`, of its source images (a zoo expert has none here)."""
    caches = [LAYOUT.feature_cache(expert, t, s, p) for t in TARGETS for s in SHOTS for p in target_probe_sets(s)]
    return caches + ([LAYOUT.source_cache(expert)] if source else [])


def probe_model_caches(network, target):
    return [LAYOUT.probe_model_cache(network, target, s, p) for s in SHOTS for p in target_probe_sets(s)]


def get_zoo_inputs(wc):
    expert = Expert.parse(wc.expert)
    inputs = {"source": LAYOUT.splits(expert.source)}
    if expert.kind == "init":
        inputs["init"] = LAYOUT.expert_weights(Expert(expert.arch, GENERALIST))
    return inputs


def expert_inputs(expert):
    """What a job of `expert` reads besides its own: a zoo expert's checkpoint or local weights file (hub
    caches and URLs are read when the job runs), else the weights trained here; every target's splits."""
    own = {"zoo": local_files(ZOO[expert])} if expert in ZOO else {"weights": LAYOUT.expert_weights(expert)}
    return {**own, "targets": target_splits()}


def get_finetune_inputs(wc):
    return expert_inputs(wc.expert)


def get_selection_inputs(wc):
    inputs = expert_inputs(wc.expert)
    if wc.expert not in ZOO:  # its source's probe set (Domain Similarity)
        inputs["source"] = LAYOUT.splits(Expert.parse(wc.expert).source)
    if PROBE_NETWORKS_USED:
        # one manifest per (network, target), written after its caches (pipeline.layout.probe_manifest)
        inputs["probe_features"] = [LAYOUT.probe_model_manifest(n, t) for n in PROBE_NETWORKS_USED for t in TARGETS]
    return inputs


# ---------------------------------------------------------------- analysis outputs (analysis/outputs.py)
from analysis.outputs import files as output_files, outputs as analysis_outputs, step_inputs, write_captions
from analysis.published import is_paper_zoo

# which conditional outputs this benchmark has; the published numbers only on the paper's zoo
ANALYSIS_CONDITIONS = dict(multidomain=bool(MULTIDOMAIN), theta_f=bool(THETA_F), paper=is_paper_zoo(SOURCES, ARCHS),
                           zoo=ZOO_BENCHMARK)
# top-k has one owner, the analysis stage's config (with the benchmark's preset); the report's
# captions are written from the registry with it and the paper's probe set
TOP_K = compose("analysis", PRESET, config_dirs=config["config_dirs"]).top_k
# absolute: Snakemake resolves a relative caption path against this rules file's folder
CAPTIONS = write_captions(LAYOUT.run_dir("analysis", "captions").resolve(), TOP_K, PROBE_SET, config["lr_selection"])


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
                    multidomain=bool(MULTIDOMAIN), lr_selection=config["lr_selection"], **extra)
