"""Variational Bayes over the image: a Gaussian ``q(x)`` fitted by maximizing the reparametrized ELBO.

``q = N(μ, diag(d²) + U Uᵀ)`` (mean-field, optionally with a rank-``r`` factor ``U``). With
``x = μ + d ⊙ ε + U η`` the ELBO gradient only needs ``∇U(x)`` of the posterior potential, so the same
likelihoods and priors as the Langevin samplers serve (smoothed TV with an empirical-Bayes weight, or
the learned denoiser's Tweedie score).
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from ..operators.data_term import DataTerm
from ..operators.noise import NoiseModel
from ._posterior import WEIGHTS, DenoiserPrior, Posterior, complex_randn, load_denoiser, warm_start
from ._prior_fit import prior_fit_info
from .mcmc import HAND_CRAFTED, estimate_prior_weight, hand_crafted_prior
from .registry import ITERATIONS, Context, Estimate, Method, Param

__all__ = ["VariationalBayes"]


def _inner(g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Real inner product ``Re⟨g, x⟩`` summed over everything."""
    if x.is_complex():
        return (g.real * x.real + g.imag * x.imag).sum()
    return (g * x).sum()


class VariationalBayes(Method):
    name = "vb"
    label = "Variational Bayes (Gaussian q)"
    description = (
        "q(x) = N(μ, diag(d²) + UUᵀ) maximizing the ELBO E_q[log p(y|x) + log p(x)] + H(q) by Adam on "
        "reparametrized samples x = μ + d⊙ε + Uη; prior: smoothed TV/Hessian–Schatten/Tikhonov (θ by variational "
        "EM) or the learned denoiser's score. Returns μ, the marginal std and samples from q."
    )
    reference = (
        "Kingma & Welling, ICLR 2014 (reparametrization); Titsias & Lázaro-Gredilla, ICML 2014 (doubly stochastic "
        "VB); Ong, Nott & Smith, J. Comput. Graph. Stat. 27 (2018) 465 (low-rank Gaussian q)."
    )
    returns_std = True
    uncertainty = "posterior"
    params = (
        ITERATIONS(400),
        Param("n_samples", int, 32, 1, 100000, doc="samples drawn from the fitted q"),
        Param("rank", int, 0, 0, 64, doc="rank of the covariance factor U (0: mean-field)"),
        Param("mc_samples", int, 2, 1, 64, doc="Monte Carlo samples of the ELBO gradient per iteration"),
        Param("lr", float, 0.02, 1e-5, 1.0, doc="Adam learning rate, relative to the image's spread", log_scale=True),
        Param("prior", str, "tv", choices=HAND_CRAFTED + ("denoiser",),
              doc="a hand-crafted regularizer or the learned denoiser's score"),
        Param("envelope", str, "huber", choices=("huber", "moreau"), doc="smoothing of a hand-crafted prior"),
        Param("lam", float, None, 0.0, None, doc="prior weight θ (empty: variational EM)", log_scale=True),
        Param("epsilon", float, None, 0.0, None, log_scale=True,
              doc="Huber ε / Moreau–Yosida λ of a hand-crafted prior, or the denoiser's noise level (empty: 0.02)"),
        Param("denoiser", str, "drunet", doc="registered denoiser for prior='denoiser'"),
        WEIGHTS,
    )

    def run(self, y, A, noise: NoiseModel, ctx: Context, iterations: int, n_samples: int, rank: int,
            mc_samples: int, lr: float, prior: str, envelope: str, lam: float | None, epsilon: float | None,
            denoiser: str, weights: str) -> Estimate:
        t0 = time.perf_counter()
        likelihood = DataTerm(y, A, noise)
        mu0 = warm_start(likelihood, A.ndim)
        if rank > 0 and mu0.is_complex():
            raise ValueError("A low-rank covariance factor is available for real images only; use rank=0.")
        spread = float((mu0.abs() if mu0.is_complex() else mu0).std()) or 1.0
        parts = 2 if mu0.is_complex() else 1
        pixels = parts * mu0.numel()
        adapt = None
        if prior != "denoiser":
            potential, adapt = hand_crafted_prior(prior, envelope, lam, epsilon, mu0.unsqueeze(0), likelihood, A.ndim)
        else:
            potential = DenoiserPrior(load_denoiser(denoiser, weights), 0.02 if epsilon is None else epsilon, 1.0, A.ndim)
        posterior = Posterior(likelihood, [potential])

        mu = mu0.clone().requires_grad_(True)
        log_d = torch.full(mu0.shape, -0.5 * math.log(posterior.lipschitz), device=mu0.device).requires_grad_(True)
        factor = None
        if rank > 0:
            factor = (1e-3 * spread * ctx.randn((mu0.numel(), rank), offset=3)).requires_grad_(True)
        groups = [{"params": [mu], "lr": lr * spread}, {"params": [log_d], "lr": 5 * lr}]
        if factor is not None:
            groups.append({"params": [factor], "lr": lr * spread / math.sqrt(mu0.numel())})
        opt = torch.optim.Adam(groups)
        gen = ctx.generator(11)
        penalty_avg = None

        def draw(k: int) -> torch.Tensor:
            eps_ = complex_randn((k,) + tuple(mu0.shape), mu0, gen)
            x = mu + torch.exp(log_d) * eps_
            if factor is not None:
                eta = torch.randn((rank, k), generator=gen, device=gen.device).to(mu0.device)
                x = x + (factor @ eta).T.reshape((k,) + tuple(mu0.shape))
            return x

        def marginal_std() -> torch.Tensor:
            var = torch.exp(2 * log_d)
            if factor is not None:
                var = var + (factor**2).sum(1).reshape(mu0.shape)
            return var.sqrt()

        for k in range(1, iterations + 1):
            x = draw(mc_samples)
            with torch.no_grad():
                g = posterior.grad(x.detach())
                if adapt is not None:
                    p = float(adapt.penalty(x.detach()).mean())
                    penalty_avg = p if penalty_avg is None else 0.9 * penalty_avg + 0.1 * p
                    adapt.set_theta(estimate_prior_weight(penalty_avg, pixels, adapt.degree))
            entropy = parts * log_d.sum()
            if factor is not None:
                scaled = factor / torch.exp(log_d).reshape(-1, 1)
                entropy = entropy + 0.5 * torch.logdet(torch.eye(rank, device=mu0.device) + scaled.T @ scaled)
            loss = _inner(g, x) / mc_samples - entropy  # its gradient is that of −ELBO
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                std = marginal_std()
                ctx.keep(mu, std, iteration=k)
                ctx.log(entropy=float(entropy))
            ctx.step(k, iterations, mu.detach())
        with torch.no_grad():
            mean = mu.detach()
            std = marginal_std()
            samples = torch.cat([draw(1) for _ in range(n_samples)]).detach() if n_samples else None
        ctx.evaluations = posterior.operator_evaluations + posterior.network_evaluations
        info: dict[str, Any] = {
            "iterations": iterations,
            "rank": rank,
            "std_from": "q",
            "operator_evaluations": posterior.operator_evaluations,
            "network_evaluations": posterior.network_evaluations,
            "wall_seconds": time.perf_counter() - t0,
            "likelihood": "gaussian" if noise.gain == 0 else "gaussian approximation of poisson-gaussian",
        }
        if prior == "denoiser":
            info.update(prior_fit_info(likelihood, potential.denoiser, mean, A.ndim))
        else:
            info["prior_weight"] = potential.theta
            info["prior_weight_choice"] = "variational EM" if adapt is not None else "given"
        return Estimate(mean, std, samples, info)
