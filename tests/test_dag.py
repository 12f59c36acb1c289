"""The mini DAG's shape, and bad benchmark configs failing before any job runs."""
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, snakemake_cmd

MINI = yaml.safe_load((ROOT / "configs/benchmark/mini.yaml").read_text())
# the job counts the README states (tests/test_readme.py reads them from here)
MINI_JOBS, PAPER_JOBS, PAPER_SLURM_JOBS = 70, 168, 161


def dry_run(tmp_path, config=None, *extra):
    args = ["-n", "--nolock", *extra, "--config", f"results={tmp_path / 'results'}"]
    if config is not None:
        path = tmp_path / "bench.yaml"
        path.write_text(yaml.safe_dump(config))
        args = ["-n", "--nolock", *extra, "--configfile", str(path)]
    return subprocess.run(snakemake_cmd(*args), cwd=ROOT, capture_output=True, text=True, timeout=300)


def job_counts(output):
    table = output.split("Job stats:")[1].split("\n\n")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_mini_dag_job_counts(tmp_path):
    result = dry_run(tmp_path)
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    # 2 architectures x (4 sources from scratch + 3 non-generalist sources from the generalist)
    experts = 2 * (4 + 3)
    domains = 4  # the Multi-BN expert's domains, one per source
    targets = 3  # RSA/DDS's probe network: one job per target (every shot setting)
    assert counts == {
        "data_prep": 4 + targets, "zoo_training": experts, "multidomain": 3, "domain_experts": 1,
        "finetune": experts + domains, "selection": experts + domains, "probe_model": targets,
        "tables": 1, "evaluate": 1, "stability": 1, "figures": 1, "artifacts": 1, "all": 1,
        "total": 4 + targets + experts + 3 + 1 + 2 * (experts + domains) + targets + 6,
    }
    assert counts["total"] == MINI_JOBS


BAD = [
    ({"unknown_key": 1}, "(top level): Additional properties are not allowed ('unknown_key' was unexpected)"),
    ({"targets": ["mosaic_target", "nonexistent"]}, "targets: unknown dataset 'nonexistent'"),
    ({"selection": {"methods": ["lfc", "magic"]}}, "selection.methods: unknown method(s) ['magic']"),
    ({"selection": {"methods": []}}, "selection.methods: [] should be non-empty"),
    ({"sources": ["generalist", "mosaic", "mosaic"]}, "sources: ['generalist', 'mosaic', 'mosaic'] has non-unique"),
    ({"probe_sets": {"per_class": -1}}, "probe_sets.per_class: -1 is less than the minimum of 2"),
    ({"shots": ["full", "31"]}, "shots: 31 exceeds the 30 training images per class"),
    ({"generalist": "mosaic_target"}, "generalist: 'mosaic_target' is not among the sources"),
    ({"selection": {**MINI["selection"], "plugins": ["nope.py"]}}, "score plugin nope.py does not exist"),
    ({"theta_f": {"target": "mosaic_target", "lr": 0.5}}, "is not a point of the fine-tuning grid"),
    ({"selection": {**MINI["selection"], "variants": {"rsa_alexnet": {"score": "rsa", "probe_network": "alexnet"}}}},
     "selection.variants.rsa_alexnet.probe_network: 'alexnet' is not among probe_networks ['resnet18']"),
    ({"probe_networks": ["resnet18", "vgg16"]}, "probe_networks: ['vgg16'] have no definition in the selection config"),
    ({"preset": "nope"}, "there is no preset 'nope'"),
]


@pytest.mark.parametrize("change,message", BAD, ids=[b[1][:28] for b in BAD])
def test_bad_config_is_named_by_key_and_value(tmp_path, change, message):
    """What the Snakefile runs first (pipeline.benchmark.load_benchmark), without Snakemake's start-up."""
    from pipeline.benchmark import BenchmarkError, load_benchmark

    with pytest.raises(BenchmarkError) as err:
        load_benchmark({**MINI, "results": str(tmp_path / "results"), **change})
    assert message in str(err.value)


@pytest.mark.parametrize("change,message", [BAD[0], BAD[-1]], ids=["schema", "preset"])
def test_bad_config_fails_before_any_job(tmp_path, change, message):
    config = {**MINI, "results": str(tmp_path / "results"), **change}
    result = dry_run(tmp_path, config)
    assert result.returncode != 0
    assert "benchmark config error: " in result.stderr and message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()


