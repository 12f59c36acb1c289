"""Write a prepared dataset: images (or arrays), shot subsets, probe sets, classes and stats.

Two layouts, one contract for `splits.json`, `classes.json` and `stats.json`:
- `kind: synthetic` writes `arrays.npz` (generated mini data);
- every other kind (a reader in `data_prep.sources.READERS`) writes `manifest.csv`
  (path,label,split; train rows first) and the resized JPEGs under `images/`.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from data_prep.download import DataPrepError, obtain
from data_prep.images import resize_all
from data_prep.sources import READERS, Sample
from data_prep.synthetic import DomainSpec, class_motifs, generate
from pipeline.layout import PROBE_ALL, parc_draw_probe, per_class_probe, short_classes

log = logging.getLogger("data_prep")
__all__ = ["DataPrepError", "assign_split", "few_shot_indices", "prepare", "probe_indices", "shot_feasibility",
           "validation_split"]


def few_shot_indices(labels: np.ndarray, shots: list[str], seed: int, class_names: list[str] | None = None,
                     short: str = "error", name: str = "dataset") -> dict[str, list[int]]:
    """Training indices per shot setting; smaller settings are nested in larger ones.

    One seeded permutation per class: the k-shot subset is its first k images,
    so the 5-shot images are also in the 20-shot set. A class with fewer than k
    training images raises DataPrepError naming the classes and their counts
    (`shot_feasibility`), unless `short` is "all_available": then the class
    contributes all of its images (recorded by the caller in stats.json).
    """
    rng = np.random.default_rng(seed)
    per_class = {int(c): rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)}
    names = class_names or [str(c) for c in range(int(labels.max()) + 1 if len(labels) else 0)]
    shot_feasibility({names[c]: len(idx) for c, idx in per_class.items()}, shots, short, name)
    out = {}
    for setting in shots:
        if setting == "full":
            out[setting] = list(range(len(labels)))
            continue
        k = int(setting)
        out[setting] = sorted(int(i) for idx in per_class.values() for i in idx[:k])
    return out


def validation_split(labels: np.ndarray, index, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(training part, validation part) of the training indices `index`: per class, a seeded permutation
    whose first round(n * `fraction`) images are held out, at least 1 of a class with 2 or more images and
    never all of them (5 shots at 0.2: 1 held out, 4 trained on; a class of 1 image is never held out).
    `fraction` 0: nothing held out. Both parts sorted. Raises DataPrepError for a fraction outside [0, 1)."""
    if not 0.0 <= float(fraction) < 1.0:
        raise DataPrepError(f"validation fraction {fraction} is not in [0, 1)")
    index = np.asarray(index, dtype=np.int64)
    if float(fraction) == 0.0:
        return sorted(int(i) for i in index), []
    rng = np.random.default_rng(seed + 15485863)
    held = []
    for c in np.unique(labels[index]):
        members = rng.permutation(index[labels[index] == c])
        if len(members) >= 2:
            held += list(members[:min(max(int(round(len(members) * float(fraction))), 1), len(members) - 1)])
    held_set = {int(i) for i in held}
    return sorted(int(i) for i in index if int(i) not in held_set), sorted(held_set)


SHORT_POLICIES = ("error", "all_available")


