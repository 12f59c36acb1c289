"""Small fakes of the 19 real datasets, each in its dataset's real raw layout, and a local HTTP server.

`build(name, server, raw, ...)` writes one dataset's files: what the real dataset downloads goes under
`server/<name>/` (tar/zip archives, .mat files, json and txt lists, CIFAR-style pickles, tar shards with
their md5 files), what a user places by hand (ImageNet, Logo-2K+, Stanford Cars, the iMaterialist URL
lists) under `raw/<name>/`. `fake_config(name, ...)` is the real config (configs/dataset/<name>.yaml)
with its URLs pointed at the server and its checksums those of the fake's files: the real download,
checksum, extraction, reader, resize and split code then runs on it unchanged. `serve(folder)` is an
HTTP server with Range support (resumed downloads), as the real hosts have.

Images are small JPEGs whose colour depends on the class (so an expert can learn something), with
noise; every file is seeded by its path, so a rebuild gives the same pixels. The tests
(tests/test_datasets_real.py) and the rehearsal (data_prep/rehearsal.py) build from here.
"""
from __future__ import annotations

import copy
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_prep.fake_files import (  # noqa: F401  (re-exported: the tests and the rehearsal build from here)
    CONFIGS,
    RangeHandler,
    Server,
    digest,
    file_seed,
    image,
    load_config,
    make_tar,
    make_zip,
    records,
    savemat,
    use_checksums,
    write,
)

REAL = ["belga_logos", "cub200", "cucumber9", "dtd", "european_flood", "flowers102", "food101", "icassava", "imagenet",
        "imaterialist2019", "inaturalist2019", "landmarks_v2", "logo2k", "magnetic_tile_defects", "oxford_pets",
        "places365", "resisc45", "stanford_cars", "uc_merced"]


# ---------------------------------------------------------------- one fake per dataset


@dataclass(frozen=True)
class Size:
    """How big a fake is: `classes` classes of `train` + `test` images of `side` pixels (a dataset
    with a fixed class list, e.g. European Flood's 2, keeps its own)."""

    classes: int = 3
    train: int = 4
    test: int = 2
    side: int = 40


class _Fake:
    """Where one dataset's fake goes: `stage` (scratch), `server` (downloaded files), `raw` (manual files)."""

    def __init__(self, name: str, root: Path, server: Path, raw: Path, size: Size):
        self.name, self.size = name, size
        self.stage, self.server, self.raw = root / "stage" / name, server, raw

    def image(self, path: Path, label: int) -> Path:
        return image(path, (self.size.side, self.size.side), label=label)

    def parts(self) -> list[str]:
        """'train' x train then 'test' x test: the part of each image of one class."""
        return ["train"] * self.size.train + ["test"] * self.size.test


def fake_resisc45(f: _Fake) -> dict:
    names = ["airplane", "beach", "forest", "harbor", "runway", "desert"][: f.size.classes]
    for k, c in enumerate(names):
        for i in range(f.size.train + f.size.test):
            f.image(f.stage / "NWPU-RESISC45" / c / f"{c}_{i + 1:03d}.jpg", k)
    make_zip(f.server / "NWPU-RESISC45.zip", f.stage)
    return {}


def fake_food101(f: _Fake) -> dict:
    names = ["apple_pie", "ramen", "sushi", "tacos", "waffles", "pizza"][: f.size.classes]
    base, meta = f.stage / "food-101", {"train": {}, "test": {}}
    for k, c in enumerate(names):
        for i, part in enumerate(f.parts()):
            f.image(base / "images" / c / f"{100 + i}.jpg", k)
            meta[part].setdefault(c, []).append(f"{c}/{100 + i}")
    for part in meta:
        write(base / "meta" / f"{part}.json", json.dumps(meta[part]))
    write(base / "meta" / "classes.txt", "".join(f"{c}\n" for c in names))
    make_tar(f.server / "food-101.tar.gz", f.stage)
    return {}


