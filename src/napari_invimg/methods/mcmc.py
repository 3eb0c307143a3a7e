"""Langevin MCMC: ULA and MALA with hand-crafted priors, PnP-ULA with the learned denoiser.

All chains run together as one batch. The mean and std are the running moments of every state after
burn-in (all chains pooled); ``n_samples`` thinned states are returned as samples, and the chains'
split-R̂ and effective sample size go into ``info`` so the user can see whether they mixed.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from ..errors import Cancelled
from ..operators.base import LinearOperator
from ..operators.data_term import DataTerm
from ..operators.noise import NoiseModel
from ..priors.base import get_regularizer
from ..priors.denoisers import denoiser_unit_range
from ..uncertainty import mixing_summary, split_rhat
from ._posterior import (WEIGHTS, BoxPenalty, DenoiserPrior, Posterior, RegularizerPotential, image_unit,
                         complex_randn, load_denoiser, warm_start)
from ._prior_fit import prior_fit_info
from .classical import RichardsonLucy
from .registry import ITERATIONS, Context, Estimate, Method, Param, run_first_estimate

__all__ = ["ULA", "MALA", "PnPULA", "langevin", "estimate_prior_weight", "hand_crafted_prior", "HAND_CRAFTED"]

#: regularizers (priors.get_regularizer) the Langevin samplers and VB accept as priors
HAND_CRAFTED = ("tv", "hessian", "tikhonov")

#: a running split-R̂ (max over pixels) is logged for a watching front end once each chain has this many draws, at
#: most every RUNNING_RHAT_INTERVAL_S seconds
RUNNING_RHAT_MIN_DRAWS = 4
RUNNING_RHAT_INTERVAL_S = 1.0
#: MALA's step size is tuned during burn-in towards this acceptance rate (Roberts & Rosenthal, JRSS B 60 (1998) 255)
MALA_TARGET_ACCEPTANCE = 0.574


def _count_pixels(x: torch.Tensor, ndim: int) -> int:
    n = math.prod(x.shape[x.ndim - ndim:])
    return 2 * n if x.is_complex() else n


def estimate_prior_weight(penalty: float, pixels: int, degree: int = 1) -> float:
    """Empirical-Bayes weight of a ``degree``-homogeneous prior ``p(x) ∝ exp(−θ g(x))``: the fixed point
    ``θ = n / (degree · E[g(x) | y])`` of the marginal likelihood (Vidal, De Bortoli, Pereyra & Durmus, SIAM J
    Imaging Sci 13 (2020) 1945), with ``E[g]`` estimated by ``penalty`` (an average over states)."""
    return pixels / (degree * max(float(penalty), 1e-30))


def hand_crafted_prior(name: str, envelope: str, lam: float | None, epsilon: float | None, x0: torch.Tensor,
                       likelihood: DataTerm, ndim: int) -> tuple[RegularizerPotential, RegularizerPotential | None]:
    """The potential ``θ R̃`` of a registered regularizer, and itself again when ``θ`` is to be estimated.

    Defaults: Huber ``ε`` = 10% of the starting image's std; Moreau–Yosida ``λ = 1/L_y`` (Durmus et al. 2018);
    ``θ`` from the starting image, then re-estimated on the states (:func:`estimate_prior_weight`).
    """
    if name not in HAND_CRAFTED:
        raise ValueError(f"prior must be one of {HAND_CRAFTED}, got {name!r}.")
    reg = get_regularizer(name, ndim=ndim)
    if epsilon is None:
        spread = float((x0.abs() if x0.is_complex() else x0).std()) or 1.0
        epsilon = 0.1 * spread if envelope == "huber" else 1.0 / likelihood.lipschitz
    if envelope == "huber" and hasattr(reg, "smoothing"):
        reg.smoothing = float(epsilon)
    potential = RegularizerPotential(reg, 1.0 if lam is None else lam, envelope, epsilon)
    if lam is not None:
        return potential, None
    pixels = _count_pixels(x0, ndim)
    potential.set_theta(estimate_prior_weight(float(potential.penalty(x0).mean()), pixels, potential.degree))
    return potential, potential


def langevin(
    posterior: Posterior,
    x0: torch.Tensor,
    ctx: Context,
    *,
    iterations: int,
    burn_in: int,
    thinning: int,
    n_samples: int,
    step: float,
    ndim: int,
    metropolis: bool = False,
    adapt_weight: Any = None,
) -> dict[str, Any]:
    """Run ``x ← x − δ∇U(x) + √(2δ) ξ`` on a batch of chains ``x0`` (chains, *image).

    ``δ = step / L`` with ``L`` the Lipschitz constant of ``∇U`` (ULA: Roberts & Tweedie, Bernoulli 2 (1996)
    341; Durmus & Moulines, Ann. Appl. Probab. 27 (2017) 1551). ``metropolis`` adds the MALA accept–reject
    step and tunes ``δ`` during burn-in. ``adapt_weight``: a prior with ``set_theta`` and ``penalty`` whose
    weight is re-estimated during burn-in (:func:`estimate_tv_weight`).
    """
    chains = x0.shape[0]
    per_chain = math.ceil(n_samples / chains)
    x = x0.clone()
    gen = ctx.generator(17)
    delta = step / posterior.lipschitz
    mean = torch.zeros_like(x[0])
    m2 = torch.zeros(x.shape[1:], dtype=x.real.dtype, device=x.device)
    visited = 0
    kept: list[torch.Tensor] = []
    accepted = proposed = 0
    pixels = _count_pixels(x, ndim)
    value = grad = penalty_avg = None
    rhat_at = 0.0
    if metropolis:
        value, grad = posterior.value_and_grad(x)
    with torch.no_grad():
        for k in range(1, iterations + 1):
            noise = complex_randn(x.shape, x, gen)
            if metropolis:
                prop = x - delta * grad + math.sqrt(2 * delta) * noise
                v_prop, g_prop = posterior.value_and_grad(prop)
                fwd = ((prop - x + delta * grad).abs() ** 2).reshape(chains, -1).sum(1)
                bwd = ((x - prop + delta * g_prop).abs() ** 2).reshape(chains, -1).sum(1)
                log_alpha = (value - v_prop) + (fwd - bwd) / (4 * delta)
                accept = torch.log(torch.rand(chains, generator=gen, device=gen.device).to(x.device)) < log_alpha
                shape = (chains,) + (1,) * (x.ndim - 1)
                x = torch.where(accept.reshape(shape), prop, x)
                value = torch.where(accept, v_prop, value)
                grad = torch.where(accept.reshape(shape), g_prop, grad)
                rate = float(accept.float().mean())
                accepted += int(accept.sum())
                proposed += chains
                if k <= burn_in:  # Robbins–Monro tuning of the step towards the optimal acceptance
                    delta *= math.exp(0.1 * (rate - MALA_TARGET_ACCEPTANCE))
            else:
                x = x - delta * posterior.grad(x) + math.sqrt(2 * delta) * noise
            if adapt_weight is not None and k <= burn_in:
                g = float(adapt_weight.penalty(x).mean())
                penalty_avg = g if penalty_avg is None else 0.95 * penalty_avg + 0.05 * g
                adapt_weight.set_theta(estimate_prior_weight(penalty_avg, pixels, adapt_weight.degree))
                if not metropolis:
                    delta = step / posterior.lipschitz
                else:
                    value, grad = posterior.value_and_grad(x)
            if not torch.isfinite(x).all():
                raise ValueError(
                    f"The chain diverged at iteration {k} (step {delta:.3g}); lower 'step' or check the noise model."
                )
            if k > burn_in:
                for xi in x:  # Welford's running moments over every post-burn-in state of every chain
                    visited += 1
                    d = xi - mean
                    mean = mean + d / visited
                    m2 = m2 + (d.conj() * (xi - mean)).real
                if (k - burn_in) % thinning == 0 and len(kept) < per_chain:
                    kept.append(x.clone())
                    std = (m2 / max(visited - 1, 1)).sqrt()
                    ctx.keep(mean, std, _interleave(kept, n_samples), iteration=k)
                    if (ctx.watched and len(kept) >= RUNNING_RHAT_MIN_DRAWS
                            and time.perf_counter() - rhat_at >= RUNNING_RHAT_INTERVAL_S):
                        rhat_at = time.perf_counter()  # for a live convergence plot only: the final one is in info
                        ctx.log(rhat_max=float(split_rhat(torch.stack(kept, dim=1).cpu().numpy()).max()))
                ctx.log(step=delta)
                ctx.step(k, iterations, mean)
            else:
                ctx.keep(x.mean(0), iteration=k)
                ctx.step(k, iterations, x[0])
    std = (m2 / max(visited - 1, 1)).sqrt()
    draws = torch.stack(kept, dim=1)  # (chains, draws, *image)
    out = {
        "mean": mean,
        "std": std,
        "samples": _interleave(kept, n_samples),
        "draws": draws,
        "step": delta,
        "acceptance": accepted / proposed if proposed else None,
    }
    return out


def _interleave(kept: list[torch.Tensor], n: int) -> torch.Tensor:
    """Thinned states (list over draws of (chains, *image)) as (n, *image), draw-major so all chains appear."""
    stacked = torch.stack(kept, dim=0)
    return stacked.reshape((-1,) + tuple(stacked.shape[2:]))[:n]


def _schedule(iterations: int, burn_in: int | None, thinning: int | None, n_samples: int, chains: int) -> tuple[int, int]:
    burn = iterations // 5 if burn_in is None else burn_in
    if burn >= iterations:
        raise ValueError(f"burn_in ({burn}) must be smaller than iterations ({iterations}).")
    per_chain = math.ceil(n_samples / chains)
    thin = max(1, (iterations - burn) // per_chain) if thinning is None else thinning
    if burn + thin * per_chain > iterations:
        raise ValueError(
            f"{n_samples} samples from {chains} chains with thinning {thin} need "
            f"{burn + thin * per_chain} iterations; raise 'iterations' or lower 'thinning'/'n_samples'."
        )
    if per_chain < 4:
        raise ValueError("Each chain needs at least 4 samples for split-R̂; raise 'n_samples' or lower 'chains'.")
    return burn, thin


def _start(likelihood: DataTerm, ndim: int, chains: int, ctx: Context) -> torch.Tensor:
    """Chains start around the warm start, spread by a few times the likelihood's noise scale."""
    x0 = warm_start(likelihood, ndim)
    spread = 3.0 / math.sqrt(likelihood.lipschitz)
    noise = complex_randn((chains,) + tuple(x0.shape), x0, ctx.generator(5))
    return x0.unsqueeze(0) + spread * noise


