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

__all__ = ["Metric", "fisher_metric", "hmc", "warmup_windows", "window_inverse_mass"]


class Metric:
    """``θ = θ̂ + T w`` with ``T = D^{-1/2}(I + V diag(c − 1) Vᵀ)``; ``c = 1/√(1 + s²)``."""

    def __init__(self, centre: torch.Tensor, diag: torch.Tensor, V: torch.Tensor | None = None,
                 s: torch.Tensor | None = None):
        self.centre = centre
        self.inv_sqrt_d = diag.rsqrt()
        self.V = V
        self.shrink = None if s is None else (1.0 / torch.sqrt(1.0 + s**2) - 1.0)
        self.frozen_information: torch.Tensor | None = None

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
                  centre: torch.Tensor, frozen: int = 0) -> Metric:
    """The metric ``D + mean over points of JᵀJ`` of the whitened residuals ``r(θ)`` (data ÷ σ, so that the
    negative log-likelihood is ``½‖r‖²``), Jacobians by one batched backward pass per point. ``frozen``: the last
    coordinates (e.g. hyper-parameters moved by other updates) are left out of the low-rank part, so that ``T`` is
    block diagonal and they keep the prior scale; their Fisher information ``D + diag(JᵀJ)`` is kept in
    ``metric.frozen_information``."""
    d = points.shape[-1]
    blocks = []
    for p in points:
        n = residuals(p.unsqueeze(0)).shape[-1]
        copies = p.detach().unsqueeze(0).repeat(n, 1).requires_grad_(True)
        r = residuals(copies)  # (n, n): row k is r(θ) again
        (jac,) = torch.autograd.grad(r.diagonal().sum(), copies)
        blocks.append(jac.detach())
    J = torch.cat(blocks, 0) / math.sqrt(len(blocks))
    information = None
    if frozen:
        information = prior_diag[-frozen:] + (J[:, -frozen:] ** 2).sum(0)
        J = J.clone()
        J[:, -frozen:] = 0.0
    scaled = J * prior_diag.rsqrt()
    _, s, vt = torch.linalg.svd(scaled, full_matrices=False)
    keep = s > 1e-6 * float(s.max()) if s.numel() else s > 0
    if d == 0:
        raise ValueError("Empty parameter vector.")
    metric = Metric(centre, prior_diag, vt[keep].T.contiguous(), s[keep])
    metric.frozen_information = information
    return metric


