"""Proximal solvers for ``min_x F(Ax) + λ R(x)`` subject to ``lower ≤ x ≤ upper``.

``F`` is the exact negative log-likelihood of a camera noise model (:class:`~napari_invimg.operators.DataTerm`:
Gaussian, or shifted Poisson for Poisson and Poisson–Gaussian noise) and ``R`` a hand-crafted regularizer from
:mod:`napari_invimg.priors`. Three solvers, for any linear operator, real or complex images, 2D or 3D:

* :func:`primal_dual` — Chambolle–Pock with block-diagonal preconditioning; in
  its *constrained* form ``min R(x) s.t. D(Ax) ≤ τ M`` it applies Morozov's discrepancy principle
  exactly (``D`` the Gaussian χ² or the Poisson deviance, ``M`` the number of measurements) and
  returns the equivalent weight ``λ``.
* :func:`fista` — accelerated proximal gradient (Beck & Teboulle) with backtracking; the prox of ``λR``
  (and the box) comes from the regularizer.
* :func:`admm` — ADMM with the splitting ``u = Ax``, ``v = x`` (Figueiredo & Bioucas-Dias, PIDAL), the
  ``x`` step by conjugate gradients, adaptive penalty (Boyd et al. §3.4.1).

References
----------
Chambolle & Pock, J. Math. Imaging Vis. 40 (2011) 120; Pock & Chambolle, ICCV (2011) 1762
(preconditioning); Beck & Teboulle, SIAM J. Imaging Sci. 2 (2009) 183; Figueiredo &
Bioucas-Dias, IEEE TIP 19 (2010) 3133; Boyd et al., Found. Trends Mach. Learn. 3 (2011) 1; Wen & Chan,
IEEE TIP 21 (2012) 1770 (discrepancy-constrained TV); Teuber, Steidl & Chan, Inverse Problems 29 (2013)
035007 (Poisson discrepancy constraint).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..operators.base import LinearOperator
from ..operators.data_term import DataTerm
from ..operators.kernels import conjugate_gradient, dot, fista_momentum
from ..operators.noise import Gaussian, NoiseModel, Poisson, PoissonGaussian
from ..priors.base import AnalysisRegularizer, Regularizer, clip

__all__ = ["ScaledProblem", "scale_problem", "initial_gain", "initial_image", "primal_dual", "fista", "admm",
           "Callback"]

#: ``callback(k, x, objective_or_misfit)``; called every iteration with the current image
Callback = Callable[[int, torch.Tensor, float], None]


def _norm(t: torch.Tensor) -> float:
    # a complex tensor's norm is its real view's: far faster on CPU than vector_norm of complex values
    return float(torch.linalg.vector_norm(torch.view_as_real(t.resolve_conj()) if t.is_complex() else t))


@dataclass
class ScaledProblem:
    """The problem in units where the image is O(1): ``y_s = y / scale`` with the noise scaled alike."""

    y: torch.Tensor
    noise: NoiseModel
    scale: float


def scale_problem(y: torch.Tensor, noise: NoiseModel) -> ScaledProblem:
    """Divide data and noise by the RMS of ``y`` so that step sizes and tolerances are unit-free."""
    s = float(y.abs().pow(2).mean().sqrt())
    if not s > 0:
        raise ValueError("The measurement is identically zero; there is nothing to reconstruct.")
    sig = noise.sigma / s if isinstance(noise.sigma, float) else np.asarray(noise.sigma) / s
    if noise.gain == 0:
        scaled = Gaussian(sig)
    elif np.all(np.asarray(noise.sigma) == 0):
        scaled = Poisson(noise.gain / s)
    else:
        scaled = PoissonGaussian(noise.gain / s, sig)
    return ScaledProblem(y / s, scaled, s)


def initial_gain(y: torch.Tensor, A: LinearOperator) -> float:
    """The least-squares ``α = argmin ‖y − α A Aᴴy‖`` of :func:`initial_image`."""
    b = A.apply_adjoint(y)
    return _norm(b) ** 2 / max(_norm(A.apply(b)) ** 2, 1e-30)


def initial_image(y: torch.Tensor, A: LinearOperator, lower: float | None, gain: float | None = None) -> torch.Tensor:
    """``α Aᴴy`` with the least-squares ``α`` (:func:`initial_gain`) unless ``gain`` is given (a cheap start for
    every operator)."""
    alpha = initial_gain(y, A) if gain is None else float(gain)
    return clip(alpha * A.apply_adjoint(y), lower, None)


#: The primal step τ of :func:`primal_dual` unless the operator asks for another (σ = 0.49/τ): small, so that the data
#: multiplier settles quickly; ``tol`` is the relative change per iteration at this step (a larger step stops at the
#: same stationarity ``‖Kᴴy‖/‖x‖``, not sooner)
REFERENCE_STEP = 0.05

#: :func:`primal_dual`'s ``max_step``: τ grows while the misfit is within this fraction of its target (the default of
#: ``growth_slack``)
STEP_GROWTH_SLACK = 0.03

#: :func:`primal_dual`'s ``max_step``: τ grows by this factor at a time (the default of ``growth``)
STEP_GROWTH = 1.5


def _real(t: torch.Tensor) -> torch.Tensor:
    """The real view of a complex tensor (torch's complex ``lerp_`` is ~4× slower than on the real view), else ``t``."""
    return torch.view_as_real(t) if t.is_complex() else t


def _dual_ball(reg: AnalysisRegularizer, p: torch.Tensor, radius: float) -> torch.Tensor:
    if radius == 0:  # λ = 0: no regularizer, the dual variable stays at zero
        return torch.zeros_like(p)
    if radius == 1.0:  # the constrained problem: no rescaling passes
        return reg.project_dual(p)
    return radius * reg.project_dual(p / radius)


def primal_dual(
    data: DataTerm,
    reg: AnalysisRegularizer,
    x0: torch.Tensor,
    lam: float | None = None,
    target: float = 1.0,
    lower: float | None = None,
    iterations: int = 300,
    tol: float = 1e-4,
    callback: Callback | None = None,
    relaxation: float = 1.0,
    step: float = REFERENCE_STEP,
    data_share: float = 0.5,
    max_step: float | None = None,
    growth_slack: float = STEP_GROWTH_SLACK,
    growth: float = STEP_GROWTH,
) -> tuple[torch.Tensor, dict]:
    """Chambolle–Pock on ``min_x F(Ax) + λ R(x) + ι(x ≥ lower)``, or with ``lam=None`` on the constrained
    ``min R(x) s.t. D(Ax) ≤ target · E[D]`` (the expected discrepancy at the current ``Ax``); step sizes balanced
    with block preconditioning; ``relaxation`` ρ ∈ (0, 2) over-relaxes the iteration (Condat, JOTA 158 (2013) 460;
    ρ = 1, the default, is plain Chambolle–Pock; operators may ask for other settings, :meth:`LinearOperator.
    primal_dual_steps`); ``step`` is the primal step τ (σ = 0.49/τ) and ``data_share`` the part of the step budget
    τσ‖K̃‖² < 1 given to the data block (½: balanced). ``tol`` bounds the relative change of x per iteration at the
    reference step τ = 0.05 (a larger step scales it), i.e. the stationarity ``τ₀‖Kᴴy‖/‖x‖`` wherever no bound is
    active. ``max_step`` (constrained form only; default: ``step``, fixed) lets τ grow ×``growth`` (σ = 0.49/τ
    following) at each tenth iteration where the misfit is within ``growth_slack`` of its target, up to ``max_step``:
    once the data constraint (nearly) holds, what is left is the prior's slow modes, which a larger primal step moves
    faster; finitely many step changes keep the convergence of the fixed-step iteration. Returns ``x`` (the last ``x̃``) and
    ``{"lam", "iterations", "step"}`` (the final τ)."""
    if not (0 < relaxation < 2 and step > 0 and 0 < data_share < 1):
        raise ValueError(f"primal_dual needs 0 < relaxation < 2, step > 0 and 0 < data_share < 1, got {relaxation}, "
                         f"{step}, {data_share}.")
    max_step = step if max_step is None else float(max_step)
    if max_step < step:
        raise ValueError(f"primal_dual needs max_step ≥ step, got {max_step} < {step}.")
    if not (growth > 1 and growth_slack >= 0):
        raise ValueError(f"primal_dual needs growth > 1 and growth_slack ≥ 0, got {growth} and {growth_slack}.")
    A, constrained = data.A, lam is None
    # diagonal preconditioning of the data block (Pock & Chambolle 2011): dual steps ∝ the operator's
    # measurement weights P (e.g. density compensation), with ‖P^{1/2}A‖² in place of ‖A‖²
    weights = A.preconditioner() if data.gaussian else None
    a2 = A.norm() ** 2 if weights is None else A.weighted_norm2(weights)
    l2 = reg.lipschitz
    # dual steps s₁ = 2ωσ/‖A‖², s₂ = 2(1 − ω)σ/‖L‖² (ω = data_share): τ(s₁‖A‖² + s₂‖L‖²) = 2τσ = 0.98 < 1; the image
    # is O(1) after scale_problem, and a small primal step lets the data multiplier settle quickly
    tau, sigma = step, 0.49 / step
    x = x0.clone()
    # K x of the data block is kept (own buffer: the relaxation updates it in place) for the misfit at x̃; the
    # regularizer block's 2 K x̃ − K x is computed as K(2x̃ − x) (linear): one analysis, no coefficient buffer to relax
    Kx1 = A.apply(x).clone()
    y1, y2 = torch.zeros_like(Kx1), torch.zeros_like(reg.analysis(x))
    KTy = torch.zeros_like(x)
    radius = 1.0 if constrained else lam
    grow = constrained and max_step > step

    def dual_steps(tau: float) -> tuple[float, float, float, float | torch.Tensor]:
        sigma = 0.49 / tau
        s1, s2 = 2 * data_share * sigma / a2, 2 * (1 - data_share) * sigma / l2
        return sigma, s1, s2, (s1 if weights is None else s1 * weights)

    sigma, s1, s2, s1w = dual_steps(tau)
    mu, mu_hint, delta = 0.0, 1.0, 0.0
    k = 0
    relaxed = relaxation != 1.0
    for k in range(1, iterations + 1):
        # one Chambolle–Pock step (x̃, ỹ) with fused in-place updates: v = y + s (2 K x̃ − K x)
        x_new = clip(torch.add(x, KTy, alpha=-tau), lower, None)
        # ‖x − x̃‖ = τ‖Kᴴy‖ (no bound active): the stationarity residual, measured in units of the reference step
        change = _norm(x - x_new) / max(_norm(x_new), 1e-30) * (REFERENCE_STEP / tau)
        Kn1 = A.apply(x_new)
        if constrained and k % 10 == 1:
            if grow and k > 1 and tau < max_step and data.discrepancy(Kn1) <= (1 + growth_slack) * delta:
                # the constraint (nearly) holds: a larger primal step from here on (σ = 0.49/τ), the duals stand
                tau = min(tau * growth, max_step)
                sigma, s1, s2, s1w = dual_steps(tau)
            delta = target * data.expected_discrepancy(Kn1)
        Kw2 = reg.analysis(torch.mul(x_new, 2).sub_(x))
        if weights is None:  # the old duals are overwritten unless the relaxation below needs them
            v1 = (torch.add if relaxed else torch.Tensor.add_)(y1, Kn1, alpha=2 * s1).sub_(Kx1, alpha=s1)
        else:
            v1 = torch.mul(Kn1, 2).sub_(Kx1).mul_(s1w).add_(y1)
        if constrained:  # v1 is a fresh buffer (or y1's, about to be replaced): updated in place where it can be
            y1_new, mu_p = data.project_dual(v1, s1, delta, mu_hint, weights)
            mu = mu_p * s1  # the multiplier of nll at the saddle point: λ = 1/μ
            mu_hint = mu_p if mu_p > 0 else mu_hint
        else:
            y1_new = v1 - s1w * data.prox_nll(v1 / s1w, 1.0 / s1w)
        v2 = (torch.add if relaxed else torch.Tensor.add_)(y2, Kw2, alpha=s2)
        y2_new = _dual_ball(reg, v2, radius)
        if relaxed:  # over-relaxation (x, y) ← (x, y) + ρ ((x̃, ỹ) − (x, y)); K x and Kᴴy follow by linearity
            for old_value, new_value in ((x, x_new), (Kx1, Kn1), (y1, y1_new), (y2, y2_new)):
                _real(old_value).lerp_(_real(new_value), relaxation)
            result = x_new  # x̃ satisfies the bounds; the relaxed x may not
        else:
            x, y1, y2, Kx1 = x_new, y1_new, y2_new, Kn1
            result = x
        KTy = A.apply_adjoint(y1) + reg.synthesis(y2)
        if callback is not None:
            callback(k, result, data.discrepancy(Kn1) / data.measured)
        if k > 10 and change < tol:
            break
    x = result if iterations > 0 else x
    lam_equiv = lam if not constrained else (1.0 / mu if mu > 0 else float("inf"))  # inf: constraint inactive
    return x, {"lam": lam_equiv, "iterations": k, "step": tau}


def _objective(data: DataTerm, reg: Regularizer, lam: float, x: torch.Tensor) -> float:
    return data.nll(data.A.apply(x)) + lam * float(reg.value(x))


def fista(
    data: DataTerm,
    reg: Regularizer,
    x0: torch.Tensor,
    lam: float,
    lower: float | None = None,
    iterations: int = 200,
    tol: float = 1e-4,
    callback: Callback | None = None,
) -> tuple[torch.Tensor, dict]:
    """Monotone FISTA with backtracking on ``nll(Ax) + λ R(x) + ι(x ≥ lower)``.

    The step starts at ``1/L`` (``L = ‖A‖² / min σ²`` for Gaussian noise) and halves until the quadratic
    upper bound holds (Beck & Teboulle 2009, MFISTA)."""
    A, x = data.A, x0.clone()
    if data.gaussian:
        L = A.norm() ** 2 / float(torch.as_tensor(data.sigma2).min())
    else:
        L = A.norm() ** 2 * float(data.counts.max()) / (data.gain * max(data.shift, 1e-3) ** 2 * 10)
    L = max(L, 1e-12)
    v, t_prev = x, 1.0
    f_x = _objective(data, reg, lam, x)
    k = 0
    for k in range(1, iterations + 1):
        zv = A.apply(v)
        f_v, g_v = data.nll(zv), A.apply_adjoint(data.nll_grad(zv))
        while True:
            step = 1.0 / L
            cand = reg.prox(v - step * g_v, step * lam, lower=lower)
            d = cand - v
            f_c = data.nll(A.apply(cand))
            if f_c <= f_v + dot(g_v, d) + 0.5 * L * _norm(d) ** 2 + 1e-9 * abs(f_v) or L > 1e12:
                break
            L *= 2.0
        obj_c = f_c + lam * float(reg.value(cand))
        x_new = cand if obj_c <= f_x else x  # monotone variant
        f_new = min(obj_c, f_x)
        t = fista_momentum(t_prev)
        v = x_new + (t_prev / t) * (cand - x_new) + ((t_prev - 1) / t) * (x_new - x)
        change = _norm(x_new - x) / max(_norm(x_new), 1e-30)
        x, f_x, t_prev = x_new, f_new, t
        L *= 0.9  # let the step grow back
        if callback is not None:
            callback(k, x, f_x)
        if k > 5 and change < tol:
            break
    return x, {"lam": lam, "iterations": k}


def admm(
    data: DataTerm,
    reg: Regularizer,
    x0: torch.Tensor,
    lam: float,
    lower: float | None = None,
    iterations: int = 100,
    tol: float = 1e-4,
    callback: Callback | None = None,
    cg_iterations: int = 10,
) -> tuple[torch.Tensor, dict]:
    """ADMM (PIDAL) on ``nll(u) + λR(v) + ι(v ≥ lower)`` with ``u = Ax``, ``v = x``.

    ``x ← (AᴴA + I)⁻¹ (Aᴴ(u − d₁) + (v − d₂))`` by warm-started CG; ``u ← prox_{nll/ρ}``;
    ``v ← prox_{λR/ρ}`` with the box; scaled duals ``d``; ``ρ`` adapted to balance the residuals."""
    A, y = data.A, (data.y.real if data.y.is_complex() else data.y)
    rho = 1.0 / max(float(data.noise.variance(y).mean()), 1e-12)  # the curvature of the likelihood
    x = x0.clone()
    u, v = A.apply(x), clip(x, lower, None)
    d1, d2 = torch.zeros_like(u), torch.zeros_like(v)
    k = 0
    for k in range(1, iterations + 1):
        b = A.apply_adjoint(u - d1) + (v - d2)
        x = conjugate_gradient(lambda w: A.normal(w) + w, b, x, iterations=cg_iterations, tol=1e-6)
        Ax = A.apply(x)
        u = data.prox_nll(Ax + d1, 1.0 / rho)
        v_prev = v
        v = reg.prox(x + d2, lam / rho, lower=lower)
        r1, r2 = Ax - u, x - v
        d1, d2 = d1 + r1, d2 + r2
        primal_res = math.sqrt(_norm(r1) ** 2 + _norm(r2) ** 2)
        dual_res = rho * _norm(v - v_prev) * math.sqrt(2.0)
        scale = max(_norm(x), 1e-30)
        if callback is not None:
            callback(k, v, data.nll(A.apply(v)) + lam * float(reg.value(v)))
        if k > 5 and primal_res < tol * scale * 10 and dual_res < tol * scale * rho * 10:
            break
        if primal_res > 10 * dual_res:
            rho, d1, d2 = rho * 2, d1 / 2, d2 / 2
        elif dual_res > 10 * primal_res:
            rho, d1, d2 = rho / 2, d1 * 2, d2 * 2
    return v, {"lam": lam, "iterations": k, "rho": rho}
