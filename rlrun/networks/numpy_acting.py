"""Numpy forward passes of MLP actor-critics, for acting on a few observations per env step.

At a few dozen rows a torch forward pass is dominated by per-op dispatch (5-10 µs per op, a
dozen ops per step); the same matrix products in numpy cost a quarter of that. The arrays
are views of the torch parameters (CPU only), so they follow every optimiser step. Sampling
noise comes from torch's global generator, drawn exactly as the torch distributions draw it,
so seeding, checkpoints and resume are unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from rlrun.networks.actor_critic import ActorCritic
from rlrun.networks.heads import CategoricalHead, GaussianHead
from rlrun.networks.mlp import MLP

_ACTIVATIONS = {
    "tanh": lambda x: np.tanh(x, out=x),
    "relu": lambda x: np.maximum(x, 0.0, out=x),
}
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)

MAX_ROWS = 64
"""Largest batch (observations per step) acted on in numpy; beyond it torch is as fast (measured)."""

Layer = tuple[np.ndarray, np.ndarray]


def _linear(module: nn.Linear) -> Layer:
    """(W^T, b) as numpy views of the parameters."""
    return module.weight.detach().numpy().T, module.bias.detach().numpy()


def _supported_torso(torso: nn.Module) -> bool:
    return isinstance(torso, MLP) and torso.activation_name in _ACTIVATIONS


def supports(actor: ActorCritic, critic: ActorCritic, num_rows: int) -> bool:
    """Whether `NumpyActorCritic(actor, critic)` can act for `num_rows` observations per step."""
    modules = (actor.actor_torso, critic.critic_torso)
    return (
        num_rows <= MAX_ROWS
        and all(_supported_torso(torso) for torso in modules)
        and isinstance(actor.policy_head, (CategoricalHead, GaussianHead))
        and all(p.device.type == "cpu" and p.dtype == torch.float32
                for module in (actor, critic) for p in module.parameters())
    )


class NumpyActorCritic:
    """Samples actions of `actor`'s policy and values of `critic`'s value function in numpy."""

    def __init__(self, actor: ActorCritic, critic: ActorCritic) -> None:
        self.actor_layers = [_linear(layer) for layer in actor.actor_torso.layers]
        self.critic_layers = [_linear(layer) for layer in critic.critic_torso.layers]
        self.actor_activation = _ACTIVATIONS[actor.actor_torso.activation_name]
        self.critic_activation = _ACTIVATIONS[critic.critic_torso.activation_name]
        self.shared_torso = actor is critic and actor.shared
        self.value_layer = _linear(critic.value_head)
        head = actor.policy_head
        self.gaussian = isinstance(head, GaussianHead)
        self.policy_layer = _linear(head.mean if self.gaussian else head.logits)
        self.log_std = head.log_std.detach().numpy()[0] if self.gaussian else None

    @staticmethod
    def _forward(layers: list[Layer], activation, x: np.ndarray) -> np.ndarray:
        for weight_t, bias in layers:
            x = activation(x @ weight_t + bias)
        return x

    def _features(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        actor_features = self._forward(self.actor_layers, self.actor_activation, obs)
        if self.shared_torso:
            return actor_features, actor_features
        return actor_features, self._forward(self.critic_layers, self.critic_activation, obs)

    def value(self, obs: np.ndarray) -> np.ndarray:
        features = self._forward(self.critic_layers, self.critic_activation, obs)
        weight_t, bias = self.value_layer
        return (features @ weight_t + bias)[:, 0]

    def act(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sampled actions, their log-probabilities, state values) for a batch of observations."""
        actor_features, critic_features = self._features(obs)
        weight_t, bias = self.value_layer
        values = (critic_features @ weight_t + bias)[:, 0]
        weight_t, bias = self.policy_layer
        out = actor_features @ weight_t + bias
        if self.gaussian:
            z = torch.randn(out.shape).numpy()
            actions = out + np.exp(self.log_std) * z
            logprobs = (-0.5 * np.square(z) - self.log_std).sum(-1) - _HALF_LOG_2PI * z.shape[-1]
            return actions, logprobs.astype(np.float32), values
        shifted = out - out.max(-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
        uniform = torch.rand(out.shape).clamp_(1e-20, 1.0).numpy()
        actions = (log_probs - np.log(-np.log(uniform))).argmax(-1)
        return actions, np.take_along_axis(log_probs, actions[:, None], -1)[:, 0], values
