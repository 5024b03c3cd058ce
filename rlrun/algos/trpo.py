"""Trust Region Policy Optimization (Schulman et al. 2015).

Follows the book's ch. 7, Alg. 7.1 (sections 7.6-7.9, App. B), and the lecture "Trust Region
Policy Optimization" (Lecture 9; see docs/sources.md). Each iteration:
- collect `num_envs * num_steps` steps with π_θk, GAE(γ, λ) advantages Â (book ch. 5);
- surrogate L(θ') = E[π_θ'(a|s) / π_θk(a|s) · Â] with the mean-KL constraint
  E[KL(π_θk(·|s) || π_θ'(·|s))] ≤ δ (eq. 7.41), δ = `max_kl`; gradient ĝ at θ' = θk (eq. 7.39);
- Fisher-vector products F v by the Hessian of the mean KL (section 7.8.2, eqs. 7.62-7.63,
  `fvp=kl_hessian`), or by the sampled score outer products (1/N) Σ ∇log π ∇log πᵀ
  (eq. 6.3, the Fisher-of-log-likelihood estimate that section 7.8.1's average Fisher equals in
  expectation, `fvp=fisher`), damped F + λI;
- direction x = F⁻¹ĝ by `cg_iters` conjugate-gradient steps (eq. 7.49, App. B), step limit
  η = sqrt(2δ / xᵀFx) (eqs. 7.46, 7.50);
- backtracking line search θ ← θk + b^j η x for j = 0..U (section 7.9, Alg. 7.1): accept the
  first candidate that improves the surrogate and keeps the mean KL ≤ δ, else keep θk;
  b = `backtrack_ratio`, U = `max_backtracks`;
- value function V_ψ fitted separately: `vf_epochs` epochs of `vf_minibatches` minibatches of
  squared error to the returns with Adam (Alg. 7.1's inner loop).
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
from rlrun.algos.configs import TRPOConfig
from rlrun.algos.spec import AlgoSpec
from rlrun.config import TrainConfig
from rlrun.data.batch import Batch
from rlrun.networks.actor_critic import ActorCritic
from rlrun.ops.trust_region import backtracking_line_search, flat_grad, flat_params, set_flat_params
from rlrun.run.facade import Run, TrainResult


def search_step(
    objective: PolicyObjective, params: list[torch.nn.Parameter], algo: TRPOConfig
) -> NaturalStep:
    """The full step η x of Alg. 7.1 before the line search, at the current (old) parameters."""
    gradient = flat_grad(objective.surrogate(), params)
    fvp = fisher_product(algo.fvp, objective, params, algo.damping)
    return natural_step(gradient, fvp, algo.max_kl, algo.cg_iters)


def trpo_update(agent: ActorCritic, batch: Batch, algo: TRPOConfig) -> dict[str, float]:
    """One TRPO policy update on `batch` (step, then line search); returns its `train/` metrics."""
    params = policy_parameters(agent)
    objective = PolicyObjective.from_batch(agent, batch, algo.norm_adv)
    step = search_step(objective, params, algo)
    old_params = flat_params(params)

    def evaluate(candidate: torch.Tensor) -> tuple[float, float]:
        set_flat_params(params, old_params + candidate)
        return objective.improvement_and_kl()

    search = backtracking_line_search(evaluate, step.full_step, algo.max_kl, algo.max_backtracks,
                                      algo.backtrack_ratio)
    return {
        **policy_metrics(objective, step),
        "train/line_search_steps": float(search.backtracks),
        "train/line_search_accepted": float(search.accepted),
        "train/step_fraction": search.step_fraction,
    }


def train(cfg: TrainConfig, run: Run) -> TrainResult:
    learner = make_learner(cfg, run)
    return train_loop(cfg, run, learner, lambda agent, batch: trpo_update(agent, batch, cfg.algo))


SPEC = AlgoSpec(name="trpo", config=TRPOConfig, train=train, make_policy=make_policy, policy_key="agent")
