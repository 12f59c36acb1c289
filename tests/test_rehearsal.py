"""`make rehearsal`, cut to fit the test budget: the rehearsal driver (data_prep/rehearsal.py) on two
sources and one target of the paper, their fakes in the real raw layouts (ImageNet's three manual
archives placed by hand; RESISC45's zip and UC Merced's checksummed zip downloaded from the local HTTP
server), the rehearsal preset, a tiny timm ResNet, the multi-domain expert in one variant: every rule
of the DAG runs at least once."""
import json

import pytest
import yaml

from conftest import ROOT
from data_prep import rehearsal
from data_prep.fakes import Server, Size, build, fake_config

PAPER = yaml.safe_load((ROOT / "configs/benchmark/rehearsal.yaml").read_text())
RULES = {"data_prep", "zoo_training", "multidomain", "domain_experts", "finetune", "selection", "probe_model",
         "tables", "evaluate", "figures", "artifacts"}


def cut(tmp) -> dict:
    return {**PAPER, "benchmark": "rehearsal_cut", "results": str(tmp / "results"), "raw_data": str(tmp / "raw"),
            "config_dirs": [str(tmp / "configs")], "sources": ["imagenet", "resisc45"], "targets": ["uc_merced"],
            "full_targets": ["uc_merced"], "architectures": {"resnet": "resnet_mini"}, "pools": {"all": None},
            "multidomain": {**PAPER["multidomain"], "variants": ["multi_bn"]},
            # the default probe network only: the pretrained ones' fake weights (~330 MB) and loading are
            # tests/test_probe_networks.py's
            "probe_networks": ["resnet18"],
            "selection": {**PAPER["selection"], "variants": {n: v for n, v in PAPER["selection"]["variants"].items()
                                                             if "probe_network" not in v}}}


@pytest.fixture(scope="module")
def cut_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rehearsal")
    config = tmp / "rehearsal_cut.yaml"
    config.write_text(yaml.safe_dump(cut(tmp)))
    rc = rehearsal.main(["--config", str(config), "--cores", "2"])
    return rc, tmp


@pytest.mark.e2e
def test_the_cut_runs_every_rule_on_fakes_served_over_http(cut_run):
    rc, tmp = cut_run
    assert rc == 0, "\n".join(f"{log}: {log.read_text()[-800:]}" for log in (tmp / "results" / "logs").rglob("*.log")
                               if "error" in log.read_text().lower())
    results = tmp / "results"
    assert RULES <= set(rehearsal.job_counts(results)), rehearsal.job_counts(results)
    for table in ("zoo_accuracy", "finetune", "scores", "selection_eval", "regret", "parc_protocol", "gr_table2"):
        assert (results / "tables" / f"{table}.csv").stat().st_size > 0, table
    assert (results / "figures" / "fig8_theta_f.png").is_file() and (results / "summary.md").is_file()
    # downloaded from the server and verified by checksum (the marker data_prep.download writes), the
    # manual ImageNet archives placed in raw_data as a user would
    assert (tmp / "raw" / "uc_merced" / ".UCMerced_LandUse.zip.verified").is_file()
    assert (tmp / "raw" / "imagenet" / "ILSVRC2012_img_train.tar").is_file()
    for name, classes in (("imagenet", 3), ("resisc45", 3), ("uc_merced", 3)):
        stats = json.loads((results / "data" / name / "stats.json").read_text())
        assert stats["num_classes"] == classes and "REHEARSAL COPY" in stats["notes"]
    stats = json.loads((results / "data" / "uc_merced" / "stats.json").read_text())
    assert stats["shots"] == {"full": 18, "20": 18, "5": 15} and stats["image_size"] == 32  # 20-shot: all 6 a class has


def test_dataset_configs_point_at_the_server_with_the_fakes_checksums(tmp_path):
    changes = build("uc_merced", tmp_path, Size(classes=2, train=3, test=1))
    with Server(tmp_path / "server") as server:
        cfg = fake_config("uc_merced", tmp_path, server.url, changes, Size(classes=2, train=3, test=1), image_size=32)
        (entry,) = cfg["download"]["files"]
        assert entry["urls"] == [f"{server.url}/uc_merced/UCMerced_LandUse.zip"]
        from data_prep.download import fetch

        dest = fetch(entry["urls"], tmp_path / "dl" / entry["name"], sha256=entry["sha256"], size=entry["size"])
    assert dest.stat().st_size == entry["size"] and (cfg["num_classes"], cfg["image_size"]) == (2, 32)
    assert cfg["kind"] == "imagefolder" and cfg["split"]["rule"] == "stratified"  # the real config's reader and split
    again = tmp_path / "again"
    build("uc_merced", again, Size(classes=2, train=3, test=1))
    assert (again / "server/uc_merced/UCMerced_LandUse.zip").read_bytes() == \
        (tmp_path / "server/uc_merced/UCMerced_LandUse.zip").read_bytes()  # reproducible archives
