"""Tests for rlrun.ops.trust_region; reference values are computed with independent loops."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Independent, Normal, kl_divergence

from rlrun.ops.trust_region import (
    backtracking_line_search,
    conjugate_gradient,
    explicit_fisher,
    fisher_vector_product_from_logprobs,
    flat_grad,
    flat_params,
    kl_hessian_vector_product,
    natural_step_size,
    set_flat_params,
    surrogate,
)

torch.set_num_threads(1)
POLICY_KINDS = ["categorical", "gaussian"]


class GaussianPolicy(nn.Module):
    """Diagonal Gaussian policy: linear mean, state-independent log-std (3 -> 2, 10 params)."""

    def __init__(self) -> None:
        super().__init__()
        self.mean = nn.Linear(3, 2)
        self.log_std = nn.Parameter(torch.tensor([-0.3, 0.2]))

    def forward(self, obs: Tensor) -> Distribution:
        return Independent(Normal(self.mean(obs), self.log_std.exp()), 1)


class CategoricalPolicy(nn.Module):
    """Softmax policy over 2 actions with linear logits (3 -> 2, 8 params)."""

    def __init__(self) -> None:
        super().__init__()
        self.logits = nn.Linear(3, 2)

    def forward(self, obs: Tensor) -> Distribution:
        return Categorical(logits=self.logits(obs))


def make_policy(kind: str, n: int, seed: int = 0) -> tuple[nn.Module, Tensor, Tensor]:
    """A float64 tiny policy, ``n`` random states and actions sampled from the policy."""
    torch.manual_seed(seed)
    policy = (CategoricalPolicy() if kind == "categorical" else GaussianPolicy()).double()
    obs = torch.randn(n, 3, dtype=torch.float64)
    with torch.no_grad():
        actions = policy(obs).sample()
    return policy, obs, actions


def kl_fn_for(policy: nn.Module, obs: Tensor) -> Callable[[], Tensor]:
    """Mean KL(frozen old policy || current policy) over ``obs``, old policy fixed now."""
    with torch.no_grad():
        old = policy(obs)
    return lambda: kl_divergence(old, policy(obs)).mean()


def grad_vector(scalar: Tensor, params: list[Tensor]) -> Tensor:
    grads = torch.autograd.grad(scalar, params, retain_graph=True)
    return torch.cat([g.reshape(-1) for g in grads])


def empirical_fisher_loop(policy: nn.Module, obs: Tensor, actions: Tensor) -> Tensor:
    """(1/N) sum_i g_i g_i^T, one autograd call per sampled (s_i, a_i)."""
    params = list(policy.parameters())
    total = 0.0
    for s, a in zip(obs, actions):
        g = grad_vector(policy(s.unsqueeze(0)).log_prob(a.unsqueeze(0))[0], params)
        total = total + torch.outer(g, g)
    return total / len(obs)


def exact_fisher_loop(kind: str, policy: nn.Module, obs: Tensor) -> Tensor:
    """Average over states of the Fisher with the expectation over actions taken exactly."""
    params = list(policy.parameters())
    total = 0.0
    for s in obs:
        dist = policy(s.unsqueeze(0))
        if kind == "categorical":  # sum_a pi(a|s) g(s,a) g(s,a)^T
            for a in range(2):
                action = torch.tensor([a])
                log_prob = dist.log_prob(action)[0]
                g = grad_vector(log_prob, params)
                total = total + log_prob.detach().exp() * torch.outer(g, g)
        else:  # J^T M J of section 7.8.1 with outputs (mu, log_std), M = diag(1/sigma^2, 2)
            outputs = torch.cat([dist.base_dist.loc[0], policy.log_std])
            jac = torch.stack([grad_vector(o, params) for o in outputs])
            sigma2 = policy.log_std.detach().exp() ** 2
            m = torch.diag(torch.cat([1.0 / sigma2, torch.full_like(sigma2, 2.0)]))
            total = total + jac.T @ m @ jac
    return total / len(obs)


def test_flat_params_round_trip() -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    params = list(net.parameters())
    flat = flat_params(params)
    assert flat.shape == (3 * 4 + 4 + 4 * 2 + 2,)
    assert torch.equal(flat[:12], params[0].detach().reshape(-1))
    new = torch.arange(flat.numel(), dtype=flat.dtype)
    set_flat_params(params, new)
    assert torch.equal(flat_params(params), new)
    assert torch.equal(params[0].detach(), new[:12].view(4, 3))
    assert [p.shape for p in params] == [(4, 3), (4,), (2, 4), (2,)]
    set_flat_params(params, flat)
    assert torch.equal(flat_params(params), flat)
    with pytest.raises(ValueError):
        set_flat_params(params, torch.zeros(flat.numel() + 1))


def test_flat_grad_matches_backward_and_zero_fills_unused() -> None:
    torch.manual_seed(0)
    used, unused = nn.Linear(3, 2), nn.Linear(3, 2)
    params = list(used.parameters()) + list(unused.parameters())
    loss = used(torch.randn(5, 3)).pow(2).sum()
    grad = flat_grad(loss, params, retain_graph=True)
    loss.backward()
    expected = torch.cat([used.weight.grad.reshape(-1), used.bias.grad, torch.zeros(8)])
    assert torch.allclose(grad, expected)


def test_conjugate_gradient_solves_random_spd_system() -> None:
    torch.manual_seed(0)
    m = torch.randn(20, 20, dtype=torch.float64)
    a = m @ m.T + 0.5 * torch.eye(20, dtype=torch.float64)
    b = torch.randn(20, dtype=torch.float64)
    x = conjugate_gradient(lambda v: a @ v, b, iters=40, residual_tol=1e-24)
    expected = torch.linalg.solve(a, b)
    assert torch.allclose(x, expected, atol=1e-6, rtol=0.0)


def test_conjugate_gradient_zero_rhs_returns_zero() -> None:
    x = conjugate_gradient(lambda v: 2.0 * v, torch.zeros(5))
    assert torch.equal(x, torch.zeros(5))


@pytest.mark.parametrize("kind", POLICY_KINDS)
def test_kl_hessian_vector_product_equals_exact_fisher(kind: str) -> None:
    policy, obs, _ = make_policy(kind, n=12)
    params = list(policy.parameters())
    hvp = kl_hessian_vector_product(kl_fn_for(policy, obs), params, damping=0.0)
    fisher = exact_fisher_loop(kind, policy, obs)
    for v in torch.randn(3, fisher.shape[0], dtype=torch.float64):
        assert torch.allclose(hvp(v), fisher @ v, atol=1e-10)


@pytest.mark.parametrize("kind", POLICY_KINDS)
def test_logprob_fisher_routes_equal_empirical_fisher(kind: str) -> None:
    policy, obs, actions = make_policy(kind, n=12)
    params = list(policy.parameters())
    logprob_fn = lambda: policy(obs).log_prob(actions)
    fisher = empirical_fisher_loop(policy, obs, actions)
    fvp = fisher_vector_product_from_logprobs(logprob_fn, params, damping=0.0)
    dense = explicit_fisher(logprob_fn, params)
    assert torch.allclose(dense, fisher, atol=1e-10)
    assert torch.equal(dense, dense.T)
    for v in torch.randn(3, fisher.shape[0], dtype=torch.float64):
        assert torch.allclose(fvp(v), fisher @ v, atol=1e-10)
        assert torch.allclose(dense @ v, fisher @ v, atol=1e-10)


@pytest.mark.parametrize("kind", POLICY_KINDS)
def test_damping_adds_damping_times_v(kind: str) -> None:
    policy, obs, actions = make_policy(kind, n=8)
    params = list(policy.parameters())
    kl_fn = kl_fn_for(policy, obs)
    logprob_fn = lambda: policy(obs).log_prob(actions)
    v = torch.randn(sum(p.numel() for p in params), dtype=torch.float64)
    for build, fn in [(kl_hessian_vector_product, kl_fn),
                      (fisher_vector_product_from_logprobs, logprob_fn)]:
        plain, damped = build(fn, params, 0.0)(v), build(fn, params, 0.1)(v)
        assert torch.allclose(damped - plain, 0.1 * v, atol=1e-12)


@pytest.mark.parametrize("kind", POLICY_KINDS)
def test_sampled_fisher_matches_kl_hessian_in_expectation(kind: str) -> None:
    policy, obs, _ = make_policy(kind, n=4)
    obs = obs.repeat(50_000, 1)  # many sampled actions per state
    with torch.no_grad():
        actions = policy(obs).sample()
    params = list(policy.parameters())
    hvp = kl_hessian_vector_product(kl_fn_for(policy, obs), params, damping=0.0)
    fvp = fisher_vector_product_from_logprobs(lambda: policy(obs).log_prob(actions), params, 0.0)
    for v in torch.randn(3, sum(p.numel() for p in params), dtype=torch.float64):
        exact, sampled = hvp(v), fvp(v)
        assert (sampled - exact).norm() < 0.05 * exact.norm()


def test_conjugate_gradient_with_kl_hvp_gives_damped_natural_gradient() -> None:
    policy, obs, _ = make_policy("gaussian", n=12)
    params = list(policy.parameters())
    hvp = kl_hessian_vector_product(kl_fn_for(policy, obs), params, damping=0.01)
    g = torch.randn(10, dtype=torch.float64)
    x = conjugate_gradient(hvp, g, iters=30, residual_tol=1e-20)
    fisher = exact_fisher_loop("gaussian", policy, obs) + 0.01 * torch.eye(10, dtype=torch.float64)
    assert torch.allclose(x, torch.linalg.solve(fisher, g), atol=1e-6)


def test_natural_step_size_puts_quadratic_kl_on_the_boundary() -> None:
    policy, obs, _ = make_policy("categorical", n=12)
    params = list(policy.parameters())
    fisher = exact_fisher_loop("categorical", policy, obs)
    x = torch.randn(8, dtype=torch.float64)
    for max_kl in (1e-2, 1e-4):
        step = natural_step_size(x, fisher @ x, max_kl) * x
        assert torch.isclose(0.5 * step @ fisher @ step, torch.tensor(max_kl, dtype=torch.float64))
    # For a small trust region the true KL of the step is close to its quadratic model.
    kl_fn, old = kl_fn_for(policy, obs), flat_params(params)
    set_flat_params(params, old + step)
    with torch.no_grad():
        assert abs(kl_fn().item() - 1e-4) < 0.05 * 1e-4


def test_natural_step_size_is_zero_for_zero_direction() -> None:
    assert natural_step_size(torch.zeros(3), torch.zeros(3), 0.01) == 0.0


class FakeObjective:
    """Parameters ``old + step``; KL grows as ``kl_scale * f^2`` and improvement is ``f`` times
    ``sign``, minus a penalty beyond ``f = peak``, with ``f`` the fraction of ``full_step``."""

    def __init__(self, kl_scale: float, peak: float = 1.0, sign: float = 1.0) -> None:
        self.old = torch.tensor([1.0, -2.0])
        self.full_step = torch.tensor([0.5, 0.25])
        self.params = self.old.clone()
        self.kl_scale, self.peak, self.sign = kl_scale, peak, sign
        self.fractions: list[float] = []

    def __call__(self, step: Tensor) -> tuple[Tensor, float]:
        self.params = self.old + step
        f = (step @ self.full_step / (self.full_step @ self.full_step)).item()
        self.fractions.append(f)
        improvement = self.sign * f - 10.0 * max(f - self.peak, 0.0)
        return torch.tensor(improvement), self.kl_scale * f**2


def test_line_search_stops_at_first_kl_feasible_fraction() -> None:
    objective = FakeObjective(kl_scale=1.0)  # KL <= 0.01 needs f <= 0.1: f = 0.0625, j = 4
    result = backtracking_line_search(objective, objective.full_step, max_kl=0.01)
    assert result.accepted and result.backtracks == 4
    assert result.step_fraction == 0.5**4 and result.kl == 0.5**8
    assert result.improvement == pytest.approx(0.0625)
    assert objective.fractions == [1.0, 0.5, 0.25, 0.125, 0.0625]
    assert torch.allclose(objective.params, objective.old + 0.0625 * objective.full_step)


def test_line_search_stops_at_first_improving_fraction() -> None:
    objective = FakeObjective(kl_scale=0.0, peak=0.2)  # improvement > 0 needs f < 2/9
    result = backtracking_line_search(objective, objective.full_step, max_kl=0.01,
                                      backtrack_ratio=0.3)
    # f = 1: 1 - 8 < 0; f = 0.3: 0.3 - 1 < 0; f = 0.09: accepted after 2 backtracks.
    assert result.accepted and result.backtracks == 2
    assert result.step_fraction == pytest.approx(0.09)
    assert torch.allclose(objective.params, objective.old + 0.09 * objective.full_step)


@pytest.mark.parametrize(
    "kwargs",
    [{"kl_scale": 1e6}, {"kl_scale": 0.0, "sign": -1.0}, {"kl_scale": 0.0, "sign": 0.0}],
    ids=["kl-always-too-large", "always-worse", "never-changes"],
)
def test_line_search_rejects_and_restores_old_params(kwargs: dict[str, float]) -> None:
    objective = FakeObjective(**kwargs)
    result = backtracking_line_search(objective, objective.full_step, max_kl=0.01,
                                      max_backtracks=5)
    assert not result.accepted
    assert result.step_fraction == 0.0 and result.backtracks == 5
    assert result.improvement == 0.0 and result.kl == 0.0
    assert objective.fractions == [0.5**j for j in range(6)] + [0.0]
    assert torch.equal(objective.params, objective.old)


def test_line_search_rejects_nan() -> None:
    result = backtracking_line_search(lambda step: (float("nan"), 0.0), torch.ones(2), 0.01)
    assert not result.accepted and math.isnan(result.improvement)


def test_surrogate_weighs_advantages_by_the_probability_ratio() -> None:
    old = torch.log(torch.tensor([0.5, 0.25]))
    new = torch.log(torch.tensor([0.25, 0.5])).requires_grad_()
    advantages = torch.tensor([2.0, -1.0])
    # ratios 0.5 and 2: mean(0.5 * 2, 2 * -1) = -0.5 ; d/dlog π_i = ρ_i Â_i / N = [0.5, -1]
    value = surrogate(new, old, advantages)
    assert math.isclose(value.item(), -0.5, rel_tol=1e-6)
    value.backward()
    torch.testing.assert_close(new.grad, torch.tensor([0.5, -1.0]))
