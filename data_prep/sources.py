"""One reader per raw dataset layout: raw directory in, list of (image file, class, the dataset's own part) out.

A reader knows where a dataset keeps its images and labels (folders, json/txt
lists, .mat files, pickles, tar shards); it neither resizes nor splits. The
`part` of a sample is the dataset's own name for its split ("train", "val",
"trainval", "test", or "all" when there is none); the config's `split` block
turns parts into the benchmark's train/test (`data_prep.prepare.assign_split`).
`READERS` maps a config's `kind` to its reader.
"""
from __future__ import annotations

import csv
import json
import logging
import pickle
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.request import Request, urlopen

import numpy as np

from data_prep.download import DataPrepError, extract

log = logging.getLogger("data_prep")

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
    skipped: list[dict] = field(default_factory=list)  # listed by the source but not obtainable
    extra: dict = field(default_factory=dict)  # recorded in stats.json

    def class_names(self) -> list[str]:
        return list(self.classes) if self.classes is not None else sorted({s.label for s in self.samples})


# ---------------------------------------------------------------- helpers


def _options(dataset: dict) -> dict:
    return dataset.get("options") or {}


def _find(raw: Path, name: str, dataset: dict, want_dir: bool = False) -> Path:
    """The shallowest file (or folder) called `name` under `raw`: archives differ in their top folder."""
    for candidates in ([raw / name], sorted(raw.glob(f"*/{name}")), raw.rglob(name)):  # cheap looks first
        hits = sorted((p for p in candidates if p.exists() and p.is_dir() == want_dir), key=lambda p: (len(p.parts), str(p)))
        if hits:
            return hits[0]
    raise DataPrepError(
        f"dataset {dataset['name']!r}: no {'folder' if want_dir else 'file'} named {name!r} under {raw}; "
        f"the files there are incomplete or not the expected version: delete the broken file or folder and run again"
    )


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]


def _loadmat(path: Path) -> dict:
    from scipy.io import loadmat

    return loadmat(path, squeeze_me=True)


def _images_under(folder: Path, extensions) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in extensions and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


# ---------------------------------------------------------------- readers


def read_imagefolder(dataset: dict, raw: Path) -> Listing:
    """root/<class>/<image> (any depth below the class folder), or root/<part>/<class>/<image>.

    root is the config's `path` (a local folder) or `options.root` under the raw
    directory; `options.class_glob` selects class folders, `options.extensions`
    the image files. Part folders are recognised by the names in the `split` block.
    """
    opts = _options(dataset)
    root = Path(dataset["path"]).expanduser() if dataset.get("path") else raw / (opts.get("root") or "")
    if not root.is_dir():
        raise DataPrepError(f"dataset {dataset['name']!r}: image folder {root} does not exist "
                            f"(config key {'path' if dataset.get('path') else 'options.root'})")
    extensions = tuple(e.lower() for e in (opts.get("extensions") or IMAGE_EXTENSIONS))
    split = dataset.get("split") or {}
    part_names = {"train", "test", "val", "validation", "trainval"} | set(split.get("train_parts") or []) \
        | set(split.get("test_parts") or []) | set(split.get("pool") or [])
    part_dirs = [d for d in sorted(root.iterdir()) if d.is_dir() and d.name in part_names]
    bases = [(d, d.name) for d in part_dirs] if len(part_dirs) >= 2 else [(root, "all")]
    samples = []
    for base, part in bases:
        for class_dir in sorted(d for d in base.glob(opts.get("class_glob") or "*") if d.is_dir() and not d.name.startswith(".")):
            samples += [Sample(p, class_dir.name, part) for p in _images_under(class_dir, extensions)]
    if not samples:
        raise DataPrepError(f"dataset {dataset['name']!r}: no images ({', '.join(extensions)}) in class folders under {root}")
    return Listing(samples)


def read_food101(dataset: dict, raw: Path) -> Listing:
    """food-101/meta/{train,test}.json: {class: ["class/id", ...]}, images at food-101/images/class/id.jpg."""
    base = _find(raw, "food-101", dataset, want_dir=True)
    samples = []
    for part in ("train", "test"):
        for label, items in json.loads((base / "meta" / f"{part}.json").read_text()).items():
            samples += [Sample(base / "images" / f"{item}.jpg", label, part) for item in items]
    return Listing(samples)


