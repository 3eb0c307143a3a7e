"""Finite differences on the last ``ndim`` axes (Neumann boundary), the building block of TV,
gradient-Tikhonov and Hessian priors. ``gradient`` and ``gradient_adjoint`` are exact adjoints."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["difference", "difference_adjoint", "gradient", "gradient_adjoint", "laplacian"]


def _weights(ndim: int, weights: Sequence[float] | None) -> list[float]:
    if weights is None:
        return [1.0] * ndim
    w = list(weights)
    if len(w) != ndim:
        raise ValueError(f"Need one difference weight per axis ({ndim}), got {len(w)}.")
    return w


def difference(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Forward difference ``x[k+1] − x[k]`` along ``dim``, zero at the far border."""
    return torch.diff(x, dim=dim, append=x.narrow(dim, x.shape[dim] - 1, 1))


def difference_adjoint(g: torch.Tensor, dim: int) -> torch.Tensor:
    """Adjoint of :func:`difference` along ``dim`` (a backward difference of the zero-padded input)."""
    dim = dim % g.ndim
    if g.shape[dim] == 1:  # an axis of one pixel has no differences
        return torch.zeros_like(g)
    gi = g.narrow(dim, 0, g.shape[dim] - 1)  # the last difference is identically zero
    zero = torch.zeros_like(gi.narrow(dim, 0, 1))
    return torch.cat([zero, gi], dim=dim) - torch.cat([gi, zero], dim=dim)


def gradient(x: torch.Tensor, ndim: int, weights: Sequence[float] | None = None) -> torch.Tensor:
    """Forward differences ``(∇x)_i = w_i (x[k+1] − x[k])`` with zero at the far border; shape (ndim, *x.shape)."""
    out = []
    for i, w in enumerate(_weights(ndim, weights)):
        d = difference(x, x.ndim - ndim + i)
        out.append(d * w if w != 1.0 else d)
    return torch.stack(out, dim=0)


def gradient_adjoint(g: torch.Tensor, ndim: int, weights: Sequence[float] | None = None) -> torch.Tensor:
    """``∇ᵀ g`` (minus the divergence) for :func:`gradient`."""
    out = None
    for i, w in enumerate(_weights(ndim, weights)):
        gi = g[i] * w if w != 1.0 else g[i]
        term = difference_adjoint(gi, gi.ndim - ndim + i)
        out = term if out is None else out + term
    return out


def laplacian(x: torch.Tensor, ndim: int, weights: Sequence[float] | None = None) -> torch.Tensor:
    """``∇ᵀ∇ x`` (a positive semi-definite discrete negative Laplacian)."""
    return gradient_adjoint(gradient(x, ndim, weights), ndim, weights)
