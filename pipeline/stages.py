"""The stages of the pipeline, their presets and their composed configurations.

A stage runs as `python -m <module> [step=<step>] preset=<benchmark>/<stage> <identity overrides>`:
its Hydra config (configs/<module>.yaml) holds the paper's defaults, the preset
configs/preset/<benchmark>/<stage>.yaml what a benchmark changes, and the Snakefile's rules the
identity of the job (which expert, target, paths). `compose` builds the same configuration in
Python (the Snakefile checks it before any job runs; the tests assert the papers' values on it).
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@dataclass(frozen=True)
class Stage:
    module: str  # python -m <module>; also its Hydra config configs/<module>.yaml
    step: str | None = None  # the sub-command, passed as step=<step>


STAGES = {
    "data_prep": Stage("data_prep"),
    "zoo_training": Stage("zoo_training", "expert"),
    "multidomain": Stage("zoo_training", "multidomain"),
    "finetune": Stage("finetune"),
    "selection": Stage("selection", "select"),
    "analysis": Stage("analysis"),
}


def hydra_value(value) -> str:
    """A Python value as a Hydra override value: lists [a,b], dicts {k:v}, None null."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    return "null" if value is None else str(value)


def identity_overrides(**values) -> list[str]:
    """A job's identity as Hydra overrides `key=value`, skipping None."""
    return [f"{key}={hydra_value(v)}" for key, v in values.items() if v is not None]


def config_roots(config_dirs: Sequence[str] = ()) -> list[Path]:
    """Where Hydra looks for a config: a benchmark's own `config_dirs` (laid out like configs/:
    dataset/<name>.yaml, arch/<name>.yaml, preset/<name>/<stage>.yaml), then configs/."""
    return [Path(d).resolve() for d in config_dirs] + [CONFIGS]


def find_config(relative: str, config_dirs: Sequence[str] = ()) -> Path | None:
    """The first `<root>/<relative>` that exists, e.g. find_config("dataset/dtd.yaml"); None if none does."""
    return next((root / relative for root in config_roots(config_dirs) if (root / relative).is_file()), None)


def presets(config_dirs: Sequence[str] = ()) -> list[str]:
    """Names that have a preset folder (<root>/preset/<name>/)."""
    return sorted({p.name for root in config_roots(config_dirs) if (root / "preset").is_dir()
                   for p in (root / "preset").iterdir() if p.is_dir()})


def preset_override(stage: str, benchmark: str, config_dirs: Sequence[str] = ()) -> str:
    """The Hydra override that selects the benchmark's preset for a stage: preset=<benchmark>/<stage>.

    Raises ValueError naming the stage or the missing preset file."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; choose one of {', '.join(STAGES)}")
    if find_config(f"preset/{benchmark}/{stage}.yaml", config_dirs) is None:
        raise ValueError(f"there is no preset {benchmark!r} for stage {stage!r}: configs/preset/{benchmark}/{stage}.yaml "
                         f"is missing (presets: {', '.join(presets(config_dirs))})")
    return f"preset={benchmark}/{stage}"


def config_dirs_env(config_dirs: Sequence[str] = ()) -> dict[str, str]:
    """The environment that puts a benchmark's config folders before configs/ for Hydra (the search-path
    plugin hydra_plugins/pipeline_config_dirs); empty without config_dirs."""
    if not config_dirs:
        return {}
    return {"PIPELINE_CONFIG_DIRS": os.pathsep.join(str(root) for root in config_roots(config_dirs)[:-1])}


def stage_overrides(stage: str, benchmark: str, config_dirs: Sequence[str] = (), step: str | None = None) -> list[str]:
    """The step and preset overrides every command line of a stage starts with; `step` replaces the
    stage's own (e.g. the selection stage's probe_model, the analysis steps)."""
    preset = preset_override(stage, benchmark, config_dirs)  # raises for an unknown stage
    step = step or STAGES[stage].step
    return ([f"step={step}"] if step else []) + [preset]


def compose(stage: str, benchmark: str, overrides: Sequence[str] = (), config_dirs: Sequence[str] = ()):
    """The stage's configuration for a benchmark, as its command line would compose it (a DictConfig,
    `???` where the job's identity goes). Raises ValueError for an unknown stage or preset and Hydra's
    errors for a bad override."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    head = stage_overrides(stage, benchmark, config_dirs)
    module = STAGES[stage].module
    importlib.import_module(f"{module}.config")  # registers the stage's structured schema
    GlobalHydra.instance().clear()
    saved = os.environ.pop("PIPELINE_CONFIG_DIRS", None)
    os.environ.update(config_dirs_env(config_dirs))
    try:
        with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
            return hydra_compose(config_name=module, overrides=[*head, *overrides])
    finally:
        os.environ.pop("PIPELINE_CONFIG_DIRS", None)
        if saved is not None:
            os.environ["PIPELINE_CONFIG_DIRS"] = saved
