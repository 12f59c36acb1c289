import sys
from pathlib import Path

import pytest

# the simulated SLURM cluster's fixture `slurm_cluster` (tests/slurm_sim/fixture.py)
pytest_plugins = ["slurm_sim.fixture"]

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
# every shipped benchmark preset (configs/preset/<name>/)
PRESETS = sorted(p.name for p in (CONFIGS / "preset").iterdir() if p.is_dir())


@pytest.fixture
def root() -> Path:
    return ROOT


def compose_stage(stage: str, benchmark: str, *overrides: str):
    """The real configuration of a stage for a benchmark, as its command line composes it
    (configs/<stage>.yaml, the preset configs/preset/<benchmark>/<stage>.yaml, then `overrides`)."""
    from pipeline.stages import compose

    return compose(stage, benchmark, list(overrides))


@pytest.fixture
def stage_config():
    return compose_stage


def snakemake_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", *args]


def kill_training_in_epoch(monkeypatch, epoch: int) -> None:
    """Make the engine's `epoch`-th epoch (counting from 1) raise KeyboardInterrupt, as a job killed
    mid-epoch; `monkeypatch.undo()` restores the engine."""
    from zoo_training import engine

    original, calls = engine.train_one_epoch, {"n": 0}

    def dies(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == epoch:
            raise KeyboardInterrupt("killed mid-epoch")
        return original(*args, **kwargs)

    monkeypatch.setattr(engine, "train_one_epoch", dies)
