"""Cross-entropy method over the policy's parameters (Rubinstein 1999; noisy CEM, Szita & Lőrincz 2006).

Follows the lecture "Policy Gradient", section "1. Zeroth-Order Optimization" (Cross Entropy:
population ← sample(d); elite ← m with highest U(θ); d ← fit(elite)), with U(θ) the Monte Carlo
utility of the same lecture, the mean raw return of `episodes_per_candidate` episodes:
- d is a diagonal Gaussian N(μ, diag σ²) over the flat parameter vector θ of the policy network;
  μ starts at the network's initial weights, σ at `init_std`;
- each iteration samples `population` candidates θ_i = μ + σ ⊙ ε_i and runs them in parallel,
  one training env per candidate, with one batched forward pass of all candidates
  (`torch.func.functional_call` under `torch.vmap`); a candidate acts with the mode of its
  policy (argmax or Gaussian mean) when `deterministic`, else samples its policy;
- fit: μ, σ² ← the maximum-likelihood mean and variance of the m = round(elite_frac · population)
  best candidates, plus Szita & Lőrincz's extra noise: σ² += (noise_floor · noise_decay^k)² at
  iteration k, which keeps σ from collapsing before the elite stops improving.
The policy that is evaluated and checkpointed is the network loaded with μ. The env count is
`algo.population` (env.num_envs is not used). Steps of an env after its candidate's episodes
(the vector env steps all envs together) are discarded and not counted in the global step.
"""

from __future__ import annotations

import warnings
from functools import partial

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from rlrun.algos.configs import CEMConfig
from rlrun.algos.spec import AlgoSpec
from rlrun.config import TrainConfig
from rlrun.data.episodes import collect_episodes
from rlrun.networks.actor import Actor, actor_parts
from rlrun.ops.trust_region import flat_params, set_flat_params
from rlrun.run.facade import Run, TrainResult


class CEMPolicy(Actor):
    """The `Actor`, called to act (`functional_call` runs `forward`), under algo=cem's checkpoint
    keys: they name the torso `torso` (`policy.torso.*`), not `actor_torso`."""

    def __init__(self, cfg: TrainConfig, obs_space: gym.Space, action_space: gym.Space) -> None:
        super().__init__(*actor_parts(cfg.network, obs_space, action_space))
        self.register_state_dict_post_hook(_save_torso_keys)
        self.register_load_state_dict_pre_hook(_load_torso_keys)

    forward = Actor.act


def _rename(state: dict[str, torch.Tensor], old: str, new: str) -> None:
    """Keys `old + rest` of `state` become `new + rest`, in place and in order."""
    items = list(state.items())
    state.clear()
    for key, value in items:
        state[new + key.removeprefix(old) if key.startswith(old) else key] = value


def _save_torso_keys(module: nn.Module, state: dict[str, torch.Tensor], prefix: str, *_) -> None:
    _rename(state, prefix + "actor_torso.", prefix + "torso.")


def _load_torso_keys(module: nn.Module, state: dict[str, torch.Tensor], prefix: str, *_) -> None:
    _rename(state, prefix + "torso.", prefix + "actor_torso.")


def fit_elite(
    candidates: torch.Tensor, scores: torch.Tensor, num_elite: int, extra_std: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of the `num_elite` best rows of `candidates` [P, D] by `scores` [P].

    The variance is the maximum-likelihood one (divided by the elite count) plus extra_std².
    """
    elite = candidates[scores.topk(num_elite).indices]
    mean = elite.mean(0)
    var = (elite - mean).square().mean(0)
    return mean, (var + extra_std**2).sqrt()


class GaussianSearch:
    """The search distribution N(mean, diag std²) and the iteration count, checkpointed."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean, self.std, self.iteration = mean, std, 0

    def sample(self, count: int) -> torch.Tensor:
        return self.mean + self.std * torch.randn(count, self.mean.numel(), device=self.mean.device)

    def state_dict(self) -> dict[str, torch.Tensor | int]:
        return {"mean": self.mean, "std": self.std, "iteration": self.iteration}

    def load_state_dict(self, state: dict[str, torch.Tensor | int]) -> None:
        self.mean, self.std = state["mean"].to(self.mean), state["std"].to(self.std)
        self.iteration = int(state["iteration"])


def unflatten(actor: nn.Module, candidates: torch.Tensor) -> dict[str, torch.Tensor]:
    """Rows of flat parameter vectors [P, D] as a dict of stacked parameters [P, *shape]."""
    params, offset = {}, 0
    for name, param in actor.named_parameters():
        params[name] = candidates[:, offset : offset + param.numel()].reshape(-1, *param.shape)
        offset += param.numel()
    return params


def batched_act(actor: Actor, params: dict[str, torch.Tensor], obs: torch.Tensor,
                deterministic: bool) -> torch.Tensor:
    """Row i of `obs` acted on by candidate i's parameters, in one vectorised forward pass."""

    def act_one(candidate: dict[str, torch.Tensor], one_obs: torch.Tensor) -> torch.Tensor:
        return functional_call(actor, candidate, (one_obs.unsqueeze(0), deterministic)).squeeze(0)

    with warnings.catch_warnings():  # sampling's in-place clamp has no batching rule: a slower, correct path
        warnings.filterwarnings("ignore", message="There is a performance drop")
        return torch.vmap(act_one, randomness="different")(params, obs)


def make_policy(cfg: TrainConfig, obs_space: gym.Space, action_space: gym.Space) -> CEMPolicy:
    return CEMPolicy(cfg, obs_space, action_space)


def train(cfg: TrainConfig, run: Run) -> TrainResult:
    algo: CEMConfig = cfg.algo
    envs = run.make_envs(num_envs=algo.population)
    actor = make_policy(cfg, envs.single_observation_space, envs.single_action_space).to(run.device)
    actor.requires_grad_(False)
    mean = flat_params(actor.parameters())
    search = GaussianSearch(mean, torch.full_like(mean, algo.init_std))
    run.track(policy=actor, search=search, envs=envs)
    global_step = run.restore()
    quotas = np.full(algo.population, algo.episodes_per_candidate)
    obs = torch.as_tensor(envs.reset(seed=run.env_seed), device=run.device)
    while global_step < cfg.total_timesteps and not run.should_stop:
        candidates = search.sample(algo.population)
        act = partial(batched_act, actor, unflatten(actor, candidates), deterministic=algo.deterministic)
        batch, obs = collect_episodes(act, envs, obs, quotas, run.record_episodes, run.device, store_transitions=False)
        global_step += batch.num_steps
        scores = batch.env_returns
        extra_std = algo.noise_floor * algo.noise_decay**search.iteration
        search.mean, search.std = fit_elite(candidates, scores, algo.num_elite, extra_std)
        search.iteration += 1
        set_flat_params(actor.parameters(), search.mean)
        elite_scores = scores.topk(algo.num_elite).values
        run.log({
            "train/return_mean": float(scores.mean()),
            "train/return_max": float(elite_scores[0]),
            "train/elite_return_mean": float(elite_scores.mean()),
            "train/elite_threshold": float(elite_scores[-1]),
            "train/std_mean": float(search.std.mean()),
            "train/extra_std": extra_std,
            "train/iteration": float(search.iteration),
        }, global_step)
        run.maybe_evaluate(actor, global_step)
        run.maybe_checkpoint(global_step)
    return run.finish(actor, global_step)


SPEC = AlgoSpec(name="cem", config=CEMConfig, train=train, make_policy=make_policy, policy_key="policy")
