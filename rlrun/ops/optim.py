"""Optimizers and learning-rate schedules built from the `optimizer` config group."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from rlrun.config import OptimizerConfig


def make_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """Build the configured optimizer (foreach kernels: one fused launch per step)."""
    params = list(params)
    if cfg.name == "adam":
        return torch.optim.Adam(
            params, lr=cfg.lr, eps=cfg.eps, betas=tuple(cfg.betas),
            weight_decay=cfg.weight_decay, foreach=True,
        )
    if cfg.name == "adamw":
        return torch.optim.AdamW(
            params, lr=cfg.lr, eps=cfg.eps, betas=tuple(cfg.betas),
            weight_decay=cfg.weight_decay, foreach=True,
        )
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=cfg.lr, eps=cfg.eps, alpha=cfg.alpha, momentum=cfg.momentum,
            weight_decay=cfg.weight_decay, foreach=True,
        )
    return torch.optim.SGD(
        params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, foreach=True
    )


def scheduled_lr(cfg: OptimizerConfig, step: int, total_steps: int) -> float:
    """Learning rate at global env step `step`: constant, or linear from lr down to 0."""
    if cfg.schedule == "linear":
        return cfg.lr * max(0.0, 1.0 - step / total_steps)
    return cfg.lr


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def clip_grad_norm(params: list[torch.nn.Parameter], max_norm: float) -> float:
    """Clip the global gradient norm to max_norm (0 disables) and return the norm before."""
    if max_norm > 0:
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True))
    grads = [p.grad for p in params if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))) if grads else 0.0
