"""Warm start of a run's jobs: one server imports torch, timm and the stages once; each job is a fork of it.

On 2 CPU cores a mini job spent about 6 s importing (torch 2.5 s; timm pulls in torchvision, whose ops import
torch._dynamo, 2.5 s; wandb through timm 0.6 s) before any work: close to 40% of `make run`. `python -m
pipeline run` (`make run`) starts the server for a run on this machine and every job of that run asks it for a
fork instead of starting Python anew:

    python -m pipeline.warm serve <socket>       the server (pipeline.resume.run starts it; it ends with the run)
    python -m pipeline.warm <module> <args...>   a job: forked by the server of $PIPELINE_WARM_SOCKET, else exactly
                                                 `python -m <module> <args...>` (os.execv): the cold path

The job's fork gets the client's stdin/stdout/stderr (passed over the socket), working directory, environment
and arguments, runs the module as `__main__` (runpy, like `python -m`) and reports its exit status, which the
client exits with. A signal to the client (Snakemake stopping a job) goes to the job's process group; a client
that dies takes the job with it. The server never runs torch code, so each fork starts as a fresh process would
(no threads, no CUDA context). Jobs on other machines (a cluster run) cannot reach the socket and start cold.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sys

ENV = "PIPELINE_WARM_SOCKET"
# imported once by the server: what the stages' jobs would each import (a module missing here is skipped)
PRELOAD = ("torch", "timm", "hydra", "pandas", "scipy.stats", "sklearn.decomposition", "zoo_training.engine",
           "zoo_training.experts", "zoo_training.multidomain", "zoo_training.zoo", "finetune.run", "selection.run",
           "selection.features", "selection.probe_model", "data_prep.prepare", "analysis.outputs")
_MAX_REQUEST = 1 << 22


def serve(path: str, parent: int | None = None) -> None:
    """Listen on ``path``, import PRELOAD, then fork one child per request until ``parent`` (default: the
    process that started the server) is gone. Connections made while importing wait in the backlog."""
    import importlib

    parent = os.getppid() if parent is None else parent
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(128)
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # finished jobs are reaped by the kernel
    server.settimeout(1.0)
    try:
        while os.getppid() == parent:  # the run ended: the server was handed to init
            try:
                conn, _ = server.accept()
            except socket.timeout:
                continue
            sys.stdout.flush(), sys.stderr.flush()
            if os.fork() == 0:
                server.close()
                _job(conn)  # never returns
            conn.close()
    finally:
        server.close()
        if os.path.exists(path):
            os.unlink(path)
        _remove_quiet_folder(os.path.dirname(path))


def _remove_quiet_folder(folder: str) -> None:
    """Remove start_server's temporary folder when its server.log is empty (a log with a message stays)."""
    log = os.path.join(folder, "server.log")
    if os.path.basename(folder).startswith("pipeline-warm-") and os.path.isfile(log) and not os.path.getsize(log):
        os.unlink(log)
        os.rmdir(folder)


def start_server(args: list[str]) -> str | None:
    """Start the server of a run on this machine (`python -m pipeline run`), in its own temporary folder, and
    name it in $PIPELINE_WARM_SOCKET for the run's jobs; returns its socket path. None (no server) when
    $PIPELINE_WARM is 0 or the run sends its jobs elsewhere (an --executor or a cluster profile)."""
    import subprocess
    import tempfile
    import time

    if os.environ.get("PIPELINE_WARM", "1") == "0" or any(a.startswith("--executor") or "slurm" in a for a in args):
        return None
    folder = tempfile.mkdtemp(prefix="pipeline-warm-")
    path = os.path.join(folder, "socket")
    with open(os.path.join(folder, "server.log"), "wb") as log:
        subprocess.Popen([sys.executable, "-m", "pipeline.warm", "serve", path], stdin=subprocess.DEVNULL, stdout=log,
                         stderr=log, start_new_session=True)
    for _ in range(200):  # bound before it imports: a job connecting early waits in the backlog
        if os.path.exists(path):
            break
        time.sleep(0.05)
    os.environ[ENV] = path
    return path


