"""Hydra structured config of the selection stage."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from zoo_training.config import ArchConfig, RuntimeConfig, TrainConfig


@dataclass
class SelectionConfig:
    # features: one forward pass per (target, shots, probe set) -> feature caches of one expert
    # probe_model: RSA/DDS's small network per (target, shots) -> its features on the probe sets
    # scores: every method on the caches -> one JSON record
    # select: features then scores in one process (the DAG's selection job)
    step: str = MISSING
    expert: str = ""
    expert_path: str = ""
    data_root: str = MISSING
    targets: List[str] = MISSING
    shots: List[str] = field(default_factory=lambda: ["full"])
    # the paper's probe set of every shot setting (e.g. per_class_25): LGC's gradients and the source features
    probe_set: str = MISSING
    # registered score names, each run with its defaults ...
    methods: List[str] = MISSING
    # user score modules (Python files) imported before scoring: selection.scores.load_plugins
    plugins: List[str] = field(default_factory=list)
    # ... and named variants: {name: {score: <registered>, options: {...}}}, e.g. PCA for any feature score
    variants: Any = None
    # expert caches: {cache_dir}/{target}/{shots}/{probe}.npz and {cache_dir}/source.npz
    cache_dir: str = ""
    # the expert's source dataset (Domain Similarity); empty skips source features
    source_dir: str = ""
    # probe-model features: {probe_dir}/{target}/{shots}/{probe}.npz
    probe_dir: str = ""
    # LGC: random projection size of the last conv layer's per-sample gradients (0 disables)
    lgc_dim: int = 10_000
    # RSA/DDS's probe network and its training recipe (step=probe_model)
    probe_arch: ArchConfig = MISSING
    probe_train: TrainConfig = MISSING
    out: str = ""
    seed: int = 0
    threads: int = 1
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    batch_size: int = 256


ConfigStore.instance().store(name="selection_schema", node=SelectionConfig)