def shot_feasibility(counts: dict[str, int], shots: list[str], short: str = "error", name: str = "dataset",
                     when: str = "") -> dict[str, list[dict]]:
    """Check every few-shot setting against the training images per class, before any work.

    counts: {class name: training images}. Returns {shots: [{"class", "images", "shots"}]} for the
    classes short of a setting (pipeline.layout.short_classes), empty when all can be filled.
    Raises DataPrepError naming the short classes, their counts and what to do, unless
    `short` (config key options.short_classes) is "all_available".
    """
    if short not in SHORT_POLICIES:
        raise DataPrepError(f"dataset {name!r}: options.short_classes={short!r} is not one of {list(SHORT_POLICIES)} "
                            f"(configs/dataset/{name}.yaml)")
    short_by_shots = short_classes(counts, shots)
    if short_by_shots and short != "all_available":
        parts = []
        for setting, classes in short_by_shots.items():
            listed = ", ".join(f"{c} ({n})" for c, n in sorted(classes.items(), key=lambda kv: (kv[1], kv[0]))[:20])
            more = f" and {len(classes) - 20} more" if len(classes) > 20 else ""
            parts.append(f"shots={setting}: {len(classes)} of {len(counts)} classes have fewer training images "
                         f"{when}than {setting}: {listed}{more}")
        raise DataPrepError(
            f"dataset {name!r}: " + "; ".join(parts) + ". Lower the shot count (benchmark key shots), add "
            f"images to those classes, or set options.short_classes: all_available in configs/dataset/{name}.yaml "
            f"to train such a class on all of its training images (recorded in stats.json short_classes)")
    return {s: [{"class": c, "images": n, "shots": int(s)} for c, n in sorted(classes.items())]
            for s, classes in short_by_shots.items()}


def _per_class_cap(labels: np.ndarray, index: np.ndarray, cap: int | None, rng: np.random.Generator) -> list[int]:
    parts = [rng.permutation(index[labels[index] == c])[:cap] for c in np.unique(labels[index])]
    return sorted(int(i) for part in parts for i in part)


def parc_draw(labels: np.ndarray, index: np.ndarray, size: int, rng: np.random.Generator) -> list[int]:
    """PARC's probe set: `size` images with at least 2 per class (2 per class first, the rest uniformly)."""
    classes = np.unique(labels[index])
    if size < 2 * len(classes):
        raise DataPrepError(f"a PARC probe set of {size} images cannot hold 2 images of each of {len(classes)} classes")
    base = [i for c in classes for i in rng.permutation(index[labels[index] == c])[:2]]
    rest = rng.permutation(np.setdiff1d(index, base))[: max(0, size - len(base))]
    return sorted(int(i) for i in np.concatenate([base, rest]))


def probe_indices(
    labels: np.ndarray,
    train_sets: dict[str, list[int]],
    per_class: int | None,
    seed: int,
    ablation_per_class: list[int] | tuple[int, ...] = (),
    parc_draws: int = 0,
    parc_size: int = 500,
) -> dict[str, dict[str, list[int]]]:
    """Probe sets per shot setting, drawn from that setting's training data only (never test data).

    ``per_class_<per_class>`` (pipeline.layout): at most `per_class` images per class (the paper's 25; None:
    every image, named ``all``). For the full
    setting also the probe-size ablation (Deshpande Fig. 7: "per_class_<k>" and "all")
    and PARC's protocol ("parc_draw<i>": `parc_size` images, at least 2 per class).
    """
    out = {}
    for setting, index in train_sets.items():
        index = np.asarray(index)
        rng = np.random.default_rng(seed + 7919)
        probes = {per_class_probe(per_class): _per_class_cap(labels, index, per_class, rng)}
        if setting == "full":
            for k in ablation_per_class:
                probes[per_class_probe(k)] = _per_class_cap(labels, index, k, np.random.default_rng(seed + 7919 + k))
            if ablation_per_class:
                probes[PROBE_ALL] = sorted(int(i) for i in index)
            for draw in range(parc_draws):
                probes[parc_draw_probe(draw)] = parc_draw(labels, index, parc_size, np.random.default_rng(seed + 104729 + draw))
        out[setting] = probes
    return out


def check_shots(dataset: dict, shots: list[str]) -> None:
    """Fail early when a shot count exceeds what a class has."""
    for setting in shots:
        if setting != "full" and (not str(setting).isdigit() or int(setting) < 1):
            raise DataPrepError(f"shot setting {setting!r} is neither 'full' nor a positive integer")
        if setting != "full" and dataset.get("train_per_class") and int(setting) > dataset["train_per_class"]:
            raise DataPrepError(
                f"shots={setting} exceeds the {dataset['train_per_class']} training images per class of "
                f"dataset {dataset['name']!r}; lower the shot count in the benchmark config"
            )