def read_flowers102(dataset: dict, raw: Path) -> Listing:
    """jpg/image_NNNNN.jpg; imagelabels.mat (labels 1..102 by image id); setid.mat (trnid/valid/tstid)."""
    labels = np.atleast_1d(_loadmat(raw / "imagelabels.mat")["labels"]).astype(int)
    setid = _loadmat(raw / "setid.mat")
    images = _find(raw, "jpg", dataset, want_dir=True)
    classes = [f"{c:03d}" for c in range(1, labels.max() + 1)]
    samples = [Sample(images / f"image_{i:05d}.jpg", classes[labels[i - 1] - 1], part)
               for key, part in (("trnid", "train"), ("valid", "val"), ("tstid", "test"))
               for i in np.atleast_1d(setid[key]).astype(int)]
    return Listing(samples, classes)


def read_oxford_pets(dataset: dict, raw: Path) -> Listing:
    """annotations/{trainval,test}.txt: 'Image_id CLASS-ID SPECIES BREED-ID'; images/Image_id.jpg."""
    annotations = _find(raw, "annotations", dataset, want_dir=True)
    images = _find(raw, "images", dataset, want_dir=True)
    samples, names = [], {}
    for part in ("trainval", "test"):
        for line in _lines(annotations / f"{part}.txt"):
            if line.startswith("#"):
                continue
            image_id, class_id = line.split()[:2]
            names[int(class_id)] = image_id.rsplit("_", 1)[0]
            samples.append(Sample(images / f"{image_id}.jpg", names[int(class_id)], part))
    return Listing(samples, [names[k] for k in sorted(names)])


def read_cub200(dataset: dict, raw: Path) -> Listing:
    """CUB_200_2011/{images,image_class_labels,train_test_split,classes}.txt, images/<class>/<file>."""
    base = _find(raw, "CUB_200_2011", dataset, want_dir=True)
    table = lambda name: dict(line.split(" ", 1) for line in _lines(base / name))  # noqa: E731
    images, labels, is_train, class_names = (table(f) for f in ("images.txt", "image_class_labels.txt",
                                                                 "train_test_split.txt", "classes.txt"))
    classes = [class_names[k] for k in sorted(class_names, key=int)]
    samples = [Sample(base / "images" / rel, class_names[labels[i]], "train" if is_train[i] == "1" else "test")
               for i, rel in sorted(images.items(), key=lambda kv: int(kv[0]))]
    return Listing(samples, classes)


