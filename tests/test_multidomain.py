"""Multi-domain ResNet expert (Shared / Multi-BN / Adapter): key sets, domain switching,
single-domain experts, the balanced epoch plan, and a few training steps."""
import timm
import pytest
import torch
import yaml
from torch import nn

from conftest import CONFIGS
from zoo_training.architectures import build_model, penultimate_features
from zoo_training.experts import new_head
from zoo_training.multidomain import (
    DOMAIN_MODULES,
    VARIANTS,
    ParallelAdapterConv2d,
    domain_epoch,
    domain_expert,
    parameter_groups,
    remap_state_dict,
    set_domain,
    to_multi_domain,
)

MINI = yaml.safe_load((CONFIGS / "arch" / "resnet_mini.yaml").read_text())
CLASSES = [3, 5]


def _mini(num_classes=3, seed=0, block="basic"):
    torch.manual_seed(seed)
    return build_model("resnet", num_classes, kwargs={**MINI["kwargs"], "block": block})


def _multi(variant, seed=0):
    return to_multi_domain(_mini(seed=seed), variant, CLASSES)


def _resnet101_meta():
    with torch.device("meta"):
        return timm.create_model("resnet101", pretrained=False)


def _images(n=4, seed=0):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _randomise(model, seed=0):
    """Make every domain differ: random BN statistics and affine, non-zero adapters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(0.1 * torch.randn(m.num_features, generator=g))
            if isinstance(m, ParallelAdapterConv2d):
                for a in m.adapters:
                    a.weight.copy_(0.1 * torch.randn(a.weight.shape, generator=g))
    return model


def _expected_keys(plain, variant, num_domains):
    """The key set built independently of the conversion code, from the plain network's modules."""
    bns = {n for n, m in plain.named_modules() if isinstance(m, nn.BatchNorm2d)}
    block_convs = {
        n for n, m in plain.named_modules()
        if n.startswith("layer") and isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)
    }
    keys = set()
    for key in plain.state_dict():
        module, _, tensor = key.rpartition(".")
        if module == "fc":
            continue
        if variant != "shared" and module in bns:
            keys |= {f"{module}.bns.{d}.{tensor}" for d in range(num_domains)}
        else:
            keys.add(key)
    if variant == "adapter":
        keys |= {f"{c}.adapters.{d}.weight" for c in block_convs for d in range(num_domains)}
    keys |= {f"fc.heads.{d}.{t}" for d in range(num_domains) for t in ("weight", "bias")}
    return keys, len(bns), len(block_convs)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("arch", ["mini", "resnet101"])
def test_key_sets(arch, variant):
    make, num_domains = (_resnet101_meta, 8) if arch == "resnet101" else (_mini, 2)
    plain = make()
    keys, n_bn, n_conv3 = _expected_keys(plain, variant, num_domains)
    # ResNet-101: stem + 3 per bottleneck (33 blocks) + 4 projection shortcuts; one 3x3 per bottleneck
    assert (n_bn, n_conv3) == ((104, 33) if arch == "resnet101" else (13, 8))
    model = to_multi_domain(make(), variant, [7] * num_domains)
    assert set(model.state_dict()) == keys

    # domain d's state has exactly the keys of the single-domain expert
    single = make() if variant != "adapter" else to_multi_domain(make(), "adapter", [7])
    for d in (0, num_domains - 1):
        assert set(remap_state_dict(model.state_dict(), d)) == set(single.state_dict())


@pytest.mark.parametrize("variant", VARIANTS)
def test_parameter_groups(variant):
    model = _multi(variant)
    groups = parameter_groups(model)
    names = [n for n, _ in model.named_parameters()]
    assert sorted(groups["shared"] + sum(groups["domain"].values(), [])) == sorted(names)
    plain = _mini()
    backbone = {n for n, _ in plain.named_parameters() if not n.startswith("fc.")}
    convs = {n + ".weight" for n, m in plain.named_modules() if isinstance(m, nn.Conv2d)}
    # Shared: the whole backbone is w_s; otherwise the BatchNorms move to w_d and only convs stay shared
    assert set(groups["shared"]) == (backbone if variant == "shared" else convs)
    for d in (0, 1):
        domain = set(groups["domain"][d])
        assert {f"fc.heads.{d}.weight", f"fc.heads.{d}.bias"} <= domain
        n_bn = sum(".bns." in n for n in domain) // 2
        n_adapters = sum(".adapters." in n for n in domain)
        assert (n_bn, n_adapters) == {"shared": (0, 0), "multi_bn": (13, 0), "adapter": (13, 8)}[variant]
        assert all(f".{d}." in n for n in domain)


@pytest.mark.parametrize("block", ["basic", "bottleneck"])
@pytest.mark.parametrize("variant", ["multi_bn", "adapter"])
def test_conversion_preserves_the_function(variant, block):
    plain = _randomise(_mini(block=block)).eval()
    x = _images()
    model = to_multi_domain(_randomise(_mini(block=block)), variant, CLASSES).eval()
    for d in (0, 1):
        set_domain(model, d)
        torch.testing.assert_close(model.forward_features(x), plain.forward_features(x))
    if variant == "adapter":  # one adapter per 3x3 conv: two in a basic block, one in a bottleneck
        assert sum(isinstance(m, ParallelAdapterConv2d) for m in model.modules()) == (8 if block == "basic" else 4)


