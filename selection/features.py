"""The feature caches every score reads, from one forward pass per probe set.

Per (expert, target, shots, probe set): penultimate features and source-head
probabilities (`{cache_dir}/{target}/{shots}/{probe}.npz`). Also, for the paper's
probe set (`cfg.probe_set`, e.g. per_class_25), LGC's per-sample gradients of the last convolutional layer, randomly
projected; and per expert, features of its own source images for Domain
Similarity (`{cache_dir}/source.npz`).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from data_prep.readers import ImageArrays, PreparedDataset
from pipeline.layout import probe_cache, source_cache
from selection.scores.gradient import count_sketch
from zoo_training.architectures import dataset_features
from zoo_training.engine import set_determinism
from zoo_training.experts import load_expert
from zoo_training.runtime import runtime_from_env

CPU_DEVICE = torch.device("cpu")

log = logging.getLogger("selection")


def extract(model: nn.Module, data: ImageArrays, batch_size: int, device=CPU_DEVICE) -> tuple[np.ndarray, np.ndarray]:
    """(features, source-class probabilities) in float64 (the model on `device`, in float32)."""
    features, logits = dataset_features(model, data, batch_size, device)
    return features.double().numpy(), torch.softmax(logits.double(), dim=1).numpy()


def last_conv(model: nn.Module) -> str:
    """Name of the weight of the last convolution in module order (LGC's layer, after Mu et al.)."""
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not names:
        raise ValueError("LGC needs a convolutional layer; the expert has none")
    return f"{names[-1]}.weight"


def projected_gradients(model: nn.Module, data: ImageArrays, dim: int, seed: int, batch_size: int = 32,
                        device=CPU_DEVICE) -> np.ndarray:
    """Per-sample gradients of the last conv layer, count-sketched to `dim` dimensions.

    The network output is scalarised as f(x) = r . z(x) / sqrt(K) with z the K source
    logits and r ~ N(0, I) seeded: then E_r[grad f(x_i) . grad f(x_j)] is the
    output-summed NTK sum_k grad z_k(x_i) . grad z_k(x_j), at the cost of one
    gradient per sample. Gradients come from `vmap(grad(...))` (no Python loop over
    samples) in batches, each projected at once so the N x p matrix never exists.
    """
    model.eval()
    name = last_conv(model)
    weight = dict(model.named_parameters())[name].detach()
    k = model.get_classifier().out_features
    r = (torch.randn(k, generator=torch.Generator().manual_seed(seed), dtype=weight.dtype) / k**0.5).to(device)

    def output(w, x):
        return functional_call(model, {name: w}, (x.unsqueeze(0),))[0] @ r

    per_sample = vmap(grad(output), in_dims=(None, 0))
    parts = []
    for start in range(0, len(data), batch_size):
        images, _ = data.batch(torch.arange(start, min(start + batch_size, len(data))))
        g = per_sample(weight, images.to(device)).detach().flatten(1).double().cpu().numpy()
        parts.append(count_sketch(g, dim, seed))
    return np.concatenate(parts)


def _save(path: Path, **arrays) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def write_caches(cfg) -> list[Path]:
    """Every cache of one expert; returns the paths written."""
    set_determinism(cfg.threads)
    # float32 on every device: scores compare experts, so no reduced precision here
    device = runtime_from_env(cfg.runtime.device, bf16=False, channels_last=False).device
    model, meta = load_expert(cfg.expert_path)
    model = model.to(device)
    cache_dir, written = Path(cfg.cache_dir), []
    for target in cfg.targets:
        dataset = PreparedDataset(Path(cfg.data_root) / target)
        for shots in map(str, cfg.shots):
            for probe in dataset.probe_names(shots):
                data = dataset.probe_set(shots, probe)
                began = time.perf_counter()
                features, probs = extract(model, data, cfg.batch_size, device)
                arrays = {"features": features, "probs": probs, "labels": data.labels.numpy(),
                          "seconds": time.perf_counter() - began}
                if probe == cfg.probe_set and cfg.lgc_dim > 0:
                    began = time.perf_counter()
                    arrays["gradients"] = projected_gradients(model, data, cfg.lgc_dim, cfg.seed, device=device)
                    arrays["gradient_seconds"] = time.perf_counter() - began
                written.append(_save(probe_cache(cache_dir, target, shots, probe), **arrays))
        log.info("%s: feature caches for %s", cfg.expert, target)
    if cfg.source_dir:
        source = PreparedDataset(cfg.source_dir)
        data = source.probe_set("full", cfg.probe_set)
        began = time.perf_counter()
        features, _ = extract(model, data, cfg.batch_size, device)
        written.append(_save(source_cache(cache_dir), features=features, labels=data.labels.numpy(),
                             seconds=time.perf_counter() - began))
    return written