def synthetic_spec(dataset: dict) -> DomainSpec:
    gen = dataset["synthetic"]
    return DomainSpec(
        families=tuple(gen["families"]),
        motifs=tuple(gen["motifs"]),
        num_classes=dataset["num_classes"],
        train_per_class=dataset["train_per_class"],
        test_per_class=dataset["test_per_class"],
        image_size=dataset["image_size"],
        noise=gen["noise"],
        class_seed=gen["class_seed"],
        seed=gen["seed"],
    )


def prepare(dataset: dict, out_dir: str | Path, shots: list[str], probe_per_class: int | None, seed: int,
            raw_dir: str | Path | None = None, workers: int = 1, resize_shorter: int = 256, jpeg_quality: int = 95,
            **probe_options) -> Path:
    """Generate (synthetic) or obtain, read, resize and split (every other kind) one dataset into `out_dir`."""
    if dataset["kind"] != "synthetic":
        raw = Path(raw_dir) if raw_dir is not None else Path("data/raw") / dataset["name"]
        return prepare_files(dataset, out_dir, shots, probe_per_class, seed, raw, workers, resize_shorter,
                             jpeg_quality, **probe_options)
    check_shots(dataset, shots)
    spec = synthetic_spec(dataset)
    try:
        classes = [f"family{f}-motif{m}" for f, m in class_motifs(spec)]
    except ValueError as err:
        raise DataPrepError(f"dataset {dataset['name']!r}: {err}") from None
    arrays = generate(spec)
    train_sets = few_shot_indices(arrays["train_labels"], shots, seed, classes, name=dataset["name"])
    splits = {"train": train_sets, "probe": probe_indices(arrays["train_labels"], train_sets, probe_per_class, seed, **probe_options)}
    stats = {
        "name": dataset["name"],
        "role": dataset["role"],
        "num_classes": len(classes),
        "train_images": int(len(arrays["train_labels"])),
        "test_images": int(len(arrays["test_labels"])),
        "image_size": spec.image_size,
        "shots": {k: len(v) for k, v in train_sets.items()},
        "probe": {k: {name: len(idx) for name, idx in v.items()} for k, v in splits["probe"].items()},
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "arrays.npz", **arrays)
    (out / "splits.json").write_text(json.dumps(splits))
    (out / "classes.json").write_text(json.dumps(classes, indent=1))
    (out / "stats.json").write_text(json.dumps(stats, indent=1))
    return out


