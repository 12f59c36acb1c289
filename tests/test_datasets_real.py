"""The 25 real datasets (and a user's ImageFolder) prepared from tiny fakes of their own raw layouts.

Every fake is built in tmp_path in the dataset's real layout (tar/zip archives, .mat files, json
and txt lists, CIFAR-style pickles, tar shards), served from file:// URLs with its real checksum
swapped into the config, and run through the real download/extract/read/resize/split code. No
network. Also: corrupt images, checksum errors, mirror fallback, resumed downloads (file:// and
an HTTP server that honours Range), archive path traversal, manual datasets, the readers' API.
"""
import csv
import http.server
import json
import pickle
import tarfile
import threading
import zipfile
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from conftest import CONFIGS
from data_prep.config import DatasetConfig
from data_prep.download import DataPrepError, extract, fetch
from data_prep.fakes import RangeHandler as _RangeHandler  # the local server of the rehearsal, with Range support
from data_prep.fakes import digest, make_tar, make_zip, records, savemat, use_checksums, write
from data_prep.prepare import assign_split, prepare
from data_prep.readers import ImageArrays, ImageFiles, PreparedDataset
from data_prep.sources import Sample

SHOTS = ["full", "1"]
_counter = iter(range(10**6))


# ---------------------------------------------------------------- fake-building helpers


def load_config(name: str) -> dict:
    """A dataset config as data_prep sees it (validated against the structured schema)."""
    merged = OmegaConf.merge(OmegaConf.structured(DatasetConfig), OmegaConf.load(CONFIGS / "dataset" / f"{name}.yaml"))
    return OmegaConf.to_container(merged, resolve=True)


def image(path: Path, size=(14, 10), fmt=None) -> Path:
    pixels = np.random.default_rng(next(_counter)).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)
    return path


def serve(cfg: dict, server: Path) -> dict:
    """Point every download entry at the same-named file under `server` (file:// URLs)."""
    for entry in cfg["download"]["files"]:
        entry["urls"] = [f"file://{server}/{entry['name']}"]
        if "{shard" not in entry["name"]:
            use_checksums(entry, server / entry["name"])
    return cfg


def manual_files(cfg: dict, raw: Path) -> dict:
    for entry in cfg["download"]["files"]:
        if (raw / entry["name"]).is_file():
            use_checksums(entry, raw / entry["name"])
    return cfg








# ---------------------------------------------------------------- one fake per dataset
# Each returns (config, expected) with expected = {"classes": [...], "per_class": {class: (train, test)}}.


def fake_resisc45(tmp):
    stage = tmp / "stage"
    for c in ("airplane", "beach", "forest"):
        for i in range(5):
            image(stage / "NWPU-RESISC45" / c / f"{c}_{i:03d}.jpg")
    make_zip(tmp / "server" / "NWPU-RESISC45.zip", stage)
    cfg = serve(load_config("resisc45"), tmp / "server")
    return cfg, {"classes": ["airplane", "beach", "forest"], "per_class": {c: (4, 1) for c in ("airplane", "beach", "forest")}}


def fake_food101(tmp):
    base = tmp / "stage" / "food-101"
    meta = {"train": {}, "test": {}}
    for c in ("apple_pie", "ramen"):
        for i in range(5):
            image(base / "images" / c / f"{100 + i}.jpg")
            meta["train" if i < 3 else "test"].setdefault(c, []).append(f"{c}/{100 + i}")
    for part in meta:
        write(base / "meta" / f"{part}.json", json.dumps(meta[part]))
    write(base / "meta" / "classes.txt", "apple_pie\nramen\n")
    make_tar(tmp / "server" / "food-101.tar.gz", tmp / "stage")
    expected = {"classes": ["apple_pie", "ramen"], "per_class": {"apple_pie": (3, 2), "ramen": (3, 2)}}
    return serve(load_config("food101"), tmp / "server"), expected


def fake_logo2k(tmp):
    raw, lists = tmp / "raw", {"train": [], "test": []}
    for c in ("Food/Brand B", "Clothes/Acme"):
        for i in range(4):
            image(raw / "Logo-2K+" / c / f"{i}.jpg")
            lists["train" if i < 3 else "test"].append(f"{c}/{i}.jpg")
    stage = tmp / "stage"
    for part, items in lists.items():
        write(stage / "List" / f"{part}_images_root.txt", "\n".join(items) + "\n")
    make_zip(raw / "List.zip", stage)
    return manual_files(load_config("logo2k"), raw), {"classes": ["Clothes/Acme", "Food/Brand B"],
                                                       "per_class": {"Clothes/Acme": (3, 1), "Food/Brand B": (3, 1)}}


def fake_landmarks_v2(tmp):
    ids = {lid: [f"{lid:02x}{k:014x}" for k in range(n)] for lid, n in ((7, 5), (3, 4), (9, 2))}  # 16-char ids
    rows = ["landmark_id,images"] + [f"{lid},{' '.join(v)}" for lid, v in ids.items()]
    server = tmp / "server"
    write(server / "train_clean.csv", "\n".join(rows) + "\n")
    all_ids = [i for v in ids.values() for i in v]
    missing = ids[7][0]  # listed, but in no shard: recorded as skipped
    for shard in range(2):
        stage = tmp / f"shard{shard}"
        for i in all_ids[shard::2]:
            if i != missing:
                image(stage / i[0] / i[1] / i[2] / f"{i}.jpg")
        tar = make_tar(server / f"images_{shard:03d}.tar", stage)
        write(server / f"md5.images_{shard:03d}.txt", f"{digest(tar, 'md5')}  images_{shard:03d}.tar\n")
    cfg = serve(load_config("landmarks_v2"), server)
    shards = cfg["download"]["files"][1]
    shards["shards"] = 2
    shards["md5_url"] = f"file://{server}/md5.images_{{shard:03d}}.txt"
    cfg["options"]["num_landmarks"] = 2  # the 2 landmarks with most images: 7 (5) and 3 (4), not 9 (2)
    return cfg, {"classes": ["3", "7"], "per_class": {"3": (3, 1), "7": (3, 1)}, "skipped": 1}


def fake_inaturalist2019(tmp):
    stage = tmp / "stage"
    data = {part: {"images": [], "annotations": [], "categories": []} for part in ("train", "val")}
    image_id = 0
    for cat, kingdom in ((5, "Plants"), (12, "Birds")):
        for part in data:
            data[part]["categories"].append({"id": cat, "name": str(cat)})
        for i in range(4):
            part = "train" if i < 3 else "val"
            rel = f"train_val2019/{kingdom}/{cat}/{image_id:032x}.jpg"
            image(stage / rel)
            data[part]["images"].append({"id": image_id, "file_name": rel})
            data[part]["annotations"].append({"id": image_id, "image_id": image_id, "category_id": cat})
            image_id += 1
    server = tmp / "server"
    make_tar(server / "train_val2019.tar.gz", stage)
    for part in data:
        write(tmp / f"json_{part}" / f"{part}2019.json", json.dumps(data[part]))
        make_tar(server / f"{part}2019.json.tar.gz", tmp / f"json_{part}")
    return serve(load_config("inaturalist2019"), server), {"classes": ["0005", "0012"], "per_class": {"0005": (3, 1), "0012": (3, 1)}}


def fake_imaterialist2019(tmp):
    raw, web = tmp / "raw", tmp / "web"
    lists = {"train": [], "val": []}
    for cls in (4, 17):
        for i in range(4):
            part = "train" if i < 3 else "val"
            url = image(web / f"{cls}_{i}.jpg", size=(40, 32)).as_uri()  # smaller ones are taken for placeholders
            lists[part].append({"id": f"{cls:02d}{i:030x}", "url": url, "class": cls})
    lists["train"].append({"id": "dead" + "0" * 28, "url": (web / "gone.jpg").as_uri(), "class": 4})
    for part, entries in lists.items():
        write(raw / f"{part}.json", json.dumps({"images": entries}))
    cfg = load_config("imaterialist2019")
    cfg["options"]["fetch_threads"] = 2
    return cfg, {"classes": ["0004", "0017"], "per_class": {"0004": (3, 1), "0017": (3, 1)}, "unreachable": {"train": 1, "val": 0},
                 "skipped": 1}


