"""RSA/DDS's probe networks, trained on the target, and their features on every probe set.

One network per (probe network, target, shots), built from its definition
(configs/probe_network/<name>.yaml, `zoo_training.architectures.build_probe_network`) and trained with
the one fine-tuning recipe `probe_train` (Deshpande App. C: a ResNet-18 from scratch at lr 0.005; PARC
Sec. 4: ImageNet-pretrained AlexNet / ResNet-50 fine-tuned on the target, recipe not given). Written to
{probe_dir}/{network}/{target}/{shots}/: model.pt and {probe}.npz (`probe_features`).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from data_prep.readers import PreparedDataset
from pipeline.errors import UserError
from pipeline.layout import probe_cache, probe_manifest, probe_network_dir, setting_dir
from selection.features import extract
from zoo_training.architectures import build_probe_network
from zoo_training.engine import fit, set_determinism
from zoo_training.experts import save_expert
from zoo_training.runtime import runtime_from_env

log = logging.getLogger("selection")


class ProbeNetworkError(UserError):
    """A probe network the selection config does not define."""


def probe_network_definition(cfg, name: str) -> dict:
    """The definition of probe network `name` as a plain dict; ProbeNetworkError naming the known ones."""
    if name not in cfg.probe_networks:
        raise ProbeNetworkError(f"probe network {name!r} has no definition (configs/probe_network/{name}.yaml composed "
                                f"into probe_networks); defined: {sorted(cfg.probe_networks)}")
    return OmegaConf.to_container(cfg.probe_networks[name], resolve=True)


def train_probe_models(cfg, schedule) -> list[Path]:
    """For each network of `probe_network_names`, target and shot setting: build the network, train it on
    that setting's training data, cache its features on every probe set; then, per (network, target), the
    manifest of its caches (pipeline.layout.probe_manifest)."""
    set_determinism(cfg.threads)
    runtime = runtime_from_env(cfg.runtime.device, cfg.runtime.bf16, cfg.runtime.channels_last, cfg.runtime.workers)
    written = []
    for network in cfg.probe_network_names:
        definition = probe_network_definition(cfg, network)
        out_dir = probe_network_dir(cfg.probe_dir, network)
        for target in cfg.targets:
            dataset, listed = PreparedDataset(Path(cfg.data_root) / target), {}
            manifest = probe_manifest(out_dir, target)  # {cache: feature shape}, written after the caches
            for shots in map(str, cfg.shots):
                torch.manual_seed(cfg.seed)
                model = build_probe_network(definition["arch"], dataset.num_classes, definition["pretrained"],
                                            definition["input_size"])
                result = fit(model, dataset.train(shots), schedule, seed=cfg.seed, test=dataset.test(),
                             name=f"probe network {network} {target}/{shots}", runtime=runtime)
                model = model.float().to(memory_format=torch.contiguous_format).cpu()
                save_expert(setting_dir(out_dir, target, shots) / "model.pt", model, definition["arch"],
                            dataset.num_classes, probe_network=network, pretrained=definition["pretrained"],
                            input_size=definition["input_size"], target=target, shots=shots,
                            test_accuracy=result["test_accuracy"])
                log.info("probe network %s %s/%s: test accuracy %.2f%%", network, target, shots, result["test_accuracy"])
                model = model.to(runtime.device)  # saved from the CPU; features where the images go
                for probe in dataset.probe_names(shots):
                    features, _ = extract(model, dataset.probe_set(shots, probe), cfg.batch_size, runtime.device)
                    path = probe_cache(out_dir, target, shots, probe)
                    np.savez(path, probe_features=features)
                    written.append(path)
                    listed[str(path.relative_to(manifest.parent))] = list(features.shape)
            manifest.write_text(json.dumps(listed, indent=1))
    return written
