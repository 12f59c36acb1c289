"""The real configs: every stage composes for every benchmark preset, the paper's values are the ones
the papers fix, a typo or a forgotten preset fails at compose time, and every group composes."""
import pytest
import yaml
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf

from conftest import CONFIGS, PRESETS, compose_stage
from pipeline.stages import STAGES
from zoo_training.engine import milestones_from_fractions

DATASETS = sorted(p.stem for p in (CONFIGS / "dataset").glob("*.yaml"))
ARCHS = sorted(p.stem for p in (CONFIGS / "arch").glob("*.yaml"))
TRAINS = sorted(p.stem for p in (CONFIGS / "train").glob("*.yaml"))
NETWORKS = sorted(p.stem for p in (CONFIGS / "probe_network").glob("*.yaml"))
# the config groups that are a job's identity, given as the rules give them
IDENTITY = {"zoo_training": ["arch=resnet_mini"], "multidomain": ["arch=resnet_mini"], "data_prep": ["dataset=dtd"]}


@pytest.mark.parametrize("benchmark", PRESETS)
@pytest.mark.parametrize("stage", list(STAGES))
def test_every_stage_composes_for_every_benchmark(stage, benchmark):
    cfg = compose_stage(stage, benchmark, *IDENTITY.get(stage, []))
    assert OmegaConf.is_config(cfg)
    if STAGES[stage].step:
        assert cfg.step == STAGES[stage].step


def _schedule(train):
    return (train.epochs, train.lr, milestones_from_fractions(train.epochs, list(train.milestones)), train.batch_size,
            train.momentum, train.weight_decay, train.nesterov, train.gamma)


def test_paper_finetuning_is_sec_4_2():
    """Deshpande Sec. 4.2: lr grid 0.01 / 0.005 / 0.001, 30 epochs, Nesterov 0.9, batch 32, wd 1e-4,
    x0.1 at epochs 15 and 25."""
    cfg = compose_stage("finetune", "paper")
    assert list(cfg.lrs) == [0.01, 0.005, 0.001]
    assert _schedule(cfg.train) == (30, None, (15, 25), 32, 0.9, 1e-4, True, 0.1)


def test_paper_zoo_and_multidomain_are_sec_4_1():
    """Sec. 4.1: 90 epochs, lr 0.1 x0.1 every 30 epochs, SGD momentum 0.9, wd 1e-4, batch 512; the
    multi-domain expert draws 100K images per source per epoch."""
    for stage in ("zoo_training", "multidomain"):
        cfg = compose_stage(stage, "paper", "arch=resnet101")
        assert _schedule(cfg.train) == (90, 0.1, (30, 60), 512, 0.9, 1e-4, False, 0.1)
        assert cfg.train.init_lr is None
    assert compose_stage("multidomain", "paper", "arch=resnet101").per_source_cap == 100_000


def test_paper_probe_network_is_app_c():
    """App. C: RSA/DDS's probe network is a ResNet-18 trained from scratch on the target with the
    fine-tuning recipe of Sec. 4.2 at lr 0.005 (every probe network shares it); LGC projects to 10K dimensions."""
    cfg = compose_stage("selection", "paper")
    resnet18 = cfg.probe_networks.resnet18
    assert (resnet18.arch.family, resnet18.arch.timm_name, resnet18.pretrained, resnet18.input_size) == \
        ("resnet", "resnet18", None, None)
    assert _schedule(cfg.probe_train) == (30, 0.005, (15, 25), 32, 0.9, 1e-4, True, 0.1)
    assert cfg.lgc_dim == 10_000


def test_paper_probe_networks_are_parcs():
    """PARC Sec. 4 / Table 1: ImageNet-pretrained ResNet-50 (timm's tv_in1k: torchvision's IMAGENET1K_V1)
    and AlexNet (torchvision's IMAGENET1K_V1 at 224 px) probe networks; the paper benchmark trains all
    three, ResNet-18 first (plain rsa / dds), and PARC's rows have variants reading theirs."""
    cfg = compose_stage("selection", "paper")
    resnet50, alexnet = cfg.probe_networks.resnet50, cfg.probe_networks.alexnet
    assert (resnet50.arch.family, resnet50.arch.timm_name, resnet50.pretrained, resnet50.input_size) == \
        ("resnet", "resnet50", "tv_in1k", None)
    assert (alexnet.arch.family, alexnet.pretrained, alexnet.input_size) == ("alexnet", "IMAGENET1K_V1", 224)
    for name in ("paper", "rehearsal"):
        bench = yaml.safe_load((CONFIGS / "benchmark" / f"{name}.yaml").read_text())
        assert bench["probe_networks"] == ["resnet18", "resnet50", "alexnet"], name
        variants = bench["selection"]["variants"]
        assert {v.get("probe_network") for v in variants.values() if v["score"] in ("rsa", "dds")} == \
            {"resnet50", "alexnet"}, name
    assert compose_stage("selection", "rehearsal").probe_networks.alexnet.input_size == 64
    from pipeline.benchmark import validate_schema

    mini = yaml.safe_load((CONFIGS / "benchmark" / "mini.yaml").read_text())
    assert validate_schema(mini)["probe_networks"] == ["resnet18"]  # the schema's default


