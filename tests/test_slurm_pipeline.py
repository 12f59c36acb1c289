"""The pipeline through `--profile profiles/slurm` on a simulated SLURM cluster (tests/slurm_sim): a cut
of the mini benchmark with device=cpu (training under torchrun with 2 CPU ranks), a site file, an
injected TIMEOUT that the profile's retry resumes, and a restart after the Snakemake process is killed
while its first jobs run;
then, without device=cpu, a GPU job on a node without GPUs stops with one line."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from conftest import ROOT
from pipeline.layout import Layout

MINI = yaml.safe_load((ROOT / "configs/benchmark/mini.yaml").read_text())
FAST = ["--latency-wait", "1", "--seconds-between-status-checks", "1", "--slurm-init-seconds-before-status-checks", "1"]
SITE = {"account": "proj_b", "cpu_partition": "cpu", "gpu_partition": "gpu", "gpus_per_node": 2,
        "cpus_per_gpu": 1, "cpu_job_cpus": 2, "mem_per_gpu_gb": 2, "cpu_job_mem_gb": 2, "max_runtime_h": 2}


def _config(tmp_path):
    cut = {**MINI, "benchmark": "slurm_cut", "preset": "smoke", "results": str(tmp_path / "results"),
           "sources": ["generalist", "mosaic"], "targets": ["mosaic_target"], "full_targets": None, "shots": ["full"],
           "architectures": {"resnet": "resnet_mini"}, "theta_f": None, "pools": None, "probe_networks": ["resnet18"],
           "probe_sets": {"per_class": 5, "ablation_per_class": [], "parc_draws": 0},
           "selection": {"methods": ["lfc", "rsa"]},
           "multidomain": {"arch": "resnet", "variants": ["multi_bn"], "finetune_variant": "multi_bn"}}
    (tmp_path / "cut.yaml").write_text(yaml.safe_dump(cut))
    (tmp_path / "site.yaml").write_text(yaml.safe_dump({"site": SITE}))
    layout = Layout(cut["results"])
    # every rule kind: data_prep, zoo_training, multidomain, domain_experts (local), finetune, probe_model, selection
    return layout, [str(layout.record("finetune", "resnet-mosaic-md")), str(layout.record("scores", "resnet-generalist"))]


def _run(tmp_path, targets, *extra, background=False):
    # targets first: --config and --configfile take every word after them
    cmd = [sys.executable, "-m", "pipeline", "run", *targets, "-s", str(ROOT / "Snakefile"), "--profile",
           str(ROOT / "profiles/slurm"), *FAST, *extra, "--configfile", str(tmp_path / "cut.yaml"), str(tmp_path / "site.yaml")]
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    if background:
        return subprocess.Popen(cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
    return subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=600)


def _wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)


@pytest.mark.e2e
def test_mini_cut_on_simulated_slurm_with_a_timeout_and_a_killed_snakemake(slurm_cluster, tmp_path):
    layout, targets = _config(tmp_path)
    slurm_cluster.inject("rule_finetune", "TIMEOUT", after=2)  # killed in its first try; the retry resumes
    first = _run(tmp_path, targets, "--config", "device=cpu", background=True)
    assert first.poll() is None or first.returncode == 0, first.stdout.read()
    by_rule = lambda rule: [j for j in slurm_cluster.jobs() if j["comment"].startswith(f"rule_{rule}")]  # noqa: E731
    try:
        _wait_for(lambda: any(j["state"] == "RUNNING" for j in by_rule("data_prep")), 300,
                  "no data preparation job ever ran")
        os.kill(first.pid, signal.SIGKILL)  # the Snakemake process dies; its SLURM jobs go on
        first.wait(30)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    for job in slurm_cluster.jobs():  # the dead run's jobs finish on the cluster
        slurm_cluster.wait(job["id"], timeout=300)

    second = _run(tmp_path, targets, "--config", "device=cpu")
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-4000:]
    assert "a previous run died; removed its lock" in second.stderr
    for path in targets:
        assert json.loads(open(path).read())["rows"], path

    jobs = slurm_cluster.jobs()
    assert {j["comment"].split("_wildcards")[0] for j in jobs} == {
        "rule_data_prep", "rule_zoo_training", "rule_multidomain", "rule_finetune", "rule_probe_model", "rule_selection"}
    assert [j["state"] for j in by_rule("finetune")] == ["TIMEOUT", "COMPLETED"]
    for job in jobs:  # the site file's account and CPU partition; device=cpu asks for no GPU
        argv = job["argv"]
        assert ("-A", "proj_b") == tuple(argv[argv.index("-A"):argv.index("-A") + 2])
        assert ("-p", "cpu") == tuple(argv[argv.index("-p"):argv.index("-p") + 2])
        assert not any(a.startswith(("--gpus", "--gres")) for a in argv)
    multidomain = by_rule("multidomain")[-1]
    assert "--cpus-per-task=2" in multidomain["argv"] and multidomain["state"] == "COMPLETED"
    log = layout.log("multidomain", "multi_bn").read_text()
    assert "runtime: cpu, 2 process(es)" in log  # 2 torchrun ranks on the CPU

    # without device=cpu the next zoo job asks SLURM for 2 GPUs and gets them (CUDA_VISIBLE_DEVICES=0,1), but
    # this machine has none: the job's log holds one line saying so, and the run fails
    gpu = _run(tmp_path, [str(layout.expert_weights("resnet-mosaic"))], "--retries", "0")
    assert gpu.returncode != 0
    (zoo,) = [j for j in by_rule("zoo_training") if j["comment"].endswith("_resnet-mosaic")]
    assert "--gpus=2" in zoo["argv"] and ("-p", "gpu") == tuple(zoo["argv"][zoo["argv"].index("-p"):][:2])
    assert zoo["state"] == "FAILED"
    assert layout.log("zoo_training", "resnet-mosaic").read_text().strip().splitlines() == [
        "pipeline.launch: error: this job was given 2 GPU(s) (CUDA_VISIBLE_DEVICES='0,1') but sees 0; "
        "to run on the CPU on purpose: --config device=cpu"]
