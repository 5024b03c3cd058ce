"""Optimizers and learning-rate schedules built from the `optimizer` config group.

`make_optimizer` packs the parameters it is given into one contiguous tensor (each parameter
and its gradient become views into a flat buffer). A step of a fused optimizer, gradient
clipping and zeroing then cost one kernel each instead of one per parameter tensor: on the
small networks of RL that makes an update several times faster.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from rlrun.config import OptimizerConfig


class NonFiniteError(RuntimeError):
    """Training produced a NaN or infinite gradient or parameter."""


class UnlinkedParameterError(RuntimeError):
    """A parameter no longer lives in its FlatOptimizer's flat buffer, so steps would miss it."""


class FlatOptimizer:
    """A torch optimizer over one flat parameter that backs a list of parameters.

    Use it like a torch optimizer: `zero_grad()`, `loss.backward()`, `clip_grad_norm(max)`,
    `step()`; `param_groups`, `state_dict()` and `load_state_dict()` behave as usual. Build
    it after the networks are on their device: moving them later, or replacing a parameter's
    `.data` or `.grad`, unlinks the views, and `step()` then raises UnlinkedParameterError
    instead of silently training a copy.

    `step()` refuses a gradient with a NaN or infinity: it raises NonFiniteError naming the
    optimizer, or, with `skip_nonfinite`, leaves parameters and moments untouched and counts
    the step in `skipped_steps` (`Run.track` sets both from `divergence.on_nan`).
    """

    def __init__(self, params: Iterable[nn.Parameter], cfg: OptimizerConfig) -> None:
        self.params = _unique(params)
        if any(getattr(p, "_rlrun_flat", False) for p in self.params):
            raise ValueError("a parameter is already owned by another optimizer")
        first = self.params[0]
        self.flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in self.params]))
        self.flat.grad = torch.zeros_like(self.flat)
        offset = 0
        for p in self.params:
            n = p.numel()
            p.data = self.flat.data[offset : offset + n].view_as(p)
            p.grad = self.flat.grad[offset : offset + n].view_as(p)
            p._rlrun_flat = True
            offset += n
        self._links = [(p, p.data_ptr(), p.grad.data_ptr()) for p in self.params]
        """Each parameter with the addresses of its value and gradient in the flat buffers."""
        self.optimizer = _torch_optimizer(self.flat, cfg, first.device)
        self.base_lr = cfg.lr
        """The configured learning rate, which `anneal_lr` scales by the schedule."""
        self.name = "optimizer"
        self.skip_nonfinite = False
        self.skipped_steps = 0

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Zero the flat gradient in place (gradients must stay views; `set_to_none` is ignored)."""
        self.flat.grad.zero_()

    def clip_grad_norm(self, max_norm: float) -> torch.Tensor:
        """Scale the gradient to global L2 norm ≤ max_norm (0: no clipping); returns the norm before."""
        norm = torch.linalg.vector_norm(self.flat.grad)
        if max_norm > 0:
            self.flat.grad.mul_((max_norm / (norm + 1e-6)).clamp(max=1.0))
        return norm

    def step(self) -> None:
        self._check_links()
        # The sum is non-finite iff an element is (or the sum overflows float range): one
        # reduction, 10x cheaper than an elementwise isfinite on a 67k-parameter network.
        if not bool(torch.isfinite(self.flat.grad.sum())):
            if not self.skip_nonfinite:
                raise NonFiniteError(f"non-finite gradient in {self.name}")
            self.skipped_steps += 1
            return
        self.optimizer.step()

    def _check_links(self) -> None:
        """Raise UnlinkedParameterError unless every parameter and its gradient are still views
        of the flat buffers (two address comparisons each, about a microsecond per parameter)."""
        for index, (p, data, grad) in enumerate(self._links):
            p_grad = p.grad
            if p.data_ptr() != data or p_grad is None or p_grad.data_ptr() != grad:
                raise UnlinkedParameterError(
                    f"parameter {index} {tuple(p.shape)} of {self.name} no longer lives in its flat "
                    "buffer (its module was moved to another device or dtype, or its .data or "
                    ".grad replaced, after the optimizer was built); build the optimizer after "
                    "moving the networks, and change values in place (param.data.copy_(...))"
                )

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state)


def _unique(params: Iterable[nn.Parameter]) -> list[nn.Parameter]:
    seen: dict[int, nn.Parameter] = {}
    for p in params:
        seen.setdefault(id(p), p)
    return list(seen.values())


class FlatAdam:
    """Adam (Kingma & Ba 2015) on one flat tensor; `decoupled=True` gives AdamW.

    Same update as torch.optim.Adam/AdamW, as one fused kernel (torch's `_fused_adam_`: one
    pass over the parameters instead of seven) and without torch.optim's per-step machinery
    (or its 1.5 s first-use import of the compiler stack).
    """

    def __init__(self, flat: nn.Parameter, cfg: OptimizerConfig, decoupled: bool) -> None:
        self.flat = flat
        self.decoupled = decoupled
        self.param_groups = [{"lr": cfg.lr, "betas": tuple(cfg.betas), "eps": cfg.eps,
                              "weight_decay": cfg.weight_decay}]
        self.steps = 0
        self.exp_avg = torch.zeros_like(flat)
        self.exp_avg_sq = torch.zeros_like(flat)
        self._step_count = torch.zeros((), dtype=torch.float32, device=flat.device)
        """`steps` as the tensor the fused kernel reads for its bias corrections."""

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        (beta1, beta2) = group["betas"]
        self.steps += 1
        self._step_count.fill_(self.steps)
        fused_step = torch._fused_adamw_ if self.decoupled else torch._fused_adam_
        fused_step([self.flat.data], [self.flat.grad], [self.exp_avg], [self.exp_avg_sq], [], [self._step_count],
                   lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
                   eps=group["eps"], amsgrad=False, maximize=False)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq,
                "lr": self.param_groups[0]["lr"]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        self.exp_avg.copy_(state["exp_avg"])
        self.exp_avg_sq.copy_(state["exp_avg_sq"])
        self.param_groups[0]["lr"] = float(state["lr"])


def _torch_optimizer(flat: nn.Parameter, cfg: OptimizerConfig, device: torch.device) -> FlatAdam | torch.optim.Optimizer:
    if cfg.name in ("adam", "adamw"):
        return FlatAdam(flat, cfg, decoupled=cfg.name == "adamw")
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop([flat], lr=cfg.lr, eps=cfg.eps, alpha=cfg.alpha, momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay, foreach=True)
    return torch.optim.SGD([flat], lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, fused=True)


def make_optimizer(params: Iterable[nn.Parameter], cfg: OptimizerConfig) -> FlatOptimizer:
    """The configured optimizer over `params` (packed into one flat tensor, see FlatOptimizer)."""
    return FlatOptimizer(params, cfg)


def lr_fraction(schedule: str, step: int, total_steps: int) -> float:
    """The fraction of the configured learning rate at global env step `step`: 1 (constant), or
    linear from 1 down to 0 at `total_steps`."""
    if schedule == "linear":
        return max(0.0, 1.0 - step / total_steps)
    return 1.0


def anneal_lr(optimizer: FlatOptimizer, schedule: str, step: int, total_steps: int) -> float:
    """Set `optimizer`'s learning rate to its configured one times `lr_fraction`; returns it."""
    lr = optimizer.base_lr * lr_fraction(schedule, step, total_steps)
    set_lr(optimizer, lr)
    return lr


def set_lr(optimizer: FlatOptimizer | torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
