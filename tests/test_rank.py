"""Ranking a zoo for a folder of images (selection/rank.py): experts trained here on the mini
benchmark's sources, by `checkpoint:`, rank a folder of PNGs of mosaic_target's training images."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import ROOT

COLUMNS = ["expert", "method", "score", "rank", "ci_low", "ci_high", "seconds"]


def _dataset(name, **change):
    return {**yaml.safe_load((ROOT / "configs" / "dataset" / f"{name}.yaml").read_text()), **change}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """Two mini experts (a mosaic specialist, a lattice one) trained briefly, a zoo file naming them,
    and mosaic_target's 240 training images as PNG files in class folders."""
    from PIL import Image

    from data_prep.prepare import prepare
    from data_prep.readers import PreparedDataset
    from zoo_training.architectures import build_model
    from zoo_training.engine import SGDSchedule, fit
    from zoo_training.experts import save_expert

    root = tmp_path_factory.mktemp("rank")
    arch = yaml.safe_load((ROOT / "configs" / "arch" / "resnet_mini.yaml").read_text())
    for source in ("mosaic", "lattice"):
        prepare(_dataset(source, train_per_class=30), root / "data" / source, ["full"], probe_per_class=10, seed=0)
        data = PreparedDataset(root / "data" / source)
        torch.manual_seed(0)
        model = build_model("resnet", data.num_classes, kwargs=arch["kwargs"])
        fit(model, data.train(), SGDSchedule(lr=0.1, epochs=6, milestones=(4,), batch_size=32), seed=0)
        save_expert(root / "experts" / f"resnet-{source}" / "model.pt", model, arch, data.num_classes,
                    expert=f"resnet-{source}", source=source, preprocessing=data.preprocessing(), classes=data.classes)
    (root / "zoo.yaml").write_text("experts:\n  - {name: resnet-mosaic, checkpoint: experts/resnet-mosaic}\n"
                                   "  - {name: resnet-lattice, checkpoint: experts/resnet-lattice}\n")
    prepare(_dataset("mosaic_target"), root / "data" / "mosaic_target", ["full"], probe_per_class=25, seed=0)
    target = PreparedDataset(root / "data" / "mosaic_target")
    images, labels = target.split("train").images.numpy(), target.split("train").labels.numpy()
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / "images" / target.classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:04d}.png")
    return root


def _cfg(zoo, *overrides):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose("rank", [f"images={zoo / 'images'}", f"zoo_file={zoo / 'zoo.yaml'}", f"out={zoo / 'out'}",
                                f"evidence=[{zoo / 'none' / '*.csv'}]", "bootstrap=10", *overrides])


def test_a_folder_is_ranked_and_the_specialist_comes_first(zoo, monkeypatch):
    from selection.rank import rank

    monkeypatch.chdir(zoo)  # checkpoint paths in the zoo file are relative to where it runs
    df = rank(_cfg(zoo))
    assert list(pd.read_csv(zoo / "out" / "ranking.csv").columns) == COLUMNS
    assert len(df) == 2 * 19 and set(df["expert"]) == {"resnet-mosaic", "resnet-lattice"}
    for method in ("logme", "leep"):
        top = df[(df["method"] == method) & (df["rank"] == 1)]["expert"].tolist()
        assert top == ["resnet-mosaic"], (method, df[df["method"] == method])
    scored = df.dropna(subset=["score"])
    assert (scored["ci_low"] <= scored["ci_high"]).all() and (scored["seconds"] > 0).all()
    assert scored["ci_low"].notna().sum() >= len(scored) - 2  # random / constant scores may have no spread
    lost = pd.read_csv(zoo / "out" / "not_computable.csv")
    assert set(lost["method"]) == {"rsa", "dds", "domain_similarity"}
    assert lost["reason"].str.contains("probe network|source images").all()
    assert df[df["method"].isin(["rsa", "dds", "domain_similarity"])]["score"].isna().all()
    text = (zoo / "out" / "ranking.md").read_text()
    assert "No benchmark results of this project were found" in text and "`logme`" in text
    assert "| 1 | resnet-mosaic |" in text and "| resnet-mosaic | 32 | 32 | 0.5, 0.5, 0.5 | 0.25, 0.25, 0.25 |" in text
    assert (zoo / "out" / "ranking.png").stat().st_size > 0


def test_the_recommended_method_is_the_one_that_agreed_best_in_this_projects_results(zoo, monkeypatch):
    from selection.rank import rank

    monkeypatch.chdir(zoo)
    evidence = zoo / "evidence" / "mini" / "tables"
    evidence.mkdir(parents=True)
    pd.DataFrame({"method": ["logme", "logme", "leep", "leep", "rsa"], "target": ["a", "b", "a", "b", "a"],
                  "shots": ["full"] * 5, "spearman": [0.2, 0.4, 0.9, 0.7, 1.0]}).to_csv(evidence / "selection_eval.csv",
                                                                                           index=False)
    rank(_cfg(zoo, f"evidence=[{zoo / 'evidence' / '*' / 'tables' / 'selection_eval.csv'}]", "bootstrap=0",
              "methods=[logme,leep,rsa]", f"out={zoo / 'out2'}"))
    text = (zoo / "out2" / "ranking.md").read_text()
    # rsa agreed best there but cannot be computed for a folder: leep is recommended, with its source
    assert "top 3 by `leep`" in text and "0.800 over 2 targets" in text and "selection_eval.csv" in text


