"""Zoo training steps (`step=`), each writing `model.pt` and `metrics.json`; every command line also
names its preset (preset=<benchmark>/zoo_training, or <benchmark>/multidomain) and architecture:

    python -m zoo_training step=expert expert=<id> source=<name> source_dir=<dir> out_dir=<dir> [init=<model.pt>]
        one single-domain expert, from scratch or from the generalist expert's weights;
    python -m zoo_training step=multidomain variant=<shared|multi_bn|adapter> "sources=[...]" data_root=<dir> out_dir=<dir>
        the multi-domain expert on all sources (Deshpande Sec. 4.1, Table 2);
    python -m zoo_training step=domain_experts init=<multidomain model.pt> "experts=[...]" out_dir=<experts dir>
        each domain of the multi-domain expert as a fine-tunable expert.
(An expert trained elsewhere gets its metrics.json from `python -m zoo_training.zoo`.)

Under torchrun every rank trains; only the main rank writes.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
import torch
from omegaconf import OmegaConf

from data_prep.readers import PreparedDataset
from pipeline.errors import UserError, one_line_errors, require_path
from pipeline.layout import Expert
from zoo_training import config  # noqa: F401  (registers the schema)
from zoo_training.architectures import build_model, depth, gmacs, parameter_count
from zoo_training.engine import fit, schedule_from, set_determinism
from zoo_training.experts import load_expert, new_head, save_expert
from zoo_training.multidomain import VARIANTS, domain_epoch, remap_state_dict, set_domain, to_multi_domain
from zoo_training.runtime import RunLogger, runtime_from_env, shutdown

log = logging.getLogger("zoo_training")


class ZooTrainingError(UserError):
    """A training request that cannot run: an unknown step or variant, a missing file, mismatched ids."""


def job_runtime(cfg, name: str):
    """Runtime and run logger of a training job (DDP ranks from torchrun's environment)."""
    runtime = runtime_from_env(cfg.runtime.device, cfg.runtime.bf16, cfg.runtime.channels_last, cfg.runtime.workers)
    run_dir = HydraConfig.get().runtime.output_dir if HydraConfig.initialized() else cfg.out_dir
    logger = RunLogger(runtime, cfg.wandb.mode, cfg.wandb.project, name, run_dir, OmegaConf.to_container(cfg))
    return runtime, logger


def finish_run(runtime, logger, model):
    """Close the run's logger and process group; the trained model (CPU, contiguous) on the main rank,
    None on the others (only the main rank writes)."""
    logger.finish()
    shutdown(runtime)
    return model.cpu().to(memory_format=torch.contiguous_format) if runtime.is_main else None


def train_expert(cfg) -> dict:
    set_determinism(cfg.threads)
    runtime, logger = job_runtime(cfg, cfg.expert)
    source = PreparedDataset(cfg.source_dir)
    arch = OmegaConf.to_container(cfg.arch, resolve=True)
    if cfg.init:
        require_path(cfg.init, "init", ZooTrainingError)
        # the paper's check mark: start from the generalist expert, new head for this source
        model, _ = load_expert(cfg.init)
        model = new_head(model, source.num_classes, cfg.seed)
        lr = cfg.train.init_lr
    else:
        torch.manual_seed(cfg.seed)
        model = build_model(arch["family"], source.num_classes, arch.get("timm_name"), arch.get("kwargs"))
        lr = None
    began = time.perf_counter()
    result = fit(
        model,
        source.train(),
        schedule_from(cfg.train, lr),
        seed=cfg.seed,
        test=source.test(),
        checkpoint=Path(cfg.checkpoint) if cfg.checkpoint else None,
        name=cfg.expert,
        runtime=runtime,
        logger=logger,
    )
    model = finish_run(runtime, logger, model)
    if model is None:
        return {}
    out = Path(cfg.out_dir)
    save_expert(out / "model.pt", model, arch, source.num_classes, expert=cfg.expert, source=cfg.source,
                preprocessing=source.preprocessing(), classes=list(source.classes))
    metrics = {
        "expert": cfg.expert,
        "arch": Expert.parse(cfg.expert).arch,
        "source": cfg.source,
        "init": "generalist" if cfg.init else "scratch",
        "source_test_accuracy": result["test_accuracy"],
        "source_images": len(source.train()),
        "seconds": result["seconds"],
        "wall_seconds": time.perf_counter() - began,
        "parameters": parameter_count(model),
        "depth": depth(model),
        "input_size": source.image_size,
        "gmacs": gmacs(model, source.image_size),
        "epochs": cfg.train.epochs,
        "history": result["history"],
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    if cfg.checkpoint:  # the expert is final; a rerun must start over, not resume
        Path(cfg.checkpoint).unlink(missing_ok=True)
    log.info("%s: source test accuracy %.2f%% in %.1fs", cfg.expert, result["test_accuracy"], result["seconds"])
    return metrics


def train_multidomain(cfg) -> dict:
    """One network on every source: shared weights plus the variant's domain-specific ones,
    single-domain batches, at most `per_source_cap` images per source per epoch."""
    if cfg.variant not in VARIANTS:
        raise ZooTrainingError(f"variant must be one of {', '.join(VARIANTS)}; got {cfg.variant!r}")
    if len(cfg.sources) < 2 or not cfg.data_root:
        raise ZooTrainingError("step=multidomain needs at least 2 sources and data_root (their prepared datasets)")
    set_determinism(cfg.threads)
    name = f"multidomain-{cfg.variant}"
    runtime, logger = job_runtime(cfg, name)
    sources = [PreparedDataset(Path(cfg.data_root) / s) for s in cfg.sources]
    arch = OmegaConf.to_container(cfg.arch, resolve=True)
    torch.manual_seed(cfg.seed)
    num_classes = [s.num_classes for s in sources]
    model = build_model(arch["family"], num_classes[0], arch.get("timm_name"), arch.get("kwargs"))
    model = to_multi_domain(model, cfg.variant, num_classes)
    trains = [s.train() for s in sources]
    schedule = schedule_from(cfg.train)
    sizes = [len(t) for t in trains]
    began = time.perf_counter()
    result = fit(
        model, trains, schedule, seed=cfg.seed, test=[s.test() for s in sources],
        checkpoint=Path(cfg.checkpoint) if cfg.checkpoint else None, name=name, runtime=runtime, logger=logger,
        plan=lambda generator: domain_epoch(sizes, cfg.per_source_cap, schedule.batch_size, generator),
        set_domain=set_domain,
    )
    model = finish_run(runtime, logger, model)
    if model is None:
        return {}
    out = Path(cfg.out_dir)
    save_expert(out / "model.pt", model, arch, num_classes, variant=cfg.variant, sources=list(cfg.sources),
                preprocessing=sources[0].preprocessing(), classes=[list(s.classes) for s in sources])
    metrics = {
        "variant": cfg.variant,
        "sources": list(cfg.sources),
        "source_test_accuracy": dict(zip(cfg.sources, result["test_accuracy"])),
        "source_images": dict(zip(cfg.sources, sizes)),
        "images_per_source_per_epoch": cfg.per_source_cap,
        "input_size": sources[0].image_size,
        "seconds": result["seconds"],
        "wall_seconds": time.perf_counter() - began,
        "parameters": parameter_count(model),
        "epochs": cfg.train.epochs,
        "history": result["history"],
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    if cfg.checkpoint:
        Path(cfg.checkpoint).unlink(missing_ok=True)
    log.info("%s: source test accuracy %s", name, metrics["source_test_accuracy"])
    return metrics


def split_domain_experts(cfg) -> list[dict]:
    """Write domain d of the multi-domain expert `init` as the single-domain expert `experts[d]`
    ({arch}-{source}-md): a plain network (plus its adapter for the Adapter variant) loaded with
    strict=True, so fine-tuning and selection treat it like any other expert."""
    state = torch.load(require_path(cfg.init, "init", ZooTrainingError), map_location="cpu", weights_only=True)
    sources, variant, arch = state["sources"], state["variant"], state["arch"]
    if len(cfg.experts) != len(sources):
        raise ZooTrainingError(f"{cfg.init} has {len(sources)} domains ({sources}) but {len(cfg.experts)} expert ids were given")
    metrics_md = json.loads((Path(cfg.init).parent / "metrics.json").read_text())
    records = []
    for d, (expert, source) in enumerate(zip(cfg.experts, sources)):
        if Expert.parse(expert).source != source:
            raise ZooTrainingError(f"expert id {expert!r} does not name domain {d} ({source!r})")
        n = state["num_classes"][d]
        model = build_model(arch["family"], n, arch.get("timm_name"), arch.get("kwargs"))
        if variant == "adapter":
            model = to_multi_domain(model, "adapter", [n])
        model.load_state_dict(remap_state_dict(state["state_dict"], d), strict=True)
        out = Path(cfg.out_dir) / expert
        recorded = {k: state[k] if k == "preprocessing" else state[k][d] for k in ("preprocessing", "classes") if k in state}
        save_expert(out / "model.pt", model, arch, n, expert=expert, source=source, variant=variant, domain=d, **recorded)
        record = {"expert": expert, "arch": Expert.parse(expert).arch, "source": source, "init": "multidomain",
                  "source_test_accuracy": metrics_md["source_test_accuracy"][source],
                  "source_images": metrics_md["source_images"][source], "seconds": metrics_md["seconds"],
                  "parameters": parameter_count(model), "depth": depth(model), "input_size": metrics_md["input_size"],
                  "gmacs": gmacs(model, metrics_md["input_size"]), "domain": d, "variant": variant}
        (out / "metrics.json").write_text(json.dumps(record, indent=1))
        records.append(record)
    return records


STEPS = {"expert": train_expert, "multidomain": train_multidomain, "domain_experts": split_domain_experts}


@hydra.main(version_base="1.3", config_path="../configs", config_name="zoo_training")
@one_line_errors("zoo_training")
def main(cfg) -> None:
    if cfg.step not in STEPS:
        raise ZooTrainingError(f"step={cfg.step!r} is not one of {', '.join(STEPS)}")
    STEPS[cfg.step](cfg)


if __name__ == "__main__":
    main()