def test_set_domain_switches_statistics_and_output():
    model = _randomise(_multi("multi_bn"))
    x = _images()
    bn0, bn1 = model.layer2[0].bn1.bns
    before0, before1 = bn0.running_mean.clone(), bn1.running_mean.clone()
    set_domain(model, 1).train()
    with torch.no_grad():
        assert model(x).shape == (4, CLASSES[1])
    assert torch.equal(bn0.running_mean, before0) and not torch.equal(bn1.running_mean, before1)
    assert (bn0.num_batches_tracked.item(), bn1.num_batches_tracked.item()) == (0, 1)

    model.eval()
    with torch.no_grad():
        f1 = model.forward_features(x)
        bn1.running_mean += 1.0  # only domain 1's statistics move
        assert not torch.allclose(model.forward_features(x), f1)
        set_domain(model, 0)
        f0 = model.forward_features(x)
        assert model(x).shape == (4, CLASSES[0]) and not torch.allclose(f0, f1)
        bn1.running_mean += 1.0
        torch.testing.assert_close(model.forward_features(x), f0)
    with pytest.raises(IndexError):
        set_domain(model, 2)


@pytest.mark.parametrize("variant", VARIANTS)
def test_domain_expert_matches_multi_domain_net(variant):
    model = _randomise(_multi(variant)).eval()
    assert parameter_groups(model)["domain"][0]  # sanity: the model really is multi-domain
    x = _images()
    for d in (0, 1):
        with torch.no_grad():
            expected = set_domain(model, d)(x)
            expert = domain_expert(model, d)
            torch.testing.assert_close(expert(x), expected)
        assert not expert.training and expert.num_classes == CLASSES[d]
        domain_modules = [m for m in expert.modules() if isinstance(m, DOMAIN_MODULES)]
        if variant == "adapter":
            assert len(domain_modules) == 13 + 8 + 1
            assert all(len(next(m.children())) == 1 for m in domain_modules)  # bns / adapters / heads
        else:
            assert domain_modules == [] and type(expert.fc) is nn.Linear
            assert type(expert.layer1[0].bn1) is nn.BatchNorm2d
    # the expert owns its weights: fine-tuning it leaves the zoo model alone
    with torch.no_grad():
        expert.layer1[0].conv1.weight.zero_()
    assert model.layer1[0].conv1.weight.abs().sum() > 0
    # and it works with the fine-tuning helpers
    features, logits = penultimate_features(new_head(expert, 4, seed=0), x)
    assert features.shape == (4, 128) and logits.shape == (4, 4)


def test_domain_epoch_plan():
    sizes, cap, bs = [10, 250, 100], 100, 32
    plan = domain_epoch(sizes, cap, bs, torch.Generator().manual_seed(0))
    per_domain = {d: torch.cat([i for dd, i in plan if dd == d]) for d in range(3)}
    assert all(len(per_domain[d]) == cap for d in range(3))
    assert all(0 <= per_domain[d].min() and per_domain[d].max() < sizes[d] for d in range(3))
    assert len(per_domain[0].unique()) < cap  # small domain: with replacement
    assert len(per_domain[1].unique()) == cap  # large domain: without replacement
    assert sorted(per_domain[2].tolist()) == list(range(100))  # cap == size: each image once
    assert all(len(i) <= bs for _, i in plan) and len(plan) == 3 * 4
    domains = [d for d, _ in plan]
    assert domains != sorted(domains)  # batches interleave domains
    again = domain_epoch(sizes, cap, bs, torch.Generator().manual_seed(0))
    assert [(d, i.tolist()) for d, i in again] == [(d, i.tolist()) for d, i in plan]
    other = domain_epoch(sizes, cap, bs, torch.Generator().manual_seed(1))
    assert [(d, i.tolist()) for d, i in other] != [(d, i.tolist()) for d, i in plan]


@pytest.mark.parametrize("variant", VARIANTS)
def test_training_steps_reduce_loss_and_touch_one_domain(variant):
    model = _multi(variant).train()
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(8, 3, 32, 32, generator=g), torch.randint(n, (8,), generator=g)) for n in CLASSES]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    criterion = nn.CrossEntropyLoss()

    def total_loss():
        with torch.no_grad():
            return sum(criterion(set_domain(model, d)(x), y).item() for d, (x, y) in enumerate(data))

    def step(d, index):
        x, y = data[d]
        loss = criterion(set_domain(model, d)(x[index]), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    # steps on domain 0 move shared weights and domain 0's, never domain 1's (timm zero-inits each
    # block's last BN scale, so adapters get gradients from the second step on)
    params = dict(model.named_parameters())
    groups = parameter_groups(model)
    before = {n: p.detach().clone() for n, p in params.items()}
    for _ in range(2):
        step(0, torch.arange(8))
    assert all(torch.equal(params[n], before[n]) for n in groups["domain"][1])
    moved = {n for n in groups["domain"][0] if not torch.equal(params[n], before[n])}
    assert {"fc.heads.0.weight", "fc.heads.0.bias"} <= moved
    assert variant == "shared" or any(".bns." in n for n in moved)
    assert variant != "adapter" or any(".adapters." in n for n in moved)
    assert not torch.equal(params["layer1.0.conv1.weight"], before["layer1.0.conv1.weight"])

    start = total_loss()
    for epoch in range(5):
        for d, index in domain_epoch([8, 8], 8, 8, torch.Generator().manual_seed(epoch)):
            step(d, index)
    assert total_loss() < 0.7 * start