class _Langevin(Method):
    """Shared run loop of the Langevin samplers; subclasses build the prior potentials."""

    returns_std = True
    uncertainty = "posterior"
    needs_adjoint = True
    metropolis = False

    def _priors(self, A: LinearOperator, x0: torch.Tensor, likelihood: DataTerm, params: dict[str, Any]):
        """Prior potentials and the one whose weight is estimated during burn-in (or None)."""
        potential, adapt = hand_crafted_prior(params["prior"], params["envelope"], params["lam"], params["epsilon"],
                                              x0, likelihood, A.ndim)
        return [potential], adapt

    def run(self, y, A, noise: NoiseModel, ctx: Context, **params: Any) -> Estimate:
        t0 = time.perf_counter()
        chains, n_samples = params["chains"], params["n_samples"]
        burn, thin = _schedule(params["iterations"], params["burn_in"], params["thinning"], n_samples, chains)
        likelihood = DataTerm(y, A, noise)
        x0 = _start(likelihood, A.ndim, chains, ctx)
        priors, adapt = self._priors(A, x0, likelihood, params)
        posterior = Posterior(likelihood, priors)
        if self.metropolis and not posterior.has_value:
            raise ValueError(f"{self.name} needs a prior with a value (a hand-crafted prior), not a denoiser score.")
        res = langevin(posterior, x0, ctx, iterations=params["iterations"], burn_in=burn, thinning=thin,
                       n_samples=n_samples, step=params["step"], ndim=A.ndim, metropolis=self.metropolis,
                       adapt_weight=adapt)
        ctx.evaluations = posterior.operator_evaluations + posterior.network_evaluations
        info: dict[str, Any] = {
            "iterations": params["iterations"],
            "burn_in": burn,
            "thinning": thin,
            "chains": chains,
            "std_from": "chain",
            "step_size": res["step"],
            "lipschitz": posterior.lipschitz,
            "operator_evaluations": posterior.operator_evaluations,
            "network_evaluations": posterior.network_evaluations,
            "wall_seconds": time.perf_counter() - t0,
            "likelihood": "gaussian" if noise.gain == 0 else "gaussian approximation of poisson-gaussian",
            "mixing": mixing_summary(res["draws"].cpu().numpy()),
        }
        for p in priors:
            if isinstance(p, DenoiserPrior):
                info.update(prior_fit_info(likelihood, p.denoiser, res["mean"], A.ndim))
            if hasattr(p, "theta"):
                info["prior_weight"] = p.theta
                info["prior_weight_choice"] = "empirical Bayes during burn-in" if adapt is p else "given"
        if res["acceptance"] is not None:
            info["acceptance"] = res["acceptance"]
        return Estimate(res["mean"], res["std"], res["samples"], info)


