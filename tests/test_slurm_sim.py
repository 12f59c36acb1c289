"""The simulated SLURM cluster (tests/slurm_sim): SLURM's validation wording, job lifecycles, fault
injection, the queries of snakemake-executor-plugin-slurm parsed by the plugin's own code, and one
real `snakemake --executor slurm` run through it."""

import asyncio
import getpass
import logging
import os
import subprocess
import sys
import textwrap
import time

import pytest

from slurm_sim import cluster as sim

NODE_CONFIG = "sbatch: error: Batch job submission failed: Requested node configuration is not available"
BAD_GRES = "sbatch: error: Batch job submission failed: Invalid generic resource (gres) specification"


@pytest.mark.parametrize("text, minutes", [
    ("30", 30), ("30:30", 31), ("1:00:00", 60), ("1-0", 1440), ("1-2:30", 1590), ("0-1:00:01", 61),
    ("0", None), ("UNLIMITED", None),
])
def test_time_syntax(text, minutes):
    assert sim.parse_time(text) == minutes


@pytest.mark.parametrize("text, mb", [("100", 100), ("1025K", 2), ("2G", 2048), ("2GB", 2048), ("1T", 1 << 20)])
def test_memory_syntax(text, mb):
    assert sim.parse_mem(text) == mb


@pytest.mark.parametrize("args, cluster, message", [
    (["--bogus"], {}, "sbatch: unrecognized option '--bogus'"),
    (["-z"], {}, "sbatch: invalid option -- 'z'"),
    (["-t", "1:2:3:4"], {}, "sbatch: error: Invalid --time specification"),
    (["-t", "1-00:00:01"], {},  # the cpu partition's MaxTime is one day
     "sbatch: error: Batch job submission failed: Requested time limit is invalid (missing or exceeds some limit)"),
    (["-t", "UNLIMITED"], {},
     "sbatch: error: Batch job submission failed: Requested time limit is invalid (missing or exceeds some limit)"),
    (["--mem", "4X"], {}, "sbatch: error: Invalid --mem specification"),
    (["--mem-per-cpu", "1Q"], {}, "sbatch: error: Invalid --mem-per-cpu specification"),
    (["--mem", "1G", "--mem-per-cpu", "1G"], {},
     "sbatch: fatal: --mem, --mem-per-cpu, and --mem-per-gpu are mutually exclusive."),
    (["--mem", "300G"], {}, NODE_CONFIG),  # cpu nodes have 256000 MB
    (["-c", "8", "--mem-per-cpu", "40G"], {}, NODE_CONFIG),
    (["--cpus-per-task=65"], {}, NODE_CONFIG),  # cpu nodes have 64 cores
    (["--cpus-per-task=x"], {}, 'sbatch: error: Invalid numeric value "x" for --cpus-per-task.'),
    (["--gpus=1"], {}, NODE_CONFIG),  # the cpu partition has no GPUs
    (["-p", "gpu", "--gpus-per-node=9"], {}, NODE_CONFIG),  # 8 per node
    (["-p", "gpu", "--gres=gpu:9"], {}, NODE_CONFIG),
    (["-p", "gpu", "--gres=gpu:v100:1"], {}, BAD_GRES),  # the cluster has a100s only
    (["-p", "gpu", "--gres=gpu:1", "--gpus-per-node=1"], {},
     "sbatch: fatal: --gpus-per-node and --gres=gpu are mutually exclusive."),
    (["-p", "gpu", "--gpus=1"], {"gpu_request": "gres"}, BAD_GRES),
    (["-p", "gpu", "--gres=gpu:a100:1"], {"gpu_request": "gpus"}, BAD_GRES),
    (["-p", "nope"], {}, "sbatch: error: Batch job submission failed: Invalid partition name specified"),
    (["-A", "other"], {},
     "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified"),
    (["-A", "cpu_only", "-p", "gpu"], {"accounts": {"proj_a": None, "cpu_only": ["cpu"]}},
     "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified"),
])
def test_refused_submission_prints_one_line_and_runs_nothing(slurm_cluster, tmp_path, args, cluster, message):
    if cluster:
        slurm_cluster.configure(**cluster)
    marker = tmp_path / "ran"
    done = slurm_cluster.run("sbatch", "--parsable", *args, "--wrap", f"touch {marker}", cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", message + "\n")
    assert slurm_cluster.jobs() == [] and not marker.exists()


def test_job_runs_detached_with_slurm_environment(slurm_cluster, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    script = textwrap.dedent("""\
        #!/bin/bash
        #SBATCH --job-name=env_check
        #SBATCH -p cpu
        pwd
        echo "from_submitter=$FROM_SUBMITTER"
        env | grep -E '^(SLURM_|CUDA_VISIBLE_DEVICES=)' | sort
        echo oops >&2
        srun -n2 sh -c 'echo "task $SLURM_PROCID of $SLURM_NTASKS step $SLURM_STEP_ID gpus $CUDA_VISIBLE_DEVICES"' | sort
        """)
    (workdir / "out").mkdir()
    jobid = slurm_cluster.sbatch("-p", "gpu", "--gpus=2", "-c", "4", "--mem", "8G", "-A", "PROJ_B", "-D", str(workdir),
                                 "-o", "out/%x-%j.log", "-e", "err-%j.log", "--export=ALL,EXTRA=1", input=script,
                                 cwd=tmp_path, env={"FROM_SUBMITTER": "yes"})
    job = slurm_cluster.wait(jobid)
    assert job["state"] == "COMPLETED" and job["name"] == "env_check"  # the directive's name
    lines = (workdir / "out" / f"env_check-{jobid}.log").read_text().splitlines()
    assert lines[0] == str(workdir) and "from_submitter=yes" in lines and "SLURM_EXPORT_ENV=ALL,EXTRA=1" in lines
    for expected in [f"SLURM_JOB_ID={jobid}", "SLURM_JOB_NAME=env_check", "SLURM_JOB_PARTITION=gpu",
                     "SLURM_JOB_ACCOUNT=proj_b", "SLURM_CPUS_PER_TASK=4", "SLURM_NTASKS=1", "SLURM_MEM_PER_NODE=8192",
                     f"SLURM_SUBMIT_DIR={tmp_path}", "SLURM_JOB_NUM_NODES=1", "SLURM_NODELIST=gpu001",
                     "SLURM_GPUS_ON_NODE=2", "SLURM_JOB_GPUS=0,1", "CUDA_VISIBLE_DEVICES=0,1"]:
        assert expected in lines
    assert lines[-2:] == ["task 0 of 2 step 0 gpus 0,1", "task 1 of 2 step 0 gpus 0,1"]
    assert (workdir / f"err-{jobid}.log").read_text() == "oops\n"
    assert [s["state"] for s in job["steps"]] == ["COMPLETED"]
    status = slurm_cluster.run("sacct", "-X", "--parsable2", "--noheader", "--format=JobIdRaw,State",
                               "-j", str(jobid))
    assert status.stdout == f"{jobid}|COMPLETED\n"


def test_failed_and_cancelled_jobs(slurm_cluster, tmp_path):
    failed = slurm_cluster.sbatch("--wrap", "exit 3", cwd=tmp_path)
    running = slurm_cluster.sbatch("-J", "sleeper", "--wrap", "sleep 60", cwd=tmp_path)
    assert slurm_cluster.wait(failed)["state"] == "FAILED"
    slurm_cluster.wait(running, states=("RUNNING",))
    queue = slurm_cluster.run("squeue", "--format=%i|%T", "--noheader", "--name", "sleeper")
    assert queue.stdout == f"{running}|RUNNING\n"
    assert slurm_cluster.run("scancel", str(running)).returncode == 0
    assert slurm_cluster.wait(running, timeout=5)["state"] == "CANCELLED"
    sacct = slurm_cluster.run("sacct", "-X", "-P", "-n", "--format=JobIdRaw,State,ExitCode", "-j", f"{failed},{running}")
    # real sacct names who cancelled; the plugin compares the state to "CANCELLED" and misses it
    assert sacct.stdout == f"{failed}|FAILED|3:0\n{running}|CANCELLED by {os.getuid()}|0:15\n"
    queue = slurm_cluster.run("squeue", "--format=%i|%T", "--states=all", "--noheader", "--name", "sleeper")
    assert queue.stdout == f"{running}|CANCELLED\n"


def test_time_limit_kills_the_job_and_its_processes(slurm_cluster, tmp_path):
    slurm_cluster.configure(seconds_per_minute=0.5)  # -t 1 lasts half a second
    pidfile = tmp_path / "child.pid"
    start = time.time()
    jobid = slurm_cluster.sbatch("-t", "1", "--wrap", f"sleep 60 & echo $! > {pidfile}; wait; touch {tmp_path}/late",
                                 cwd=tmp_path)
    job = slurm_cluster.wait(jobid, timeout=10)
    assert job["state"] == "TIMEOUT" and time.time() - start < 8 and not (tmp_path / "late").exists()
    assert ended(int(pidfile.read_text()))  # the background child went with the job's process group


def ended(pid: int, timeout: float = 3) -> bool:
    """Whether the process is gone or a zombie (its reaper may be slow) within `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_injected_faults_hit_the_matching_submissions_only(slurm_cluster, tmp_path):
    slurm_cluster.inject("rule_finetune", "TIMEOUT", count=1, after=0.2)
    slurm_cluster.inject("rule_selection", "FAILED", run=False)
    slurm_cluster.inject("rule_probe", "FAILED")  # runs, then fails
    ids = {comment: slurm_cluster.sbatch("--comment", comment, "--wrap", f"touch {tmp_path / comment}; sleep 2",
                                         cwd=tmp_path)
           for comment in ["rule_finetune_wildcards_x", "rule_selection", "rule_probe", "rule_other"]}
    again = slurm_cluster.sbatch("--comment", "rule_finetune_wildcards_x", "--wrap", "true", cwd=tmp_path)
    states = {c: slurm_cluster.wait(i)["state"] for c, i in ids.items()}
    assert states == {"rule_finetune_wildcards_x": "TIMEOUT", "rule_selection": "FAILED", "rule_probe": "FAILED",
                      "rule_other": "COMPLETED"}
    assert slurm_cluster.wait(again)["state"] == "COMPLETED"  # count=1: only the first finetune
    assert not (tmp_path / "rule_selection").exists() and (tmp_path / "rule_probe").exists()


def test_srun_validates_against_the_allocation(slurm_cluster, tmp_path):
    jobid = slurm_cluster.sbatch("-p", "gpu", "--gpus=1", "-c", "2", "-o", "log", "--wrap",
                                 "srun --gpus=2 true; srun -c 4 true; srun -n1 --cpu-bind=q -c 2 --gpus=1 --nodes=1 true",
                                 cwd=tmp_path)
    job = slurm_cluster.wait(jobid)
    assert (tmp_path / "log").read_text().splitlines() == [
        f"srun: error: Unable to create step for job {jobid}: Invalid generic resource (gres) specification",
        f"srun: error: Unable to create step for job {jobid}: More processors requested than permitted"]
    assert job["state"] == "COMPLETED" and [s["state"] for s in job["steps"]] == ["COMPLETED"]
    outside = slurm_cluster.run("srun", "true")
    assert outside.returncode == 1 and "outside a job allocation" in outside.stderr


def test_plugin_queries_parse_the_simulated_answers(slurm_cluster, tmp_path):
    """The plugin's own helpers, run against the simulator: what it guesses and how it reads status."""
    from snakemake_executor_plugin_slurm import accounts, job_status_query, partitions, utils

    log = logging.getLogger("slurm_sim_test")
    assert accounts.get_account(log) is None  # its `sacct ... | tail -1` reaches sacct as arguments
    assert accounts.validate_account("proj_b", log) == "proj_b"
    with pytest.raises(Exception, match="appears to be invalid"):
        accounts.validate_account("other", log)
    assert partitions.get_default_partition("job", log) == "cpu"
    assert utils.get_max_array_size() == 1000 and job_status_query.get_min_job_age() == 300
    jobid = slurm_cluster.sbatch("--job-name", "run-uuid", "--wrap", "true", cwd=tmp_path)
    slurm_cluster.wait(jobid)
    for query in (job_status_query.query_job_status_sacct("run-uuid"),
                  job_status_query.query_job_status_squeue("run-uuid")):
        status, _ = asyncio.run(job_status_query.query_job_status(query, log))
        assert status == {str(jobid): "COMPLETED"}


SNAKEFILE = """
localrules: all

rule all:
    input: "out/c.txt"

rule a:
    output: "out/a.txt"
    resources: runtime=5, mem_mb=1000, cpus_per_task=2
    shell: "echo a $SLURM_JOB_PARTITION $SLURM_JOB_ACCOUNT $SLURM_CPUS_PER_TASK > {output}"

rule b:
    output: "out/b_{x}.txt"
    resources: slurm_partition="gpu", slurm_account="proj_b", runtime="1h", mem_mb=2000, cpus_per_task=4, gpu=2
    shell: "echo b $SLURM_JOB_ACCOUNT $CUDA_VISIBLE_DEVICES > {output}"

rule c:
    input: "out/a.txt", "out/b_1.txt"
    output: "out/c.txt"
    resources: slurm_partition="gpu", gres="gpu:1", runtime=10, mem_mb=500
    shell: "cat {input} > {output}"
"""

# what makes the plugin poll every second instead of after 40 s (it still adds 10 s to the wait after
# every poll that finds no job finished, so a level of the DAG costs about 12 s)
FAST = ["--latency-wait", "1", "--seconds-between-status-checks", "1", "--slurm-init-seconds-before-status-checks", "1"]


@pytest.mark.e2e
def test_snakemake_slurm_executor_runs_through_the_simulator(slurm_cluster, tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    slurm_cluster.inject("rule_a", "TIMEOUT", run=False)  # the first `a` times out; --retries resubmits it
    run = subprocess.run([sys.executable, "-m", "snakemake", "--executor", "slurm", "--jobs", "4", "--retries", "1",
                          *FAST], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "out/c.txt").read_text() == "a cpu proj_a 2\nb proj_b 0,1\n"
    jobs = {}
    for job in slurm_cluster.jobs():
        jobs.setdefault(job["comment"], []).append(job)
    assert [j["state"] for j in jobs["rule_a"]] == ["TIMEOUT", "COMPLETED"]
    a, (b,), (c,) = jobs["rule_a"][1], jobs["rule_b_wildcards_1"], jobs["rule_c"]

    def has(job, *options):
        return all(o in job["argv"] for o in options)

    # no slurm_account: the plugin's guess fails, it submits without -A and SLURM uses the default account
    assert "-A" not in a["argv"] and a["account"] == "proj_a"
    assert has(a, "-p", "cpu", "-t", "5", "--mem", "1000", "--ntasks=1", "--cpus-per-task=2", "--export=ALL")
    assert has(b, "-A", "proj_b", "-p", "gpu", "-t", "60", "--mem", "2000", "--cpus-per-task=4", "--gpus=2")
    assert "--ntasks=1" not in b["argv"] and b["gpu_indices"] == [0, 1]
    assert has(c, "--gres=gpu:1", "-t", "10", "--cpus-per-task=1") and c["gpus_per_node"] == 1
    assert len({j["name"] for j in slurm_cluster.jobs()}) == 1  # the run's uuid names every job
    for job in (a, b, c):  # the jobstep plugin runs the rule as one srun step
        (step,) = job["steps"]
        assert step["state"] == "COMPLETED" and "-n1" in step["argv"]
    assert "--gpus=2" in b["steps"][0]["argv"] and b["steps"][0]["gpu_indices"] == [0, 1]
    assert getpass.getuser() == a["user"]
