"""Hydra structured config of the fine-tuning stage."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from zoo_training.config import RuntimeConfig, TrainConfig


@dataclass
class FinetuneConfig:
    train: TrainConfig = MISSING
    expert: str = MISSING
    expert_path: str = MISSING
    # prepared target datasets: {data_root}/{target}
    data_root: str = MISSING
    targets: List[str] = MISSING
    shots: List[str] = field(default_factory=lambda: ["full"])
    # targets fine-tuned on their full training set (the paper: 8 of 11); null = every target
    full_targets: Optional[List[str]] = None
    # the paper's grid; the best test accuracy over it is the fine-tuned accuracy
    lrs: List[float] = field(default_factory=lambda: [0.01, 0.005, 0.001])
    # one JSON record with a row per (target, shots, lr); `{out}.partial` keeps finished rows of a killed job
    out: str = MISSING
    seed: int = 0
    threads: int = 1
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)


ConfigStore.instance().store(name="finetune_schema", node=FinetuneConfig)
