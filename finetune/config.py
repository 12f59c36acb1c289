"""Hydra structured config of the fine-tuning stage."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from zoo_training.config import RuntimeConfig, TrainConfig


@dataclass
class ThetaFConfig:
    """Deshpande Fig. 8: the probe set's features during one grid point's fine-tuning."""

    target: Optional[str] = None  # null: no snapshots
    shots: str = "full"
    lr: float = 0.005
    # the probe set whose features are saved (the paper's: per_class_25)
    probe_set: Optional[str] = None
    # when to save them, as fractions of the fine-tuning epochs (the paper: epochs 0, 15 and 30 of 30)
    fractions: List[float] = field(default_factory=lambda: [0.0, 0.5, 1.0])


@dataclass
class FinetuneConfig:
    train: TrainConfig = MISSING
    expert: str = MISSING
    # a checkpoint of this pipeline, or "" with `zoo_file`: the expert named `expert` of that zoo file
    # (zoo_training/zoo.py), fine-tuned at its own input size and statistics
    expert_path: str = ""
    zoo_file: str = ""
    # prepared target datasets: {data_root}/{target}
    data_root: str = MISSING
    targets: List[str] = MISSING
    shots: List[str] = field(default_factory=lambda: ["full"])
    # targets fine-tuned on their full training set (the paper: 8 of 11); null = every target
    full_targets: Optional[List[str]] = None
    # Deshpande Sec. 4.2's lr grid; the best test accuracy over it is the paper's fine-tuned accuracy
    lrs: List[float] = field(default_factory=lambda: [0.01, 0.005, 0.001])
    # the fine-tuning seeds (the benchmark's finetune_seeds): the grid runs once per seed (head and batch order)
    seeds: List[int] = field(default_factory=lambda: [0])
    # per class of each setting's training data, this fraction is held out as a validation set (seeded by
    # `seed`, the same for every fine-tuning seed; data_prep.prepare.validation_split: 5 shots at 0.2 hold out 1
    # of 5) and each run reports val_accuracy on it, for choosing the lr on validation data. 0: the paper's
    # protocol (Sec. 4.2): train on all of it, val_accuracy NaN
    validation_fraction: float = 0.0
    # one JSON record with a row per (target, shots, lr, seed); `{out}.partial` keeps finished rows of a killed job
    out: str = MISSING
    seed: int = 0
    threads: int = 1
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    # Fig. 8: save features of that grid point to theta_f_out (.npz)
    theta_f: ThetaFConfig = field(default_factory=ThetaFConfig)
    theta_f_out: Optional[str] = None


ConfigStore.instance().store(name="finetune_schema", node=FinetuneConfig)
