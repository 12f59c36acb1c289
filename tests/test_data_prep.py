import json

import numpy as np
import pytest

from data_prep.prepare import DataPrepError, few_shot_indices, prepare, probe_indices
from data_prep.readers import PreparedDataset
from data_prep.synthetic import DomainSpec, generate

DATASET = {
    "name": "toy", "role": "target", "kind": "synthetic", "num_classes": 4, "train_per_class": 30,
    "test_per_class": 5, "image_size": 32,
    "synthetic": {"families": [1], "motifs": [0, 1, 2, 3, 4], "noise": 0.3, "class_seed": 3, "seed": 4},
}


def test_generation_is_deterministic_and_seed_dependent():
    spec = DomainSpec(families=(1,), motifs=(0, 1, 2), num_classes=3, train_per_class=4, test_per_class=2, seed=1)
    a, b = generate(spec), generate(spec)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    other = generate(DomainSpec(**{**spec.__dict__, "seed": 2}))
    assert not np.array_equal(a["train_images"], other["train_images"])
    assert a["train_images"].shape == (12, 32, 32, 3) and a["train_images"].dtype == np.uint8


def test_families_differ_in_colour_statistics():
    one = generate(DomainSpec(families=(1,), motifs=(0, 1), num_classes=2, train_per_class=50, test_per_class=1))
    two = generate(DomainSpec(families=(2,), motifs=(0, 1), num_classes=2, train_per_class=50, test_per_class=1))
    assert not np.allclose(one["train_images"].mean((0, 1, 2)), two["train_images"].mean((0, 1, 2)), atol=0.5)


def test_few_shot_subsets_are_nested_and_balanced():
    labels = np.repeat(np.arange(4), 30)
    sets = few_shot_indices(labels, ["full", "20", "5"], seed=0)
    assert len(sets["full"]) == 120
    assert set(sets["5"]) <= set(sets["20"]) <= set(sets["full"])
    assert np.bincount(labels[sets["5"]]).tolist() == [5] * 4
    with pytest.raises(DataPrepError, match="shots=31"):
        few_shot_indices(labels, ["31"], seed=0)


def test_probe_sets_cap_per_class_and_stay_in_training_data():
    labels = np.repeat(np.arange(4), 30)
    train = few_shot_indices(labels, ["full", "20", "5"], seed=0)
    probe = {k: v["per_class_25"] for k, v in probe_indices(labels, train, per_class=25, seed=0).items()}
    assert np.bincount(labels[probe["full"]]).tolist() == [25] * 4
    assert sorted(probe["20"]) == sorted(train["20"])  # fewer than 25 per class: all of them
    assert set(probe["5"]) <= set(train["5"])


def test_prepare_writes_a_readable_dataset(tmp_path):
    out = prepare(DATASET, tmp_path / "toy", ["full", "20", "5"], probe_per_class=25, seed=0)
    data = PreparedDataset(out)
    assert data.num_classes == 4
    assert len(data.train("5")) == 20 and len(data.train()) == 120 and len(data.test()) == 20
    assert len(data.probe_set("full", "per_class_25")) == 100 and data.probe_names("full") == ["per_class_25"]
    images, labels = data.train("20").batch(np.arange(8))
    assert tuple(images.shape) == (8, 3, 32, 32) and labels.dtype.is_floating_point is False
    stats = json.loads((out / "stats.json").read_text())
    assert stats["shots"] == {"full": 120, "20": 80, "5": 20}


def test_prepare_rejects_bad_input(tmp_path):
    with pytest.raises(DataPrepError, match="exceeds the 30 training images"):
        prepare(DATASET, tmp_path / "a", ["full", "40"], 25, 0)
    with pytest.raises(DataPrepError, match="only 5"):
        prepare({**DATASET, "num_classes": 9}, tmp_path / "b", ["full"], 25, 0)
    with pytest.raises(DataPrepError, match="run the data_prep stage"):
        PreparedDataset(tmp_path / "missing")


def test_ablation_and_parc_probe_sets_on_the_full_setting():
    labels = np.repeat(np.arange(4), 30)
    train = few_shot_indices(labels, ["full", "5"], seed=0)
    probes = probe_indices(labels, train, per_class=25, seed=0, ablation_per_class=[10], parc_draws=3, parc_size=20)
    assert sorted(probes["full"]) == ["all", "parc_draw0", "parc_draw1", "parc_draw2", "per_class_10", "per_class_25"]
    assert list(probes["5"]) == ["per_class_25"]
    assert np.bincount(labels[probes["full"]["per_class_10"]]).tolist() == [10] * 4
    assert len(probes["full"]["all"]) == 120
    draws = [probes["full"][f"parc_draw{i}"] for i in range(3)]
    for draw in draws:
        assert len(draw) == 20 and np.bincount(labels[draw]).min() >= 2
    assert draws[0] != draws[1]
    with pytest.raises(DataPrepError, match="2 images of each"):
        probe_indices(labels, train, per_class=25, seed=0, parc_draws=1, parc_size=7)


def test_a_short_class_is_named_with_its_count_or_trained_on_all_it_has():
    labels = np.array([0] * 30 + [1] * 2 + [2] * 30)
    names = ["cat", "dog", "owl"]
    with pytest.raises(DataPrepError) as err:
        few_shot_indices(labels, ["full", "20"], 0, names, name="toy")
    assert str(err.value).startswith("dataset 'toy': shots=20: 1 of 3 classes have fewer training images than 20: "
                                     "dog (2). Lower the shot count (benchmark key shots)")
    sets = few_shot_indices(labels, ["full", "20", "5"], 0, names, short="all_available")
    assert np.bincount(labels[sets["20"]]).tolist() == [20, 2, 20]
    assert np.bincount(labels[sets["5"]]).tolist() == [5, 2, 5] and set(sets["5"]) <= set(sets["20"])