def test_every_shipped_probe_network_is_composed():
    """configs/selection.yaml composes every configs/probe_network/<name>.yaml under its name."""
    assert sorted(compose_stage("selection", "paper").probe_networks) == NETWORKS


@pytest.mark.parametrize("network", NETWORKS)
def test_every_probe_network_composes(network):
    cfg = compose_stage("selection", "paper", f"+probe_network@probe_networks.{network}_again={network}")
    assert cfg.probe_networks[f"{network}_again"].arch.family in ("resnet", "densenet", "alexnet")


def test_paper_probe_sets_and_analysis():
    """Probe sets of 25 per class (Sec. 3), Fig. 7's 50 per class and all images, PARC's 5 draws of
    500 images (Bolya et al. Sec. 5); the analysis fine-tunes the top 3 (Fig. 4, Table 3)."""
    bench = yaml.safe_load((CONFIGS / "benchmark" / "paper.yaml").read_text())
    assert bench["probe_sets"] == {"per_class": 25, "ablation_per_class": [50], "parc_draws": 5}
    assert compose_stage("data_prep", "paper", "dataset=dtd").parc_probe_size == 500
    assert compose_stage("analysis", "paper").top_k == 3


def test_the_rehearsal_is_the_paper_benchmark_but_where_things_go_draws_and_threads():
    """`make rehearsal` runs the paper's DAG as it is: configs/benchmark/rehearsal.yaml equals paper.yaml
    but for its name, preset and folders, PARC's number of draws and the threads per job."""
    paper = yaml.safe_load((CONFIGS / "benchmark" / "paper.yaml").read_text())
    rehearsal = yaml.safe_load((CONFIGS / "benchmark" / "rehearsal.yaml").read_text())
    where = {"benchmark", "preset", "results", "raw_data", "config_dirs", "threads"}
    assert {k: v for k, v in rehearsal.items() if k not in where | {"probe_sets"}} == \
        {k: v for k, v in paper.items() if k not in where | {"probe_sets"}}
    assert {**rehearsal["probe_sets"], "parc_draws": 5} == paper["probe_sets"]
    assert rehearsal["shots"] == ["full", "20", "5"] and len(rehearsal["selection"]["variants"]) > 20


def test_mini_keeps_the_papers_recipes_shortened():
    """The mini presets change sizes only: the same optimiser settings, lr grid and probe-network lr."""
    finetune, selection = compose_stage("finetune", "mini"), compose_stage("selection", "mini")
    assert list(finetune.lrs) == [0.01, 0.005, 0.001] and finetune.train.epochs == 3
    assert selection.probe_train.lr == 0.005
    assert _schedule(selection.probe_train)[2:] == _schedule(finetune.train)[2:]
    assert selection.probe_networks.resnet18.arch.timm_name is None  # the mini ResNet (32 px images)
    assert compose_stage("data_prep", "mini", "dataset=mosaic_target").parc_probe_size == 120


def test_forgotten_preset_fails_at_compose_time():
    from hydra import compose, initialize_config_dir

    import finetune.config  # noqa: F401  (registers the schema)

    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        with pytest.raises(ConfigCompositionException, match="preset"):
            compose(config_name="finetune")


def test_unknown_preset_is_named():
    with pytest.raises(ValueError, match="there is no preset 'nope' for stage 'finetune'"):
        compose_stage("finetune", "nope")


@pytest.mark.parametrize("override", ["bogus=1", "train.epoch=3", "arch.famly=resnet"])
def test_typo_fails_at_compose_time(override):
    with pytest.raises(ConfigCompositionException):
        compose_stage("zoo_training", "mini", "arch=resnet_mini", override)


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_dataset_composes(dataset):
    cfg = compose_stage("data_prep", "mini", f"dataset={dataset}")
    assert cfg.dataset.name == dataset
    assert cfg.dataset.role in ("source", "target")
    assert cfg.dataset.num_classes > 1


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("train", [t for t in TRAINS if t.startswith("zoo")])
def test_every_arch_and_zoo_recipe_composes(arch, train):
    cfg = compose_stage("zoo_training", "paper", f"arch={arch}", f"train={train}")
    assert cfg.arch.family in ("resnet", "densenet")
    assert all(0 < m < 1 for m in cfg.train.milestones) and cfg.train.lr > 0


def test_missing_group_option_is_named():
    with pytest.raises(MissingConfigException):
        compose_stage("zoo_training", "mini", "arch=resnet_huge")


def test_config_dirs_come_before_configs(tmp_path):
    """A benchmark's config_dirs add configs and shadow shipped ones of the same name (the search-path
    plugin hydra_plugins/pipeline_config_dirs; hydra.searchpath alone would append them after configs/)."""
    from pipeline.stages import compose

    dtd = yaml.safe_load((CONFIGS / "dataset" / "dtd.yaml").read_text())
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "dtd.yaml").write_text(yaml.safe_dump({**dtd, "num_classes": 3}))
    identity = ["dataset=dtd", "out_dir=x", "probe_per_class=2"]
    assert compose("data_prep", "mini", identity, config_dirs=[str(tmp_path)]).dataset.num_classes == 3
    assert compose("data_prep", "mini", identity).dataset.num_classes == 47
