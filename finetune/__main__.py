"""python -m finetune preset=<benchmark>/finetune expert=<id> expert_path=<model.pt> data_root=<dir>
"targets=[...]" "shots=[...]" out=<json>: the lr grid `lrs` and the recipe `train` come from the preset."""
from __future__ import annotations

import hydra

from finetune import config  # noqa: F401  (registers the schema)
from finetune.run import finetune_expert
from pipeline.errors import one_line_errors


@hydra.main(version_base="1.3", config_path="../configs", config_name="finetune")
@one_line_errors("finetune")
def main(cfg) -> None:
    finetune_expert(cfg)


if __name__ == "__main__":
    main()
