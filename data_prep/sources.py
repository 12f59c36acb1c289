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
import json
import logging
import pickle
import re
import tarfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from data_prep.download import DataPrepError, extract
from data_prep.listing import (  # noqa: F401  (Sample and Listing: what every reader returns)
    IMAGE_EXTENSIONS,
    Listing,
    Sample,
    find_file,
    images_under,
    load_mat,
    reader_options,
    text_lines,
)
from data_prep.url_lists import read_url_list

log = logging.getLogger("data_prep")

# ---------------------------------------------------------------- readers


def read_imagefolder(dataset: dict, raw: Path) -> Listing:
    """root/<class>/<image> (any depth below the class folder), or root/<part>/<class>/<image>.

    root is the config's `path` (a local folder) or `options.root` under the raw
    directory; `options.class_glob` selects class folders, `options.extensions`
    the image files. Part folders are recognised by the names in the `split` block.
    """
    opts = reader_options(dataset)
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
            found = images_under(class_dir, extensions)
            samples += [Sample(p, class_dir.name, part) for p in found]
            if not opts.get("extensions"):  # set explicitly, it excludes files on purpose (e.g. masks)
                skipped += [{"path": str(p), "reason": f"file type {p.suffix or '(none)'} not read (options.extensions)",
                             "class": class_dir.name}
                            for p in images_under(class_dir, None) if p.suffix.lower() not in extensions]
            if not found:
                empty.append({"class": class_dir.name, "reason": f"empty folder {class_dir}"})
    if not samples:
        raise DataPrepError(f"dataset {dataset['name']!r}: no images ({', '.join(extensions)}) in class folders under {root}")
    # a class folder empty in one part (e.g. test/) but not in another is not a dropped class
    have = {s.label for s in samples}
    return Listing(samples, skipped=skipped, dropped_classes=[e for e in empty if e["class"] not in have])


def read_food101(dataset: dict, raw: Path) -> Listing:
    """food-101/meta/{train,test}.json: {class: ["class/id", ...]}, images at food-101/images/class/id.jpg."""
    base = find_file(raw, "food-101", dataset, want_dir=True)
    samples = []
    for part in ("train", "test"):
        for label, items in json.loads((base / "meta" / f"{part}.json").read_text()).items():
            samples += [Sample(base / "images" / f"{item}.jpg", label, part) for item in items]
    return Listing(samples)


def read_flowers102(dataset: dict, raw: Path) -> Listing:
    """jpg/image_NNNNN.jpg; imagelabels.mat (labels 1..102 by image id); setid.mat (trnid/valid/tstid)."""
    labels = np.atleast_1d(load_mat(raw / "imagelabels.mat")["labels"]).astype(int)
    setid = load_mat(raw / "setid.mat")
    images = find_file(raw, "jpg", dataset, want_dir=True)
    classes = [f"{c:03d}" for c in range(1, labels.max() + 1)]
    samples = [Sample(images / f"image_{i:05d}.jpg", classes[labels[i - 1] - 1], part)
               for key, part in (("trnid", "train"), ("valid", "val"), ("tstid", "test"))
               for i in np.atleast_1d(setid[key]).astype(int)]
    return Listing(samples, classes)


def read_oxford_pets(dataset: dict, raw: Path) -> Listing:
    """annotations/{trainval,test}.txt: 'Image_id CLASS-ID SPECIES BREED-ID'; images/Image_id.jpg."""
    annotations = find_file(raw, "annotations", dataset, want_dir=True)
    images = find_file(raw, "images", dataset, want_dir=True)
    samples, names = [], {}
    for part in ("trainval", "test"):
        for line in text_lines(annotations / f"{part}.txt"):
            if line.startswith("#"):
                continue
            image_id, class_id = line.split()[:2]
            names[int(class_id)] = image_id.rsplit("_", 1)[0]
            samples.append(Sample(images / f"{image_id}.jpg", names[int(class_id)], part))
    return Listing(samples, [names[k] for k in sorted(names)])


