"""The multi-domain ResNet expert of Deshpande et al. 2021 (Sec. 4.1, Tab. 2).

One network f_{w_s, {w_d}} is trained on all D source datasets: shared weights
w_s plus domain-specific weights w_d. Fine-tuning picks one domain d, so a
multi-domain expert contributes D fine-tunable models f_{w_s, w_d}. The paper
compares three choices of w_d, built here by converting a single-domain timm
ResNet (any depth) in place, walking its modules as
`torch.nn.SyncBatchNorm.convert_sync_batchnorm` does:

- ``shared``: w_d is only the classifier head; the backbone, its BatchNorm
  statistics included, serves every domain.
- ``multi_bn``: every BatchNorm2d becomes a `DomainBatchNorm2d`, one BatchNorm2d
  per domain ("running means, scale and bias parameters"), plus the head.
- ``adapter``: parallel residual adapters (Rebuffi, Bilen, Vedaldi, CVPR 2018):
  every 3x3 convolution inside a residual block gets a per-domain 1x1
  convolution on the same input with the same stride, added to its output
  (`ParallelAdapterConv2d`). As in Rebuffi's parallel setup (their `conv_task`
  and `end_bns`), every BatchNorm is domain-specific too, so Adapter = Multi-BN
  + adapters. The stem (a 7x7 conv here, not a block conv) and the 1x1
  projection shortcuts stay shared: Rebuffi's ResNet-26 has parameter-free
  shortcuts, and adapting a 1x1 conv with a 1x1 conv adds nothing.

Every variant has one Linear head per domain (`DomainLinear`, each with its
own class count), since the source datasets have different label spaces.

Conversion preserves the function of the network it is given: BatchNorms are
copied per domain and adapters start at zero, so a converted ImageNet (or any
single-domain) expert starts as that expert, as Rebuffi initialise from a
pretrained network. Load single-domain weights *before* converting.

State-dict keys: shared weights keep their timm names (``layer1.0.conv2.weight``
even in an adapted conv); domain-specific ones carry the domain index after
``bns``, ``adapters`` or ``heads``::

    layer1.0.bn1.bns.{d}.{weight,bias,running_mean,running_var,num_batches_tracked}
    layer1.0.conv2.adapters.{d}.weight
    fc.heads.{d}.{weight,bias}

`remap_state_dict` turns such a state into the one of domain d's single-domain
expert (`domain_expert`). Only the current domain's modules get gradients, so
with `zero_grad(set_to_none=True)` (the engine's) SGD leaves the other domains'
weights, momentum and weight decay untouched; DDP needs
``find_unused_parameters=True``.
"""
from __future__ import annotations

import copy
import math
import re

import torch
from timm.models.resnet import BasicBlock, Bottleneck
from torch import nn

VARIANTS = ("shared", "multi_bn", "adapter")

# "<module>.(bns|adapters|heads).<d>.<tensor>": the one place the key convention is parsed
_DOMAIN_KEY = re.compile(r"(^|\.)(bns|adapters|heads)\.(\d+)\.")


class DomainBatchNorm2d(nn.Module):
    """One BatchNorm2d per domain (statistics, scale and bias); the current domain's one runs."""

    def __init__(self, bn: nn.BatchNorm2d, num_domains: int):
        super().__init__()
        self.domain = 0
        self.bns = nn.ModuleList(copy.deepcopy(bn) for _ in range(num_domains))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bns[self.domain](x)