def assign_split(samples: list[Sample], split: dict | None, name: str) -> list[tuple[Sample, str]]:
    """(sample, "train" | "test") by the config's split rule; samples of unused parts are dropped.

    official: the dataset's parts `train_parts` / `test_parts` become train / test.
    stratified: per class, a seeded permutation of the samples of the `pool` parts
    (all when unset), sorted by path first; the first `test_per_class` or
    round(n * `test_fraction`) go to test (at least one image stays on each side), or,
    with `train_per_class`, the first `train_per_class` go to train and the rest to test
    (e.g. Caltech-101's 30 per class).
    """
    split = split or {}
    rule = split.get("rule", "official")
    if rule == "official":
        train_parts, test_parts = set(split.get("train_parts") or ["train"]), set(split.get("test_parts") or ["test"])
        out = [(s, "train" if s.part in train_parts else "test") for s in samples if s.part in train_parts | test_parts]
        if not any(p == "train" for _, p in out) or not any(p == "test" for _, p in out):
            raise DataPrepError(
                f"dataset {name!r}: the official split needs parts {sorted(train_parts)} (train) and "
                f"{sorted(test_parts)} (test), but the data has parts {sorted({s.part for s in samples})}; set "
                f"split.train_parts / split.test_parts, or split.rule: stratified with split.test_fraction")
        return out
    if rule != "stratified":
        raise DataPrepError(f"dataset {name!r}: split.rule {rule!r} is neither 'official' nor 'stratified'")
    fraction, per_class, train_k = split.get("test_fraction"), split.get("test_per_class"), split.get("train_per_class")
    if sum(v is not None for v in (fraction, per_class, train_k)) != 1:
        raise DataPrepError(f"dataset {name!r}: a stratified split needs exactly one of split.test_fraction, "
                            f"split.test_per_class and split.train_per_class")
    pool = set(split["pool"]) if split.get("pool") else None
    by_class: dict[str, list[Sample]] = {}
    for s in samples:
        if pool is None or s.part in pool:
            by_class.setdefault(s.label, []).append(s)
    rng = np.random.default_rng(split.get("seed", 0))
    out = []
    for label in sorted(by_class):
        items = sorted(by_class[label], key=lambda s: str(s.path))
        order = rng.permutation(len(items))
        if train_k is not None:
            if int(train_k) >= len(items):
                raise DataPrepError(f"dataset {name!r}: class {label!r} has {len(items)} images, not more than "
                                    f"split.train_per_class={train_k}")
            out += [(items[j], "train" if k < int(train_k) else "test") for k, j in enumerate(order)]
            continue
        n_test = int(per_class) if per_class is not None else int(round(len(items) * float(fraction)))
        if per_class is not None and n_test >= len(items):
            raise DataPrepError(f"dataset {name!r}: class {label!r} has {len(items)} images, not more than "
                                f"split.test_per_class={per_class}")
        if len(items) >= 2:
            n_test = min(max(n_test, 1), len(items) - 1)
        out += [(items[j], "test" if k < n_test else "train") for k, j in enumerate(order)]
    return out


def _cache_name(sample: Sample, label: int, root: Path) -> str:
    """images/<label>/<stem>-<hash of the source path>.jpg: stable and collision-free."""
    try:
        source = sample.path.relative_to(root).as_posix()
    except ValueError:
        source = sample.path.as_posix()
    digest = hashlib.sha1(source.encode()).hexdigest()[:10]
    return f"images/{label:04d}/{sample.path.stem[:60]}-{digest}.jpg"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def short_class_policy(dataset: dict) -> str:
    """options.short_classes of a dataset config: "error" (default) or "all_available"."""
    policy = (dataset.get("options") or {}).get("short_classes", "error")
    if policy not in SHORT_POLICIES:
        raise DataPrepError(f"dataset {dataset['name']!r}: options.short_classes={policy!r} is not one of "
                            f"{list(SHORT_POLICIES)} (configs/dataset/{dataset['name']}.yaml)")
    return policy


def check_num_classes(dataset: dict, classes: list[str], dropped_classes: list[dict]) -> None:
    """The config's num_classes must equal the classes the data holds; DataPrepError naming both numbers."""
    expected = dataset.get("num_classes")
    if expected is None or int(expected) == len(classes):
        return
    lost = "; ".join(f"{d['class']} ({d['reason']})" for d in dropped_classes[:10])
    raise DataPrepError(
        f"dataset {dataset['name']!r}: config key num_classes is {expected} (configs/dataset/{dataset['name']}.yaml) "
        f"but the data has {len(classes)} classes" + (f"; dropped: {lost}" if lost else "")
        + f". Set num_classes: {len(classes)} if that is right, or fix the data"
        + (f" (config key path: {dataset['path']})" if dataset.get("path") else ""))


def _dropped_file(entry: dict) -> dict:
    return {"path": str(entry.get("path")), "reason": entry.get("reason") or "not obtainable",
            **({"detail": entry["error"]} if entry.get("error") else {}), **({"class": entry["class"]} if entry.get("class") else {})}


