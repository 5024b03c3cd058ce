"""Deep SARSA and expected SARSA: on-policy TD control with a Q-network (Rummery & Niranjan 1994).

Follows book ch. 2.10: the target y = r + γ Q(s', a') with a' the action the ε-greedy policy
actually takes next (eq. 2.9, Alg. 2.5 "Deep Sarsa"), or with `expected` the expectation
y = r + γ Σ_a π(a|s') Q(s', a) under that ε-greedy π (eq. 2.12, Alg. 2.6 "Deep Expected
Sarsa"), regressed with the semi-gradient TD loss of eq. 2.11. The policy improves by acting
ε-greedily in the current Q (eq. 2.7), with ε annealed as in DQN. Bootstrapping from the
online network as in the book's simple version diverges on CartPole (consecutive states are
nearly identical, so raising Q(s, a) raises Q(s', a') with it); as in the one-step Sarsa of
Mnih et al. (2016) the bootstrap values come from a target network copied every
`target_update_every` env steps (ch. 2.5), and `target_update_every=0` gives the book's form.
Expected SARSA weighs the target network's values with the acting policy, ε-greedy in the
online network's Q(s', ·) (weighing with the target network's own greedy action instead
scored below a random policy on CartPole-v1).

No replay buffer: every `num_steps` steps of `env.num_envs` parallel envs form one short
on-policy batch (the envs decorrelate the samples), used for `gradient_steps` updates and
then dropped. Targets bootstrap through truncation from the real final observation (with a'
drawn from π there) and never through termination.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from rlrun.algos._td_control import (
    make_policy,
    require_discrete_actions,
    td_step,
)
from rlrun.algos.configs import SarsaConfig
from rlrun.algos.spec import AlgoSpec
from rlrun.config import TrainConfig
from rlrun.networks.q import QNetwork
from rlrun.ops.schedule import crossed
from rlrun.ops.td import epsilon_greedy, expected_sarsa_target, sarsa_target, taken, td_loss
from rlrun.run.facade import Run, TrainResult
from rlrun.training.optim import anneal_lr, make_optimizer
from rlrun.training.stats import MeanStats
from rlrun.training.targets import hard_update


class SarsaBatch:
    """Time-major storage `[T, N]` of <s, a, r, s', a', terminated>, preallocated on the device."""

    def __init__(
        self, num_steps: int, num_envs: int, obs_space: gym.Space, device: torch.device
    ) -> None:
        shape = (num_steps, num_envs)
        obs_dtype = torch.uint8 if obs_space.dtype == np.uint8 else torch.float32
        self.obs = torch.zeros((*shape, *obs_space.shape), dtype=obs_dtype, device=device)
        self.next_obs = torch.zeros_like(self.obs)
        self.actions = torch.zeros(shape, dtype=torch.int64, device=device)
        self.next_actions = torch.zeros_like(self.actions)
        self.rewards = torch.zeros(shape, device=device)
        self.terminations = torch.zeros(shape, device=device)

    def flat(self, name: str) -> torch.Tensor:
        t = getattr(self, name)
        return t.reshape(-1, *t.shape[2:])


class NextActions:
    """The actions already chosen for the current observations, taken at the next env step.

    They are the a' of the last transitions of a batch, chosen before its update; they are
    checkpointed so that a resumed run takes the very actions it bootstrapped with.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.actions: torch.Tensor | None = None

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"actions": self.actions}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.actions = state["actions"].to(self.device)


def sarsa_targets(
    q_network: QNetwork,
    target_network: QNetwork,
    batch: SarsaBatch,
    algo: SarsaConfig,
    epsilon: float,
) -> torch.Tensor:
    """SARSA targets (eq. 2.9) or expected SARSA targets (eq. 2.12), valued by `target_network`.

    The expectation is under the acting policy: ε-greedy in the online network's Q(s', ·).
    """
    with torch.no_grad():
        next_obs = batch.flat("next_obs")
        next_q = target_network(next_obs)
        rewards, terminations = batch.flat("rewards"), batch.flat("terminations")
        if algo.expected:
            return expected_sarsa_target(
                rewards, next_q, terminations, algo.gamma, epsilon, policy_q=q_network(next_obs)
            )
        return sarsa_target(rewards, next_q, batch.flat("next_actions"), terminations, algo.gamma)


