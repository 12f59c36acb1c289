"""Fine-tuning grid and selection stage on a tiny prepared target and a tiny real expert."""
import json

from pathlib import Path

import numpy as np
import pytest

import torch

from conftest import compose_stage
from pipeline.stages import identity_overrides

from data_prep.download import DataPrepError
from data_prep.prepare import prepare
from finetune import run as finetune_run
from selection.features import write_caches
from selection.run import SelectionError, score_expert
from zoo_training.architectures import build_model
from zoo_training.experts import save_expert

ARCH = {"family": "densenet", "timm_name": None, "kwargs": {"growth_rate": 4, "block_config": [1, 1], "bn_size": 2}}
TARGET = {
    "name": "toy", "role": "target", "kind": "synthetic", "num_classes": 3, "train_per_class": 12,
    "test_per_class": 4, "image_size": 32,
    "synthetic": {"families": [1], "motifs": [0, 1, 2], "noise": 0.3, "class_seed": 1, "seed": 2},
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("stage")
    prepare(TARGET, root / "data" / "toy", ["full", "5"], probe_per_class=10, seed=0)
    torch.manual_seed(0)
    save_expert(root / "expert.pt", build_model("densenet", 5, kwargs=ARCH["kwargs"]), ARCH, 5, expert="densenet-src")
    return root


def _cfg(root, stage="finetune", **extra):
    """The stage's real configuration (smoke preset: the mini recipe at 2 epochs) for the toy target."""
    identity = {"expert": "densenet-src", "expert_path": str(root / "expert.pt"), "data_root": str(root / "data"),
                "targets": ["toy"], "shots": ["full", "5"], "threads": 1, **extra}
    if stage == "selection":
        identity = {"step": "select", "probe_set": "per_class_10", **identity}
    return compose_stage(stage, "smoke", *identity_overrides(**identity))


def test_grid_runs_every_point_and_resumes_from_partial(setup, monkeypatch):
    out = setup / "ft.json"
    cfg = _cfg(setup, lrs=[0.01, 0.001], out=str(out))
    # a killed job left one finished grid point behind
    done = {"expert": "densenet-src", "target": "toy", "shots": "full", "lr": 0.01, "seed": 0, "test_accuracy": 12.5,
            "val_accuracy": 10.0, "seconds": 1.0}
    out.with_name("ft.json.partial").write_text(json.dumps(done) + "\n")
    calls = []
    real_fit = finetune_run.fit
    monkeypatch.setattr(finetune_run, "fit", lambda *a, **k: calls.append(k["name"]) or real_fit(*a, **k))
    rows = finetune_run.finetune_expert(cfg)
    assert len(rows) == 4 and len(calls) == 3  # the finished point is not redone
    assert rows[0] == done
    record = json.loads(out.read_text())
    assert {(b["target"], b["shots"]) for b in record["best"]} == {("toy", "full"), ("toy", "5")}
    assert not out.with_name("ft.json.partial").exists()


def test_every_seed_runs_the_grid_and_reports_its_validation_accuracy(setup, monkeypatch):
    """Seeds 0 and 1 of each point; the smoke preset (the mini's) holds out 20% of each class: 5 shots x 3
    classes train on 4 per class and are validated on the fifth; full (12 per class) trains on 10, not 12."""
    sizes = []
    real_fit = finetune_run.fit
    monkeypatch.setattr(finetune_run, "fit", lambda model, train, *a, **k: sizes.append(len(train)) or
                        real_fit(model, train, *a, **k))
    rows = finetune_run.finetune_expert(_cfg(setup, lrs=[0.01], seeds=[0, 1], out=str(setup / "seeds.json")))
    assert [(r["shots"], r["seed"]) for r in rows] == [("full", 0), ("full", 1), ("5", 0), ("5", 1)]
    assert sizes == [30, 30, 12, 12]
    assert all(np.isfinite(r["val_accuracy"]) and 0 <= r["val_accuracy"] <= 100 for r in rows)
    # 5 shots: 3 validation images, so an accuracy of k/3
    assert all(round(r["val_accuracy"] * 3 / 100, 9).is_integer() for r in rows if r["shots"] == "5")


def test_the_validation_part_is_a_seeded_stratified_hold_out():
    from data_prep.prepare import validation_split

    labels = np.repeat(np.arange(4), [5, 5, 20, 1])
    index = np.arange(len(labels))
    train, val = validation_split(labels, index, 0.2, seed=3)
    assert sorted(train + val) == list(range(len(labels))) and not set(train) & set(val)
    assert np.bincount(labels[val], minlength=4).tolist() == [1, 1, 4, 0]  # 1 of 5, 4 of 20, never a lone image
    assert validation_split(labels, index, 0.2, seed=3) == (train, val)
    assert validation_split(labels, index, 0.2, seed=4) != (train, val)
    assert validation_split(labels, index, 0.0, seed=3) == (list(range(len(labels))), [])
    with pytest.raises(DataPrepError, match=r"not in \[0, 1\)"):
        validation_split(labels, index, 1.0, seed=3)


def test_fine_tuning_is_deterministic(setup):
    a = finetune_run.finetune_expert(_cfg(setup, lrs=[0.01], out=str(setup / "a.json")))
    b = finetune_run.finetune_expert(_cfg(setup, lrs=[0.01], out=str(setup / "b.json")))
    assert [r["test_accuracy"] for r in a] == [r["test_accuracy"] for r in b]


def test_theta_f_snapshots_and_the_grid_rules(setup):
    """Fig. 8: one grid point saves the probe features at epochs 0, 1, 2, grouped by class; the
    full setting only for full_targets; a theta_f point outside the grid is refused."""
    theta = setup / "theta.npz"
    cfg = _cfg(setup, lrs=[0.01, 0.001], out=str(setup / "t.json"), theta_f_out=str(theta),
               theta_f={"target": "toy", "shots": "full", "lr": 0.001, "fractions": [0.0, 0.5, 1.0],
                        "probe_set": "per_class_10"})
    finetune_run.finetune_expert(cfg)
    with np.load(theta) as z:
        assert list(z["epochs"]) == [0, 1, 2] and z["features"].shape[:2] == (3, len(z["labels"]))
        assert (np.diff(z["labels"]) >= 0).all() and str(z["expert"]) == "densenet-src"
        assert not np.allclose(z["features"][0], z["features"][2])  # fine-tuning moved them
    assert finetune_run.grid(["a", "b"], ["full", "5"], [0.1], full_targets=["a"], seeds=[0, 1]) == [
        ("a", "full", 0.1, 0), ("a", "full", 0.1, 1), ("a", "5", 0.1, 0), ("a", "5", 0.1, 1), ("b", "5", 0.1, 0),
        ("b", "5", 0.1, 1)]
    bad = _cfg(setup, lrs=[0.01], out=str(setup / "u.json"), theta_f_out=str(theta),
               theta_f={"target": "toy", "shots": "full", "lr": 0.005, "fractions": [0.0],
                        "probe_set": "per_class_10"})
    with pytest.raises(finetune_run.FinetuneError, match="not a point of this expert's grid"):
        finetune_run.finetune_expert(bad)


METHODS = ["lfc", "lgc", "leep", "parc", "random"]


def test_feature_cache_and_scores(setup):
    cfg = _cfg(setup, "selection", cache_dir=str(setup / "cache"), batch_size=7, methods=METHODS, lgc_dim=64,
               variants={"parc_pca4": {"score": "parc", "options": {"pca_dim": 4}}}, out=str(setup / "scores.json"))
    paths = write_caches(cfg)
    assert len(paths) == 2
    with np.load(setup / "cache" / "toy" / "full" / "per_class_10.npz") as cache:
        assert cache["features"].shape[0] == 30  # 10 per class from the full training set
        np.testing.assert_allclose(cache["probs"].sum(1), 1.0)
        assert cache["probs"].shape[1] == 5  # the source head
        assert cache["gradients"].shape == (30, 64)
    rows = score_expert(cfg)
    assert {r["method"] for r in rows} == set(METHODS) | {"parc_pca4"} and len(rows) == 12
    assert all(np.isfinite(r["score"]) for r in rows)
    assert [r["feature_seconds"] for r in rows if r["method"] == "random"] == [0.0, 0.0]
    assert all(r["feature_seconds"] > 0 for r in rows if r["method"] == "lfc")
    pca = {r["shots"]: r["score"] for r in rows if r["method"] == "parc_pca4"}
    plain = {r["shots"]: r["score"] for r in rows if r["method"] == "parc"}
    assert pca != plain


def test_projected_gradients_equal_a_per_sample_loop(setup):
    """vmap'd gradients of the last conv layer, sketched, equal one backward pass per sample."""
    from torch.func import functional_call

    from data_prep.readers import PreparedDataset
    from selection.features import last_conv, projected_gradients
    from selection.scores.gradient import count_sketch
    from zoo_training.experts import load_expert

    model, _ = load_expert(setup / "expert.pt")
    data = PreparedDataset(setup / "data" / "toy").probe_set("5", "per_class_10")
    got = projected_gradients(model, data, dim=50, seed=3, batch_size=4)
    name = last_conv(model)
    weight = dict(model.named_parameters())[name]
    r = torch.randn(5, generator=torch.Generator().manual_seed(3), dtype=weight.dtype) / 5**0.5
    loop = []
    for i in range(len(data)):
        images, _ = data.batch(torch.tensor([i]))
        w = weight.detach().clone().requires_grad_(True)
        (functional_call(model, {name: w}, (images,))[0] @ r).backward()
        loop.append(w.grad.flatten().double().numpy())
    np.testing.assert_allclose(got, count_sketch(np.stack(loop), 50, 3), rtol=1e-4, atol=1e-6)


def test_overlapping_probe_sets_share_one_forward_pass(tmp_path, setup):
    """Each image of a shot setting's probe sets goes through the expert once; every cache holds what a
    forward pass over that probe set alone gives, in its order, with its share of the seconds."""
    from data_prep.readers import PreparedDataset
    from selection.features import extract
    from zoo_training.experts import load_expert

    prepare(TARGET, tmp_path / "data" / "toy", ["full"], probe_per_class=4, seed=0, ablation_per_class=[8],
            parc_draws=1, parc_size=9)
    cfg = _cfg(setup, "selection", data_root=str(tmp_path / "data"), shots=["full"], cache_dir=str(tmp_path / "cache"),
               batch_size=5, methods=["lfc"], probe_set="per_class_4", lgc_dim=0, out=str(tmp_path / "s.json"))
    paths = write_caches(cfg)
    dataset = PreparedDataset(tmp_path / "data" / "toy")
    model, _ = load_expert(setup / "expert.pt")
    names = dataset.probe_names("full")
    assert {"per_class_4", "per_class_8", "all", "parc_draw0"} <= set(names) and len(paths) == len(names)
    for name in names:
        data = dataset.probe_set("full", name)
        alone, probs = extract(model, data, 5)
        with np.load(tmp_path / "cache" / "toy" / "full" / f"{name}.npz") as cache:
            np.testing.assert_allclose(cache["features"], alone, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(cache["probs"], probs, rtol=1e-5, atol=1e-7)
            np.testing.assert_array_equal(cache["labels"], data.labels.numpy())
            assert cache["seconds"] > 0


@pytest.mark.parametrize("options", [
    dict(kernel_size=1),
    dict(kernel_size=3, padding=1),
    dict(kernel_size=3, stride=2, padding=2, dilation=2, groups=2),
    dict(kernel_size=(2, 3), padding="same", padding_mode="reflect"),
    dict(kernel_size=3, padding=1, padding_mode="circular", groups=4, bias=False),
])
def test_per_sample_conv_weight_gradients_equal_autograd_per_sample(options):
    """LGC's per-sample rule (inputs unfolded against the output gradient) against one backward per sample."""
    from selection.features import _conv_weight_grads

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 8, **options).double()
    x = torch.randn(3, 4, 7, 9, dtype=torch.float64)
    g_out = torch.randn_like(conv(x))
    expected = []
    for i in range(3):
        conv.zero_grad()
        (conv(x[i:i + 1]) * g_out[i:i + 1]).sum().backward()
        expected.append(conv.weight.grad.clone())
    torch.testing.assert_close(_conv_weight_grads(conv, x, g_out), torch.stack(expected), rtol=1e-10, atol=1e-12)


def test_unknown_method_or_option_is_named(setup):
    cfg = _cfg(setup, "selection", cache_dir=str(setup / "cache"), methods=["lfc", "magic"], out=str(setup / "x.json"))
    with pytest.raises(SelectionError, match="magic"):
        score_expert(cfg)
    cfg = _cfg(setup, "selection", cache_dir=str(setup / "cache"), methods=["lfc"],
               variants={"v": {"score": "leep", "options": {"k": 1}}}, out=str(setup / "x.json"))
    with pytest.raises(SelectionError, match="no option"):
        score_expert(cfg)


def test_user_score_plugin_registers_and_scores():
    """The README's example: one file, one @register'ed function, then usable by name."""
    from selection.scores import SCORES, compute_score, load_plugins

    path = Path(__file__).resolve().parents[1] / "examples" / "my_scores.py"
    load_plugins([path])
    assert "class_margin" in SCORES
    assert load_plugins([path]) == []  # loading twice is harmless
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 10)
    apart = rng.normal(size=(30, 4)) + 5.0 * labels[:, None]
    mixed = rng.normal(size=(30, 4))
    assert compute_score("class_margin", features=apart, labels=labels) > compute_score(
        "class_margin", features=mixed, labels=labels)


