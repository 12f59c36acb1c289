"""Expert checkpoints: weights plus what is needed to rebuild the network without a config."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from zoo_training.architectures import build_model


def save_expert(path: str | Path, model: nn.Module, arch: dict, num_classes: int, **meta) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"arch": arch, "num_classes": num_classes, "state_dict": model.state_dict(), **meta}, tmp)
    os.replace(tmp, path)


def load_expert(path: str | Path) -> tuple[nn.Module, dict]:
    """The expert network with its source head, and its checkpoint metadata."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"expert weights {path} are missing: run the zoo_training stage for this expert first")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(state["arch"]["family"], state["num_classes"], state["arch"].get("timm_name"), state["arch"].get("kwargs"))
    if state.get("variant") == "adapter":  # a domain of the Adapter multi-domain expert keeps its adapter
        from zoo_training.multidomain import to_multi_domain

        model = to_multi_domain(model, "adapter", [state["num_classes"]])
    model.load_state_dict(state["state_dict"], strict=True)
    return model, {k: v for k, v in state.items() if k != "state_dict"}


def backbone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of `model`'s state (parameters and buffers) without its classifier, for `restore_backbone`."""
    head = _head_keys(model)
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k not in head}


def restore_backbone(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Load a `backbone_state` back into `model` in place (its classifier, whatever its size, is left to
    `new_head`): the expert as loaded, for the next fine-tuning run, without a deepcopy of the module
    tree (~4x slower for ResNet-101 on a CPU). Raises RuntimeError if anything but the classifier differs."""
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys or set(result.missing_keys) != _head_keys(model):
        raise RuntimeError(f"restore_backbone: the state does not fit the model (missing {result.missing_keys}, "
                           f"unexpected {result.unexpected_keys})")
    model.zero_grad(set_to_none=True)
    return model


def _head_keys(model: nn.Module) -> set[str]:
    head = {id(t) for t in model.get_classifier().state_dict(keep_vars=True).values()}
    return {k for k, v in model.state_dict(keep_vars=True).items() if id(v) in head}


def new_head(model: nn.Module, num_classes: int, seed: int) -> nn.Module:
    """Replace the classifier by a freshly initialised one (seeded) for a new label space."""
    torch.manual_seed(seed)
    model.reset_classifier(num_classes)
    return model
