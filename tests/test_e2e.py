"""The whole DAG, end to end, on a smaller cut of the mini benchmark with the smoke preset (2 epochs,
2 lrs; fine-tuning and selection of two experts run twice: determinism), with one target a user added by
config outside the repository (a folder of class sub-folders of image files and its dataset config in the
benchmark's config_dirs) and one expert trained elsewhere (a zoo file's `checkpoint:` entry: a mini ResNet
with its own preprocessing, saved here) beside the experts trained here (the hub kinds: tests/test_zoo*.py)."""
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, snakemake_cmd

MINI = yaml.safe_load((ROOT / "configs/benchmark/mini.yaml").read_text())
TINY = {
    **MINI,
    "benchmark": "tiny",
    "preset": "smoke",
    "sources": ["generalist", "mosaic"],
    "targets": ["mosaic_target", "novel_target", "e2e_user_folder"],
    "shots": ["full", "5"],
    "finetune_seeds": 2,  # seeds, the noise ceiling and the intervals over seeds, at the least cost
    "theta_f": {"target": "mosaic_target", "shots": "full", "lr": 0.01},
    # a user's own score, exactly as the README shows it
    "selection": {**MINI["selection"], "plugins": ["examples/my_scores.py"],
                  "methods": MINI["selection"]["methods"] + ["class_margin"]},
    "multidomain": {**MINI["multidomain"], "variants": ["multi_bn"]},
}
ZOO_EXPERT = "lab_resnet"  # an expert trained elsewhere, by its zoo-file name
TABLES = ["zoo_accuracy", "finetune", "scores", "targets", "selection_eval", "selection_summary", "noise_ceiling",
          "finetune_ground_truth", "compute_cost", "regret",
          "parc_protocol", "probe_size_ablation", "gr_table2", "recommendations"]
FIGURES = ["fig2_finetune_error", "fig4_top3_gain", "fig6a_trials_to_best", "fig6b_spearman", "fig8_theta_f"]


@pytest.fixture(scope="module")
def user_configs(tmp_path_factory):
    """What the README tells a user to do: a folder <class>/<image>, and a dataset config naming it
    (copied from configs/dataset/example_folder.yaml) in their own config folder, then one more line
    in the target list. Returns that config folder."""
    from PIL import Image

    from data_prep.synthetic import DomainSpec, generate

    folder = tmp_path_factory.mktemp("user_images")
    arrays = generate(DomainSpec(families=(3,), motifs=tuple(range(16)), num_classes=4, train_per_class=16,
                                 test_per_class=1, image_size=32, noise=0.3, class_seed=21, seed=121))
    for i, (image, label) in enumerate(zip(arrays["train_images"], arrays["train_labels"])):
        (folder / f"class_{label}").mkdir(exist_ok=True)
        Image.fromarray(image).save(folder / f"class_{label}" / f"{i}.png")
    config = yaml.safe_load((ROOT / "configs/dataset/example_folder.yaml").read_text())
    config.update(name="e2e_user_folder", path=str(folder), num_classes=4, image_size=32)
    configs = tmp_path_factory.mktemp("user_configs")
    (configs / "dataset").mkdir()
    (configs / "dataset" / "e2e_user_folder.yaml").write_text(yaml.safe_dump(config))
    import torch

    from zoo_training.architectures import build_model
    from zoo_training.experts import save_expert

    arch = yaml.safe_load((ROOT / "configs/arch/resnet_mini.yaml").read_text())
    torch.manual_seed(7)
    model = build_model("resnet", 5, kwargs=arch["kwargs"])  # a lab's own network on its own 5 classes
    save_expert(configs / "lab" / "model.pt", model, arch, 5, expert=ZOO_EXPERT, source="lab_data",
                preprocessing={"input_size": 32, "resize": 36, "mean": [0.5] * 3, "std": [0.25] * 3,
                               "interpolation": "bilinear"}, classes=[f"c{i}" for i in range(5)])
    (configs / "zoo.yaml").write_text(yaml.safe_dump({"experts": [{"name": ZOO_EXPERT, "checkpoint": str(configs / "lab")}]}))
    return configs


def run_pipeline(workdir, config_dir, *extra):
    results = workdir / "results"
    config = workdir / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "results": str(results), "config_dirs": [str(config_dir)],
                                      "zoo": str(config_dir / "zoo.yaml")}))
    # targets (in extra) first: --configfile takes every word after it
    cmd = snakemake_cmd(*extra, "--cores", "2", "--configfile", str(config))
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900), results


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, user_configs):
    result, results = run_pipeline(tmp_path_factory.mktemp("run1"), user_configs)
    assert result.returncode == 0, result.stderr[-3000:]
    return results