def test_a_failing_score_is_recorded_and_the_others_survive(setup):
    """A score that raises on a cache is recorded as failed with its message; the caches and every
    other score of the expert are kept (issue: one broken score cost the whole selection job)."""
    from selection.scores.registry import SCORES, register

    @register("raises_on_five_shots")
    def raises_on_five_shots(*, features, labels) -> float:
        if len(labels) < 30:
            raise RuntimeError("not enough images")
        return float(len(labels))

    @register("nan_on_full")
    def nan_on_full(*, features, labels) -> float:
        return float("nan") if len(labels) >= 30 else 1.0

    try:
        cfg = _cfg(setup, "selection", cache_dir=str(setup / "cache"), methods=["lfc", "raises_on_five_shots", "nan_on_full"],
                   out=str(setup / "failing.json"))
        write_caches(cfg)
        rows = score_expert(cfg)
    finally:
        SCORES.pop("raises_on_five_shots")
        SCORES.pop("nan_on_full")
    record = json.loads((setup / "failing.json").read_text())
    assert {(r["method"], r["shots"]) for r in rows} == {("lfc", "full"), ("lfc", "5"), ("raises_on_five_shots", "full"),
                                                         ("nan_on_full", "full"), ("nan_on_full", "5")}
    failed = {(f["method"], f["shots"]): f["error"] for f in record["failures"]}
    assert failed.pop(("raises_on_five_shots", "5")) == "RuntimeError: not enough images"
    # a NaN score keeps its row and is said, not dropped without a word
    assert list(failed) == [("nan_on_full", "full")] and failed[("nan_on_full", "full")].startswith("NonFiniteScore")
    assert (setup / "cache" / "toy" / "5" / "per_class_10.npz").exists()


