"""The zoo's architecture families, built with timm, and RSA/DDS's probe networks.

A config names either a stock timm model (`timm_name`, e.g. resnet101 at paper
scale) or a family with explicit constructor arguments (the mini benchmark's
narrow, shallow variants that train in seconds on a CPU).

A probe network (`build_probe_network`, configs/probe_network/<name>.yaml) is one of those, or
torchvision's AlexNet, random or with ImageNet weights (PARC Sec. 4: ImageNet-pretrained
AlexNet / ResNet-50 fine-tuned on the target), with a `num_classes` head and timm's interface
(`forward_features`, `forward_head(pre_logits=True)`, `get_classifier`, `reset_classifier`), so
`penultimate_features` reads every network alike.
"""
from __future__ import annotations

from typing import Any

import timm
import torch
import torch.nn.functional as F
from timm.models.densenet import DenseNet
from timm.models.resnet import BasicBlock, Bottleneck, ResNet
from torch import nn

FAMILIES = ("resnet", "densenet")
PROBE_FAMILIES = FAMILIES + ("alexnet",)  # alexnet: torchvision's (timm has none)


def build_model(family: str, num_classes: int, timm_name: str | None = None, kwargs: dict[str, Any] | None = None) -> nn.Module:
    """A randomly initialised network with a `num_classes` head."""
    if family not in FAMILIES:
        raise ValueError(f"unknown architecture family {family!r}; known: {', '.join(FAMILIES)}")
    if timm_name:
        return timm.create_model(timm_name, pretrained=False, num_classes=num_classes)
    kwargs = dict(kwargs or {})
    if family == "resnet":
        block = {"basic": BasicBlock, "bottleneck": Bottleneck}[kwargs.pop("block", "basic")]
        return ResNet(block=block, num_classes=num_classes, **_tuples(kwargs))
    return DenseNet(num_classes=num_classes, **_tuples(kwargs))


def _tuples(kwargs: dict[str, Any]) -> dict[str, Any]:
    # OmegaConf hands lists; timm's constructors expect tuples
    return {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in kwargs.items()}


class AlexNet(nn.Module):
    """torchvision's AlexNet (`torchvision.models.alexnet`, the "one weird trick" variant whose
    ImageNet weights are `AlexNet_Weights.IMAGENET1K_V1`) behind timm's interface.

    (N, 3, H, W), H, W >= 63 -> forward_features: (N, 256, h, w) after the last max pool ->
    forward_head(pre_logits=True): (N, 4096), fc7 after its ReLU (adaptive pool to 6 x 6, flatten,
    dropout-fc6-ReLU-dropout-fc7-ReLU; dropout is off in eval mode) -> the head: (N, num_classes),
    the last Linear (fc8)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.net.classifier[:-1](torch.flatten(self.net.avgpool(x), 1))
        return x if pre_logits else self.get_classifier()(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Linear:
        return self.net.classifier[-1]

    def reset_classifier(self, num_classes: int) -> None:
        self.net.classifier[-1] = nn.Linear(self.get_classifier().in_features, num_classes)


class ResizedInput(nn.Module):
    """A network that first resizes its (N, 3, H, W) input to (N, 3, size, size), bilinear (a no-op
    at that size): e.g. AlexNet, whose three stride-2 max pools after its stride-4 stem need at
    least 63 px, on 32 px images. timm's interface is passed through."""

    def __init__(self, net: nn.Module, size: int):
        super().__init__()
        self.net, self.size = net, int(size)

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) == (self.size, self.size):
            return x
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(self.resize(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.net.forward_head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.resize(x))

    def get_classifier(self) -> nn.Module:
        return self.net.get_classifier()

    def reset_classifier(self, num_classes: int) -> None:
        self.net.reset_classifier(num_classes)


def build_probe_network(arch: dict[str, Any], num_classes: int, pretrained: str | None = None,
                        input_size: int | None = None) -> nn.Module:
    """RSA/DDS's probe network (a configs/probe_network/<name>.yaml definition) with a fresh
    `num_classes` head, in timm's interface.

    - `pretrained` null: `build_model` (random init; Deshpande App. C's ResNet-18);
    - timm family with `pretrained` a timm tag: timm's pretrained weights of `<timm_name>.<tag>`
      (e.g. resnet50.tv_in1k, torchvision's IMAGENET1K_V1 ResNet-50 weights republished by timm)
      from the Hugging Face hub cache (`HF_HUB_CACHE`; `HF_HUB_OFFLINE=1` reads a filled cache
      only), then `reset_classifier(num_classes)`;
    - family alexnet: torchvision's AlexNet, with `pretrained` an `AlexNet_Weights` member (e.g.
      IMAGENET1K_V1) loaded by torchvision's weights API from the torch hub cache
      (`$TORCH_HOME/hub/checkpoints/<file>`: an existing file is loaded, not downloaded), its last
      Linear replaced by a `num_classes` one.
    `input_size`: the network resizes its input to that side first (`ResizedInput`); null keeps it.
    """
    family = arch["family"]
    if family not in PROBE_FAMILIES:
        raise ValueError(f"unknown probe-network family {family!r}; known: {', '.join(PROBE_FAMILIES)}")
    if family == "alexnet":
        from torchvision.models import AlexNet_Weights, alexnet

        if pretrained and pretrained not in AlexNet_Weights.__members__:
            raise ValueError(f"pretrained {pretrained!r} is not an AlexNet_Weights member: {list(AlexNet_Weights.__members__)}")
        model = AlexNet(alexnet(weights=AlexNet_Weights[pretrained] if pretrained else None))
        model.reset_classifier(num_classes)
    elif pretrained:
        if not arch.get("timm_name"):
            raise ValueError(f"pretrained {pretrained!r} needs a stock timm model (timm_name), not constructor kwargs")
        model = timm.create_model(f"{arch['timm_name']}.{pretrained}", pretrained=True)
        model.reset_classifier(num_classes)
    else:
        model = build_model(family, num_classes, arch.get("timm_name"), arch.get("kwargs"))
    return ResizedInput(model, input_size) if input_size else model


def penultimate_features(model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(features before the classifier, logits) from one forward pass."""
    features = model.forward_head(model.forward_features(images), pre_logits=True)
    return features, model.get_classifier()(features)


@torch.no_grad()
def dataset_features(model: nn.Module, data, batch_size: int = 256,
                     device: torch.device = torch.device("cpu")) -> tuple[torch.Tensor, torch.Tensor]:
    """(penultimate features, logits) of every image of `data`, in order, on the CPU (eval mode)."""
    model.eval()
    features, logits = [], []
    for start in range(0, len(data), batch_size):
        images, _ = data.batch(torch.arange(start, min(start + batch_size, len(data))))
        f, z = penultimate_features(model, images.to(device))
        features.append(f.cpu())
        logits.append(z.cpu())
    return torch.cat(features), torch.cat(logits)


def depth(model: nn.Module) -> int:
    """Weight layers on the main path, as the '101' of ResNet-101 and '169' of DenseNet-169 count them.

    ResNet's 1x1 projection shortcuts ('downsample') are not counted; DenseNet's transition
    convolutions are.
    """
    return sum(
        isinstance(m, (nn.Conv2d, nn.Linear)) and "downsample" not in name for name, m in model.named_modules()
    )


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def gmacs(model: nn.Module, input_size: int) -> float:
    """Multiply-accumulates of one forward pass of one image, in billions (Li et al.'s GMACs
    model meta-feature), counted by torch's FLOP counter (2 FLOPs per MAC)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, input_size, input_size))
    model.train(was_training)
    return counter.get_total_flops() / 2e9