class ParallelAdapterConv2d(nn.Conv2d):
    """A shared conv plus a per-domain parallel 1x1 conv: y = W * x + A_d * x (Rebuffi 2018, parallel adapter).

    The adapter has the conv's stride and no padding, so its output lines up
    with the 3x3 output for any dilation. It subclasses Conv2d so the shared
    weight keeps its timm key. Adapters start at zero (function-preserving).
    """

    def __init__(self, conv: nn.Conv2d, num_domains: int):
        w = conv.weight
        super().__init__(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
            conv.groups, conv.bias is not None, conv.padding_mode, device=w.device, dtype=w.dtype,
        )
        self.weight, self.bias = conv.weight, conv.bias
        self.domain = 0
        self.adapters = nn.ModuleList(
            nn.Conv2d(
                conv.in_channels, conv.out_channels, 1, stride=conv.stride, bias=False, device=w.device, dtype=w.dtype
            )
            for _ in range(num_domains)
        )
        for adapter in self.adapters:
            nn.init.zeros_(adapter.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + self.adapters[self.domain](x)


class DomainLinear(nn.Module):
    """One classifier per domain, each with its own class count; sits where timm's `fc` was."""

    def __init__(self, in_features: int, num_classes: list[int], device=None, dtype=None):
        super().__init__()
        self.domain = 0
        self.in_features = in_features
        self.heads = nn.ModuleList(nn.Linear(in_features, n, device=device, dtype=dtype) for n in num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads[self.domain](x)


DOMAIN_MODULES = (DomainBatchNorm2d, ParallelAdapterConv2d, DomainLinear)


def _is_block_conv3x3(module: nn.Module) -> bool:
    return type(module) is nn.Conv2d and module.kernel_size == (3, 3)


def _convert(module: nn.Module, variant: str, num_domains: int, in_block: bool) -> nn.Module:
    if variant != "shared" and isinstance(module, nn.BatchNorm2d):
        return DomainBatchNorm2d(module, num_domains)
    if variant == "adapter" and in_block and _is_block_conv3x3(module):
        return ParallelAdapterConv2d(module, num_domains)
    in_block = in_block or isinstance(module, (BasicBlock, Bottleneck))
    for name, child in module.named_children():
        module.add_module(name, _convert(child, variant, num_domains, in_block))
    return module


def to_multi_domain(model: nn.Module, variant: str, num_classes: list[int]) -> nn.Module:
    """Convert a timm ResNet in place into a multi-domain one with ``len(num_classes)`` domains.

    `num_classes[d]` is domain d's class count. Heads are freshly initialised
    (seed the global RNG before calling); everything else is converted as the
    module docstring says. Returns `model`, set to domain 0.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown multi-domain variant {variant!r}; known: {', '.join(VARIANTS)}")
    if not num_classes or min(num_classes) < 1:
        raise ValueError(f"num_classes must list one positive class count per domain, got {num_classes!r}")
    w = next(model.parameters())
    model = _convert(model, variant, len(num_classes), in_block=False)
    model.fc = DomainLinear(model.num_features, list(num_classes), device=w.device, dtype=w.dtype)
    model.num_classes = list(num_classes)
    return model


def num_domains(model: nn.Module) -> int:
    return len(model.fc.heads)


def set_domain(model: nn.Module, d: int) -> nn.Module:
    """Switch every domain-specific module of `model` to domain `d`; returns `model`."""
    if not 0 <= d < num_domains(model):
        raise IndexError(f"domain {d} out of range: the model has {num_domains(model)} domains")
    for module in model.modules():
        if isinstance(module, DOMAIN_MODULES):
            module.domain = d
    return model


def remap_state_dict(state: dict[str, torch.Tensor], d: int) -> dict[str, torch.Tensor]:
    """Domain d's single-domain expert state from a multi-domain state (other domains dropped).

    Shared and Multi-BN give plain timm ResNet keys (``bn1.bns.{d}.weight`` ->
    ``bn1.weight``, ``fc.heads.{d}.bias`` -> ``fc.bias``). An Adapter state
    (one with ``adapters`` keys) keeps the domain axis as index 0, the keys of
    ``to_multi_domain(resnet, "adapter", [n_d])``.
    """
    keep_axis = any(".adapters." in key for key in state)
    out = {}
    for key, value in state.items():
        match = _DOMAIN_KEY.search(key)
        if match is None:
            out[key] = value
        elif int(match.group(3)) == d:
            axis = f"{match.group(2)}.0." if keep_axis else ""
            out[key[: match.start()] + match.group(1) + axis + key[match.end() :]] = value
    return out


def _single_domain(module: nn.Module, d: int, keep_axis: bool) -> nn.Module:
    # fresh modules with domain d's shapes; their values come from the strict load
    if isinstance(module, DomainBatchNorm2d):
        bn = copy.deepcopy(module.bns[d])
        bn.reset_parameters()
        return DomainBatchNorm2d(bn, 1) if keep_axis else bn
    if isinstance(module, DomainLinear):
        head = module.heads[d]
        w = head.weight
        if keep_axis:
            return DomainLinear(head.in_features, [head.out_features], device=w.device, dtype=w.dtype)
        return nn.Linear(head.in_features, head.out_features, device=w.device, dtype=w.dtype)
    if isinstance(module, ParallelAdapterConv2d):
        return ParallelAdapterConv2d(module, 1)
    for name, child in module.named_children():
        module.add_module(name, _single_domain(child, d, keep_axis))
    return module


def domain_expert(model: nn.Module, d: int) -> nn.Module:
    """The fine-tunable single-domain network f_{w_s, w_d} of domain `d`, independent of `model`.

    Shared / Multi-BN: a plain timm ResNet (domain d's BatchNorms and head).
    Adapter: a ResNet converted with one domain (domain d's adapters,
    BatchNorms and head). Built by swapping fresh single-domain modules into a
    copy of `model` and loading `remap_state_dict(model.state_dict(), d)` with
    ``strict=True``, so the key sets are checked; same mode (train/eval) as `model`.
    """
    keep_axis = any(isinstance(m, ParallelAdapterConv2d) for m in model.modules())
    if not 0 <= d < num_domains(model):
        raise IndexError(f"domain {d} out of range: the model has {num_domains(model)} domains")
    expert = _single_domain(copy.deepcopy(model), d, keep_axis)
    expert.load_state_dict(remap_state_dict(model.state_dict(), d), strict=True)
    expert.num_classes = model.fc.heads[d].out_features
    return expert.train(model.training)


def parameter_groups(model: nn.Module) -> dict:
    """Parameter names: {"shared": [...], "domain": {d: [...]}} (w_s and the w_d of the paper)."""
    groups: dict = {"shared": [], "domain": {d: [] for d in range(num_domains(model))}}
    for name, _ in model.named_parameters():
        match = _DOMAIN_KEY.search(name)
        if match is None:
            groups["shared"].append(name)
        else:
            groups["domain"][int(match.group(3))].append(name)
    return groups


def domain_epoch(
    sizes: list[int], cap: int, batch_size: int, generator: torch.Generator
) -> list[tuple[int, torch.Tensor]]:
    """One epoch's plan: (domain, image indices) batches, every batch from a single domain.

    Follows the paper: from each domain `cap` images (100K there), drawn with
    replacement when `cap` exceeds the domain's size and without replacement
    otherwise, which balances domains of very different sizes (25K to 1.8M).
    Batches stay single-domain because BatchNorm statistics are per domain;
    their order is shuffled across domains so no domain trains last. Each
    domain's last batch may be short. Deterministic for a seeded `generator`.
    """
    if cap < 1 or batch_size < 1 or not sizes or min(sizes) < 1:
        raise ValueError(
            f"domain_epoch needs cap >= 1, batch_size >= 1 and non-empty domains; "
            f"got cap={cap}, batch_size={batch_size}, sizes={sizes}"
        )
    batches = []
    for d, size in enumerate(sizes):
        if cap > size:
            draw = torch.randint(size, (cap,), generator=generator)
        else:
            draw = torch.randperm(size, generator=generator)[:cap]
        batches += [(d, draw[i * batch_size : (i + 1) * batch_size]) for i in range(math.ceil(cap / batch_size))]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
