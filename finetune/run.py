"""Fine-tune one expert on targets x shot settings x learning rates (the paper's grid).

Several grid points run in one process because on a CPU starting Python and
importing torch costs seconds; each finished point is appended to
`{out}.partial` so a killed job resumes without redoing it.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from data_prep.readers import PreparedDataset
from zoo_training.architectures import dataset_features
from pipeline.errors import UserError, require_path
from zoo_training.engine import evaluate, fit, schedule_from, set_determinism
from zoo_training.experts import backbone_state, new_head, restore_backbone
from zoo_training.runtime import runtime_from_env
from zoo_training.zoo import load_job_expert

log = logging.getLogger("finetune")


def _done_rows(partial: Path) -> dict[tuple, dict]:
    if not partial.exists():
        return {}
    rows = [json.loads(line) for line in partial.read_text().splitlines() if line.strip()]
    return {(r["target"], r["shots"], r["lr"], r.get("seed")): r for r in rows}  # a row without a seed reruns


def best_per_setting(rows: list[dict]) -> list[dict]:
    """The paper reports the best test accuracy over the lr grid per (target, shots), here of the mean over
    the seeds; a diverged point (NaN accuracy) is never the best unless every point diverged. (The tables
    choose on validation data too: analysis.tables.ground_truth_rows.)"""
    means: dict[tuple, list] = {}
    for row in rows:
        means.setdefault((row["target"], row["shots"], row["lr"]), []).append(row["test_accuracy"])
    best: dict[tuple, tuple] = {}
    for (target, shots, lr), accs in means.items():
        acc = float(np.mean(accs))
        if (target, shots) not in best or np.nan_to_num(acc, nan=-1.0) > np.nan_to_num(best[target, shots][1], nan=-1.0):
            best[target, shots] = (lr, acc)
    return [{"target": t, "shots": s, "lr": lr, "test_accuracy": acc} for (t, s), (lr, acc) in best.items()]


def grid(targets, shots, lrs, full_targets=None, seeds=(0,)) -> list[tuple[str, str, float, int]]:
    """(target, shots, lr, seed) points; the full setting only for `full_targets` (None: every target)."""
    return [(t, str(s), float(lr), int(seed)) for t in targets for s in shots for lr in lrs for seed in seeds
            if str(s) != "full" or full_targets is None or t in full_targets]


class ThetaFSnapshots:
    """Penultimate features of one probe set of the target (the paper's: per_class_25), grouped by
    class, at the chosen epochs of one fine-tuning run: the data of Deshpande Fig. 8, Theta_F = F F^T."""

    def __init__(self, data, shots: str, probe_set: str, epochs: list[int], runtime, transform=None):
        probe = data.probe_set(shots, probe_set, transform=transform)  # an expert's own, if it has one
        order = torch.argsort(probe.labels, stable=True)  # samples grouped by class, as the figure
        self.probe, self.labels = probe.subset(order), probe.labels[order].numpy()
        self.epochs, self.runtime, self.features = sorted(set(epochs)), runtime, {}

    def __call__(self, epoch: int, model) -> None:
        if epoch in self.epochs:
            self.features[epoch] = dataset_features(model, self.probe, device=self.runtime.device)[0].float().numpy()

    def save(self, path: Path, expert: str, target: str, shots: str, lr: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, features=np.stack([self.features[e] for e in self.epochs]), epochs=np.array(self.epochs),
                 labels=self.labels, expert=expert, target=target, shots=shots, lr=lr)
        os.replace(tmp, path)


class FinetuneError(UserError):
    """A fine-tuning request that cannot run (a grid point or file that does not exist)."""


def finetune_expert(cfg) -> list[dict]:
    """Fine-tune `cfg.expert` on every (target, shots, lr, seed) of the grid; rows {expert, target, shots, lr,
    seed, test_accuracy (%), val_accuracy (% on the held-out `validation_fraction` of that setting's training
    data; NaN without one), seconds}. Each lr of `cfg.lrs` runs the recipe `cfg.train` (Deshpande Sec. 4.2)
    once per seed of `cfg.seeds`. Raises FinetuneError for a missing expert or a Fig. 8 point off the grid."""
    if not cfg.zoo_file:
        require_path(cfg.expert_path, "expert_path", FinetuneError)
    set_determinism(cfg.threads)
    runtime = runtime_from_env(cfg.runtime.device, cfg.runtime.bf16, cfg.runtime.channels_last, cfg.runtime.workers)
    out = Path(cfg.out)
    partial = out.with_name(out.name + ".partial")
    partial.parent.mkdir(parents=True, exist_ok=True)
    done = _done_rows(partial)
    points = grid(cfg.targets, cfg.shots, cfg.lrs, cfg.full_targets, cfg.seeds)
    theta_point = None
    if cfg.theta_f.target is not None:  # the snapshots of the first seed's run
        theta_point = (cfg.theta_f.target, str(cfg.theta_f.shots), float(cfg.theta_f.lr), int(cfg.seeds[0]))
        if theta_point not in points or not cfg.theta_f_out or not cfg.theta_f.probe_set:
            raise FinetuneError(f"theta_f names {theta_point}, which is not a point of this expert's grid "
                                f"(or theta_f_out / theta_f.probe_set is unset); choose a target, shots and lr "
                                f"that it fine-tunes")
    rows, began, datasets, expert, transforms = [], time.perf_counter(), {}, None, (None, None)
    for i, point in enumerate(points, 1):
        target, shots, lr, seed = point
        redo_theta = theta_point == point and not Path(cfg.theta_f_out).exists()
        if point in done and not redo_theta:
            rows.append(done[point])
            continue
        if target not in datasets:
            datasets[target] = PreparedDataset(Path(cfg.data_root) / target)
        data = datasets[target]
        if expert is None:  # built once: timm builds ResNet-101 / DenseNet-169 in ~1.5 s on a CPU
            expert, zoo = load_job_expert(cfg.zoo_file, cfg.expert, cfg.expert_path)
            # a zoo expert's own (evaluation, training) transforms; None: the target's
            transforms = (zoo.transform, zoo.preprocessing.train_transform()) if zoo else (None, None)
            pristine = backbone_state(expert)
        # every run starts from the expert as loaded: its weights are restored in place (a deepcopy of the
        # module tree was ~10% of a rehearsal fine-tuning job)
        model = new_head(restore_backbone(expert, pristine), data.num_classes, seed)
        schedule, snapshots = schedule_from(cfg.train, lr), None
        if theta_point == point:
            snapshots = ThetaFSnapshots(data, shots, cfg.theta_f.probe_set, [round(f * schedule.epochs) for f in cfg.theta_f.fractions],
                                        runtime, transforms[0])
        train, val = data.train_validation(shots, cfg.validation_fraction, cfg.seed, *transforms[::-1])
        result = fit(model, train, schedule, seed=seed, test=data.test(transforms[0]),
                     name=f"{cfg.expert}->{target}/{shots}/lr={lr}/seed={seed}", runtime=runtime, epoch_hook=snapshots)
        if snapshots is not None:
            snapshots.save(Path(cfg.theta_f_out), cfg.expert, target, shots, lr)
        row = {"expert": cfg.expert, "target": target, "shots": shots, "lr": lr, "seed": seed,
               "test_accuracy": result["test_accuracy"],
               "val_accuracy": float("nan") if val is None else evaluate(model, val, runtime=runtime),
               "seconds": result["seconds"]}
        with partial.open("a") as f:
            f.write(json.dumps(row) + "\n")
        rows.append(row)
        elapsed = time.perf_counter() - began
        log.info("[%d/%d] %s %s shots=%s lr=%g seed=%d: %.2f%% (validation %.2f%%; %.1fs; eta %.0fs)", i, len(points),
                 cfg.expert, target, shots, lr, seed, row["test_accuracy"], row["val_accuracy"], row["seconds"],
                 elapsed / i * (len(points) - i))
    out.write_text(json.dumps({"rows": rows, "best": best_per_setting(rows), "wall_seconds": time.perf_counter() - began}, indent=1))
    partial.unlink()
    return rows
