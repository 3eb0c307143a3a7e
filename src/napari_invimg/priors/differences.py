"""Finite differences on the last ``ndim`` axes (Neumann boundary), the building block of TV,
gradient-Tikhonov and Hessian priors. ``gradient`` and ``gradient_adjoint`` are exact adjoints."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["gradient", "gradient_adjoint", "laplacian"]


def _weights(ndim: int, weights: Sequence[float] | None) -> list[float]:
    if weights is None:
        return [1.0] * ndim
    w = list(weights)
    if len(w) != ndim:
        raise ValueError(f"Need one difference weight per axis ({ndim}), got {len(w)}.")
    return w


def gradient(x: torch.Tensor, ndim: int, weights: Sequence[float] | None = None) -> torch.Tensor:
    """Forward differences ``(∇x)_i = w_i (x[k+1] − x[k])`` with zero at the far border; shape (ndim, *x.shape)."""
    out = []
    for i, w in enumerate(_weights(ndim, weights)):
        dim = x.ndim - ndim + i
        d = torch.diff(x, dim=dim, append=x.narrow(dim, x.shape[dim] - 1, 1))
        out.append(d * w if w != 1.0 else d)
    return torch.stack(out, dim=0)


def gradient_adjoint(g: torch.Tensor, ndim: int, weights: Sequence[float] | None = None) -> torch.Tensor:
    """``∇ᵀ g`` (minus the divergence) for :func:`gradient`."""
    out = None
    for i, w in enumerate(_weights(ndim, weights)):
        gi = g[i] * w if w != 1.0 else g[i]
        dim = gi.ndim - ndim + i
        n = gi.shape[dim]
        gi = gi.narrow(dim, 0, n - 1)  # the last difference is identically zero
        zero = torch.zeros_like(gi.narrow(dim, 0, 1))
        term = torch.cat([zero, gi], dim=dim) - torch.cat([gi, zero], dim=dim)
        out = term if out is None else out + term
    return out


def laplacian(x: torch.Tensor, ndim: int, weights: Sequence[float] | None = None) -> torch.Tensor:
    """``∇ᵀ∇ x`` (a positive semi-definite discrete negative Laplacian)."""
    return gradient_adjoint(gradient(x, ndim, weights), ndim, weights)
