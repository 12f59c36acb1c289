"""pipeline.launch: a job's GPUs on a shared node (leases), no silent CPU fallback, torchrun ranks."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from pipeline import launch


def test_jobs_on_one_node_lease_distinct_gpus_until_they_exit(tmp_path):
    """Eight GPUs: a 1-GPU job takes GPU 0, a 4-GPU job the next four; a job that outlives them holds
    its GPU, and a lease ends with the process holding it."""
    script = ("import sys, time; from pipeline.launch import lease_gpus; "
              f"print(lease_gpus(int(sys.argv[1]), 8, __import__('pathlib').Path({str(tmp_path)!r})), flush=True); "
              "time.sleep(float(sys.argv[2]))")
    holder = subprocess.Popen([sys.executable, "-c", script, "1", "30"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "[0]"
        four = subprocess.run([sys.executable, "-c", script, "4", "0"], cwd=ROOT, capture_output=True, text=True, check=True)
        assert four.stdout.strip() == "[1, 2, 3, 4]"  # GPU 0 is held; the 4-GPU job has exited since
        with pytest.raises(launch.LaunchError, match=r"needs 8 GPU\(s\) but only 7 of the node's 8 are free"):
            launch.lease_gpus(8, 8, tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert launch.lease_gpus(8, 8, tmp_path) == list(range(8))


def test_a_job_given_gpus_that_sees_none_stops_with_one_line(tmp_path):
    """This machine has no GPU: the launcher names what the job asked for and what it found, and runs nothing."""
    marker = tmp_path / "ran"
    env = {**os.environ, "GPU_LEASE_DIR": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "pipeline.launch", "--gpus", "2", "--ranks", "2", "--node-gpus", "8",
                        "this_module_never_runs", f"out={marker}"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert r.returncode == 1 and not marker.exists()
    assert r.stderr.strip().splitlines() == [
        "pipeline.launch: error: this job was given 2 GPU(s) (CUDA_VISIBLE_DEVICES='0,1') but sees 0; "
        "to run on the CPU on purpose: --config device=cpu"]


def test_gpus_are_assigned_through_cuda_visible_devices(tmp_path, monkeypatch):
    """With a simulated device count, a 2-GPU job on a node of 4 gets CUDA_VISIBLE_DEVICES and runs its
    stage under torchrun on cuda; under SLURM the allocation's devices stand."""
    monkeypatch.setenv("GPU_LEASE_DIR", str(tmp_path))
    monkeypatch.setattr(launch, "visible_gpus", lambda: len(os.environ["CUDA_VISIBLE_DEVICES"].split(",")))
    env = {}
    assert launch.prepare(2, 2, 4, env) == "cuda" and env["CUDA_VISIBLE_DEVICES"] == "0,1"
    second = {}
    assert launch.prepare(1, 1, 4, second) == "cuda" and second["CUDA_VISIBLE_DEVICES"] == "2"
    slurm = {"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "5"}
    assert launch.prepare(1, 1, 4, slurm) == "cuda" and slurm["CUDA_VISIBLE_DEVICES"] == "5"
    with pytest.raises(launch.LaunchError, match="the node has 4"):
        launch.prepare(8, 8, 4, {})
    cmd = launch.command("zoo_training", ["step=expert"], 2, "cuda")
    assert cmd[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m"]
    assert cmd[6:] == ["zoo_training", "step=expert", "runtime.device=cuda"]


def test_cpu_jobs_need_no_gpu_and_keep_their_ranks(tmp_path):
    """device=cpu (no GPUs): the stage runs on the CPU, under torchrun with the ranks it would have had GPUs."""
    env = {}
    assert launch.prepare(0, 3, 0, env) == "cpu" and "CUDA_VISIBLE_DEVICES" not in env
    assert launch.command("finetune", [], 1, "cpu")[1:] == ["-m", "pipeline.warm", "finetune", "runtime.device=cpu"]
    with pytest.raises(launch.LaunchError, match="one rank per GPU"):
        launch.prepare(2, 3, 8, {})
