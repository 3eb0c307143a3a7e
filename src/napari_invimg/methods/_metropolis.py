"""Adaptive Metropolis–Hastings for a few parameters, on a batch of chains.

Warm-up: Gaussian random-walk proposals ``x' = x + λ L z`` (``L Lᵀ = Σ``), the scale λ tuned by Robbins–Monro
towards acceptance 0.3 (Roberts, Gelman & Gilks, Ann. Appl. Prob. 7 (1997) 110: 0.234 in high dimension, a little
more in 2–5) and ``Σ`` re-estimated from the pooled draws of each of Stan's slow warm-up windows (Haario, Saksman &
Tamminen, Bernoulli 7 (2001) 223). Sampling (no adaptation, so the chain is a valid Markov chain): each transition
is, with probability ``independence``, an independence proposal from a multivariate Student t (ν = 5) fitted to the
last warm-up window (inflated by ``t_inflation``; acceptance ``min(1, π(x')q(x) / π(x)q(x'))``), otherwise the adapted
random walk. Both kernels leave the target invariant, hence so does their mixture (Tierney, Ann. Stat. 22 (1994)
1701). Where the target is close to its Gaussian fit, the independence moves give nearly independent draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ._hmc import warmup_windows

__all__ = ["adaptive_metropolis"]

#: degrees of freedom of the independence proposal
T_DOF = 5.0


def _t_log_density(x: torch.Tensor, mean: torch.Tensor, chol: torch.Tensor) -> torch.Tensor:
    """Unnormalized log density of the multivariate t (ν = T_DOF, location ``mean``, scale ``chol cholᵀ``)."""
    z = torch.linalg.solve_triangular(chol, (x - mean).T, upper=False)
    k = x.shape[-1]
    return -0.5 * (T_DOF + k) * torch.log1p((z * z).sum(0) / T_DOF)


def _draw_t(mean: torch.Tensor, chol: torch.Tensor, chains: int, gen: torch.Generator) -> torch.Tensor:
    k = mean.shape[0]
    z = torch.randn((chains, k), generator=gen, dtype=mean.dtype)
    chi2 = (torch.randn((chains, int(T_DOF)), generator=gen, dtype=mean.dtype) ** 2).sum(1)  # χ²_ν, ν integer
    return mean + (z @ chol.T) * torch.sqrt(T_DOF / chi2)[:, None]


def _stable_cholesky(cov: torch.Tensor) -> torch.Tensor:
    cov = 0.5 * (cov + cov.T)
    jitter = 1e-10 * float(cov.diagonal().abs().max().clamp(min=1e-30))
    eye = torch.eye(cov.shape[0], dtype=cov.dtype)
    for _ in range(8):
        chol, info = torch.linalg.cholesky_ex(cov + jitter * eye)
        if int(info) == 0:
            return chol
        jitter *= 100.0
    raise ValueError("The proposal covariance is not positive definite.")


def adaptive_metropolis(neg_log_density: Callable[[torch.Tensor], tuple[torch.Tensor, Any]], start: torch.Tensor,
                        gen: torch.Generator, *, warmup: int, iterations: int, cov: torch.Tensor,
                        record: Callable[[torch.Tensor, Any, int], None] | None = None,
                        independence: float = 0.3, t_inflation: float = 1.6, target: float = 0.3,
                        step: Callable[[int], None] | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """``warmup`` adaptive then ``iterations`` fixed Metropolis–Hastings transitions of every chain of ``start``
    (chains, k) (module docstring). ``neg_log_density(x)`` returns the negative log-density per chain (``inf``
    outside the support) and an auxiliary tensor with the chains first (e.g. a Cholesky factor), carried with the
    accepted states and passed to ``record(x, aux, k)`` after every sampling transition k = 1 … iterations.
    ``cov``: the initial proposal covariance (k, k), e.g. a Laplace approximation's. ``step(i)``: called after every
    transition (progress). Returns the final states and a dict of the acceptance rates (per kernel) and the adapted
    proposal."""
    chains, k = start.shape
    x = start.clone()
    u, aux = neg_log_density(x)
    if not torch.isfinite(u).all():
        raise ValueError("The target density is not finite at the chains' start.")
    chol = _stable_cholesky(cov)
    log_scale = math.log(2.38 / math.sqrt(k))
    dt = start.dtype

    def accept(proposal, log_ratio_extra=None, mask=None):
        nonlocal x, u, aux
        u_new, aux_new = neg_log_density(proposal)
        log_alpha = u - u_new
        if log_ratio_extra is not None:
            log_alpha = log_alpha + log_ratio_extra
        log_alpha = torch.nan_to_num(log_alpha, nan=-math.inf).clamp(max=0.0)
        take = torch.log(torch.rand(chains, generator=gen, dtype=dt)) < log_alpha
        if mask is not None:
            take &= mask
        x = torch.where(take[:, None], proposal, x)
        u = torch.where(take, u_new, u)
        if aux is not None:
            shape = (chains,) + (1,) * (aux.dim() - 1)
            aux = torch.where(take.reshape(shape), aux_new, aux)
        return log_alpha.exp(), take

    initial, windows, terminal = warmup_windows(warmup)
    ends = set()
    position = initial
    for length in windows:
        position += length
        ends.add(position)
    window: list[torch.Tensor] = []
    warm_rates: list[float] = []
    for i in range(1, warmup + 1):
        z = torch.randn((chains, k), generator=gen, dtype=dt)
        rate, _ = accept(x + math.exp(log_scale) * z @ chol.T)
        warm_rates.append(float(rate.mean()))
        log_scale += (i ** -0.6) * (float(rate.mean()) - target) * 2.0
        if i > initial:
            window.append(x.clone())
        if i in ends:  # the covariance of this window's draws, pooled over chains, shrunk towards the previous one
            draws = torch.cat(window, 0)
            n = draws.shape[0]
            est = torch.cov(draws.T).reshape(k, k) if n > k + 1 else cov
            cov = (n * est + 10.0 * cov) / (n + 10.0)
            chol = _stable_cholesky(cov)
            last_window = draws
            window = []
        if step is not None:
            step(i)
    fit = locals().get("last_window")
    if fit is None:  # no slow window (a short warm-up): fit the t to the draws after the initial buffer, or the start
        fit = torch.cat(window, 0) if len(window) > 1 else x.clone()
    t_mean = fit.mean(0)
    t_cov = torch.cov(fit.T).reshape(k, k) if fit.shape[0] > k + 1 else cov
    t_chol = _stable_cholesky(t_cov) * t_inflation
    rates: dict[str, list[float]] = {"random_walk": [], "independence": []}
    per_chain = torch.zeros(chains, dtype=dt)
    for i in range(1, iterations + 1):
        independent = torch.rand(chains, generator=gen, dtype=dt) < independence
        walk = x + math.exp(log_scale) * torch.randn((chains, k), generator=gen, dtype=dt) @ chol.T
        fresh = _draw_t(t_mean, t_chol, chains, gen)
        proposal = torch.where(independent[:, None], fresh, walk)
        # independence kernel: add log q(x) − log q(x'); random walk: symmetric
        extra = torch.where(independent, _t_log_density(x, t_mean, t_chol) - _t_log_density(proposal, t_mean, t_chol),
                            torch.zeros(chains, dtype=dt))
        rate, _ = accept(proposal, extra)
        per_chain += rate / iterations
        if independent.any():
            rates["independence"].append(float(rate[independent].mean()))
        if (~independent).any():
            rates["random_walk"].append(float(rate[~independent].mean()))
        if record is not None:
            record(x, aux, i)
        if step is not None:
            step(warmup + i)
    mean_rate = {key: (sum(v) / len(v) if v else float("nan")) for key, v in rates.items()}
    return x, {"acceptance_warmup": sum(warm_rates) / max(len(warm_rates), 1),
               "acceptance_random_walk": mean_rate["random_walk"],
               "acceptance_independence": mean_rate["independence"], "acceptance_per_chain": per_chain,
               "random_walk_scale": math.exp(log_scale), "proposal_covariance": cov, "t_mean": t_mean,
               "t_covariance": t_cov}