def hmc(potential: Callable[[torch.Tensor], torch.Tensor], w: torch.Tensor, ctx: Context, *, iterations: int,
        adapt: bool, step: float | torch.Tensor, target: float = 0.8, trajectory: float = 1.5, max_leapfrog: int = 64,
        inv_mass: torch.Tensor | None = None, record: Callable[[torch.Tensor, int], None] | None = None,
        progress: tuple[int, int] = (0, 0), offset: int = 0,
        between: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``iterations`` HMC transitions of every chain of ``w`` (chains, d), each chain with its own step size.

    ``potential(w)`` returns the negative log-density per chain. Momenta ``p ~ N(0, M)`` with the diagonal mass
    ``M = diag(1/inv_mass)`` (identity when ``None``; a zero entry holds that coordinate fixed, a Gibbs block);
    kinetic energy ``½ pᵀM⁻¹p``. Chain c takes
    ``⌈trajectory / step_c⌉`` leapfrog steps (at most ``max_leapfrog``; the batch runs the longest, the others
    wait), its step jittered by ±10% each transition. ``adapt``: tune each chain's step towards acceptance
    ``target`` by dual averaging (Hoffman & Gelman 2014, Algorithm 5: γ = 0.05, t₀ = 10, κ = 0.75, μ = log 10ε₀)
    and return the averaged steps ``exp(log ε̄)``. ``record(w, k)`` is called after every transition.
    ``between(w)``: another move that leaves the target invariant, applied after every transition (e.g. an
    interweaving step of the hyper-parameters). Returns (states, steps (chains,), mean acceptance per chain)."""
    gen = ctx.generator(1009 + offset)
    chains = w.shape[0]
    dt = w.dtype
    step_t = torch.as_tensor(step, dtype=torch.float64).expand(chains).clone()
    inv_m = None if inv_mass is None else inv_mass.to(dt).to(w.device)

    def value_grad(x):
        x = x.detach().requires_grad_(True)
        u = potential(x)
        (g,) = torch.autograd.grad(u.sum(), x)
        return u.detach(), g.detach()

    def kinetic(p):
        return 0.5 * ((p * p * inv_m) if inv_m is not None else p * p).sum(-1)

    u, g = value_grad(w)
    if not torch.isfinite(u).all():
        raise ValueError("The posterior density is not finite at the chains' start.")
    mu = torch.log(10 * step_t)
    h_bar = torch.zeros(chains, dtype=torch.float64)
    log_bar = torch.log(step_t)
    accepted = torch.zeros(chains, dtype=torch.float64)
    done, total = progress
    max_step = math.log(4.0)
    for k in range(1, iterations + 1):
        jitter = 0.9 + 0.2 * torch.rand(chains, generator=gen, dtype=torch.float64)
        eps64 = step_t * jitter
        n_steps = torch.clamp(torch.ceil(trajectory / step_t), 1, max_leapfrog).long()
        eps = eps64.to(dt).to(w.device)[:, None]
        p = torch.randn(w.shape, generator=gen, dtype=dt, device=gen.device).to(w.device)
        if inv_m is not None:  # coordinates with inverse mass 0 do not move (other updates move them)
            p = torch.where(inv_m > 0, p / inv_m.clamp(min=1e-30).sqrt(), torch.zeros_like(p))
        h0 = u + kinetic(p)
        x, gx, ux = w, g, u
        pn = p - 0.5 * eps * g
        longest = int(n_steps.max())
        for i in range(longest):
            moving = (i < n_steps).to(w.device)[:, None]
            drift = eps * (pn * inv_m if inv_m is not None else pn)
            x = torch.where(moving, x + drift, x)
            ux_new, gx_new = value_grad(x)
            ux = torch.where(moving[:, 0], ux_new, ux)
            gx = torch.where(moving, gx_new, gx)
            last = (i == n_steps - 1).to(w.device)[:, None]
            pn = torch.where(moving, pn - torch.where(last, 0.5, 1.0).to(dt) * eps * gx, pn)
        h1 = ux + kinetic(pn)
        log_alpha = torch.nan_to_num(h0 - h1, nan=-math.inf).clamp(max=0.0)
        accept = torch.log(torch.rand(chains, generator=gen, dtype=dt, device=gen.device).to(w.device)) < log_alpha
        w = torch.where(accept[:, None], x, w)
        u = torch.where(accept, ux, u)
        g = torch.where(accept[:, None], gx, g)
        if between is not None:
            w = between(w.detach())
            u, g = value_grad(w)
        rate = log_alpha.exp().double().cpu()
        accepted += rate
        if adapt:  # per chain
            h_bar = (1 - 1 / (k + 10)) * h_bar + (target - rate) / (k + 10)
            log_step = torch.clamp(mu - math.sqrt(k) / 0.05 * h_bar, max=max_step)
            eta = k**-0.75
            log_bar = eta * log_step + (1 - eta) * log_bar
            step_t = log_step.exp()
        if record is not None:
            record(w, k)
        ctx.log(step=float(step_t.mean()), acceptance=float(rate.mean()))
        ctx.step(done + k, total or iterations)
    if adapt:
        step_t = torch.clamp(log_bar, max=max_step).exp()
    return w, step_t, accepted / max(iterations, 1)


def warmup_windows(warmup: int) -> tuple[int, list[int], int]:
    """Stan's warm-up schedule scaled to ``warmup`` transitions: an initial buffer (15%, step size only), slow windows
    doubling in length from 1/8 of the rest (the metric re-estimated at the end of each; the last absorbs the
    remainder) and a terminal buffer (10%, step size only). Returns (initial, [windows], terminal)."""
    if warmup < 20:
        return warmup, [], 0
    first, last = max(3, round(0.15 * warmup)), max(2, round(0.1 * warmup))
    slow = warmup - first - last
    windows, size = [], max(5, slow // 7)
    while slow > 0:
        if slow < 3 * size:  # the last window takes what is left
            windows.append(slow)
            break
        windows.append(size)
        slow -= size
        size *= 2
    return first, windows, last


def window_inverse_mass(w: torch.Tensor, prior_count: float = 10.0) -> torch.Tensor:
    """The diagonal inverse mass from warm-up draws ``w`` (draws, d) in whitened coordinates: their variance per
    coordinate, shrunk towards 1 (the whitened scale) with the weight of ``prior_count`` draws (as Stan's
    regularization, Stan Reference Manual §15.2), floored at 1e-3."""
    n = w.shape[0]
    var = w.var(0) if n > 1 else torch.ones_like(w[0])
    return ((n * var + prior_count) / (n + prior_count)).clamp(min=1e-3)
