"""Fake pretrained weights where the real ones are read from, for the tests and the rehearsal (offline).

A probe network with `pretrained` set (configs/probe_network/<name>.yaml) loads ImageNet weights
through its library's own cache; this module writes random weights of the same architecture (the
ImageNet 1000-class head included), seeded, in exactly the file and folder layout that cache has, so
the real loading code runs unchanged without a network:

- timm (`timm.create_model("<timm_name>.<tag>", pretrained=True)`, e.g. resnet50.tv_in1k): the
  Hugging Face hub cache, ``<HF_HUB_CACHE>/models--timm--<name>/refs/main`` (a commit id) and
  ``snapshots/<commit>/model.safetensors``, read with ``HF_HUB_OFFLINE=1``;
- torchvision (`alexnet(weights=AlexNet_Weights.IMAGENET1K_V1)`): the torch hub cache,
  ``<TORCH_HOME>/hub/checkpoints/<file name of the weights' URL>`` (alexnet-owt-7be5be79.pth), which
  torchvision loads without downloading (and without a hash check) when it exists.

`fill_caches` does both for a set of probe-network definitions and returns the environment a job
needs to read them.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping
from urllib.parse import urlparse

import torch

# families zoo_training.architectures.build_probe_network builds with torchvision (the others with timm)
TORCHVISION_FAMILIES = ("alexnet",)
FAKE_COMMIT = "fa4e" * 10  # the snapshot a fake hub cache points refs/main at (any 40-hex id does)


def timm_hub_file(hub_cache: str | Path, model_name: str) -> Path:
    """Where timm's pretrained weights of `model_name` (e.g. "resnet50.tv_in1k") lie in a hub cache."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(model_name)
    if cfg is None or not cfg.hf_hub_id:
        raise ValueError(f"timm has no Hugging Face hub weights for {model_name!r}")
    return Path(hub_cache) / f"models--{cfg.hf_hub_id.replace('/', '--')}" / "snapshots" / FAKE_COMMIT / "model.safetensors"


def write_timm_weights(hub_cache: str | Path, model_name: str, seed: int = 0) -> Path:
    """Random weights of timm model `model_name` ("<architecture>.<tag>") as the hub cache's
    model.safetensors; returns the file."""
    import safetensors.torch
    import timm

    path = timm_hub_file(hub_cache, model_name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        state = timm.create_model(model_name.split(".")[0], pretrained=False).state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    ref = path.parents[2] / "refs" / "main"
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(FAKE_COMMIT)
    return path


def _torchvision_weights(family: str, weights: str):
    from torchvision.models import get_model_weights

    return get_model_weights(family)[weights]


def torchvision_hub_file(torch_home: str | Path, family: str, weights: str) -> Path:
    """Where torchvision's `weights` (e.g. IMAGENET1K_V1) of model `family` (e.g. alexnet) lie under TORCH_HOME."""
    url = _torchvision_weights(family, weights).url
    return Path(torch_home) / "hub" / "checkpoints" / os.path.basename(urlparse(url).path)


def write_torchvision_weights(torch_home: str | Path, family: str, weights: str, seed: int = 0) -> Path:
    """Random weights of torchvision model `family` as the torch hub cache's file of `weights`."""
    from torchvision.models import get_model

    path = torchvision_hub_file(torch_home, family, weights)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        state = get_model(family, weights=None).state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def fill_caches(root: str | Path, definitions: Mapping[str, Mapping], seed: int = 0) -> dict[str, str]:
    """Fake weights for every definition with `pretrained` set ({name: {arch: {family, timm_name},
    pretrained, ...}}, as the selection config's probe_networks) under root/hf (the hub cache) and
    root/torch (TORCH_HOME), each written once (an existing file is kept); returns the environment
    that points a job at them: HF_HUB_CACHE, TORCH_HOME and HF_HUB_OFFLINE=1."""
    root = Path(root).resolve()
    env = {"HF_HUB_CACHE": str(root / "hf"), "TORCH_HOME": str(root / "torch"), "HF_HUB_OFFLINE": "1"}
    for definition in definitions.values():
        arch, pretrained = definition["arch"], definition.get("pretrained")
        if not pretrained:
            continue
        if arch["family"] in TORCHVISION_FAMILIES:
            if not torchvision_hub_file(env["TORCH_HOME"], arch["family"], pretrained).is_file():
                write_torchvision_weights(env["TORCH_HOME"], arch["family"], pretrained, seed)
        else:
            name = f"{arch['timm_name']}.{pretrained}"
            if not timm_hub_file(env["HF_HUB_CACHE"], name).is_file():
                write_timm_weights(env["HF_HUB_CACHE"], name, seed)
    return env
