"""Identity and layout of the benchmark: expert ids, probe-set names, shot feasibility and every path.

The Snakefile's rules and every stage import this one module, so a name or a path is made and
parsed in one place. Nothing here imports torch (the analysis stage reads it too).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

# ---------------------------------------------------------------------------------------------
# expert ids: {arch}-{source} (from scratch), {arch}-{source}-init (from the generalist's weights,
# the paper's check mark), {arch}-{source}-md (one domain of the multi-domain expert)
# ---------------------------------------------------------------------------------------------
KINDS = ("scratch", "init", "md")
_NAME = r"[a-z0-9_]+"
_EXPERT = re.compile(rf"^(?P<arch>{_NAME})-(?P<source>{_NAME})(?:-(?P<kind>init|md))?$")


@dataclass(frozen=True)
class Expert:
    """One expert of the zoo: its architecture key, its source and how it was trained.

    kind: ``scratch`` (trained on its source from random init), ``init`` (started from the
    generalist's weights: Deshpande Table 1's check mark) or ``md`` (one domain of the multi-domain
    expert, Deshpande Sec. 4.1)."""

    arch: str
    source: str
    kind: str = "scratch"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"expert kind {self.kind!r} is not one of {KINDS}")

    def __str__(self) -> str:
        return f"{self.arch}-{self.source}" + ("" if self.kind == "scratch" else f"-{self.kind}")

    @classmethod
    def parse(cls, expert: str) -> "Expert":
        """Raises ValueError naming the id when it is not {arch}-{source}[-init|-md]."""
        match = _EXPERT.match(str(expert))
        if not match:
            raise ValueError(f"expert id {expert!r} is not {{arch}}-{{source}}[-init|-md] "
                             f"(lower-case letters, digits and '_' in each part)")
        return cls(match["arch"], match["source"], match["kind"] or "scratch")


def zoo_experts(archs: Iterable[str], sources: Sequence[str], generalist: str) -> list[str]:
    """The single-domain zoo: every architecture on every source from scratch, and every
    non-generalist source again from the generalist's weights (30 in the paper)."""
    ids = []
    for arch in archs:
        for source in sources:
            ids.append(str(Expert(arch, source)))
            if source != generalist:
                ids.append(str(Expert(arch, source, "init")))
    return ids


def domain_experts(arch: str, sources: Sequence[str]) -> list[str]:
    """The multi-domain expert's domains, each a fine-tunable expert {arch}-{source}-md."""
    return [str(Expert(arch, s, "md")) for s in sources]


# ---------------------------------------------------------------------------------------------
# probe sets: named by what they hold
# ---------------------------------------------------------------------------------------------
PROBE_ALL = "all"
_PER_CLASS = re.compile(r"^per_class_(?P<k>\d+)$")
_PARC_DRAW = re.compile(r"^parc_draw(?P<i>\d+)$")


def per_class_probe(k: int | None) -> str:
    """At most k images per class of a shot setting's training data (the paper's probe set: k=25);
    k None: all of them (``all``: LogME / SFDA score on the whole training set)."""
    return PROBE_ALL if k is None else f"per_class_{int(k)}"


def parc_draw_probe(i: int) -> str:
    """PARC's i-th random probe draw (Bolya et al. Sec. 5: 5 draws of 500 images)."""
    return f"parc_draw{int(i)}"


def probe_per_class(name: str) -> int | None:
    """k of ``per_class_k``; None for ``all`` and for PARC's draws."""
    match = _PER_CLASS.match(name)
    return int(match["k"]) if match else None


def is_parc_draw(name: str) -> bool:
    return bool(_PARC_DRAW.match(name))


def probe_label(name: str) -> str:
    """Human label of a probe set, e.g. '25 per class', 'all images', 'PARC draw 0'."""
    k = probe_per_class(name)
    if k is not None:
        return f"{k} per class"
    if name == PROBE_ALL:
        return "all images"
    if is_parc_draw(name):
        return f"PARC draw {_PARC_DRAW.match(name)['i']}"
    return name


def probe_sets(shots: str, per_class: int | None, ablation: Sequence[int] = (), parc_draws: int = 0) -> list[str]:
    """Probe sets of one shot setting: the paper's probe set everywhere; on the full setting also
    the probe-size ablation (Deshpande Fig. 7: larger per-class caps and all images) and PARC's draws."""
    names = [per_class_probe(per_class)]
    if str(shots) == "full":
        names += [per_class_probe(k) for k in ablation] + ([PROBE_ALL] if ablation and per_class is not None else [])
        names += [parc_draw_probe(i) for i in range(parc_draws)]
    return names


# ---------------------------------------------------------------------------------------------
# shot settings
# ---------------------------------------------------------------------------------------------
def short_classes(counts: Mapping[str, int], shots: Iterable[str]) -> dict[str, dict[str, int]]:
    """For each few-shot setting, the classes with fewer training images than its shot count:
    {shots: {class name: images}}; settings every class can fill are left out."""
    out = {}
    for s in shots:
        if str(s) == "full":
            continue
        short = {str(c): int(n) for c, n in counts.items() if int(n) < int(s)}
        if short:
            out[str(s)] = short
    return out


