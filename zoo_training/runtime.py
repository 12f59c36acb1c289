"""Where a training job runs: device, DDP rank, precision, memory format, and its run logger.

A job started by `torchrun` finds `LOCAL_RANK`, `RANK` and `WORLD_SIZE` in its environment
(never `SLURM_PROCID`: one SLURM task runs torchrun, which starts the ranks). On a GPU it
trains with bf16 autocast and channels_last; on the CPU it keeps float32 and the default
layout, so CPU runs stay bit-for-bit reproducible.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from pipeline.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    device: torch.device = torch.device("cpu")
    rank: int = 0
    world_size: int = 1
    bf16: bool = False
    channels_last: bool = False
    # DataLoader worker processes for image files (0: load in the training process)
    workers: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def to_device(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cuda = self.device.type == "cuda"
        images = images.to(self.device, non_blocking=cuda)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, labels.to(self.device, non_blocking=cuda)

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def all_sum(self, *values: float) -> list[float]:
        """Sum numbers over the ranks (identity on one process)."""
        if not self.distributed:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()


CPU = Runtime()


class DeviceError(UserError):
    """A job asked for a device it cannot see."""


def runtime_from_env(device: str = "auto", bf16: bool = True, channels_last: bool = True, workers: int = 0) -> Runtime:
    """The runtime of this process; joins the process group when started by torchrun.

    `device`: "auto" (the GPU of LOCAL_RANK when CUDA is available, else the CPU), "cuda" or "cpu".
    The pipeline's jobs say "cuda" or "cpu" (`pipeline.launch` assigns their GPUs through
    CUDA_VISIBLE_DEVICES). Raises DeviceError (one line) for "cuda" without enough visible GPUs.
    """
    if device not in ("auto", "cuda", "cpu"):
        raise DeviceError(f"runtime.device must be auto, cuda or cpu; got {device!r}")
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    world_size, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if use_cuda and torch.cuda.device_count() <= local_rank:
        raise DeviceError(f"runtime.device=cuda on local rank {local_rank}, but torch sees {torch.cuda.device_count()} "
                          f"CUDA device(s) (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); "
                          "runtime.device=cpu runs on the CPU on purpose")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    runtime = Runtime(
        device=torch.device("cuda", local_rank) if use_cuda else torch.device("cpu"),
        rank=rank,
        world_size=world_size,
        bf16=bf16 and use_cuda,
        channels_last=channels_last and use_cuda,
        workers=workers,
    )
    if runtime.is_main:
        log.info("runtime: %s, %d process(es), bf16=%s, channels_last=%s", runtime.device, world_size,
                 runtime.bf16, runtime.channels_last)
    return runtime


def shutdown(runtime: Runtime) -> None:
    if runtime.distributed and dist.is_initialized():
        dist.destroy_process_group()


class RunLogger:
    """Per-epoch metrics to Weights & Biases (offline by default, files inside the run directory)
    from the main rank only; `mode="disabled"` logs nothing (the mini benchmark: wandb's start-up
    costs seconds per job on a laptop)."""

    def __init__(self, runtime: Runtime, mode: str, project: str, name: str, run_dir: str | Path, config: dict):
        if mode not in ("offline", "online", "disabled"):
            raise ValueError(f"wandb mode must be offline, online or disabled; got {mode!r}")
        self._run = None
        if runtime.is_main and mode != "disabled":
            import wandb

            Path(run_dir).mkdir(parents=True, exist_ok=True)
            self._run = wandb.init(project=project, name=name, dir=str(run_dir), mode=mode, config=config,
                                   reinit=True)

    def log(self, metrics: dict) -> None:
        if self._run is not None:
            self._run.log(metrics)

    def finish(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None