def test_a_config_on_the_command_line_is_the_whole_config(tmp_path):
    """One architecture, no variants, no multi-domain expert, no Fig. 8, no pools: only its own experts
    and methods, nothing inherited from configs/benchmark/mini.yaml."""
    small = {key: MINI[key] for key in ("benchmark", "seed", "generalist", "sources", "targets", "reference_arch",
                                        "shots", "probe_sets")}
    small.update(preset="mini", architectures={"resnet": "resnet_mini"}, multidomain=None, theta_f=None, pools=None,
                 selection={"methods": ["lfc", "leep"]}, results=str(tmp_path / "results"))
    result = dry_run(tmp_path, small, "-p")
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    assert counts["zoo_training"] == 4 + 3 and "multidomain" not in counts and "probe_model" not in counts
    assert "densenet" not in result.stdout and "parc_pca" not in result.stdout
    assert "'methods=[lfc,leep]'" in result.stdout and "'variants={}'" in result.stdout


PAPER = yaml.safe_load((ROOT / "configs/benchmark/paper.yaml").read_text())


def paper_dry_run(tmp_path, *extra, site=None):
    """A dry run of the paper benchmark; `site`: a site file's contents, given after the benchmark."""
    config = {**PAPER, "results": str(tmp_path / "results")}
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(config))
    files = [str(path)]
    if site is not None:
        files.append(str(tmp_path / "site.yaml"))
        (tmp_path / "site.yaml").write_text(yaml.safe_dump(site))
    return subprocess.run(snakemake_cmd(*extra, "-n", "--nolock", "--configfile", *files), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_paper_dag_job_counts(tmp_path):
    """With no data present, the whole paper builds as one DAG (Deshpande et al. Sec. 4)."""
    result = paper_dry_run(tmp_path, "-p")
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    single = 2 * 8 + 2 * 7  # ResNet-101 / DenseNet-169 on 8 sources, plus 7 ImageNet-initialised each
    domains = 8  # the Multi-BN expert's domains are fine-tuned and selected among as well
    assert single == 30
    networks = 3  # RSA/DDS's probe networks: ResNet-18 (App. C), PARC's ResNet-50 and AlexNet, per target
    assert counts == {
        "data_prep": 19, "zoo_training": single, "multidomain": 3, "domain_experts": 1,
        "finetune": single + domains, "selection": single + domains,
        "probe_model": 11 * networks, "tables": 1, "evaluate": 1, "stability": 1, "figures": 1, "artifacts": 1,
        "all": 1, "total": PAPER_JOBS,
    }
    # one probe_model job per (network, target), each training one network; the selection jobs read them all
    for network in ("resnet18", "resnet50", "alexnet"):
        assert f"'probe_network_names=[{network}]'" in result.stdout
        assert re.search(rf"/probe_models/{network}/dtd/5/per_class_25\.npz", result.stdout)
    assert "'probe_network_names=[resnet18,resnet50,alexnet]'" in result.stdout
    # every artifact of issue 5 has a rule output, the published numbers included
    from analysis.outputs import outputs

    for name in [o.name for o in outputs(multidomain=True, theta_f=True, paper=True)]:
        assert re.search(rf"/{name}\.(csv|png|md)\b", result.stdout), name
    # the grid: 30 experts x (8 full targets + 11 targets x 2 few-shot settings) x 3 lrs, and the
    # 8 domains x 8 full targets x 3 lrs
    assert len(PAPER["full_targets"]) == 8 and len(PAPER["targets"]) == 11
    finetune_cmds = [line for line in result.stdout.splitlines() if " finetune preset=paper/finetune " in line]
    assert finetune_cmds and all("'full_targets=[cucumber9,dtd," in c for c in finetune_cmds)


def planned_jobs(output):
    """(rule, wildcards, resources, shell command) of every job a dry run (-p) plans."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", output):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        if rule is None:
            continue
        found = lambda pattern: (m.group(1) if (m := re.search(pattern, block)) else "")  # noqa: E731
        resources = dict(kv.split("=", 1) for kv in found(r"resources: (.*)").split(", ") if "=" in kv)
        jobs.append((rule.group(1), found(r"wildcards: (.*)"), resources, found(r"Shell command: (.*)")))
    return jobs


TRAINING, ONE_GPU = {"zoo_training", "multidomain"}, {"finetune", "selection", "probe_model"}


def test_one_gpu_node_bounds_and_assigns_its_gpus(tmp_path):
    """`--resources gpu=8` on one node: training jobs take the node's 8 GPUs (8 torchrun ranks), fine-tuning,
    selection and the probe networks one each, data preparation none; pipeline.launch leases them."""
    result = paper_dry_run(tmp_path, "--cores", "64", "--resources", "gpu=8", "-p")
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout)
    for rule, _, res, shell in jobs:
        if rule in TRAINING:
            assert (res["gpu"], res["ranks"]) == ("8", "8")
            assert shell.startswith("python -m pipeline.launch --gpus 8 --ranks 8 --node-gpus 8 zoo_training step=")
        elif rule in ONE_GPU:
            assert (res["gpu"], res["ranks"]) == ("1", "1")
            assert shell.startswith("python -m pipeline.launch --gpus 1 --ranks 1 --node-gpus 8 ")
        elif rule == "data_prep":
            assert res["gpu"] == "0" and shell.startswith("python -m pipeline.warm data_prep ")
    assert {r for r, *_ in jobs} >= TRAINING | ONE_GPU | {"data_prep"}
    # the training jobs' runtimes come from their work: ImageNet's 732 images x 1000 classes x 90 epochs
    # at 1000 images/s on each of 8 GPUs, twice over, is 275 minutes
    runtime = {w: int(res["runtime"]) for r, w, res, _ in jobs if r == "zoo_training"}
    assert runtime["expert=resnet-imagenet"] == 275 and max(runtime.values()) <= 24 * 60


def test_cpu_on_purpose_keeps_the_ranks_and_no_gpus_means_cpu(tmp_path):
    """device=cpu: no job asks for a GPU; training keeps the ranks it would have had GPUs. Without
    --resources gpu (a laptop), every job runs on the CPU, one process each."""
    result = paper_dry_run(tmp_path, "--cores", "4", "--resources", "gpu=4", "--config", "device=cpu", "-p")
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout)
    assert all(res.get("gpu", "0") == "0" for _, _, res, _ in jobs)
    assert all(res["ranks"] == "4" and "--gpus 0 --ranks 4 --node-gpus 4 zoo_training" in shell
               for rule, _, res, shell in jobs if rule in TRAINING)
    laptop = planned_jobs(dry_run(tmp_path, None, "-p").stdout)
    assert laptop and all("--gpus 0 --ranks 1 --node-gpus 0" in shell for rule, _, _, shell in laptop
                          if rule in TRAINING | ONE_GPU)


def test_a_site_file_sets_what_slurm_receives_without_touching_the_profile(tmp_path):
    """profiles/slurm with a site file: account, partitions (CPU-only rules to the CPU partition), --gres
    instead of --gpus, 4-GPU nodes, CPUs per GPU and a 12 h limit; nothing asks beyond the limits."""
    profile = (ROOT / "profiles/slurm/config.yaml").read_text()
    site = {"site": {"account": "proj42", "gpu_partition": "a100", "cpu_partition": "cpu", "gpu_request": "gres",
                     "gpus_per_node": 4, "cpus_per_gpu": 8, "mem_per_gpu_gb": 60, "max_runtime_h": 12}}
    result = paper_dry_run(tmp_path, "--profile", "profiles/slurm", "-p", site=site)
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout)
    local = {"all", "tables", "evaluate", "stability", "figures", "artifacts", "domain_experts"}
    submitted = [j for j in jobs if j[0] not in local]
    assert len(submitted) == PAPER_SLURM_JOBS
    for rule, _, res, shell in submitted:
        assert res["slurm_account"] == "proj42" and res["gpu"] == "0" and int(res["runtime"]) <= 12 * 60
        gpus = 4 if rule in TRAINING else int(rule in ONE_GPU)
        assert res["slurm_partition"] == ("a100" if gpus else "cpu") and res.get("gres") == (f"gpu:{gpus}" if gpus else None)
        assert int(res["cpus_per_task"]) == (8 * gpus if gpus else 16) and int(res["mem_mb"]) <= 4 * 60000
    assert all("--gpus 4 --ranks 4" in shell for rule, _, _, shell in jobs if rule in TRAINING)
    assert (ROOT / "profiles/slurm/config.yaml").read_text() == profile


def test_a_dead_runs_lock_is_removed_and_a_live_run_is_refused(tmp_path):
    """`make run` after kill -9: the lock of a run whose process is gone is stale; a live one is not."""

    from pipeline.resume import LOCKS, PID_FILE, RunError, clear_stale_lock

    (tmp_path / LOCKS).mkdir(parents=True)
    (tmp_path / LOCKS / "0.input.lock").write_text("x")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / PID_FILE).write_text(dead.stdout.strip())
    assert clear_stale_lock(tmp_path) == [tmp_path / LOCKS / "0.input.lock"]
    assert not list((tmp_path / LOCKS).iterdir())
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "snakemake"])
    try:
        # until the child has exec'd, /proc/<pid>/cmdline is still this process's (seen under load)
        deadline = time.time() + 10
        while b"snakemake" not in Path(f"/proc/{live.pid}/cmdline").read_bytes() and time.time() < deadline:
            time.sleep(0.01)
        (tmp_path / PID_FILE).write_text(str(live.pid))
        with pytest.raises(RunError, match=f"another run \\(pid {live.pid}\\) is still going"):
            clear_stale_lock(tmp_path)
    finally:
        live.kill()