def fake_imagenet(tmp):
    raw, wnids = tmp / "raw", ["n01440764", "n01443537"]
    devkit = tmp / "devkit" / "ILSVRC2012_devkit_t12" / "data"
    synsets = records(ILSVRC2012_ID=[1, 2, 1001], WNID=[*wnids, "n00001740"], words=["tench", "goldfish", "entity"],
                      num_children=[0, 0, 2])
    savemat(devkit / "meta.mat", synsets=synsets)
    truth = [2, 1, 1]
    write(devkit / "ILSVRC2012_validation_ground_truth.txt", "\n".join(map(str, truth)) + "\n")
    make_tar(raw / "ILSVRC2012_devkit_t12.tar.gz", tmp / "devkit")
    outer = tmp / "train_outer"
    for w in wnids:
        for i in range(3):
            image(tmp / "inner" / w / f"{w}_{i}.JPEG")
        make_tar(outer / f"{w}.tar", tmp / "inner" / w)
    make_tar(raw / "ILSVRC2012_img_train.tar", outer)
    for i in range(len(truth)):
        image(tmp / "val" / f"ILSVRC2012_val_{i + 1:08d}.JPEG")
    make_tar(raw / "ILSVRC2012_img_val.tar", tmp / "val")
    return manual_files(load_config("imagenet"), raw), {"classes": wnids, "per_class": {wnids[0]: (3, 2), wnids[1]: (3, 1)}}


def fake_places365(tmp):
    stage, server = tmp / "lists", tmp / "server"
    cats = ["/a/abbey", "/b/beach"]
    write(stage / "categories_places365.txt", "".join(f"{c} {i}\n" for i, c in enumerate(cats)))
    train_lines, val_lines = [], []
    for i, c in enumerate(cats):
        for k in range(3):
            image(tmp / "train" / "data_256" / c.lstrip("/") / f"{k:08d}.jpg")
            train_lines.append(f"{c}/{k:08d}.jpg {i}")
    for k, label in enumerate([0, 1, 1]):
        image(tmp / "val" / "val_256" / f"Places365_val_{k + 1:08d}.jpg")
        val_lines.append(f"Places365_val_{k + 1:08d}.jpg {label}")
    write(stage / "places365_train_standard.txt", "\n".join(train_lines) + "\n")
    write(stage / "places365_val.txt", "\n".join(val_lines) + "\n")
    make_tar(server / "filelist_places365-standard.tar", stage)
    make_tar(server / "train_256_places365standard.tar", tmp / "train")
    make_tar(server / "val_256.tar", tmp / "val")
    return serve(load_config("places365"), server), {"classes": cats, "per_class": {cats[0]: (3, 1), cats[1]: (3, 2)}}


def fake_magnetic_tile_defects(tmp):
    base = tmp / "stage" / "Magnetic-tile-defect-datasets.-master"
    for c in ("MT_Blowhole", "MT_Free"):
        for i in range(4):
            image(base / c / "Imgs" / f"exp{i}_num_{i}.jpg")
            image(base / c / "Imgs" / f"exp{i}_num_{i}.png")  # segmentation mask: not an image of the dataset
    image(base / "dataset.jpg")  # illustration at the top: not in a class folder
    write(base / "README.md", "magnetic tiles\n")
    make_zip(tmp / "server" / "Magnetic-tile-defect-datasets-master.zip", tmp / "stage")
    return serve(load_config("magnetic_tile_defects"), tmp / "server"), {"classes": ["MT_Blowhole", "MT_Free"],
                                                                          "per_class": {"MT_Blowhole": (3, 1), "MT_Free": (3, 1)}}


def fake_uc_merced(tmp):
    for c in ("agricultural", "beach"):
        for i in range(4):
            image(tmp / "stage" / "UCMerced_LandUse" / "Images" / c / f"{c}{i:02d}.tif")
    make_zip(tmp / "server" / "UCMerced_LandUse.zip", tmp / "stage")
    return serve(load_config("uc_merced"), tmp / "server"), {"classes": ["agricultural", "beach"],
                                                              "per_class": {"agricultural": (3, 1), "beach": (3, 1)}}


def fake_flowers102(tmp):
    server = tmp / "server"
    for i in range(1, 7):
        image(tmp / "stage" / "jpg" / f"image_{i:05d}.jpg")
    make_tar(server / "102flowers.tgz", tmp / "stage")
    savemat(server / "imagelabels.mat", labels=np.array([[1, 1, 1, 2, 2, 2]]))
    savemat(server / "setid.mat", trnid=np.array([[1, 4]]), valid=np.array([[2, 5]]), tstid=np.array([[3, 6]]))
    return serve(load_config("flowers102"), server), {"classes": ["001", "002"], "per_class": {"001": (2, 1), "002": (2, 1)}}


def fake_cucumber9(tmp):
    base, side = tmp / "stage" / "cucumber-9-batches-py", 8
    names = ["2L", "BL", "C"]

    def batch(path, labels, filenames=None):
        data = np.random.default_rng(len(labels)).integers(0, 256, (len(labels), 3 * side * side), dtype=np.uint8)
        content = {"data": data, "labels": labels, **({"filenames": filenames} if filenames else {})}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(content, protocol=2))

    batch(base / "data_batch_1", [0, 1, 2, 0], [f"c{i}.png" for i in range(4)])
    batch(base / "data_batch_2", [1, 2])
    batch(base / "test_batch", [0, 1, 2])
    (base / "batches.meta").write_bytes(pickle.dumps({"label_names": names, "num_vis": 3 * side * side}, protocol=2))
    make_tar(tmp / "server" / "cucumber-9-python.tar.gz", tmp / "stage")
    return serve(load_config("cucumber9"), tmp / "server"), {"classes": names, "per_class": {n: (2, 1) for n in names}}


def fake_european_flood(tmp):
    server = tmp / "server"
    ids = [str(26457000 + i) for i in range(6)] + ["pollution_1", "pollution_2"]
    for i in ids:
        image(tmp / "stage" / "imgs_small" / f"{i}.jpg")
    make_zip(server / "european-flood-2013_imgs_small.zip", tmp / "stage")
    write(server / "depth.txt", "\n".join(ids[:4] + ["99999999"]) + "\n")
    return serve(load_config("european_flood"), server), {"classes": ["no_depth", "depth"],
                                                           "per_class": {"no_depth": (3, 1), "depth": (3, 1)}}


def fake_oxford_pets(tmp):
    server, lines = tmp / "server", {"trainval": ["#Image CLASS-ID SPECIES BREED ID"], "test": []}
    for class_id, breed in ((1, "Abyssinian"), (2, "american_bulldog")):
        for i in range(1, 5):
            image(tmp / "img" / "images" / f"{breed}_{i}.jpg")
            lines["trainval" if i < 4 else "test"].append(f"{breed}_{i} {class_id} 1 1")
    (tmp / "img" / "images" / "Abyssinian_3.jpg").write_bytes(b"not a jpeg at all")  # corrupt: skipped, recorded
    for part, rows in lines.items():
        write(tmp / "ann" / "annotations" / f"{part}.txt", "\n".join(rows) + "\n")
    make_tar(server / "images.tar.gz", tmp / "img")
    make_tar(server / "annotations.tar.gz", tmp / "ann")
    return serve(load_config("oxford_pets"), server), {"classes": ["Abyssinian", "american_bulldog"], "skipped": 1,
                                                        "per_class": {"Abyssinian": (2, 1), "american_bulldog": (3, 1)}}


