"""The feature caches every score reads, from one forward pass per shot setting of a target.

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

from data_prep.readers import ImageArrays, PreparedDataset
from pipeline.layout import probe_cache, source_cache
from selection.scores.gradient import count_sketch
from zoo_training.architectures import dataset_features
from zoo_training.engine import set_determinism
from zoo_training.runtime import runtime_from_env
from zoo_training.zoo import load_job_expert

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
    """Per-sample gradients of the last conv layer, count-sketched to `dim` dimensions: (N, dim) float64.

    The network output is scalarised as f(x) = r . z(x) / sqrt(K) with z the K source
    logits and r ~ N(0, I) seeded: then E_r[grad f(x_i) . grad f(x_j)] is the
    output-summed NTK sum_k grad z_k(x_i) . grad z_k(x_j), at the cost of one
    gradient per sample. In eval mode the samples of a batch are independent, so one batched
    forward and backward gives every sample's gradient G_i at the layer's output, and
    grad_W f(x_i) = G_i unfold(A_i)^T per group, A_i the layer's input (the per-sample rule of
    Opacus' Conv2d): 2-3x faster on a CPU than vmap(grad(...)), equal to float precision.
    Each batch is projected at once, so the N x p matrix never exists.
    """
    model.eval()
    conv = model.get_submodule(last_conv(model).rsplit(".", 1)[0])
    k = model.get_classifier().out_features
    r = (torch.randn(k, generator=torch.Generator().manual_seed(seed), dtype=conv.weight.dtype) / k**0.5).to(device)
    seen = {}

    def from_here(module, inputs, output):
        # the graph starts at the layer's output: nothing before it is recorded or differentiated
        torch.set_grad_enabled(True)
        seen["input"], seen["output"] = inputs[0], output.detach().requires_grad_()
        return seen["output"]

    handle = conv.register_forward_hook(from_here)
    parts = []
    try:
        for start in range(0, len(data), batch_size):
            images, _ = data.batch(torch.arange(start, min(start + batch_size, len(data))))
            with torch.no_grad():  # until the hook; leaving the block restores the mode
                f = model(images.to(device)) @ r
                (g_out,) = torch.autograd.grad(f.sum(), seen["output"])
            g = _conv_weight_grads(conv, seen["input"], g_out)
            parts.append(count_sketch(g.flatten(1).double().cpu().numpy(), dim, seed))
    finally:
        handle.remove()
        seen.clear()
    return np.concatenate(parts)


def _conv_weight_grads(conv: nn.Conv2d, inputs: torch.Tensor, g_out: torch.Tensor) -> torch.Tensor:
    """Per-sample gradients (B, *conv.weight.shape) of a Conv2d's weight from its inputs (B, Cin, H, W)
    and the gradient at its outputs (B, Cout, H', W'); any padding mode, stride, dilation, groups."""
    mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
    padded = nn.functional.pad(inputs, conv._reversed_padding_repeated_twice, mode=mode)
    cols = nn.functional.unfold(padded, conv.kernel_size, conv.dilation, 0, conv.stride)    # (B, Cin*kh*kw, L)
    b, groups = inputs.shape[0], conv.groups
    cols = cols.reshape(b, groups, -1, cols.shape[-1])
    g = g_out.reshape(b, groups, -1, cols.shape[-1])                                          # (B, g, Cout/g, L)
    return torch.einsum("bgol,bgil->bgoi", g, cols).reshape(b, *conv.weight.shape)


def _save(path: Path, **arrays) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def write_caches(cfg) -> list[Path]:
    """Every cache of one expert; returns the paths written. An expert without a source head of its own
    gets no `probs`, one without a convolution no LGC `gradients`: the scores reading them are then
    recorded as not computable for it (selection.run.score_expert)."""
    set_determinism(cfg.threads)
    # float32 on every device: scores compare experts, so no reduced precision here
    device = runtime_from_env(cfg.runtime.device, bf16=False, channels_last=False).device
    model, zoo = load_job_expert(cfg.zoo_file, cfg.expert, cfg.expert_path)
    transform, has_head = (zoo.transform, zoo.source_classes > 0) if zoo else (None, True)
    model = model.to(device)
    gradients = cfg.lgc_dim > 0 and has_conv(model)
    cache_dir, written = Path(cfg.cache_dir), []
    for target in cfg.targets:
        dataset = PreparedDataset(Path(cfg.data_root) / target)
        for shots in map(str, cfg.shots):
            # the probe sets of a shot setting overlap (per_class_25 within per_class_50 within all):
            # one forward pass over their union, each image once; a set's seconds are its share
            probes = dataset.probe_indices(shots)
            if not probes:
                continue
            union = np.unique(np.concatenate(list(probes.values())))
            began = time.perf_counter()
            pooled = dataset.split("train", transform=transform).subset(union)
            features, probs = extract(model, pooled, cfg.batch_size, device)
            per_image = (time.perf_counter() - began) / max(len(union), 1)
            for probe, index in probes.items():
                rows = np.searchsorted(union, index)
                arrays = {"features": features[rows], "labels": pooled.labels.numpy()[rows],
                          "seconds": per_image * len(rows), **({"probs": probs[rows]} if has_head else {})}
                if probe == cfg.probe_set and gradients:
                    data = dataset.probe_set(shots, probe, transform=transform)
                    began = time.perf_counter()
                    arrays["gradients"] = projected_gradients(model, data, cfg.lgc_dim, cfg.seed, device=device)
                    arrays["gradient_seconds"] = time.perf_counter() - began
                written.append(_save(probe_cache(cache_dir, target, shots, probe), **arrays))
        log.info("%s: feature caches for %s", cfg.expert, target)
    if cfg.source_dir:
        source = PreparedDataset(cfg.source_dir)
        data = source.probe_set("full", cfg.probe_set, transform=transform)
        began = time.perf_counter()
        features, _ = extract(model, data, cfg.batch_size, device)
        written.append(_save(source_cache(cache_dir), features=features, labels=data.labels.numpy(),
                             seconds=time.perf_counter() - began))
    return written
