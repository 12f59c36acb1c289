"""Which Model to Transfer? (analysis.which_model): regret at budgets 1-2 and the fraction of
targets with zero regret per budget, per strategy and model pool, on the small benchmark."""
import pytest

import analysis_fixtures as fx
from analysis.strategies import arch_pool
from analysis.which_model import p_zero_regret, wm_zero_regret


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    fx.render(out, ["wm_regret_b12", "wm_zero_regret"])
    return out


def test_which_model_regret_and_zero_regret(rendered):
    out = rendered
    reg = fx.read(out, "wm_regret_b12")
    assert set(reg["strategy"]) == {"task_agnostic", "logistic", "knn_loo", "hybrid_logistic", "hybrid_knn_loo"}
    assert set(reg["budget"]) == {1, 2} and set(reg["pool"]) == {"all"}
    r = reg[(reg["shots"] == "full")].set_index(["strategy", "target", "budget"])["rel_regret"]
    assert r[("logistic", "t2", 1)] == pytest.approx(5 / 35)  # (70 - 65) / (100 - 65)
    assert r[("logistic", "t2", 2)] == 0 and r[("knn_loo", "t3", 1)] == 0
    z = fx.read(out, "wm_zero_regret")
    z = z[z["shots"] == "full"].set_index(["strategy", "budget"])["zero_regret_fraction"]
    assert [z[("logistic", b)] for b in (1, 2, 3)] == pytest.approx([1 / 3, 2 / 3, 1])
    assert [z[("hybrid_logistic", b)] for b in (1, 2, 3)] == pytest.approx([1 / 3, 1 / 3, 1])
    assert [z[("task_agnostic", b)] for b in (1, 2)] == pytest.approx([1 / 3, 1 / 3])
    assert z[("random", 1)] == pytest.approx(1 / 6) and z[("random", 6)] == 1
    assert z[("knn_loo", 1)] == 1


def test_pools_option(tmp_path):
    ctx = fx.context(pools={"all": None, "resnet": arch_pool("resnet")})
    z = wm_zero_regret(ctx, tmp_path / "z.png")
    assert set(z["pool"]) == {"all", "resnet"}
    res = z[(z["pool"] == "resnet") & (z["shots"] == "full")].set_index(["strategy", "budget"])["zero_regret_fraction"]
    assert res[("random", 1)] == pytest.approx(1 / 4)  # 4 resnet experts, one best per target


def test_p_zero_regret_ties():
    assert p_zero_regret([3, 2, 1], [1, 5, 2], 1) == 0 and p_zero_regret([3, 2, 1], [1, 5, 2], 2) == 1
    assert p_zero_regret([0, 0, 0, 0], [1, 2, 3, 4], 2) == pytest.approx(1 / 2)  # 1 - C(3,2)/C(4,2)
    assert p_zero_regret([1, 0, 0, 0], [4, 2, 3, 4], 1) == 1


