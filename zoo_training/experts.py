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


def new_head(model: nn.Module, num_classes: int, seed: int) -> nn.Module:
    """Replace the classifier by a freshly initialised one (seeded) for a new label space."""
    torch.manual_seed(seed)
    model.reset_classifier(num_classes)
    return model