def report_dropped(name: str, dropped: dict, short: dict, out: Path | None = None) -> None:
    """One line on stderr per dataset: how many files and classes preparation dropped, which and why;
    and one line naming the classes trained on fewer images than a shot setting asks."""
    files, classes = dropped["files"], dropped["classes"]
    if files or classes:
        by_reason: dict[str, list[str]] = {}
        for f in files:
            by_reason.setdefault(f["reason"], []).append(Path(f["path"]).name)
        for c in classes:
            by_reason.setdefault(f"class {c['reason']}", []).append(c["class"])
        parts = [f"{len(v)} {k}: {', '.join(v[:5])}{', ...' if len(v) > 5 else ''}" for k, v in by_reason.items()]
        where = f"; all of them in {out / 'stats.json'} (dropped)" if out else ""
        print(f"data_prep: {name}: dropped {len(files)} file(s) and {len(classes)} class(es): {'; '.join(parts)}{where}",
              file=sys.stderr, flush=True)
    for setting, rows in short.items():
        listed = ", ".join(f"{r['class']} ({r['images']})" for r in rows[:10]) + (", ..." if len(rows) > 10 else "")
        print(f"data_prep: {name}: shots={setting}: {len(rows)} class(es) have fewer than {setting} training images "
              f"and use all they have (options.short_classes: all_available): {listed}", file=sys.stderr, flush=True)


def prepare_files(dataset: dict, out_dir: str | Path, shots: list[str], probe_per_class: int | None, seed: int, raw: Path,
                  workers: int = 1, resize_shorter: int = 256, jpeg_quality: int = 95, **probe_options) -> Path:
    """Obtain the raw files, read the dataset's layout, check it, cache resized images, split, write the manifest.

    Before any image is resized: the class list is checked against the config's num_classes and every
    few-shot setting against the training images per class (DataPrepError naming the short classes,
    unless options.short_classes is all_available). Every file and class dropped on the way is printed
    on stderr (one line) and recorded in stats.json (dropped).
    """
    name = dataset["name"]
    check_shots(dataset, shots)
    policy = short_class_policy(dataset)
    reader = READERS.get(dataset["kind"])
    if reader is None:
        raise DataPrepError(f"dataset {name!r}: unknown kind {dataset['kind']!r}; known: synthetic, {', '.join(sorted(READERS))}")
    if not dataset.get("path"):
        obtain(dataset, raw)
    listing = reader(dataset, raw)
    dropped = {"files": [_dropped_file(e) for e in listing.skipped], "classes": list(listing.dropped_classes)}
    listed = Counter(s.label for s in listing.samples)
    dropped["classes"] += [{"class": c, "reason": "no image listed"} for c in listing.class_names()
                           if not listed[c] and c not in {d["class"] for d in dropped["classes"]}]
    classes = [c for c in listing.class_names() if listed[c]]
    out = Path(out_dir)
    try:
        check_num_classes(dataset, classes, dropped["classes"])
        planned = Counter(s.label for s, part in assign_split(listing.samples, dataset.get("split"), name) if part == "train")
        shot_feasibility({c: planned[c] for c in classes}, shots, policy, name)
    except DataPrepError:
        report_dropped(name, dropped, {})
        raise
    index = {c: i for i, c in enumerate(classes)}
    out.mkdir(parents=True, exist_ok=True)
    source_root = Path(dataset["path"]).expanduser() if dataset.get("path") else raw
    rel = [_cache_name(s, index[s.label], source_root) for s in listing.samples]
    jobs = [(s.path, out / r, resize_shorter, jpeg_quality) for s, r in zip(listing.samples, rel)]
    workers = max(1, min(int(workers), os.cpu_count() or 1))
    errors = resize_all(jobs, workers, name=name)
    skipped = list(listing.skipped)
    usable, cached = [], {}
    for sample, path, error in zip(listing.samples, rel, errors):
        if error is None:
            usable.append(sample)
            cached[str(sample.path)] = path
        else:
            log.warning("%s: skipping unreadable image %s (%s)", name, sample.path, error)
            skipped.append({"path": str(sample.path), "error": error})
            dropped["files"].append({"path": str(sample.path), "reason": "unreadable image", "detail": error,
                                     "class": sample.label})
    readable = Counter(s.label for s in usable)
    lost = [c for c in classes if not readable[c]]
    dropped["classes"] += [{"class": c, "reason": "every image unreadable"} for c in lost]
    short: dict = {}
    try:
        check_num_classes(dataset, [c for c in classes if readable[c]], dropped["classes"])
        assigned = assign_split(usable, dataset.get("split"), name)
        rows = sorted(((cached[str(s.path)], index[s.label], part) for s, part in assigned),
                      key=lambda r: (r[2] != "train", r[1], r[0]))
        train_labels = np.array([label for _, label, part in rows if part == "train"], dtype=np.int64)
        counts = Counter(classes[label] for label in train_labels)
        short = shot_feasibility({c: counts[c] for c in classes}, shots, policy, name,
                                 when="(after dropping unreadable images) " if dropped["files"] else "")
        train_sets = few_shot_indices(train_labels, shots, seed, classes, policy, name)
    except DataPrepError:
        report_dropped(name, dropped, {})
        raise
    report_dropped(name, dropped, short, out)
    splits = {"train": train_sets, "probe": probe_indices(train_labels, train_sets, probe_per_class, seed, **probe_options)}
    stats = _stats(dataset, classes, rows, train_sets, splits, listing.extra, skipped, resize_shorter, dropped, short)
    with open(out / "manifest.csv.tmp", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "split"])
        writer.writerows(rows)
    os.replace(out / "manifest.csv.tmp", out / "manifest.csv")
    _write_atomic(out / "splits.json", json.dumps(splits))
    _write_atomic(out / "classes.json", json.dumps(classes, indent=1))
    _write_atomic(out / "stats.json", json.dumps(stats, indent=1))
    log.info("%s: %d train / %d test images, %d classes, %d files and %d classes dropped", name, stats["train_images"],
             stats["test_images"], len(classes), len(dropped["files"]), len(dropped["classes"]))
    return out


