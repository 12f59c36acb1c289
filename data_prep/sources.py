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
import hashlib
import io
import json
import logging
import pickle
import re
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
    skipped: list[dict] = field(default_factory=list)  # files dropped: {"path", "reason", "error"?, "class"?}
    dropped_classes: list[dict] = field(default_factory=list)  # classes dropped: {"class", "reason"}
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
    """Files under `folder` with one of `extensions` (None: every file), hidden ones left out."""
    return sorted(p for p in folder.rglob("*") if (extensions is None or p.suffix.lower() in extensions) and p.is_file()
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
    samples, skipped, empty = [], [], []
    for base, part in bases:
        for class_dir in sorted(d for d in base.glob(opts.get("class_glob") or "*") if d.is_dir() and not d.name.startswith(".")):
            found = _images_under(class_dir, extensions)
            samples += [Sample(p, class_dir.name, part) for p in found]
            if not opts.get("extensions"):  # set explicitly, it excludes files on purpose (e.g. masks)
                skipped += [{"path": str(p), "reason": f"file type {p.suffix or '(none)'} not read (options.extensions)",
                             "class": class_dir.name}
                            for p in _images_under(class_dir, None) if p.suffix.lower() not in extensions]
            if not found:
                empty.append({"class": class_dir.name, "reason": f"empty folder {class_dir}"})
    if not samples:
        raise DataPrepError(f"dataset {dataset['name']!r}: no images ({', '.join(extensions)}) in class folders under {root}")
    # a class folder empty in one part (e.g. test/) but not in another is not a dropped class
    have = {s.label for s in samples}
    return Listing(samples, skipped=skipped, dropped_classes=[e for e in empty if e["class"] not in have])


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


BELGA_COLUMNS = ("id", "logo", "image", "type", "ok", "x1", "y1", "x2", "y2")


def parse_belga_annotations(path: Path, dataset: dict) -> list[tuple[str, ...]]:
    """The rows of BelgaLogos' qset3_internal_and_local.gt, strictly: 9 fields per row (BELGA_COLUMNS).

    Fields are separated by any run of whitespace: the INRIA original separates two rows by spaces
    where the rest use tabs, and nhartland/BelgaLogosID fixed those by hand; both give the same rows.
    Raises DataPrepError naming the file when no row parses (e.g. an HTML error page saved in its
    place), and naming the file and line of every row that does not (none is dropped silently).
    Source: http://www-sop.inria.fr/members/Alexis.Joly/BelgaLogos/ (Joly & Buisson 2009).
    """
    rows, bad = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        fields = tuple(line.split())
        ok = len(fields) == len(BELGA_COLUMNS) and fields[2].lower().endswith(".jpg") and fields[4] in ("0", "1") \
            and all(v.lstrip("-").isdigit() for v in fields[5:9])
        (rows if ok else bad).append(fields if ok else (number, line))
    what = (f"a BelgaLogos annotation row is {len(BELGA_COLUMNS)} whitespace-separated fields "
            f"({' '.join(BELGA_COLUMNS)}; ok 0/1, integer box corners)")
    if not rows:
        first = bad[0][1][:80] if bad else "(empty)"
        raise DataPrepError(f"dataset {dataset['name']!r}: {path} is not a BelgaLogos annotation file: no row parses "
                            f"({what}); its first line is {first!r}. Delete it and run again to download it anew")
    if bad:
        listed = "; ".join(f"line {n}: {text[:80]!r}" for n, text in bad[:5]) + ("; ..." if len(bad) > 5 else "")
        raise DataPrepError(f"dataset {dataset['name']!r}: {len(bad)} row(s) of {path} do not parse ({what}): {listed}. "
                            f"Delete the file and run again to download it anew, or fix those rows")
    return rows


def belga_table_sha256(rows: list[tuple[str, ...]]) -> str:
    """sha256 of the parsed rows, each written as its fields joined by one tab plus a newline: the same
    value for both known versions of the file (it equals the file sha256 of the all-tab version)."""
    return hashlib.sha256("".join("\t".join(r) + "\n" for r in rows).encode()).hexdigest()


def read_belga_logos(dataset: dict, raw: Path) -> Listing:
    """images/*.jpg labelled from the box annotations (qset3_internal_and_local.gt, parse_belga_annotations).

    One label per image: of the configured logos (options.logos) annotated on it, the one with the
    largest box (ties: name); an image with none of them is the no-logo class. The parsed table must
    match options.annotations_sha256 (belga_table_sha256) when set; otherwise DataPrepError.
    Annotated images missing from images/ are dropped and reported.
    """
    opts = _options(dataset)
    logos, no_logo = list(opts["logos"]), opts.get("no_logo_class", "no-logo")
    path = _find(raw, opts.get("annotations", "qset3_internal_and_local.gt"), dataset)
    rows = parse_belga_annotations(path, dataset)
    pinned, got = opts.get("annotations_sha256"), belga_table_sha256(rows)
    if pinned and got != pinned.lower():
        raise DataPrepError(
            f"dataset {dataset['name']!r}: {path} parses into {len(rows)} rows whose sha256 (belga_table_sha256) is "
            f"{got}, not options.annotations_sha256 {pinned}: it is another version of the file. Delete it and run "
            f"again to download it anew (configs/dataset/{dataset['name']}.yaml lists the URLs)")
    boxes: dict[str, list[tuple[int, str]]] = {}
    for _, logo, image, _, _, x1, y1, x2, y2 in rows:
        if logo in logos:
            boxes.setdefault(image, []).append((abs(int(x2) - int(x1)) * abs(int(y2) - int(y1)), logo))
    folder = _find(raw, "images", dataset, want_dir=True)
    images = _images_under(folder, (".jpg", ".jpeg"))
    if opts.get("expected_images") and len(images) != int(opts["expected_images"]):
        raise DataPrepError(
            f"dataset {dataset['name']!r}: {folder} holds {len(images)} JPEG images, not the {opts['expected_images']} "
            f"of BelgaLogos (options.expected_images): the archive is incomplete or another version. Delete "
            f"{folder} and images.tar.gz under {raw} and run again")
    samples = [Sample(p, max(boxes[p.name])[1] if p.name in boxes else no_logo, "all") for p in images]
    present = {p.name for p in images}
    skipped = [{"path": name, "reason": f"annotated in {path.name} but not in images/", "class": max(b)[1]}
               for name, b in sorted(boxes.items()) if name not in present]
    multi = sum(len({b for _, b in boxes[p.name]}) > 1 for p in images if p.name in boxes)
    return Listing(samples, logos + [no_logo], skipped,
                   extra={"images_with_several_logos": multi, "annotations_sha256": got})


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


_WNID = re.compile(r"^n\d{8}$")


def read_imagenet(dataset: dict, raw: Path) -> Listing:
    """ILSVRC-2012 in either layout a user may have:

    - torchvision's (what `torchvision.datasets.ImageNet` leaves behind): train/<wnid>/*.JPEG and
      val/<wnid>/*.JPEG; no devkit needed;
    - the archives unpacked here: train/<wnid>.tar (unpacked, then deleted) and a flat
      val/ILSVRC2012_val_*.JPEG labelled by the devkit (ILSVRC2012_devkit_t12/data).

    Classes are the WordNet ids of train/, sorted. Raises DataPrepError naming the folder when a part is
    missing or the validation images and labels disagree. Source: torchvision/datasets/imagenet.py.
    """
    train, val = raw / "train", raw / "val"
    for inner in sorted(train.glob("*.tar")):  # the train archive is a tar of one tar per class
        extract(inner, train / inner.stem)
        inner.unlink()
    wnids = sorted(d.name for d in train.iterdir() if d.is_dir() and _WNID.match(d.name)) if train.is_dir() else []
    if not wnids:
        raise DataPrepError(f"dataset {dataset['name']!r}: no class folders train/<wnid>/ (e.g. train/n01440764) under "
                            f"{raw}; put ILSVRC2012_img_train.tar there, or the unpacked train/ folder")
    samples = [Sample(p, w, "train") for w in wnids for p in _images_under(train / w, (".jpeg", ".jpg"))]
    val_dirs = sorted(d for d in val.iterdir() if d.is_dir() and _WNID.match(d.name)) if val.is_dir() else []
    if val_dirs:  # torchvision's layout: already sorted into classes
        unknown = sorted({d.name for d in val_dirs} - set(wnids))
        if unknown:
            raise DataPrepError(f"dataset {dataset['name']!r}: val/ has class folders {unknown[:5]} that train/ lacks")
        samples += [Sample(p, d.name, "val") for d in val_dirs for p in _images_under(d, (".jpeg", ".jpg"))]
        return Listing(samples, wnids, extra={"imagenet_layout": "torchvision folders"})
    devkit = _find(raw, "ILSVRC2012_devkit_t12", dataset, want_dir=True)
    synsets = np.atleast_1d(_loadmat(devkit / "data" / "meta.mat")["synsets"])
    leaves = synsets[np.asarray(synsets["num_children"]).astype(int) == 0]
    wnid_of = {int(i): str(w) for i, w in zip(leaves["ILSVRC2012_ID"], leaves["WNID"])}
    truth = [int(v) for v in (devkit / "data" / "ILSVRC2012_validation_ground_truth.txt").read_text().split()]
    flat = sorted(p for p in val.iterdir() if p.suffix.upper() == ".JPEG") if val.is_dir() else []
    if len(flat) != len(truth):
        raise DataPrepError(f"dataset {dataset['name']!r}: {len(flat)} validation images in {val} but "
                            f"{len(truth)} labels in the devkit; delete {val} and run again")
    samples += [Sample(p, wnid_of[t], "val") for p, t in zip(flat, truth)]
    return Listing(samples, wnids, extra={"imagenet_layout": "archives + devkit"})


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
            skipped.append({"path": image_id, "reason": "listed in train_clean.csv but in no downloaded shard",
                            "class": landmark})
    landmarks = [r["landmark_id"] for r in chosen]
    return Listing(samples, landmarks, skipped, extra={"landmarks": landmarks, "shards_read": len(shards)})


# what dead hosts serve instead of a photo: the URL they redirect to (Flickr's "photo unavailable",
# imgur's "removed" image); anything with a shorter side below MIN_IMAGE_SIDE pixels; anything PIL
# cannot decode (an HTML error page served with HTTP 200); and content served for many URLs of
# several classes (PLACEHOLDER_REPEATS), which no product photo is.
PLACEHOLDER_URLS = ("photo_unavailable", "/removed.png", "no_image", "noimage", "image_not_found", "placeholder")
MIN_IMAGE_SIDE = 32
PLACEHOLDER_REPEATS = 20


def check_fetched_image(data: bytes, final_url: str, opts: dict) -> str | None:
    """Why fetched bytes are not a usable photo (a placeholder, a tiny image, not an image), or None.

    opts (a url_list config's options): placeholder_urls (substrings of the final URL after
    redirects), min_image_side (pixels), placeholder_sha256 (hex digests of known placeholders).
    """
    from PIL import Image, UnidentifiedImageError

    marks = [m.lower() for m in (opts.get("placeholder_urls") or PLACEHOLDER_URLS)]
    hit = next((m for m in marks if m in final_url.lower()), None)
    if hit:
        return f"placeholder: redirected to {final_url}"
    if hashlib.sha256(data).hexdigest() in set(opts.get("placeholder_sha256") or []):
        return "placeholder: a known placeholder image (options.placeholder_sha256)"
    try:
        with Image.open(io.BytesIO(data)) as im:
            size = im.size
            im.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        start = data[:40].decode("latin-1").strip().replace("\n", " ")
        return f"not an image ({type(err).__name__}; starts {start!r})"
    side = int(opts.get("min_image_side", MIN_IMAGE_SIDE))
    if min(size) < side:
        return f"tiny image {size[0]}x{size[1]} (shorter side below options.min_image_side={side}): a placeholder"
    return None


def _fetch_image(url: str, dst: Path, timeout: float, opts: dict) -> tuple[str, str] | None:
    """Fetch one image to `dst`; None when saved, else ("unreachable" | "rejected", why)."""
    try:
        with urlopen(Request(url, headers={"User-Agent": "model-selection-benchmark/data_prep"}), timeout=timeout) as resp:
            data, final_url = resp.read(), resp.geturl() or url
    except Exception as err:  # noqa: BLE001  (dead URLs are expected; record and move on)
        return "unreachable", f"{type(err).__name__}: {err}"
    why = check_fetched_image(data, final_url, opts)
    if why:
        return "rejected", why
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(dst)
    return None


def _read_table(path: Path) -> dict[str, str]:
    return dict(line.split("\t", 1) for line in _lines(path) if "\t" in line) if path.exists() else {}


def _append_table(path: Path, rows: dict[str, str]) -> None:
    with path.open("a") as f:
        f.writelines(f"{k}\t{v}\n" for k, v in rows.items())


def read_url_list(dataset: dict, raw: Path) -> Listing:
    """iMaterialist-style {"images": [{"id", "url", "class"}]} lists: fetch every image once, in threads.

    URLs that fail go to unreachable_<part>.txt; content that is not a photo (check_fetched_image, and
    the same bytes served for options.placeholder_repeats URLs of several classes) goes to
    rejected_<part>.tsv with the reason. Neither is retried on the next run (delete those files to
    retry); both are reported per class (stats.json url_list_dropped_per_class and dropped).
    """
    opts = _options(dataset)
    threads, timeout = int(opts.get("fetch_threads", 16)), float(opts.get("fetch_timeout_s", 30))
    lists = opts.get("lists") or {"train": "train.json", "val": "val.json"}
    entries_of, classes = {}, set()
    target = lambda part, e: raw / "images" / part / str(e["class"]) / (e["id"] if Path(e["id"]).suffix else f"{e['id']}.jpg")  # noqa: E731
    for part, file_name in lists.items():
        entries = json.loads(_find(raw, file_name, dataset).read_text())["images"]
        entries_of[part] = entries
        failed_file, rejected_file = raw / f"unreachable_{part}.txt", raw / f"rejected_{part}.tsv"
        failed = set(_lines(failed_file)) if failed_file.exists() else set()
        rejected = _read_table(rejected_file)
        todo = [e for e in entries if e["id"] not in failed and e["id"] not in rejected and not target(part, e).exists()]
        if todo:
            log.info("%s: fetching %d %s images with %d threads", dataset["name"], len(todo), part, threads)
            with ThreadPoolExecutor(threads) as pool:
                results = list(pool.map(lambda e: _fetch_image(e["url"], target(part, e), timeout, opts), todo))
            with failed_file.open("a") as f:
                f.writelines(f"{e['id']}\n" for e, r in zip(todo, results) if r and r[0] == "unreachable")
            _append_table(rejected_file, {e["id"]: r[1] for e, r in zip(todo, results) if r and r[0] == "rejected"})
    _reject_repeated_content(dataset, raw, entries_of, target, opts)
    samples, skipped, unreachable, per_class = [], [], {}, {}
    for part, entries in entries_of.items():
        failed_file = raw / f"unreachable_{part}.txt"
        failed = set(_lines(failed_file)) if failed_file.exists() else set()
        rejected = _read_table(raw / f"rejected_{part}.tsv")
        for e in entries:
            label = f"{int(e['class']):04d}"
            classes.add(int(e["class"]))
            if e["id"] in rejected or e["id"] in failed:
                why = "unreachable URL" if e["id"] in failed else "rejected download"
                skipped.append({"path": e["url"], "reason": why, "class": label,
                                **({"error": rejected[e["id"]]} if e["id"] in rejected else {})})
                counts = per_class.setdefault(label, {})
                counts[why] = counts.get(why, 0) + 1
            elif target(part, e).exists():
                samples.append(Sample(target(part, e), label, part))
        unreachable[part] = sum(e["id"] in failed for e in entries)
    return Listing(samples, [f"{c:04d}" for c in sorted(classes)], skipped,
                   extra={"unreachable": unreachable, "url_list_dropped_per_class": dict(sorted(per_class.items()))})


def _reject_repeated_content(dataset: dict, raw: Path, entries_of: dict, target: Callable, opts: dict) -> None:
    """Bytes saved for at least options.placeholder_repeats URLs of two or more classes are a host's
    placeholder, not a product photo: delete those files and record them in rejected_<part>.tsv."""
    repeats = int(opts.get("placeholder_repeats", PLACEHOLDER_REPEATS))
    digests: dict[str, list[tuple[str, dict]]] = {}
    for part, entries in entries_of.items():
        known_file = raw / f"sha256_{part}.tsv"
        known, new = _read_table(known_file), {}
        for e in entries:
            path = target(part, e)
            if e["id"] not in known and path.exists():
                new[e["id"]] = hashlib.sha256(path.read_bytes()).hexdigest()
            if path.exists():
                digests.setdefault(known.get(e["id"]) or new[e["id"]], []).append((part, e))
        if new:
            _append_table(known_file, new)
    for digest, hits in digests.items():
        if len(hits) >= repeats and len({int(e["class"]) for _, e in hits}) >= 2:
            why = (f"placeholder: the same bytes (sha256 {digest[:12]}...) were served for {len(hits)} URLs of "
                   f"{len({int(e['class']) for _, e in hits})} classes")
            log.warning("%s: %s", dataset["name"], why)
            for part in {p for p, _ in hits}:
                _append_table(raw / f"rejected_{part}.tsv", {e["id"]: why for p, e in hits if p == part})
            for part, e in hits:
                target(part, e).unlink(missing_ok=True)


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
