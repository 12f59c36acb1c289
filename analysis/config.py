"""Hydra structured config of the analysis stage (schema for configs/analysis.yaml)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class AnalysisConfig:
    # which part of the analysis to run: one of analysis.outputs.STEPS (validated in __main__)
    step: str = "tables"
    # outputs go to {results_dir}/tables, {results_dir}/figures and {results_dir}/summary.md
    results_dir: str = "results"
    # per-job JSON records written by the zoo / fine-tune / selection stages (step=tables)
    zoo_records: List[str] = field(default_factory=list)
    finetune_records: List[str] = field(default_factory=list)
    score_records: List[str] = field(default_factory=list)
    multidomain_records: List[str] = field(default_factory=list)
    # Fig. 8: features saved while fine-tuning (finetune theta_f_out files; step=figures)
    theta_f_records: List[str] = field(default_factory=list)
    # a zoo benchmark (step=ground_truth): the ground-truth accuracies and the published correlations (CSV
    # files, pipeline.benchmark.read_ground_truth / read_published_scores); "" for none
    ground_truth: str = ""
    published_scores: str = ""
    # prepared target directories (splits.json, classes.json): dataset meta-features
    target_dirs: List[str] = field(default_factory=list)
    # the expert every gain is measured against (the paper's ImageNet expert), e.g.
    # resnet-generalist: the reference architecture trained on the generalist source
    reference_expert: str = MISSING
    # the main probe set, every protocol's (e.g. per_class_25: at most 25 images per class); score
    # rows without a probe set count as this one
    probe_set: str = MISSING
    # number of selected experts fine-tuned per method (top-k in Fig. 4 and Table 3): its one owner
    top_k: int = 3
    # the benchmark has a multi-domain expert (Table 2, Fig. 3 and 5, selection_eval_multidomain)
    multidomain: bool = False
    # Which Model's model pools: name -> architectures in it (null: every expert); empty: one pool of
    # all (set the whole mapping with `++pools={...}`: Hydra adds keys to a dict only with ++)
    pools: Dict[str, Optional[List[str]]] = field(default_factory=dict)
    # the ground truth of every table (analysis.tables.ground_truth_rows): test (the best lr on test, the
    # paper's) or validation (the lr best on the held-out validation part)
    lr_selection: str = "test"
    # seeds the learned recommenders (Guided Recommendation's factorization machine)
    seed: int = 0


ConfigStore.instance().store(name="analysis_schema", node=AnalysisConfig)
