"""Natural-gradient and trust-region math shared by NPG, TNPG and TRPO.

All functions work on flat (1-D) parameter vectors. Notation and equation numbers
follow "A Gentle and Principled Introduction to Deep RL" (the book): Alg. 6.1 (natural policy
gradient), Alg. 7.1 and sections 7.8-7.9 (TRPO), and Appendix B (conjugate gradient).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

import torch
from torch import Tensor

MatVec = Callable[[Tensor], Tensor]


def flat_params(params: Iterable[Tensor]) -> Tensor:
    """Concatenate parameters into one detached 1-D tensor (a copy), in iteration order."""
    return torch.cat([p.detach().reshape(-1) for p in params])


def set_flat_params(params: Iterable[Tensor], flat: Tensor) -> None:
    """Copy the 1-D tensor ``flat`` into ``params`` in place, in ``flat_params`` order.

    Raises ``ValueError`` unless ``flat`` is 1-D with exactly as many elements as ``params``.
    """
    params = list(params)
    total = sum(p.numel() for p in params)
    if flat.dim() != 1 or flat.numel() != total:
        raise ValueError(f"expected a 1-D tensor of {total} elements, got {tuple(flat.shape)}")
    offset = 0
    with torch.no_grad():
        for p in params:
            p.copy_(flat[offset : offset + p.numel()].view_as(p))
            offset += p.numel()


def flat_grad(
    output: Tensor,
    params: Iterable[Tensor],
    create_graph: bool = False,
    retain_graph: bool | None = None,
) -> Tensor:
    """Gradient of the scalar ``output`` with respect to ``params`` as one 1-D tensor.

    Uses ``torch.autograd.grad``, so ``.grad`` fields are untouched; parameters that ``output``
    does not depend on contribute zeros. ``create_graph`` and ``retain_graph`` are passed through
    (``retain_graph=None`` means the same as ``create_graph``).
    """
    params = list(params)
    grads = torch.autograd.grad(
        output, params, create_graph=create_graph, retain_graph=retain_graph, allow_unused=True
    )
    return torch.cat(
        [(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, params)]
    )


def surrogate(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor) -> Tensor:
    """The importance-sampled surrogate L(θ') = mean_i ρ_i Â_i, with the ratios
    ρ_i = π_θ'(a_i|s_i) / π_θ(a_i|s_i) = exp(log π_θ'(a_i|s_i) - log π_θ(a_i|s_i)) (eq. 7.41)."""
    return ((logprobs - old_logprobs).exp() * advantages).mean()


def conjugate_gradient(
    matvec: MatVec, b: Tensor, iters: int = 10, residual_tol: float = 1e-10
) -> Tensor:
    """Solve ``A x = b`` for symmetric positive definite ``A`` given ``matvec(v) = A v``.

    Conjugate gradient of the book's Appendix B (Alg. B.1, eqs. B.19-B.23) from ``x_0 = 0``: at
    most ``iters`` iterations of one ``matvec`` call each, stopping early once the squared residual
    norm ``r^T r`` is below ``residual_tol`` (it also converges for semi-definite ``A``). In
    TNPG/TRPO ``A`` is the damped Fisher matrix and ``b`` the policy gradient, so the result is
    the natural gradient direction ``x = F^-1 g`` (eq. 7.49).
    """
    x = torch.zeros_like(b)
    r = b.clone()  # r_0 = b - A x_0 with x_0 = 0
    p = r.clone()
    r_dot_r = torch.dot(r, r)
    for _ in range(iters):
        if r_dot_r < residual_tol:
            break
        a_p = matvec(p)
        alpha = r_dot_r / torch.dot(p, a_p)
        x = x + alpha * p
        r = r - alpha * a_p
        new_r_dot_r = torch.dot(r, r)
        p = r + (new_r_dot_r / r_dot_r) * p
        r_dot_r = new_r_dot_r
    return x


def kl_hessian_vector_product(
    kl_fn: Callable[[], Tensor], params: Iterable[Tensor], damping: float
) -> MatVec:
    """Build ``v -> (H_KL + damping * I) v``, the damped Fisher product via the KL Hessian.

    Book section 7.8.2 (eqs. 7.62-7.63): ``kl_fn()`` returns the scalar mean KL between the frozen
    old policy (computed without gradient) and the current policy, at the current parameters, so
    its gradient is zero there and its Hessian is the average Fisher matrix. The KL gradient is
    built once with ``create_graph=True``; each call is then one backward pass of
    ``(grad KL)^T v`` with ``v`` detached, as section 7.8.2 requires.
    """
    params = list(params)
    kl_grad = flat_grad(kl_fn(), params, create_graph=True)

    def hvp(v: Tensor) -> Tensor:
        v = v.detach()
        return flat_grad(torch.dot(kl_grad, v), params, retain_graph=True) + damping * v

    return hvp


def _score_products(
    logprob_fn: Callable[[], Tensor], params: list[Tensor]
) -> tuple[MatVec, MatVec, int]:
    """Return ``(v -> J v, w -> J^T w, N)`` for the N x P per-sample score matrix ``J``.

    Row ``i`` of ``J`` is ``g_i = grad log pi(a_i|s_i)``, and ``J`` is never formed: ``J^T w`` is
    one backward pass of ``w . log_probs``, and ``J v`` differentiates the backward ``J^T u``
    (linear in a dummy ``u``) with respect to ``u``, the double-backward Jacobian-vector product.
    """
    log_probs = logprob_fn()
    if log_probs.dim() != 1:
        raise ValueError(f"logprob_fn must return a 1-D tensor, got shape {tuple(log_probs.shape)}")
    u = torch.zeros_like(log_probs, requires_grad=True)
    jt_u = flat_grad(torch.dot(log_probs, u), params, create_graph=True)

    def jvp(v: Tensor) -> Tensor:
        return torch.autograd.grad(torch.dot(jt_u, v.detach()), u, retain_graph=True)[0]

    def vjp(w: Tensor) -> Tensor:
        return flat_grad(torch.dot(log_probs, w.detach()), params, retain_graph=True)

    return jvp, vjp, log_probs.numel()


def fisher_vector_product_from_logprobs(
    logprob_fn: Callable[[], Tensor], params: Iterable[Tensor], damping: float
) -> MatVec:
    """Build ``v -> (F + damping * I) v`` for the score outer-product Fisher of N samples.

    ``F = (1/N) sum_i g_i g_i^T`` with ``g_i = grad log pi(a_i|s_i)`` is the Fisher estimate of the
    book's Alg. 6.1 and section 7.8.1; ``logprob_fn()`` returns the 1-D tensor of the N
    log-probabilities of the taken actions at the current parameters. Each call computes
    ``J^T (J v) / N`` with two backward passes and never stores the N x P scores. This
    sampled-action Fisher equals the KL Hessian of ``kl_hessian_vector_product`` only in
    expectation over the actions.
    """
    params = list(params)
    jvp, vjp, n = _score_products(logprob_fn, params)

    def fvp(v: Tensor) -> Tensor:
        return vjp(jvp(v)) / n + damping * v.detach()

    return fvp


def explicit_fisher(logprob_fn: Callable[[], Tensor], params: Iterable[Tensor]) -> Tensor:
    """Form the full P x P Fisher ``F = (1/N) sum_i g_i g_i^T`` for non-truncated NPG.

    This is the matrix of the book's Alg. 6.1, with ``logprob_fn`` as in
    ``fisher_vector_product_from_logprobs``. The N x P score matrix ``J`` is built from P
    Jacobian-vector products (one per column) and ``F = J^T J / N`` is exactly symmetric
    positive semi-definite; meant for tiny policies only.
    """
    params = list(params)
    jvp, _, n = _score_products(logprob_fn, params)
    size = sum(p.numel() for p in params)
    basis = torch.eye(size, dtype=params[0].dtype, device=params[0].device)
    scores = torch.stack([jvp(e) for e in basis], dim=1)  # N x P, row i is g_i^T
    return scores.T @ scores / n


def natural_step_size(direction: Tensor, fvp_direction: Tensor, max_kl: float) -> float:
    """Return ``sqrt(2 * max_kl / (x^T F x))`` for ``direction = x``, ``fvp_direction = F x``.

    Scaling ``x`` by it puts the step on the boundary ``0.5 * step^T F step = max_kl`` of the
    quadratic KL trust region: the NPG step size of the book's Alg. 6.1 and the TRPO step limit
    ``eta`` of eq. 7.50 and Alg. 7.1. Returns 0.0 when ``x^T F x <= 0``, e.g. for a zero gradient.
    """
    x_f_x = torch.dot(direction, fvp_direction).item()
    if x_f_x <= 0.0:
        return 0.0
    return (2.0 * max_kl / x_f_x) ** 0.5


class LineSearchResult(NamedTuple):
    """Outcome of ``backtracking_line_search``.

    ``step_fraction`` is the applied fraction of the full step (0.0 when rejected), ``backtracks``
    how many times the step was shrunk, and ``improvement`` and ``kl`` describe the parameters
    left in place.
    """

    accepted: bool
    step_fraction: float
    backtracks: int
    improvement: float
    kl: float


def backtracking_line_search(
    evaluate: Callable[[Tensor], tuple[float | Tensor, float | Tensor]],
    full_step: Tensor,
    max_kl: float,
    max_backtracks: int = 10,
    backtrack_ratio: float = 0.5,
) -> LineSearchResult:
    """Shrink ``full_step`` until it improves the surrogate within the KL trust region.

    Book Alg. 7.1 and section 7.9: tries ``backtrack_ratio**j * full_step`` for
    ``j = 0, ..., max_backtracks`` and accepts the first with surrogate improvement ``> 0`` and
    mean KL ``<= max_kl`` (NaN never passes). ``evaluate(step)`` must set the policy parameters to
    ``old + step``, where ``old`` are the parameters before the search, and return
    ``(surrogate_improvement, mean_kl)`` there. If every candidate fails, ``evaluate`` is called
    once more with a zero step to restore ``old``; so on return the parameters always equal
    ``old + step_fraction * full_step``, and ``improvement`` and ``kl`` are those returned by the
    last ``evaluate`` call.
    """
    for j in range(max_backtracks + 1):
        fraction = backtrack_ratio**j
        improvement, kl = (float(value) for value in evaluate(fraction * full_step))
        if improvement > 0.0 and kl <= max_kl:
            return LineSearchResult(True, fraction, j, improvement, kl)
    improvement, kl = (float(value) for value in evaluate(torch.zeros_like(full_step)))
    return LineSearchResult(False, 0.0, max_backtracks, improvement, kl)
