"""Command line of the analysis stage (Hydra): ``python -m analysis step=<step> results_dir=R ...``
renders exactly the outputs of that step in the registry (`analysis.outputs`):

    step=tables     "zoo_records=[...]" "finetune_records=[...]" "score_records=[...]"
                    ["multidomain_records=[...]"] ["target_dirs=[...]"]
    step=evaluate   reference_expert=resnet-generalist probe_set=per_class_25 [top_k=<k>] [multidomain=true]
    step=figures    reference_expert=... probe_set=... [top_k=<k>] ["theta_f_records=[...]"]
    step=artifacts  reference_expert=... probe_set=... [top_k=<k>] [multidomain=true] ['++pools={...}']
    step=ground_truth  probe_set=... "score_records=[...]" ground_truth=<csv> [published_scores=<csv>]
                    (a zoo benchmark: its experts' scores against a shipped ground truth)

Each written file's path is printed, one per line (a figure: its .png; its data sits beside it).
"""
from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import OmegaConf

from analysis.config import AnalysisConfig
from analysis.context import Context
from analysis.outputs import STEPS, outputs, render
from analysis.tables import AnalysisError
from pipeline.errors import one_line_errors
from pipeline.layout import Layout


def _required(cfg, key: str, example: str):
    if OmegaConf.is_missing(cfg, key):
        raise AnalysisError(f"step={cfg.step} needs {key}, e.g. {key}={example}")
    return cfg[key]


def context(cfg: AnalysisConfig, layout: Layout) -> Context:
    """The renderers' context of one run: settings from ``cfg``, tables read from ``layout``."""
    from analysis.strategies import arch_pool

    needs_settings = cfg.step != "tables"
    needs_reference = needs_settings and cfg.step != "ground_truth"  # a zoo benchmark has no reference expert
    return Context(
        reference_expert=_required(cfg, "reference_expert", "resnet-generalist") if needs_reference else "",
        top_k=cfg.top_k, probe_set=_required(cfg, "probe_set", "per_class_25") if needs_settings else "",
        layout=layout, seed=cfg.seed, lr_selection=cfg.lr_selection,
        pools={name: None if archs is None else arch_pool(*archs) for name, archs in (cfg.pools or {"all": None}).items()},
        records={"zoo": list(cfg.zoo_records), "finetune": list(cfg.finetune_records),
                 "scores": list(cfg.score_records), "multidomain": list(cfg.multidomain_records),
                 "target_dirs": list(cfg.target_dirs), "theta_f": list(cfg.theta_f_records),
                 "ground_truth": [cfg.ground_truth] if cfg.ground_truth else [],
                 "published_scores": [cfg.published_scores] if cfg.published_scores else []})


def run(cfg: AnalysisConfig) -> list[Path]:
    """Render the registry's outputs of ``cfg.step`` for this benchmark; returns their main files.
    Raises AnalysisError on a user mistake (unknown step, missing setting or table, ...)."""
    if cfg.step not in STEPS:
        raise AnalysisError(f"unknown step {cfg.step!r}; choose one of {', '.join(STEPS)}")
    layout = Layout(cfg.results_dir)
    ctx = context(cfg, layout)
    paper = False
    if cfg.step == "artifacts":  # the published numbers are compared on the paper's zoo only
        from analysis.published import is_paper_benchmark
        paper = is_paper_benchmark(ctx.table("zoo_accuracy"))
    todo = outputs(cfg.step, multidomain=bool(cfg.multidomain or cfg.multidomain_records),
                   theta_f=bool(cfg.theta_f_records), paper=paper, zoo=cfg.step == "ground_truth")
    return [render(output, ctx, layout) for output in todo]


@hydra.main(version_base="1.3", config_path="../configs", config_name="analysis")
@one_line_errors("analysis")
def main(cfg: AnalysisConfig) -> None:
    for path in run(cfg):
        print(path)


if __name__ == "__main__":
    main()
