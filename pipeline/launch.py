"""python -m pipeline.launch --gpus N --ranks R [--node-gpus M] <module> <overrides>: how every job
that can use a GPU starts (rules/common.smk `stage_shell`).

- Its GPUs. Under SLURM (SLURM_JOB_ID set) the allocation's CUDA_VISIBLE_DEVICES stands. On one node
  shared by Snakemake's jobs (`--resources gpu=M`), the job leases N of the node's M GPUs: one lock
  file per GPU (`flock`, held until the job's last process exits, also across a crash), the first
  N free ones become its CUDA_VISIBLE_DEVICES. Snakemake never starts jobs wanting more than M GPUs
  together, so a lease never waits.
- No silent CPU fallback: a job given N GPUs that sees fewer stops with one line saying what it asked
  for and what it found, before anything runs. With N = 0 the stage runs with `runtime.device=cpu`.
- Its processes: `torchrun --standalone --nproc_per_node=R` when R > 1 (one rank per GPU, or CPU
  ranks with device=cpu), else `python -m`.
"""
from __future__ import annotations

import argparse
import fcntl
import os
import sys
import tempfile
from pathlib import Path

_HELD: list[int] = []  # lock file descriptors: inherited by the job (exec), released when it ends


class LaunchError(Exception):
    """A job that cannot start as asked (its message is the one line printed)."""


def lease_dir() -> Path:
    """Where the GPU locks of this node live: $GPU_LEASE_DIR, else one folder in the temp dir that
    every user's runs share (the node's GPUs are shared too)."""
    path = Path(os.environ.get("GPU_LEASE_DIR") or Path(tempfile.gettempdir()) / "pipeline-gpu-leases")
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o1777)
    return path


def lease_gpus(count: int, node_gpus: int, directory: Path | None = None) -> list[int]:
    """Lock `count` of the node's `node_gpus` GPUs no other job holds; returns their indices. The
    locks stay held by this process and, through exec, by the job. Raises LaunchError when fewer
    than `count` are free (another run on the same node holds them)."""
    directory = directory or lease_dir()
    held: dict[int, int] = {}  # GPU index -> its lock's descriptor
    for index in range(node_gpus):
        if len(held) == count:
            break
        fd = os.open(directory / f"gpu{index}.lock", os.O_CREAT | os.O_RDONLY, 0o644)  # flock needs no write
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        held[index] = fd
    if len(held) < count:
        for fd in held.values():
            os.close(fd)
        raise LaunchError(f"this job needs {count} GPU(s) but only {len(held)} of the node's {node_gpus} are free "
                          f"(locks in {directory}); is another run using this node's GPUs? Give each run its own "
                          "--resources gpu=N that together fit the node")
    for fd in held.values():
        os.set_inheritable(fd, True)
    _HELD.extend(held.values())
    taken = list(held)
    return taken


def visible_gpus() -> int:
    """CUDA devices this process sees (torch, after CUDA_VISIBLE_DEVICES is set)."""
    import torch

    return torch.cuda.device_count()


def command(module: str, overrides: list[str], ranks: int, device: str) -> list[str]:
    """The job's command line: its stage under torchrun (ranks > 1), else through pipeline.warm (a fork of the
    run's warm server when there is one, else python -m), on `device`."""
    head = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}", "-m"]
            if ranks > 1 else [sys.executable, "-m", "pipeline.warm"])
    return [*head, module, *overrides, f"runtime.device={device}"]


def prepare(gpus: int, ranks: int, node_gpus: int, env: dict) -> str:
    """Assign the job's GPUs in `env` (CUDA_VISIBLE_DEVICES) and check it sees them; returns the
    device its stage runs on ("cuda" or "cpu"). Raises LaunchError."""
    if ranks < 1 or gpus < 0 or (gpus and ranks not in (1, gpus)):
        raise LaunchError(f"--gpus {gpus} --ranks {ranks}: a job runs one rank per GPU, or one process on one GPU")
    if not gpus:
        return "cpu"
    if "SLURM_JOB_ID" not in env:
        if gpus > node_gpus:
            raise LaunchError(f"this job needs {gpus} GPU(s) but the node has {node_gpus} (--resources gpu={node_gpus})")
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, lease_gpus(gpus, node_gpus)))
    os.environ["CUDA_VISIBLE_DEVICES"] = env.get("CUDA_VISIBLE_DEVICES", "")
    found = visible_gpus()
    if found < gpus:
        raise LaunchError(f"this job was given {gpus} GPU(s) (CUDA_VISIBLE_DEVICES={env.get('CUDA_VISIBLE_DEVICES')!r}) "
                          f"but sees {found}; to run on the CPU on purpose: --config device=cpu")
    return "cuda"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.launch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus", type=int, default=0, help="GPUs of the job")
    parser.add_argument("--ranks", type=int, default=1, help="processes (torchrun ranks)")
    parser.add_argument("--node-gpus", type=int, default=0, help="GPUs of the node (--resources gpu), to lease from")
    parser.add_argument("module")
    parser.add_argument("overrides", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    env = dict(os.environ)
    try:
        device = prepare(args.gpus, args.ranks, args.node_gpus, env)
    except LaunchError as err:
        raise SystemExit(f"pipeline.launch: error: {err}") from None
    cmd = command(args.module, args.overrides, args.ranks, device)
    os.execve(cmd[0], cmd, env)


if __name__ == "__main__":
    main(sys.argv[1:])
