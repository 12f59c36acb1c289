"""Hydra structured configs of zoo training (and the schedule/architecture groups fine-tuning shares)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class ArchConfig:
    family: str = MISSING  # resnet | densenet
    timm_name: Optional[str] = None  # a stock timm model (paper scale) ...
    kwargs: Dict[str, Any] = field(default_factory=dict)  # ... or the family's constructor arguments


@dataclass
class TrainConfig:
    """SGD with step decay; milestones are fractions of `epochs` (the paper's 30/60 of 90, 15/25 of 30)."""

    epochs: int = MISSING
    # None where the caller supplies it: fine-tuning takes each lr of its grid (finetune `lrs`)
    lr: Optional[float] = None
    milestones: List[float] = MISSING
    batch_size: int = MISSING
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    gamma: float = 0.1
    # learning rate when starting from the generalist's weights (the paper's check-mark experts)
    init_lr: Optional[float] = None
    # drop an epoch's short last batch unless it is the only one (zoo_training.engine.shuffled_batches);
    # the paper does not say, so every image trains every epoch by default
    drop_last: bool = False


@dataclass
class WandbConfig:
    # offline by default: runs are written under the job's run directory, `wandb sync` uploads them
    mode: str = "offline"  # offline | online | disabled
    project: str = "model-zoo-benchmark"


@dataclass
class RuntimeConfig:
    """Where the job runs (zoo_training.runtime): torchrun's environment picks the rank."""

    device: str = "auto"  # auto | cuda | cpu
    bf16: bool = True  # autocast on GPU only; the CPU stays float32
    channels_last: bool = True  # GPU only
    workers: int = 0  # DataLoader processes decoding image files


@dataclass
class ZooTrainingConfig:
    arch: ArchConfig = MISSING
    train: TrainConfig = MISSING
    # expert: one single-domain expert | multidomain: one variant on all sources |
    # domain_experts: split the multi-domain expert `init` into one expert per domain
    step: str = "expert"
    expert: str = MISSING
    source: str = MISSING
    source_dir: str = MISSING
    # weights of the generalist expert to start from; null trains from scratch
    init: Optional[str] = None
    out_dir: str = MISSING
    # resumable state, beside the job and not a Snakemake output
    checkpoint: Optional[str] = None
    seed: int = 0
    threads: int = 1
    # step=multidomain: the variant (shared | multi_bn | adapter), its sources under data_root, and
    # at most per_source_cap images per source per epoch (the paper's 100K, with replacement beyond)
    variant: Optional[str] = None
    sources: List[str] = field(default_factory=list)
    data_root: Optional[str] = None
    per_source_cap: int = 100000
    # step=domain_experts: the expert ids {arch}-{source}-md to write under out_dir, one per source
    experts: List[str] = field(default_factory=list)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)


ConfigStore.instance().store(name="zoo_training_schema", node=ZooTrainingConfig)