def fake_dtd(tmp):
    for c in ("banded", "woven"):
        for i in range(5):
            image(tmp / "stage" / "dtd" / "images" / c / f"{c}_{i:04d}.jpg")
    write(tmp / "stage" / "dtd" / "labels" / "train1.txt", "banded/banded_0000.jpg\n")
    make_tar(tmp / "server" / "dtd-r1.0.1.tar.gz", tmp / "stage")
    cfg = serve(load_config("dtd"), tmp / "server")
    cfg["split"]["test_per_class"] = 2  # the real 30 of 120 per class, scaled to 5 images per class
    return cfg, {"classes": ["banded", "woven"], "per_class": {"banded": (3, 2), "woven": (3, 2)}}


def fake_icassava(tmp):
    for part, n in (("train", 4), ("validation", 2), ("test", 2)):
        for c in ("cbb", "healthy"):
            for i in range(n):
                image(tmp / "stage" / "cassavaleafdata" / part / c / f"{part}-{c}-{i}.jpg")
    make_zip(tmp / "server" / "cassavaleafdata.zip", tmp / "stage")
    expected = {"classes": ["cbb", "healthy"], "per_class": {"cbb": (3, 1), "healthy": (3, 1)}}
    return serve(load_config("icassava"), tmp / "server"), expected


def fake_cub200(tmp):
    base, rows = tmp / "stage" / "CUB_200_2011", {"images": [], "labels": [], "split": []}
    classes = ["001.Black_footed_Albatross", "002.Laysan_Albatross"]
    n = 0
    for k, c in enumerate(classes, 1):
        for i in range(4):
            n += 1
            image(base / "images" / c / f"bird_{n}.jpg")
            rows["images"].append(f"{n} {c}/bird_{n}.jpg")
            rows["labels"].append(f"{n} {k}")
            rows["split"].append(f"{n} {1 if i < 2 else 0}")
    write(base / "images.txt", "\n".join(rows["images"]) + "\n")
    write(base / "image_class_labels.txt", "\n".join(rows["labels"]) + "\n")
    write(base / "train_test_split.txt", "\n".join(rows["split"]) + "\n")
    write(base / "classes.txt", "".join(f"{k} {c}\n" for k, c in enumerate(classes, 1)))
    make_tar(tmp / "server" / "CUB_200_2011.tgz", tmp / "stage")
    return serve(load_config("cub200"), tmp / "server"), {"classes": classes, "per_class": {c: (2, 2) for c in classes}}


BELGA_ROW = "{}\t{}\t{}\tlogo\t1\t{}\t{}\t{}\t{}"


def fake_belga_logos(tmp, sep_rows=()):
    """Every one of the 26 logos on two images, four images without one of them; `sep_rows`: rows whose
    tabs become runs of spaces, as in the INRIA original."""
    server = tmp / "server"
    logos = load_config("belga_logos")["options"]["logos"]
    files = [f"0767{i:04d}.jpg" for i in range(8 + 2 * 24)]
    for f in files:
        image(tmp / "stage" / "images" / f)
    gt = [BELGA_ROW.format("Adidas_0", "Adidas", files[0], 10, 10, 40, 40), BELGA_ROW.format("Adidas_1", "Adidas", files[1], 0, 0, 5, 5),
          BELGA_ROW.format("Nike_0", "Nike", files[1], 0, 0, 50, 60),  # larger than the Adidas box: the label is Nike
          BELGA_ROW.format("Nike_1", "Nike", files[2], 30, 30, 5, 5),  # x2 < x1 happens in the real file
          BELGA_ROW.format("Reebok_0", "Reebok", files[3], 0, 0, 9, 9),  # a later-added logo: counts as no-logo
          BELGA_ROW.format("Adidas_2", "Adidas", files[4], 1, 1, 3, 3)]
    others = [logo for logo in logos if logo not in ("Adidas", "Nike")]
    gt += [BELGA_ROW.format(f"{logo}_{k}", logo, files[8 + 2 * i + k], 0, 0, 4, 4) for i, logo in enumerate(others) for k in (0, 1)]
    tab_version = write(tmp / "tab_version.gt", "\n".join(gt) + "\n")
    for i in sep_rows:
        gt[i] = gt[i].replace("\t", "  ")
    write(server / "qset3_internal_and_local.gt", "\n".join(gt) + "\n")
    make_tar(server / "images.tar.gz", tmp / "stage")
    cfg = serve(load_config("belga_logos"), server)
    cfg["options"]["annotations_sha256"] = digest(tab_version, "sha256")  # the parsed table of this fake
    cfg["options"]["expected_images"] = len(files)
    return cfg, {"classes": [*logos, "no-logo"], "per_class": {**{c: (1, 1) for c in logos}, "no-logo": (3, 1)}}


def fake_stanford_cars(tmp):
    raw, names = tmp / "raw", np.array(["AM General Hummer SUV 2000", "Ram C/V Cargo Van Minivan 2012"], dtype=object)
    savemat(tmp / "devkit_stage" / "devkit" / "cars_meta.mat", class_names=names)
    train = records(fname=[f"{i:05d}.jpg" for i in range(1, 5)], **{"class": [1, 1, 2, 2]})
    savemat(tmp / "devkit_stage" / "devkit" / "cars_train_annos.mat", annotations=train)
    make_tar(raw / "car_devkit.tgz", tmp / "devkit_stage")
    for i in range(1, 5):
        image(raw / "cars_train" / "cars_train" / f"{i:05d}.jpg")  # unpacked and nested, as some mirrors ship it
    for i in range(1, 3):
        image(tmp / "test_stage" / "cars_test" / f"{i:05d}.jpg")
    make_tar(raw / "cars_test.tgz", tmp / "test_stage")
    savemat(raw / "cars_test_annos_withlabels.mat", annotations=records(fname=["00001.jpg", "00002.jpg"], **{"class": [2, 1]}))
    return manual_files(load_config("stanford_cars"), raw), {"classes": list(names), "per_class": {n: (2, 1) for n in names}}


def fake_fgvc_aircraft(tmp):
    data = tmp / "stage" / "fgvc-aircraft-2013b" / "data"
    variants = ["707-320", "Cessna 172", "F/A-18"]  # the real names hold spaces and slashes
    write(data / "variants.txt", "\n".join(variants) + "\n")
    write(data / "families.txt", "Boeing 707\nCessna 172\nF/A-18\n")
    lists = {"trainval": [], "test": [], "train": [], "val": []}
    for k, v in enumerate(variants):
        for i in range(4):
            image_id = f"{1000000 + 10 * k + i:07d}"
            image(data / "images" / f"{image_id}.jpg")
            part = "trainval" if i < 3 else "test"
            lists[part].append(f"{image_id} {v}")
            if part == "trainval":
                lists["train" if i < 2 else "val"].append(f"{image_id} {v}")
    for part, rows in lists.items():
        write(data / f"images_variant_{part}.txt", "\n".join(rows) + "\n")
    make_tar(tmp / "server" / "fgvc-aircraft-2013b.tar.gz", tmp / "stage")
    return serve(load_config("fgvc_aircraft"), tmp / "server"), {"classes": variants, "per_class": {v: (3, 1) for v in variants}}


def fake_caltech101(tmp):
    """caltech-101.zip holding caltech-101/101_ObjectCategories.tar.gz (unpacked in turn), Annotations.tar
    and show_annotation.m, as data.caltech.edu serves it."""
    classes = ["BACKGROUND_Google", "Faces_easy", "accordion"]  # sorted as strings: upper case first
    for c in classes:
        for i in range(1, 6):
            image(tmp / "images" / "101_ObjectCategories" / c / f"image_{i:04d}.jpg")
    inner = tmp / "zip_stage" / "caltech-101"
    make_tar(inner / "101_ObjectCategories.tar.gz", tmp / "images")
    write(tmp / "ann" / "Annotations" / "accordion" / "annotation_0001.mat", "not read\n")
    make_tar(inner / "Annotations.tar", tmp / "ann")
    write(inner / "show_annotation.m", "% matlab\n")
    make_zip(tmp / "server" / "caltech-101.zip", tmp / "zip_stage")
    cfg = serve(load_config("caltech101"), tmp / "server")
    cfg["split"]["train_per_class"] = 3  # the real 30 per class, scaled to 5 images per class
    return cfg, {"classes": classes, "per_class": {c: (3, 2) for c in classes}}


