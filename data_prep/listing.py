"""What a dataset reader returns (data_prep.sources, data_prep.url_lists) and the helpers readers share."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from data_prep.download import DataPrepError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")


@dataclass
class Sample:
    path: Path
    label: str  # class name
    part: str  # the dataset's own split name


@dataclass
class Listing:
    samples: list[Sample]
    classes: list[str] | None = None  # label order; None: sorted class names
    skipped: list[dict] = field(default_factory=list)  # files dropped: {"path", "reason", "error"?, "class"?}
    dropped_classes: list[dict] = field(default_factory=list)  # classes dropped: {"class", "reason"}
    extra: dict = field(default_factory=dict)  # recorded in stats.json

    def class_names(self) -> list[str]:
        return list(self.classes) if self.classes is not None else sorted({s.label for s in self.samples})




def reader_options(dataset: dict) -> dict:
    return dataset.get("options") or {}


def find_file(raw: Path, name: str, dataset: dict, want_dir: bool = False) -> Path:
    """The shallowest file (or folder) called `name` under `raw`: archives differ in their top folder."""
    for candidates in ([raw / name], sorted(raw.glob(f"*/{name}")), raw.rglob(name)):  # cheap looks first
        hits = sorted((p for p in candidates if p.exists() and p.is_dir() == want_dir), key=lambda p: (len(p.parts), str(p)))
        if hits:
            return hits[0]
    raise DataPrepError(
        f"dataset {dataset['name']!r}: no {'folder' if want_dir else 'file'} named {name!r} under {raw}; "
        f"the files there are incomplete or not the expected version: delete the broken file or folder and run again"
    )


def text_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]


def load_mat(path: Path) -> dict:
    from scipy.io import loadmat

    return loadmat(path, squeeze_me=True)


def images_under(folder: Path, extensions) -> list[Path]:
    """Files under `folder` with one of `extensions` (None: every file), hidden ones left out."""
    return sorted(p for p in folder.rglob("*") if (extensions is None or p.suffix.lower() in extensions) and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))
