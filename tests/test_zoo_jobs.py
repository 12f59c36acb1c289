"""The zoo-training jobs as the DAG runs them: the multi-domain expert, its split into domain
experts, a resumed multi-domain run, and a 2-rank DDP run under torchrun (gloo, CPU)."""
import json
import subprocess
import sys

import pytest
import torch
import yaml

from conftest import ROOT, kill_training_in_epoch
from data_prep.prepare import prepare
from zoo_training import engine
from zoo_training.experts import load_expert
from zoo_training.multidomain import domain_epoch

SOURCES = {"mosaic": {"families": [1], "class_seed": 2, "seed": 102}, "lattice": {"families": [2], "class_seed": 3, "seed": 103}}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for name, gen in SOURCES.items():
        dataset = {"name": name, "role": "source", "kind": "synthetic", "num_classes": 4, "train_per_class": 12,
                   "test_per_class": 4, "image_size": 16,
                   "synthetic": {"motifs": list(range(16)), "noise": 0.3, **gen}}
        prepare(dataset, root / name, ["full"], probe_per_class=4, seed=0)
    return root


def _zoo(*args, torchrun=0, cwd=ROOT):
    cmd = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={torchrun}", "-m"]
           if torchrun else [sys.executable, "-m"]) + ["zoo_training", *args, "arch=resnet_mini", "train.epochs=2",
                                                        "train.batch_size=16"]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("variant", ["multi_bn", "adapter"])
def test_multidomain_expert_and_its_domain_experts(data_root, tmp_path, variant):
    out = tmp_path / "md"
    r = _zoo("step=multidomain", "preset=mini/multidomain", f"variant={variant}", "sources=[mosaic,lattice]",
             f"data_root={data_root}", "per_source_cap=30", f"out_dir={out}", f"checkpoint={tmp_path / 'last.pt'}",
             f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 0, r.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["variant"] == variant and set(metrics["source_test_accuracy"]) == set(SOURCES)
    assert metrics["source_images"] == {"mosaic": 48, "lattice": 48} and not (tmp_path / "last.pt").exists()
    r = _zoo("step=domain_experts", "preset=mini/multidomain", f"init={out / 'model.pt'}",
             "experts=[resnet-mosaic-md,resnet-lattice-md]",
             f"out_dir={tmp_path / 'experts'}", f"hydra.run.dir={tmp_path / 'run2'}")
    assert r.returncode == 0, r.stderr[-2000:]
    model, meta = load_expert(tmp_path / "experts/resnet-lattice-md/model.pt")  # strict=True inside
    assert meta["domain"] == 1 and meta["variant"] == variant
    assert any(".adapters." in k for k in model.state_dict()) == (variant == "adapter")
    record = json.loads((tmp_path / "experts/resnet-lattice-md/metrics.json").read_text())
    assert record["init"] == "multidomain" and record["source_test_accuracy"] == metrics["source_test_accuracy"]["lattice"]
    # a wrong expert id for a domain is a clean error
    r = _zoo("step=domain_experts", "preset=mini/multidomain", f"init={out / 'model.pt'}",
             "experts=[resnet-lattice-md,resnet-mosaic-md]",
             f"out_dir={tmp_path / 'bad'}", f"hydra.run.dir={tmp_path / 'run3'}")
    assert r.returncode == 1 and "does not name domain 0" in r.stderr and "Traceback" not in r.stderr


def test_multidomain_run_resumes_from_its_checkpoint(data_root, tmp_path, monkeypatch):
    """The engine's resume works for the multi-domain plan too: kill in epoch 2, rerun, same weights."""
    from data_prep.readers import PreparedDataset
    from zoo_training.architectures import build_model
    from zoo_training.multidomain import set_domain, to_multi_domain

    sources = [PreparedDataset(data_root / s) for s in SOURCES]
    trains = [s.train() for s in sources]
    schedule = engine.SGDSchedule(lr=0.05, epochs=3, milestones=(2,), batch_size=16)

    def model():
        torch.manual_seed(0)
        kwargs = yaml.safe_load((ROOT / "configs/arch/resnet_mini.yaml").read_text())["kwargs"]
        return to_multi_domain(build_model("resnet", 4, kwargs=kwargs), "multi_bn", [4, 4])

    def plan(generator):
        return domain_epoch([len(t) for t in trains], 40, schedule.batch_size, generator)

    reference = model()
    engine.fit(reference, trains, schedule, seed=3, plan=plan, set_domain=set_domain)
    checkpoint = tmp_path / "last.pt"
    kill_training_in_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        engine.fit(model(), trains, schedule, seed=3, checkpoint=checkpoint, plan=plan, set_domain=set_domain)
    monkeypatch.undo()
    resumed = model()
    engine.fit(resumed, trains, schedule, seed=3, checkpoint=checkpoint, plan=plan, set_domain=set_domain)
    assert all(torch.equal(a, b) for a, b in zip(reference.state_dict().values(), resumed.state_dict().values()))


def test_ddp_under_torchrun_writes_one_expert(data_root, tmp_path):
    """Two ranks (gloo on the CPU) train one expert; only rank 0 writes."""
    r = _zoo("step=expert", "preset=mini/zoo_training", "expert=resnet-mosaic", "source=mosaic", f"source_dir={data_root / 'mosaic'}",
             f"out_dir={tmp_path / 'expert'}", f"checkpoint={tmp_path / 'last.pt'}", f"hydra.run.dir={tmp_path / 'run'}",
             torchrun=2)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((tmp_path / "expert/metrics.json").read_text())
    assert len(metrics["history"]) == 2 and metrics["source_images"] == 48
    assert metrics["gmacs"] > 0 and metrics["input_size"] == 16
    load_expert(tmp_path / "expert/model.pt")


@pytest.mark.parametrize("variant", ["adapter"])  # Multi-BN: tests/test_slurm_pipeline.py, 2 ranks as well
def test_multidomain_expert_under_torchrun(data_root, tmp_path, variant):
    """Two ranks (gloo on the CPU) train the multi-domain expert: the domain switch acts on the model
    inside the DDP wrapper, each domain's test accuracy is summed over the ranks, rank 0 writes."""
    out = tmp_path / "md"
    r = _zoo("step=multidomain", "preset=mini/multidomain", f"variant={variant}", "sources=[mosaic,lattice]",
             f"data_root={data_root}", "per_source_cap=30", f"out_dir={out}", f"checkpoint={tmp_path / 'last.pt'}",
             f"hydra.run.dir={tmp_path / 'run'}", torchrun=2)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["variant"] == variant and len(metrics["history"]) == 2
    assert all(0 <= a <= 100 for a in metrics["source_test_accuracy"].values())
    r = _zoo("step=domain_experts", "preset=mini/multidomain", f"init={out / 'model.pt'}",
             "experts=[resnet-mosaic-md,resnet-lattice-md]", f"out_dir={tmp_path / 'experts'}",
             f"hydra.run.dir={tmp_path / 'run2'}")
    assert r.returncode == 0, r.stderr[-2000:]
    load_expert(tmp_path / "experts/resnet-mosaic-md/model.pt")