def train(cfg: TrainConfig, run: Run) -> TrainResult:
    algo: SarsaConfig = cfg.algo
    envs = run.make_envs(gamma=algo.gamma)
    obs_space, action_space = envs.single_observation_space, envs.single_action_space
    q_network = make_policy(cfg, obs_space, action_space).to(run.device)
    target_network = q_network
    if algo.target_update_every > 0:
        target_network = (
            make_policy(cfg, obs_space, action_space).to(run.device).requires_grad_(False)
        )
        hard_update(target_network, q_network)
        run.track(target_network=target_network)
    optimizer = make_optimizer(q_network.parameters(), cfg.optimizer)
    next_actions = NextActions(run.device)
    run.track(q_network=q_network, optimizer=optimizer, envs=envs, next_actions=next_actions)
    global_step = run.restore()
    batch = SarsaBatch(algo.num_steps, envs.num_envs, obs_space, run.device)
    stats = MeanStats()

    def policy(obs: torch.Tensor, step: int) -> torch.Tensor:
        with torch.no_grad():
            return epsilon_greedy(q_network(obs), algo.epsilon(step, cfg.total_timesteps))

    obs = torch.as_tensor(envs.reset(seed=run.env_seed), device=run.device)
    actions = policy(obs, global_step) if next_actions.actions is None else next_actions.actions
    while global_step < cfg.total_timesteps and not run.should_stop:
        previous = global_step
        for t in range(algo.num_steps):
            batch.obs[t], batch.actions[t] = obs, actions
            step = envs.step(actions.cpu().numpy())
            run.record_episodes(step)
            global_step += envs.num_envs
            obs = torch.as_tensor(step.obs, device=run.device)
            actions = policy(obs, global_step)  # a', the action taken next
            batch.rewards[t] = torch.from_numpy(step.rewards)
            batch.terminations[t] = torch.from_numpy(step.terminations)
            batch.next_obs[t], batch.next_actions[t] = obs, actions
            truncated = torch.from_numpy(np.flatnonzero(step.truncations & ~step.terminations))
            if len(truncated):  # s' is the real final observation, a' ~ π(·|s') there
                final_obs = torch.as_tensor(step.final_obs[truncated], device=run.device)
                batch.next_obs[t, truncated] = final_obs
                batch.next_actions[t, truncated] = policy(final_obs, global_step)
        next_actions.actions = actions

        if algo.target_update_every > 0 and crossed(
            previous, global_step, algo.target_update_every
        ):
            hard_update(target_network, q_network)
        epsilon = algo.epsilon(global_step, cfg.total_timesteps)
        anneal_lr(optimizer, cfg.optimizer.schedule, global_step, cfg.total_timesteps)
        b_obs, b_actions = batch.flat("obs"), batch.flat("actions")
        for _ in range(algo.gradient_steps):
            targets = sarsa_targets(q_network, target_network, batch, algo, epsilon)
            q_taken = taken(q_network(b_obs), b_actions)
            loss = td_loss(q_taken, targets, algo.loss)  # the semi-gradient TD loss (eq. 2.11)
            stats.add(td_step(optimizer, loss, q_taken, algo.max_grad_norm))
        if crossed(previous, global_step, algo.log_every) or global_step >= cfg.total_timesteps:
            run.log(
                {
                    **stats.pop(),
                    "train/epsilon": epsilon,
                    "train/lr": optimizer.param_groups[0]["lr"],
                },
                global_step,
            )
        run.maybe_evaluate(q_network, global_step)
        run.maybe_checkpoint(global_step)
    return run.finish(q_network, global_step)


check_spaces = require_discrete_actions("sarsa")

SPEC = AlgoSpec(
    name="sarsa",
    config=SarsaConfig,
    train=train,
    make_policy=make_policy,
    policy_key="q_network",
    check_spaces=check_spaces,
)
