"""The standard transferability benchmark's data (configs/zoo/*.yaml, report/published/standard_*.csv):
the zoos parse and name weights that exist, the LogME / SFDA ground truth is complete. Metadata only:
no model is built and nothing is downloaded."""
import re

import pandas as pd
import pytest
import yaml

from conftest import CONFIGS, ROOT

ZOO_DIR = CONFIGS / "zoo"
PUBLISHED = ROOT / "report" / "published"
ZOOS = sorted(p.stem for p in ZOO_DIR.glob("*.yaml"))
KINDS = ("torchvision", "timm")  # the key saying where an expert's weights come from
TARGETS = {"fgvc_aircraft", "caltech101", "stanford_cars", "cifar10", "cifar100", "dtd", "flowers102",
           "food101", "oxford_pets", "sun397", "voc2007"}


def experts(zoo: str) -> list[dict]:
    return yaml.safe_load((ZOO_DIR / f"{zoo}.yaml").read_text())["experts"]


def test_the_zoos_are_there():
    assert {"logme_imagenet", "guided_timm", "timm_mixed"} <= set(ZOOS)


@pytest.mark.parametrize("zoo", ZOOS)
def test_zoo_schema(zoo):
    text = (ZOO_DIR / f"{zoo}.yaml").read_text()
    assert text.startswith("#"), "a zoo opens with a comment saying what it is and where it comes from"
    data = yaml.safe_load(text)
    assert set(data) == {"experts"} and data["experts"]
    names = [e["name"] for e in data["experts"]]
    assert len(names) == len(set(names)), "expert names are unique"
    for e in data["experts"]:
        assert re.fullmatch(r"[a-z0-9_]+", e["name"]), e
        kinds = [k for k in e if k != "name"]
        assert len(kinds) == 1 and kinds[0] in KINDS, e
        assert isinstance(e[kinds[0]], str) and e[kinds[0]], e


def test_logme_imagenet_zoo():
    zoo = experts("logme_imagenet")
    assert [e["name"] for e in zoo] == ["resnet34", "resnet50", "resnet101", "resnet152", "densenet121", "densenet169",
                                        "densenet201", "mnasnet1_0", "mobilenet_v2", "googlenet", "inception_v3"]
    assert all(e["torchvision"].endswith(".IMAGENET1K_V1") for e in zoo)  # torchvision's original pretrained=True


def test_torchvision_weights_resolve():
    models = pytest.importorskip("torchvision.models")
    for zoo in ZOOS:
        for e in experts(zoo):
            if "torchvision" in e:
                w = models.get_weight(e["torchvision"])  # the enum member: metadata only, no download
                assert w.meta["categories"] and len(w.meta["categories"]) == 1000, e


def test_timm_names_are_pretrained_tags():
    timm = pytest.importorskip("timm")
    pretrained = set(timm.list_pretrained())
    for zoo in ZOOS:
        for e in experts(zoo):
            if "timm" in e:
                assert "." in e["timm"], f"{zoo}: {e} has no pretrained tag"
                assert e["timm"] in pretrained, f"{zoo}: {e} is not in timm.list_pretrained()"


def test_timm_mixed_is_imagenet1k_only():
    for e in experts("timm_mixed"):
        tag = e["timm"].split(".", 1)[1]
        assert tag.endswith("in1k") and "21k" not in tag and "22k" not in tag and "12k" not in tag, e


def test_standard_finetune_ground_truth():
    df = pd.read_csv(PUBLISHED / "standard_finetune.csv")
    assert list(df.columns) == ["model", "target", "accuracy", "source"]
    assert len(df) == 121 and not df.duplicated(["model", "target"]).any()
    assert set(df["model"]) == {e["name"] for e in experts("logme_imagenet")}
    assert set(df["target"]) == TARGETS
    assert df.groupby("target")["model"].nunique().eq(11).all()
    assert ((df["accuracy"] > 0) & (df["accuracy"] <= 100)).all()
    assert df["source"].notna().all() and (df["source"].str.strip().str.len() > 0).all()
    acc = df.set_index(["model", "target"])["accuracy"]  # spot checks against SFDA's tw_group1.py
    assert acc[("resnet34", "fgvc_aircraft")] == 84.06 and acc[("mnasnet1_0", "fgvc_aircraft")] == 66.48
    assert acc[("inception_v3", "voc2007")] == 83.84 and acc[("googlenet", "food101")] == 79.3


def test_standard_weighted_tau():
    from selection.scores import SCORES

    df = pd.read_csv(PUBLISHED / "standard_weighted_tau.csv")
    assert list(df.columns) == ["method", "target", "weighted_tau", "source"]
    assert not df.duplicated(["method", "target", "source"]).any()
    assert set(df["method"]) <= set(SCORES), "methods are spelt as the score registry does"
    assert set(df["target"]) <= TARGETS
    assert df["weighted_tau"].between(-1, 1).all()
    assert df["source"].notna().all() and (df["source"].str.strip().str.len() > 0).all()
    tllib = df[df["source"].str.startswith("TLlib")].set_index(["method", "target"])["weighted_tau"]
    assert len(tllib) == 4 * 8 and tllib[("hscore", "sun397")] == 0.918 and tllib[("nce", "dtd")] == 0.083
    df = df[~df["source"].str.startswith("TLlib")]
    tau = df.set_index(["method", "target"])["weighted_tau"]  # spot checks against the SFDA README's table
    assert tau[("sfda", "flowers102")] == 0.542 and tau[("leep", "fgvc_aircraft")] == -0.234
    assert tau[("nleep", "dtd")] == 0.777 and tau[("logme", "stanford_cars")] == 0.576