def _common_params(iterations: int, step: float, step_doc: str) -> tuple[Param, ...]:
    return (
        ITERATIONS(iterations),
        Param("n_samples", int, 32, 4, 100000, doc="thinned samples returned (all chains together)"),
        Param("chains", int, 2, 1, 16, doc="independent chains run together (for split-R̂)"),
        Param("burn_in", int, None, 0, None, doc="discarded iterations per chain (empty: 20%)"),
        Param("thinning", int, None, 1, None, doc="iterations between kept samples (empty: spread over the run)"),
        Param("step", float, step, 1e-4, 2.0, doc=step_doc),
    )


_PRIOR_PARAMS = (
    Param("prior", str, "tv", choices=HAND_CRAFTED, doc="hand-crafted regularizer R"),
    Param("envelope", str, "huber", choices=("huber", "moreau"),
          doc="smooth R by its Huber version or by its Moreau–Yosida envelope (MYULA; any proximable R)"),
    Param("lam", float, None, 0.0, None, doc="prior weight θ (empty: empirical Bayes during burn-in)", log_scale=True),
    Param("epsilon", float, None, 0.0, None, log_scale=True,
          doc="Huber ε (empty: 10% of the image's std) or Moreau–Yosida λ (empty: 1/L of the likelihood)"),
)


