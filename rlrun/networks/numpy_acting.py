"""Numpy forward passes of MLP policies, for acting on a few observations per env step.

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
from rlrun.networks.q import QNetwork

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


def _affine(layer: Layer, x: np.ndarray) -> np.ndarray:
    weight_t, bias = layer
    return x @ weight_t + bias


def _on_cpu_float32(*modules: nn.Module) -> bool:
    return all(p.device.type == "cpu" and p.dtype == torch.float32 for m in modules for p in m.parameters())


def supported_mlp(torso: nn.Module) -> bool:
    return isinstance(torso, MLP) and torso.activation_name in _ACTIVATIONS


class NumpyMLP:
    """An `MLP` (hidden layers and activations) in numpy."""

    def __init__(self, mlp: MLP) -> None:
        self.layers = [_linear(layer) for layer in mlp.layers]
        self.activation = _ACTIVATIONS[mlp.activation_name]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = self.activation(_affine(layer, x))
        return x


def supports(actor: ActorCritic, critic: ActorCritic, num_rows: int) -> bool:
    """Whether `NumpyActorCritic(actor, critic)` can act for `num_rows` observations per step."""
    return (
        num_rows <= MAX_ROWS
        and supported_mlp(actor.actor_torso)
        and supported_mlp(critic.critic_torso)
        and isinstance(actor.policy_head, (CategoricalHead, GaussianHead))
        and _on_cpu_float32(actor, critic)
    )


def supports_q(q_network: QNetwork, num_rows: int) -> bool:
    """Whether `NumpyQNetwork(q_network)` can act for `num_rows` observations per step."""
    return num_rows <= MAX_ROWS and supported_mlp(q_network.torso) and _on_cpu_float32(q_network)


class NumpyQNetwork:
    """Q(s, ·) of a `QNetwork` with an MLP torso, in numpy."""

    def __init__(self, q_network: QNetwork) -> None:
        self.torso = NumpyMLP(q_network.torso)
        self.head = _linear(q_network.head)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return _affine(self.head, self.torso(obs))


class NumpyActorCritic:
    """Samples actions of `actor`'s policy and values of `critic`'s value function in numpy."""

    def __init__(self, actor: ActorCritic, critic: ActorCritic) -> None:
        self.actor_torso = NumpyMLP(actor.actor_torso)
        self.critic_torso = NumpyMLP(critic.critic_torso)
        self.shared_torso = actor is critic and actor.shared
        self.value_layer = _linear(critic.value_head)
        head = actor.policy_head
        self.gaussian = isinstance(head, GaussianHead)
        self.policy_layer = _linear(head.mean if self.gaussian else head.logits)
        self.log_std = head.log_std.detach().numpy()[0] if self.gaussian else None

    def value(self, obs: np.ndarray) -> np.ndarray:
        return _affine(self.value_layer, self.critic_torso(obs))[:, 0]

    def act(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sampled actions, their log-probabilities, state values) for a batch of observations."""
        actor_features = self.actor_torso(obs)
        critic_features = actor_features if self.shared_torso else self.critic_torso(obs)
        values = _affine(self.value_layer, critic_features)[:, 0]
        out = _affine(self.policy_layer, actor_features)
        if self.gaussian:
            z = torch.randn(out.shape).numpy()
            actions = out + np.exp(self.log_std) * z
            logprobs = (-0.5 * np.square(z) - self.log_std).sum(-1) - _HALF_LOG_2PI * z.shape[-1]
            return actions, logprobs.astype(np.float32), values
        shifted = out - out.max(-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
        uniform = torch.rand(out.shape).clamp_(1e-20, 1.0).numpy()
        actions = (log_probs - np.log(-np.log(uniform))).argmax(-1)
        return actions, log_probs[np.arange(len(actions)), actions], values
