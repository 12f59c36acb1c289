"""Zoo files: experts trained here, from timm's hub cache and from torchvision's weights, each through
the real loading code, offline (caches and weight files built here with random weights)."""
import hashlib

import numpy as np
import pytest
import torch

from data_prep.fake_weights import timm_hub_file, torchvision_hub_file, write_timm_weights, write_torchvision_weights
from zoo_training.architectures import penultimate_features
from zoo_training.zoo import ZooEntry, ZooError, load_entry, read_zoo

TIMM = "test_resnet.r160_in1k"  # timm's tiny test network: 160 px, its own preprocessing
TORCHVISION = ("resnet18", "IMAGENET1K_V1")


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo_weights")
    write_timm_weights(root / "hf", TIMM, seed=1)
    write_torchvision_weights(root / "torch", *TORCHVISION, seed=2)
    return {"HF_HUB_CACHE": str(root / "hf"), "TORCH_HOME": str(root / "torch"), "HF_HUB_OFFLINE": "1"}


@pytest.fixture
def offline(caches, monkeypatch):
    """HF_HUB_OFFLINE=1 with the caches above; huggingface_hub read its constants at import."""
    import huggingface_hub.constants

    for key, value in caches.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", caches["HF_HUB_CACHE"])
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return caches


def _zoo(tmp_path, text):
    path = tmp_path / "zoo.yaml"
    path.write_text(text)
    return path


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_torchvision_expert_from_the_torch_hub_cache(offline, tmp_path):
    """The weights enum's file in $TORCH_HOME/hub/checkpoints, torchvision's own transform (224 / 256,
    bilinear), the last Linear as the head, its input the penultimate features."""
    import torchvision

    [entry] = read_zoo(_zoo(tmp_path, "experts:\n  - {name: r18, torchvision: ResNet18_Weights.IMAGENET1K_V1}\n"))
    assert entry == ZooEntry("r18", "torchvision", "ResNet18_Weights.IMAGENET1K_V1")
    expert = load_entry(entry)
    assert expert.preprocessing.as_dict() == {"input_size": 224, "resize": 256, "mean": [0.485, 0.456, 0.406],
                                              "std": [0.229, 0.224, 0.225], "interpolation": "bilinear"}
    assert expert.source_classes == 1000
    reference = torchvision.models.resnet18()
    reference.load_state_dict(torch.load(torchvision_hub_file(offline["TORCH_HOME"], *TORCHVISION), weights_only=True))
    x = torch.randn(2, 3, 64, 64)
    features, logits = penultimate_features(expert.model, x)
    with torch.no_grad():
        torch.testing.assert_close(logits, reference.eval()(x))
    assert features.shape == (2, 512)
    expert.model.reset_classifier(7)
    assert expert.model(x).shape == (2, 7)


def test_timm_expert_from_the_hub_cache_brings_its_own_preprocessing(offline, tmp_path):
    [entry] = read_zoo(_zoo(tmp_path, f"experts:\n  - {{name: tiny, timm: {TIMM}}}\n"))
    expert = load_entry(entry)
    import safetensors.torch

    cached = safetensors.torch.load_file(timm_hub_file(offline["HF_HUB_CACHE"], TIMM))
    state = expert.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in cached.items())
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(TIMM)  # 160 px, crop_pct 0.95, mean = std = 0.5: not ImageNet's 224 recipe
    assert expert.preprocessing.as_dict() == {"input_size": 160, "resize": int(160 / cfg.crop_pct), "mean": list(cfg.mean),
                                              "std": list(cfg.std), "interpolation": cfg.interpolation}
    assert cfg.mean == (0.5, 0.5, 0.5) and cfg.input_size == (3, 160, 160)
    from PIL import Image

    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 200, 3), dtype=np.uint8))
    assert expert.transform(image).shape == (3, 160, 160)


def test_own_weights_with_a_checksum_never_touch_the_shared_cache(offline, tmp_path):
    """`weights:` + `sha256:`: the architecture of the named weights with the user's state dict; a
    wrong checksum is one line, before anything loads."""
    import torchvision

    mine = torchvision.models.resnet18()
    torch.nn.init.constant_(mine.fc.bias, 0.5)
    torch.save(mine.state_dict(), tmp_path / "mine.pth")
    shared = torchvision_hub_file(offline["TORCH_HOME"], *TORCHVISION)
    before = _sha256(shared)
    path = _zoo(tmp_path, "experts:\n  - name: mine\n    torchvision: ResNet18_Weights.IMAGENET1K_V1\n"
                          f"    weights: mine.pth\n    sha256: {_sha256(tmp_path / 'mine.pth')}\n")
    [entry] = read_zoo(path, root=tmp_path)
    expert = load_entry(entry, root=tmp_path)
    assert torch.equal(expert.model.get_classifier().bias, torch.full((1000,), 0.5))
    assert _sha256(shared) == before
    bad = ZooEntry("mine", "torchvision", entry.spec, "mine.pth", "0" * 64)
    with pytest.raises(ZooError, match="SHA-256"):
        load_entry(bad, root=tmp_path)


