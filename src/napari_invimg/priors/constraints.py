"""Convex constraints as regularizers (indicator functions): positivity and total flux.

Their prox is the Euclidean projection onto the set; ``value`` is 0 inside and ``inf`` outside.
Reference for the simplex projection: Condat, Math. Program. 158 (2016) 575 (sort-based variant).
"""

from __future__ import annotations

import math

import torch

from .base import Regularizer, clip

__all__ = ["Positivity", "Flux", "project_flux"]


class Positivity(Regularizer):
    """``ι(x ≥ 0)``: prox = ``max(x, 0)``."""

    name = "positivity"
    label = "Positivity"

    def value(self, x: torch.Tensor) -> torch.Tensor:
        inside = bool((x >= -1e-6 * max(float(x.abs().max()), 1.0)).all())
        return torch.zeros((), device=x.device) if inside else torch.full((), float("inf"), device=x.device)

    def prox(self, x, t, lower=None, upper=None):
        return clip(x, 0.0 if lower is None else max(lower, 0.0), upper)


def project_flux(x: torch.Tensor, total: float, ndim: int, nonnegative: bool = True) -> torch.Tensor:
    """Projection of each image (last ``ndim`` axes) onto ``{u : Σu = total}`` (∩ ``{u ≥ 0}``)."""
    shape = x.shape
    flat = x.reshape(-1, math.prod(shape[len(shape) - ndim:]))
    if not nonnegative:
        out = flat + (total - flat.sum(dim=1, keepdim=True)) / flat.shape[1]
        return out.reshape(shape)
    if total <= 0:
        raise ValueError("A non-negative image needs a positive total flux.")
    srt = torch.sort(flat, dim=1, descending=True).values
    cums = torch.cumsum(srt, dim=1) - total
    k = torch.arange(1, flat.shape[1] + 1, device=x.device, dtype=flat.dtype)
    cond = srt - cums / k > 0
    rho = cond.to(torch.int64).cumsum(dim=1).argmax(dim=1, keepdim=True)  # last index where cond holds
    theta = cums.gather(1, rho) / (rho + 1).to(flat.dtype)
    return (flat - theta).clamp(min=0).reshape(shape)


class Flux(Regularizer):
    """``ι(Σx = total, x ≥ 0)`` (or only the sum): prox = projection onto the scaled simplex."""

    name = "flux"
    label = "Total flux"

    def __init__(self, ndim: int = 2, total: float = 1.0, nonnegative: bool = True):
        super().__init__(ndim)
        self.total, self.nonnegative = float(total), bool(nonnegative)

    def value(self, x: torch.Tensor) -> torch.Tensor:
        sums = x.reshape(-1, *x.shape[x.ndim - self.ndim:]).flatten(1).sum(dim=1)
        ok = bool(torch.allclose(sums, torch.full_like(sums, self.total), rtol=1e-4, atol=1e-6))
        if self.nonnegative:
            ok = ok and bool((x >= -1e-6 * max(abs(self.total), 1.0)).all())
        return torch.zeros((), device=x.device) if ok else torch.full((), float("inf"), device=x.device)

    def prox(self, x, t, lower=None, upper=None):
        if lower is not None or upper is not None:
            raise ValueError("The flux constraint takes no extra bounds (it includes positivity when nonnegative=True).")
        if x.is_complex():
            raise ValueError("The flux constraint applies to real images.")
        return project_flux(x, self.total, self.ndim, self.nonnegative)