def fake_logo2k(f: _Fake) -> dict:
    names = ["Food/Brand B", "Clothes/Acme", "Cars/Zoom", "Sports/Kick", "Drinks/Fizz"][: f.size.classes]
    lists = {"train": [], "test": []}
    for k, c in enumerate(names):
        for i, part in enumerate(f.parts()):
            f.image(f.raw / "Logo-2K+" / c / f"{i}.jpg", k)
            lists[part].append(f"{c}/{i}.jpg")
    for part, items in lists.items():
        write(f.stage / "List" / f"{part}_images_root.txt", "\n".join(items) + "\n")
    make_zip(f.raw / "List.zip", f.stage)
    return {}


def fake_landmarks_v2(f: _Fake, shards: int = 2) -> dict:
    """train_clean.csv and `shards` tar shards a/b/c/<id>.jpg with their md5 files; one more landmark
    than the subset takes, with fewer images (not chosen)."""
    n = f.size.train + f.size.test
    counts = [(7 + 2 * k, n) for k in range(f.size.classes)] + [(3, n - 1)]
    ids = {lid: [f"{lid:02x}{k:014x}" for k in range(c)] for lid, c in counts}
    write(f.server / "train_clean.csv", "landmark_id,images\n" + "".join(f"{lid},{' '.join(v)}\n" for lid, v in ids.items()))
    label_of = {i: k for k, (lid, _) in enumerate(counts) for i in ids[lid]}
    all_ids = sorted(label_of)
    for shard in range(shards):
        stage = f.stage / f"shard{shard}"
        for i in all_ids[shard::shards]:
            f.image(stage / i[0] / i[1] / i[2] / f"{i}.jpg", label_of[i])
        tar = make_tar(f.server / f"images_{shard:03d}.tar", stage)
        write(f.server / f"md5.images_{shard:03d}.txt", f"{digest(tar, 'md5')}  images_{shard:03d}.tar\n")
    return {"shards": shards, "options": {"num_landmarks": f.size.classes}}


def fake_inaturalist2019(f: _Fake) -> dict:
    data = {part: {"images": [], "annotations": [], "categories": []} for part in ("train", "val")}
    image_id = 0
    for k in range(f.size.classes):
        cat, kingdom = 5 + 7 * k, ("Plants", "Birds", "Insects", "Fungi")[k % 4]
        for part in data:
            data[part]["categories"].append({"id": cat, "name": str(cat)})
        for part in f.parts():
            part = "val" if part == "test" else part
            rel = f"train_val2019/{kingdom}/{cat}/{image_id:032x}.jpg"
            f.image(f.stage / "images" / rel, k)
            data[part]["images"].append({"id": image_id, "file_name": rel})
            data[part]["annotations"].append({"id": image_id, "image_id": image_id, "category_id": cat})
            image_id += 1
    make_tar(f.server / "train_val2019.tar.gz", f.stage / "images")
    for part in data:
        write(f.stage / f"json_{part}" / f"{part}2019.json", json.dumps(data[part]))
        make_tar(f.server / f"{part}2019.json.tar.gz", f.stage / f"json_{part}")
    return {}


def fake_imaterialist2019(f: _Fake) -> dict:
    """train.json / val.json (placed by hand) whose URLs are images on the server, plus one dead URL."""
    lists = {"train": [], "val": []}
    for k in range(f.size.classes):
        cls = 4 + 13 * k
        for i, part in enumerate(f.parts()):
            part = "val" if part == "test" else part
            name = f"web/{cls}_{i}.jpg"
            f.image(f.server / name, k)
            lists[part].append({"id": f"{cls:02d}{i:030x}", "url": f"{{server}}/{name}", "class": cls})
    lists["train"].append({"id": "dead" + "0" * 28, "url": "{server}/web/gone.jpg", "class": 4})
    for part, entries in lists.items():  # the URLs get the server's address when the config is written
        write(f.server / "lists" / f"{part}.json", json.dumps({"images": entries}))
    return {"options": {"fetch_threads": 2}, "url_lists": ["train.json", "val.json"]}


