"""A zoo benchmark (`zoo` + `ground_truth`, configs/benchmark/standard.yaml): experts trained elsewhere are
scored on every target through the real DAG, offline (hub caches with random weights built here), and
evaluated by weighted tau against a shipped ground truth; the standard benchmark's DAG builds with no data
and no weights present; a zoo benchmark's mistakes are one line before any job runs."""
import hashlib
import os
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from scipy.stats import weightedtau

from conftest import ROOT, snakemake_cmd
from data_prep.fake_weights import write_timm_weights, write_torchvision_weights
from pipeline.benchmark import BenchmarkError, load_benchmark

TIMM = "test_resnet.r160_in1k"
TORCHVISION = ("resnet18", "IMAGENET1K_V1")
TARGETS = ["mosaic_target", "lattice_target"]
METHODS = ["leep", "logme", "nce", "lgc", "domain_similarity", "random"]
# made-up fine-tuning accuracies (%): what the run is evaluated against
TRUTH = {"tiny": (50.0, 55.0), "r18": (70.0, 60.0), "r18_mine": (60.0, 80.0)}


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _zoo_benchmark(tmp_path, **changes) -> dict:
    """A zoo of a timm expert, a torchvision expert and the same torchvision architecture with own weights
    (a checksum), on two mini targets; returns the benchmark config (written to tmp_path/benchmark.yaml)."""
    import torchvision

    torch.manual_seed(3)
    mine = torchvision.models.resnet18()  # torchvision's own initialisation, seeded
    torch.save(mine.state_dict(), tmp_path / "mine.pth")
    zoo = {"experts": [{"name": "tiny", "timm": TIMM},
                       {"name": "r18", "torchvision": "ResNet18_Weights.IMAGENET1K_V1"},
                       {"name": "r18_mine", "torchvision": "ResNet18_Weights.IMAGENET1K_V1",
                        "weights": str(tmp_path / "mine.pth"), "sha256": _sha256(tmp_path / "mine.pth")}]}
    (tmp_path / "zoo.yaml").write_text(yaml.safe_dump(zoo))
    pd.DataFrame([{"model": e, "target": t, "accuracy": acc[i], "source": "made up"}
                  for e, acc in TRUTH.items() for i, t in enumerate(TARGETS)]).to_csv(tmp_path / "truth.csv", index=False)
    pd.DataFrame([{"method": "logme", "target": "mosaic_target", "weighted_tau": 0.25, "source": "made up"}]).to_csv(
        tmp_path / "published.csv", index=False)
    config = {"benchmark": "zoo_test", "results": str(tmp_path / "results"), "preset": "mini",
              "zoo": str(tmp_path / "zoo.yaml"), "ground_truth": str(tmp_path / "truth.csv"),
              "published_scores": str(tmp_path / "published.csv"), "targets": TARGETS, "shots": ["full"],
              "probe_sets": {"per_class": 6}, "selection": {"methods": METHODS}, **changes}
    (tmp_path / "benchmark.yaml").write_text(yaml.safe_dump(config))
    return config


