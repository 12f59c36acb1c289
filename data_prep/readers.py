"""Reading prepared datasets: the one place that knows the on-disk layouts.

A prepared dataset directory holds
- either `arrays.npz` (generated data): train_images / test_images (N, H, W, 3 uint8) and their labels,
- or `manifest.csv` (real data): path,label,split rows, train rows first, paths relative to the
  directory, pointing at the resized JPEGs under `images/`;
- `splits.json`: training indices per shot setting ("full", "20", "5", ...) and the named probe
  sets per setting (indices into the train rows; see `data_prep.prepare.probe_indices`);
- `classes.json` and `stats.json`.

`PreparedDataset` tells the layouts apart by which of `arrays.npz` / `manifest.csv` exists and
returns `ImageArrays` or `ImageFiles`: the same API (`len`, `.labels`, `.subset`, `.batch`,
`.num_classes`) and both torch Datasets (`ds[i]` -> (CHW float tensor, label)).
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from data_prep.download import DataPrepError
from data_prep.prepare import validation_split

# fixed normalisation for generated data (mean/std of the renderer's pixel range)
MEAN, STD = 0.5, 0.25
# real images: the ImageNet statistics every pre-trained torchvision/timm network expects
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _as_index(index) -> torch.Tensor:
    return torch.as_tensor(np.asarray(index, dtype=np.int64))


@dataclass
class ImageArrays(Dataset):
    """Images kept as uint8 NHWC; batches come out normalised float NCHW. `transform`: an expert's own
    (PIL image -> tensor; zoo_training.zoo), applied to each image instead of the fixed MEAN / STD."""

    images: torch.Tensor
    labels: torch.Tensor
    transform: Any = None

    def __len__(self) -> int:
        return len(self.labels)

    def _own(self, i: int) -> torch.Tensor:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i].numpy()))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self.transform is not None:
            return self._own(int(i)), int(self.labels[i])
        image = self.images[i].permute(2, 0, 1).float().div_(255.0)
        return image.sub_(MEAN).div_(STD), int(self.labels[i])

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.transform is not None:
            index = _as_index(index)
            return torch.stack([self._own(int(i)) for i in index]), self.labels[index]
        images = self.images[index].permute(0, 3, 1, 2).float().div_(255.0)
        return images.sub_(MEAN).div_(STD), self.labels[index]

    def subset(self, index) -> "ImageArrays":
        index = _as_index(index)
        return ImageArrays(self.images[index], self.labels[index], self.transform)

    def augmented(self, train_transform: bool = True) -> "ImageArrays":
        """Generated data is not augmented; here for API parity with ImageFiles."""
        return self

    @property
    def num_classes(self) -> int:
        return int(self.labels.max().item()) + 1


def image_transform(train_transform: bool, image_size: int = 224, resize: int = 256):
    """torchvision's classification recipe: RandomResizedCrop + flip to train, Resize + CenterCrop to evaluate."""
    from torchvision import transforms as T

    geometry = ([T.RandomResizedCrop(image_size), T.RandomHorizontalFlip()] if train_transform
                else [T.Resize(resize), T.CenterCrop(image_size)])
    return T.Compose([*geometry, T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


class ImageFiles(Dataset):
    """Image files decoded on access; `batch` and `ds[i]` give normalised float tensors (ImageArrays' API)."""

    def __init__(self, root: str | Path, paths: list[str], labels: torch.Tensor, num_classes: int,
                 train_transform: bool = False, image_size: int = 224, resize: int = 256, transform=None):
        """`transform`: an expert's own (PIL image -> tensor; zoo_training.zoo), instead of the recipe's."""
        self.root, self.paths, self.labels = Path(root), list(paths), torch.as_tensor(labels, dtype=torch.long)
        self._num_classes, self.train_transform = int(num_classes), bool(train_transform)
        self.image_size, self.resize, self._own = int(image_size), int(resize), transform
        self.transform = transform or image_transform(self.train_transform, self.image_size, self.resize)

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, i: int) -> torch.Tensor:
        from PIL import Image

        with Image.open(self.root / self.paths[i]) as image:
            return self.transform(image.convert("RGB"))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.load(int(i)), int(self.labels[i])

    def batch(self, index) -> tuple[torch.Tensor, torch.Tensor]:
        index = _as_index(index)
        return torch.stack([self.load(int(i)) for i in index]), self.labels[index]

    def subset(self, index) -> "ImageFiles":
        index = _as_index(index)
        return ImageFiles(self.root, [self.paths[i] for i in index.tolist()], self.labels[index], self._num_classes,
                          self.train_transform, self.image_size, self.resize, self._own)

    def augmented(self, train_transform: bool = True) -> "ImageFiles":
        """The same images with the training (True) or the evaluation (False) transform; an expert's own
        transform stays (the caller gave its training or its evaluation one)."""
        return ImageFiles(self.root, self.paths, self.labels, self._num_classes, train_transform, self.image_size,
                          self.resize, self._own)

    @property
    def num_classes(self) -> int:
        return self._num_classes


class PreparedDataset:
    """A dataset written by `python -m data_prep` (either layout)."""

    def __init__(self, root: str | Path, image_size: int | None = None):
        """`image_size`: the side the images come out at (generated: their own; files: the crop,
        from stats.json, default 224)."""
        self.root = Path(root)
        layout = next((name for name in ("arrays.npz", "manifest.csv") if (self.root / name).exists()), None)
        for name in (layout or "arrays.npz or manifest.csv", "splits.json", "classes.json"):
            if not (self.root / name).exists():
                raise DataPrepError(f"{self.root / name} is missing: run the data_prep stage for this dataset first")
        self.splits = json.loads((self.root / "splits.json").read_text())
        self.classes = json.loads((self.root / "classes.json").read_text())
        self._arrays, self._files = None, None
        if layout == "arrays.npz":
            with np.load(self.root / "arrays.npz") as arrays:
                self._arrays = {k: torch.from_numpy(arrays[k]) for k in arrays.files}
            self.image_size = int(self._arrays["train_images"].shape[1])  # generated images keep their size
        else:
            stats_path = self.root / "stats.json"
            stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
            self.image_size = int(image_size or stats.get("image_size") or 224)
            self.resize = int(round(self.image_size * 256 / 224))
            with open(self.root / "manifest.csv", newline="") as f:
                rows = list(csv.DictReader(f))
            self._files = {part: ([r["path"] for r in rows if r["split"] == part],
                                  torch.tensor([int(r["label"]) for r in rows if r["split"] == part], dtype=torch.long))
                           for part in ("train", "test")}

    @property
    def layout(self) -> str:
        return "arrays" if self._arrays is not None else "files"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def preprocessing(self) -> dict:
        """How `split` turns an image into a network input, as zoo_training.zoo.Preprocessing's fields (an
        expert's checkpoint records it): generated arrays at their own size with MEAN / STD; files
        resized to `resize`, centre-cropped to `image_size`, with the ImageNet statistics."""
        if self._arrays is not None:
            return {"input_size": self.image_size, "resize": self.image_size, "mean": [MEAN] * 3, "std": [STD] * 3,
                    "interpolation": "bilinear"}
        return {"input_size": self.image_size, "resize": self.resize, "mean": list(IMAGENET_MEAN),
                "std": list(IMAGENET_STD), "interpolation": "bilinear"}

    def split(self, name: str, train_transform: bool = False, transform=None) -> ImageArrays | ImageFiles:
        """All images of "train" or "test"; files get the training transform when `train_transform`.
        `transform`: an expert's own evaluation transform (PIL image -> tensor) instead of either layout's."""
        if self._arrays is not None:
            return ImageArrays(self._arrays[f"{name}_images"], self._arrays[f"{name}_labels"].long(), transform)
        paths, labels = self._files[name]
        return ImageFiles(self.root, paths, labels, self.num_classes, train_transform, self.image_size, self.resize,
                          transform)

    def _indices(self, kind: str, shots: str):
        if shots not in self.splits[kind]:
            raise DataPrepError(f"{self.root}: no {kind} indices for shots={shots!r}; prepared: {sorted(self.splits[kind])}")
        return self.splits[kind][shots]

    def probe_names(self, shots: str) -> list[str]:
        return list(self._indices("probe", shots))

    def probe_indices(self, shots: str) -> dict[str, np.ndarray]:
        """Probe set name -> its images' indices into `split("train")`, in the probe set's order."""
        return {name: np.asarray(index, dtype=np.int64) for name, index in self._indices("probe", shots).items()}

    def train(self, shots: str = "full", transform=None) -> ImageArrays | ImageFiles:
        """The training data of one shot setting (augmented when read from files; `transform`: an expert's own
        training transform instead)."""
        return self.split("train", train_transform=True, transform=transform).subset(self._indices("train", shots))

    def train_validation(self, shots: str, fraction: float, seed: int, transform=None, eval_transform=None):
        """(training part, validation part) of one shot setting (`data_prep.prepare.validation_split`: a seeded,
        stratified `fraction` of each class held out); the training part as `train`, the validation part not
        augmented (`eval_transform`: an expert's own evaluation transform). `fraction` 0: (`train`, None)."""
        index = self._indices("train", shots)
        if not fraction:
            return self.train(shots, transform), None
        labels = self.split("train").labels.numpy()
        fit_part, held = validation_split(labels, index, fraction, seed)
        return (self.split("train", train_transform=True, transform=transform).subset(fit_part),
                self.split("train", transform=eval_transform).subset(held))

    def probe_set(self, shots: str, probe: str, transform=None) -> ImageArrays | ImageFiles:
        """A selection probe set of one shot setting (drawn from that setting's training data; not augmented);
        `probe` is a name of pipeline.layout (per_class_25, all, parc_draw0, ...); `transform` as in `split`.
        Raises DataPrepError."""
        probes = self._indices("probe", shots)
        if probe not in probes:
            raise DataPrepError(f"{self.root}: no probe set {probe!r} for shots={shots!r}; prepared: {sorted(probes)}")
        return self.split("train", transform=transform).subset(probes[probe])

    def test(self, transform=None) -> ImageArrays | ImageFiles:
        return self.split("test", transform=transform)
