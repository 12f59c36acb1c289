"""python -m pipeline config <stage> <benchmark>: the resolved configuration of a stage for a benchmark,
printed by the stage's own command line (Hydra's `--cfg job --resolve`).
python -m pipeline run <snakemake args>: snakemake, resuming after a run that was killed (pipeline.resume)."""
from __future__ import annotations

import os
import sys

import yaml

from pipeline.stages import CONFIGS, STAGES, stage_overrides

USAGE = (f"usage: python -m pipeline config <stage> <benchmark>  (stages: {', '.join(STAGES)})\n"
         f"       python -m pipeline run <snakemake arguments>")


def example_groups(stage: str, benchmark: str) -> list[str]:
    """Config groups that are the job's identity (which architecture, which dataset), filled with the
    benchmark's first one so the whole configuration prints: the reference architecture, the
    multi-domain architecture, the first target (of the mini benchmark for a preset with no benchmark file)."""
    path = CONFIGS / "benchmark" / f"{benchmark}.yaml"
    if not path.is_file():
        path = CONFIGS / "benchmark" / "mini.yaml"
    bench = yaml.safe_load(path.read_text())
    archs = bench["architectures"]
    if stage == "zoo_training":
        return [f"arch={archs[bench['reference_arch']]}"]
    if stage == "multidomain" and bench.get("multidomain"):
        return [f"arch={archs[bench['multidomain']['arch']]}"]
    if stage == "data_prep":
        return [f"dataset={bench['targets'][0]}"]
    return []


def main(argv: list[str]) -> None:
    if argv[:1] == ["run"]:
        from pipeline.resume import RunError, run

        try:
            run(argv[1:])
        except RunError as err:
            raise SystemExit(f"pipeline: error: {err}") from None
    if len(argv) != 3 or argv[0] != "config":
        raise SystemExit(USAGE)
    stage, benchmark = argv[1], argv[2]
    try:
        head = stage_overrides(stage, benchmark)
    except ValueError as err:
        raise SystemExit(f"pipeline: error: {err}") from None
    module = STAGES[stage].module
    os.execv(sys.executable, [sys.executable, "-m", module, *head, *example_groups(stage, benchmark), "--cfg", "job", "--resolve"])


if __name__ == "__main__":
    main(sys.argv[1:])
