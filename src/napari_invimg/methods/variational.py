"""Variational reconstructions ``argmin_x −log p(y | Ax) + λ R(x)`` with hand-crafted priors.

``tv``, ``wavelet`` and ``hessian`` share one implementation: the regularizer comes from
:mod:`napari_invimg.priors`, the solver is chosen by ``solver`` (primal–dual, FISTA or ADMM from
:mod:`._proximal`), the likelihood is the noise model's (Gaussian or shifted Poisson), and ``λ`` follows
Morozov's discrepancy principle unless given: the primal–dual solver then solves the constrained problem
``min R(x) s.t. D(Ax) ≤ τ M`` directly; FISTA and ADMM take ``λ`` from a shorter constrained
primal–dual run and continue from its image. With Poisson noise, TV, Hessian and undecimated wavelets are weighted per pixel by
``1/sqrt(Var[y])`` at a pilot estimate (:func:`stabilising_weights`). ``rl_tv`` is Richardson–Lucy with a TV
term (Dey et al.).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any, ClassVar

import torch

from ..operators.base import LinearOperator
from ..operators.data_term import DataTerm
from ..operators.noise import NoiseModel
from ..priors.base import AnalysisRegularizer, clip
from ..priors.hessian import HessianSchatten
from ..priors.tv import TotalVariation
from ..priors.wavelet import KINDS as WAVELET_KINDS
from ..priors.wavelet import WaveletSparsity
from ..validation import data_scale
from ._proximal import ScaledProblem, admm, fista, initial_image, primal_dual, scale_problem
from .registry import ITERATIONS, Context, Estimate, Method, Param

__all__ = ["RegularizedMethod", "TVMethod", "WaveletMethod", "HessianMethod", "RichardsonLucyTV", "SOLVERS"]

SOLVERS = ("primal_dual", "fista", "admm")

#: Morozov's target ``D(Ax̂) = τ E[D]``; below 1 because the reconstruction fits some of the noise
#: (``E‖y − Ax̂‖² ≈ M − df``). 0.8 was best on average for TV and Hessian on the benchmark problems
#: (fluorescence at 20–1000 photons, camera with Gaussian noise); PSNR varies ±1 dB over 0.7–0.9.
TAU = Param("tau", float, 0.8, 0.1, 10.0,
            doc="discrepancy target: misfit τ × its expectation for the automatic λ (<1: allow for fitted noise)")

COMMON_PARAMS = (
    ITERATIONS(300),
    Param("solver", str, "primal_dual", choices=SOLVERS, doc="Chambolle–Pock primal–dual, FISTA or ADMM"),
    Param("lam", float, None, 0.0, None, doc="regularization weight λ on −log p(y|Ax) + λR(x) (empty: discrepancy principle)",
          log_scale=True),
    TAU,
    Param("positivity", bool, True, doc="constrain x ≥ 0 (real images only; ignored for complex images)"),
    Param("tol", float, 1e-4, 1e-8, 1e-1, doc="stop when the relative change of x falls below this", log_scale=True),
    Param("coil_energy", float, None, 0.5, 1.0,
          doc="multi-coil MRI: share of the k-space signal energy kept by coil compression (fewer virtual coils, "
              "faster; 1: all coils; empty: the operator's default)",
          operators=("CartesianMRI", "GatheredCartesianMRI", "NonCartesianMRI")),
)

Z_WEIGHT = Param("z_weight", float, 1.0, 0.0, 10.0,
                 doc="weight of the z differences in 3D (pixel size / z step for an isotropic prior)")


def measured_count(A: LinearOperator, y: torch.Tensor) -> int:
    """Measurements in ``y`` (``A.n_measured()`` per output, times any leading batch)."""
    return A.n_measured() * (y.numel() // max(math.prod(A.out_shape), 1))


def stabilising_weights(noise: NoiseModel, pilot: torch.Tensor) -> torch.Tensor:
    """Per-pixel weights ``w ∝ 1/sqrt(Var[y | pilot])`` (mean 1) for Poisson noise: the regularizer then acts on
    the linearized variance-stabilized image (∇ of the Anscombe transform ∝ ∇x / sqrt(Var)), so bright structures,
    whose shot noise is large, are not flattened by a weight set for the dark background."""
    v = noise.variance(pilot.clamp(min=0))
    w = (v.mean() / v.clamp(min=1e-12 * float(v.max()))).sqrt()
    return w / w.mean()


def _axis_weights(ndim: int, z_weight: float) -> list[float] | None:
    return [z_weight, 1.0, 1.0] if ndim == 3 and z_weight != 1.0 else None


def _lower(A: LinearOperator, positivity: bool) -> float | None:
    return 0.0 if positivity and not A.in_complex else None


def _reporter(ctx: Context, scale: float, total: int, offset: int = 0, quantity: str = "misfit"):
    def report(k: int, x: torch.Tensor, value: float) -> None:
        ctx.log(**{quantity: value})
        xs = x * scale
        ctx.keep(xs, iteration=offset + k)
        ctx.step(offset + k, total, xs)

    return report


def solve_regularized(
    y: torch.Tensor, A: LinearOperator, noise: NoiseModel, reg: AnalysisRegularizer, ctx: Context, *,
    iterations: int, solver: str, lam: float | None, tau: float, positivity: bool, tol: float,
    coil_energy: float | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """``argmin −log p(y|Ax) + λ R(x)`` (λ by the discrepancy principle when ``None``) with the chosen solver.

    For Gaussian noise with one σ the problem is first made smaller where the operator can (:meth:`LinearOperator.
    compressed`: multi-coil MRI keeps ``coil_energy`` of the signal energy in fewer virtual coils, recorded in
    ``info["coil_compression"]``) and its data work restricted to the measured values (:meth:`LinearOperator.
    compact`). The discrepancy target then leaves out the dropped values' expected misfit (their noise,
    ``M − M'``): ``D'(A'x) ≤ τM − (M − M')``, which is ``D(Ax) ≤ τM`` exactly when they carry no signal."""
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}.")
    sp = scale_problem(y, noise)
    measured = kept = measured_count(A, y)
    full_A, compression = A, {}
    if sp.noise.gain == 0 and isinstance(sp.noise.sigma, float):
        # keep enough values that the target τM − (M − M') stays at least τM'/2
        share = (1 - tau) / (1 - tau / 2) if lam is None and tau < 1 else 0.0
        A, gather = A.compact()  # data work on measured values only
        A, yc, compression = A.compressed(gather(sp.y), sp.noise.sigma, coil_energy, share)
        kept = measured_count(A, yc)
        sp = ScaledProblem(yc, sp.noise, sp.scale)
    data = DataTerm(sp.y, A, sp.noise, measured=kept)
    target = tau if kept == measured else (tau * measured - (measured - kept)) / kept
    lower = _lower(A, positivity)
    with torch.no_grad():
        x = initial_image(sp.y, A, lower)
        info: dict[str, Any] = {"solver": solver, "positivity": lower is not None}
        if compression:
            info["coil_compression"] = compression
        if sp.noise.gain > 0 and reg.pixelwise:
            reg.pixel_weights = stabilising_weights(sp.noise, x)
            info["pixel_weights"] = "variance-stabilizing"
        warm = 0
        if lam is None:
            warm = iterations if solver == "primal_dual" else max(20, min(100, iterations // 2))
            x, pd = primal_dual(data, reg, x, None, target, lower, warm, tol,
                                _reporter(ctx, sp.scale, iterations + (0 if solver == "primal_dual" else iterations)),
                                **A.primal_dual_steps(reg))
            lam_int = pd["lam"]
            warm = pd["iterations"]
            info.update(lam_choice="discrepancy principle (constrained primal–dual)")
        else:
            lam_int = lam * sp.scale  # R is 1-homogeneous: R(s x) = s R(x)
            info.update(lam_choice="given")
        steps = warm
        # λ = inf: the data are within the noise of the flattest image; the constrained solution stands
        if (solver != "primal_dual" or lam is not None) and math.isfinite(lam_int):
            run = {"primal_dual": primal_dual, "fista": fista, "admm": admm}[solver]
            kwargs = dict(lam=lam_int, lower=lower, iterations=iterations, tol=tol,
                          callback=_reporter(ctx, sp.scale, warm + iterations, warm,
                                             "misfit" if solver == "primal_dual" else "objective"))
            if solver == "primal_dual":
                kwargs.update(A.primal_dual_steps(reg))
            x, out = run(data, reg, x, **kwargs)
            steps += out["iterations"]
        x = x * sp.scale
        info.update(lam=lam_int / sp.scale, iterations=steps,
                    misfit=noise.misfit(y, full_A.apply(x), measured))
    return x, info


class RegularizedMethod(Method):
    """Shared ``run`` of the variational methods; subclasses give ``regularizer(ndim, **own_params)``."""

    own_params: ClassVar[tuple[Param, ...]] = ()

    @abstractmethod
    def regularizer(self, ndim: int, **own: Any) -> AnalysisRegularizer:
        """The prior for ``ndim``-dimensional images built from the method's own parameters."""

    def run(self, y, A, noise, ctx: Context, **params: Any) -> Estimate:
        own = {p.name: params.pop(p.name) for p in self.own_params}
        reg = self.regularizer(A.ndim, **own)
        x, info = solve_regularized(y, A, noise, reg, ctx, **params)
        return Estimate(x, info=info)