def _cifar_rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3 * 8 * 8), dtype=np.uint8)  # 8x8 images, channel-major


def _pickle(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(content, protocol=2))


def fake_cifar10(tmp):
    base, names = tmp / "stage" / "cifar-10-batches-py", ["airplane", "automobile", "bird"]
    labels = {1: [1, 1], 2: [2, 0], 3: [0, 1], 4: [1, 2], 5: [2, 0]}  # data_batch_1..5, two images each
    for b, batch_labels in labels.items():
        files = ["twice_s_000001.png"] * 2 if b == 1 else [f"img_{b}_{i}.png" for i in range(2)]  # a name used twice
        _pickle(base / f"data_batch_{b}", {"batch_label": f"training batch {b} of 5", "labels": batch_labels,
                                           "data": _cifar_rows(2, b), "filenames": files})
    _pickle(base / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": [0, 1, 2], "data": _cifar_rows(3, 9),
                                  "filenames": [f"test_{i}.png" for i in range(3)]})
    _pickle(base / "batches.meta", {"label_names": names, "num_cases_per_batch": 2, "num_vis": 192})
    write(base / "readme.html", "<html></html>\n")
    make_tar(tmp / "server" / "cifar-10-python.tar.gz", tmp / "stage")
    per_class = {"airplane": (3, 1), "automobile": (4, 1), "bird": (3, 1)}
    return serve(load_config("cifar10"), tmp / "server"), {"classes": names, "per_class": per_class}


def fake_cifar100(tmp):
    base, fine = tmp / "stage" / "cifar-100-python", ["apple", "aquarium_fish", "baby"]
    for part, fine_labels, seed in (("train", [0, 0, 1, 1, 1, 2, 2], 1), ("test", [0, 1, 2], 2)):
        _pickle(base / part, {"filenames": [f"{part}_{i}.png" for i in range(len(fine_labels))], "batch_label": part,
                              "fine_labels": fine_labels, "coarse_labels": [4 - k for k in fine_labels],
                              "data": _cifar_rows(len(fine_labels), seed)})
    _pickle(base / "meta", {"fine_label_names": fine, "coarse_label_names": [f"super{i}" for i in range(5)]})
    make_tar(tmp / "server" / "cifar-100-python.tar.gz", tmp / "stage")
    return serve(load_config("cifar100"), tmp / "server"), {"classes": fine, "per_class": {"apple": (2, 1),
                                                                                          "aquarium_fish": (3, 1),
                                                                                          "baby": (2, 1)}}


def fake_sun397(tmp):
    """SUN397.tar.gz (SUN397/ClassName.txt, SUN397/<letter>/<class>/sun_*.jpg) and Partitions.zip
    (ClassName.txt, Training_NN.txt, Testing_NN.txt); partition 2 lists other images than partition 1."""
    server, classes = tmp / "server", ["/a/abbey", "/a/apartment_building/outdoor", "/b/bakery/shop"]
    lists = {f"{kind}_{n:02d}.txt": [] for kind in ("Training", "Testing") for n in (1, 2)}
    for c in classes:
        for i in range(5):
            rel = f"{c}/sun_{c.split('/')[2][:4]}{i:012d}.jpg"
            image(tmp / "images" / "SUN397" / rel.lstrip("/"))
            if i < 4:
                lists["Training_01.txt" if i < 2 else "Testing_01.txt"].append(rel)
            lists["Training_02.txt" if i > 2 else "Testing_02.txt"].append(rel)
    for stage in (tmp / "images" / "SUN397", tmp / "partitions"):
        write(stage / "ClassName.txt", "\n".join(classes) + "\n")
    for name, rows in lists.items():
        write(tmp / "partitions" / name, "\n".join(rows) + "\n")
    make_tar(server / "SUN397.tar.gz", tmp / "images")
    make_zip(server / "Partitions.zip", tmp / "partitions")
    names = [c.split("/", 2)[2] for c in classes]
    return serve(load_config("sun397"), server), {"classes": names, "per_class": {n: (2, 2) for n in names}}


VOC_FLAGS = {  # image id: {class: flag}; every other class -1
    "trainval": {"000005": {"chair": 1, "person": 1}, "000007": {"person": 1}, "000009": {"aeroplane": 1, "person": 0},
                 "000012": {"chair": 0, "person": 1}, "000016": {"aeroplane": 0}},  # 000016: only a difficult object
    "test": {"000001": {"person": 1}, "000002": {"chair": 1}, "000004": {"aeroplane": 1, "person": 1}},
}


def fake_voc2007(tmp):
    """The two VOC 2007 tars, both unpacking into VOCdevkit/VOC2007 (ImageSets/Main/<set>.txt and
    <class>_<set>.txt with flags 1 / 0 / -1, JPEGImages/, Annotations/)."""
    from data_prep.sources import VOC_CLASSES

    for part, tar in (("trainval", "VOCtrainval_06-Nov-2007.tar"), ("test", "VOCtest_06-Nov-2007.tar")):
        voc = tmp / part / "VOCdevkit" / "VOC2007"
        ids = sorted(VOC_FLAGS[part])
        for image_id in ids:
            image(voc / "JPEGImages" / f"{image_id}.jpg")
            write(voc / "Annotations" / f"{image_id}.xml", "<annotation></annotation>\n")
        write(voc / "ImageSets" / "Main" / f"{part}.txt", "\n".join(ids) + "\n")
        for cls in VOC_CLASSES:
            rows = [f"{i} {VOC_FLAGS[part][i].get(cls, -1):2d}" for i in ids]  # '000005  1', as VOC pads them
            write(voc / "ImageSets" / "Main" / f"{cls}_{part}.txt", "\n".join(rows) + "\n")
        make_tar(tmp / "server" / tar, tmp / part)
    expected = {"classes": ["aeroplane", "chair", "person"],
                "per_class": {"aeroplane": (2, 1), "chair": (1, 1), "person": (2, 1)}}
    return serve(load_config("voc2007"), tmp / "server"), expected


def _with_its_class_count(fake):
    """A fake holds a few of a dataset's classes: its config's num_classes becomes that number
    (preparation refuses a class count that disagrees with num_classes)."""

    def build(tmp, *args, **kwargs):
        cfg, expected = fake(tmp, *args, **kwargs)
        cfg["num_classes"] = len(expected["classes"])
        return cfg, expected

    build.__name__ = fake.__name__
    return build


for _name in [n for n in globals() if n.startswith("fake_")]:
    globals()[_name] = _with_its_class_count(globals()[_name])
FAKES = {name.removeprefix("fake_"): fn for name, fn in globals().items() if name.startswith("fake_")}
REAL = ["belga_logos", "caltech101", "cifar10", "cifar100", "cub200", "cucumber9", "dtd", "european_flood",
        "fgvc_aircraft", "flowers102", "food101", "icassava", "imagenet", "imaterialist2019", "inaturalist2019",
        "landmarks_v2", "logo2k", "magnetic_tile_defects", "oxford_pets", "places365", "resisc45", "stanford_cars",
        "sun397", "uc_merced", "voc2007"]


def run_prepare(cfg: dict, tmp: Path, **options) -> Path:
    options = {"workers": 1, "resize_shorter": 256, **options}
    return prepare(cfg, tmp / "out", SHOTS, probe_per_class=2, seed=0, raw_dir=tmp / "raw", **options)


