"""Training throughput of the engine at paper scale (issue 4, item 7).

Runs `zoo_training.engine.fit` for a few hundred steps of ResNet-101 and DenseNet-169 at 224 px on
generated data, with the runtime the zoo uses on a GPU (bf16 autocast, channels_last), and prints
images/s per architecture. Under torchrun the figure is the sum over the ranks:

    torchrun --standalone --nproc_per_node=1 benchmarks/gpu_throughput.py --steps 300
    python benchmarks/gpu_throughput.py --device cpu --archs resnet_mini --size 32 --steps 4   # smoke test

Public reference (../shared/DATASETS.md): ResNet-101 with AMP + channels_last trains at about
1,500 images/s on one A100 and about 2,800 on one H100; DenseNet-169 at about the same.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from data_prep.readers import ImageArrays
from zoo_training.architectures import build_model
from zoo_training.engine import SGDSchedule, fit
from zoo_training.runtime import runtime_from_env, shutdown

ROOT = Path(__file__).resolve().parents[1]
NUM_CLASSES = 1000


def generated(n: int, size: int, seed: int) -> ImageArrays:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=g)
    return ImageArrays(images, torch.randint(0, NUM_CLASSES, (n,), generator=g))


def measure(arch_name: str, steps: int, batch: int, size: int, runtime, warmup: int) -> dict:
    arch = OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "arch" / f"{arch_name}.yaml"))
    torch.manual_seed(0)
    model = build_model(arch["family"], NUM_CLASSES, arch.get("timm_name"), arch.get("kwargs"))
    global_batch = batch * runtime.world_size
    # one "epoch" = the measured steps; a short first fit warms up cuDNN autotuning and the allocator
    data = generated(global_batch * steps, size, seed=runtime.rank)
    schedule = SGDSchedule(lr=0.1, epochs=1, milestones=(), batch_size=global_batch)
    fit(model, data.subset(range(global_batch * warmup)), schedule, seed=0, runtime=runtime)
    if runtime.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    result = fit(model, data, schedule, seed=0, runtime=runtime)
    if runtime.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - began
    return {
        "arch": arch_name,
        "device": torch.cuda.get_device_name(runtime.device) if runtime.device.type == "cuda" else "cpu",
        "processes": runtime.world_size,
        "image_size": size,
        "global_batch": global_batch,
        "steps": steps,
        "bf16": runtime.bf16,
        "channels_last": runtime.channels_last,
        "images_per_second": global_batch * steps / seconds,
        "engine_images_per_second": result["history"][-1]["images_per_second"],
        "peak_memory_gib": torch.cuda.max_memory_allocated(runtime.device) / 2**30 if runtime.device.type == "cuda" else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=["resnet101", "densenet169"], help="configs/arch/<name>.yaml")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batch", type=int, default=128, help="images per process and step")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    runtime = runtime_from_env(args.device, bf16=not args.no_bf16, channels_last=not args.no_channels_last)
    rows = [measure(a, args.steps, args.batch, args.size, runtime, args.warmup) for a in args.archs]
    if runtime.is_main:
        print(f"{'arch':<14}{'device':<28}{'procs':>6}{'batch':>7}{'img/s':>10}{'peak GiB':>10}")
        for r in rows:
            peak = f"{r['peak_memory_gib']:.1f}" if r["peak_memory_gib"] is not None else "-"
            print(f"{r['arch']:<14}{r['device'][:27]:<28}{r['processes']:>6}{r['global_batch']:>7}"
                  f"{r['images_per_second']:>10.0f}{peak:>10}")
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    shutdown(runtime)


if __name__ == "__main__":
    main()