def fake_imagenet(f: _Fake) -> dict:
    """The three manual archives: the train tar of per-class tars, the flat val tar, the devkit."""
    wnids = [f"n0{1440764 + 2773 * k:07d}" for k in range(f.size.classes)]
    devkit = f.stage / "devkit" / "ILSVRC2012_devkit_t12" / "data"
    synsets = records(ILSVRC2012_ID=[*range(1, len(wnids) + 1), 1001], WNID=[*wnids, "n00001740"],
                      words=[*(f"class {k}" for k in range(len(wnids))), "entity"], num_children=[0] * len(wnids) + [2])
    savemat(devkit / "meta.mat", synsets=synsets)
    truth = [1 + k for k in range(len(wnids)) for _ in range(f.size.test)]
    truth = [truth[(7 * i) % len(truth)] for i in range(len(truth))]  # validation images are not sorted by class
    write(devkit / "ILSVRC2012_validation_ground_truth.txt", "\n".join(map(str, truth)) + "\n")
    make_tar(f.raw / "ILSVRC2012_devkit_t12.tar.gz", f.stage / "devkit")
    outer = f.stage / "train_outer"
    for k, w in enumerate(wnids):
        for i in range(f.size.train):
            f.image(f.stage / "inner" / w / f"{w}_{i}.JPEG", k)
        make_tar(outer / f"{w}.tar", f.stage / "inner" / w)
    make_tar(f.raw / "ILSVRC2012_img_train.tar", outer)
    for i, t in enumerate(truth):
        f.image(f.stage / "val" / f"ILSVRC2012_val_{i + 1:08d}.JPEG", t - 1)
    make_tar(f.raw / "ILSVRC2012_img_val.tar", f.stage / "val")
    return {}


def fake_places365(f: _Fake) -> dict:
    cats = ["/a/abbey", "/b/beach", "/c/canyon", "/d/desert/sand", "/f/forest_path"][: f.size.classes]
    lists = f.stage / "lists"
    write(lists / "categories_places365.txt", "".join(f"{c} {i}\n" for i, c in enumerate(cats)))
    train_lines, val_lines, n_val = [], [], 0
    for k, c in enumerate(cats):
        for i in range(f.size.train):
            f.image(f.stage / "train" / "data_256" / c.lstrip("/") / f"{i:08d}.jpg", k)
            train_lines.append(f"{c}/{i:08d}.jpg {k}")
        for _ in range(f.size.test):
            n_val += 1
            f.image(f.stage / "val" / "val_256" / f"Places365_val_{n_val:08d}.jpg", k)
            val_lines.append(f"Places365_val_{n_val:08d}.jpg {k}")
    write(lists / "places365_train_standard.txt", "\n".join(train_lines) + "\n")
    write(lists / "places365_val.txt", "\n".join(val_lines) + "\n")
    make_tar(f.server / "filelist_places365-standard.tar", lists)
    make_tar(f.server / "train_256_places365standard.tar", f.stage / "train")
    make_tar(f.server / "val_256.tar", f.stage / "val")
    return {}


def fake_magnetic_tile_defects(f: _Fake) -> dict:
    base = f.stage / "Magnetic-tile-defect-datasets.-master"
    for k, c in enumerate(["MT_Blowhole", "MT_Break", "MT_Crack", "MT_Fray", "MT_Uneven", "MT_Free"][: f.size.classes]):
        for i in range(f.size.train + f.size.test):
            f.image(base / c / "Imgs" / f"exp{i}_num_{i}.jpg", k)
            image(base / c / "Imgs" / f"exp{i}_num_{i}.png", (8, 8))  # segmentation mask: not an image of the dataset
    image(base / "dataset.jpg")  # illustration at the top: not in a class folder
    write(base / "README.md", "magnetic tiles\n")
    make_zip(f.server / "Magnetic-tile-defect-datasets-master.zip", f.stage)
    return {}