def _job(conn: socket.socket) -> None:
    """In the fork: become the client's job, run it, report its exit status, exit."""
    import atexit
    import runpy
    import threading

    code, finished = 1, threading.Event()
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the job's own subprocesses are waited for
        conn.settimeout(None)
        message, fds, _, _ = socket.recv_fds(conn, _MAX_REQUEST, 3)
        request = json.loads(message)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        sys.stdin, sys.stdout, sys.stderr = (os.fdopen(0, "r", closefd=False), os.fdopen(1, "w", buffering=1, closefd=False),
                                             os.fdopen(2, "w", buffering=1, closefd=False))
        os.setpgrp()  # the client signals this group
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        _thread_limits(os.environ)
        conn.sendall(json.dumps({"pid": os.getpid()}).encode() + b"\n")
        threading.Thread(target=_die_with_client, args=(conn, finished), daemon=True).start()
        # the import path `python -m` would have there: the working directory first, then $PYTHONPATH
        extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
        sys.path[:1] = [request["cwd"], *[p for p in extra if p not in sys.path]]
        sys.argv = list(request["argv"])
        try:
            runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as end:
            code = end.code if isinstance(end.code, int) else (0 if end.code is None else 1)
            if end.code is not None and not isinstance(end.code, int):
                print(end.code, file=sys.stderr)
        except BaseException:  # noqa: BLE001  (as the interpreter: traceback, status 1)
            import traceback

            traceback.print_exc()
            code = 1
        atexit._run_exitfuncs()
        sys.stdout.flush(), sys.stderr.flush()
        finished.set()
        conn.sendall(json.dumps({"exit": code}).encode() + b"\n")
    finally:
        os._exit(code)


def _thread_limits(env) -> None:
    """The job's thread counts (Snakemake sets OMP_NUM_THREADS and the BLAS variables to the job's threads),
    which a new process reads when it imports numpy and torch, applied to the pools the server already made:
    else every job would use all cores and two jobs on two cores would fight over them."""
    threads = env.get("OMP_NUM_THREADS")
    if not threads or not threads.isdigit() or int(threads) < 1:
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=int(threads))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(threads))


def _die_with_client(conn: socket.socket, finished) -> None:
    """The client went away (killed) before the job finished: end the job and its processes."""
    try:
        conn.recv(1)
    except OSError:
        pass
    if not finished.is_set():
        os.killpg(os.getpid(), signal.SIGTERM)


def run(module: str, args: list[str]) -> None:
    """Run ``python -m module args`` as a fork of the run's server when one answers, else exec it cold.
    Exits with the job's status."""
    path = os.environ.get(ENV)
    conn = None
    if path:
        try:
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.connect(path)
        except OSError:
            conn = None
    if conn is None:
        os.execv(sys.executable, [sys.executable, "-m", module, *args])
    request = json.dumps({"argv": [module, *args], "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    socket.send_fds(conn, [request], [0, 1, 2])
    stream = conn.makefile("rb")
    started = stream.readline()
    if not started:
        raise SystemExit(f"pipeline.warm: the server at {path} did not start {module}")
    pid = json.loads(started)["pid"]
    def forward(number, frame):
        try:
            os.killpg(pid, number)
        except ProcessLookupError:  # already gone
            pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    ended = stream.readline()
    if not ended:  # killed before it could say
        raise SystemExit(f"pipeline.warm: {module} (pid {pid}) ended without an exit status (killed by a signal?)")
    raise SystemExit(json.loads(ended)["exit"])


def main(argv: list[str]) -> None:
    if argv[:1] == ["serve"] and len(argv) == 2:
        serve(argv[1])
    elif argv and not argv[0].startswith("-"):
        run(argv[0], argv[1:])
    else:
        raise SystemExit("usage: python -m pipeline.warm serve <socket> | python -m pipeline.warm <module> <args...>")


if __name__ == "__main__":
    main(sys.argv[1:])
