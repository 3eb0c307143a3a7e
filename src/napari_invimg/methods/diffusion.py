"""Diffusion posterior sampling with the learned denoiser: DPS and DiffPIR on a variance-exploding schedule.

One noise-conditional denoiser ``D(x, σ)`` serves as the diffusion model: by Tweedie's formula
``x̂₀ = D(x, σ) = E[x₀ | x]`` and ``∇ log p_σ(x) = (D(x, σ) − x) / σ²``. The noise levels fall
geometrically from ``sigma_max`` to ``sigma_min``; all ``n_samples`` chains go through the network
together (in batches), and the network is fully convolutional, so any image size works. By default the chains
start at a first estimate plus noise and take 8 steps (16 samples: 144 network passes instead of 816 / 496 from pure
noise; benchmarks/RESULTS.md §5, issue #20): with the learned denoiser on real images, PnP-ADMM's result plus noise
of ``sigma_max`` = 0.08 (about its error) down to 0.02 (DiffPIR: 0.04, with λ = 0.5, which widens its otherwise too
narrow spread), in the units where that estimate's robust maximum is 1 (the posterior mean then beats the
plug-and-play estimate: RESULTS §5, issues #14, #20); else Richardson–Lucy or a smooth warm start plus noise of 0.3
down to 0.01.
"""

from __future__ import annotations

import math
import time
from abc import abstractmethod
from typing import Any

import torch

from ..operators.data_term import DataTerm
from ..operators.noise import NoiseModel
from ..priors.denoisers import Denoiser, denoiser_unit_range
from ..priors.learned import LearnedDenoiser
from ._posterior import WEIGHTS, complex_randn, image_unit, load_denoiser, warm_start
from ._prior_fit import prior_fit_info
from .classical import RichardsonLucy
from .registry import Context, Estimate, Method, Param, run_first_estimate

__all__ = ["DPS", "DiffPIR", "noise_schedule"]

#: samples pushed through the network at once
BATCH = 16


def noise_schedule(steps: int, sigma_max: float, sigma_min: float) -> list[float]:
    """``steps + 1`` noise levels falling geometrically from ``sigma_max`` to ``sigma_min`` (Song et al.,
    ICLR 2021, variance-exploding SDE)."""
    if not sigma_max > sigma_min > 0:
        raise ValueError("The schedule needs sigma_max > sigma_min > 0.")
    r = (sigma_min / sigma_max) ** (1.0 / steps)
    return [sigma_max * r**i for i in range(steps + 1)]


def _spread(warm: torch.Tensor) -> float:
    """The warm start's standard deviation (of the modulus when complex); 0 for a one-pixel image."""
    w = warm.abs() if warm.is_complex() else warm
    return float(w.std()) if w.numel() > 1 else 0.0