def fake_uc_merced(f: _Fake) -> dict:
    for k, c in enumerate(["agricultural", "beach", "forest", "harbor", "runway"][: f.size.classes]):
        for i in range(f.size.train + f.size.test):
            f.image(f.stage / "UCMerced_LandUse" / "Images" / c / f"{c}{i:02d}.tif", k)
    make_zip(f.server / "UCMerced_LandUse.zip", f.stage)
    return {}


def fake_flowers102(f: _Fake) -> dict:
    """102flowers.tgz (jpg/image_NNNNN.jpg), imagelabels.mat, setid.mat (train + val = the training set)."""
    labels, ids = [], {"trnid": [], "valid": [], "tstid": []}
    n = 0
    for k in range(f.size.classes):
        for i, part in enumerate(f.parts()):
            n += 1
            f.image(f.stage / "jpg" / f"image_{n:05d}.jpg", k)
            labels.append(k + 1)
            ids["tstid" if part == "test" else ("trnid" if i % 2 == 0 else "valid")].append(n)
    make_tar(f.server / "102flowers.tgz", f.stage)
    savemat(f.server / "imagelabels.mat", labels=np.array([labels]))
    savemat(f.server / "setid.mat", **{k: np.array([v]) for k, v in ids.items()})
    return {}


def fake_cucumber9(f: _Fake) -> dict:
    """CIFAR-style pickles of 32x32 images (the real dataset's size), in two data batches and a test batch."""
    base, side = f.stage / "cucumber-9-batches-py", 32
    names = ["2L", "BL", "C", "CL", "L", "M", "S", "SL", "X"][: f.size.classes]

    def pixels(seed, label):  # a CIFAR row: 3 x 32 x 32, channel-major; class colour plus noise
        noise = np.random.default_rng(seed).integers(0, 256, (3, side * side))
        colour = np.random.default_rng(1000 + label).integers(0, 256, (3, 1))
        return (0.6 * colour + 0.4 * noise).astype(np.uint8).reshape(-1)

    def batch(path, labels, with_names):
        data = np.stack([pixels(file_seed(f"{path.name}_{i}"), y) for i, y in enumerate(labels)])
        content = {"data": data, "labels": labels,
                   **({"filenames": [f"{path.name}_{i}.png" for i in range(len(labels))]} if with_names else {})}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(content, protocol=2))

    train = [k for k in range(len(names)) for _ in range(f.size.train)]
    batch(base / "data_batch_1", train[0::2], True)
    batch(base / "data_batch_2", train[1::2], False)
    batch(base / "test_batch", [k for k in range(len(names)) for _ in range(f.size.test)], True)
    (base / "batches.meta").write_bytes(pickle.dumps({"label_names": names, "num_vis": 3 * side * side}, protocol=2))
    make_tar(f.server / "cucumber-9-python.tar.gz", f.stage)
    return {}


def fake_european_flood(f: _Fake) -> dict:
    """imgs_small/<pageid>.jpg and relevance/depth.txt (ids with visible depth); 2 classes, as the real task."""
    n = f.size.train + f.size.test
    ids = [str(26457000 + i) for i in range(2 * n)]
    for i, name in enumerate(ids):
        f.image(f.stage / "imgs_small" / f"{name}.jpg", int(i < n))
    make_zip(f.server / "european-flood-2013_imgs_small.zip", f.stage)
    write(f.server / "depth.txt", "\n".join(ids[:n] + ["99999999"]) + "\n")  # an id without an image, as in the real list
    return {"num_classes": 2}


def fake_oxford_pets(f: _Fake) -> dict:
    breeds = ["Abyssinian", "american_bulldog", "Bengal", "beagle", "Persian"][: f.size.classes]
    lines = {"trainval": ["#Image CLASS-ID SPECIES BREED ID"], "test": []}
    for k, breed in enumerate(breeds):
        for i, part in enumerate(f.parts(), 1):
            f.image(f.stage / "img" / "images" / f"{breed}_{i}.jpg", k)
            lines["trainval" if part == "train" else "test"].append(f"{breed}_{i} {k + 1} {1 + k % 2} {k + 1}")
    for part, rows in lines.items():
        write(f.stage / "ann" / "annotations" / f"{part}.txt", "\n".join(rows) + "\n")
    make_tar(f.server / "images.tar.gz", f.stage / "img")
    make_tar(f.server / "annotations.tar.gz", f.stage / "ann")
    return {}