def read_cub200(dataset: dict, raw: Path) -> Listing:
    """CUB_200_2011/{images,image_class_labels,train_test_split,classes}.txt, images/<class>/<file>."""
    base = find_file(raw, "CUB_200_2011", dataset, want_dir=True)
    table = lambda name: dict(line.split(" ", 1) for line in text_lines(base / name))  # noqa: E731
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
    """CIFAR-style python batches, decoded once to PNG files under raw/decoded/<part>/<class>/.

    CIFAR-10's layout (torchvision cifar.py, CIFAR10) is the default: cifar-10-batches-py/batches.meta
    (label_names) beside data_batch_1..5 (train) and test_batch (test), each a dict with data (N x 3072
    uint8, channel-major), labels and filenames. Options name another layout: `meta` (the meta file),
    `label_names_key`, `labels_key`, `train_glob`, `test_glob`; CIFAR-100 (torchvision CIFAR100) is
    cifar-100-python/meta (fine_label_names) with train / test holding fine_labels (and coarse_labels).
    Two images of one part and class with the same file name get the batch and row in their name.
    """
    from PIL import Image

    opts = reader_options(dataset)
    meta = find_file(raw, opts.get("meta") or "batches.meta", dataset)
    names_key, labels_key = opts.get("label_names_key") or "label_names", opts.get("labels_key") or "labels"
    meta_dict = _unpickle(meta)
    if names_key not in meta_dict:
        raise DataPrepError(f"dataset {dataset['name']!r}: {meta} has no key {names_key!r} (options.label_names_key); "
                            f"its keys are {sorted(meta_dict)}")
    names = [str(n) for n in meta_dict[names_key]]
    decoded, samples, seen = raw / "decoded", [], set()
    for part, pattern in (("train", opts.get("train_glob") or "data_batch_*"), ("test", opts.get("test_glob") or "test_batch")):
        for batch_file in sorted(meta.parent.glob(pattern)):
            batch = _unpickle(batch_file)
            if labels_key not in batch:
                raise DataPrepError(f"dataset {dataset['name']!r}: {batch_file} has no key {labels_key!r} "
                                    f"(options.labels_key); its keys are {sorted(batch)}")
            data = np.asarray(batch["data"], dtype=np.uint8)
            side = int(round((data.shape[1] // 3) ** 0.5))
            files = batch.get("filenames") or [f"{batch_file.name}_{i:05d}.png" for i in range(len(data))]
            for row, (pixels, label, file) in enumerate(zip(data, batch[labels_key], files)):
                path = decoded / part / names[label] / f"{Path(str(file)).stem}.png"
                if path in seen:  # a file name used twice: keep both images
                    path = path.with_name(f"{path.stem}-{batch_file.name}-{row:05d}.png")
                seen.add(path)
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(pixels.reshape(3, side, side).transpose(1, 2, 0)).save(path)
                samples.append(Sample(path, names[label], part))
    if not samples:
        raise DataPrepError(f"dataset {dataset['name']!r}: no batch files next to {meta}")
    return Listing(samples, names)


def read_european_flood(dataset: dict, raw: Path) -> Listing:
    """Images <pageid>.jpg from the zip; relevance/<task>.txt lists the ids relevant to the task (binary label)."""
    opts = reader_options(dataset)
    task = opts.get("task", "depth")
    relevant = set(text_lines(find_file(raw, f"{task}.txt", dataset)))
    images = images_under(raw, (".jpg", ".jpeg"))
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
    opts = reader_options(dataset)
    logos, no_logo = list(opts["logos"]), opts.get("no_logo_class", "no-logo")
    path = find_file(raw, opts.get("annotations", "qset3_internal_and_local.gt"), dataset)
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
    folder = find_file(raw, "images", dataset, want_dir=True)
    images = images_under(folder, (".jpg", ".jpeg"))
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
    devkit = find_file(raw, "devkit", dataset, want_dir=True)
    classes = [str(c) for c in np.atleast_1d(load_mat(devkit / "cars_meta.mat")["class_names"])]
    samples = []
    for part, annos in (("train", devkit / "cars_train_annos.mat"), ("test", find_file(raw, "cars_test_annos_withlabels.mat", dataset))):
        table = np.atleast_1d(load_mat(annos)["annotations"])
        folder = find_file(raw, f"cars_{part}", dataset, want_dir=True)
        folder = folder / folder.name if (folder / folder.name).is_dir() else folder  # some mirrors nest it
        samples += [Sample(folder / str(f), classes[int(c) - 1], part) for f, c in zip(table["fname"], table["class"])]
    return Listing(samples, classes)


FGVC_LEVELS = {"variant": "variants.txt", "family": "families.txt", "manufacturer": "manufacturers.txt"}


def read_fgvc_aircraft(dataset: dict, raw: Path) -> Listing:
    """fgvc-aircraft-2013b/data/images_<level>_<part>.txt ('<image id> <class name>'; names hold spaces and
    slashes, e.g. 'F/A-18'), images/<image id>.jpg; the class list is variants.txt (families.txt,
    manufacturers.txt). Source: torchvision/datasets/fgvc_aircraft.py (FGVCAircraft).

    options.annotation_level: variant (default; 100 classes), family or manufacturer; options.parts: the
    list files read (default trainval and test; train and val also exist). A class name missing from the
    class list is an error naming the file and line.
    """
    opts = reader_options(dataset)
    level = opts.get("annotation_level", "variant")
    if level not in FGVC_LEVELS:
        raise DataPrepError(f"dataset {dataset['name']!r}: options.annotation_level={level!r} is not one of "
                            f"{list(FGVC_LEVELS)} (configs/dataset/{dataset['name']}.yaml)")
    data = find_file(raw, FGVC_LEVELS[level], dataset).parent
    classes = text_lines(data / FGVC_LEVELS[level])
    known, samples = set(classes), []
    for part in opts.get("parts") or ["trainval", "test"]:
        listing = data / f"images_{level}_{part}.txt"
        if not listing.is_file():
            raise DataPrepError(f"dataset {dataset['name']!r}: no list {listing} (options.parts: {part!r}); "
                                f"delete {data.parent} and run again to unpack the archive anew")
        for number, line in enumerate(text_lines(listing), 1):
            image_id, _, label = line.partition(" ")
            if label not in known:
                raise DataPrepError(f"dataset {dataset['name']!r}: {listing} line {number}: class {label!r} is not "
                                    f"in {FGVC_LEVELS[level]}")
            samples.append(Sample(data / "images" / f"{image_id}.jpg", label, part))
    return Listing(samples, classes, extra={"annotation_level": level})


def read_sun397(dataset: dict, raw: Path) -> Listing:
    """SUN397/<letter>/<class>[/<sub>]/sun_*.jpg with the partition lists of Partitions.zip:
    Training_NN.txt / Testing_NN.txt ('/a/abbey/sun_aaalbzqrimafwbiv.jpg'), NN = options.partition
    (1..10, default 1: the first of the ten official 50/50-per-class partitions) and ClassName.txt
    ('/a/abbey'). The class of an image is its folder below the letter ('abbey',
    'apartment_building/outdoor'), as torchvision names it. Only the listed images are read (the
    partitions leave about 69,000 of the 108,754 unused). Source: torchvision/datasets/sun397.py (SUN397;
    images and ClassName.txt), torchvision's prototype sun397.py and TencentARC/SFDA datasets/sun397.py
    (the partition files).
    """
    opts = reader_options(dataset)
    partition = int(opts.get("partition", 1))
    if not 1 <= partition <= 10:
        raise DataPrepError(f"dataset {dataset['name']!r}: options.partition={partition} is not one of SUN397's "
                            f"partitions 1..10 (configs/dataset/{dataset['name']}.yaml)")
    images = find_file(raw, "SUN397", dataset, want_dir=True)
    lists = find_file(raw, f"Training_{partition:02d}.txt", dataset).parent
    class_file = lists / "ClassName.txt" if (lists / "ClassName.txt").is_file() else images / "ClassName.txt"
    classes = ["/".join(line.strip("/").split("/")[1:]) for line in text_lines(class_file)]
    known, samples = set(classes), []
    for part, name in (("train", f"Training_{partition:02d}.txt"), ("test", f"Testing_{partition:02d}.txt")):
        listing = lists / name
        for number, line in enumerate(text_lines(listing), 1):
            rel = line.strip("/")
            label = "/".join(rel.split("/")[1:-1])
            if label not in known:
                raise DataPrepError(f"dataset {dataset['name']!r}: {listing} line {number}: {line!r} is in no class "
                                    f"of {class_file}")
            samples.append(Sample(images / rel, label, part))
    return Listing(samples, classes, extra={"partition": partition})


VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
VOC_WITHOUT_POSITIVE = ("first_class", "drop")


def read_voc2007(dataset: dict, raw: Path) -> Listing:
    """PASCAL VOC 2007 classification: VOCdevkit/VOC2007/ImageSets/Main/<set>.txt (image ids) and
    <class>_<set>.txt ('<image id> <flag>': 1 the image holds a non-difficult object of the class, 0 only
    difficult ones, -1 none) for the 20 classes, images JPEGImages/<id>.jpg; sets trainval and test
    (options.parts). Source: torchvision/datasets/voc.py (archives, folders), TencentARC/SFDA
    datasets/voc2007.py (the class files).

    VOC is multi-label; the benchmark is single-label. One label per image, SFDA's rule
    (forward_feature_group1.py: torch.argmax of the 0/1 vector `flag == 1` over VOC_CLASSES): the first
    class, in VOC_CLASSES order, with flag 1. An image with no flag 1 (only difficult objects) gets the
    first class, aeroplane, as argmax of a zero vector does (options.without_positive: first_class), or is
    dropped and reported (drop). stats.json records how many images had several classes and which had none.
    """
    opts = reader_options(dataset)
    without = opts.get("without_positive", "first_class")
    if without not in VOC_WITHOUT_POSITIVE:
        raise DataPrepError(f"dataset {dataset['name']!r}: options.without_positive={without!r} is not one of "
                            f"{list(VOC_WITHOUT_POSITIVE)} (configs/dataset/{dataset['name']}.yaml)")
    main = find_file(raw, "Main", dataset, want_dir=True)
    images = main.parent.parent / "JPEGImages"
    samples, skipped, several, none = [], [], 0, []
    for part in opts.get("parts") or ["trainval", "test"]:
        flags: dict[str, list[int]] = {}
        for k, cls in enumerate(VOC_CLASSES):
            listing = main / f"{cls}_{part}.txt"
            if not listing.is_file():
                raise DataPrepError(f"dataset {dataset['name']!r}: no class list {listing}: the VOC 2007 {part} archive is "
                                    f"incomplete or not unpacked; delete it and run again")
            for line in text_lines(listing):
                image_id, flag = line.split()[:2]
                flags.setdefault(image_id, [0] * len(VOC_CLASSES))[k] = int(flag)
        ids = text_lines(main / f"{part}.txt") if (main / f"{part}.txt").is_file() else sorted(flags)
        for image_id in ids:
            positive = [k for k, flag in enumerate(flags.get(image_id, [])) if flag == 1]
            several += len(positive) > 1
            path = images / f"{image_id}.jpg"
            if not positive:
                none.append(image_id)
                if without == "drop":
                    skipped.append({"path": str(path), "reason": "no class with a non-difficult object "
                                                                 "(options.without_positive: drop)"})
                    continue
            samples.append(Sample(path, VOC_CLASSES[positive[0] if positive else 0], part))
    return Listing(samples, list(VOC_CLASSES), skipped,
                   extra={"images_with_several_classes": several, "images_without_positive_class": none,
                          "without_positive": without})


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
    samples = [Sample(p, w, "train") for w in wnids for p in images_under(train / w, (".jpeg", ".jpg"))]
    val_dirs = sorted(d for d in val.iterdir() if d.is_dir() and _WNID.match(d.name)) if val.is_dir() else []
    if val_dirs:  # torchvision's layout: already sorted into classes
        unknown = sorted({d.name for d in val_dirs} - set(wnids))
        if unknown:
            raise DataPrepError(f"dataset {dataset['name']!r}: val/ has class folders {unknown[:5]} that train/ lacks")
        samples += [Sample(p, d.name, "val") for d in val_dirs for p in images_under(d, (".jpeg", ".jpg"))]
        return Listing(samples, wnids, extra={"imagenet_layout": "torchvision folders"})
    devkit = find_file(raw, "ILSVRC2012_devkit_t12", dataset, want_dir=True)
    synsets = np.atleast_1d(load_mat(devkit / "data" / "meta.mat")["synsets"])
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
    categories = dict(line.rsplit(" ", 1)[::-1] for line in text_lines(find_file(raw, "categories_places365.txt", dataset)))
    classes = [categories[k] for k in sorted(categories, key=int)]
    samples = []
    for part, listing, folder in (("train", "places365_train_standard.txt", "data_256"), ("val", "places365_val.txt", "val_256")):
        base = find_file(raw, folder, dataset, want_dir=True)
        for line in text_lines(find_file(raw, listing, dataset)):
            name, index = line.rsplit(" ", 1)
            samples.append(Sample(base / name.lstrip("/"), classes[int(index)], part))
    return Listing(samples, classes)


def read_inaturalist2019(dataset: dict, raw: Path) -> Listing:
    """COCO-style train2019.json / val2019.json (images, annotations, categories); file_name is relative to raw."""
    samples, categories = [], set()
    for part in ("train", "val"):
        data = json.loads(find_file(raw, f"{part}2019.json", dataset).read_text())
        category_of = {a["image_id"]: a["category_id"] for a in data["annotations"]}
        categories |= {c["id"] for c in data["categories"]}
        samples += [Sample(raw / im["file_name"], f"{category_of[im['id']]:04d}", part) for im in data["images"]]
    return Listing(samples, [f"{c:04d}" for c in sorted(categories)])


def read_logo2k(dataset: dict, raw: Path) -> Listing:
    """List/{train,test}_images_root.txt: one path per line, '<root category>/<logo>/<image>' under Logo-2K+/."""
    samples = []
    roots = sorted((p for p in raw.rglob("Logo-2K+") if p.is_dir()), key=lambda p: len(p.parts))
    for part in ("train", "test"):
        for line in text_lines(find_file(raw, f"{part}_images_root.txt", dataset)):
            rel = line.split("\t")[0].strip().lstrip("/").removeprefix("Logo-2K+/")
            root = next((r for r in roots if (r / rel).exists()), roots[0] if roots else raw)
            samples.append(Sample(root / rel, str(Path(rel).parent), part))
    return Listing(samples)


def read_landmarks_v2(dataset: dict, raw: Path) -> Listing:
    """GLDv2 train: metadata/train_clean.csv (landmark_id, space-separated image ids) + 500 tar shards of
    a/b/c/<id>.jpg. The paper's 256-landmark subset is not published: this takes the `options.num_landmarks`
    landmarks with the most clean images (ties: smaller id) and copies only their images out of the shards."""
    opts = reader_options(dataset)
    rows = list(csv.DictReader(find_file(raw, "train_clean.csv", dataset).open()))
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
    "fgvc_aircraft": read_fgvc_aircraft,
    "sun397": read_sun397,
    "voc2007": read_voc2007,
    "imagenet": read_imagenet,
    "places365": read_places365,
    "inaturalist2019": read_inaturalist2019,
    "logo2k": read_logo2k,
    "landmarks_v2": read_landmarks_v2,
    "url_list": read_url_list,
}
