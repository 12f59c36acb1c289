"""The one training engine: zoo training and fine-tuning differ only in hyperparameters.

Structure after torchvision's `references/classification/train.py`:
`train_one_epoch` / `evaluate` / `fit`, a progress line with throughput and ETA,
and a resumable checkpoint holding model, optimizer, scheduler and epoch.
The checkpoint (`last.pt`) is written atomically beside the job, never as a
Snakemake output, so a killed job resumes where it stopped.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from zoo_training.runtime import CPU, RunLogger, Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SGDSchedule:
    """SGD with step decay: lr x `gamma` at each epoch of `milestones`."""

    lr: float
    epochs: int
    milestones: tuple[int, ...]
    batch_size: int
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    gamma: float = 0.1
    drop_last: bool = False


def milestones_from_fractions(epochs: int, fractions: list[float] | tuple[float, ...]) -> tuple[int, ...]:
    """Decay epochs as fractions of the run: (0.5, 0.83) of 30 epochs gives the paper's (15, 25)."""
    return tuple(sorted({max(1, round(f * epochs)) for f in fractions if round(f * epochs) < epochs}))


def schedule_from(train, lr: float | None = None) -> SGDSchedule:
    """The schedule of a `TrainConfig` (milestones as fractions of the epochs); `lr` overrides its lr."""
    return SGDSchedule(
        lr=lr if lr is not None else train.lr,
        epochs=train.epochs,
        milestones=milestones_from_fractions(train.epochs, list(train.milestones)),
        batch_size=train.batch_size,
        momentum=train.momentum,
        weight_decay=train.weight_decay,
        nesterov=train.nesterov,
        gamma=train.gamma,
        drop_last=train.drop_last,
    )


def set_determinism(threads: int) -> None:
    """Same config and seed, same numbers (on the CPU, for a fixed thread count)."""
    torch.set_num_threads(max(1, threads))
    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False


Batch = Tuple[Optional[int], torch.Tensor]  # (domain or None, indices into that domain's data)


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator, drop_last: bool = False) -> list[Batch]:
    """One epoch of a single-domain dataset: a seeded permutation cut into global batches. With
    `drop_last`, a short last batch is dropped unless it is the epoch's only one (torchvision's and
    timm's training loaders drop it always): BatchNorm on a few images at 1 x 1 spatial size (DenseNet-169's
    last block at 32 px) turns near-equal features into gradients of ~1e11."""
    order = torch.randperm(n, generator=generator)
    batches = [(None, order[i : i + batch_size]) for i in range(0, n, batch_size)]
    if drop_last and len(batches) > 1 and len(batches[-1][1]) < batch_size:
        batches.pop()
    return batches


class _PlannedBatches(torch.utils.data.Dataset):
    """This rank's share of an epoch plan; item j loads batch j whole (in a DataLoader worker)."""

    def __init__(self, datasets: Sequence, plan: list[Batch], runtime: Runtime):
        self.datasets, self.runtime = datasets, runtime
        # every rank takes the same batches (DDP steps together), a disjoint slice of each
        self.plan = [(d, index[runtime.rank :: runtime.world_size]) for d, index in plan
                     if len(index) >= runtime.world_size]

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, j: int):
        domain, index = self.plan[j]
        images, labels = self.datasets[domain or 0].batch(index)
        return domain, images, labels