# ---------------------------------------------------------------------------------------------
# the caches of one expert (or of the probe networks) under their folder
# ---------------------------------------------------------------------------------------------
def setting_dir(root: Path, target: str, shots: str) -> Path:
    """The caches of one (target, shot setting) under an expert's cache folder or the probe networks'."""
    return Path(root) / target / str(shots)


def probe_cache(root: Path, target: str, shots: str, probe_set: str) -> Path:
    """{root}/{target}/{shots}/{probe_set}.npz: an expert's features, or the probe network's, on one probe set."""
    return setting_dir(root, target, shots) / f"{probe_set}.npz"


def probe_manifest(network_dir: Path, target: str) -> Path:
    """{network_dir}/{target}/caches.json: one probe network's caches of a target, written after them (a
    selection job depends on it, not on each cache: Snakemake stats every input of every ready job each
    time it schedules, ~370 files per selection job of the paper DAG)."""
    return Path(network_dir) / target / "caches.json"


def probe_network_dir(root: Path, network: str) -> Path:
    """{root}/{network}: one probe network's models and caches under the probe networks' folder."""
    return Path(root) / str(network)


def source_cache(root: Path) -> Path:
    """An expert's features on its own source images (Domain Similarity)."""
    return Path(root) / "source.npz"


# ---------------------------------------------------------------------------------------------
# paths: everything under one results folder
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Every path the pipeline writes under ``results`` (one folder per benchmark)."""

    results: Path

    def __post_init__(self):
        object.__setattr__(self, "results", Path(self.results))

    # prepared data: {data_root}/<dataset>/ holds splits.json, classes.json, stats.json and the data
    def data_root(self) -> Path:
        return self.results / "data"

    def data_dir(self, dataset: str) -> Path:
        return self.data_root() / dataset

    def splits(self, dataset: str) -> Path:
        return self.data_dir(dataset) / "splits.json"

    def data_record(self, dataset: str, name: str) -> Path:
        """classes.json or stats.json of a prepared dataset."""
        return self.data_dir(dataset) / f"{name}.json"

    # experts
    def experts_root(self) -> Path:
        return self.results / "experts"

    def expert_dir(self, expert: str) -> Path:
        return self.experts_root() / str(expert)

    def expert_weights(self, expert: str) -> Path:
        return self.expert_dir(expert) / "model.pt"

    def expert_metrics(self, expert: str) -> Path:
        return self.expert_dir(expert) / "metrics.json"

    def multidomain_dir(self, variant: str) -> Path:
        return self.results / "multidomain" / variant

    def multidomain_weights(self, variant: str) -> Path:
        return self.multidomain_dir(variant) / "model.pt"

    def multidomain_metrics(self, variant: str) -> Path:
        return self.multidomain_dir(variant) / "metrics.json"

    def checkpoint(self, stage: str, name: str) -> Path:
        """Resumable training state beside the job, deliberately not a Snakemake output
        (Snakemake deletes the outputs of a failed job)."""
        return self.results / "work" / stage / name / "last.pt"

    # selection
    def feature_dir(self, expert: str) -> Path:
        return self.results / "features" / str(expert)

    def feature_cache(self, expert: str, target: str, shots: str, probe_set: str) -> Path:
        return probe_cache(self.feature_dir(expert), target, shots, probe_set)

    def source_cache(self, expert: str) -> Path:
        return source_cache(self.feature_dir(expert))

    def probe_model_dir(self) -> Path:
        """Every probe network's models and caches: probe_models/<network>/<target>/<shots>/."""
        return self.results / "probe_models"

    def probe_model_cache(self, network: str, target: str, shots: str, probe_set: str) -> Path:
        return probe_cache(probe_network_dir(self.probe_model_dir(), network), target, shots, probe_set)

    def probe_model_manifest(self, network: str, target: str) -> Path:
        return probe_manifest(probe_network_dir(self.probe_model_dir(), network), target)

    # per-job records
    def record(self, kind: str, expert: str) -> Path:
        """kind: finetune | scores (JSON) or theta_f (npz)."""
        return self.results / "records" / kind / (f"{expert}.npz" if kind == "theta_f" else f"{expert}.json")

    # analysis outputs
    def table(self, name: str) -> Path:
        return self.results / "tables" / f"{name}.csv"

    def figure(self, name: str) -> Path:
        return self.results / "figures" / f"{name}.png"

    def figure_data(self, name: str) -> Path:
        """The CSV behind a figure."""
        return self.results / "figures" / f"{name}.csv"

    def summary(self) -> Path:
        return self.results / "summary.md"

    # bookkeeping of every job
    def run_dir(self, stage: str, *parts: str) -> Path:
        """Hydra's run directory of one job: concurrent jobs never share one."""
        return self.results / "runs" / stage / Path(*map(str, parts))

    def log(self, stage: str, *parts: str) -> Path:
        return self.results / "logs" / stage / (str(Path(*map(str, parts))) + ".log" if parts else "job.log")

    def benchmark(self, stage: str, *parts: str) -> Path:
        return self.results / "benchmarks" / stage / (str(Path(*map(str, parts))) + ".tsv" if parts else "job.tsv")
