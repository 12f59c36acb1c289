"""pipeline.resources: what a job asks of the machine, from the benchmark's site block."""
import pytest

from pipeline.benchmark import load_benchmark
from pipeline.resources import Site, all_images, download_mb, held_out_images, train_images

DEFAULTS = load_benchmark({})["site"]  # the schema's defaults


def test_training_images_follow_the_config_and_the_shots():
    imagenet = {"num_classes": 1000, "train_per_class": 732, "paper_train": 1281167, "paper_test": 50000}
    assert train_images(imagenet) == 732_000 and train_images(imagenet, "20") == 20_000
    assert all_images(imagenet) == 1281167 + 50000 and held_out_images(imagenet) == 50000
    generated = {"num_classes": 16, "train_per_class": 60}
    assert train_images(generated) == 960 and held_out_images(generated) == 240
    assert download_mb({"download": {"files": [{"size": 2_000_000}, {"size": None}]}}) == 2.0


def test_gpus_and_ranks():
    site = Site(DEFAULTS)
    assert (site.gpus("zoo_training", 8), site.ranks("zoo_training", 8)) == (8, 8)
    assert (site.gpus("zoo_training", 4), site.ranks("zoo_training", 4)) == (4, 4)  # a 4-GPU node
    assert (site.gpus("finetune", 8), site.gpus("data_prep", 8)) == (1, 0)
    assert (site.gpus("zoo_training", None), site.ranks("zoo_training", None)) == (0, 1)  # no GPUs given
    cpu = Site(DEFAULTS, device="cpu")
    assert (cpu.gpus("zoo_training", 4), cpu.ranks("zoo_training", 4), cpu.ranks("selection", 4)) == (0, 4, 1)


def test_runtime_is_the_work_at_the_stated_rate_clipped_to_the_site():
    site = Site({**DEFAULTS, "max_runtime_h": 2})
    # 800,000 training images at 1,000 images/s on each of 8 GPUs: 100 s, twice over: 4 min -> the 15 min floor
    assert site.runtime_minutes(gpus=8, ranks=8, arch="resnet101", train=800_000) == 15
    # 24M images + 3M forward (a third): 25M / 8,000 = 3,125 s, x2 = 105 min
    assert site.runtime_minutes(gpus=8, ranks=8, arch="resnet101", train=24e6, forward=3e6) == 105
    assert site.runtime_minutes(gpus=8, ranks=8, arch="unknown_arch", train=24e6) == 120  # 500 img/s, capped at 2 h
    assert site.runtime_minutes(gpus=0, ranks=2, train=24_000) == 20  # 20 img/s per CPU rank: 600 s x2


@pytest.mark.parametrize("request_kind", ["gpus", "gres"])
def test_slurm_requests(request_kind):
    site = Site({**DEFAULTS, "account": "proj", "gpu_partition": "a100", "cpu_partition": "cpu",
                 "gpu_request": request_kind})
    train = site.slurm(8, 8)
    assert train["slurm_partition"] == "a100" and train["slurm_account"] == "proj"
    assert train["cpus_per_task"] == 48 and train["mem_mb"] == 384_000
    assert (train["gpu"], train.get("gres")) == ((8, None) if request_kind == "gpus" else (0, "gpu:8"))
    prep = site.slurm(0, 1)
    assert prep == {"slurm_partition": "cpu", "slurm_account": "proj", "gpu": 0, "cpus_per_task": 16, "mem_mb": 32_000}
    assert site.slurm(0, 4)["cpus_per_task"] == 24  # CPU ranks (device=cpu) get a GPU's share each
