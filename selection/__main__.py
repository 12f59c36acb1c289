"""python -m selection step=features|probe_model|scores|select ... (see configs/selection.yaml);
select = features then scores, in one process."""
from __future__ import annotations

import logging
import sys

import hydra

from selection import config  # noqa: F401  (registers the schema)

log = logging.getLogger("selection")
STEPS = ("features", "probe_model", "scores", "select")


@hydra.main(version_base="1.3", config_path="../configs", config_name="selection")
def main(cfg) -> None:
    try:
        if cfg.step == "features":
            from selection.features import write_caches  # torch only where networks run

            log.info("%s: %d feature caches", cfg.expert, len(write_caches(cfg)))
        elif cfg.step == "probe_model":
            from selection.probe_model import train_probe_models
            from zoo_training.engine import schedule_from

            log.info("%d probe-model caches", len(train_probe_models(cfg, schedule_from(cfg.train))))
        elif cfg.step in ("scores", "select"):
            from selection.run import score_expert

            if cfg.step == "select":  # features then scores in one process (the DAG's selection job)
                from selection.features import write_caches

                log.info("%s: %d feature caches", cfg.expert, len(write_caches(cfg)))
            log.info("%d scores for %s -> %s", len(score_expert(cfg)), cfg.expert, cfg.out)
        else:
            raise ValueError(f"unknown step {cfg.step!r}; choose one of {', '.join(STEPS)}")
    except (FileNotFoundError, KeyError, ValueError) as err:
        sys.exit(f"selection: error: {err}")


if __name__ == "__main__":
    main()
