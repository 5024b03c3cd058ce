"""Optimizers over flat parameters match torch.optim on the unflattened network."""


import pytest
import torch
from torch import nn

from rlrun.config import OptimizerConfig
from rlrun.training.optim import NonFiniteError, UnlinkedParameterError, anneal_lr, make_optimizer


def twin_networks():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    ref = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    ref.load_state_dict(net.state_dict())
    return net, ref


REFERENCE = {
    "adam": lambda p, c: torch.optim.Adam(p, lr=c.lr, eps=c.eps, betas=c.betas, weight_decay=c.weight_decay),
    "adamw": lambda p, c: torch.optim.AdamW(p, lr=c.lr, eps=c.eps, betas=c.betas, weight_decay=c.weight_decay),
    "sgd": lambda p, c: torch.optim.SGD(p, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay),
    "rmsprop": lambda p, c: torch.optim.RMSprop(p, lr=c.lr, eps=c.eps, alpha=c.alpha, momentum=c.momentum,
                                                weight_decay=c.weight_decay),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_flat_optimizer_matches_torch(name, weight_decay):
    cfg = OptimizerConfig(name=name, lr=0.05, weight_decay=weight_decay, momentum=0.5 if name != "adam" else 0.0)
    net, ref = twin_networks()
    optimizer = make_optimizer(net.parameters(), cfg)
    reference = REFERENCE[name](ref.parameters(), cfg)
    x = torch.randn(16, 3)
    for _ in range(5):
        optimizer.zero_grad()
        net(x).square().mean().backward()
        norm = optimizer.clip_grad_norm(0.1)
        optimizer.step()
        reference.zero_grad()
        ref(x).square().mean().backward()
        ref_norm = torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.1)
        reference.step()
        torch.testing.assert_close(norm, ref_norm)
    for a, b in zip(net.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_flat_optimizer_state_round_trip_and_views():
    net, _ = twin_networks()
    cfg = OptimizerConfig(lr=0.01)
    optimizer = make_optimizer(net.parameters(), cfg)
    net(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    state = optimizer.state_dict()
    net2, _ = twin_networks()
    optimizer2 = make_optimizer(net2.parameters(), cfg)
    net2.load_state_dict(net.state_dict())
    optimizer2.load_state_dict(state)
    for model, opt in ((net, optimizer), (net2, optimizer2)):
        opt.zero_grad()
        model(torch.ones(2, 3)).sum().backward()
        opt.step()
    for a, b in zip(net.parameters(), net2.parameters()):
        torch.testing.assert_close(a, b)
    assert all(p.data_ptr() != 0 and p.grad is not None for p in net.parameters())
    with pytest.raises(ValueError):
        make_optimizer(net.parameters(), cfg)


def test_clip_grad_norm_covers_exactly_the_optimizers_parameters():
    net, ref = twin_networks()
    optimizer = make_optimizer(net[2].parameters(), OptimizerConfig())  # the last layer only
    for model in (net, ref):
        model(torch.randn(8, 3, generator=torch.Generator().manual_seed(1))).sum().backward()
    expected = torch.nn.utils.clip_grad_norm_(ref[2].parameters(), 0.05)
    assert float(optimizer.clip_grad_norm(0.05)) == pytest.approx(float(expected), rel=1e-5)
    for mine, theirs in zip(net.parameters(), ref.parameters()):
        assert torch.allclose(mine.grad, theirs.grad, rtol=1e-5)


def test_linear_schedule_scales_each_optimizers_own_rate():
    actor = make_optimizer(nn.Linear(2, 2).parameters(), OptimizerConfig(lr=2.0))
    critic = make_optimizer(nn.Linear(2, 2).parameters(), OptimizerConfig(lr=1.0))
    assert [anneal_lr(actor, "linear", s, 100) for s in (0, 25, 100, 150)] == [2.0, 1.5, 0.0, 0.0]
    assert [anneal_lr(critic, "linear", s, 100) for s in (0, 25)] == [1.0, 0.75]
    assert critic.param_groups[0]["lr"] == 0.75
    assert anneal_lr(critic, "constant", 50, 100) == 1.0  # from the configured rate, not the last one


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_gradient_stops_or_is_skipped(bad):
    net, _ = twin_networks()
    optimizer = make_optimizer(net.parameters(), OptimizerConfig())
    net(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    params, moments = optimizer.flat.detach().clone(), optimizer.state_dict()["exp_avg"].clone()
    optimizer.zero_grad()
    (net(torch.ones(4, 3)).sum() * bad).backward()
    optimizer.name = "critic_optimizer"
    with pytest.raises(NonFiniteError, match="critic_optimizer"):
        optimizer.step()
    optimizer.skip_nonfinite = True
    optimizer.step()
    assert optimizer.skipped_steps == 1
    assert torch.equal(optimizer.flat.detach(), params)
    assert torch.equal(optimizer.state_dict()["exp_avg"], moments)
    optimizer.zero_grad()
    net(torch.ones(4, 3)).sum().backward()
    optimizer.step()  # a finite gradient steps again
    assert not torch.equal(optimizer.flat.detach(), params)


@pytest.mark.parametrize(
    "unlink",
    [lambda net: setattr(net[2].weight, "data", net[2].weight.detach().clone()),
     lambda net: setattr(net[0].bias, "grad", None),
     lambda net: net.double()],
    ids=["data replaced", "grad replaced", "moved to float64"],
)
def test_step_refuses_a_parameter_that_left_the_flat_buffer(unlink):
    net, _ = twin_networks()
    optimizer = make_optimizer(net.parameters(), OptimizerConfig())
    optimizer.name = "actor_optimizer"
    net(torch.ones(4, 3)).sum().backward()
    optimizer.step()  # linked: steps
    net[2].weight.data.copy_(torch.zeros_like(net[2].weight))  # in place: still linked
    optimizer.step()
    unlink(net)
    flat = optimizer.flat.detach().clone()
    with pytest.raises(UnlinkedParameterError, match="of actor_optimizer no longer lives") as error:
        optimizer.step()
    assert "\n" not in str(error.value) and "build the optimizer after moving" in str(error.value)
    assert torch.equal(optimizer.flat.detach(), flat)  # nothing stepped
