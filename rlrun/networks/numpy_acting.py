"""Numpy forward passes of MLP policies, for acting on a few observations per env step.

At a few dozen rows a torch forward pass is dominated by per-op dispatch (a dozen ops per
step); the same matrix products in numpy cost a fraction of that. The Q-network
arrays are views of the torch parameters (CPU only), so they follow every optimiser step; the
actor-critic joins its actor and critic into copies, built once per rollout. Sampling noise
comes from torch's global generator, drawn exactly as the torch distributions draw it, so
seeding, checkpoints and resume are unchanged.
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
    """Hidden layers (affine maps, each followed by the activation) in numpy."""

    def __init__(self, layers: list[Layer], activation: str) -> None:
        self.layers = layers
        self.activation = _ACTIVATIONS[activation]

    @classmethod
    def of(cls, mlp: MLP) -> NumpyMLP:
        """Views of an `MLP`'s parameters (they follow its optimiser steps)."""
        return cls([_linear(layer) for layer in mlp.layers], mlp.activation_name)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = self.activation(_affine(layer, x))
        return x


def _same_depth(actor: ActorCritic, critic: ActorCritic) -> bool:
    a, c = actor.actor_torso, critic.critic_torso
    return len(a.layers) == len(c.layers) and a.activation_name == c.activation_name


def supports(actor: ActorCritic, critic: ActorCritic, num_rows: int) -> bool:
    """Whether `NumpyActorCritic(actor, critic)` can act for `num_rows` observations per step."""
    return (
        num_rows <= MAX_ROWS
        and supported_mlp(actor.actor_torso)
        and supported_mlp(critic.critic_torso)
        and _same_depth(actor, critic)
        and isinstance(actor.policy_head, (CategoricalHead, GaussianHead))
        and _on_cpu_float32(actor, critic)
    )


def supports_q(q_network: QNetwork, num_rows: int) -> bool:
    """Whether `NumpyQNetwork(q_network)` can act for `num_rows` observations per step."""
    return num_rows <= MAX_ROWS and supported_mlp(q_network.torso) and _on_cpu_float32(q_network)


class NumpyQNetwork:
    """Q(s, ·) of a `QNetwork` with an MLP torso, in numpy."""

    def __init__(self, q_network: QNetwork) -> None:
        self.torso = NumpyMLP.of(q_network.torso)
        self.head = _linear(q_network.head)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return _affine(self.head, self.torso(obs))


def _side_by_side(a: Layer, b: Layer) -> Layer:
    """One layer computing [x W_a + b_a, x W_b + b_b] from the same input x."""
    return np.concatenate([a[0], b[0]], 1), np.concatenate([a[1], b[1]])


def _joined_size(a: Layer, b: Layer) -> int:
    return (a[0].shape[0] + b[0].shape[0]) * (a[0].shape[1] + b[0].shape[1])


def _block_diagonal(a: Layer, b: Layer) -> Layer:
    """One layer computing [x_a W_a + b_a, x_b W_b + b_b] from the input [x_a, x_b]."""
    (weight_a, bias_a), (weight_b, bias_b) = a, b
    fan_in, fan_out = weight_a.shape
    weight = np.zeros((fan_in + weight_b.shape[0], fan_out + weight_b.shape[1]), np.float32)
    weight[:fan_in, :fan_out] = weight_a
    weight[fan_in:, fan_out:] = weight_b
    return weight, np.concatenate([bias_a, bias_b])


JOIN_MAX_MACS = 8 * 128 * 128
"""Largest rows × (joined weight size) at which one block-diagonal product of a deeper actor and
critic layer beats two separate products (chosen by timing both on CPU)."""


class NumpyActorCritic:
    """Samples actions of `actor`'s policy and values of `critic`'s value function in numpy.

    Actor and critic run as one network where that is cheaper: their first layers side by side
    (same input), deeper layers block-diagonally while `JOIN_MAX_MACS` allows, and the heads
    block-diagonally. The joined weights are a snapshot: build a new sampler after the
    parameters change (rollouts build one each).
    """

    def __init__(self, actor: ActorCritic, critic: ActorCritic, rows: int) -> None:
        """`rows`: observations per `act` call (envs), which decides what to join."""
        head = actor.policy_head
        self.gaussian = isinstance(head, GaussianHead)
        policy_layer = _linear(head.mean if self.gaussian else head.logits)
        value_layer = _linear(critic.value_head)
        actor_layers = [_linear(layer) for layer in actor.actor_torso.layers]
        activation = actor.actor_torso.activation_name
        self.branches: tuple[NumpyMLP, NumpyMLP] | None = None
        """Deeper actor and critic layers run separately (when joining them costs more)."""
        if actor is critic and actor.shared:
            self.torso = NumpyMLP(actor_layers, activation)
            self.head = _side_by_side(policy_layer, value_layer)
        else:
            critic_layers = [_linear(layer) for layer in critic.critic_torso.layers]
            deeper = list(zip(actor_layers[1:], critic_layers[1:]))
            torso = [_side_by_side(actor_layers[0], critic_layers[0])]
            if all(rows * _joined_size(a, c) <= JOIN_MAX_MACS for a, c in deeper):
                torso += [_block_diagonal(a, c) for a, c in deeper]
            else:
                self.branches = NumpyMLP(actor_layers[1:], activation), NumpyMLP(critic_layers[1:], activation)
            self.torso = NumpyMLP(torso, activation)
            self.actor_width = actor_layers[0][0].shape[1]
            self.head = _block_diagonal(policy_layer, value_layer)
        if self.gaussian:
            log_std = head.log_std.detach().numpy()[0].astype(np.float32)
            self.std = np.exp(log_std)
            self.logprob_offset = -float(log_std.sum()) - _HALF_LOG_2PI * len(log_std)
        self._noise = torch.empty(0)
        """Reused storage of the step's noise, drawn in place exactly as `torch.randn`/`torch.rand` draw."""

    def _forward(self, obs: np.ndarray) -> np.ndarray:
        """[policy outputs (means or logits), value] per row."""
        x = self.torso(obs)
        if self.branches is not None:
            actor_rest, critic_rest = self.branches
            x = np.concatenate([actor_rest(x[:, : self.actor_width]), critic_rest(x[:, self.actor_width :])], 1)
        return _affine(self.head, x)

    def _draw(self, shape: tuple[int, ...], gaussian: bool) -> np.ndarray:
        if self._noise.shape != shape:
            self._noise = torch.empty(shape)
        if gaussian:
            self._noise.normal_()
        else:
            self._noise.uniform_()
        return self._noise.numpy()

    def value(self, obs: np.ndarray) -> np.ndarray:
        return self._forward(obs)[:, -1]

    def act(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sampled actions, their log-probabilities, state values) for a batch of observations."""
        joint = self._forward(obs)
        out, values = joint[:, :-1], joint[:, -1]
        if self.gaussian:
            z = self._draw(out.shape, gaussian=True)
            actions = out + self.std * z
            logprobs = self.logprob_offset - 0.5 * np.einsum("ij,ij->i", z, z)
            return actions, logprobs.astype(np.float32), values
        shifted = out - out.max(-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
        uniform = np.maximum(self._draw(out.shape, gaussian=False), 1e-20)
        actions = (log_probs - np.log(-np.log(uniform))).argmax(-1)
        return actions, log_probs[np.arange(len(actions)), actions], values