class ULA(_Langevin):
    name = "ula"
    label = "ULA (Langevin, hand-crafted prior)"
    description = (
        "Unadjusted Langevin x ← x − δ∇U(x) + √(2δ) ξ on U = ½‖y − Ax‖²/σ² + θ R̃(x), R̃ the Huber or "
        "Moreau–Yosida smoothing of TV/Hessian–Schatten/Tikhonov, δ = step/L with L = ‖A‖²/σ² + Lip(θ∇R̃); "
        "returns the running mean, std, thinned samples, split-R̂ and ESS."
    )
    reference = (
        "Durmus, Moulines & Pereyra, SIAM J Imaging Sci 11 (2018) 473; Vidal et al., SIAM J Imaging Sci 13 (2020) "
        "1945 (θ by empirical Bayes); Vehtari et al., Bayesian Analysis 16 (2021) 667 (R̂, ESS)."
    )
    params = _common_params(3000, 0.9, "step as a fraction of 1/L (stable below 2)") + _PRIOR_PARAMS


class MALA(_Langevin):
    name = "mala"
    label = "MALA (Metropolis-adjusted Langevin, hand-crafted prior)"
    description = (
        "Langevin proposal x' = x − δ∇U(x) + √(2δ) ξ accepted with the Metropolis–Hastings ratio (exact "
        "posterior of U = ½‖y − Ax‖²/σ² + θ R̃(x)); δ tuned to 57% acceptance during burn-in."
    )
    reference = (
        "Roberts & Tweedie, Bernoulli 2 (1996) 341; Pereyra, Stat. Comput. 26 (2016) 745; "
        "Vehtari et al., Bayesian Analysis 16 (2021) 667."
    )
    metropolis = True
    params = _common_params(3000, 0.5, "initial step as a fraction of 1/L (tuned during burn-in)") + _PRIOR_PARAMS


#: pnp_ula's chains run where the first estimate's robust maximum is 1 / this: a first estimate's peaks stay below the
#: image's (blur, an early stop), and the denoiser is trained on images whose maximum is at most 1. §5's 128² cases
#: (1000 iterations × 2 chains; benchmarks/RESULTS.md §5): fluorescence deblurring 24.9 dB at 1, 28.2 at 4/3, 28.9 at
#: 1.5; camera's std–error correlation 0.47, 0.43, 0.40 (the bar: ≥ 0.4): 4/3 keeps every bar with a margin
UNIT_HEADROOM = 4.0 / 3.0


