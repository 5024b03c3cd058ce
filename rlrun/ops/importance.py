"""Per-action importance weights and importance-weighted value targets (book ch. 4; V-trace).

Off-policy data come from a behaviour policy μ (the book's π_β) while the target policy π is
improved. The book's eq. 4.7 / Alg. 4.1 weight step t by the per-action ratio
ρ_t = π(a_t|s_t) / μ(a_t|s_t); truncating it at a constant (ρ̄_t = min(c, ρ_t), as in ACER,
Retrace and V-trace) bounds the variance at the price of a bias towards μ's values.
The critic's targets are V-trace targets (Espeholt et al. 2018, eq. 1), the state-value form
of Retrace (Munos et al. 2016):
    v_t = V(s_t) + Σ_{k≥t} γ^{k-t} (Π_{i=t}^{k-1} c_i) δ_k,  δ_k = ρ̄_k (r_k + γ V(s_{k+1}) - V(s_k)),
with trace coefficients c_i = λ min(1, ρ_i). With ρ = 1 they are the GAE(γ, λ) returns.
"""

from __future__ import annotations

import torch


def truncated_importance_weights(
    target_logprobs: torch.Tensor, behaviour_logprobs: torch.Tensor, max_weight: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """ρ = π(a|s) / μ(a|s) from log-probabilities, and ρ̄ = min(max_weight, ρ); both without gradient."""
    rhos = (target_logprobs - behaviour_logprobs).detach().exp()
    return rhos, rhos.clamp(max=max_weight)


def vtrace(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminations: torch.Tensor,
    episode_ends: torch.Tensor,
    rhos: torch.Tensor,
    cs: torch.Tensor,
    gamma: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """V-trace targets v_t and policy-gradient advantages r_t + γ v_{t+1} - V(s_t), time-major [T, N].

    Args:
        rewards: r_t, shape [T, N].
        values: V(s_t) under the current critic, shape [T, N].
        next_values: V(s_{t+1}) of the real next state (the final observation where the
            episode was truncated at t), shape [T, N].
        terminations: 1 where s_{t+1} is terminal (no bootstrap), shape [T, N].
        episode_ends: 1 where the episode ended at t: the traces do not cross it, shape [T, N].
        rhos: truncated weights ρ̄_t applied to the TD errors, shape [T, N].
        cs: trace coefficients c_t (e.g. λ min(1, ρ_t)), shape [T, N].
        gamma: discount γ.

    Returns:
        (targets v_t, advantages r_t + γ v_{t+1} (1 - term_t) - V(s_t)); v_{t+1} is the
        bootstrap value next_values[t] past the rollout end or an episode end. The advantage
        is not multiplied by a weight: the policy gradient applies its own ρ̄_t.
    """
    not_terminal = 1.0 - terminations
    deltas = rhos * (rewards + gamma * next_values * not_terminal - values)
    carry = gamma * cs * (1.0 - episode_ends)
    corrections = torch.empty_like(deltas)
    running = torch.zeros_like(deltas[0])
    for t in range(deltas.shape[0] - 1, -1, -1):
        running = deltas[t] + carry[t] * running
        corrections[t] = running
    targets = values + corrections
    next_corrections = torch.zeros_like(corrections)
    next_corrections[:-1] = corrections[1:] * (1.0 - episode_ends[:-1])
    advantages = rewards + gamma * (next_values + next_corrections) * not_terminal - values
    return targets, advantages
