"""Deep Image Priors with uncertainty: Bayes-by-backprop and Monte-Carlo dropout.

MC-dropout DIP fits a stochastic generator ``G_θ(z)`` (the loop and stopping rules of :mod:`.dip`), then draws
``n_samples`` images from it: their mean is the estimate and their spread the uncertainty. Bayesian DIP fits plain
DIP first and then a Gaussian weight posterior around its fitted weights; its mean is DIP's estimate, and its
variance mixes the weight posterior's with the learned prior's (``learned_share``: the mean square distance of
``diffpir``'s draws from that estimate).
"""

from __future__ import annotations

import math
import warnings
from abc import abstractmethod
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import Cancelled
from ..nets.dip import BayesConv, SkipNet, kl_divergence
from ..nets.init import materialize, use_generator
from ..validation import unit_range_scale
from .dip import (IN_CHANNELS, POSITIVE, STOP_PARAMS, DIPProblem, fit_network, input_noise_param, random_input,
                  refuse_kspace, skip_widths)
from .ensemble import sample_std
from .registry import ITERATIONS, Context, Estimate, Method, Param, get, run_first_estimate

__all__ = ["BayesDIP", "MCDropoutDIP", "bayes_from_point", "draw_samples", "fit_weight_posterior",
           "mix_learned_spread"]

#: the method whose draws carry the learned prior's posterior (the shipped denoiser's), at its defaults (16 draws)
LEARNED_POSTERIOR = "diffpir"

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


