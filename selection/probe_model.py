"""RSA/DDS's small probe network, trained on the target (Deshpande App. C: a ResNet-18 with the
fine-tuning recipe at lr 0.005), one per (target, shots), and its features on every probe set."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from data_prep.readers import PreparedDataset
from pipeline.layout import probe_cache, setting_dir
from selection.features import extract
from zoo_training.architectures import build_model
from zoo_training.engine import fit, set_determinism
from zoo_training.experts import save_expert
from zoo_training.runtime import runtime_from_env

log = logging.getLogger("selection")


def train_probe_models(cfg, schedule) -> list[Path]:
    """For each shot setting: train from scratch on that setting's training data, cache features."""
    set_determinism(cfg.threads)
    runtime = runtime_from_env(cfg.runtime.device, cfg.runtime.bf16, cfg.runtime.channels_last, cfg.runtime.workers)
    arch = OmegaConf.to_container(cfg.probe_arch, resolve=True)
    out_dir, written = Path(cfg.probe_dir), []
    for target in cfg.targets:
        dataset = PreparedDataset(Path(cfg.data_root) / target)
        for shots in map(str, cfg.shots):
            torch.manual_seed(cfg.seed)
            model = build_model(arch["family"], dataset.num_classes, arch.get("timm_name"), arch.get("kwargs"))
            result = fit(model, dataset.train(shots), schedule, seed=cfg.seed, test=dataset.test(),
                         name=f"probe model {target}/{shots}", runtime=runtime)
            model = model.float().to(memory_format=torch.contiguous_format)
            save_expert(setting_dir(out_dir, target, shots) / "model.pt", model.cpu(), arch, dataset.num_classes,
                        target=target, shots=shots, test_accuracy=result["test_accuracy"])
            log.info("probe model %s/%s: test accuracy %.2f%%", target, shots, result["test_accuracy"])
            for probe in dataset.probe_names(shots):
                features, _ = extract(model, dataset.probe_set(shots, probe), cfg.batch_size, runtime.device)
                path = probe_cache(out_dir, target, shots, probe)
                np.savez(path, probe_features=features)
                written.append(path)
    return written