class _Diffusion(Method):
    """Shared loop: batches of samples walk down the schedule; subclasses make one step."""

    @classmethod
    def runs_in_unit_range(cls, params: dict[str, Any]) -> bool:
        """A denoiser trained on images in ≈[0, 1] (the learned one) makes the run use those units."""
        return denoiser_unit_range(params["denoiser"])


    returns_std = True
    uncertainty = "posterior"
    needs_adjoint = True

    @abstractmethod
    def _step(self, x: torch.Tensor, sigma: float, sigma_next: float, ctx_: dict[str, Any],
              gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One step from level ``sigma`` to ``sigma_next``: returns (next x, current x̂₀)."""

    def run(self, y, A, noise: NoiseModel, ctx: Context, **params: Any) -> Estimate:
        t0 = time.perf_counter()
        steps, n = params["iterations"], params["n_samples"]
        likelihood = DataTerm(y, A, noise)
        warm = warm_start(likelihood, A.ndim)
        level = (warm.real if warm.is_complex() else warm).mean()
        den = load_denoiser(params["denoiser"], params["weights"])
        params = dict(params)
        origin, how = self._origin(y, A, noise, ctx, params, warm, level, den)
        # after a plug-and-play estimate the chains start closer (its error on RESULTS §5's cases: 0.03–0.12 of the
        # unit range) and stop earlier; after Richardson–Lucy, the warm start or noise: the wider schedule
        tuned = START_DEFAULTS[self.name]["pnp_admm" if how == "pnp_admm" else "other"]
        # a denoiser trained on images in [0, 1] sees the image in those units: the run's unit (the data's robust
        # maximum, core.py) puts a blurred image's peaks at 2–3, where the schedule's σ and the network are off
        # (fluorescence deblurring 128², 30 steps from noise: 29.1 → 25.6 dB when that unit came in, c6989c0)
        unit = image_unit(warm if how == "noise" else origin) if getattr(den, "unit_range", False) else 1.0
        if unit != 1.0:
            y, noise = y / unit, noise.scaled(1.0 / unit)
            likelihood, warm, origin, level = DataTerm(y, A, noise), warm / unit, origin / unit, level / unit
        defaulted = [k for k in ("sigma_max", "sigma_min") if params.get(k) is None]
        params = {**params, **{k: v for k, v in tuned.items() if params.get(k) is None}}
        if defaulted and not params["sigma_max"] > params["sigma_min"]:
            raise ValueError(f"sigma_max={params['sigma_max']:g} must exceed sigma_min={params['sigma_min']:g}; "
                             f"{' and '.join(defaulted)} came from the defaults after a {how!r} start "
                             f"(START_DEFAULTS); give {' and '.join(defaulted)} to match.")
        schedule = noise_schedule(steps, params["sigma_max"], params["sigma_min"])
        start_passes = params.pop("_start_passes", 0)
        state: dict[str, Any] = {"likelihood": likelihood, "denoiser": den, "ndim": A.ndim, "params": params,
                                 "network": start_passes, "backward": 0, "spread": _spread(warm)}
        gen = ctx.generator(23)
        batches = [min(BATCH, n - b) for b in range(0, n, BATCH)]
        xs = [origin + schedule[0] * complex_randn((b,) + tuple(A.in_shape), warm, gen) for b in batches]
        x0s: list[torch.Tensor] = [x.clone() for x in xs]
        for i in range(steps):
            for j, x in enumerate(xs):
                xs[j], x0s[j] = self._step(x, schedule[i], schedule[i + 1], state, gen)
            current = torch.cat(x0s)
            std = current.std(0) if current.shape[0] > 1 else None
            ctx.keep(current.mean(0) * unit, None if std is None else std * unit, current * unit, step=i + 1)
            ctx.log(sigma=schedule[i] * unit)
            ctx.step(i + 1, steps, current[0] * unit)
        with torch.no_grad():
            samples = torch.cat([self._denoise(x, schedule[-1], state) for x in xs])
        mean = samples.mean(0)
        fit = prior_fit_info(likelihood, den, mean, A.ndim)
        samples, mean = samples * unit, mean * unit
        std = samples.std(0) if n > 1 else torch.zeros(mean.shape, device=mean.device)
        ctx.evaluations = state["network"] + likelihood.evaluations
        info = {
            "iterations": steps,
            "network_evaluations": state["network"],
            "network_backward_passes": state["backward"],
            "operator_evaluations": likelihood.evaluations,
            "wall_seconds": time.perf_counter() - t0,
            "sigma_schedule": (schedule[0], schedule[-1]),  # in units of image_unit
            "start": how,
            "start_network_evaluations": start_passes,
            "likelihood": "gaussian" if noise.gain == 0 else "gaussian approximation of poisson-gaussian",
            "image_unit": unit,
            **{k: params[k] for k in tuned if not k.startswith("sigma")},  # dps: guidance; diffpir: lam
            **fit,
        }
        return Estimate(mean, std, samples, info)

    @staticmethod
    def _origin(y, A, noise: NoiseModel, ctx: Context, params: dict[str, Any], warm: torch.Tensor,
                level: torch.Tensor, den: Denoiser) -> tuple[torch.Tensor, str]:
        """The image the chains start around (plus ``sigma_max`` noise), and its name.

        "noise": the mean level (pure noise: the diffusion from its top); "warm": the smooth warm start;
        "richardson_lucy": Richardson–Lucy stopped at the noise level; "pnp_admm": PnP-ADMM at its defaults with the
        same denoiser. From a first estimate, a ``sigma_max`` about its error suffices, so the chains skip the top of
        the schedule (Chung, Sim & Ye, CVPR 2022, "come closer, diffuse faster"). "auto": PnP-ADMM with a learned
        denoiser on real images (the posterior mean then starts at the plug-and-play fixed point, and beats it:
        RESULTS §5, issue #14); else Richardson–Lucy on real, non-negative deblurring (or denoising, downsampling)
        problems, else the warm start (which, unlike Richardson–Lucy, fills the holes of inpainting: RESULTS §5,
        issue #20).
        """
        start = params["start"]
        rl_applies = RichardsonLucy.applies(y, A) and float(y.min()) >= -4 * noise.sigma_scalar - 1e-12
        if start == "richardson_lucy" and not rl_applies:
            raise ValueError(f"start='richardson_lucy' needs real, non-negative data on one of "
                             f"{', '.join(RichardsonLucy.operators)}; this is a {A.name}. Use start='warm'.")
        if start == "noise":
            return level, start
        if start == "pnp_admm" or (start == "auto" and isinstance(den, LearnedDenoiser) and not A.in_complex):
            # 24 single-image network passes against the chains' steps × samples: about a sixth of the run
            first = run_first_estimate("pnp_admm", y, A, noise, ctx, 0.15, params["iterations"],
                                       denoiser=params["denoiser"], weights=params["weights"])
            params["_start_passes"] = first.info["iterations"]  # one network pass per PnP iteration
            return first.mean.to(warm.dtype), "pnp_admm"
        if rl_applies and (start == "richardson_lucy" or (start == "auto" and A.name != "Inpainting")):
            first = run_first_estimate("richardson_lucy", y, A, noise, ctx, 0.05, params["iterations"]).mean
            return first.to(warm.dtype), "richardson_lucy"
        return warm, "warm"

    @staticmethod
    def _denoise(x: torch.Tensor, sigma: float, state: dict[str, Any]) -> torch.Tensor:
        state["network"] += x.shape[0]
        den: Denoiser = state["denoiser"]
        return den(x, sigma, state["ndim"])


#: the schedule (and DPS's guidance ζ, DiffPIR's λ) that an empty parameter takes, by method and the chains' start.
#: DiffPIR from PnP-ADMM stops at σ_min 0.04 with λ 0.5: on the validation cases (benchmarks/
#: bench_diffusion_validation.py, other images than the scored ones) its 90% interval covered 0.68 on fluorescence
#: deblurring with 0.02 / 1.5, 0.85 with these, at +0.1–0.2 dB (RESULTS §5, 2026-12-08, helper `diff8`)
START_DEFAULTS: dict[str, dict[str, dict[str, float]]] = {
    "dps": {"pnp_admm": {"sigma_max": 0.08, "sigma_min": 0.02, "guidance": 1.0},
            "other": {"sigma_max": 0.3, "sigma_min": 0.01, "guidance": 1.5}},
    "diffpir": {"pnp_admm": {"sigma_max": 0.08, "sigma_min": 0.04, "lam": 0.5},
                "other": {"sigma_max": 0.3, "sigma_min": 0.01, "lam": 1.5}},
}

_COMMON = (
    Param("n_samples", int, 16, 1, 4096, doc="posterior samples (pushed through the network together)"),
    Param("denoiser", str, "drunet", doc="noise-conditional denoiser D(x, σ) trained up to σ ≥ sigma_max"),
    Param("sigma_max", float, None, 1e-3, 100.0, log_scale=True,
          doc="first noise level of the schedule (about the first estimate's error; ≥ the image's spread, e.g. 1, "
              "with start='noise'); empty: 0.08 after a pnp_admm start, else 0.3"),
    Param("start", str, "auto", choices=("auto", "pnp_admm", "richardson_lucy", "warm", "noise"),
          doc="chains start at a first estimate plus sigma_max noise: PnP-ADMM ('auto' with a learned denoiser on real "
              "images), Richardson–Lucy ('auto' where it applies otherwise), the smooth warm start, or pure noise "
              "('noise', with sigma_max ≥ the image's spread)"),
    Param("sigma_min", float, None, 1e-5, 1.0, log_scale=True,
          doc="last noise level (then one final denoising); empty: after a pnp_admm start 0.02 (dps) / 0.04 "
              "(diffpir), else 0.01"),
    WEIGHTS,
)


class DPS(_Diffusion):
    name = "dps"
    label = "DPS (diffusion posterior sampling)"
    description = (
        "Ancestral VE sampling x ← x + Δσ²[∇log p_σ(x) + ζ ∇_x log N(y; A x̂₀(x), σ_n² + r²‖A‖²)] + noise, "
        "x̂₀ = D(x, σ) (Tweedie), gradient back-propagated through the denoiser."
    )
    reference = (
        "Chung, Kim, Mccann, Klasky & Ye, ICLR 2023 (DPS); Song, Vahdat, Mardani & Kautz, ICLR 2023 (ΠGDM "
        "likelihood variance); Song et al., ICLR 2021 (VE SDE)."
    )
    params = (Param("iterations", int, 8, 1, 10000, doc="diffusion steps"),) + _COMMON + (
        Param("guidance", float, None, 0.0, 100.0,
              doc="guidance weight ζ on the likelihood score; empty: 1.0 (Bayes' weight) after a pnp_admm start, else 1.5"),
    )

    def _step(self, x, sigma, sigma_next, state, gen):
        lik: DataTerm = state["likelihood"]
        A = lik.A
        spread2 = max(state["spread"], 1e-3) ** 2
        # Var[x₀ | x] = σ² J for a Gaussian prior (J = ∂x̂₀/∂x = s²/(σ² + s²) with the image's spread s); the
        # network's own gain along the guidance direction, measured at the previous step (1 before the first), replaces J when larger,
        # so that the guidance step d2·ζ·‖A‖²J/var stays below 1 (a learned D at large σ is far less
        # contractive than a Gaussian of the image's spread, and the guided chain would blow up)
        gain = max(spread2 / (sigma**2 + spread2), state.get("jacobian_gain", 1.0))
        var = lik.variance + A.norm() ** 2 * sigma**2 * gain
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            x0 = self._denoise(xg, sigma, state)
            if not x0.requires_grad:
                raise ValueError(f"dps back-propagates through the denoiser, and {state['params']['denoiser']!r} is "
                                 "not differentiable (a proximal denoiser); use diffpir, or a learned denoiser such "
                                 "as 'drunet'.")
            lik.evaluations += x.shape[0]
            r = A.apply(x0) - lik.y
            nll = 0.5 * (r.abs() ** 2 / var).sum()
            (g,) = torch.autograd.grad(nll, xg)
        state["backward"] += x.shape[0]
        with torch.no_grad():  # ‖Jᵀu‖/‖u‖ with u = Aᵀ(r/var): the denoiser's gain along this step's direction
            u = A.apply_adjoint(r / var)
            lik.evaluations += x.shape[0]
            state["jacobian_gain"] = float(g.norm() / u.norm().clamp(min=1e-30))
        with torch.no_grad():
            x0 = x0.detach()
            d2 = sigma**2 - sigma_next**2
            score = (x0 - x) / sigma**2 - state["params"]["guidance"] * g
            noise_std = math.sqrt(sigma_next**2 * d2 / sigma**2)
            x_next = x + d2 * score + noise_std * complex_randn(x.shape, x, gen)
        return x_next, x0


class DiffPIR(_Diffusion):
    name = "diffpir"
    label = "DiffPIR (diffusion plug-and-play)"
    description = (
        "Per step: x̂₀ = D(x, σ); data step x̂₀' = argmin ½‖y − Ax‖²_W + (λ/2σ²)‖x − x̂₀‖² (CG); "
        "x ← x̂₀' + σ'(√(1−ζ) ε̂ + √ζ z) with ε̂ = (x − x̂₀')/σ."
    )
    reference = "Zhu, Zhang, Liang, Cao, Wen, Timofte & Van Gool, CVPR Workshops 2023 (DiffPIR)."
    params = (Param("iterations", int, 8, 1, 10000, doc="diffusion steps"),) + _COMMON + (
        Param("lam", float, None, 1e-3, 1e4, log_scale=True,
              doc="λ: weight of the prior in the data step (ρ = λ/σ²); empty: 0.5 after a pnp_admm start, else 1.5"),
        Param("zeta", float, 0.8, 0.0, 1.0, doc="ζ: share of fresh noise in each step (1: fully stochastic)"),
        Param("cg_iterations", int, 10, 1, 200, doc="conjugate-gradient iterations of the data step"),
    )

    def _step(self, x, sigma, sigma_next, state, gen):
        lik: DataTerm = state["likelihood"]
        p = state["params"]
        with torch.no_grad():
            x0 = self._denoise(x, sigma, state)
            x0 = lik.prox(x0, p["lam"] / sigma**2, iterations=p["cg_iterations"], tol=1e-4)
            eps_hat = (x - x0) / sigma
            z = complex_randn(x.shape, x, gen)
            x_next = x0 + sigma_next * (math.sqrt(1 - p["zeta"]) * eps_hat + math.sqrt(p["zeta"]) * z)
        return x_next, x0