def fake_dtd(f: _Fake) -> dict:
    for k, c in enumerate(["banded", "woven", "dotted", "striped", "zigzagged"][: f.size.classes]):
        for i in range(f.size.train + f.size.test):
            f.image(f.stage / "dtd" / "images" / c / f"{c}_{i:04d}.jpg", k)
    write(f.stage / "dtd" / "labels" / "train1.txt", "banded/banded_0000.jpg\n")
    make_tar(f.server / "dtd-r1.0.1.tar.gz", f.stage)
    # the real 30 test images of 120 per class, scaled to the fake's size
    return {"split": {"test_per_class": f.size.test}}


def fake_icassava(f: _Fake) -> dict:
    """cassavaleafdata/{train,validation,test}/<class>/; only train is split (pool), at the real 5%:
    every class gets enough train images for at least one test image."""
    pool = max(f.size.train + f.size.test, 11)  # round(11 x 0.05) = 1 test image per class
    for part, n in (("train", pool), ("validation", 2), ("test", 2)):
        for k, c in enumerate(["cbb", "cbsd", "cgm", "cmd", "healthy"][: f.size.classes]):
            for i in range(n):
                f.image(f.stage / "cassavaleafdata" / part / c / f"{part}-{c}-{i}.jpg", k)
    make_zip(f.server / "cassavaleafdata.zip", f.stage)
    return {}


def fake_cub200(f: _Fake) -> dict:
    base, rows = f.stage / "CUB_200_2011", {"images": [], "labels": [], "split": []}
    classes = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross", "004.Groove_billed_Ani",
               "005.Crested_Auklet"][: f.size.classes]
    n = 0
    for k, c in enumerate(classes, 1):
        for part in f.parts():
            n += 1
            f.image(base / "images" / c / f"bird_{n}.jpg", k - 1)
            rows["images"].append(f"{n} {c}/bird_{n}.jpg")
            rows["labels"].append(f"{n} {k}")
            rows["split"].append(f"{n} {1 if part == 'train' else 0}")
    for name in ("images", "labels", "split"):
        write(base / {"images": "images.txt", "labels": "image_class_labels.txt", "split": "train_test_split.txt"}[name],
              "\n".join(rows[name]) + "\n")
    write(base / "classes.txt", "".join(f"{k} {c}\n" for k, c in enumerate(classes, 1)))
    make_tar(f.server / "CUB_200_2011.tgz", f.stage)
    return {}


BELGA_ROW = "{}\t{}\t{}\tlogo\t1\t{}\t{}\t{}\t{}"


def fake_belga_logos(f: _Fake) -> dict:
    """images/*.jpg and the box annotations; the first `classes - 1` logos of the real list (+ no-logo).
    The pinned table checksum and the image count become the fake's (options)."""
    logos = load_config("belga_logos")["options"]["logos"][: max(1, f.size.classes - 1)]
    per_class = f.size.train + f.size.test
    files = [f"0767{i:04d}.jpg" for i in range(per_class * (len(logos) + 1))]
    gt = []
    for i, name in enumerate(files):
        k = i // per_class
        f.image(f.stage / "images" / name, k)
        if k < len(logos):
            gt.append(BELGA_ROW.format(f"{logos[k]}_{i}", logos[k], name, 0, 0, 20 + i, 20))
            if i % 3 == 0:  # a smaller box of another logo on the same image: the largest wins
                other = logos[(k + 1) % len(logos)]
                gt.append(BELGA_ROW.format(f"{other}_{i}", other, name, 0, 0, 4, 4))
    gt.append(BELGA_ROW.format("Reebok_0", "Reebok", files[-1], 0, 0, 9, 9))  # a later-added logo: counts as no-logo
    table = write(f.server / "qset3_internal_and_local.gt", "\n".join(gt) + "\n")
    make_tar(f.server / "images.tar.gz", f.stage)
    return {"options": {"logos": logos, "annotations_sha256": digest(table, "sha256"), "expected_images": len(files)},
            "num_classes": len(logos) + 1}


