"""Rank a zoo for a folder of images: `make rank IMAGES=<folder> ZOO=<zoo.yaml>` (configs/rank.yaml).

No training: the folder's class sub-folders are the labels; a probe set is drawn from it by the
benchmark's rule (at most `per_class` images per class, seeded: data_prep.prepare.probe_indices);
every expert of the zoo (zoo_training.zoo: checkpoint / timm / torchvision) reads it once, through
its own preprocessing, and every selection method scores the features. Intervals: a paired,
class-stratified percentile bootstrap over the probe images (the same resamples for every expert
and method). Writes into `out` (default results/rank/<folder name>):

- ranking.csv: expert, method, score, rank, ci_low, ci_high, seconds (rank 1 = best, higher score =
  better; a score an expert cannot have is NaN and unranked, its reason in not_computable.csv);
- ranking.png: every method's scores with their intervals, experts in the recommended order;
- ranking.md: the top-k by the method that agreed best with fine-tuning in this project's own
  benchmark results (`evidence`: mean Spearman over targets of analysis' selection_eval.csv), which
  results those were, each expert's preprocessing, and what could not be computed and why;
- recommendation.json: that method and its top-k, for the fine-tuning that may follow.
Bad input is one line before any model loads.

`make rank ... FINETUNE_TOP=k` runs rules/rank.smk instead: the folder is prepared by data_prep with a
held-out split (`prepared`: the probe set comes from its training part), then the top k are fine-tuned
by the finetune stage on the training part and tested on the held-out part, and `step=report` writes
finetune_top.csv / finetune_top.md beside the ranking.
"""
from __future__ import annotations

import glob
import inspect
import json
import logging
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import List

import hydra
import numpy as np
import pandas as pd
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING
from threadpoolctl import threadpool_limits

from pipeline.errors import UserError, one_line_errors
from selection.run import MISSING_INPUT, standardize

log = logging.getLogger("rank")


class RankError(UserError):
    """A folder or zoo that cannot be ranked (stated before any model loads)."""


@dataclass
class RankConfig:
    step: str = "rank"             # rank | report (after FINETUNE_TOP's fine-tuning: rules/rank.smk)
    images: str = MISSING          # a folder of class sub-folders: <images>/<class>/<image>
    # FINETUNE_TOP: the folder as data_prep prepared it (a held-out split); the probe set is its training
    # part's (at most per_class per class), and the held-out images are never scored
    prepared: str = ""
    records: List[str] = field(default_factory=list)  # step=report: the finetune stage's records of the top k
    zoo_file: str = MISSING        # a zoo file (configs/zoo/<name>.yaml; zoo_training.zoo)
    out: str = ""                  # default: results/rank/<folder name>
    methods: List[str] = MISSING   # registered selection scores
    per_class: int = 25            # probe set: at most this many images per class (Deshpande Sec. 4.2)
    seed: int = 0
    bootstrap: int = 100           # resamples of the probe images for the intervals (0: none)
    confidence: float = 0.95
    top_k: int = 3
    lgc_dim: int = 10_000          # LGC's gradient projection (selection stage's default)
    # Guided Recommendation Fig. 1: per-dimension standardised features, so that experts of different
    # feature widths (CNNs, ViTs) are not outliers for the feature scores
    standardize_features: bool = False
    batch_size: int = 32
    threads: int = 0               # 0: every core
    # this project's own results: which method agreed best with fine-tuning (mean Spearman, full shots)
    evidence: List[str] = field(default_factory=lambda: ["results/*/tables/selection_eval.csv"])
    fallback_method: str = "logme"  # when no evidence is found or its best method is not computable here


ConfigStore.instance().store(name="rank_schema", node=RankConfig)


# ----------------------------------------------------------------------------------- the folder

@dataclass
class Folder:
    root: Path
    classes: list[str]
    paths: list[str]          # relative to root
    labels: np.ndarray        # (N,) class index


