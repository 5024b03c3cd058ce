"""Off-policy actor-critic with truncated per-action importance weights (Degris et al. 2012, Off-PAC).

Follows book ch. 4 (eqs. 4.7-4.8 and 4.15-4.16, Alg. 4.1) and the slides' "Off policy":
∇J ≈ E_{s~d_μ, a~μ}[ρ ∇log π(a|s) Q(s, a)], ρ = π(a|s) / μ(a|s), with the slides'
"off-policy + baseline" form Q - V. The behaviour policy μ is a lagged copy of the target
policy π, refreshed every `behaviour_lag` updates (lag 1 makes μ = π: on-policy A2C); it
samples every action of the `num_steps`-step rollouts of all vector envs.
- Policy: one gradient step per rollout on -mean(ρ̄_t log π(a_t|s_t) A_t) with ρ̄_t =
  min(max_is_weight, ρ_t) (ACER/IMPALA truncation) and A_t = r_t + γ v_{t+1} - V(s_t): A2C's
  step and loss (`rlrun.algos.a2c.actor_critic_step`) on the weighted advantages ρ̄_t A_t.
- Critic: regresses V(s_t) on the V-trace targets v_t (Espeholt et al. 2018), the
  importance-weighted n-step targets of Retrace's state-value form: TD errors weighted by ρ̄_t,
  traces cut by c_t = λ min(1, ρ_t) (see `rlrun.ops.importance`), with λ = `gae_lambda`.
Values come from the current critic; truncated episodes bootstrap with the critic's value of
the real final observation, terminated ones never.
"""

from __future__ import annotations

import torch

from rlrun.algos._rollouts import RolloutLoop, make_policy
from rlrun.algos.a2c import actor_critic_step
from rlrun.algos.configs import OffPACConfig
from rlrun.algos.spec import AlgoSpec
from rlrun.config import TrainConfig
from rlrun.ops.importance import truncated_importance_weights, vtrace
from rlrun.run.facade import Run, Scalars, TrainResult
from rlrun.training.optim import make_optimizer
from rlrun.training.targets import hard_update


def train(cfg: TrainConfig, run: Run) -> TrainResult:
    algo: OffPACConfig = cfg.algo
    envs = run.make_envs(gamma=algo.gamma)
    agent = make_policy(cfg, envs.single_observation_space, envs.single_action_space).to(run.device)
    behaviour = make_policy(cfg, envs.single_observation_space, envs.single_action_space).to(run.device)
    behaviour.requires_grad_(False)
    hard_update(behaviour, agent)
    optimizer = make_optimizer(agent.parameters(), cfg.optimizer)
    counters = Scalars(updates=0.0)
    run.track(agent=agent, behaviour=behaviour, optimizer=optimizer, envs=envs, counters=counters)
    loop = RolloutLoop(cfg, run, envs, agent, optimizer, actor=behaviour)
    for buffer, metrics in loop:
        b_obs, b_actions = buffer.flat_obs(), buffer.flat_actions()
        with torch.no_grad():
            target_logprobs = agent.dist(b_obs).log_prob(b_actions).view_as(buffer.logprobs)
            rhos, rhos_truncated = truncated_importance_weights(target_logprobs, buffer.logprobs, algo.max_is_weight)
            targets, advantages = vtrace(
                buffer.rewards, buffer.values, buffer.next_values, buffer.terminations, buffer.episode_ends,
                rhos_truncated, algo.gae_lambda * rhos.clamp(max=1.0), algo.gamma,
            )
        metrics.update(actor_critic_step(
            agent, optimizer, b_obs, b_actions, advantages.reshape(-1), targets.reshape(-1),
            buffer.values.reshape(-1), vf_coef=algo.vf_coef, ent_coef=algo.ent_coef,
            max_grad_norm=algo.max_grad_norm, norm_adv=algo.norm_adv, weights=rhos_truncated.reshape(-1),
        ))
        counters["updates"] += 1
        if counters["updates"] % algo.behaviour_lag == 0:
            hard_update(behaviour, agent)
        metrics.update({
            "train/is_weight_mean": float(rhos.mean()),
            "train/is_weight_max": float(rhos.max()),
            "train/is_weight_truncated_frac": float((rhos > algo.max_is_weight).float().mean()),
        })
    return loop.finish()


SPEC = AlgoSpec(name="offpac", config=OffPACConfig, train=train, make_policy=make_policy, policy_key="agent")
