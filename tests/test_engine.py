"""The shared training engine: determinism, step decay, and resume after a kill."""
import pytest
import torch

from data_prep.readers import ImageArrays
from conftest import kill_training_in_epoch
from zoo_training.architectures import build_model, depth, penultimate_features
from zoo_training.engine import SGDSchedule, fit, milestones_from_fractions, shuffled_batches
from zoo_training.experts import backbone_state, load_expert, new_head, restore_backbone, save_expert

ARCH = {"family": "densenet", "kwargs": {"growth_rate": 4, "block_config": [1, 1], "bn_size": 2}}


def _data(n=48, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ImageArrays(torch.randint(0, 256, (n, 16, 16, 3), generator=g, dtype=torch.uint8), torch.arange(n) % classes)


def _model(seed=0):
    torch.manual_seed(seed)
    return build_model(ARCH["family"], 3, kwargs=ARCH["kwargs"])


SCHEDULE = SGDSchedule(lr=0.05, epochs=4, milestones=(2, 3), batch_size=16, nesterov=True)


def test_same_seed_same_weights():
    a, b = _model(), _model()
    fit(a, _data(), SCHEDULE, seed=1)
    fit(b, _data(), SCHEDULE, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_step_decay_follows_milestones():
    result = fit(_model(), _data(), SCHEDULE, seed=1)
    assert [h["lr"] for h in result["history"]] == pytest.approx([0.05, 0.005, 0.0005, 0.0005])
    assert milestones_from_fractions(30, [0.5, 0.8333333]) == (15, 25)
    assert milestones_from_fractions(6, [0.5, 0.83]) == (3, 5)


def test_killed_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    reference = _model()
    fit(reference, _data(), SCHEDULE, seed=1)

    checkpoint = tmp_path / "last.pt"
    kill_training_in_epoch(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        fit(_model(), _data(), SCHEDULE, seed=1, checkpoint=checkpoint)
    monkeypatch.undo()
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 2

    resumed = _model(seed=99)  # weights come from the checkpoint, not from this init
    result = fit(resumed, _data(), SCHEDULE, seed=1, checkpoint=checkpoint)
    assert [h["epoch"] for h in result["history"]] == [1, 2, 3, 4]
    assert all(torch.equal(x, y) for x, y in zip(reference.state_dict().values(), resumed.state_dict().values()))


def test_checkpoint_of_another_schedule_is_refused(tmp_path):
    checkpoint = tmp_path / "last.pt"
    fit(_model(), _data(), SGDSchedule(lr=0.05, epochs=1, milestones=(), batch_size=16), seed=1, checkpoint=checkpoint)
    with pytest.raises(ValueError, match="another schedule"):
        fit(_model(), _data(), SCHEDULE, seed=1, checkpoint=checkpoint)


def test_expert_round_trip_and_new_head(tmp_path):
    model = _model()
    save_expert(tmp_path / "model.pt", model, ARCH, 3, expert="densenet-x")
    loaded, meta = load_expert(tmp_path / "model.pt")
    assert meta["expert"] == "densenet-x"
    images, _ = _data().batch(torch.arange(4))
    model.eval(), loaded.eval()
    assert torch.equal(model(images), loaded(images))
    features, logits = penultimate_features(new_head(loaded, 7, seed=0), images)
    assert logits.shape == (4, 7) and features.shape[0] == 4
    assert depth(loaded) > 2


def test_restore_backbone_gives_back_the_expert_as_loaded():
    """Fine-tuning runs one after another on one module (finetune.run): after a run on 3 classes,
    restoring the backbone and a new 5-class head trains exactly as a fresh copy of the expert does."""
    import copy

    expert = _model()
    fresh = copy.deepcopy(expert)
    pristine = backbone_state(expert)
    fit(new_head(expert, 3, seed=0), _data(), SCHEDULE, seed=1)
    assert not torch.equal(expert.state_dict()["features.conv0.weight"], pristine["features.conv0.weight"])
    data5 = _data(classes=5, seed=2)
    a = fit(new_head(restore_backbone(expert, pristine), 5, seed=0), data5, SCHEDULE, seed=1, test=data5)
    b = fit(new_head(fresh, 5, seed=0), data5, SCHEDULE, seed=1, test=data5)
    assert a["test_accuracy"] == b["test_accuracy"]
    assert all(torch.equal(x, y) for x, y in zip(expert.state_dict().values(), fresh.state_dict().values()))
    with pytest.raises(RuntimeError, match="restore_backbone"):
        restore_backbone(expert, {**pristine, "not.a.key": torch.zeros(1)})


def test_a_diverged_model_has_no_accuracy():
    """NaN outputs are no signal: evaluate gives NaN, not the argmax-of-NaN accuracy."""
    from zoo_training.engine import evaluate

    data = ImageArrays(torch.rand(6, 3, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2]))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 3))
    assert evaluate(model, data) == evaluate(model, data)  # finite: a number
    with torch.no_grad():
        model[1].weight.fill_(float("nan"))
    assert evaluate(model, data) != evaluate(model, data)  # NaN


def test_best_point_of_the_grid_skips_a_diverged_lr():
    from finetune.run import best_per_setting

    rows = [{"target": "t", "shots": "full", "lr": lr, "test_accuracy": acc}
            for lr, acc in ((0.01, float("nan")), (0.005, 41.0), (0.001, 40.0))]
    assert best_per_setting(rows) == [{"target": "t", "shots": "full", "lr": 0.005, "test_accuracy": 41.0}]


def test_drop_last_drops_a_short_last_batch_unless_it_is_the_only_one():
    sizes = lambda n, b, drop: [len(i) for _, i in shuffled_batches(n, b, torch.Generator().manual_seed(0), drop)]  # noqa: E731
    assert sizes(18, 8, False) == [8, 8, 2]  # the default: every image every epoch
    assert sizes(18, 8, True) == [8, 8]
    assert sizes(16, 8, True) == [8, 8] and sizes(15, 32, True) == [15]  # a 5-shot set smaller than one batch
    kept = torch.cat([i for _, i in shuffled_batches(18, 8, torch.Generator().manual_seed(0), True)])
    same = torch.cat([i for _, i in shuffled_batches(18, 8, torch.Generator().manual_seed(0), False)])[:16]
    assert torch.equal(kept, same)  # the same permutation, cut shorter