def _stats(dataset, classes, rows, train_sets, splits, extra, skipped, resize_shorter, dropped, short) -> dict:
    counts = {part: Counter(classes[label] for _, label, p in rows if p == part) for part in ("train", "test")}
    warnings = []
    empty = [c for c in classes if not counts["train"][c]]
    if empty:
        warnings.append(f"{len(empty)} classes have no training image: {empty[:10]}")
    for warning in warnings:
        log.warning("%s: %s", dataset["name"], warning)
    return {
        "name": dataset["name"],
        "role": dataset["role"],
        "kind": dataset["kind"],
        "num_classes": len(classes),
        "train_images": sum(counts["train"].values()),
        "test_images": sum(counts["test"].values()),
        "paper_train": dataset.get("paper_train"),
        "paper_test": dataset.get("paper_test"),
        "min_train_per_class": min(counts["train"].values(), default=0),
        "per_class": {c: {"train": counts["train"][c], "test": counts["test"][c]} for c in classes},
        "image_size": dataset.get("image_size", 224),
        "resize_shorter": resize_shorter,
        "split": dataset.get("split"),
        "shots": {k: len(v) for k, v in train_sets.items()},
        # per few-shot setting, the classes trained on all they have (options.short_classes: all_available)
        "short_classes": short,
        "probe": {k: {name: len(idx) for name, idx in v.items()} for k, v in splits["probe"].items()},
        "notes": dataset.get("notes", ""),
        "warnings": warnings,
        "dropped": dropped,
        "skipped_count": len(skipped),
        "skipped": skipped,
        **extra,
    }