def test_a_variant_reads_the_probe_network_it_names(setup):
    """Plain rsa / dds read the first probe network's features (probe_models/resnet18/...), a variant
    with `probe_network: alexnet` those under probe_models/alexnet/; a network not among the job's
    probe networks, or on a score that reads none, is named."""
    from selection.run import run_method

    probe_dir, rng = setup / "probe_networks", np.random.default_rng(0)
    cfg = _cfg(setup, "selection", cache_dir=str(setup / "cache"), methods=["rsa", "dds"], probe_dir=str(probe_dir),
               probe_network_names=["resnet18", "alexnet"], out=str(setup / "probe.json"),
               variants={"rsa_alexnet": {"score": "rsa", "probe_network": "alexnet"},
                         "dds_alexnet": {"score": "dds", "options": {"pca_dim": 4}, "probe_network": "alexnet"}})
    write_caches(cfg)
    probe = {}
    for network, width in (("resnet18", 8), ("alexnet", 4096)):
        for shots, n in (("full", 30), ("5", 15)):
            path = probe_dir / network / "toy" / shots / "per_class_10.npz"
            path.parent.mkdir(parents=True, exist_ok=True)
            probe[network, shots] = rng.normal(size=(n, width))
            np.savez(path, probe_features=probe[network, shots])
    rows = {(r["method"], r["shots"]): r["score"] for r in score_expert(cfg)}
    assert len(rows) == 8
    for shots in ("full", "5"):
        with np.load(setup / "cache" / "toy" / shots / "per_class_10.npz") as cache:
            x = {"features": cache["features"], "labels": cache["labels"]}
        for method, score, options, network in (("rsa", "rsa", {}, "resnet18"), ("dds", "dds", {}, "resnet18"),
                                                ("rsa_alexnet", "rsa", {}, "alexnet"),
                                                ("dds_alexnet", "dds", {"pca_dim": 4}, "alexnet")):
            inputs = {**x, "probe_features": probe[network, shots]} if score == "rsa" else \
                {"features": x["features"], "probe_features": probe[network, shots]}
            assert rows[method, shots] == run_method(score, options, inputs), (method, shots)
        assert rows["rsa", shots] != rows["rsa_alexnet", shots]
    bad = _cfg(setup, "selection", cache_dir=str(setup / "cache"), methods=["rsa"], probe_dir=str(probe_dir),
               variants={"rsa_vgg": {"score": "rsa", "probe_network": "vgg16"}}, out=str(setup / "x.json"))
    with pytest.raises(SelectionError, match=r"probe_network 'vgg16' is not among the probe networks \['resnet18'\]"):
        score_expert(bad)
    bad = _cfg(setup, "selection", cache_dir=str(setup / "cache"), methods=["rsa"],
               variants={"leep_alexnet": {"score": "leep", "probe_network": "alexnet"}}, out=str(setup / "x.json"))
    with pytest.raises(SelectionError, match="is for scores that read probe-network features"):
        score_expert(bad)


