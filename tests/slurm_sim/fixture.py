"""pytest fixture: a simulated SLURM cluster (cluster.py) on PATH for the test and its subprocesses.

    (registered for every test by tests/conftest.py: pytest_plugins = ["slurm_sim.fixture"])

    def test_x(slurm_cluster):
        slurm_cluster.configure(seconds_per_minute=0.05, gpu_request="gpus")
        jobid = slurm_cluster.sbatch("-p", "gpu", "--gpus=1", "--wrap", "nvidia-smi")
        assert slurm_cluster.wait(jobid)["state"] == "COMPLETED"
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from . import cluster as sim

BIN = Path(__file__).resolve().parent / "bin"


class SimCluster:
    """A cluster in `directory`; `env` is what a process needs to use it (also set in os.environ by the fixture)."""

    def __init__(self, directory: Path, **cluster):
        self.dir = Path(directory)
        self.configure(**cluster)
        self.env = {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "SLURMSIM_DIR": str(self.dir),
                    "SLURMSIM_PYTHON": sys.executable}

    def configure(self, **cluster) -> None:
        """Rewrite the cluster (make_cluster's arguments); jobs already recorded stay."""
        sim.make_cluster(self.dir, **cluster)

    def run(self, command: str, *args: str, input: str | None = None, cwd=None, env=None) -> subprocess.CompletedProcess:
        """Run a simulated command through its wrapper in bin/, as the plugin does (`env`: extra variables)."""
        return subprocess.run([str(BIN / command), *args], input=input, cwd=cwd, capture_output=True, text=True,
                              env={**os.environ, **self.env, **(env or {})}, timeout=30)

    def sbatch(self, *args: str, input: str | None = None, cwd=None, env=None) -> int:
        """Submit with --parsable; the job id (AssertionError with sbatch's stderr if it was refused)."""
        done = self.run("sbatch", "--parsable", *args, input=input, cwd=cwd, env=env)
        assert done.returncode == 0, done.stderr
        return int(done.stdout.strip().split(";")[0])

    def jobs(self) -> list[dict]:
        return sim.jobs(self.dir)

    def job(self, jobid) -> dict:
        return sim.read_job(self.dir, jobid)

    def wait(self, jobid, timeout: float = 20, states=sim.FINAL) -> dict:
        """The job's record once its state is in `states` (final states by default)."""
        deadline = time.time() + timeout
        while (job := self.job(jobid))["state"] not in states:
            if time.time() > deadline:
                raise TimeoutError(f"job {jobid} still {job['state']} after {timeout} s")
            time.sleep(0.05)
        return job

    def inject(self, match: str, state: str = "TIMEOUT", count: int = 1, run: bool = True, after=None) -> None:
        sim.inject(self.dir, match, state, count, run, after)

    def shutdown(self, timeout: float = 10) -> None:
        """Cancel what still runs and wait for it to end, so no job outlives the test's directory."""
        live = [j["id"] for j in self.jobs() if j["state"] not in sim.FINAL]
        if live:
            self.run("scancel", *map(str, live))
            for jobid in live:
                self.wait(jobid, timeout)


@pytest.fixture
def slurm_cluster(tmp_path, monkeypatch):
    """The default cluster (partitions cpu*, gpu with 8 a100 per node; accounts proj_a*, proj_b; both GPU
    syntaxes; real time) in tmp_path/slurm, its commands first on PATH."""
    cluster = SimCluster(tmp_path / "slurm")
    for name, value in cluster.env.items():
        monkeypatch.setenv(name, value)
    yield cluster
    cluster.shutdown()
