"""Hydra structured config of the analysis stage (schema for configs/analysis.yaml)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

STEPS = ("tables", "evaluate", "figures", "artifacts")


@dataclass
class AnalysisConfig:
    # which part of the analysis to run: one of STEPS (validated in __main__ for a clean message)
    step: str = "tables"
    # outputs go to {results_dir}/tables and {results_dir}/figures
    results_dir: str = "results"
    # per-job JSON records written by the zoo / fine-tune / selection stages (step=tables)
    zoo_records: List[str] = field(default_factory=list)
    finetune_records: List[str] = field(default_factory=list)
    score_records: List[str] = field(default_factory=list)
    multidomain_records: List[str] = field(default_factory=list)
    # Fig. 8: features saved while fine-tuning (finetune theta_f_out files; step=figures)
    theta_f_records: List[str] = field(default_factory=list)
    # prepared target directories (splits.json, classes.json): dataset meta-features
    target_dirs: List[str] = field(default_factory=list)
    # expert id playing ImageNet's role in the paper, e.g. resnet-generalist (evaluate/figures)
    generalist: str = MISSING
    # number of selected experts fine-tuned per method (top-3 in Fig. 4 and Table 3)
    top_k: int = 3
    # the benchmark has a multi-domain expert (step=artifacts: Table 2, Fig. 3 and 5)
    multidomain: bool = False
    # Which Model's model pools: name -> architectures in it (null: every expert); empty: one pool of
    # all (set the whole mapping with `++pools={...}`: Hydra adds keys to a dict only with ++)
    pools: Dict[str, Optional[List[str]]] = field(default_factory=dict)
    # seeds the learned recommenders (Guided Recommendation's factorization machine)
    seed: int = 0


ConfigStore.instance().store(name="analysis_schema", node=AnalysisConfig)
