"""python -m selection step=select|features|scores|probe_model preset=<benchmark>/selection ...
(see configs/selection.yaml); select = features then scores, in one process (the DAG's selection job)."""
from __future__ import annotations

import logging

import hydra

from pipeline.errors import one_line_errors, require_path
from selection import config  # noqa: F401  (registers the schema)
from selection.run import SelectionError

log = logging.getLogger("selection")
STEPS = ("select", "features", "scores", "probe_model")


def features(cfg) -> None:
    from selection.features import write_caches  # torch only where networks run

    if not cfg.zoo_file:
        require_path(cfg.expert_path, "expert_path", SelectionError)
    log.info("%s: %d feature caches", cfg.expert, len(write_caches(cfg)))


def scores(cfg) -> None:
    from selection.run import score_expert

    log.info("%d scores for %s -> %s", len(score_expert(cfg)), cfg.expert, cfg.out)


def probe_model(cfg) -> None:
    from selection.probe_model import train_probe_models
    from zoo_training.engine import schedule_from

    log.info("%d probe-model caches", len(train_probe_models(cfg, schedule_from(cfg.probe_train))))


@hydra.main(version_base="1.3", config_path="../configs", config_name="selection")
@one_line_errors("selection")
def main(cfg) -> None:
    if cfg.step not in STEPS:
        raise SelectionError(f"step={cfg.step!r} is not one of {', '.join(STEPS)}")
    if cfg.step in ("select", "features"):
        features(cfg)
    if cfg.step in ("select", "scores"):
        scores(cfg)
    if cfg.step == "probe_model":
        probe_model(cfg)


if __name__ == "__main__":
    main()
