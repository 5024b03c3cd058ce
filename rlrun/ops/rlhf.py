"""Reward and advantage math of RL for language models (book ch. 15).

Responses are batch-major `[B, m]`: B responses of m tokens each, all of the same length.
- `kl_shaped_rewards`: the per-token rewards of eqs. 15.7-15.9 with a coefficient β;
- `response_advantages`: GAE(γ, λ) (book ch. 5) over the response tokens, the episode ending
  with its last token; with γ = 1 and λ = 1 the returns are the reward-to-go of eq. 15.11;
- `proportional_kl_coef`: the proportional controller of β (Ziegler et al. 2019, section 2.2);
- `group_advantages`: GRPO's group-relative advantages (Shao et al. 2024, section 4.1.2);
- `kl_k3`: the per-token KL estimate of GRPO's loss (Shao et al. 2024, eq. 4).
"""

from __future__ import annotations

import torch

from rlrun.ops.returns import gae, standardize


def kl_shaped_rewards(
    logprobs: torch.Tensor, ref_logprobs: torch.Tensor, scores: torch.Tensor, beta: float
) -> torch.Tensor:
    """r_k = -β log(π^RL(w_k)/π^SFT(w_k)) for every token, plus r̂(x, y) on the last one (eq. 15.8).

    Args:
        logprobs: log π^RL of the response tokens, shape [B, m].
        ref_logprobs: log π^SFT (the frozen reference) of the same tokens, shape [B, m].
        scores: the reward model's r̂(x, y) per response, shape [B].
        beta: KL coefficient β (the book's eq. 15.8 has β = 1).

    Returns:
        Per-token rewards, shape [B, m].
    """
    rewards = -beta * (logprobs - ref_logprobs)
    rewards[:, -1] += scores
    return rewards


def response_advantages(
    rewards: torch.Tensor, values: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE advantages and returns of responses that terminate after their last token.

    Args:
        rewards: r_k, shape [B, m].
        values: V(s_k) for k = 0..m-1, shape [B, m].
        gamma: discount γ (1 in the book's eq. 15.11).
        lam: GAE λ; λ = 1 gives returns G(τ_t) = Σ_{k≥t} γ^(k-t) r_k, the reward-to-go.

    Returns:
        (advantages, returns), each [B, m], returns = advantages + values.
    """
    ends = torch.zeros_like(rewards)
    ends[:, -1] = 1.0
    next_values = torch.cat([values[:, 1:], torch.zeros_like(values[:, :1])], 1)
    advantages, returns = gae(rewards.T, values.T, next_values.T, ends.T, ends.T, gamma, lam)
    return advantages.T, returns.T


def proportional_kl_coef(beta: float, kl: float, kl_target: float, gain: float = 0.1) -> float:
    """β (1 + K_β e), e = clip(KL / KL_target - 1, -0.2, 0.2), K_β = `gain` (Ziegler et al. 2019)."""
    error = min(max(kl / kl_target - 1.0, -0.2), 0.2)
    return beta * (1.0 + gain * error)


def group_advantages(scores: torch.Tensor, group_size: int, eps: float = 1e-6) -> torch.Tensor:
    """(r_i - mean(r_group)) / std(r_group) per response, groups of `group_size` consecutive rows.

    Args:
        scores: rewards of B = groups * group_size responses, the G responses of one prompt adjacent.
        group_size: G (at least 2).

    Returns:
        Advantages, shape [B]; zero within a group of equal rewards.
    """
    return standardize(scores.view(-1, group_size), dim=1, eps=eps).reshape(-1)


def kl_k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """π_ref/π - log(π_ref/π) - 1 per token: an unbiased, non-negative estimate of KL(π || π_ref)."""
    log_ratio = ref_logprobs - logprobs
    return log_ratio.exp() - log_ratio - 1.0