def mix_learned_spread(estimate: torch.Tensor, spread: torch.Tensor, learned: torch.Tensor,
                       share: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples and std of the variance mix ``std² = (1 − w) s² + w m²`` around ``estimate`` (``w = share``).

    ``spread``: the weight posterior's centered draws ``(n, *shape)``, ``s² = Σ spread² / (n − 1)``; ``learned``:
    another posterior's draws ``(K, *shape)``, ``m² = mean_k (learned_k − estimate)²`` — that posterior's expected
    squared error of ``estimate`` (its variance plus its mean's squared distance from ``estimate``). Sample ``i`` is
    ``estimate + √(1 − w) spread_i + √w ℓ_i`` with ``ℓ_i = ±(learned_{i mod K} − estimate)`` (the sign alternating
    with each pass over the K draws), centered over the samples: the samples' mean is ``estimate``, their second
    moment about it is the mix's up to the cross terms; the std returned is the mix's own. With ``learned`` the draws
    of ``diffpir`` (the shipped denoiser's posterior given the data) this puts spread on texture the DIP estimate
    smoothed away, where a weight draw of its network puts none (RESULTS.md §5, helper ``bdip7``).
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"learned_share must lie in [0, 1], got {share}.")
    n, k = spread.shape[0], learned.shape[0]
    if n < 2 or k < 1 or learned.shape[1:] != spread.shape[1:]:
        raise ValueError(f"Need ≥ 2 weight draws and ≥ 1 learned draw of one shape, got {tuple(spread.shape)} and "
                         f"{tuple(learned.shape)}.")
    dev = learned - estimate
    index = torch.arange(n, device=spread.device)
    sign = 1.0 - 2.0 * ((index // k) % 2).to(spread.real.dtype)
    part = dev[index % k] * sign.reshape(-1, *([1] * (spread.ndim - 1)))
    part = part - part.mean(0)
    samples = estimate + math.sqrt(1.0 - share) * spread + math.sqrt(share) * part
    s2 = (spread.abs() ** 2).sum(0) / (n - 1)
    m2 = (dev.abs() ** 2).mean(0)
    return samples, ((1.0 - share) * s2 + share * m2).sqrt()


class BayesDIP(_StochasticDIP):
    name = "bayes_dip"
    label = "Bayesian DIP (DIP, then a weight posterior)"
    description = (
        "Two phases: (1) plain DIP (its fit and stopping rule) gives the estimate x̂ and the fitted weights μ; (2) "
        "mean-field Gaussian weights q(θ) = Π N(μ, softplus(ρ)²) around them, only ρ fitted by Bayes-by-backprop "
        "(E_q[−log p(y | A G_θ(z))] + β KL(q ‖ N(0, σ_p²)), local reparametrization; a variational Laplace-like "
        "step). Returns mean x̂, and samples x̂ + G_θ(z) − mean_θ G_θ(z), θ ~ q (one weight draw per sample), with "
        "their std; learned_share w mixes in the learned prior: std² = (1 − w) s² + w m², m² the mean square distance "
        "of diffpir's draws (the shipped denoiser's posterior) from x̂. With members > 1, K independently started DIP "
        "fits each get their own q: the mean is their average and the samples are the mixture (a deep ensemble of "
        "local posteriors)."
    )
    reference = (
        "Blundell et al., Weight uncertainty in neural networks, ICML 2015; Kingma, Salimans & Welling, Variational "
        "dropout and the local reparameterization trick, NeurIPS 2015; Tölle et al., A mean-field variational "
        "inference approach to deep image prior for inverse problems in medical imaging, MIDL 2021; Antorán et al., "
        "Uncertainty estimation for computed tomography with a linearised deep image prior, TMLR 2023; Wilson & "
        "Izmailov, Bayesian deep learning and a probabilistic perspective of generalization, NeurIPS 2020 (a mixture "
        "of local posteriors around independent fits); Zhu et al., DiffPIR, CVPR Workshops 2023 (the learned "
        "posterior's draws)."
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
        # the weight posterior's std is DIP's own edge map and misses the texture DIP smoothed away; the learned
        # prior's posterior puts spread there: std–error correlation +0.04 on the tuning images, +0.09 on photographs
        # the denoiser never saw (RESULTS.md §5, helper `bdip7`); diffpir's 16 draws cost a few % of the DIP fit.
        # w = 0.4 was chosen on blurs, but on §5's 50% inpainting it over-covers (0.994; 0.965 without), a bar row
        # met today, and it reaches no unmet bar (held-out photographs 0.357 / 0.191 < 0.4): an option, off by default
        Param("learned_share", float, 0.0, 0.0, 1.0, doc="w: share of the variance from the learned prior, "
              "std² = (1 − w) s² + w m², m² = mean square distance of diffpir's draws from the mean (0: the weight "
              "posterior alone; 0.4 on photographs; skipped where diffpir cannot run)"),
    )

    def network(self, problem, width, depth, **kind: Any) -> SkipNet:
        return SkipNet(IN_CHANNELS, problem.out_channels, len(problem.shape), skip_widths(width, depth), skip=4)

    def run(self, y, A, noise, ctx: Context, iterations: int, positive: bool, lr: float, stop: str, tau: float,
            window: int, patience: int, input_noise: float, n_samples: int, width: int, depth: int,
            posterior_iterations: int, posterior_lr: float, kl_weight: float, prior_sigma: float,
            members: int, learned_share: float) -> Estimate:
        if n_samples < 2 * members:
            raise ValueError(f"n_samples ({n_samples}) must be at least 2 per ensemble member ({members} members).")
        problem = DIPProblem.for_operator(y, A, noise, positive)
        # equal draws per member, so that the samples' mean is the members' average (the mixture's mean)
        per_member = n_samples // members
        if per_member * members != n_samples:
            warnings.warn(f"bayes_dip draws {per_member * members} samples, not {n_samples}: {per_member} per ensemble "
                          f"member ({members} members).", UserWarning, stacklevel=2)
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
        info["n_samples"] = len(samples)
        skipped = self._learned_skip(A) if learned_share > 0 else None
        if learned_share > 0 and skipped is None:
            ctx.keep(estimate, std, samples, **info)  # what Cancel shows during the learned draws
            learned = self._learned_draws(y, A, noise, ctx, tail)
            samples, std = mix_learned_spread(estimate, centered, learned, learned_share)
        info["learned_share"] = learned_share if skipped is None else 0.0
        if skipped is not None:
            info["learned_share_skipped"] = skipped
        if members > 1:
            info["member_stop_iterations"] = [m["stop_iteration"] for m in fits]
            info["member_iterations"] = [m["iterations"] for m in fits]
        ctx.keep(estimate, std, samples, **info)
        ctx.step(tail, tail)  # the bar's last steps: the members combined
        return Estimate(estimate, std=std, samples=samples, info=info)

    @staticmethod
    def _learned_skip(A) -> str | None:
        """Why the learned posterior cannot run on ``A`` (``None``: it can)."""
        from ..priors import denoiser_names

        if "drunet" not in denoiser_names():
            return "the learned denoiser is not installed"
        return get(LEARNED_POSTERIOR).supports(A)

    @staticmethod
    def _learned_draws(y, A, noise, ctx: Context, then: int) -> torch.Tensor:
        """``diffpir``'s draws at its defaults, in the data's units: it runs as ``ni.reconstruct`` runs a unit-range
        method (data and noise divided by their robust maximum, the draws multiplied back)."""
        scale, outer = unit_range_scale(y), ctx.output_scale
        ctx.output_scale = outer * scale  # its previews in the caller's units
        try:
            est = run_first_estimate(LEARNED_POSTERIOR, y / scale, A, noise.scaled(1.0 / scale), ctx, 0.05,
                                     then)
        finally:
            ctx.output_scale = outer
        ctx.evaluations += int(est.info.get("network_evaluations", 0) + est.info.get("operator_evaluations", 0))
        return est.samples * scale

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