def fake_stanford_cars(f: _Fake) -> dict:
    names = ["AM General Hummer SUV 2000", "Ram C/V Cargo Van Minivan 2012", "Acura RL Sedan 2012",
             "Audi R8 Coupe 2012", "BMW M3 Coupe 2012"][: f.size.classes]
    savemat(f.stage / "devkit_stage" / "devkit" / "cars_meta.mat", class_names=np.array(names, dtype=object))
    train = [(f"{i + 1:05d}.jpg", k + 1) for i, k in enumerate(k for k in range(len(names)) for _ in range(f.size.train))]
    test = [(f"{i + 1:05d}.jpg", k + 1) for i, k in enumerate(k for k in range(len(names)) for _ in range(f.size.test))]
    savemat(f.stage / "devkit_stage" / "devkit" / "cars_train_annos.mat",
            annotations=records(fname=[n for n, _ in train], **{"class": [c for _, c in train]}))
    make_tar(f.raw / "car_devkit.tgz", f.stage / "devkit_stage")
    for part, rows in (("train", train), ("test", test)):
        for name, c in rows:
            f.image(f.stage / f"{part}_stage" / f"cars_{part}" / name, c - 1)
        make_tar(f.raw / f"cars_{part}.tgz", f.stage / f"{part}_stage")
    savemat(f.raw / "cars_test_annos_withlabels.mat",
            annotations=records(fname=[n for n, _ in test], **{"class": [c for _, c in test]}))
    return {}


FAKES = {name.removeprefix("fake_"): fn for name, fn in globals().items() if name.startswith("fake_")}
assert sorted(FAKES) == REAL


def build(name: str, root: Path, size: Size = Size()) -> dict:
    """Write dataset `name`'s fake under root/server/<name>/ (what is downloaded) and root/raw/<name>/
    (what a user places by hand); returns what its config must change (besides URLs and checksums)."""
    import shutil

    server, raw = root / "server" / name, root / "raw" / name
    for d in (server, raw, root / "stage" / name):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    changes = FAKES[name](_Fake(name, root, server, raw, size))
    shutil.rmtree(root / "stage" / name)
    return changes


def fake_config(name: str, root: Path, url: str, changes: dict, size: Size = Size(), image_size: int | None = None,
                configs: Path = CONFIGS) -> dict:
    """The real config of `name` for its fake built by `build` under `root`: URLs at `url`/<name>/<file>,
    checksums and sizes those of the fake's files (manual files: those placed under root/raw/<name>/),
    num_classes the fake's, plus `changes` (split and reader options a fake of this size needs)."""
    cfg = load_config(name, configs)
    server, raw = root / "server" / name, root / "raw" / name
    base = f"{url}/{name}"
    for entry in (cfg.get("download") or {}).get("files") or []:
        file = entry["name"]
        if "{shard" in file:
            entry["urls"] = [f"{base}/{file}"]
            entry["md5_url"] = f"{base}/md5.{file}.txt".replace(".tar.txt", ".txt")
            entry["shards"] = changes["shards"]
        elif (server / file).is_file():
            entry["urls"] = [f"{base}/{file}"]
            use_checksums(entry, server / file)
        elif (raw / file).is_file():
            use_checksums(entry, raw / file)
    for part_list in changes.get("url_lists", []):  # placed by hand, as a user does, with the server's URLs
        text = (server / "lists" / part_list).read_text().replace("{server}", base)
        if not (raw / part_list).is_file() or (raw / part_list).read_text() != text:
            write(raw / part_list, text)
    cfg["num_classes"] = changes.get("num_classes", size.classes)
    if image_size:
        cfg["image_size"] = image_size
    for key in ("split", "options"):
        if changes.get(key):
            cfg[key] = {**(cfg.get(key) or {}), **copy.deepcopy(changes[key])}
    return cfg
