"""Advantage Actor-Critic, the synchronous variant of A3C (Mnih et al. 2016).

Follows book ch. 3.6: the policy gradient of eq. 3.29 with Φ_t the bootstrapped advantage of
eqs. 3.32-3.33 (k-step returns minus the baseline V_ψ(s_t)), Alg. 3.3 with rewards-to-go
replaced by bootstrapped n-step returns; the critic regresses on those returns (eq. 3.31).
Rollouts of `num_steps` steps from every vector env (the k of eq. 3.32 is at most
`num_steps`), advantages by GAE(γ, λ) (book ch. 5; λ = 1 gives the n-step returns of
eq. 3.28 minus V_ψ(s_t)), one gradient step per rollout on
-mean(log π · A) + vf_coef · mean((V - R)²) - ent_coef · H. Defaults follow Stable-Baselines3's
A2C; its RMSprop (α 0.99, eps 1e-5: OptimizerConfig's defaults) is picked by `conf/algo/a2c.yaml`
in every family (`optimizer=<name>` overrides it), its lr 7e-4 set by the presets
`conf/preset/a2c_*.yaml` (families without a preset keep the optimizer's default lr).
"""

from __future__ import annotations

import gymnasium as gym

from rlrun.algos.configs import A2CConfig
from rlrun.config import TrainConfig
from rlrun.data.batch import Batch
from rlrun.data.rollout import RolloutBuffer, collect_rollout
from rlrun.networks.actor_critic import ActorCritic
from rlrun.ops.optim import anneal_lr, make_optimizer
from rlrun.ops.policy_gradient import actor_critic_step
from rlrun.registry import AlgoSpec
from rlrun.run import Run, TrainResult


def make_policy(cfg: TrainConfig, obs_space: gym.Space, action_space: gym.Space) -> ActorCritic:
    return ActorCritic(cfg.network, obs_space, action_space)


def train(cfg: TrainConfig, run: Run) -> TrainResult:
    algo: A2CConfig = cfg.algo
    envs = run.make_envs(gamma=algo.gamma)
    agent = make_policy(cfg, envs.single_observation_space, envs.single_action_space).to(run.device)
    optimizer = make_optimizer(agent.parameters(), cfg.optimizer)
    run.track(agent=agent, optimizer=optimizer, envs=envs)
    global_step = run.restore()
    buffer = RolloutBuffer(algo.num_steps, envs.num_envs, envs.single_observation_space,
                           envs.single_action_space, run.device)
    obs = envs.reset(seed=run.env_seed)
    while global_step < cfg.total_timesteps and not run.should_stop:
        lr = anneal_lr(optimizer, cfg.optimizer.schedule, global_step, cfg.total_timesteps)
        obs = collect_rollout(agent, envs, buffer, obs, run.record_episodes, cfg.numpy_acting)
        global_step += buffer.batch_size
        batch = Batch.from_rollout(buffer, algo.gamma, algo.gae_lambda)
        metrics = actor_critic_step(
            agent, optimizer, batch.obs, batch.actions, batch.advantages, batch.returns, batch.values,
            vf_coef=algo.vf_coef, ent_coef=algo.ent_coef, max_grad_norm=algo.max_grad_norm, norm_adv=algo.norm_adv,
        )
        run.log({**metrics, "train/lr": lr}, global_step)
        run.maybe_evaluate(agent, global_step)
        run.maybe_checkpoint(global_step)
    return run.finish(agent, global_step)


SPEC = AlgoSpec(name="a2c", config=A2CConfig, train=train, make_policy=make_policy, policy_key="agent")