def read_folder(images: str | Path) -> Folder:
    """<images>/<class>/<image> (any depth below a class folder; or train/ and test/ part folders), listed
    by data_prep's ImageFolder reader. Raises RankError: no such folder, fewer than 2 classes, a class
    with fewer than 2 images."""
    from collections import Counter

    from data_prep.listing import IMAGE_EXTENSIONS
    from data_prep.sources import read_imagefolder

    root = Path(images).expanduser()
    if not root.is_dir():
        raise RankError(f"images={root}: no such folder (expected <folder>/<class>/<image>)")
    listing = read_imagefolder({"name": root.name, "path": str(root)}, root)
    counts = Counter(s.label for s in listing.samples)
    counts.update({d["class"]: 0 for d in listing.dropped_classes})
    short = [f"{name} ({n})" for name, n in sorted(counts.items()) if n < 2]
    if short:
        raise RankError(f"images={root}: class folder(s) with fewer than 2 images: {', '.join(short)}; "
                        f"add images or remove the folder")
    classes = listing.class_names()
    if len(classes) < 2:
        raise RankError(f"images={root}: {len(classes)} class folder(s) with images; ranking needs at least 2 "
                        f"(<folder>/<class>/<image>, extensions {', '.join(IMAGE_EXTENSIONS)})")
    index = {name: i for i, name in enumerate(classes)}
    return Folder(root, classes, [str(s.path.relative_to(root)) for s in listing.samples],
                  np.asarray([index[s.label] for s in listing.samples], dtype=np.int64))


def read_prepared(prepared: str | Path, per_class: int) -> tuple[Folder, np.ndarray]:
    """(the training part of a folder data_prep prepared, as a Folder of its resized images; the indices of
    its probe set `per_class_<per_class>`, drawn by data_prep from that part only). Raises RankError when
    it has no such probe set."""
    from data_prep.readers import PreparedDataset
    from pipeline.layout import per_class_probe

    data = PreparedDataset(prepared)
    train = data.split("train")
    probes = data.probe_indices("full")
    if per_class_probe(per_class) not in probes:
        raise RankError(f"prepared={prepared}: no probe set {per_class_probe(per_class)} (prepared: {sorted(probes)}); "
                        "prepare it with probe_per_class={per_class}")
    return Folder(Path(prepared), list(data.classes), list(train.paths), train.labels.numpy()), probes[per_class_probe(per_class)]


def probe_set(folder: Folder, per_class: int, seed: int) -> np.ndarray:
    """Indices of the probe set: at most `per_class` images per class (the benchmark's draw)."""
    from data_prep.prepare import probe_indices
    from pipeline.layout import per_class_probe

    drawn = probe_indices(folder.labels, {"full": np.arange(len(folder.labels))}, per_class, seed)
    return np.asarray(drawn["full"][per_class_probe(per_class)], dtype=np.int64)


def check_images(folder: Folder, index: np.ndarray) -> None:
    """Every probe image decodes in full (a truncated or non-image file is one line naming it)."""
    from PIL import Image

    for i in index:
        path = folder.root / folder.paths[i]
        try:
            with Image.open(path) as image:
                image.load()
        except Exception as err:  # noqa: BLE001  (PIL raises many kinds for a bad file)
            raise RankError(f"images: {path} cannot be read as an image ({type(err).__name__}: {err}); "
                            f"remove or replace it") from None