class TVMethod(RegularizedMethod):
    name = "tv"
    label = "Total variation"
    description = ("argmin −log p(y|Ax) + λ Σ‖∇x‖₂ (isotropic TV, x ≥ 0), Gaussian or Poisson likelihood; "
                   "λ by the discrepancy principle unless given.")
    reference = ("Rudin, Osher & Fatemi, Physica D 60 (1992) 259; Chambolle & Pock, JMIV 40 (2011) 120; "
                 "Wen & Chan, IEEE TIP 21 (2012) 1770.")
    own_params = (Z_WEIGHT,)
    params = COMMON_PARAMS + own_params

    def regularizer(self, ndim: int, z_weight: float = 1.0) -> AnalysisRegularizer:
        return TotalVariation(ndim, weights=_axis_weights(ndim, z_weight))


class WaveletMethod(RegularizedMethod):
    name = "wavelet"
    label = "Wavelet sparsity"
    description = ("argmin −log p(y|Ax) + λ Σ_j s_j‖W_j x‖₁ over an undecimated or orthogonal wavelet transform; "
                   "λ by the discrepancy principle unless given.")
    reference = ("Daubechies, Defrise & De Mol, CPAM 57 (2004) 1413; Figueiredo & Nowak, IEEE TIP 12 (2003) 906; "
                 "Lustig, Donoho & Pauly, MRM 58 (2007) 1182.")
    own_params = (
        Param("wavelet", str, "db4", choices=("haar", "db2", "db4", "sym4", "sym8", "coif2"), doc="wavelet family"),
        Param("levels", int, 3, 1, 6, doc="decomposition levels"),
        Param("kind", str, "undecimated", choices=WAVELET_KINDS, doc="undecimated (translation invariant) or orthogonal"),
    )
    params = COMMON_PARAMS + own_params

    def regularizer(self, ndim: int, wavelet: str = "db4", levels: int = 3, kind: str = "undecimated"):
        return WaveletSparsity(ndim, wavelet=wavelet, levels=levels, kind=kind)