def test_a_variant_runs_only_on_the_probe_sets_it_names(setup):
    """A variant's `probe_sets` (names, or parc_draws for every PARC draw) keeps it off every other probe
    set: e.g. PARC's reference H-score (a pinv of the d x d covariance) only where PARC's tables read it."""
    from selection.run import method_table

    cfg = _cfg(setup, "selection", cache_dir=str(setup / "cache"), methods=["leep"], out=str(setup / "sets.json"),
               variants={"leep_main": {"score": "leep", "probe_sets": ["per_class_10"]},
                         "leep_draws": {"score": "leep", "probe_sets": ["parc_draws"]}})
    write_caches(cfg)
    caches = sorted((setup / "cache" / "toy").glob("*/*.npz"))
    rows = score_expert(cfg)
    ran = lambda m: sorted((r["shots"], r["probe"]) for r in rows if r["method"] == m)  # noqa: E731
    assert ran("leep") == sorted((p.parent.name, p.stem) for p in caches)
    assert ran("leep_main") == [s for s in ran("leep") if s[1] == "per_class_10"] != []
    assert ran("leep_draws") == [s for s in ran("leep") if s[1].startswith("parc_draw")]
    method = method_table([], {"m": {"score": "leep", "probe_sets": ["parc_draws", "all"]}})["m"]
    assert method.runs_on("parc_draw3") and method.runs_on("all") and not method.runs_on("per_class_25")
    assert method_table(["leep"], {})["leep"].runs_on("per_class_25")