class _ArrayUnpickler(pickle.Unpickler):
    """Loads CIFAR-style batches (dicts of lists and numpy arrays) and nothing that could run code."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset pickle")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return _ArrayUnpickler(f, encoding="latin1").load()


def read_cifar_pickle(dataset: dict, raw: Path) -> Listing:
    """CIFAR-style python batches (batches.meta, data_batch_*, test_batch), decoded once to PNG files."""
    from PIL import Image

    opts = _options(dataset)
    meta = _find(raw, "batches.meta", dataset)
    names = [str(n) for n in _unpickle(meta)["label_names"]]
    decoded, samples = raw / "decoded", []
    for part, pattern in (("train", opts.get("train_glob") or "data_batch_*"), ("test", opts.get("test_glob") or "test_batch")):
        for batch_file in sorted(meta.parent.glob(pattern)):
            batch = _unpickle(batch_file)
            data = np.asarray(batch["data"], dtype=np.uint8)
            side = int(round((data.shape[1] // 3) ** 0.5))
            files = batch.get("filenames") or [f"{batch_file.name}_{i:05d}.png" for i in range(len(data))]
            for pixels, label, file in zip(data, batch["labels"], files):
                path = decoded / part / names[label] / f"{Path(str(file)).stem}.png"
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(pixels.reshape(3, side, side).transpose(1, 2, 0)).save(path)
                samples.append(Sample(path, names[label], part))
    if not samples:
        raise DataPrepError(f"dataset {dataset['name']!r}: no batch files next to {meta}")
    return Listing(samples, names)


def read_european_flood(dataset: dict, raw: Path) -> Listing:
    """Images <pageid>.jpg from the zip; relevance/<task>.txt lists the ids relevant to the task (binary label)."""
    opts = _options(dataset)
    task = opts.get("task", "depth")
    relevant = set(_lines(_find(raw, f"{task}.txt", dataset)))
    images = _images_under(raw, (".jpg", ".jpeg"))
    negative, positive = f"no_{task}", task
    samples = [Sample(p, positive if p.stem in relevant else negative, "all") for p in images]
    unmatched = sorted(relevant - {p.stem for p in images})
    if unmatched:
        log.warning("%s: %d ids of %s.txt have no image", dataset["name"], len(unmatched), task)
    return Listing(samples, [negative, positive], extra={f"{task}_ids_without_image": unmatched})


def read_belga_logos(dataset: dict, raw: Path) -> Listing:
    """images/*.jpg + the box annotations (qset3_internal_and_local.gt: id, logo, image, type, ok, x1 y1 x2 y2).

    One label per image: of the configured logos annotated on it, the one with the
    largest box (ties: name); an image with none of them is the no-logo class.
    """
    opts = _options(dataset)
    logos, no_logo = list(opts["logos"]), opts.get("no_logo_class", "no-logo")
    boxes: dict[str, list[tuple[int, str]]] = {}
    for line in _lines(_find(raw, opts.get("annotations", "qset3_internal_and_local.gt"), dataset)):
        fields = line.split("\t")
        if len(fields) >= 9 and fields[1] in logos:
            x1, y1, x2, y2 = (int(v) for v in fields[5:9])
            boxes.setdefault(fields[2], []).append((abs(x2 - x1) * abs(y2 - y1), fields[1]))
    images = _images_under(_find(raw, "images", dataset, want_dir=True), (".jpg", ".jpeg"))
    samples = [Sample(p, max(boxes[p.name])[1] if p.name in boxes else no_logo, "all") for p in images]
    multi = sum(len({b for _, b in boxes[p.name]}) > 1 for p in images if p.name in boxes)
    return Listing(samples, logos + [no_logo], extra={"images_with_several_logos": multi})


def read_stanford_cars(dataset: dict, raw: Path) -> Listing:
    """devkit/cars_meta.mat (class_names), devkit/cars_train_annos.mat, cars_test_annos_withlabels.mat; cars_{train,test}/."""
    devkit = _find(raw, "devkit", dataset, want_dir=True)
    classes = [str(c) for c in np.atleast_1d(_loadmat(devkit / "cars_meta.mat")["class_names"])]
    samples = []
    for part, annos in (("train", devkit / "cars_train_annos.mat"), ("test", _find(raw, "cars_test_annos_withlabels.mat", dataset))):
        table = np.atleast_1d(_loadmat(annos)["annotations"])
        folder = _find(raw, f"cars_{part}", dataset, want_dir=True)
        folder = folder / folder.name if (folder / folder.name).is_dir() else folder  # some mirrors nest it
        samples += [Sample(folder / str(f), classes[int(c) - 1], part) for f, c in zip(table["fname"], table["class"])]
    return Listing(samples, classes)


def read_imagenet(dataset: dict, raw: Path) -> Listing:
    """ILSVRC-2012: train/<wnid>.tar (unpacked here, then deleted), val/*.JPEG labelled by the devkit."""
    devkit = _find(raw, "ILSVRC2012_devkit_t12", dataset, want_dir=True)
    synsets = np.atleast_1d(_loadmat(devkit / "data" / "meta.mat")["synsets"])
    leaves = synsets[np.asarray(synsets["num_children"]).astype(int) == 0]
    wnid_of = {int(i): str(w) for i, w in zip(leaves["ILSVRC2012_ID"], leaves["WNID"])}
    train = raw / "train"
    for inner in sorted(train.glob("*.tar")):  # the train archive is a tar of one tar per class
        extract(inner, train / inner.stem)
        inner.unlink()
    samples = [Sample(p, d.name, "train") for d in sorted(train.iterdir()) if d.is_dir() for p in _images_under(d, (".jpeg", ".jpg"))]
    truth = [int(v) for v in (devkit / "data" / "ILSVRC2012_validation_ground_truth.txt").read_text().split()]
    val = sorted(p for p in (raw / "val").iterdir() if p.suffix.upper() == ".JPEG")
    if len(val) != len(truth):
        raise DataPrepError(f"dataset {dataset['name']!r}: {len(val)} validation images in {raw / 'val'} but "
                            f"{len(truth)} labels in the devkit; delete {raw / 'val'} and run again")
    samples += [Sample(p, wnid_of[t], "val") for p, t in zip(val, truth)]
    return Listing(samples, sorted(wnid_of.values()))


def read_places365(dataset: dict, raw: Path) -> Listing:
    """categories_places365.txt ('/a/abbey 0'), places365_train_standard.txt ('/a/abbey/x.jpg 0') -> data_256/,
    places365_val.txt ('Places365_val_x.jpg 165') -> val_256/."""
    categories = dict(line.rsplit(" ", 1)[::-1] for line in _lines(_find(raw, "categories_places365.txt", dataset)))
    classes = [categories[k] for k in sorted(categories, key=int)]
    samples = []
    for part, listing, folder in (("train", "places365_train_standard.txt", "data_256"), ("val", "places365_val.txt", "val_256")):
        base = _find(raw, folder, dataset, want_dir=True)
        for line in _lines(_find(raw, listing, dataset)):
            name, index = line.rsplit(" ", 1)
            samples.append(Sample(base / name.lstrip("/"), classes[int(index)], part))
    return Listing(samples, classes)


def read_inaturalist2019(dataset: dict, raw: Path) -> Listing:
    """COCO-style train2019.json / val2019.json (images, annotations, categories); file_name is relative to raw."""
    samples, categories = [], set()
    for part in ("train", "val"):
        data = json.loads(_find(raw, f"{part}2019.json", dataset).read_text())
        category_of = {a["image_id"]: a["category_id"] for a in data["annotations"]}
        categories |= {c["id"] for c in data["categories"]}
        samples += [Sample(raw / im["file_name"], f"{category_of[im['id']]:04d}", part) for im in data["images"]]
    return Listing(samples, [f"{c:04d}" for c in sorted(categories)])


def read_logo2k(dataset: dict, raw: Path) -> Listing:
    """List/{train,test}_images_root.txt: one path per line, '<root category>/<logo>/<image>' under Logo-2K+/."""
    samples = []
    roots = sorted((p for p in raw.rglob("Logo-2K+") if p.is_dir()), key=lambda p: len(p.parts))
    for part in ("train", "test"):
        for line in _lines(_find(raw, f"{part}_images_root.txt", dataset)):
            rel = line.split("\t")[0].strip().lstrip("/").removeprefix("Logo-2K+/")
            root = next((r for r in roots if (r / rel).exists()), roots[0] if roots else raw)
            samples.append(Sample(root / rel, str(Path(rel).parent), part))
    return Listing(samples)


def read_landmarks_v2(dataset: dict, raw: Path) -> Listing:
    """GLDv2 train: metadata/train_clean.csv (landmark_id, space-separated image ids) + 500 tar shards of
    a/b/c/<id>.jpg. The paper's 256-landmark subset is not published: this takes the `options.num_landmarks`
    landmarks with the most clean images (ties: smaller id) and copies only their images out of the shards."""
    opts = _options(dataset)
    rows = list(csv.DictReader(_find(raw, "train_clean.csv", dataset).open()))
    ranked = sorted(rows, key=lambda r: (-len(r["images"].split()), int(r["landmark_id"])))
    chosen = sorted(ranked[: int(opts.get("num_landmarks", 256))], key=lambda r: int(r["landmark_id"]))
    wanted = {image: r["landmark_id"] for r in chosen for image in r["images"].split()}
    selected = raw / "selected"
    shards = sorted(raw.glob(opts.get("shard_glob") or "images_*.tar"))
    began = time.monotonic()
    for n, shard in enumerate(shards, 1):
        marker = selected / f".{shard.name}.done"
        if marker.exists():
            continue
        with tarfile.open(shard) as tf:
            for member in tf:
                image_id = Path(member.name).stem
                if member.isfile() and image_id in wanted:
                    dst = selected / image_id[0] / image_id[1] / image_id[2] / f"{image_id}.jpg"
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    dst.write_bytes(tf.extractfile(member).read())
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        log.info("%s: shard %d/%d read (%.0fs)", dataset["name"], n, len(shards), time.monotonic() - began)
    samples, skipped = [], []
    for image_id, landmark in sorted(wanted.items()):
        path = selected / image_id[0] / image_id[1] / image_id[2] / f"{image_id}.jpg"
        if path.exists():
            samples.append(Sample(path, landmark, "all"))
        else:
            skipped.append({"path": image_id, "error": "listed in train_clean.csv but in no downloaded shard"})
    landmarks = [r["landmark_id"] for r in chosen]
    return Listing(samples, landmarks, skipped, extra={"landmarks": landmarks, "shards_read": len(shards)})


def _fetch_image(url: str, dst: Path, timeout: float) -> str | None:
    try:
        with urlopen(Request(url, headers={"User-Agent": "model-selection-benchmark/data_prep"}), timeout=timeout) as resp:
            data = resp.read()
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(dst.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(dst)
    except Exception as err:  # noqa: BLE001  (dead URLs are expected; record and move on)
        return f"{type(err).__name__}: {err}"
    return None


def read_url_list(dataset: dict, raw: Path) -> Listing:
    """iMaterialist-style {"images": [{"id", "url", "class"}]} lists: fetch every image once, in threads.

    URLs that fail are written to unreachable_<part>.txt and not retried on the next
    run (delete that file to retry); they are reported in stats.json.
    """
    opts = _options(dataset)
    threads, timeout = int(opts.get("fetch_threads", 16)), float(opts.get("fetch_timeout_s", 30))
    samples, classes, unreachable = [], set(), {}
    for part, file_name in (opts.get("lists") or {"train": "train.json", "val": "val.json"}).items():
        entries = json.loads(_find(raw, file_name, dataset).read_text())["images"]
        folder, failed_file = raw / "images" / part, raw / f"unreachable_{part}.txt"
        failed = set(_lines(failed_file)) if failed_file.exists() else set()
        target = lambda e: folder / str(e["class"]) / (e["id"] if Path(e["id"]).suffix else f"{e['id']}.jpg")  # noqa: E731
        todo = [e for e in entries if e["id"] not in failed and not target(e).exists()]
        if todo:
            log.info("%s: fetching %d %s images with %d threads", dataset["name"], len(todo), part, threads)
            with ThreadPoolExecutor(threads) as pool:
                errors = list(pool.map(lambda e: _fetch_image(e["url"], target(e), timeout), todo))
            new = [e["id"] for e, err in zip(todo, errors) if err]
            with failed_file.open("a") as f:
                f.writelines(f"{i}\n" for i in new)
            failed |= set(new)
        for e in entries:
            classes.add(int(e["class"]))
            if target(e).exists():
                samples.append(Sample(target(e), f"{int(e['class']):04d}", part))
        unreachable[part] = sum(e["id"] in failed for e in entries)
    return Listing(samples, [f"{c:04d}" for c in sorted(classes)], extra={"unreachable": unreachable})


READERS: dict[str, Callable[[dict, Path], Listing]] = {
    "imagefolder": read_imagefolder,
    "food101": read_food101,
    "flowers102": read_flowers102,
    "oxford_pets": read_oxford_pets,
    "cub200": read_cub200,
    "cifar_pickle": read_cifar_pickle,
    "european_flood": read_european_flood,
    "belga_logos": read_belga_logos,
    "stanford_cars": read_stanford_cars,
    "imagenet": read_imagenet,
    "places365": read_places365,
    "inaturalist2019": read_inaturalist2019,
    "logo2k": read_logo2k,
    "landmarks_v2": read_landmarks_v2,
    "url_list": read_url_list,
}
