"""Proximal Policy Optimization with the clipped surrogate (Schulman et al. 2017).

Follows book ch. 8, Alg. 8.1, and the lecture "Proximal Policy Optimization 1/2":
- clipped surrogate L^CLIP = E_t[min(ρ_t A_t, clip(ρ_t, 1-ε, 1+ε) A_t)], ρ_t = π_θ(a_t|s_t) / π_old(a_t|s_t);
- advantages by GAE(γ, λ) (book ch. 5), normalised per minibatch;
- value loss (optionally clipped around the old values), entropy bonus, global grad-norm clip;
- optional KL early stop (Alg. 8.1): each minibatch's approximate KL to the old policy,
  E[(ρ - 1) - log ρ] (Schulman's unbiased k3 estimator), is measured in its forward pass; the
  first minibatch whose KL exceeds `target_kl` is not stepped and the update ends there.
Implementation details from the advanced lecture (Engstrom et al. 2020): orthogonal init,
observation/reward normalisation, linear learning-rate annealing.
"""

from __future__ import annotations

from rlrun.algos._ppo_family import (
    check_minibatches,
    clipped_loss,
    make_policy,
    minibatch_loss,
    update,
)
from rlrun.algos.configs import PPOConfig
from rlrun.config import TrainConfig
from rlrun.data.batch import Batch
from rlrun.data.rollout import RolloutBuffer, collect_rollout
from rlrun.ops.optim import anneal_lr, make_optimizer
from rlrun.registry import AlgoSpec
from rlrun.run import Run, TrainResult


def train(cfg: TrainConfig, run: Run) -> TrainResult:
    algo: PPOConfig = cfg.algo
    envs = run.make_envs(gamma=algo.gamma)
    check_minibatches(algo, envs.num_envs * algo.num_steps)
    agent = make_policy(cfg, envs.single_observation_space, envs.single_action_space).to(run.device)
    optimizer = make_optimizer(agent.parameters(), cfg.optimizer)
    run.track(agent=agent, optimizer=optimizer, envs=envs)
    global_step = run.restore()
    buffer = RolloutBuffer(algo.num_steps, envs.num_envs, envs.single_observation_space,
                           envs.single_action_space, run.device)
    forward_and_loss = minibatch_loss(clipped_loss(algo), cfg.compile)
    obs = envs.reset(seed=run.env_seed)
    while global_step < cfg.total_timesteps and not run.should_stop:
        lr = anneal_lr(optimizer, cfg.optimizer.schedule, global_step, cfg.total_timesteps)
        obs = collect_rollout(agent, envs, buffer, obs, run.record_episodes, cfg.numpy_acting)
        global_step += buffer.batch_size
        batch = Batch.from_rollout(buffer, algo.gamma, algo.gae_lambda)
        metrics = update(agent, optimizer, batch, algo, forward_and_loss)
        run.log({**metrics, "train/lr": lr}, global_step)
        run.maybe_evaluate(agent, global_step)
        run.maybe_checkpoint(global_step)
    return run.finish(agent, global_step)


SPEC = AlgoSpec(name="ppo", config=PPOConfig, train=train, make_policy=make_policy, policy_key="agent",
                compiles=True)
