"""Every number the README states about a config comes from that config: each claim below is found
exactly once in README.md and equals the value the shipped configs compose to."""
import re

import pytest
import yaml

from conftest import CONFIGS, ROOT, compose_stage
from pipeline.layout import zoo_experts
from test_dag import MINI_JOBS, PAPER_JOBS, PAPER_SLURM_JOBS

README = (ROOT / "README.md").read_text()
MINI = yaml.safe_load((CONFIGS / "benchmark" / "mini.yaml").read_text())


def _mini_target_per_class():
    return yaml.safe_load((CONFIGS / "dataset" / f"{MINI['targets'][0]}.yaml").read_text())["train_per_class"]


# (pattern with one group per number, the numbers the configs give)
CLAIMS = [
    (r"`make run` takes \*\*[^*]+\*\* of wall time \((\d+)\s+jobs", lambda: [MINI_JOBS]),
    (r"\*\*Shots\*\*: full \((\d+) per class\)", lambda: [_mini_target_per_class()]),
    (r"\*\*Zoo\*\* \((\d+) experts\)", lambda: [len(zoo_experts(MINI["architectures"], MINI["sources"], MINI["generalist"]))]),
    (r"lr (0\.1) with step decay, (\d+) epochs\s+\(`configs/train/zoo_mini\.yaml`\)",
     lambda: [compose_stage("zoo_training", "mini", "arch=resnet_mini").train.lr,
              compose_stage("zoo_training", "mini", "arch=resnet_mini").train.epochs]),
    (r"\((\d+) images per source per epoch,\s+`configs/preset/mini/multidomain\.yaml`\)",
     lambda: [compose_stage("multidomain", "mini", "arch=resnet_mini").per_source_cap]),
    (r"lr grid ([\d.]+) / ([\d.]+) / ([\d.]+), Nesterov", lambda: list(compose_stage("finetune", "mini").lrs)),
    (r"fine-tuned accuracy\. (\d+) epochs in\s+the mini benchmark", lambda: [compose_stage("finetune", "mini").train.epochs]),
    (r"The mini grid runs with (\d+)\s+fine-tuning seeds", lambda: [MINI["finetune_seeds"]]),
    (r"holds out (\d+)% of each\s+class of every setting's training data",
     lambda: [round(100 * compose_stage("finetune", "mini").validation_fraction)]),
    (r"at most (\d+) images per class\s+\(`per_class_25`\)", lambda: [MINI["probe_sets"]["per_class"]]),
    (r"also (\d+) per class and all images \(Deshpande Fig\. 7\) and (\d+) PARC\s+draws of (\d+) images",
     lambda: [*MINI["probe_sets"]["ablation_per_class"], MINI["probe_sets"]["parc_draws"],
              compose_stage("data_prep", "mini", "dataset=mosaic_target").parc_probe_size]),
    (r"(\d+) epochs at lr ([\d.]+) decayed x0\.1\s+every (\d+) epochs, SGD momentum 0\.9, weight decay 1e-4, global batch (\d+)",
     lambda: (lambda t: [t.epochs, t.lr, round(t.milestones[0] * t.epochs), t.batch_size])(
         compose_stage("zoo_training", "paper", "arch=resnet101").train)),
    (r"variants on (\d+)K images per source per epoch",
     lambda: [compose_stage("multidomain", "paper", "arch=resnet101").per_source_cap // 1000]),
    (r"fine-tuning grid of Sec\. 4\.2\s+\((\d+) epochs, `finetune_paper\.yaml`\)",
     lambda: [compose_stage("finetune", "paper").train.epochs]),
    (r"# (\d+) jobs\n", lambda: [PAPER_JOBS]),
    (r"submits \*\*(\d+) SLURM jobs\*\*", lambda: [PAPER_SLURM_JOBS]),
]


@pytest.mark.parametrize("pattern,values", CLAIMS, ids=[c[0][:40] for c in CLAIMS])
def test_readme_number_matches_the_config(pattern, values):
    found = re.findall(pattern, README)
    assert len(found) == 1, f"README.md should state this once: {pattern!r} (found {len(found)})"
    stated = found[0] if isinstance(found[0], tuple) else (found[0],)
    assert [float(x) for x in stated] == [float(v) for v in values()]
