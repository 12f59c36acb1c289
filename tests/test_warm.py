"""pipeline.warm: a run's jobs as forks of one process that imported torch and the stages once."""
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT

JOB = '''
import os, sys, time
print("argv", sys.argv[1:], "cwd", os.getcwd(), "X", os.environ.get("X"), "warm", "timm" in sys.modules, flush=True)
if sys.argv[1:] == ["threads"]:
    import torch
    from threadpoolctl import threadpool_info
    print("threads", torch.get_num_threads(), sorted({p["num_threads"] for p in threadpool_info()}), flush=True)
if sys.argv[1:] == ["fail"]:
    raise SystemExit("bad input: said in one line")
if sys.argv[1:] == ["crash"]:
    raise RuntimeError("boom")
if sys.argv[1:] == ["exit3"]:
    sys.exit(3)
if sys.argv[1:] == ["sleep"]:
    open("started", "w").write(str(os.getpid()))
    time.sleep(60)
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("warm")
    (folder / "wjob.py").write_text(JOB)
    path = str(folder / "socket")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.warm", "serve", path], cwd=ROOT)
    for _ in range(600):  # bound at once, before its imports (a job connecting then waits for them)
        if os.path.exists(path):
            break
        time.sleep(0.05)
    yield folder, path
    proc.terminate()
    proc.wait(timeout=30)


def _job(folder, path, *args, **env):
    environ = {**os.environ, "PYTHONPATH": str(folder), "X": "1", **env}
    if path is None:
        environ.pop("PIPELINE_WARM_SOCKET", None)
    else:
        environ["PIPELINE_WARM_SOCKET"] = path
    return subprocess.run([sys.executable, "-m", "pipeline.warm", "wjob", *args], cwd=folder, env=environ,
                          capture_output=True, text=True, timeout=120)


def test_a_job_runs_as_a_fork_with_its_own_arguments_directory_environment_and_exit_status(server):
    folder, path = server
    ok = _job(folder, path, "a", "b c")
    assert ok.returncode == 0, ok.stderr
    # the fork saw the client's argv, cwd, environment and import path, and the server's imports (timm)
    assert ok.stdout == f"argv ['a', 'b c'] cwd {folder} X 1 warm True\n"
    fail = _job(folder, path, "fail")
    assert fail.returncode == 1 and fail.stderr.strip() == "bad input: said in one line"
    crash = _job(folder, path, "crash")
    assert crash.returncode == 1 and "RuntimeError: boom" in crash.stderr
    assert _job(folder, path, "exit3").returncode == 3


def test_a_job_gets_the_thread_count_snakemake_gives_it(server):
    """A cold process reads OMP_NUM_THREADS when it imports numpy and torch; the fork applies it to the
    server's thread pools (else two 1-thread jobs would each use every core)."""
    folder, path = server
    warm = _job(folder, path, "threads", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    assert warm.returncode == 0, warm.stderr
    assert warm.stdout.splitlines()[-1] == "threads 1 [1]"


def test_without_a_server_the_job_starts_cold_with_the_same_output(server, tmp_path):
    folder, _ = server
    for path in (None, str(tmp_path / "nobody-listens")):
        cold = _job(folder, path, "a")
        assert cold.returncode == 0 and cold.stdout == f"argv ['a'] cwd {folder} X 1 warm False\n"
        assert _job(folder, path, "exit3").returncode == 3


def test_stopping_the_client_stops_the_job(server):
    folder, path = server
    (folder / "started").unlink(missing_ok=True)
    environ = {**os.environ, "PYTHONPATH": str(folder), "PIPELINE_WARM_SOCKET": path}
    client = subprocess.Popen([sys.executable, "-m", "pipeline.warm", "wjob", "sleep"], cwd=folder, env=environ,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(600):
        if (folder / "started").exists():
            break
        time.sleep(0.1)
    job = int((folder / "started").read_text())
    assert job != client.pid and os.path.exists(f"/proc/{job}")  # the fork, not the client, runs the job
    client.send_signal(signal.SIGTERM)  # what Snakemake does to a job it stops
    _, err = client.communicate(timeout=30)
    assert client.returncode != 0 and "ended without an exit status" in err
    for _ in range(50):
        if not os.path.exists(f"/proc/{job}"):
            break
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{job}")


def test_the_server_ends_with_the_run_that_started_it(tmp_path):
    code = ("import os, sys; from pipeline.warm import start_server; "
            "path = start_server([]); print(path, flush=True)")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PIPELINE_WARM": "1"})
    path = run.stdout.strip()
    assert path.endswith("socket")
    for _ in range(300):  # its parent is gone: it notices within a second, after its imports
        if not os.path.exists(path):
            break
        time.sleep(0.1)
    assert not os.path.exists(path) and not os.path.exists(os.path.dirname(path))  # its temporary folder too
    off = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PIPELINE_WARM": "0"})
    assert off.stdout.strip() == "None"