def read_manifest(out: Path) -> list[dict]:
    with open(out / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def check_layout(out: Path, classes: list[str], per_class: dict) -> dict:
    """The on-disk contract shared by every dataset: manifest, classes, stats, splits, readable images."""
    rows = read_manifest(out)
    assert json.loads((out / "classes.json").read_text()) == classes
    n_train, n_test = sum(t for t, _ in per_class.values()), sum(t for _, t in per_class.values())
    assert [r["split"] for r in rows] == ["train"] * n_train + ["test"] * n_test
    for r in rows:
        assert r["path"].startswith("images/") and (out / r["path"]).is_file()
    for part, k in (("train", 0), ("test", 1)):
        counts = {c: sum(1 for r in rows if r["split"] == part and classes[int(r["label"])] == c) for c in per_class}
        assert counts == {c: v[k] for c, v in per_class.items()}, part
    stats = json.loads((out / "stats.json").read_text())
    assert (stats["train_images"], stats["test_images"], stats["num_classes"]) == (n_train, n_test, len(classes))
    assert {"paper_train", "paper_test", "notes", "per_class", "skipped", "warnings"} <= set(stats)
    splits = json.loads((out / "splits.json").read_text())
    labels = np.array([int(r["label"]) for r in rows if r["split"] == "train"])
    assert splits["train"]["full"] == list(range(n_train))
    present = np.unique(labels)
    assert np.bincount(labels[splits["train"]["1"]], minlength=len(classes))[present].tolist() == [1] * len(present)
    assert set(splits["probe"]["full"]["per_class_2"]) <= set(range(n_train)) and set(splits["probe"]["1"]) == {"per_class_2"}
    return stats


@pytest.mark.parametrize("name", REAL)
def test_real_dataset_prepares_from_a_fake_of_its_layout(name, tmp_path):
    assert sorted(FAKES) == REAL  # one fake per real dataset config
    cfg, expected = FAKES[name](tmp_path)
    out = run_prepare(cfg, tmp_path)
    stats = check_layout(out, expected["classes"], expected["per_class"])
    assert stats["skipped_count"] == expected.get("skipped", 0)
    if "unreachable" in expected:
        assert stats["unreachable"] == expected["unreachable"]
    for row in read_manifest(out)[:2]:
        with Image.open(out / row["path"]) as im:
            assert (im.format, im.mode) == ("JPEG", "RGB")
    data = PreparedDataset(out, image_size=8)
    images, labels = data.test().batch([0])
    assert tuple(images.shape) == (1, 3, 8, 8) and data.layout == "files"


def test_official_and_stratified_split_rules_pick_the_right_images(tmp_path):
    cfg, _ = fake_cub200(tmp_path / "cub")
    rows = read_manifest(run_prepare(cfg, tmp_path / "cub"))
    test_sources = {r["path"].split("/")[-1].rsplit("-", 1)[0] for r in rows if r["split"] == "test"}
    assert test_sources == {"bird_3", "bird_4", "bird_7", "bird_8"}  # train_test_split.txt's 0s
    samples = [Sample(Path(f"/x/{c}/{i}.jpg"), c, "all") for c in "ab" for i in range(20)]
    first = assign_split(samples, {"rule": "stratified", "test_fraction": 0.25, "seed": 3}, "toy")
    again = assign_split(list(reversed(samples)), {"rule": "stratified", "test_fraction": 0.25, "seed": 3}, "toy")
    other = assign_split(samples, {"rule": "stratified", "test_fraction": 0.25, "seed": 4}, "toy")
    as_set = lambda pairs: {(str(s.path), p) for s, p in pairs}  # noqa: E731
    assert as_set(first) == as_set(again) != as_set(other)
    assert sum(p == "test" for _, p in first) == 10
    with pytest.raises(DataPrepError, match="exactly one of split.test_fraction"):
        assign_split(samples, {"rule": "stratified"}, "toy")
    with pytest.raises(DataPrepError, match="split.train_parts"):
        assign_split(samples, {"rule": "official"}, "toy")


def test_reruns_are_idempotent_and_large_images_are_resized(tmp_path):
    fake_uc_merced(tmp_path)
    image(tmp_path / "stage" / "UCMerced_LandUse" / "Images" / "beach" / "wide.png", size=(40, 24))
    make_zip(tmp_path / "server" / "UCMerced_LandUse.zip", tmp_path / "stage")
    cfg = serve(load_config("uc_merced"), tmp_path / "server")
    cfg["num_classes"] = 2
    out = run_prepare(cfg, tmp_path, resize_shorter=12)
    check_layout(out, ["agricultural", "beach"], {"agricultural": (3, 1), "beach": (4, 1)})
    sizes = []
    for row in read_manifest(out):
        with Image.open(out / row["path"]) as im:
            sizes.append(im.size)
    assert (20, 12) in sizes and all(min(size) <= 12 for size in sizes)
    first = {p: p.stat().st_mtime_ns for p in (out / "images").rglob("*.jpg")}
    manifest = (out / "manifest.csv").read_text()
    run_prepare(cfg, tmp_path, resize_shorter=12)
    assert {p: p.stat().st_mtime_ns for p in (out / "images").rglob("*.jpg")} == first
    assert (out / "manifest.csv").read_text() == manifest


def test_imagefolder_from_a_local_directory(tmp_path):
    cfg = load_config("example_folder")
    flat = tmp_path / "flat"
    for c in ("cats", "dogs", "owls"):
        for i in range(4):
            image(flat / c / f"{i}.png")  # PNG in, RGB JPEG out
    image(flat / "cats" / "sub" / "deeper.jpg")
    write(flat / "dogs" / "notes.txt", "not an image\n")  # reported as dropped, not read
    cfg.update(path=str(flat), num_classes=3)
    out = run_prepare(cfg, tmp_path, workers=2)
    stats = check_layout(out, ["cats", "dogs", "owls"], {"cats": (4, 1), "dogs": (3, 1), "owls": (3, 1)})
    assert stats["dropped"]["files"] == [{"path": str(flat / "dogs" / "notes.txt"), "reason": "file type .txt not read "
                                          "(options.extensions)", "class": "dogs"}]
    split_dirs = tmp_path / "split_dirs"
    for part, n in (("train", 3), ("test", 2)):
        for c in ("a", "b"):
            for i in range(n):
                image(split_dirs / part / c / f"{i}.jpg")
    cfg.update(path=str(split_dirs), num_classes=2, split={"rule": "official", "train_parts": ["train"], "test_parts": ["test"]})
    check_layout(run_prepare(cfg, tmp_path / "second"), ["a", "b"], {"a": (3, 2), "b": (3, 2)})
    cfg["path"] = str(tmp_path / "nowhere")
    with pytest.raises(DataPrepError, match="config key path"):
        run_prepare(cfg, tmp_path / "third")


# ---------------------------------------------------------------- downloads


def _payload(tmp: Path, n: int = 300_000) -> Path:
    path = tmp / "src" / "blob.bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes())
    return path


def test_checksum_mismatch_is_a_clear_error_and_a_mirror_is_tried(tmp_path):
    good = _payload(tmp_path)
    bad = tmp_path / "mirror_bad" / "blob.bin"
    bad.parent.mkdir()
    bad.write_bytes(b"something else")
    md5 = digest(good, "md5")
    dest = tmp_path / "raw" / "blob.bin"
    with pytest.raises(DataPrepError, match=f"md5 mismatch, expected {md5}, got {digest(bad, 'md5')}") as err:
        fetch([bad.as_uri()], dest, md5=md5)
    assert "by hand" in str(err.value) and str(dest) in str(err.value)
    assert not dest.exists() and not dest.with_name("blob.bin.part").exists()
    missing = (tmp_path / "nowhere" / "blob.bin").as_uri()
    assert fetch([missing, bad.as_uri(), good.as_uri()], dest, md5=md5) == dest
    assert digest(dest, "md5") == md5


def test_interrupted_download_resumes_from_the_part_file(tmp_path, caplog):
    caplog.set_level("INFO", logger="data_prep")
    good = _payload(tmp_path)
    dest = tmp_path / "raw" / "blob.bin"
    dest.parent.mkdir()
    data = good.read_bytes()
    dest.with_name("blob.bin.part").write_bytes(data[: len(data) // 2])
    fetch([good.as_uri()], dest, sha256=digest(good, "sha256"), size=len(data))
    assert dest.read_bytes() == data and not dest.with_name("blob.bin.part").exists()
    assert "resuming blob.bin.part at 0.1 MB" in caplog.text




@pytest.mark.parametrize("honours_range", [True, False])
def test_http_download_resumes_with_a_range_request_or_restarts(tmp_path, honours_range):
    good = _payload(tmp_path)
    plain = type("Plain", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    handler = _RangeHandler if honours_range else plain
    _RangeHandler.ranges = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(good.parent)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        data = good.read_bytes()
        dest = tmp_path / "raw" / "blob.bin"
        dest.parent.mkdir()
        dest.with_name("blob.bin.part").write_bytes(data[:100_000])
        fetch([f"http://127.0.0.1:{server.server_address[1]}/blob.bin"], dest, md5=digest(good, "md5"))
        assert dest.read_bytes() == data
        assert _RangeHandler.ranges == ([100_000] if honours_range else [])
    finally:
        server.shutdown()
        server.server_close()


def test_extract_refuses_path_traversal_and_runs_once(tmp_path):
    evil = tmp_path / "evil.tar"
    payload = tmp_path / "payload.txt"
    payload.write_text("x")
    with tarfile.open(evil, "w") as tf:
        tf.add(payload, arcname="../escaped.txt")
    with pytest.raises(DataPrepError, match="outside"):
        extract(evil, tmp_path / "dest")
    assert not (tmp_path / "escaped.txt").exists()
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
        zf.writestr("a/../../escaped.txt", "x")
    with pytest.raises(DataPrepError, match="outside"):
        extract(tmp_path / "evil.zip", tmp_path / "dest")
    image(tmp_path / "src_dir" / "a.png")
    good = make_zip(tmp_path / "good.zip", tmp_path / "src_dir")
    extract(good, tmp_path / "dest2")
    (tmp_path / "dest2" / "a.png").unlink()
    extract(good, tmp_path / "dest2")  # the marker says it was unpacked: nothing happens
    assert not (tmp_path / "dest2" / "a.png").exists()


def test_manual_dataset_says_which_files_to_put_where(tmp_path):
    cfg = load_config("imagenet")
    with pytest.raises(DataPrepError) as err:
        run_prepare(cfg, tmp_path)
    message = str(err.value)
    for needed in ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar", "ILSVRC2012_devkit_t12.tar.gz",
                   str(tmp_path / "raw"), "raw_dir", "image-net.org", "1d675b47d978889d74fa0da5fadfb00e"):
        assert needed in message
    cfg, _ = fake_stanford_cars(tmp_path / "cars")
    (tmp_path / "cars" / "raw" / "cars_test_annos_withlabels.mat").unlink()
    with pytest.raises(DataPrepError, match="cars_test_annos_withlabels.mat") as err:
        run_prepare(cfg, tmp_path / "cars")
    assert f"- {tmp_path / 'cars' / 'raw' / 'car_devkit.tgz'}" not in str(err.value)  # present files are not asked for


def test_a_wrong_manual_file_names_the_dataset_file_and_checksum(tmp_path):
    cfg, _ = fake_stanford_cars(tmp_path)
    cfg["download"]["files"][0]["sha256"] = "0" * 64
    with pytest.raises(DataPrepError, match=r"'stanford_cars': car_devkit.tgz: sha256 mismatch, expected 0{64}, got"):
        run_prepare(cfg, tmp_path)


# ---------------------------------------------------------------- readers


def test_image_files_and_arrays_are_torch_datasets_with_one_api(tmp_path):
    cfg, _ = fake_dtd(tmp_path)
    data = PreparedDataset(run_prepare(cfg, tmp_path), image_size=8)
    train, test = data.train("full"), data.test()
    assert isinstance(train, ImageFiles) and train.train_transform and not test.train_transform
    assert not data.probe_set("full", "per_class_2").train_transform and len(data.train("1")) == 2
    x, y = test[1]
    assert tuple(x.shape) == (3, 8, 8) and x.dtype == torch.float32 and y == int(test.labels[1])
    batch, labels = test.batch(torch.tensor([1, 2]))
    assert torch.allclose(batch[0], x) and labels.dtype == torch.long and test.num_classes == 2
    assert torch.equal(test.subset([2, 1]).labels, test.labels[[2, 1]])
    assert test.augmented(True).train_transform and not train.augmented(False).train_transform
    loader = torch.utils.data.DataLoader(train, batch_size=3)
    images, targets = next(iter(loader))
    assert tuple(images.shape) == (3, 3, 8, 8) and targets.dtype == torch.long
    arrays = ImageArrays(torch.randint(0, 256, (4, 6, 6, 3), dtype=torch.uint8), torch.tensor([0, 1, 0, 1]))
    first, label = arrays[2]
    assert torch.allclose(first, arrays.batch(torch.tensor([2]))[0][0]) and label == 0
    assert arrays.augmented(True) is arrays


# ---------------------------------------------------------------- what the data allows, and what it drops


def _labels_by_source(out: Path) -> dict[str, str]:
    classes = json.loads((out / "classes.json").read_text())
    return {r["path"].split("/")[-1].rsplit("-", 1)[0]: classes[int(r["label"])] for r in read_manifest(out)}


def test_both_versions_of_the_belga_annotations_give_identical_labels(tmp_path):
    tabs, _ = fake_belga_logos(tmp_path / "tabs")
    spaces, _ = fake_belga_logos(tmp_path / "spaces", sep_rows=(2, 9))  # the INRIA original: two rows with spaces
    assert "  " in (tmp_path / "spaces" / "server" / "qset3_internal_and_local.gt").read_text()
    a, b = run_prepare(tabs, tmp_path / "tabs"), run_prepare(spaces, tmp_path / "spaces")
    assert _labels_by_source(a) == _labels_by_source(b)
    assert _labels_by_source(a)["07670001"] == "Nike" and _labels_by_source(a)["07670003"] == "no-logo"
    pinned = tabs["options"]["annotations_sha256"]
    assert [json.loads((o / "stats.json").read_text())["annotations_sha256"] for o in (a, b)] == [pinned, pinned]


def test_the_pinned_belga_table_is_the_real_file_and_other_versions_are_refused(tmp_path):
    from data_prep.sources import belga_table_sha256, parse_belga_annotations

    # the real file (nhartland/BelgaLogosID@bedf260, 9,844 rows, all tabs) has this file sha256: the config pins it
    assert load_config("belga_logos")["options"]["annotations_sha256"] == \
        "0e66a69a34683cea3d47e87c55513a492f1f4609e3bdb15cf3aacb4af43efee6"
    cfg, _ = fake_belga_logos(tmp_path)
    gt = tmp_path / "server" / "qset3_internal_and_local.gt"
    assert belga_table_sha256(parse_belga_annotations(gt, cfg)) == digest(gt, "sha256")
    cfg["options"]["annotations_sha256"] = "ab" * 32
    with pytest.raises(DataPrepError, match=rf"parses into 54 rows whose sha256 .* is {digest(gt, 'sha256')}, not "
                                            rf"options.annotations_sha256 {'ab' * 32}: it is another version"):
        run_prepare(cfg, tmp_path)
    assert not (tmp_path / "out" / "images").exists()  # refused before any image was resized
    cfg["options"].update(annotations_sha256=digest(gt, "sha256"), expected_images=10000)
    with pytest.raises(DataPrepError, match=r"holds 56 JPEG images, not the 10000 of BelgaLogos \(options.expected_images\)"):
        run_prepare(cfg, tmp_path)


def test_a_belga_error_page_or_a_broken_row_is_an_error_naming_file_and_line(tmp_path):
    cfg, _ = fake_belga_logos(tmp_path)
    gt = tmp_path / "server" / "qset3_internal_and_local.gt"
    rows = gt.read_text().splitlines()
    write(gt, "\n".join(rows[:3] + ["Nike_9\tNike\t07670009.jpg\tlogo\t1\t0\t0"] + rows[3:]) + "\n")  # 7 fields
    raw_gt = tmp_path / "raw" / "qset3_internal_and_local.gt"
    with pytest.raises(DataPrepError, match=rf"1 row\(s\) of {raw_gt} do not parse .*: line 4: 'Nike_9\\tNike"):
        run_prepare(cfg, tmp_path)
    write(raw_gt, "<!DOCTYPE html>\n<html><body>Service unavailable</body></html>\n")  # served with HTTP 200
    with pytest.raises(DataPrepError, match=rf"{raw_gt} is not a BelgaLogos annotation file: no row parses .* "
                                            r"its first line is '<!DOCTYPE html>'. Delete it and run again"):
        run_prepare(cfg, tmp_path)
    assert not (tmp_path / "out" / "images").exists()


def test_belga_runs_every_shot_setting_with_its_short_classes_recorded(tmp_path, capsys):
    cfg, _ = fake_belga_logos(tmp_path)
    assert cfg["options"]["short_classes"] == "all_available" and "short_classes" in cfg["notes"]
    out = prepare(cfg, tmp_path / "out", ["full", "2"], probe_per_class=2, seed=0, raw_dir=tmp_path / "raw", workers=1)
    stats = json.loads((out / "stats.json").read_text())
    logos = cfg["options"]["logos"]
    assert stats["short_classes"] == {"2": [{"class": c, "images": 1, "shots": 2} for c in sorted(logos)]}
    labels = np.array([int(r["label"]) for r in read_manifest(out) if r["split"] == "train"])
    subset = json.loads((out / "splits.json").read_text())["train"]["2"]
    assert np.bincount(labels[subset]).tolist() == [1] * 26 + [2]  # each logo all it has, no-logo 2
    assert stats["shots"] == {"full": 29, "2": 28}
    assert ("data_prep: belga_logos: shots=2: 26 class(es) have fewer than 2 training images and use all they "
            "have (options.short_classes: all_available): Adidas (1), Adidas-text (1)") in capsys.readouterr().err


def test_a_short_class_elsewhere_is_an_error_naming_classes_counts_and_remedy_before_resizing(tmp_path):
    cfg, _ = fake_dtd(tmp_path)
    with pytest.raises(DataPrepError) as err:
        prepare(cfg, tmp_path / "out", ["full", "5"], probe_per_class=2, seed=0, raw_dir=tmp_path / "raw")
    assert str(err.value) == (
        "dataset 'dtd': shots=5: 2 of 2 classes have fewer training images than 5: banded (3), woven (3). Lower the "
        "shot count (benchmark key shots), add images to those classes, or set options.short_classes: all_available "
        "in configs/dataset/dtd.yaml to train such a class on all of its training images (recorded in stats.json "
        "short_classes)")
    assert not (tmp_path / "out" / "images").exists()
    cfg["options"] = {"short_classes": "some"}
    with pytest.raises(DataPrepError, match=r"options.short_classes='some' is not one of \['error', 'all_available'\]"):
        prepare(cfg, tmp_path / "out", ["full"], probe_per_class=2, seed=0, raw_dir=tmp_path / "raw")


def _truncated_jpeg(path: Path) -> Path:
    data = image(path, size=(64, 48), fmt="JPEG").read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_a_folder_target_reports_a_truncated_jpeg_and_an_empty_class(tmp_path, capsys):
    folder = tmp_path / "folder"
    for c in ("cats", "dogs"):
        for i in range(4):
            image(folder / c / f"{i}.jpg")
    _truncated_jpeg(folder / "cats" / "broken.jpg")
    (folder / "owls").mkdir()
    cfg = load_config("example_folder")
    cfg.update(path=str(folder), num_classes=2)
    out = run_prepare(cfg, tmp_path)
    stats = check_layout(out, ["cats", "dogs"], {"cats": (3, 1), "dogs": (3, 1)})
    (broken,) = stats["dropped"]["files"]
    assert (broken["path"], broken["reason"], broken["class"]) == (str(folder / "cats" / "broken.jpg"), "unreadable image", "cats")
    assert "truncated" in broken["detail"]
    assert stats["dropped"]["classes"] == [{"class": "owls", "reason": f"empty folder {folder / 'owls'}"}]
    err = capsys.readouterr().err
    assert (f"data_prep: example_folder: dropped 1 file(s) and 1 class(es): 1 unreadable image: broken.jpg; "
            f"1 class empty folder {folder / 'owls'}: owls; all of them in {out / 'stats.json'} (dropped)") in err
    cfg["num_classes"] = 3
    with pytest.raises(DataPrepError) as error:
        run_prepare(cfg, tmp_path / "again")
    assert str(error.value) == (
        f"dataset 'example_folder': config key num_classes is 3 (configs/dataset/example_folder.yaml) but the data "
        f"has 2 classes; dropped: owls (empty folder {folder / 'owls'}). Set num_classes: 2 if that is right, or fix "
        f"the data (config key path: {folder})")
    assert not (tmp_path / "again" / "out" / "images").exists()


def test_imagenet_already_unpacked_in_torchvisions_layout_or_with_its_tars_deleted(tmp_path):
    wnids = ["n01440764", "n01443537"]
    raw = tmp_path / "tv" / "raw"
    for w in wnids:
        for i in range(3):
            image(raw / "train" / w / f"{w}_{i}.JPEG")
        image(raw / "val" / w / f"ILSVRC2012_val_0000000{wnids.index(w) + 1}.JPEG")
    cfg = load_config("imagenet")
    cfg["num_classes"] = 2
    out = run_prepare(cfg, tmp_path / "tv")  # no archive and no devkit: nothing is asked for
    check_layout(out, wnids, {wnids[0]: (3, 1), wnids[1]: (3, 1)})
    cfg, expected = fake_imagenet(tmp_path / "tars")
    run_prepare(cfg, tmp_path / "tars")
    for tar in (tmp_path / "tars" / "raw").glob("*.tar*"):
        tar.unlink()  # deleted after extraction
    again = prepare(cfg, tmp_path / "tars" / "again", SHOTS, 2, 0, raw_dir=tmp_path / "tars" / "raw", workers=1)
    check_layout(again, expected["classes"], expected["per_class"])
    message = str(pytest.raises(DataPrepError, run_prepare, load_config("imagenet"), tmp_path / "none").value)
    assert f"or what it unpacks to: {tmp_path / 'none' / 'raw' / 'train/n01440764'}" in message


class _DeadHostHandler(http.server.SimpleHTTPRequestHandler):
    """A web server whose /dead/ URLs redirect to the host's 'photo unavailable' image, as Flickr's do."""

    def do_GET(self):
        if self.path.startswith("/dead/"):
            self.send_response(302)
            self.send_header("Location", "/photo_unavailable.png")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args):
        pass


def test_url_lists_reject_placeholders_and_report_them_per_class(tmp_path):
    cfg, _ = fake_imaterialist2019(tmp_path)
    web, raw = tmp_path / "web", tmp_path / "raw"
    image(web / "photo_unavailable.png", size=(500, 374))
    write(web / "error.jpg", "<html><body>gone</body></html>")
    image(web / "tiny.jpg", size=(12, 12))
    image(web / "same.jpg", size=(64, 64))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_DeadHostHandler, directory=str(web)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        lists = {part: json.loads((raw / f"{part}.json").read_text())["images"] for part in ("train", "val")}
        extra = [("dead", f"{host}/dead/123.jpg", 4), ("html", f"{host}/error.jpg", 4), ("tiny", f"{host}/tiny.jpg", 17)]
        extra += [(f"same{i}", f"{host}/same.jpg?{i}", 4 if i % 2 else 17) for i in range(3)]
        lists["train"] += [{"id": f"{name}{'0' * 20}", "url": url, "class": cls} for name, url, cls in extra]
        write(raw / "train.json", json.dumps({"images": lists["train"]}))
        cfg["options"]["placeholder_repeats"] = 3
        out = run_prepare(cfg, tmp_path)
        stats = check_layout(out, ["0004", "0017"], {"0004": (3, 1), "0017": (3, 1)})
        assert stats["url_list_dropped_per_class"] == {"0004": {"rejected download": 3, "unreachable URL": 1},
                                                       "0017": {"rejected download": 3}}
        reasons = {f["path"]: f.get("detail", f["reason"]) for f in stats["dropped"]["files"]}
        assert reasons[f"{host}/dead/123.jpg"] == f"placeholder: redirected to {host}/photo_unavailable.png"
        assert reasons[f"{host}/error.jpg"].startswith("not an image (UnidentifiedImageError; starts '<html>")
        assert reasons[f"{host}/tiny.jpg"].startswith("tiny image 12x12")
        assert reasons[f"{host}/same.jpg?0"].startswith("placeholder: the same bytes") and "3 URLs of 2 classes" in reasons[f"{host}/same.jpg?0"]
        rejected = (raw / "rejected_train.tsv").read_text()
        run_prepare(cfg, tmp_path)  # rejected downloads are not fetched again
        assert (raw / "rejected_train.tsv").read_text() == rejected
    finally:
        server.shutdown()
        server.server_close()


def test_requires_python_admits_only_releases_with_tarfile_extraction_filters():
    import tomllib

    from packaging.specifiers import SpecifierSet

    spec = SpecifierSet(tomllib.loads((CONFIGS.parent / "pyproject.toml").read_text())["project"]["requires-python"])
    admitted = {v: v in spec for v in ("3.9.20", "3.10.11", "3.10.12", "3.11.0", "3.11.3", "3.11.4", "3.12.0", "3.13.1")}
    assert admitted == {"3.9.20": False, "3.10.11": False, "3.10.12": True, "3.11.0": False, "3.11.3": False,
                        "3.11.4": True, "3.12.0": True, "3.13.1": True}


def test_provides_takes_alternatives_and_glob_patterns(tmp_path):
    from data_prep.download import provided

    image(tmp_path / "val" / "n01440764" / "a.JPEG")
    assert provided(tmp_path, "ILSVRC2012_devkit_t12 | val/n*") == tmp_path / "val" / "n01440764"
    assert provided(tmp_path, "val/n01440764/a.JPEG") == tmp_path / "val" / "n01440764" / "a.JPEG"
    assert provided(tmp_path, "ILSVRC2012_devkit_t12 | train/n*") is None and provided(tmp_path, None) is None


# ---------------------------------------------------------------- the standard benchmark's targets (LogME / SFDA)


def test_voc2007_labels_an_image_by_the_first_voc_class_it_holds_as_sfda_does(tmp_path):
    cfg, expected = fake_voc2007(tmp_path)
    out = run_prepare(cfg, tmp_path)
    assert _labels_by_source(out) == {"000005": "chair", "000007": "person", "000009": "aeroplane", "000012": "person",
                                      "000016": "aeroplane", "000001": "person", "000002": "chair", "000004": "aeroplane"}
    stats = json.loads((out / "stats.json").read_text())
    assert (stats["images_with_several_classes"], stats["images_without_positive_class"]) == (2, ["000016"])
    cfg["options"]["without_positive"] = "drop"  # the image with only a difficult object is left out, and reported
    stats = check_layout(run_prepare(cfg, tmp_path / "drop"), expected["classes"],
                         {**expected["per_class"], "aeroplane": (1, 1)})
    assert [f["path"].rsplit("/", 1)[1] for f in stats["dropped"]["files"]] == ["000016.jpg"]
    cfg["options"]["without_positive"] = "person"
    with pytest.raises(DataPrepError, match=r"options.without_positive='person' is not one of \['first_class', 'drop'\]"):
        run_prepare(cfg, tmp_path / "bad")


def test_caltech101_trains_on_a_fixed_number_per_class_and_can_leave_out_the_background(tmp_path):
    cfg, _ = fake_caltech101(tmp_path)
    cfg["options"]["class_glob"] = "[!B]*"  # torchvision's 101 classes: every folder but BACKGROUND_Google
    cfg["num_classes"] = 2
    check_layout(run_prepare(cfg, tmp_path), ["Faces_easy", "accordion"], {"Faces_easy": (3, 2), "accordion": (3, 2)})
    assert (tmp_path / "raw" / "101_ObjectCategories" / "BACKGROUND_Google").is_dir()  # the inner archive was unpacked
    samples = [Sample(Path(f"/x/{c}/{i}.jpg"), c, "all") for c in "ab" for i in range(6)]
    train = lambda split: {str(s.path) for s, p in assign_split(samples, split, "toy") if p == "train"}  # noqa: E731
    first = train({"rule": "stratified", "train_per_class": 4, "seed": 0})
    assert len(first) == 8 and first == train({"rule": "stratified", "train_per_class": 4, "seed": 0}) \
        != train({"rule": "stratified", "train_per_class": 4, "seed": 1})
    with pytest.raises(DataPrepError, match=r"class 'a' has 6 images, not more than split.train_per_class=6"):
        assign_split(samples, {"rule": "stratified", "train_per_class": 6}, "toy")
    with pytest.raises(DataPrepError, match="exactly one of split.test_fraction, split.test_per_class and split.train_per_class"):
        assign_split(samples, {"rule": "stratified", "train_per_class": 4, "test_fraction": 0.2}, "toy")


def test_cifar_batches_keep_both_images_of_a_repeated_file_name_and_name_a_missing_key(tmp_path):
    cfg, _ = fake_cifar10(tmp_path)
    out = run_prepare(cfg, tmp_path)
    decoded = sorted(p.name for p in (tmp_path / "raw" / "decoded" / "train" / "automobile").iterdir())
    assert decoded == ["img_3_1.png", "img_4_0.png", "twice_s_000001-data_batch_1-00001.png", "twice_s_000001.png"]
    train = [r["path"] for r in read_manifest(out) if r["split"] == "train"]
    assert len(set(train)) == len(train) == 10
    cfg, _ = fake_cifar100(tmp_path / "c100")
    cfg["options"]["labels_key"] = "labels"  # CIFAR-10's key: CIFAR-100 has fine_labels and coarse_labels
    with pytest.raises(DataPrepError, match=r"cifar-100-python/train has no key 'labels' \(options.labels_key\); its "
                                            r"keys are \['batch_label', 'coarse_labels', 'data', 'filenames', 'fine_labels'\]"):
        run_prepare(cfg, tmp_path / "c100")


def test_sun397_reads_the_partition_asked_for_and_fgvc_names_a_class_it_does_not_know(tmp_path):
    cfg, expected = fake_sun397(tmp_path)
    cfg["options"]["partition"] = 2  # Training_02 / Testing_02 list other images
    out = run_prepare(cfg, tmp_path)
    check_layout(out, expected["classes"], {c: (2, 3) for c in expected["classes"]})
    assert json.loads((out / "stats.json").read_text())["partition"] == 2
    cfg["options"]["partition"] = 11
    with pytest.raises(DataPrepError, match="options.partition=11 is not one of SUN397's partitions 1..10"):
        run_prepare(cfg, tmp_path / "bad")
    cfg, _ = fake_fgvc_aircraft(tmp_path / "fgvc")
    run_prepare(cfg, tmp_path / "fgvc")
    listing = tmp_path / "fgvc" / "raw" / "fgvc-aircraft-2013b" / "data" / "images_variant_test.txt"
    write(listing, listing.read_text() + "1999999 747-400\n")
    with pytest.raises(DataPrepError, match=r"images_variant_test.txt line 4: class '747-400' is not in variants.txt"):
        run_prepare(cfg, tmp_path / "fgvc")
