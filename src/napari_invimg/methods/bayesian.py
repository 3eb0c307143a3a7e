"""Deep Image Priors with uncertainty: Bayes-by-backprop and Monte-Carlo dropout.

MC-dropout DIP fits a stochastic generator ``G_θ(z)`` (the loop and stopping rules of :mod:`.dip`), then draws
``n_samples`` images from it: their mean is the estimate and their spread the uncertainty. Bayesian DIP fits plain
DIP first and then a Gaussian weight posterior around its fitted weights; its mean is DIP's estimate.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import Cancelled
from ..nets.dip import BayesConv, SkipNet, kl_divergence
from ..nets.init import materialize, use_generator
from .dip import (IN_CHANNELS, POSITIVE, STOP_PARAMS, DIPProblem, fit_network, input_noise_param, random_input,
                  refuse_kspace, skip_widths)
from .ensemble import sample_std
from .registry import ITERATIONS, Context, Estimate, Method, Param

__all__ = ["BayesDIP", "MCDropoutDIP", "bayes_from_point", "draw_samples", "fit_weight_posterior"]

def draw_samples(net: nn.Module, z: torch.Tensor, problem: DIPProblem, n: int, ctx: Context,
                 batch: int = 4) -> torch.Tensor:
    """``n`` stochastic forward passes ``G(z)`` as images ``(n, *shape)``, in batches, without gradients."""
    use_generator(net, ctx.generator(offset=11))  # the stochastic layers draw from the run's own stream
    out = []
    with torch.no_grad():
        for start in range(0, n, batch):
            b = min(batch, n - start)
            out.append(problem.image(net(z.expand(b, *z.shape[1:]))))
            ctx.evaluations += b
    return torch.cat(out)


class _StochasticDIP(Method):
    """Fit a stochastic skip network by :func:`fit_network`, then sample it."""

    needs_adjoint = False
    complex_images = True
    returns_std = True
    uncertainty = "posterior"

    @classmethod
    def supports(cls, A):
        return refuse_kspace(cls.name, A) or super().supports(A)

    @abstractmethod
    def network(self, problem: DIPProblem, width: int, depth: int, **kind: Any) -> SkipNet:
        """The stochastic generator."""

    def run(self, y, A, noise, ctx: Context, iterations: int, positive: bool, lr: float, stop: str, tau: float,
            window: int, patience: int, input_noise: float, n_samples: int, width: int, depth: int,
            **kind: Any) -> Estimate:
        problem = DIPProblem.for_operator(y, A, noise, positive)
        with torch.device("meta"):  # no draws from torch's global generator: initialized from the run's own
            net = self.network(problem, width, depth, **kind)
        net = use_generator(materialize(net, ctx.generator(offset=5, device="cpu")), ctx.generator(offset=13))
        z = random_input(ctx, (IN_CHANNELS, *problem.shape))
        penalty = self.penalty(net, y, **kind)
        _, info = fit_network(net, z, y, A, noise, problem, ctx, iterations=iterations, lr=lr, stop=stop, tau=tau,
                              window=window, patience=patience, input_noise=input_noise, penalty=penalty,
                              restore=True)
        samples = draw_samples(net, z, problem, n_samples, ctx)
        mean, std = samples.mean(0), sample_std(samples)
        info["parameters"] = sum(p.numel() for p in net.parameters())
        ctx.keep(mean, std, samples, **info)
        return Estimate(mean, std=std, samples=samples, info=info)

    def penalty(self, net: nn.Module, y: torch.Tensor, **kind: Any):
        """Extra term of the loss (none by default)."""
        return None


_SHARED = (
    input_noise_param(0.03),
    Param("n_samples", int, 16, 2, 1000, doc="images drawn from the fitted network"),
    Param("width", int, 16, 2, 256, doc="channels of the finest level"),
    Param("depth", int, 4, 1, 7, doc="number of down/up-sampling levels"),
)


def bayes_from_point(net: SkipNet, prior_sigma: float, init_sigma: float = 1e-3) -> SkipNet:
    """A Bayesian copy of a fitted plain :class:`SkipNet`: every convolution's ``μ`` = its fitted weights, ``σ`` =
    ``init_sigma``; the norms as fitted (the same architecture with ``layer="bayes"``)."""
    with torch.device("meta"):
        bayes = SkipNet(net.down[0][0][0].in_channels, net.head.out_channels, net.ndim,
                        tuple(d[1][0].out_channels for d in net.down), skip=net.skip_width, layer="bayes",
                        prior_sigma=prior_sigma)
    bayes = bayes.to_empty(device="cpu")  # every entry is set below: no draws
    rho0 = math.log(math.expm1(init_sigma))  # softplus⁻¹
    target = bayes.state_dict()
    with torch.no_grad():
        for key, value in net.state_dict().items():
            name = key if key in target else key + "_mu"
            target[name].copy_(value)
        for key, value in target.items():
            if key.endswith("_rho"):
                value.fill_(rho0)
    bayes.load_state_dict(target)
    return bayes.to(next(net.parameters()).device)


def fit_weight_posterior(net: SkipNet, z: torch.Tensor, y: torch.Tensor, A, noise, problem: DIPProblem, ctx: Context,
                         *, iterations: int, lr: float, kl_weight: float, first_step: int = 0) -> dict[str, Any]:
    """Fit only the weight spreads ``σ = softplus(ρ)`` of a Bayesian network, its means ``μ`` held at the fitted
    point: Adam on ``E_q[−log p(y | A G_θ(z))] + β KL(q ‖ N(0, σ_p²))`` (one reparametrized draw per step).

    With ``μ`` fixed this is mean-field variational inference around a point estimate, the variational analogue of a
    Laplace approximation (diagonal curvature balanced against the prior: ``σᵢ⁻² ≈ Hᵢᵢ + σ_p⁻²`` for β = 1).
    Logs ``posterior_loss`` and ``posterior_misfit`` (of the sampled output) per step.
    """
    for name, p in net.named_parameters():
        p.requires_grad_(name.endswith("_rho"))
    rhos = [p for name, p in net.named_parameters() if name.endswith("_rho")]
    optimizer = torch.optim.Adam(rhos, lr=lr, foreach=True)
    measured = A.n_measured() * (y.numel() // max(math.prod(A.out_shape), 1))
    total = first_step + iterations
    for j in range(1, iterations + 1):
        optimizer.zero_grad(set_to_none=True)
        x = problem.image(net(z))[0]
        fit = A.apply(x)
        loss = noise.nll(y, fit)
        if kl_weight > 0:
            loss = loss + kl_weight * kl_divergence(net).to(y.device)
        loss.backward()
        optimizer.step()
        ctx.evaluations += 1
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise ValueError("The weight-posterior fit diverged (non-finite loss); lower posterior_lr.")
        ctx.log(posterior_loss=loss_value, posterior_misfit=noise.misfit(y, fit.detach(), measured))
        ctx.step(first_step + j, total, x)
    for p in net.parameters():
        p.requires_grad_(True)
    sigmas = torch.cat([F.softplus(p.detach()).flatten() for p in rhos])
    return {"posterior_iterations": iterations, "weight_sigma_median": float(sigmas.median())}


class BayesDIP(_StochasticDIP):
    name = "bayes_dip"
    label = "Bayesian DIP (DIP, then a weight posterior)"
    description = (
        "Two phases: (1) plain DIP (its fit and stopping rule) gives the estimate x̂ and the fitted weights μ; (2) "
        "mean-field Gaussian weights q(θ) = Π N(μ, softplus(ρ)²) around them, only ρ fitted by Bayes-by-backprop "
        "(E_q[−log p(y | A G_θ(z))] + β KL(q ‖ N(0, σ_p²)), local reparametrization; a variational Laplace-like "
        "step). Returns mean x̂, and samples x̂ + G_θ(z) − mean_θ G_θ(z), θ ~ q (one weight draw per sample), with "
        "their std. With members > 1, K independently started DIP fits each get their own q: the mean is their "
        "average and the samples are the mixture (a deep ensemble of local posteriors)."
    )
    reference = (
        "Blundell et al., Weight uncertainty in neural networks, ICML 2015; Kingma, Salimans & Welling, Variational "
        "dropout and the local reparameterization trick, NeurIPS 2015; Tölle et al., A mean-field variational "
        "inference approach to deep image prior for inverse problems in medical imaging, MIDL 2021; Antorán et al., "
        "Uncertainty estimation for computed tomography with a linearised deep image prior, TMLR 2023; Wilson & "
        "Izmailov, Bayesian deep learning and a probabilistic perspective of generalization, NeurIPS 2020 (a mixture "
        "of local posteriors around independent fits)."
    )
    params = (
        ITERATIONS(2000),
        POSITIVE,
        *STOP_PARAMS,
        input_noise_param(0.03),
        # the std of 16 draws is noisy enough to lower its correlation with the error (camera 128²: 0.36 with 16,
        # 0.39 with 64–128; RESULTS.md §5); a draw costs a forward pass, ~1/50 of the fit's
        Param("n_samples", int, 64, 2, 1000, doc="images drawn from the weight posterior"),
        *_SHARED[2:],
        Param("posterior_iterations", int, 200, 0, 100000, doc="steps of the weight-posterior fit after DIP stops"),
        Param("posterior_lr", float, 0.05, 1e-5, 1.0, doc="Adam learning rate of the weight spreads ρ",
              log_scale=True),
        # β = 1 (the ELBO) lets most weights' σ reach σ_p: coverage 0.95–0.99 on camera and coins; β = 0.2 puts
        # both inside 0.80–0.97 (RESULTS.md §5, "Bayesian DIP in two phases")
        Param("kl_weight", float, 0.2, 0.0, 1e6, doc="β, the weight of the KL term (1: the ELBO; < 1: a tempered "
              "posterior, narrower)", log_scale=True),
        Param("prior_sigma", float, 0.1, 1e-4, 10.0, doc="σ_p of the Gaussian prior on every weight", log_scale=True),
        # 4 independently started fits gain 0.4–0.7 dB and 0.005–0.04 of std–error correlation, but over-cover
        # (0.97–0.98) two of three tuning images and cost 4×: not the default (RESULTS.md §5, "Bayesian DIP as an
        # ensemble")
        Param("members", int, 1, 1, 32, doc="independently started DIP fits, each with its own weight posterior; "
              "the mean is their average (each costs one DIP run)"),
    )

    def network(self, problem, width, depth, **kind: Any) -> SkipNet:
        return SkipNet(IN_CHANNELS, problem.out_channels, len(problem.shape), skip_widths(width, depth), skip=4)

    def run(self, y, A, noise, ctx: Context, iterations: int, positive: bool, lr: float, stop: str, tau: float,
            window: int, patience: int, input_noise: float, n_samples: int, width: int, depth: int,
            posterior_iterations: int, posterior_lr: float, kl_weight: float, prior_sigma: float,
            members: int) -> Estimate:
        if n_samples < 2 * members:
            raise ValueError(f"n_samples ({n_samples}) must be at least 2 per ensemble member ({members} members).")
        problem = DIPProblem.for_operator(y, A, noise, positive)
        per_member = n_samples // members
        # each member's share of the bar: its fit and weight-posterior steps; the bar ends on `tail` steps (combining)
        unit = iterations + posterior_iterations
        tail = max(1, unit // 100)
        estimates, spreads, fits = [], [], []
        for k in range(members):
            # member k runs on its own seed; seeds s·K … s·K + K − 1 do not overlap between run seeds s, and with one
            # member the run's own seed is used (the mean is then `dip`'s result, bit for bit). Its context is a
            # child: the caller's seed stays as it is, the bar goes on across members, the history is this run's.
            then = (members - 1 - k) * unit + tail
            sub = ctx.child(unit / (unit + then), then, seed=(ctx.seed * members + k) % 2**63, shared_history=True)
            try:
                estimate, draws, info = self._member(y, A, noise, sub, problem, per_member, iterations=iterations,
                                                     lr=lr, stop=stop, tau=tau, window=window, patience=patience,
                                                     input_noise=input_noise, width=width, depth=depth,
                                                     posterior_iterations=posterior_iterations,
                                                     posterior_lr=posterior_lr, kl_weight=kl_weight,
                                                     prior_sigma=prior_sigma)
            except Cancelled:
                if ctx.partial is None:  # cancelled in the first member: its selected image so far
                    ctx.partial = sub.partial
                raise
            finally:
                ctx.evaluations += sub.evaluations
            estimates.append(estimate)
            spreads.append(draws - draws.mean(0))
            fits.append(info)
            ctx.keep(torch.stack(estimates).mean(0), **info)
        # the mixture of the members' weight posteriors: mean = the members' average, variance = the mean of their
        # spreads plus the spread of their estimates (deep ensembles with a local posterior around each member)
        estimate = torch.stack(estimates).mean(0)
        samples = torch.cat([e + d for e, d in zip(estimates, spreads)])
        centered = samples - estimate
        std = ((centered.abs() ** 2).sum(0) / max(len(samples) - 1, 1)).sqrt()
        info = dict(fits[0])
        info["members"] = members
        if members > 1:
            info["member_stop_iterations"] = [m["stop_iteration"] for m in fits]
            info["member_iterations"] = [m["iterations"] for m in fits]
        ctx.keep(estimate, std, samples, **info)
        ctx.step(tail, tail)  # the bar's last steps: the members combined
        return Estimate(estimate, std=std, samples=samples, info=info)

    def _member(self, y, A, noise, ctx: Context, problem: DIPProblem, n_draws: int, *, iterations: int, lr: float,
                stop: str, tau: float, window: int, patience: int, input_noise: float, width: int, depth: int,
                posterior_iterations: int, posterior_lr: float, kl_weight: float, prior_sigma: float):
        """One member: DIP's estimate (phase 1), then ``n_draws`` outputs of the weight posterior around it (phase 2)."""
        # phase 1: exactly `dip` (same network, seeds and stopping), weights restored to the selected iteration
        with torch.device("meta"):
            net = self.network(problem, width, depth)
        net = materialize(net, ctx.generator(offset=5, device="cpu"))
        z = random_input(ctx, (IN_CHANNELS, *problem.shape))
        estimate, info = fit_network(net, z, y, A, noise, problem, ctx, iterations=iterations, lr=lr, stop=stop,
                                     tau=tau, window=window, patience=patience, input_noise=input_noise, restore=True,
                                     progress_total=iterations + posterior_iterations)
        # phase 2: the weight posterior around the fitted weights
        bayes = use_generator(bayes_from_point(net, prior_sigma), ctx.generator(offset=13))
        info.update(fit_weight_posterior(bayes, z, y, A, noise, problem, ctx, iterations=posterior_iterations,
                                         lr=posterior_lr, kl_weight=kl_weight, first_step=info["iterations"]))
        # a posterior draw is one network θ ~ q: weights shared by all pixels (the local reparametrization's
        # per-pixel noise is a training device; its std correlated less with the error: RESULTS.md §5)
        for m in bayes.modules():
            if isinstance(m, BayesConv):
                m.local_reparametrization = False
        draws = draw_samples(bayes, z, problem, n_draws, ctx)
        info["parameters"] = sum(p.numel() for p in bayes.parameters())
        return estimate, draws, info


class MCDropoutDIP(_StochasticDIP):
    name = "mc_dropout_dip"
    label = "MC-dropout DIP"
    description = (
        "DIP network with dropout before every 3×3 convolution, kept on when sampling: mean and std of G_θ(z) over "
        "dropout masks — an approximate posterior (variational with a fixed Bernoulli family), cheaper than bayes_dip."
    )
    reference = (
        "Gal & Ghahramani, Dropout as a Bayesian approximation, ICML 2016; Laves et al., Well-calibrated model "
        "uncertainty with temperature scaling for dropout variational inference, 2019."
    )
    params = (
        ITERATIONS(2000),
        POSITIVE,
        *STOP_PARAMS,
        *_SHARED,
        Param("dropout", float, 0.1, 0.01, 0.9, doc="dropout probability"),
    )

    def network(self, problem, width, depth, dropout: float) -> SkipNet:
        return SkipNet(IN_CHANNELS, problem.out_channels, len(problem.shape), skip_widths(width, depth), skip=4,
                       layer="dropout", dropout=dropout)
