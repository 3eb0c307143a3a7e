"""Numerical kernels shared by operators, regularizers and methods: inner product, conjugate gradients,
power iteration, FISTA momentum and the discrepancy-principle search."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = ["conjugate_gradient", "discrepancy_search", "dot", "power_iteration", "fista_momentum"]


def dot(a: torch.Tensor, b: torch.Tensor) -> float:
    """Real inner product ``Re <a, b>``."""
    return float(torch.real(torch.vdot(a.reshape(-1), b.reshape(-1))))


def power_iteration(apply: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, iterations: int) -> float:
    """Largest eigenvalue of a Hermitian positive semi-definite ``M`` (``apply``) from the start ``x`` by
    ``iterations`` power iterations ``x ← Mx/‖Mx‖`` (von Mises 1929); approaches from below."""
    x = x / torch.linalg.vector_norm(x)
    s = 0.0
    with torch.no_grad():
        for _ in range(iterations):
            z = apply(x)
            s = float(torch.linalg.vector_norm(z))
            if s == 0.0:
                break
            x = z / s
    return s


def fista_momentum(t: float) -> float:
    """The next FISTA step parameter ``t⁺ = (1 + √(1 + 4t²))/2`` (Beck & Teboulle, SIAM J. Imaging Sci. 2
    (2009) 183); the extrapolation weight is ``(t − 1)/t⁺``."""
    return (1 + math.sqrt(1 + 4 * t * t)) / 2


def conjugate_gradient(
    normal: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    x0: torch.Tensor | None = None,
    iterations: int = 100,
    tol: float = 1e-6,
    callback: Callable[[int, torch.Tensor], None] | None = None,
    preconditioner: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Solve ``M x = b`` for a Hermitian positive semi-definite ``M`` (Hestenes & Stiefel 1952).

    ``preconditioner``: a Hermitian positive definite ``P ≈ M⁻¹`` (preconditioned CG, Golub & Van Loan,
    *Matrix Computations*, §11.5); it changes the number of steps, not the solution. Stops when
    ``‖r‖ ≤ tol ‖b‖`` or after ``iterations`` steps.
    """
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - normal(x) if x0 is not None else b.clone()
    z = preconditioner(r) if preconditioner is not None else r
    p = z.clone()
    rz = dot(r, z)
    rr = rz if preconditioner is None else dot(r, r)
    bnorm = math.sqrt(max(dot(b, b), 1e-30))
    for k in range(iterations):
        if math.sqrt(rr) <= tol * bnorm or rz <= 0:
            break
        Mp = normal(p)
        pMp = dot(p, Mp)
        if pMp <= 0:
            break
        alpha = rz / pMp
        x = x + alpha * p
        r = r - alpha * Mp
        z = preconditioner(r) if preconditioner is not None else r
        rz_new = dot(r, z)
        rr = rz_new if preconditioner is None else dot(r, r)
        p = z + (rz_new / rz) * p
        rz = rz_new
        if callback is not None:
            callback(k, x)
    return x


def discrepancy_search(
    misfit_of: Callable[[float], float],
    target: float = 1.0,
    low: float = 1e-8,
    high: float = 1e4,
    steps: int = 24,
) -> float:
    """Regularization weight ``λ`` with ``misfit(λ) ≈ target`` by bisection in ``log λ``.

    ``misfit`` must grow with ``λ`` (Morozov's discrepancy principle; Morozov, Soviet Math. Dokl. 7
    (1966) 414). Returns the end of the bracket when the target is outside it.
    """
    lo, hi = math.log(low), math.log(high)
    if misfit_of(math.exp(lo)) >= target:
        return math.exp(lo)
    if misfit_of(math.exp(hi)) <= target:
        return math.exp(hi)
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        if misfit_of(math.exp(mid)) > target:
            hi = mid
        else:
            lo = mid
    return math.exp(0.5 * (lo + hi))