class PnPULA(_Langevin):

    @classmethod
    def runs_in_unit_range(cls, params: dict[str, Any]) -> bool:
        """A denoiser trained on images in ≈[0, 1] (the learned one) makes the run use those units."""
        return denoiser_unit_range(params["denoiser"])

    name = "pnp_ula"
    label = "PnP-ULA (Langevin, learned denoiser prior)"
    description = (
        "x ← x − δ∇_x ½‖y − Ax‖²/σ² + (αδ/ε²)(D(x, ε) − x) + (δ/λ)(Π_C(x) − x) + √(2δ) ξ: Langevin with the "
        "Tweedie score of the learned denoiser, C = [−1, 2]; δ = step/L."
    )
    reference = "Laumont, De Bortoli, Almansa, Delon, Durmus & Pereyra, SIAM J Imaging Sci 15 (2022) 701."
    params = _common_params(1000, 0.66, "step as a fraction of 1/L (Laumont et al.: below 1/3 of the prior part)") + (
        Param("denoiser", str, "drunet", doc="registered denoiser D(x, σ) (priors.denoiser_names())"),
        Param("epsilon", float, 0.02, 1e-4, 1.0, doc="noise level ε at which the denoiser gives the score", log_scale=True),
        Param("alpha", float, 1.0, 0.0, 10.0, doc="prior weight α on the score"),
        WEIGHTS,
    )

    def run(self, y, A, noise: NoiseModel, ctx: Context, **params: Any) -> Estimate:
        """The chains run where a first estimate's robust maximum is 1 / :data:`UNIT_HEADROOM` (``info["image_unit"]``),
        inside the range the denoiser was trained on: the run's unit is the data's robust maximum, which puts a blurred
        image's peaks at 2–3 (fluorescence deblurring 128²: the mean fell 28.7 → 21.9 dB when that unit came in,
        c6989c0; 24.9 with the first estimate's robust maximum at 1, 28.2 at 3/4)."""
        unit = self._image_unit(y, A, noise, ctx, params["iterations"]) if self.runs_in_unit_range(params) else 1.0
        if unit == 1.0:
            return super().run(y, A, noise, ctx, **params)
        outer = ctx.output_scale
        ctx.output_scale = outer * unit  # previews in the caller's units
        try:
            est = super().run(y / unit, A, noise.scaled(1.0 / unit), ctx, **params)
        except Cancelled:
            part = ctx.partial
            if part is not None:  # the kept result back to the run's units
                ctx.partial = Estimate(part.mean * unit, None if part.std is None else part.std * unit,
                                       None if part.samples is None else part.samples * unit, part.info)
            raise
        finally:
            ctx.output_scale = outer
        return Estimate(est.mean * unit, None if est.std is None else est.std * unit,
                        None if est.samples is None else est.samples * unit, {**est.info, "image_unit": unit})

    @staticmethod
    def _image_unit(y, A, noise: NoiseModel, ctx: Context, iterations: int) -> float:
        """:data:`UNIT_HEADROOM` × the robust maximum of a first estimate: Richardson–Lucy stopped at the noise level where it applies (a
        smooth estimate keeps the blur's low peaks), else the warm start. (Richardson–Lucy takes 2% of the bar
        before the chains' ``iterations``.)"""
        if RichardsonLucy.applies(y, A) and float(y.min()) >= -4 * noise.sigma_scalar - 1e-12:
            first = run_first_estimate("richardson_lucy", y, A, noise, ctx, 0.02, iterations).mean
        else:
            first = warm_start(DataTerm(y, A, noise), A.ndim)
        return UNIT_HEADROOM * image_unit(first)

    def _priors(self, A, x0, likelihood, params):
        prior = DenoiserPrior(load_denoiser(params["denoiser"], params["weights"]), params["epsilon"], params["alpha"], A.ndim)
        box_lam = 10.0 / (likelihood.lipschitz + prior.lipschitz)  # acts only outside C: a tenth of the step budget
        return [prior, BoxPenalty(-1.0, 2.0, box_lam, A.ndim)], None