@pytest.fixture(scope="module")
def zoo_run(tmp_path_factory):
    """The zoo benchmark run by Snakemake, offline, with the hub caches built here."""
    tmp = tmp_path_factory.mktemp("zoo_benchmark")
    write_timm_weights(tmp / "hf", TIMM, seed=1)
    write_torchvision_weights(tmp / "torch", *TORCHVISION, seed=2)
    env = {**os.environ, "HF_HUB_CACHE": str(tmp / "hf"), "TORCH_HOME": str(tmp / "torch"), "HF_HUB_OFFLINE": "1"}
    _zoo_benchmark(tmp)
    done = subprocess.run(snakemake_cmd("--cores", "2", "--configfile", str(tmp / "benchmark.yaml")), cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return tmp, env


def test_a_zoo_is_scored_and_evaluated_against_its_ground_truth(zoo_run):
    tmp, _ = zoo_run
    tables = tmp / "results" / "tables"
    joined = pd.read_csv(tables / "ground_truth_scores.csv")
    ev = pd.read_csv(tables / "ground_truth_eval.csv")
    assert set(joined["expert"]) == set(TRUTH) and set(joined["probe"]) == {"per_class_6"}
    for (method, target), group in joined.groupby(["method", "target"]):
        assert list(group["accuracy"]) == [TRUTH[e][TARGETS.index(target)] for e in group["expert"]]
        row = ev[(ev["method"] == method) & (ev["target"] == target)].iloc[0]
        assert row["n_experts"] == 3
        expected = 0.0 if method == "random" else weightedtau(group["score"], group["accuracy"]).statistic
        assert row["weighted_tau"] == pytest.approx(expected, abs=1e-12), (method, target)
    assert set(ev["method"]) == {"leep", "logme", "nce", "lgc", "random"}
    mean = ev[ev["target"] == "mean"].set_index("method")["weighted_tau"]
    per_target = ev[ev["target"] != "mean"].groupby("method")["weighted_tau"].mean()
    pd.testing.assert_series_equal(mean.sort_index(), per_target.sort_index(), check_names=False)
    # Domain Similarity needs source images, which no zoo expert has here: recorded, not failed
    skipped = pd.read_csv(tables / "not_computable.csv")
    assert sorted(skipped["expert"]) == sorted(TRUTH) and set(skipped["method"]) == {"domain_similarity"}
    assert skipped["reason"].str.contains("source images").all()
    published = pd.read_csv(tables / "published_ground_truth.csv").iloc[0]
    logme = ev[(ev["method"] == "logme") & (ev["target"] == "mosaic_target")]["weighted_tau"].iloc[0]
    assert published["published"] == 0.25 and published["reproduced"] == pytest.approx(logme)
    assert (tmp / "results" / "figures" / "ground_truth_weighted_tau.png").stat().st_size > 0


def test_each_zoo_expert_is_scored_with_its_own_preprocessing(zoo_run, monkeypatch):
    """The cached features are the expert's own network on the probe images through its own transform:
    160 px and mean/std 0.5 for the timm test network, torchvision's 224 px recipe for ResNet-18."""
    import huggingface_hub.constants

    from data_prep.readers import PreparedDataset
    from zoo_training.architectures import dataset_features
    from zoo_training.zoo import zoo_expert

    tmp, env = zoo_run
    for key in ("HF_HUB_CACHE", "TORCH_HOME", "HF_HUB_OFFLINE"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", env["HF_HUB_CACHE"])
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    data = PreparedDataset(tmp / "results" / "data" / "mosaic_target")
    for name, size in (("tiny", 160), ("r18_mine", 224)):
        expert = zoo_expert(tmp / "zoo.yaml", name)
        assert expert.preprocessing.input_size == size
        probe = data.probe_set("full", "per_class_6", transform=expert.transform)
        assert probe.batch(torch.arange(2))[0].shape[-1] == size
        cache = np.load(tmp / "results" / "features" / name / "mosaic_target" / "full" / "per_class_6.npz")
        features, logits = dataset_features(expert.model, probe)
        np.testing.assert_allclose(cache["features"], features.double().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(cache["probs"], torch.softmax(logits.double(), 1).numpy(), rtol=1e-5, atol=1e-7)
        assert cache["gradients"].shape[0] == len(probe)


@pytest.mark.parametrize("extra, jobs", [
    ((), {"data_prep": "11", "selection_zoo": "11", "ground_truth": "1", "all": "1", "total": "24"}),
    # the same zoo fine-tuned here for one's own ground truth
    (("--config", "ground_truth=finetune"),
     {"data_prep": "11", "selection_zoo": "11", "finetune": "11", "ground_truth": "1", "all": "1", "total": "35"}),
])
def test_the_standard_benchmark_builds_its_dag_with_no_data_and_no_weights(tmp_path, extra, jobs):
    """11 torchvision models x 11 targets: data preparation per target, one selection job per model, the
    ground-truth evaluation; nothing trained (nor fine-tuned, with the shipped ground truth). Its hub cache
    is empty here."""
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "empty"), "HF_HUB_CACHE": str(tmp_path / "empty")}
    done = subprocess.run(snakemake_cmd("-n", "--quiet", "rules", "--configfile", "configs/benchmark/standard.yaml",
                                        *extra), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    counts = dict(line.split()[:2] for line in done.stdout.splitlines() if line.strip()[:1].isalpha()
                  and len(line.split()) == 2 and line.split()[1].isdigit())
    assert counts == jobs, done.stdout


def test_a_zoo_fine_tuned_here_is_its_own_ground_truth(tmp_path):
    """`ground_truth: finetune`: each expert's best test accuracy over the lrs, per target and shots."""
    import json

    from analysis.context import Context
    from analysis.ground_truth import ground_truth_scores

    score_rows = [{"expert": e, "target": "t", "shots": s, "probe": "per_class_25", "method": "logme", "score": v,
                   "seconds": 0.1, "feature_seconds": 1.0} for e, v in (("a", 1.0), ("b", 2.0)) for s in ("full", "5")]
    tune_rows = [{"expert": e, "target": "t", "shots": s, "lr": lr, "test_accuracy": acc + (lr == 0.01) * 5,
                  "seconds": 1.0} for e, acc in (("a", 50.0), ("b", 40.0)) for s in ("full", "5") for lr in (0.01, 0.001)]
    (tmp_path / "scores.json").write_text(json.dumps({"rows": score_rows}))
    (tmp_path / "finetune.json").write_text(json.dumps({"rows": tune_rows}))
    ctx = Context("", 3, "per_class_25", records={"scores": [tmp_path / "scores.json"], "ground_truth": ["finetune"],
                                                   "finetune": [tmp_path / "finetune.json"]})
    joined = ground_truth_scores(ctx).set_index(["expert", "shots"])
    assert joined.loc[("a", "full"), "accuracy"] == 55.0 and joined.loc[("b", "5"), "accuracy"] == 45.0
    assert joined["accuracy_source"].str.startswith("fine-tuned in this run").all()


@pytest.mark.parametrize("changes, message", [
    ({"ground_truth": None}, "ground_truth: a zoo benchmark needs"),
    ({"sources": ["mosaic", "lattice"]}, "with `sources` every expert, the zoo's too, gets its ground truth by fine-tuning"),
    ({"targets": ["mosaic_target", "lattice_target", "novel_target"]}, "no accuracy for 3 .* e.g. tiny on novel_target"),
    ({"shots": ["full", "5"]}, r"no accuracy for 6 .* \(5; a CSV without a `shots` column is the full setting\)"),
    ({"zoo": "nowhere.yaml"}, "zoo: zoo file nowhere.yaml does not exist"),
])
def test_a_zoo_benchmark_mistake_is_one_line(tmp_path, changes, message):
    config = _zoo_benchmark(tmp_path, **changes)
    with pytest.raises(BenchmarkError, match=message):
        load_benchmark(config)


def test_every_probe_image_without_a_zoo_is_refused():
    mini = yaml.safe_load((ROOT / "configs" / "benchmark" / "mini.yaml").read_text())
    with pytest.raises(BenchmarkError, match="probe_sets.per_class: null"):
        load_benchmark({**mini, "probe_sets": {"per_class": None}})


def test_an_expert_without_a_finite_score_makes_the_correlation_nan():
    """A score that failed for one expert (no row) or came out non-finite is never ranked on the others."""
    from analysis.context import Context
    from analysis.ground_truth import ground_truth_eval

    rows = [{"expert": e, "target": "t", "shots": "full", "probe": "all", "method": m, "score": s, "accuracy": a,
             "accuracy_source": "x"}
            for m, scores in {"ok": (1.0, 2.0, 3.0), "nan": (1.0, np.nan, 3.0), "failed": (1.0, 2.0, None)}.items()
            for e, s, a in zip("abc", scores, (10.0, 30.0, 20.0)) if s is not None]
    ev = ground_truth_eval(Context("", 3, "all", tables={"ground_truth_scores": pd.DataFrame(rows)}))
    ev = ev[ev["target"] == "t"].set_index("method")
    assert ev.loc["ok", "weighted_tau"] == pytest.approx(weightedtau([1.0, 2.0, 3.0], [10.0, 30.0, 20.0]).statistic)
    assert np.isnan(ev.loc["nan", "weighted_tau"]) and ev.loc["nan", "n_experts"] == 2
    assert np.isnan(ev.loc["failed", "kendall"]) and ev.loc["failed", "n_experts"] == 2


def test_a_zoo_expert_fine_tunes_at_its_own_input_size(zoo_run, monkeypatch, stage_config):
    """`python -m finetune zoo_file=... expert=<name>`: the shared engine on the target at the expert's own
    size and statistics (augmented for training, centre-cropped for the test), one record row per point."""
    import huggingface_hub.constants

    import finetune.run as run

    tmp, env = zoo_run
    for key in ("HF_HUB_CACHE", "TORCH_HOME", "HF_HUB_OFFLINE"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", env["HF_HUB_CACHE"])
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    seen = []

    def spy(model, data, schedule, test=None, **kwargs):
        seen.append((data.augmented(True).batch(torch.arange(2))[0].shape, test.augmented(False).batch(torch.arange(2))[0].shape))
        return real_fit(model, data, schedule, test=test, **kwargs)

    real_fit = run.fit
    monkeypatch.setattr(run, "fit", spy)
    cfg = stage_config("finetune", "mini", "expert=tiny", f"zoo_file={tmp / 'zoo.yaml'}",
                       f"data_root={tmp / 'results' / 'data'}", "targets=[mosaic_target]", "shots=[full]",
                       "lrs=[0.01]", "train.epochs=1", f"out={tmp / 'finetune_tiny.json'}")
    [row] = run.finetune_expert(cfg)
    assert seen == [(torch.Size([2, 3, 160, 160]), torch.Size([2, 3, 160, 160]))]
    assert row["expert"] == "tiny" and 0.0 <= row["test_accuracy"] <= 100.0


def test_a_zoo_beside_trained_experts_needs_names_that_are_not_their_ids(tmp_path):
    mini = yaml.safe_load((ROOT / "configs" / "benchmark" / "mini.yaml").read_text())
    (tmp_path / "zoo.yaml").write_text("experts:\n  - {name: resnet-mosaic, timm: test_resnet.r160_in1k}\n")
    with pytest.raises(BenchmarkError, match="expert name 'resnet-mosaic' reads as the id of an expert trained here"):
        load_benchmark({**mini, "zoo": str(tmp_path / "zoo.yaml")})
    (tmp_path / "zoo.yaml").write_text("experts:\n  - {name: tiny.timm, timm: test_resnet.r160_in1k}\n")
    assert load_benchmark({**mini, "zoo": str(tmp_path / "zoo.yaml")})["zoo"] == str(tmp_path / "zoo.yaml")