def test_bad_input_is_one_line_before_any_model_loads(zoo, tmp_path, monkeypatch):
    """A truncated image (through the command line: one line, exit status 1), a class with one image,
    a zoo entry without a kind: each stated before any expert loads or anything is written."""
    import shutil

    import zoo_training.zoo
    from selection.rank import RankError, rank
    from zoo_training.zoo import ZooError

    broken = tmp_path / "broken"
    shutil.copytree(zoo / "images", broken)
    first = sorted(broken.rglob("*.png"))[0]
    first.write_bytes(first.read_bytes()[:40])
    result = subprocess.run([sys.executable, "-m", "selection.rank", f"images={broken}", f"zoo_file={zoo / 'zoo.yaml'}",
                             f"out={tmp_path / 'out'}"], cwd=zoo, capture_output=True, text=True)
    assert result.returncode == 1 and "cannot be read as an image" in result.stderr and first.name in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

    monkeypatch.chdir(zoo)
    monkeypatch.setattr(zoo_training.zoo, "load_entry", lambda *a, **k: pytest.fail("an expert was loaded"))
    lonely = tmp_path / "lonely"
    for name in ("a/1.png", "a/2.png", "b/1.png"):
        (lonely / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sorted((zoo / "images").rglob("*.png"))[1], lonely / name)
    with pytest.raises(RankError, match=r"fewer than 2 images: b \(1\)"):
        rank(_cfg(zoo, f"images={lonely}", f"out={tmp_path / 'out'}"))
    (tmp_path / "nokind.yaml").write_text("experts:\n  - {name: a}\n")
    with pytest.raises(ZooError, match="names no kind"):
        rank(_cfg(zoo, f"zoo_file={tmp_path / 'nokind.yaml'}", f"out={tmp_path / 'out'}"))
    assert not (tmp_path / "out").exists()


def test_bootstrap_keeps_each_class_count():
    from selection.rank import bootstrap_indices

    labels = np.array([0, 0, 0, 1, 1, 2])
    draws = bootstrap_indices(labels, 50, seed=3)
    assert draws.shape == (50, 6)
    assert all(np.array_equal(np.bincount(labels[d], minlength=3), [3, 2, 1]) for d in draws)
    assert np.array_equal(draws, bootstrap_indices(labels, 50, seed=3))


def test_finetune_top_fine_tunes_only_the_recommended_experts_on_a_held_out_split(zoo, tmp_path):
    """`make rank ... FINETUNE_TOP=1` (rules/rank.smk): data_prep holds out 20% of each class, the ranking
    scores the training part only, and the rank checkpoint's recommendation decides which expert the
    finetune stage trains; its held-out accuracy is reported beside its rank."""
    import json

    from conftest import snakemake_cmd

    absolute = _absolute_zoo(zoo, tmp_path)
    out = tmp_path / "out"
    done = subprocess.run(snakemake_cmd("-s", "rules/rank.smk", "--cores", "2", "--config", f"images={zoo / 'images'}",
                                        f"zoo={absolute}", "top=1", "preset=mini", f"out={out}"),
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    chosen = json.loads((out / "recommendation.json").read_text())
    tuned = pd.read_csv(out / "finetune_top.csv")
    assert list(tuned["expert"]) == chosen["top"] and len(chosen["top"]) == 1 and tuned["rank"].tolist() == [1]
    assert 0.0 <= tuned["test_accuracy"].iloc[0] <= 100.0
    assert sorted(p.stem for p in (out / "finetune").glob("*.json")) == chosen["top"]  # the other: never trained
    stats = json.loads((out / "data" / "images" / "stats.json").read_text())
    assert (stats["train_images"], stats["test_images"]) == (192, 48)  # 24 / 6 of each class's 30
    assert "probe set: 192 images" in (out / "ranking.md").read_text()


def _absolute_zoo(zoo, tmp_path):
    """The zoo file with absolute checkpoint paths (a relative one is read from the working directory)."""
    path = tmp_path / "zoo.yaml"
    path.write_text((zoo / "zoo.yaml").read_text().replace("checkpoint: experts", f"checkpoint: {zoo}/experts"))
    return path


def test_finetune_top_refuses_a_bad_request_in_one_line(zoo, tmp_path):
    from conftest import snakemake_cmd

    done = subprocess.run(snakemake_cmd("-s", "rules/rank.smk", "-n", "--config", f"images={zoo / 'images'}",
                                        f"zoo={_absolute_zoo(zoo, tmp_path)}", "top=5"), cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode != 0 and "make rank: top=5: choose 1 to 2" in done.stderr, done.stderr[-2000:]
