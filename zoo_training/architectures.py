"""The zoo's architecture families, built with timm.

A config names either a stock timm model (`timm_name`, e.g. resnet101 at paper
scale) or a family with explicit constructor arguments (the mini benchmark's
narrow, shallow variants that train in seconds on a CPU).
"""
from __future__ import annotations

from typing import Any

import timm
import torch
from timm.models.densenet import DenseNet
from timm.models.resnet import BasicBlock, Bottleneck, ResNet
from torch import nn

FAMILIES = ("resnet", "densenet")


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
