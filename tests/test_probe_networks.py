"""RSA/DDS's probe networks (configs/probe_network/, zoo_training.architectures.build_probe_network):
the ImageNet-pretrained ones load exactly the weights in the caches timm and torchvision read (fakes
written by data_prep.fake_weights, offline), get a head for the target's classes and give penultimate
features of their width; AlexNet takes 32 px images by resizing them; the probe_model step writes each
network's caches under its own folder."""
import json

import numpy as np
import pytest
import safetensors.torch
import torch
from omegaconf import OmegaConf

from conftest import compose_stage
from data_prep.fake_weights import fill_caches, timm_hub_file, torchvision_hub_file
from data_prep.prepare import prepare
from pipeline.stages import identity_overrides
from zoo_training.architectures import build_model, build_probe_network, penultimate_features

CLASSES = 5
TOY = {"name": "toy", "role": "target", "kind": "synthetic", "num_classes": 3, "train_per_class": 6,
       "test_per_class": 2, "image_size": 32,
       "synthetic": {"families": [1], "motifs": [0, 1, 2], "noise": 0.3, "class_seed": 1, "seed": 2}}


def definitions(benchmark: str = "paper") -> dict:
    """The selection config's probe networks as the benchmark's preset composes them."""
    return OmegaConf.to_container(compose_stage("selection", benchmark).probe_networks, resolve=True)


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    """Fake ImageNet weights of every pretrained probe network, where timm and torchvision look."""
    return fill_caches(tmp_path_factory.mktemp("weights"), definitions())


@pytest.fixture
def offline(caches, monkeypatch):
    """A job's environment (HF_HUB_CACHE, TORCH_HOME, HF_HUB_OFFLINE=1). huggingface_hub reads the first
    and last when it is imported, which other tests have done by now: its constants follow here."""
    import huggingface_hub.constants

    for key, value in caches.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", caches["HF_HUB_CACHE"])
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return caches


def build(name: str, **change):
    d = {**definitions()[name], **change}
    return build_probe_network(d["arch"], CLASSES, d["pretrained"], d["input_size"]).eval()


def test_resnet50_loads_timms_cached_imagenet_weights_with_a_new_head(offline):
    """resnet50.tv_in1k from the hub cache (no download: offline), its 1000-class fc replaced; 2048-d features."""
    cached = safetensors.torch.load_file(timm_hub_file(offline["HF_HUB_CACHE"], "resnet50.tv_in1k"))
    model = build("resnet50")
    state = model.state_dict()
    for key in ("conv1.weight", "layer4.2.conv3.weight", "layer4.2.bn3.running_var"):
        assert torch.equal(state[key], cached[key]), key
    assert cached["fc.weight"].shape == (1000, 2048) and model.get_classifier().weight.shape == (CLASSES, 2048)
    features, logits = penultimate_features(model, torch.randn(2, 3, 32, 32))
    assert features.shape == (2, 2048) and logits.shape == (2, CLASSES)


def test_alexnet_loads_torchvisions_cached_weights_and_takes_32px_images(offline):
    """AlexNet_Weights.IMAGENET1K_V1 from $TORCH_HOME/hub/checkpoints, fc8 replaced; fc7's 4096 features
    (after its ReLU) of 32 px images resized to input_size, which AlexNet cannot take as they are."""
    cached = torch.load(torchvision_hub_file(offline["TORCH_HOME"], "alexnet", "IMAGENET1K_V1"), weights_only=True)
    model = build("alexnet")
    assert definitions()["alexnet"]["input_size"] == 224
    state = model.state_dict()
    for key in ("features.0.weight", "classifier.4.weight"):  # conv1, fc7
        assert torch.equal(state[f"net.net.{key}"], cached[key]), key
    assert cached["classifier.6.weight"].shape == (1000, 4096)
    assert model.get_classifier().weight.shape == (CLASSES, 4096)
    images = torch.randn(2, 3, 32, 32)
    for size in (224, 64):  # the paper's and the rehearsal's input size
        features, logits = penultimate_features(build("alexnet", input_size=size), images)
        assert features.shape == (2, 4096) and logits.shape == (2, CLASSES) and (features >= 0).all()
    with pytest.raises(RuntimeError):
        penultimate_features(build("alexnet", input_size=None), images)  # 32 px: nothing left after the pools


def test_the_mini_probe_network_is_built_as_before():
    """The mini benchmark's resnet18 slot is the mini ResNet, random init, built exactly as
    `build_model` builds it (same weights from the same seed: the mini scores do not move)."""
    d = definitions("mini")["resnet18"]
    assert d["pretrained"] is None and d["input_size"] is None and d["arch"]["timm_name"] is None
    torch.manual_seed(0)
    new = build_probe_network(d["arch"], CLASSES, d["pretrained"], d["input_size"]).state_dict()
    torch.manual_seed(0)
    old = build_model(d["arch"]["family"], CLASSES, None, d["arch"]["kwargs"]).state_dict()
    assert new.keys() == old.keys() and all(torch.equal(new[k], old[k]) for k in new)


def test_probe_model_step_writes_each_network_under_its_folder(offline, tmp_path):
    """step=probe_model for the pretrained AlexNet (the rehearsal's 64 px input, one epoch): its model
    and 4096-d features on every probe set under probe_models/alexnet/<target>/<shots>/."""
    from selection.probe_model import train_probe_models
    from zoo_training.engine import schedule_from

    prepare(TOY, tmp_path / "data" / "toy", ["full", "5"], probe_per_class=4, seed=0)
    cfg = compose_stage("selection", "rehearsal", "step=probe_model", *identity_overrides(
        data_root=str(tmp_path / "data"), targets=["toy"], shots=["5"], probe_set="per_class_4",
        probe_dir=str(tmp_path / "probe_models"), probe_network_names=["alexnet"], methods=["rsa"], batch_size=8))
    assert cfg.probe_networks.alexnet.input_size == 64 and cfg.probe_train.epochs == 1
    written = train_probe_models(cfg, schedule_from(cfg.probe_train))
    assert written == [tmp_path / "probe_models" / "alexnet" / "toy" / "5" / "per_class_4.npz"]
    with np.load(written[0]) as cache:
        assert cache["probe_features"].shape == (12, 4096) and np.isfinite(cache["probe_features"]).all()
    meta = torch.load(written[0].parent / "model.pt", weights_only=True)
    assert (meta["probe_network"], meta["pretrained"], meta["input_size"]) == ("alexnet", "IMAGENET1K_V1", 64)
    # the manifest a selection job depends on, written after the caches it lists
    manifest = tmp_path / "probe_models" / "alexnet" / "toy" / "caches.json"
    assert json.loads(manifest.read_text()) == {"5/per_class_4.npz": [12, 4096]}
    assert manifest.stat().st_mtime_ns >= written[0].stat().st_mtime_ns


def test_an_undefined_probe_network_is_named(tmp_path):
    from selection.probe_model import ProbeNetworkError, train_probe_models

    cfg = compose_stage("selection", "mini", "step=probe_model", *identity_overrides(
        data_root=str(tmp_path), targets=["toy"], probe_set="per_class_4", probe_dir=str(tmp_path),
        probe_network_names=["vgg16"], methods=["rsa"]))
    with pytest.raises(ProbeNetworkError, match="probe network 'vgg16' has no definition"):
        train_probe_models(cfg, None)