def bootstrap_indices(labels: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(resamples, N) indices: each class's images drawn with replacement to its own count."""
    rng = np.random.default_rng(seed + 15485863)
    by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    if resamples < 1:
        return np.zeros((0, len(labels)), dtype=np.int64)
    return np.stack([np.concatenate([rng.choice(idx, size=len(idx)) for idx in by_class]) for _ in range(resamples)])


# ----------------------------------------------------------------------------------- one expert

def expert_inputs(expert, folder: Folder, index: np.ndarray, cfg) -> tuple[dict, float, dict]:
    """(score inputs, forward seconds, {input: why it is missing}) for one loaded expert."""
    import torch

    from data_prep.readers import ImageFiles
    from selection.features import has_conv, projected_gradients
    from zoo_training.architectures import dataset_features

    data = ImageFiles(folder.root, [folder.paths[i] for i in index], torch.as_tensor(folder.labels[index]),
                      len(folder.classes), transform=expert.transform)
    began = time.perf_counter()
    features, logits = dataset_features(expert.model, data, cfg.batch_size)
    inputs = {"features": features.double().numpy(), "labels": folder.labels[index]}
    missing = {k: MISSING_INPUT[k] for k in ("source_features", "source_labels", "probe_features")}
    if expert.source_classes > 0:
        inputs["probs"] = torch.softmax(logits.double(), dim=1).numpy()
    else:
        missing["probs"] = MISSING_INPUT["probs"]
    seconds = time.perf_counter() - began
    if "lgc" in cfg.methods:
        if not has_conv(expert.model):  # the selection stage's rule (selection.features.write_caches)
            missing["gradients"] = MISSING_INPUT["gradients"]
        else:
            began = time.perf_counter()
            inputs["gradients"] = projected_gradients(expert.model, data, cfg.lgc_dim, cfg.seed, cfg.batch_size)
            seconds += time.perf_counter() - began
    if cfg.standardize_features:
        inputs["features"] = standardize(inputs["features"])
    return inputs, seconds, missing


def score_all(name: str, inputs: dict, missing: dict, methods: list[str], resamples: np.ndarray, seed: int,
              confidence: float) -> tuple[list[dict], list[dict]]:
    """Rows (expert, method, score, ci_low, ci_high, score_seconds) and not-computable rows (expert,
    method, reason); a score that raises is not computable with its message."""
    from selection.run import inputs_of, run_method
    from selection.scores import SCORES

    rows, skipped = [], []
    for method in methods:
        params = inspect.signature(SCORES[method]).parameters
        needed = [p for p, s in params.items() if s.default is s.empty and p != "seed"]
        lacking = [p for p in needed if p not in inputs]
        if lacking:
            skipped.append({"expert": name, "method": method, "reason": missing.get(lacking[0], f"no {lacking[0]}")})
            continue
        own = {k: v for k, v in inputs.items() if k in inputs_of(method)}
        if "seed" in params:
            own["seed"] = zlib.crc32(f"{seed}/{name}/{method}".encode())
        began = time.perf_counter()
        try:
            value = run_method(method, {}, own)
        except Exception as err:  # noqa: BLE001  (recorded, the other methods go on)
            skipped.append({"expert": name, "method": method, "reason": f"{type(err).__name__}: {err}"})
            continue
        elapsed = time.perf_counter() - began
        draws = []
        for idx in resamples:
            sample = {k: (v[idx] if isinstance(v, np.ndarray) and k not in ("source_features", "source_labels")
                          else v) for k, v in own.items()}
            try:
                draws.append(run_method(method, {}, sample))
            except Exception:  # noqa: BLE001  (a resample without a defined score: left out of the interval)
                continue
        low, high = (np.quantile(draws, [(1 - confidence) / 2, (1 + confidence) / 2])
                     if len(draws) >= 2 else (np.nan, np.nan))
        rows.append({"expert": name, "method": method, "score": float(value), "ci_low": float(low),
                     "ci_high": float(high), "score_seconds": elapsed})
    return rows, skipped


# ----------------------------------------------------------------------------------- evidence

def best_method(patterns: list[str], computable: set[str]) -> tuple[str | None, pd.DataFrame, list[str]]:
    """(the computable method with the highest mean Spearman over targets at full shots, the table of
    mean Spearman per method and benchmark, the files read) from analysis' selection_eval.csv files."""
    files = sorted({f for p in patterns for f in glob.glob(p)})
    frames = []
    for f in files:
        df = pd.read_csv(f, dtype={"shots": str})
        if {"method", "spearman"} <= set(df.columns):
            df = df[df["shots"] == "full"] if "shots" in df.columns else df
            frames.append(df.groupby("method")["spearman"].agg(["mean", "count"]).assign(results=f).reset_index())
    if not frames:
        return None, pd.DataFrame(), files
    table = pd.concat(frames)
    pooled = table[table["method"].isin(computable)].groupby("method")["mean"].mean().dropna()
    return (pooled.idxmax() if len(pooled) else None), table, files


# ----------------------------------------------------------------------------------- outputs

def rank_table(rows: list[dict], skipped: list[dict], seconds: dict) -> pd.DataFrame:
    df = pd.DataFrame(rows + [{"expert": s["expert"], "method": s["method"], "score": np.nan, "ci_low": np.nan,
                               "ci_high": np.nan, "score_seconds": 0.0} for s in skipped])
    df["seconds"] = df["expert"].map(seconds) + df["score_seconds"]
    df["rank"] = df.groupby("method")["score"].rank(ascending=False, method="min").astype("Int64")
    return df[["expert", "method", "score", "rank", "ci_low", "ci_high", "seconds"]].sort_values(
        ["method", "rank", "expert"], na_position="last").reset_index(drop=True)


def plot(df: pd.DataFrame, order: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in df["method"].unique() if df.loc[df["method"] == m, "score"].notna().any()]
    cols = min(4, max(1, len(methods)))
    rows = -(-len(methods) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 0.3 * len(order) * rows + 1.2 * rows), squeeze=False)
    for ax, method in zip(axes.flat, methods):
        part = df[df["method"] == method].set_index("expert").reindex(order)
        y = np.arange(len(order))
        err = np.vstack([part["score"] - part["ci_low"], part["ci_high"] - part["score"]]).clip(min=0)
        ax.errorbar(part["score"], y, xerr=np.nan_to_num(err), fmt="o", ms=3, capsize=2)
        ax.set_yticks(y, order if ax in axes[:, 0] else [""] * len(order), fontsize=7)
        ax.invert_yaxis()
        ax.set_title(method, fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    for ax in list(axes.flat)[len(methods):]:
        ax.set_visible(False)
    fig.suptitle("Scores per expert (higher = better), with bootstrap intervals", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def write_markdown(path: Path, cfg, folder: Folder, n_probe: int, df: pd.DataFrame, skipped: list[dict],
                   method: str, why: str, prep: dict) -> None:
    best = df[df["method"] == method].dropna(subset=["score"]).sort_values("rank")
    lines = [f"# Ranking of {Path(cfg.zoo_file).name} for {folder.root}", "",
             f"{len(folder.classes)} classes, {len(folder.paths)} images; probe set: {n_probe} images (at most "
             f"{cfg.per_class} per class, seed {cfg.seed}); intervals: {cfg.confidence:.0%} percentile bootstrap over "
             f"the probe images ({cfg.bootstrap} class-stratified resamples, the same for every expert).", "",
             f"## Recommended: fine-tune the top {cfg.top_k} by `{method}`", "", why, "",
             "| rank | expert | score | interval |", "|---:|---|---:|---|"]
    for r in best.head(cfg.top_k).itertuples():
        lines.append(f"| {r.rank} | {r.expert} | {r.score:.4g} | [{r.ci_low:.4g}, {r.ci_high:.4g}] |")
    lines += ["", "Overlapping intervals mean the probe set cannot tell those experts apart. A resample repeats "
              "images, which raises scores that reward fitting the probe set (LogME, SFDA, kNN, logistic): their "
              "intervals can lie above the score itself; compare experts by them, not the score with its interval.", "",
              "## Every method", "", "ranking.csv has every (expert, method); ranking.png plots them.", "",
              "## Preprocessing per expert", "", "| expert | input | resize | mean | std | interpolation |",
              "|---|---:|---:|---|---|---|"]
    for name, p in prep.items():
        lines.append(f"| {name} | {p['input_size']} | {p['resize']} | {', '.join(f'{v:.3g}' for v in p['mean'])} | "
                     f"{', '.join(f'{v:.3g}' for v in p['std'])} | {p['interpolation']} |")
    if skipped:
        lines += ["", "## Not computable", "", "| expert | method | reason |", "|---|---|---|"]
        lines += [f"| {s['expert']} | {s['method']} | {s['reason']} |" for s in skipped]
    path.write_text("\n".join(lines) + "\n")


# ----------------------------------------------------------------------------------- the command

def rank(cfg) -> pd.DataFrame:
    """The whole ranking (see the module docstring); returns ranking.csv's table."""
    from selection.run import method_table
    from zoo_training.zoo import load_entry, read_zoo

    folder = read_folder(cfg.images)
    method_table(cfg.methods, {})  # unknown methods: one line, before any image is read
    entries = read_zoo(cfg.zoo_file)
    out = Path(cfg.out or Path("results") / "rank" / folder.root.resolve().name)
    if cfg.prepared:
        folder, index = read_prepared(cfg.prepared, cfg.per_class)
    else:
        index = probe_set(folder, cfg.per_class, cfg.seed)
    check_images(folder, index)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    from zoo_training.engine import set_determinism

    set_determinism(cfg.threads or torch.get_num_threads())
    resamples = bootstrap_indices(folder.labels[index], cfg.bootstrap, cfg.seed)
    rows, skipped, seconds, prep, began = [], [], {}, {}, time.perf_counter()
    log.info("ranking %d experts on %d probe images of %d classes (%s) -> %s", len(entries), len(index),
             len(folder.classes), folder.root, out)
    for i, entry in enumerate(entries, 1):
        expert = load_entry(entry)
        inputs, seconds[entry.name], missing = expert_inputs(expert, folder, index, cfg)
        prep[entry.name] = expert.preprocessing.as_dict()
        # one BLAS thread: the scores' matrices are small, and threads cost more than they give (14 mini
        # experts: 161 s instead of 268 s on 2 cores)
        with threadpool_limits(limits=1):
            done, lost = score_all(entry.name, inputs, missing, list(cfg.methods), resamples, cfg.seed, cfg.confidence)
        rows += done
        skipped += lost
        elapsed = time.perf_counter() - began
        log.info("[%d/%d] %s (%s, %d-d features): %d scores in %.1fs; eta %.0fs", i, len(entries), entry.name,
                 entry.kind, inputs["features"].shape[1], len(done), elapsed, elapsed / i * (len(entries) - i))
    df = rank_table(rows, skipped, seconds)
    computable = set(df.dropna(subset=["score"])["method"])
    method, evidence, files = best_method(list(cfg.evidence), computable)
    if method is not None:
        mean = evidence[evidence["method"] == method]
        why = (f"`{method}` had the highest mean Spearman correlation with fine-tuned accuracy (full shots, mean over "
               f"targets) among the methods computable here, in this project's results: "
               + "; ".join(f"{r.results}: {r['mean']:.3f} over {int(r['count'])} targets" for _, r in mean.iterrows()) + ".")
    else:
        method = cfg.fallback_method if cfg.fallback_method in computable else sorted(computable)[0]
        why = (f"No benchmark results of this project were found ({', '.join(cfg.evidence)}: "
               f"{len(files)} file(s) with a method's Spearman correlation), so the ranking uses `{method}` "
               f"(fallback_method). Run a benchmark (make run) to base the choice on evidence.")
    order = list(df[df["method"] == method].sort_values("rank")["expert"])
    df.to_csv(out / "ranking.csv", index=False)
    pd.DataFrame(skipped, columns=["expert", "method", "reason"]).to_csv(out / "not_computable.csv", index=False)
    plot(df, order, out / "ranking.png")
    write_markdown(out / "ranking.md", cfg, folder, len(index), df, skipped, method, why, prep)
    (out / "recommendation.json").write_text(json.dumps({"method": method, "top": order[:cfg.top_k], "why": why},
                                                        indent=1))
    log.info("top %d by %s: %s; wrote %s", cfg.top_k, method, ", ".join(order[:cfg.top_k]), out / "ranking.md")
    return df


def report_finetuned(cfg) -> pd.DataFrame:
    """FINETUNE_TOP's report (step=report): each fine-tuned expert of the recommendation (`cfg.records`: the
    finetune stage's records) with its rank and score by the recommended method and its best test accuracy
    over the learning rates on the held-out images; finetune_top.csv (expert, rank, method, score, lr,
    test_accuracy, seconds) and finetune_top.md in `cfg.out`. Raises RankError for a missing record."""
    from analysis.tables import best_finetune, finetune_table

    out = Path(cfg.out)
    chosen = json.loads((out / "recommendation.json").read_text())
    ranking = pd.read_csv(out / "ranking.csv")
    ranking = ranking[ranking["method"] == chosen["method"]].set_index("expert")
    tuned = finetune_table(cfg.records)
    best = best_finetune(tuned).set_index("expert")
    lr = tuned.loc[tuned.groupby("expert")["test_accuracy"].idxmax()].set_index("expert")["lr"]
    missing = [e for e in chosen["top"] if e not in best.index]
    if missing:
        raise RankError(f"step=report: no fine-tuning record of {missing} among records={list(cfg.records)}")
    df = pd.DataFrame([{"expert": e, "rank": int(ranking.loc[e, "rank"]), "method": chosen["method"],
                        "score": ranking.loc[e, "score"], "lr": lr[e], "test_accuracy": best.loc[e, "test_accuracy"],
                        "seconds": best.loc[e, "seconds"]} for e in chosen["top"]])
    df.to_csv(out / "finetune_top.csv", index=False)
    lines = [f"# Fine-tuned: the top {len(df)} by `{chosen['method']}`", "",
             "Each expert fine-tuned with the recipe of the benchmark's fine-tuning stage (its learning-rate grid; "
             "the best test accuracy over it) on the folder's training part, tested on its held-out part, which "
             "the probe set never saw.", "", "| rank | expert | score | best lr | held-out accuracy (%) |",
             "|---:|---|---:|---:|---:|"]
    lines += [f"| {r.rank} | {r.expert} | {r.score:.4g} | {r.lr:g} | {r.test_accuracy:.2f} |" for r in df.itertuples()]
    (out / "finetune_top.md").write_text("\n".join(lines) + "\n")
    log.info("fine-tuned the top %d: %s", len(df), ", ".join(f"{r.expert} {r.test_accuracy:.1f}%" for r in df.itertuples()))
    return df


@hydra.main(version_base="1.3", config_path="../configs", config_name="rank")
@one_line_errors("rank")
def main(cfg) -> None:
    if cfg.step not in ("rank", "report"):
        raise RankError(f"step={cfg.step!r} is not one of rank, report")
    rank(cfg) if cfg.step == "rank" else report_finetuned(cfg)


if __name__ == "__main__":
    main()
