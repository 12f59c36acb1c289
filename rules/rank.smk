# Rank a zoo for a folder of images, then fine-tune the top k: `make rank IMAGES=<folder> ZOO=<zoo file>
# FINETUNE_TOP=<k>` runs
#   snakemake -s rules/rank.smk --cores all --config images=<folder> zoo=<zoo file> top=<k>
# 1. prepare_folder: data_prep reads the folder (configs/dataset/example_folder.yaml's ImageFolder reader)
#    and holds out `holdout` of each class's images (stratified, seeded) for testing;
# 2. checkpoint rank: every expert scored on a probe set of the training part (selection/rank.py), which
#    writes the recommended method and its top k (recommendation.json);
# 3. finetune: each of those k, and only those, fine-tuned by the finetune stage with the preset's recipe
#    (default: the paper's lr grid and schedule) on the training part, tested on the held-out part;
# 4. report: finetune_top.csv / finetune_top.md beside ranking.csv in results/rank/<folder name>/.
# Other keys (--config): preset (default paper), holdout (0.2), per_class (25), seed (0), out.
import json
import os
import re
import sys
from pathlib import Path

from pipeline.stages import stage_overrides
from selection.rank import RankError, read_folder
from zoo_training.zoo import ZooError, read_zoo


# jobs run `python -m` with the interpreter that runs Snakemake (the project's venv), as the benchmark's
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def _fail(message):
    sys.exit(f"make rank: {message}")


if not config.get("images") or not config.get("zoo") or not config.get("top"):
    _fail("give images=<folder of class folders>, zoo=<zoo file> and top=<k> (--config)")
try:
    FOLDER = read_folder(config["images"])
    ZOO = [e.name for e in read_zoo(config["zoo"])]
except (RankError, ZooError) as err:  # one line, before any job runs
    _fail(err)
TOP = int(config["top"])
if not 1 <= TOP <= len(ZOO):
    _fail(f"top={TOP}: choose 1 to {len(ZOO)} (the zoo's experts)")
HOLDOUT, PER_CLASS, SEED = float(config.get("holdout", 0.2)), int(config.get("per_class", 25)), int(config.get("seed", 0))
PRESET = config.get("preset", "paper")
NAME = re.sub(r"[^a-z0-9_]", "_", FOLDER.root.resolve().name.lower())
OUT = Path(config.get("out") or Path("results") / "rank" / FOLDER.root.resolve().name)
DATA = OUT / "data"


wildcard_constraints:
    expert="|".join(map(re.escape, ZOO)),


rule all:
    input:
        OUT / "finetune_top.csv",


rule prepare_folder:
    """The folder as a prepared dataset: a held-out split per class and the probe set of the training part."""
    output:
        DATA / NAME / "splits.json",
    log:
        OUT / "logs" / "prepare_folder.log",
    params:
        overrides=" ".join(f"'{o}'" for o in [
            *stage_overrides("data_prep", PRESET), "dataset=example_folder", f"dataset.name={NAME}",
            f"dataset.path={FOLDER.root.resolve()}", f"dataset.num_classes={len(FOLDER.classes)}",
            f"dataset.split.test_fraction={HOLDOUT}", f"dataset.split.seed={SEED}", f"out_dir={DATA / NAME}",
            "shots=[full]", f"probe_per_class={PER_CLASS}", f"seed={SEED}", f"hydra.run.dir={OUT / 'runs' / 'prepare'}"]),
    shell:
        "python -m data_prep {params.overrides} > {log} 2>&1"


checkpoint rank:
    """Every expert on the training part's probe set; its recommendation decides which experts fine-tune."""
    input:
        DATA / NAME / "splits.json",
    output:
        ranking=OUT / "ranking.csv",
        recommendation=OUT / "recommendation.json",
    log:
        OUT / "logs" / "rank.log",
    params:
        overrides=" ".join(f"'{o}'" for o in [
            f"images={FOLDER.root}", f"zoo_file={config['zoo']}", f"prepared={DATA / NAME}", f"out={OUT}",
            f"per_class={PER_CLASS}", f"seed={SEED}", f"top_k={TOP}", f"hydra.run.dir={OUT / 'runs' / 'rank'}"]),
    shell:
        "python -m selection.rank {params.overrides} > {log} 2>&1"


rule finetune:
    """One recommended expert: the preset's fine-tuning recipe on the training part, tested on the held-out."""
    input:
        DATA / NAME / "splits.json",
    output:
        OUT / "finetune" / "{expert}.json",
    log:
        OUT / "logs" / "finetune" / "{expert}.log",
    params:
        overrides=lambda wc, output: " ".join(f"'{o}'" for o in [
            *stage_overrides("finetune", PRESET), f"expert={wc.expert}", f"zoo_file={config['zoo']}",
            f"data_root={DATA}", f"targets=[{NAME}]", "shots=[full]", f"seed={SEED}", f"out={output[0]}",
            f"hydra.run.dir={OUT / 'runs' / 'finetune' / wc.expert}"]),
    shell:
        "python -m finetune {params.overrides} > {log} 2>&1"


def recommended(wc):
    """The finetune records of the top k, known once the rank checkpoint has run."""
    chosen = json.loads(Path(checkpoints.rank.get().output.recommendation).read_text())
    return [OUT / "finetune" / f"{e}.json" for e in chosen["top"]]


rule report:
    input:
        recommended,
    output:
        OUT / "finetune_top.csv",
    log:
        OUT / "logs" / "report.log",
    params:
        overrides=lambda wc, input: " ".join(f"'{o}'" for o in [
            "step=report", f"images={FOLDER.root}", f"zoo_file={config['zoo']}", f"out={OUT}",
            f"records=[{','.join(map(str, input))}]", f"hydra.run.dir={OUT / 'runs' / 'report'}"]),
    shell:
        "python -m selection.rank {params.overrides} > {log} 2>&1"
