"""`make run` after a killed run: recognise the dead run's stale Snakemake lock, rerun incomplete jobs.

Snakemake refuses to start while `.snakemake/locks/` holds a lock, and a run killed with SIGKILL never
removes its own. `python -m pipeline run <snakemake args>` records the pid of the Snakemake process it
becomes (`.snakemake/pipeline_run.pid`, kept by `exec`), so the next call can tell a dead run's lock
from a live run's: the first is removed (what `snakemake --unlock` does), the second stops the call.
`--rerun-incomplete` then reruns the jobs the dead run left half-written; the jobs themselves resume
(training from `last.pt`, the fine-tuning grid from `<record>.partial`).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from pipeline.errors import UserError
from pipeline.warm import start_server

PID_FILE = Path(".snakemake") / "pipeline_run.pid"
LOCKS = Path(".snakemake") / "locks"


class RunError(UserError):
    """Another run is still going in this folder."""


def running_pid(workdir: Path) -> int | None:
    """The pid of a live Snakemake run started here by `python -m pipeline run`, or None."""
    path = workdir / PID_FILE
    if not path.is_file():
        return None
    try:
        pid = int(path.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (ValueError, OSError):
        return None
    return pid if b"snakemake" in cmdline and pid != os.getpid() else None


def clear_stale_lock(workdir: Path) -> list[Path]:
    """Remove the locks of a dead run; returns the files removed. Raises RunError while a run is alive."""
    pid = running_pid(workdir)
    if pid is not None:
        raise RunError(f"another run (pid {pid}) is still going in {workdir.resolve()}: wait for it, or stop it first")
    locks = sorted((workdir / LOCKS).glob("*")) if (workdir / LOCKS).is_dir() else []
    for lock in locks:
        lock.unlink()
    return locks


def run(args: list[str], workdir: Path = Path(".")) -> None:
    """Become `snakemake --rerun-incomplete <args>` after clearing a dead run's lock (never returns)."""
    removed = clear_stale_lock(workdir)
    if removed:
        print(f"pipeline: a previous run died; removed its lock ({len(removed)} file(s)) and resuming", file=sys.stderr)
    (workdir / PID_FILE).parent.mkdir(parents=True, exist_ok=True)
    (workdir / PID_FILE).write_text(str(os.getpid()))
    start_server(args)  # the jobs of this run start as forks of one warm process (pipeline.warm)
    os.execv(sys.executable, [sys.executable, "-m", "snakemake", "--rerun-incomplete", *args])