@pytest.mark.e2e
def test_pipeline_writes_every_table_and_figure(first_run):
    from analysis.outputs import files, outputs
    from pipeline.layout import Layout

    for output in outputs("artifacts", multidomain=True, theta_f=True, paper=False):  # the other papers' outputs
        assert all(path.stat().st_size > 0 for path in files(Layout(first_run), output)), output.name
    assert "Mean Spearman" in (first_run / "summary.md").read_text()
    for name in TABLES:
        assert (first_run / "tables" / f"{name}.csv").stat().st_size > 0
    for name in FIGURES:
        assert (first_run / "figures" / f"{name}.png").stat().st_size > 10_000
        assert (first_run / "figures" / f"{name}.csv").exists()
    finetune = pd.read_csv(first_run / "tables/finetune.csv", dtype={"shots": str})
    domains = finetune["expert"].str.endswith("-md")
    # experts (6 trained here, 1 from the zoo) x targets x shots x lrs x 2 seeds
    assert len(finetune[~domains]) == 7 * 3 * 2 * 2 * 2
    assert len(finetune[domains]) == 2 * 3 * 1 * 2 * 2  # the 2 domains of the Multi-BN expert: full targets only
    assert set(finetune["seed"]) == {0, 1} and finetune["val_accuracy"].between(0, 100).all()
    ceiling = pd.read_csv(first_run / "tables/noise_ceiling.csv", dtype={"shots": str})
    assert len(ceiling) == 3 * 2 and (ceiling["n_seed_pairs"] == 1).all()
    summary = pd.read_csv(first_run / "tables/selection_summary.csv", dtype={"shots": str})
    assert {"spearman_ci_low", "spearman_ci_high", "degenerate_targets"} <= set(summary.columns)
    assert (summary["n_seeds"] == 2).all()
    inside = summary.dropna(subset=["spearman_ci_low"])
    assert len(inside) and (inside["spearman_ci_low"] <= inside["spearman_ci_high"]).all()
    assert (first_run / "tables/multidomain_accuracy.csv").exists()
    assert (first_run / "tables/selection_eval_multidomain.csv").exists()
    # the user's target went through the whole DAG: 16 images per class, a 75/25 stratified split
    user = pd.read_csv(first_run / "tables/targets.csv", dtype={"shots": str}).query("target == 'e2e_user_folder'")
    assert dict(zip(user["shots"], user["images"])) == {"full": 48, "5": 20}
    assert set(finetune["lr"]) == {0.01, 0.001}
    methods = set(TINY["selection"]["methods"]) | set(TINY["selection"]["variants"])
    scores = pd.read_csv(first_run / "tables/scores.csv", dtype={"shots": str})
    assert set(scores["method"]) == methods
    evaluation = pd.read_csv(first_run / "tables/selection_eval.csv", dtype={"shots": str})
    assert methods | {"task_agnostic"} <= set(evaluation["method"])
    assert len(evaluation) == evaluation["method"].nunique() * 3 * 2  # one row per method x target x shots
    assert evaluation["trials_to_best"].between(1, 7).all()
    # the zoo's expert beside the trained ones: described, fine-tuned, scored (Domain Similarity aside: it
    # has no source images here) and evaluated among them
    zoo = pd.read_csv(first_run / "tables/zoo_accuracy.csv").set_index("expert").loc[ZOO_EXPERT]
    assert (zoo["arch"], zoo["source"], zoo["init"]) == (ZOO_EXPERT, "zoo", "zoo")
    assert np.isnan(zoo["source_test_accuracy"]) and zoo["parameters"] > 0
    assert set(scores[scores["expert"] == ZOO_EXPERT]["method"]) == methods - {"domain_similarity"}
    assert {"full", "5"} == set(finetune[finetune["expert"] == ZOO_EXPERT]["shots"])
    assert (evaluation[evaluation["method"] == "logme"]["n_experts"] == 7).all()
    assert {"degenerate", "spearman_ci_low", "weighted_tau_ci_high", "trials_to_best_ci_low"} <= set(evaluation.columns)


@pytest.mark.e2e
def test_second_invocation_starts_no_job(first_run, user_configs):
    result, _ = run_pipeline(first_run.parent, user_configs, "-n")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.e2e
def test_same_config_same_numbers(first_run, user_configs, tmp_path):
    """Same config and seed, same numbers: on a copy of the first run's prepared data and trained experts
    (training's own determinism: tests/test_engine.py), fine-tuning, the probe networks and every score
    computed again give identical records, for an expert initialised from the generalist and a domain of
    the multi-domain expert (the other experts run the same code)."""
    import json

    for folder in ("data", "experts", "multidomain"):
        shutil.copytree(first_run / folder, tmp_path / "results" / folder)  # copy2: mtimes kept, nothing reruns
    experts = ("resnet-mosaic-init", "resnet-mosaic-md")
    records = [f"records/{kind}/{e}.json" for kind in ("finetune", "scores") for e in experts]
    result, second = run_pipeline(tmp_path, user_configs, *(str(tmp_path / "results" / r) for r in records))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rule zoo_training:" not in result.stdout and "rule data_prep:" not in result.stdout
    for record in records:
        a, b = (pd.DataFrame(json.loads((root / record).read_text())["rows"]).drop(
            columns=["seconds", "feature_seconds"], errors="ignore") for root in (first_run, second))
        assert len(a), record
        pd.testing.assert_frame_equal(a, b)  # NaN where NaN


@pytest.mark.e2e
def test_report_has_every_output_with_its_caption(first_run, user_configs):
    result, _ = run_pipeline(first_run.parent, user_configs, "--report", str(first_run / "report.html"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (first_run / "report.html").stat().st_size > 100_000