def test_a_checkpoint_of_this_pipeline_carries_its_preprocessing(tmp_path):
    from zoo_training.architectures import build_model
    from zoo_training.experts import save_expert

    arch = {"family": "resnet", "kwargs": {"layers": [1, 1, 1, 1], "channels": [4, 8, 8, 8]}}
    model = build_model("resnet", 3, kwargs=arch["kwargs"])
    prep = {"input_size": 32, "resize": 32, "mean": [0.5] * 3, "std": [0.25] * 3, "interpolation": "bilinear"}
    save_expert(tmp_path / "experts" / "resnet-a" / "model.pt", model, arch, 3, expert="resnet-a", source="a",
                preprocessing=prep, classes=["x", "y", "z"])
    save_expert(tmp_path / "old" / "model.pt", model, arch, 3, expert="resnet-b", source="b")
    [entry, old] = read_zoo(_zoo(tmp_path, "experts:\n  - {name: a, checkpoint: experts/resnet-a}\n"
                                           "  - {name: b, checkpoint: old/model.pt}\n"), root=tmp_path)
    expert = load_entry(entry, root=tmp_path)
    assert expert.preprocessing.as_dict() == prep and expert.source == "a" and expert.source_classes == 3
    assert expert.meta["classes"] == ["x", "y", "z"]
    with pytest.raises(ZooError, match="records no preprocessing"):
        load_entry(old, root=tmp_path)


@pytest.mark.parametrize("text,message", [
    ("experts: []\n", "non-empty list"),
    ("experts:\n  - {name: a}\n", "no kind"),
    ("experts:\n  - {name: a, timm: x.y, torchvision: ResNet18_Weights.IMAGENET1K_V1}\n", "several kinds"),
    ("experts:\n  - {name: a, torchvision: ResNet18_Weights.IMAGENET1K_V1}\n"
     "  - {name: a, torchvision: ResNet18_Weights.IMAGENET1K_V1}\n", "used twice"),
    ("experts:\n  - {name: a, checkpoint: nowhere}\n", "no checkpoint at"),
    ("experts:\n  - {name: a, torchvision: ResNet18_Weights.NOPE}\n", "not a torchvision weights enum member"),
    ("experts:\n  - {name: a, timm: resnet18}\n", "no pretrained tag"),
    ("experts:\n  - {name: a, timm: resnet18.nope_in1k}\n", "no pretrained model"),
    ("experts:\n  - {name: a, torchvision: ResNet18_Weights.IMAGENET1K_V1, weights: w.pth}\n", "go together"),
    ("experts:\n  - {name: a, torchvision: ResNet18_Weights.IMAGENET1K_V1, weights: w.pth, sha256: abc}\n", "64 hexadecimal"),
    ("experts:\n  - {name: a, torchvision: ResNet18_Weights.IMAGENET1K_V1, weights: w.pth, sha256: " + "a" * 64 + "}\n",
     "does not exist"),
    ("experts:\n  - {name: a, torchvision: ResNet18_Weights.IMAGENET1K_V1, url: x}\n", "unknown key"),
])
def test_a_bad_zoo_file_is_one_line_naming_the_entry(tmp_path, text, message):
    with pytest.raises(ZooError, match=message) as err:
        read_zoo(_zoo(tmp_path, text), root=tmp_path)
    assert "\n" not in str(err.value) and "zoo" in str(err.value)


def test_offline_without_a_cached_file_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    import socket

    def no_network(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", lambda self, *a: no_network())
    with pytest.raises(ZooError, match="torch hub cache"):
        load_entry(ZooEntry("r18", "torchvision", "ResNet18_Weights.IMAGENET1K_V1"))


@pytest.mark.parametrize("name", ["logme_imagenet", "guided_timm", "timm_mixed"])
def test_the_shipped_zoos_read(name):
    from conftest import ROOT

    entries = read_zoo(ROOT / "configs" / "zoo" / f"{name}.yaml")
    assert len(entries) >= 7 and {e.kind for e in entries} <= {"timm", "torchvision"}


def test_a_torchvision_expert_fine_tunes_with_the_same_engine(offline):
    """A new head for the target's classes, then the shared engine (zoo_training.engine.fit)."""
    from data_prep.readers import ImageArrays
    from zoo_training.engine import SGDSchedule, fit
    from zoo_training.experts import backbone_state, new_head, restore_backbone

    expert = load_entry(ZooEntry("r18", "torchvision", "ResNet18_Weights.IMAGENET1K_V1"))
    pristine = backbone_state(expert.model)
    g = torch.Generator().manual_seed(0)
    data = ImageArrays(torch.randint(0, 256, (12, 32, 32, 3), generator=g, dtype=torch.uint8), torch.arange(12) % 3)
    result = fit(new_head(expert.model, 3, seed=0), data, SGDSchedule(lr=0.01, epochs=1, milestones=(), batch_size=6),
                 seed=0, test=data)
    assert 0.0 <= result["test_accuracy"] <= 100.0 and expert.model.get_classifier().out_features == 3
    restore_backbone(expert.model, pristine)
    assert torch.equal(expert.model.state_dict()["net.conv1.weight"], pristine["net.conv1.weight"])
