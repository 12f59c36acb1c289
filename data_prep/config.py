"""Hydra structured configs of the data_prep stage and of every dataset file."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class SyntheticConfig:
    """Generator parameters of a mini-benchmark domain (see data_prep.synthetic)."""

    families: List[int] = MISSING
    motifs: List[int] = MISSING
    noise: float = 0.3
    class_seed: int = 0
    seed: int = 0


@dataclass
class DownloadFile:
    """One raw file: where to get it and how to check it (data_prep.download.obtain)."""

    name: str = MISSING  # path under the raw directory ({shard} is the shard number when `shards` is set)
    urls: List[str] = field(default_factory=list)  # primary first, then mirrors
    md5: Optional[str] = None
    sha256: Optional[str] = None
    md5_url: Optional[str] = None  # a published md5sum file, when the checksum lives beside the file
    size: Optional[int] = None  # bytes; for progress, and the only check when no checksum is known
    extract: Optional[bool] = None  # default: by file name (.tar, .tar.gz, .tgz, .zip)
    extract_to: Optional[str] = None  # folder under the raw directory (default: the raw directory)
    provides: Optional[str] = None  # a path that exists once the file is unpacked: skip the file then
    shards: Optional[int] = None  # this entry stands for files 0..shards-1


@dataclass
class DownloadConfig:
    files: List[DownloadFile] = field(default_factory=list)
    manual: Optional[str] = None  # set: nothing is downloaded; the text says where to get the files


@dataclass
class SplitConfig:
    """How the dataset's own parts become train/test (data_prep.prepare.assign_split)."""

    rule: str = "official"  # official | stratified
    train_parts: List[str] = field(default_factory=lambda: ["train"])
    test_parts: List[str] = field(default_factory=lambda: ["test"])
    pool: Optional[List[str]] = None  # stratified: the parts to split (default: all)
    test_fraction: Optional[float] = None  # stratified: round(n * fraction) per class to test ...
    test_per_class: Optional[int] = None  # ... or exactly this many per class ...
    train_per_class: Optional[int] = None  # ... or exactly this many per class to train, the rest to test
    seed: int = 0


@dataclass
class DatasetConfig:
    name: str = MISSING
    role: str = MISSING  # source | target
    kind: str = "synthetic"  # synthetic, or a reader in data_prep.sources.READERS
    num_classes: int = MISSING
    train_per_class: Optional[int] = None  # synthetic: generated per class; real: the smallest class (or null)
    test_per_class: Optional[int] = None
    image_size: int = 32  # synthetic: rendered size; real: training crop size
    description: str = ""
    synthetic: Optional[SyntheticConfig] = None
    # real datasets
    paper_train: Optional[int] = None  # Deshpande et al. 2021, Table 4
    paper_test: Optional[int] = None
    path: Optional[str] = None  # kind imagefolder: a local folder instead of a download
    download: Optional[DownloadConfig] = None
    split: Optional[SplitConfig] = None
    options: Optional[Dict[str, Any]] = None  # reader-specific (see data_prep.sources)
    notes: str = ""  # every disagreement between the paper and the data


@dataclass
class DataPrepConfig:
    dataset: DatasetConfig = MISSING
    out_dir: str = MISSING
    # training subsets to write: "full" and few-shot counts per class
    shots: List[str] = field(default_factory=lambda: ["full"])
    # the probe set of every shot setting: at most this many images per class (benchmark `probe_sets.per_class`;
    # null: every training image, the probe set `all` of LogME / SFDA)
    probe_per_class: Optional[int] = MISSING
    # probe-size ablation of the full setting (Deshpande Fig. 7): these per-class caps plus "all"
    probe_ablation_per_class: List[int] = field(default_factory=list)
    # PARC's protocol on the full setting: this many probe sets of parc_probe_size images
    parc_draws: int = 0
    # images per PARC draw (Bolya et al. Sec. 5: 500)
    parc_probe_size: int = 500
    seed: int = 0
    # real datasets: where raw downloads live, and the resize cache
    raw_dir: str = "data/raw/${dataset.name}"
    workers: int = 4  # processes that decode and resize images
    resize_shorter: int = 256
    jpeg_quality: int = 95


ConfigStore.instance().store(name="data_prep_schema", node=DataPrepConfig)
