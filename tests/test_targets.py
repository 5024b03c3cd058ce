from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from rlrun.config import OptimizerConfig
from rlrun.training.optim import make_optimizer
from rlrun.training.targets import TargetSync, hard_update


def _linear(weight: list[float], bias: float) -> nn.Linear:
    layer = nn.Linear(len(weight), 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([weight]))
        layer.bias.fill_(bias)
    return layer


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    net(torch.randn(16, 3))  # training-mode forward fills the batch-norm statistics
    return net


def _assert_same_state(a: nn.Module, b: nn.Module) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


def test_soft_update_matches_hand_computed_polyak_average() -> None:
    target, source = _linear([0.0, 2.0], 1.0), _linear([4.0, -2.0], 3.0)

    TargetSync(target, source).soft(tau=0.5)
    assert torch.equal(target.weight, torch.tensor([[2.0, 0.0]]))
    assert torch.equal(target.bias, torch.tensor([2.0]))

    TargetSync(target, source).soft(tau=0.5)
    assert torch.equal(target.weight, torch.tensor([[3.0, -1.0]]))
    assert torch.equal(target.bias, torch.tensor([2.5]))

    TargetSync(target, source).soft(tau=0.25)
    assert torch.allclose(target.weight, torch.tensor([[3.25, -1.25]]))
    assert torch.equal(source.weight, torch.tensor([[4.0, -2.0]])), "source must not change"


def test_soft_update_copies_buffers_and_keeps_target_out_of_autograd() -> None:
    target, source = _net(0), _net(1)
    TargetSync(target, source).soft(tau=0.1)
    for x, y in zip(target.buffers(), source.buffers(), strict=True):
        assert torch.equal(x, y)
    assert all(p.is_leaf and p.grad_fn is None for p in target.parameters())


def test_soft_update_with_tau_one_equals_hard_update() -> None:
    source = _net(0)
    soft_target, hard_target = _net(1), _net(1)
    TargetSync(soft_target, source).soft(tau=1.0)
    hard_update(hard_target, source)
    _assert_same_state(soft_target, hard_target)
    _assert_same_state(hard_target, source)


def test_soft_update_with_tau_zero_leaves_parameters() -> None:
    target, source = _net(0), _net(1)
    before = copy.deepcopy(target)
    TargetSync(target, source).soft(tau=0.0)
    for x, y in zip(target.parameters(), before.parameters(), strict=True):
        assert torch.equal(x, y)


def test_updates_reject_mismatched_modules_and_bad_tau() -> None:
    with pytest.raises(ValueError):
        TargetSync(_linear([1.0], 0.0), _net(0)).soft(tau=0.5)
    with pytest.raises(ValueError):
        hard_update(_linear([1.0], 0.0), _net(0))
    with pytest.raises(ValueError):
        TargetSync(_net(0), _net(1)).soft(tau=1.5)


def test_target_sync_follows_the_source_after_its_optimizer_repacks_and_steps_it() -> None:
    """TargetSync lists the tensors once; the FlatOptimizer made afterwards rebinds the source's
    parameters into one flat buffer, and every later sync must still read the live values."""
    source, target = _net(0), _net(1)
    sync = TargetSync(target, source)
    optimizer = make_optimizer(source.parameters(), OptimizerConfig(lr=0.1))
    for _ in range(3):
        optimizer.zero_grad()
        source(torch.randn(16, 3)).square().mean().backward()
        optimizer.step()
        sync.hard()
        _assert_same_state(target, source)
    before = [p.clone() for p in target.parameters()]
    optimizer.zero_grad()
    source(torch.randn(16, 3)).square().mean().backward()
    optimizer.step()
    sync.soft(0.5)
    for old, new, live in zip(before, target.parameters(), source.parameters(), strict=True):
        assert torch.allclose(new, 0.5 * old + 0.5 * live)