class HessianMethod(RegularizedMethod):
    name = "hessian"
    label = "Hessian–Schatten"
    description = ("argmin −log p(y|Ax) + λ Σ‖∇²x‖_S1 (nuclear norm of the Hessian: no staircasing, keeps filaments); "
                   "λ by the discrepancy principle unless given.")
    reference = "Lefkimmiatis, Ward & Unser, IEEE TIP 22 (2013) 1873."
    own_params = (Z_WEIGHT,)
    params = COMMON_PARAMS + own_params

    def regularizer(self, ndim: int, z_weight: float = 1.0) -> AnalysisRegularizer:
        if ndim not in (2, 3):
            raise ValueError("The Hessian–Schatten prior needs 2D or 3D images.")
        return HessianSchatten(ndim, weights=_axis_weights(ndim, z_weight))


class RichardsonLucyTV(Method):
    name = "rl_tv"
    label = "Richardson–Lucy + TV"
    description = ("x ← x · Aᵀ((y+c)/(Ax+c)) / (Aᵀ1 + gλ ∂TV_ε(x)): Poisson ML with a TV penalty (camera gain g, "
                   "offset c = σ²/g); λ by the discrepancy principle unless given; stops at convergence.")
    reference = ("Dey et al., Microsc. Res. Tech. 69 (2006) 260; Richardson, JOSA 62 (1972) 55; "
                 "Lucy, AJ 79 (1974) 745.")
    complex_images = False
    params = (
        ITERATIONS(200),
        Param("lam", float, None, 0.0, None, doc="TV weight λ on −log p(y|Ax) + λ TV(x) (empty: discrepancy principle)",
              log_scale=True),
        TAU,
        Param("tol", float, 1e-4, 1e-8, 1e-1, doc="stop when the relative change of x falls below this", log_scale=True),
        Z_WEIGHT,
    )

    @classmethod
    def supports(cls, A):
        """Richardson–Lucy's multiplicative update needs real, non-negative data: not complex visibilities."""
        reason = super().supports(A)
        if reason is None and A.out_complex:
            return f"{cls.name!r} needs real, non-negative data (Poisson counts); {A.name} gives complex data."
        return reason

    def run(self, y, A, noise, ctx: Context, iterations: int, lam: float | None, tau: float, tol: float,
            z_weight: float) -> Estimate:
        tv = TotalVariation(A.ndim, weights=_axis_weights(A.ndim, z_weight))
        warm, measured = 0, measured_count(A, y)
        with torch.no_grad():
            if noise.gain > 0:  # the same variance-stabilizing weights as the tv method, given λ or not
                tv.pixel_weights = stabilising_weights(noise, initial_image(y, A, 0.0))
            pilot = None
            if lam is None:  # the λ search is part of the iteration budget
                warm = min(100, max(1, iterations // 2))
                pilot, info = solve_regularized(y, A, noise, tv, ctx, iterations=warm, solver="primal_dual", lam=None,
                                                tau=tau, positivity=True, tol=tol)
                lam, how = info["lam"], "discrepancy principle (constrained primal–dual TV)"
                warm = info["iterations"]
            else:
                how = "given"
            # shifted-Poisson view of the camera: c = σ²/g; Gaussian noise as Poisson with g = σ²/mean(y)
            unit = data_scale(y)  # floors relative to the data: the result does not depend on their units
            mean_y = max(float(y.mean()), 1e-12 * unit)
            gain = noise.gain if noise.gain > 0 else float(noise.variance(y).mean()) / mean_y
            c = noise._shift() if noise.gain > 0 else 0.0
            c = max(c, float(-y.min()) + 1e-6 * unit if float(y.min()) <= 0 else 0.0)
            yc = (y + c).clamp(min=0)
            tv.smoothing = 1e-2 * float(yc.abs().max())
            norm = A.apply_adjoint(torch.ones_like(y))
            x = torch.full(A.in_shape, float(yc.mean()), device=y.device)
            k = 0
            for k in range(1, iterations - warm + 1):
                z = A.apply(x)
                ctx.log(misfit=noise.misfit(y, z, measured))
                denom = (norm + gain * lam * tv.grad(x)).clamp(min=1e-3 * float(norm.mean()))
                x_new = clip(x * A.apply_adjoint(yc / (z + c).clamp(min=1e-12 * unit)) / denom, 1e-12 * float(yc.max()), None)
                change = float(torch.linalg.vector_norm(x_new - x) / torch.linalg.vector_norm(x_new).clamp(min=1e-30))
                x = x_new
                ctx.keep(x, iteration=warm + k)
                ctx.step(warm + k, iterations, x)
                if k > 5 and change < tol:
                    break
            if k == 0 and pilot is not None:  # the whole budget went to the λ search: its TV image stands
                x = pilot
        return Estimate(x, info={"lam": lam, "lam_choice": how, "iterations": warm + k, "offset": c,
                                 "misfit": noise.misfit(y, A.apply(x), measured)})
