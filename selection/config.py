"""Hydra structured config of the selection stage."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from zoo_training.config import ArchConfig, RuntimeConfig, TrainConfig


@dataclass
class ProbeNetworkConfig:
    """One of RSA/DDS's probe networks (configs/probe_network/<name>.yaml), built by
    zoo_training.architectures.build_probe_network."""

    # a zoo architecture (timm: family resnet / densenet) or family alexnet (torchvision's)
    arch: ArchConfig = MISSING
    # null: random init; a timm pretrained tag (tv_in1k: <timm_name>.tv_in1k) or, for alexnet, an
    # AlexNet_Weights member (IMAGENET1K_V1)
    pretrained: Optional[str] = None
    # the side the network resizes its input to first; null: the dataset's image size
    input_size: Optional[int] = None


@dataclass
class SelectionConfig:
    # features: one forward pass per (target, shots, probe set) -> feature caches of one expert
    # probe_model: RSA/DDS's probe network per (network, target, shots) -> its features on the probe sets
    # scores: every method on the caches -> one JSON record
    # select: features then scores in one process (the DAG's selection job)
    step: str = MISSING
    expert: str = ""
    expert_path: str = ""
    # an expert trained elsewhere: `expert` names an entry of this zoo file (zoo_training/zoo.py) instead of
    # a checkpoint at expert_path; it brings its own preprocessing
    zoo_file: str = ""
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
    # probe-network features: {probe_dir}/{network}/{target}/{shots}/{probe}.npz
    probe_dir: str = ""
    # LGC: random projection size of the last conv layer's per-sample gradients (0 disables)
    lgc_dim: int = 10_000
    # RSA/DDS's probe networks by name (configs/probe_network/<name>.yaml, composed in configs/selection.yaml)
    probe_networks: Dict[str, ProbeNetworkConfig] = field(default_factory=dict)
    # the benchmark's probe networks (its `probe_networks`), the job's identity: step=probe_model trains
    # each of them; step=scores reads the first for plain rsa / dds (a variant names its own `probe_network`)
    probe_network_names: List[str] = field(default_factory=lambda: ["resnet18"])
    # the one fine-tuning recipe of every probe network (step=probe_model)
    probe_train: TrainConfig = MISSING
    # standardise every feature (zero mean, unit variance over the probe set) before the feature scores:
    # Guided Recommendation (Li et al. 2023, Fig. 1) does, else ViTs' feature scales make them outliers
    standardize_features: bool = False
    out: str = ""
    seed: int = 0
    threads: int = 1
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    batch_size: int = 256


ConfigStore.instance().store(name="selection_schema", node=SelectionConfig)
