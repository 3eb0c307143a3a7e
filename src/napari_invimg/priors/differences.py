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


def _tracked(t: torch.Tensor) -> bool:
    """Autograd records operations on ``t`` (the in-place fast paths below are then not taken)."""
    return torch.is_grad_enabled() and t.requires_grad


def gradient(x: torch.Tensor, ndim: int, weights: Sequence[float] | None = None) -> torch.Tensor:
    """Forward differences ``(∇x)_i = w_i (x[k+1] − x[k])`` with zero at the far border; shape (ndim, *x.shape)."""
    if not _tracked(x):  # one subtraction per axis straight into the output (no append, no stack)
        out_t = torch.empty((ndim,) + tuple(x.shape), dtype=x.dtype, device=x.device)
        for i, w in enumerate(_weights(ndim, weights)):
            dim, n = x.ndim - ndim + i, x.shape[x.ndim - ndim + i]
            o = out_t[i]
            o.narrow(dim, n - 1, 1).zero_()
            if n > 1:
                inner = o.narrow(dim, 0, n - 1)
                torch.sub(x.narrow(dim, 1, n - 1), x.narrow(dim, 0, n - 1), out=inner)
                if w != 1.0:
                    inner.mul_(w)
        return out_t
    out = []
    for i, w in enumerate(_weights(ndim, weights)):
        d = difference(x, x.ndim - ndim + i)
        out.append(d * w if w != 1.0 else d)
    return torch.stack(out, dim=0)


def gradient_adjoint(g: torch.Tensor, ndim: int, weights: Sequence[float] | None = None) -> torch.Tensor:
    """``∇ᵀ g`` (minus the divergence) for :func:`gradient`."""
    if not _tracked(g):  # (∇ᵀg)[k] = g[k−1] − g[k] (g[−1] = g[n−1] = 0) accumulated in place into one output
        acc = torch.zeros(g.shape[1:], dtype=g.dtype, device=g.device)
        for i, w in enumerate(_weights(ndim, weights)):
            dim, n = acc.ndim - ndim + i, acc.shape[acc.ndim - ndim + i]
            if n == 1:
                continue
            gi = g[i].narrow(dim, 0, n - 1)
            acc.narrow(dim, 1, n - 1).add_(gi, alpha=w)
            acc.narrow(dim, 0, n - 1).sub_(gi, alpha=w)
        return acc
    out = None
    for i, w in enumerate(_weights(ndim, weights)):
        gi = g[i] * w if w != 1.0 else g[i]
        term = difference_adjoint(gi, gi.ndim - ndim + i)
        out = term if out is None else out + term
    return out


def laplacian(x: torch.Tensor, ndim: int, weights: Sequence[float] | None = None) -> torch.Tensor:
    """``∇ᵀ∇ x`` (a positive semi-definite discrete negative Laplacian)."""
    return gradient_adjoint(gradient(x, ndim, weights), ndim, weights)
