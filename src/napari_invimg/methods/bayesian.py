"""Deep Image Priors with uncertainty: Bayes-by-backprop and Monte-Carlo dropout.

Both fit a stochastic generator ``G_θ(z)`` (the loop and stopping rules of :mod:`.dip`), then draw
``n_samples`` images from it: their mean is the estimate and their spread the uncertainty.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from ..nets.dip import SkipNet, kl_divergence
from ..nets.init import materialize, use_generator
from .dip import (IN_CHANNELS, POSITIVE, STOP_PARAMS, DIPProblem, fit_network, input_noise_param, random_input,
                  refuse_kspace, skip_widths)
from .registry import ITERATIONS, Context, Estimate, Method, Param

__all__ = ["BayesDIP", "MCDropoutDIP", "draw_samples"]

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
        mean = samples.mean(0)
        centered = samples - mean
        std = (centered.abs() ** 2).mean(0).sqrt() if samples.is_complex() else centered.std(0)
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


#: Bayesian DIP stops on its budget: the running variance of its iterates is mostly the weight noise, which grows
#: for the first few hundred iterations, so that rule stops at its early minimum (iteration ~270–330 on coins, 64²
#: and 96²) while the mean is still improving (RESULTS.md §5, "Bayesian DIP on natural images")
_BAYES_STOP = tuple(replace(p, default="none") if p.name == "stop" else p for p in STOP_PARAMS)


class BayesDIP(_StochasticDIP):
    name = "bayes_dip"
    label = "Bayesian DIP (Bayes-by-backprop)"
    description = (
        "Mean-field Gaussian weights q(θ) = Π N(μ, softplus(ρ)²) of the DIP network, fitted by Bayes-by-backprop "
        "(−ELBO = E_q[−log p(y | A G_θ(z))] + β KL(q ‖ N(0, σ_p²)), local reparametrization); returns mean, std "
        "and samples of G_θ(z), θ ~ q."
    )
    reference = (
        "Blundell et al., Weight uncertainty in neural networks, ICML 2015; Kingma, Salimans & Welling, Variational "
        "dropout and the local reparameterization trick, NeurIPS 2015; Tölle et al., A mean-field variational "
        "inference approach to deep image prior for inverse problems in medical imaging, MIDL 2021."
    )
    params = (
        ITERATIONS(800),
        POSITIVE,
        *_BAYES_STOP,
        *_SHARED,
        # β = 1 (the ELBO) lets the 150k weights' noise grow to the prior's σ_p: the mean peaks near iteration 300
        # and falls 1–3 dB below DIP on natural images; β = 0.1 keeps it within 1 dB (RESULTS.md §5)
        Param("kl_weight", float, 0.1, 0.0, 1e6, doc="β, the weight of the KL term (1: the ELBO; < 1: a tempered "
              "posterior, sharper)", log_scale=True),
        Param("prior_sigma", float, 0.1, 1e-4, 10.0, doc="σ_p of the Gaussian prior on every weight", log_scale=True),
    )

    def network(self, problem, width, depth, kl_weight: float, prior_sigma: float) -> SkipNet:
        return SkipNet(IN_CHANNELS, problem.out_channels, len(problem.shape), skip_widths(width, depth), skip=4,
                       layer="bayes", prior_sigma=prior_sigma)

    def penalty(self, net, y, kl_weight: float, prior_sigma: float):
        if kl_weight == 0:
            return None
        return lambda: kl_weight * kl_divergence(net).to(y.device)


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
