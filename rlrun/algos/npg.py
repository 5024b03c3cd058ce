"""Natural policy gradient (Kakade 2001; Peters & Schaal 2008), plain or truncated (TNPG).

Follows the book's ch. 6, Alg. 6.1, and the lecture "Natural Policy Gradient" / "Truncated
Natural Policy Gradient, TNPG" (Lecture 9; see docs/sources.md). Each iteration:
- collect `num_envs * num_steps` steps with π_θ, GAE(γ, λ) advantages Â (book ch. 5);
- policy gradient ĝ = (1/N) Σ ∇log π_θ(a|s) Â (Alg. 6.1), as the gradient of the surrogate
  (eq. 7.38-7.39, equal at θ' = θ);
- Fisher matrix F̂ = (1/N) Σ ∇log π ∇log πᵀ of the sampled actions (eqs. 6.2-6.3), damped F̂ + λI;
- direction x = F̂⁻¹ĝ: formed explicitly and solved (`truncated=false`, Alg. 6.1 as written,
  only for policies of at most `max_explicit_params` parameters), or by `cg_iters` conjugate-
  gradient steps on matrix-free Fisher-vector products (`truncated=true`: TNPG, App. B);
- step θ ← θ + η x with η = sqrt(2δ / ĝᵀF̂⁻¹ĝ) (eqs. 6.7, 6.12-6.13), δ = `max_kl`; no line
  search, so the KL actually reached (logged as `train/kl`) may miss δ (lecture: "which NPG and
  TNPG may not" ensure);
- value function V_ψ fitted separately by Adam on the returns (Alg. 6.1's ω step).
"""

from __future__ import annotations

import torch

from rlrun.algos._natural import (
    NaturalStep,
    PolicyObjective,
    fisher_product,
    make_learner,
    make_policy,
    natural_step,
    policy_metrics,
    policy_parameters,
    train_loop,
)
from rlrun.algos.configs import NPGConfig
from rlrun.algos.spec import AlgoSpec
from rlrun.config import ConfigError, TrainConfig
from rlrun.data.batch import Batch
from rlrun.networks.actor_critic import ActorCritic
from rlrun.ops.trust_region import (
    explicit_fisher,
    flat_grad,
    flat_params,
    natural_step_size,
    set_flat_params,
)
from rlrun.run.facade import Run, TrainResult


def check_explicit_size(algo: NPGConfig, agent: ActorCritic) -> None:
    """Refuse an explicit Fisher matrix for a policy above `algo.max_explicit_params` parameters."""
    size = sum(p.numel() for p in policy_parameters(agent))
    if not algo.truncated and size > algo.max_explicit_params:
        raise ConfigError(
            f"algo.truncated=false forms a {size} x {size} Fisher matrix, but the policy has {size} "
            f"parameters, above algo.max_explicit_params={algo.max_explicit_params}; use algo.truncated=true "
            "(conjugate gradient) or a smaller network.hidden_sizes"
        )


def npg_step(objective: PolicyObjective, params: list[torch.nn.Parameter], algo: NPGConfig) -> NaturalStep:
    """η F̂⁻¹ĝ of Alg. 6.1 at the current parameters, by CG (truncated) or an exact solve."""
    gradient = flat_grad(objective.surrogate(), params)
    if algo.truncated:
        fvp = fisher_product("fisher", objective, params, algo.damping)
        return natural_step(gradient, fvp, algo.max_kl, algo.cg_iters)
    fisher = explicit_fisher(objective.logprobs, params)
    fisher.diagonal().add_(algo.damping)
    direction = torch.linalg.solve(fisher, gradient)
    step_size = natural_step_size(direction, fisher @ direction, algo.max_kl)
    return NaturalStep(step_size * direction, gradient, step_size)


def npg_update(agent: ActorCritic, batch: Batch, algo: NPGConfig) -> dict[str, float]:
    """One natural-gradient step of the policy on `batch`; returns its `train/` metrics."""
    params = policy_parameters(agent)
    objective = PolicyObjective.from_batch(agent, batch, algo.norm_adv)
    step = npg_step(objective, params, algo)
    set_flat_params(params, flat_params(params) + step.full_step)
    return policy_metrics(objective, step)


def train(cfg: TrainConfig, run: Run) -> TrainResult:
    learner = make_learner(cfg, run)
    check_explicit_size(cfg.algo, learner.agent)
    return train_loop(cfg, run, learner, lambda agent, batch: npg_update(agent, batch, cfg.algo))


SPEC = AlgoSpec(name="npg", config=NPGConfig, train=train, make_policy=make_policy, policy_key="agent")
