"""Tikhonov regularization ``R(x) = ½‖Lx‖²`` with ``L = I`` (energy) or ``L = ∇`` (smoothness).

Reference: Tikhonov, Soviet Math. Dokl. 4 (1963) 1035.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..operators.kernels import conjugate_gradient
from .base import SmoothRegularizer
from .differences import gradient, laplacian

__all__ = ["Tikhonov"]

OPERATORS = ("identity", "gradient")


class Tikhonov(SmoothRegularizer):
    """``½‖x‖²`` or ``½‖∇x‖²``; gradient ``LᵀL x``, prox ``(I + t LᵀL)⁻¹ x`` (closed form or CG)."""

    name = "tikhonov"
    label = "Tikhonov"

    def __init__(self, ndim: int = 2, operator: str = "gradient", weights: Sequence[float] | None = None):
        super().__init__(ndim)
        if operator not in OPERATORS:
            raise ValueError(f"Tikhonov operator must be one of {OPERATORS}, got {operator!r}.")
        self.operator = operator
        self.weights = None if weights is None else [float(w) for w in weights]

    def _normal(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.operator == "identity" else laplacian(x, self.ndim, self.weights)

    def value(self, x: torch.Tensor) -> torch.Tensor:
        c = x if self.operator == "identity" else gradient(x, self.ndim, self.weights)
        return 0.5 * c.abs().pow(2).sum()

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        return self._normal(x)

    @property
    def lipschitz(self) -> float:
        if self.operator == "identity":
            return 1.0
        w = self.weights or [1.0] * self.ndim
        return 4.0 * sum(wi * wi for wi in w)

    def prox(self, x, t, lower=None, upper=None, iterations: int = 100, tol: float = 1e-6):
        if lower is not None or upper is not None:
            return super().prox(x, t, lower, upper, iterations, tol)
        if self.operator == "identity":
            return x / (1 + t)
        return conjugate_gradient(lambda v: v + t * self._normal(v), x, x, iterations=iterations, tol=tol)