def _batches(datasets: Sequence, plan: list[Batch], runtime: Runtime, seed: int) -> Iterable:
    planned = _PlannedBatches(datasets, plan, runtime)
    if runtime.workers == 0:
        return (planned[j] for j in range(len(planned)))
    return torch.utils.data.DataLoader(
        planned, batch_size=None, shuffle=False, num_workers=runtime.workers,
        pin_memory=runtime.device.type == "cuda", generator=torch.Generator().manual_seed(seed),
    )


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (the model itself otherwise)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def train_one_epoch(
    model: nn.Module,
    datasets: Sequence,
    plan: list[Batch],
    optimizer: torch.optim.Optimizer,
    runtime: Runtime = CPU,
    seed: int = 0,
    set_domain: Callable[[nn.Module, int], None] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> tuple[float, int]:
    """One pass over an epoch plan; returns (mean loss over all ranks, images seen by all ranks).
    `model` may be DDP-wrapped; `set_domain` gets the unwrapped model."""
    model.train()
    criterion = nn.CrossEntropyLoss()
    total, seen, steps = 0.0, 0, len(plan)
    for step, (domain, images, labels) in enumerate(_batches(datasets, plan, runtime, seed)):
        if domain is not None:
            set_domain(unwrap(model), domain)  # the domain modules live in the model, not its DDP wrapper
        images, labels = runtime.to_device(images, labels)
        with runtime.autocast():
            loss = criterion(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(labels)
        seen += len(labels)
        if progress:
            progress(step + 1, steps, total / seen)
    total, seen = runtime.all_sum(total, seen)
    return total / max(seen, 1), int(seen)


@torch.no_grad()
def evaluate(model: nn.Module, data, batch_size: int = 256, runtime: Runtime = CPU) -> float:
    """Top-1 accuracy in percent (each rank evaluates a slice; counts are summed). NaN when the model
    outputs NaN or inf on any image (a diverged run): the argmax of NaN would read as an accuracy."""
    model.eval()
    if hasattr(data, "augmented"):
        data = data.augmented(False)
    correct, count, diverged = 0, 0, 0
    for start in range(runtime.rank * batch_size, len(data), batch_size * runtime.world_size):
        images, labels = runtime.to_device(*data.batch(torch.arange(start, min(start + batch_size, len(data)))))
        with runtime.autocast():
            outputs = model(images)
            correct += (outputs.argmax(1) == labels).sum().item()
            diverged += int(not torch.isfinite(outputs).all().item())
        count += len(labels)
    correct, count, diverged = runtime.all_sum(correct, count, diverged)
    return float("nan") if diverged else 100.0 * correct / max(count, 1)


def _save_atomic(state: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def fit(
    model: nn.Module,
    train,
    schedule: SGDSchedule,
    seed: int,
    test=None,
    checkpoint: Path | None = None,
    name: str = "train",
    runtime: Runtime = CPU,
    logger: RunLogger | None = None,
    plan: Callable[[torch.Generator], list[Batch]] | None = None,
    set_domain: Callable[[nn.Module, int], None] | None = None,
    epoch_hook: Callable[[int, nn.Module], None] | None = None,
) -> dict:
    """Train `model` in place with `schedule`; returns {'test_accuracy', 'seconds', 'history'}.

    `train` is one dataset (ImageArrays / ImageFiles), or a list of domains with a `plan`
    (generator -> [(domain, indices)], single-domain batches; see zoo_training.multidomain)
    and `set_domain`; then `test` is a list too and 'test_accuracy' a list per domain.
    `schedule.batch_size` is the global batch, split over the DDP ranks.

    With `checkpoint`, the state after every epoch goes to that file (main rank, atomically)
    and a run that finds it resumes from it. Shuffling is seeded per epoch, so a resumed run
    ends with the same weights as an uninterrupted one.

    `epoch_hook(epoch, model)` runs before the first epoch (epoch 0) and after every epoch
    (e.g. fine-tuning saves the probe set's features for Deshpande Fig. 8).
    """
    datasets = list(train) if plan is not None else [train]
    datasets = [d.augmented(True) if hasattr(d, "augmented") else d for d in datasets]
    if plan is None:
        plan = lambda generator: shuffled_batches(len(datasets[0]), schedule.batch_size, generator,  # noqa: E731
                                                  schedule.drop_last)
    model = runtime.prepare(model)
    net = model
    if runtime.distributed:
        # domain-specific parameters sit idle on other domains' batches
        net = DistributedDataParallel(model, device_ids=[runtime.device.index] if runtime.device.type == "cuda" else None,
                                      find_unused_parameters=set_domain is not None)
    optimizer = torch.optim.SGD(
        net.parameters(),
        lr=schedule.lr,
        momentum=schedule.momentum,
        weight_decay=schedule.weight_decay,
        nesterov=schedule.nesterov,
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(schedule.milestones), gamma=schedule.gamma)
    start_epoch, history, seconds = 0, [], 0.0
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, map_location=runtime.device, weights_only=True)
        if state["schedule"] != asdict(schedule) or state["seed"] != seed:
            raise ValueError(f"{checkpoint} was written with another schedule or seed; delete it to start over")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, history, seconds = state["epoch"], state["history"], state["seconds"]
        if runtime.is_main:
            log.info("%s: resumed from %s at epoch %d/%d", name, checkpoint, start_epoch, schedule.epochs)

    if epoch_hook is not None and start_epoch == 0:
        epoch_hook(0, model)
    for epoch in range(start_epoch, schedule.epochs):
        began = time.perf_counter()
        epoch_seed = seed * 100_003 + epoch
        generator = torch.Generator().manual_seed(epoch_seed)
        loss, images = train_one_epoch(net, datasets, plan(generator), optimizer, runtime, epoch_seed, set_domain)
        scheduler.step()
        took = time.perf_counter() - began
        seconds += took
        lr = optimizer.param_groups[0]["lr"]
        history.append({"epoch": epoch + 1, "loss": loss, "lr": lr, "images_per_second": images / took})
        if logger is not None:
            logger.log(history[-1])
        if runtime.is_main:
            log.info("%s: epoch %d/%d loss %.4f lr %.4g %.0f img/s eta %.1fs", name, epoch + 1, schedule.epochs,
                     loss, lr, images / took, took * (schedule.epochs - epoch - 1))
        if checkpoint is not None and runtime.is_main:
            _save_atomic(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "epoch": epoch + 1,
                    "history": history,
                    "seconds": seconds,
                    "schedule": asdict(schedule),
                    "seed": seed,
                },
                checkpoint,
            )
        if epoch_hook is not None:
            epoch_hook(epoch + 1, model)
        runtime.barrier()
    if test is None:
        accuracy = float("nan")
    elif isinstance(test, (list, tuple)):
        accuracy = []
        for domain, data in enumerate(test):
            set_domain(model, domain)
            accuracy.append(evaluate(model, data, runtime=runtime))
    else:
        accuracy = evaluate(model, test, runtime=runtime)
    if logger is not None:
        logger.log({"test_accuracy": accuracy} if not isinstance(accuracy, list) else
                   {f"test_accuracy/{d}": a for d, a in enumerate(accuracy)})
    return {"test_accuracy": accuracy, "seconds": seconds, "history": history}
