"""python -m data_prep preset=<benchmark>/data_prep dataset=<name> out_dir=<dir> "shots=[full,20,5]" probe_per_class=25
[raw_dir=<dir>] [workers=N]"""
from __future__ import annotations

import logging

import hydra
from omegaconf import OmegaConf

from data_prep import config  # noqa: F401  (registers the schema)
from data_prep.prepare import prepare
from pipeline.errors import one_line_errors

log = logging.getLogger("data_prep")


@hydra.main(version_base="1.3", config_path="../configs", config_name="data_prep")
@one_line_errors("data_prep")
def main(cfg) -> None:
    dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
    out = prepare(dataset, cfg.out_dir, [str(s) for s in cfg.shots], cfg.probe_per_class, cfg.seed,
                  raw_dir=cfg.raw_dir, workers=cfg.workers, resize_shorter=cfg.resize_shorter,
                  jpeg_quality=cfg.jpeg_quality, ablation_per_class=list(cfg.probe_ablation_per_class),
                  parc_draws=cfg.parc_draws, parc_size=cfg.parc_probe_size)
    log.info("prepared %s into %s", dataset["name"], out)


if __name__ == "__main__":
    main()
