"""Hamiltonian Monte Carlo on a batch of chains, in coordinates whitened by a (low-rank + diagonal) metric.

The sampler works on ``w`` with ``θ = θ̂ + T w``, where ``T Tᵀ = M⁻¹`` for the metric
``M = D + Jᵀ J`` (``D`` the diagonal curvature of the prior, ``J`` the Jacobian of the whitened data
residuals: the Gauss–Newton / Fisher metric). With ``J D^{-1/2} = U S Vᵀ``,
``T = D^{-1/2} (I + V (diag(1/√(1+s²)) − I) Vᵀ)``: applying it costs O(d·r), r ≤ number of data. In ``w``
the posterior is close to a standard normal, so HMC with the identity mass, a step size tuned by dual
averaging and a fixed trajectory length mixes (Neal, Handbook of MCMC (2011) ch. 5; Hoffman & Gelman, JMLR
15 (2014) 1593, §3.2 for the dual averaging; Girolami & Calderhead, JRSS B 73 (2011) 123 for the Fisher
metric).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .registry import Context

__all__ = ["Metric", "fisher_metric", "hmc"]


class Metric:
    """``θ = θ̂ + T w`` with ``T = D^{-1/2}(I + V diag(c − 1) Vᵀ)``; ``c = 1/√(1 + s²)``."""

    def __init__(self, centre: torch.Tensor, diag: torch.Tensor, V: torch.Tensor | None = None,
                 s: torch.Tensor | None = None):
        self.centre = centre
        self.inv_sqrt_d = diag.rsqrt()
        self.V = V
        self.shrink = None if s is None else (1.0 / torch.sqrt(1.0 + s**2) - 1.0)

    def to_theta(self, w: torch.Tensor) -> torch.Tensor:
        """``θ̂ + T w`` for states ``w`` (chains, d)."""
        u = w
        if self.V is not None:
            u = u + (w @ self.V) * self.shrink @ self.V.T
        return self.centre + u * self.inv_sqrt_d

    def to_w(self, theta: torch.Tensor) -> torch.Tensor:
        """The inverse map ``T⁻¹(θ − θ̂)`` (``T⁻¹ = (I + V diag(1/c − 1) Vᵀ) D^{1/2}``)."""
        u = (theta - self.centre) / self.inv_sqrt_d
        if self.V is not None:
            u = u + (u @ self.V) * (1.0 / (self.shrink + 1.0) - 1.0) @ self.V.T
        return u


def fisher_metric(residuals: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor, prior_diag: torch.Tensor,
                  centre: torch.Tensor) -> Metric:
    """The metric ``D + mean over points of JᵀJ`` of the whitened residuals ``r(θ)`` (data ÷ σ, so that the
    negative log-likelihood is ``½‖r‖²``), Jacobians by one batched backward pass per point."""
    d = points.shape[-1]
    blocks = []
    for p in points:
        n = residuals(p.unsqueeze(0)).shape[-1]
        copies = p.detach().unsqueeze(0).repeat(n, 1).requires_grad_(True)
        r = residuals(copies)  # (n, n): row k is r(θ) again
        (jac,) = torch.autograd.grad(r.diagonal().sum(), copies)
        blocks.append(jac.detach())
    J = torch.cat(blocks, 0) / math.sqrt(len(blocks))
    scaled = J * prior_diag.rsqrt()
    _, s, vt = torch.linalg.svd(scaled, full_matrices=False)
    keep = s > 1e-6 * float(s.max()) if s.numel() else s > 0
    if d == 0:
        raise ValueError("Empty parameter vector.")
    return Metric(centre, prior_diag, vt[keep].T.contiguous(), s[keep])


def hmc(potential: Callable[[torch.Tensor], torch.Tensor], w: torch.Tensor, ctx: Context, *, iterations: int,
        adapt: bool, step: float, target: float = 0.8, trajectory: float = 1.5, max_leapfrog: int = 64,
        record: Callable[[torch.Tensor, int], None] | None = None, progress: tuple[int, int] = (0, 0),
        offset: int = 0, between: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[torch.Tensor, float, float]:
    """``iterations`` HMC transitions of every chain of ``w`` (chains, d) with the identity mass.

    ``potential(w)`` returns the negative log-density per chain. The number of leapfrog steps is
    ``⌈trajectory / step⌉`` (at most ``max_leapfrog``) and the step is jittered by ±10% each transition.
    ``adapt``: tune the step towards acceptance ``target`` by dual averaging and return the averaged step.
    ``record(w, k)`` is called after every transition. ``between(w)``: another move that leaves the target
    invariant, applied after every transition (e.g. an interweaving step of the hyper-parameters). Returns
    (states, step, mean acceptance)."""
    gen = ctx.generator(1009 + offset)
    chains = w.shape[0]

    def value_grad(x):
        x = x.detach().requires_grad_(True)
        u = potential(x)
        (g,) = torch.autograd.grad(u.sum(), x)
        return u.detach(), g.detach()

    u, g = value_grad(w)
    if not torch.isfinite(u).all():
        raise ValueError("The posterior density is not finite at the chains' start.")
    mu, h_bar, log_bar = math.log(10 * step), 0.0, math.log(step)
    accepted = 0.0
    done, total = progress
    for k in range(1, iterations + 1):
        eps = step * (0.9 + 0.2 * float(torch.rand((), generator=gen, dtype=torch.float64)))
        n_steps = min(max_leapfrog, max(1, math.ceil(trajectory / step)))
        p = torch.randn(w.shape, generator=gen, dtype=w.dtype, device=gen.device).to(w.device)
        h0 = u + 0.5 * (p * p).sum(-1)
        x, gx, pn = w, g, p - 0.5 * eps * g
        ux = u
        for i in range(n_steps):
            x = x + eps * pn
            ux, gx = value_grad(x)
            if i < n_steps - 1:
                pn = pn - eps * gx
        pn = pn - 0.5 * eps * gx
        h1 = ux + 0.5 * (pn * pn).sum(-1)
        log_alpha = torch.nan_to_num(h0 - h1, nan=-math.inf).clamp(max=0.0)
        accept = torch.log(torch.rand(chains, generator=gen, dtype=w.dtype, device=gen.device).to(w.device)) < log_alpha
        w = torch.where(accept[:, None], x, w)
        u = torch.where(accept, ux, u)
        g = torch.where(accept[:, None], gx, g)
        if between is not None:
            w = between(w.detach())
            u, g = value_grad(w)
        rate = float(log_alpha.exp().mean())
        accepted += rate
        if adapt:  # Hoffman & Gelman (2014), Algorithm 5: γ = 0.05, t₀ = 10, κ = 0.75
            h_bar = (1 - 1 / (k + 10)) * h_bar + (target - rate) / (k + 10)
            log_step = mu - math.sqrt(k) / 0.05 * h_bar
            eta = k**-0.75
            log_bar = eta * log_step + (1 - eta) * log_bar
            step = math.exp(min(log_step, math.log(4.0)))
        if record is not None:
            record(w, k)
        ctx.log(step=step, acceptance=rate)
        ctx.step(done + k, total or iterations)
    if adapt:
        step = math.exp(min(log_bar, math.log(4.0)))
    return w, step, accepted / max(iterations, 1)
