"""Proximal solvers for ``min_x F(Ax) + λ R(x)`` subject to ``lower ≤ x ≤ upper``.

``F`` is the negative log-likelihood of a camera noise model (Gaussian, or shifted Poisson for Poisson and
Poisson–Gaussian noise) and ``R`` a hand-crafted regularizer from :mod:`napari_invimg.priors`. Three
solvers, for any linear operator, real or complex images, 2D or 3D:

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
from ..operators.kernels import conjugate_gradient, dot, fista_momentum
from ..operators.noise import Gaussian, NoiseModel, Poisson, PoissonGaussian
from ..priors.base import AnalysisRegularizer, Regularizer, clip

__all__ = ["Fidelity", "ScaledProblem", "scale_problem", "initial_gain", "initial_image", "primal_dual", "fista", "admm",
           "Callback"]

#: ``callback(k, x, objective_or_misfit)``; called every iteration with the current image
Callback = Callable[[int, torch.Tensor, float], None]


def _norm(t: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(t))


class Fidelity:
    """The data term of a noise model: ``nll(z)``, the discrepancy ``D(z)`` and the prox of ``μ·nll``.

    Gaussian: ``nll = Σ|z − y|²/2σ²`` and ``D = Σ|z − y|²/κσ²`` (κ = 2 for complex data, else 1).
    Poisson(–Gaussian), shifted counts ``Z = (z + c)/g``, ``Y = (y + c)/g``, ``c = σ²/g``:
    ``nll = Σ Z − Y log Z`` and ``D = 2 Σ Y log(Y/Z) − (Y − Z)`` (the deviance). Both ``D`` have
    expectation ≈ ``M`` at the true ``z``, and ``D = 2/κ·nll + const``. ``M`` = ``measured`` (default: every
    value of ``y``) counts only the measurements when the other values are zero by construction (unsampled
    k-space: :meth:`Operator.n_measured`).
    """

    def __init__(self, noise: NoiseModel, y: torch.Tensor, measured: int | None = None):
        self.noise, self.y = noise, y
        self.gaussian = noise.gain == 0
        self.size = y.numel() if measured is None else int(measured)
        if self.gaussian:
            s = noise._sigma_t(y.real if y.is_complex() else y)
            self.var = s * s
            self.kappa = 2.0 if y.is_complex() else 1.0
        else:
            if y.is_complex():
                raise ValueError("Poisson noise needs real data; this measurement is complex.")
            self.gain, self.shift = noise.gain, noise._shift()
            self.counts = ((y + self.shift) / self.gain).clamp(min=0)

    def nll(self, z: torch.Tensor) -> float:
        return float(self.noise.nll(self.y, z))

    def grad(self, z: torch.Tensor) -> torch.Tensor:
        return self.noise.grad(self.y, z)

    def expected_discrepancy(self, z: torch.Tensor, seed: int = 0) -> float:
        """``E[D(z)]`` if ``z`` were the true mean, by simulating the camera once at ``z`` (exact for Gaussian
        noise; at low photon counts the Poisson deviance expectation falls well below ``M``)."""
        if self.gaussian:
            return float(self.size)
        simulated = self.noise.sample(z.clamp(min=0), seed=seed)
        return self.noise.misfit(simulated, z) * self.size  # mean deviance per value × M

    def discrepancy(self, z: torch.Tensor) -> float:
        """``D(z) = M · misfit`` (≈ ``M`` when ``z`` is the true mean)."""
        if self.gaussian and isinstance(self.var, float):  # one fused pass
            return _norm(z - self.y) ** 2 / (self.kappa * self.var)
        return self.noise.misfit(self.y, z, self.size) * self.size

    def prox(self, v: torch.Tensor, mu: float) -> torch.Tensor:
        """``argmin_z ½‖z − v‖² + μ nll(z)`` (closed form, elementwise)."""
        if self.gaussian:
            w = mu / self.var
            return (v + w * self.y) / (1 + w)
        g, c, Y = self.gain, self.shift, self.counts
        b = mu / g - c - v
        root = torch.sqrt(b * b + 4 * mu * Y)
        # the positive root of g Z² + b Z − μY/g = 0, in the form without cancellation
        Z = torch.where(b > 0, 2 * mu * Y / (g * (b + root)).clamp(min=1e-30), (root - b) / (2 * g))
        return g * Z - c

    def project(self, v: torch.Tensor, delta: float, mu0: float,
                weights: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
        """Projection of ``v`` onto ``{z : D(z) ≤ δ}`` in the metric ``Σ_i w_i |z_i − v_i|²``: ``prox(v, μ / w)``
        with ``D(prox(v, μ / w)) = δ`` (``w`` = 1 when ``weights`` is ``None``).

        Gaussian noise: ``D(μ) = Σ_i q_i / (1 + μ c_i)²`` with ``q = |v − y|²/κσ²``, ``c = 1/(σ² w)``: closed form
        when ``c`` is constant, else Newton steps on ``D^{-1/2}`` (nearly linear in ``μ``). Poisson: ``log D``
        decreases in ``log μ``; the root is bracketed from the warm start ``μ₀`` and refined by the Illinois
        variant of regula falsi (relative accuracy 1e-4 in ``D``)."""
        if self.gaussian:
            return self._project_gaussian(v, delta, weights)
        if weights is not None:
            raise ValueError("Preconditioned projections are implemented for Gaussian noise only.")
        if self.discrepancy(v) <= delta:
            return v, 0.0
        log_delta = math.log(delta)

        def f(s: float) -> float:
            return math.log(max(self.discrepancy(self.prox(v, math.exp(s))), 1e-300)) - log_delta

        s0 = math.log(max(mu0, 1e-30))
        f0 = f(s0)
        step = 0.5 if f0 > 0 else -0.5
        s1, f1 = s0 + step, f(s0 + step)
        while f0 * f1 > 0 and abs(s1) < 80:
            step *= 2
            s0, f0 = s1, f1
            s1, f1 = s1 + step, f(s1 + step)
        (lo, f_lo), (hi, f_hi) = sorted(((s0, f0), (s1, f1)))  # f(lo) > 0 ≥ f(hi)
        last = 0
        for _ in range(60):
            if hi - lo < 1e-9:
                break
            s_new = hi - f_hi * (hi - lo) / (f_hi - f_lo)
            f_new = f(s_new)
            if abs(f_new) < 1e-4:
                hi = s_new
                break
            if f_new > 0:
                lo, f_lo = s_new, f_new
                if last == -1:
                    f_hi /= 2  # Illinois: halve the stale end point
                last = -1
            else:
                hi, f_hi = s_new, f_new
                if last == 1:
                    f_lo /= 2
                last = 1
        mu = math.exp(hi)
        return self.prox(v, mu), mu

    def _project_gaussian(self, v: torch.Tensor, delta: float,
                          weights: torch.Tensor | None) -> tuple[torch.Tensor, float]:
        r = v - self.y
        if weights is None and isinstance(self.var, float):  # D(μ) = Q / (1 + μ/σ²)²
            total = _norm(r) ** 2 / (self.kappa * self.var)
            if total <= delta:
                return v, 0.0
            mu = (math.sqrt(total / delta) - 1) * self.var
            return self.y + r / (1 + mu / self.var), mu
        q = (torch.view_as_real(r).square().sum(-1) if r.is_complex() else r.square()) / (self.kappa * self.var)
        total = float(q.sum())
        if total <= delta:
            return v, 0.0
        c = 1.0 / torch.as_tensor(self.var if weights is None else self.var * weights, device=v.device)
        if c.numel() == 1:
            mu = (math.sqrt(total / delta) - 1) / float(c)
        else:  # Newton on h(μ) = D(μ)^{-1/2} − δ^{-1/2}, from μ = 0 (h increasing, nearly linear)
            mu, target = 0.0, delta ** -0.5
            for _ in range(50):
                f = 1 / (1 + mu * c)
                d = float((q * f * f).sum())
                h = d ** -0.5 - target
                if abs(h) < 2e-5 * target:
                    break
                dd = float((-2 * q * c * f ** 3).sum())  # D'(μ)
                mu = max(mu - h / (-0.5 * d ** -1.5 * dd), 0.5 * mu)
        return self.y + r / (1 + mu * c), mu


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


def _dual_ball(reg: AnalysisRegularizer, p: torch.Tensor, radius: float) -> torch.Tensor:
    if radius == 0:  # λ = 0: no regularizer, the dual variable stays at zero
        return torch.zeros_like(p)
    return radius * reg.project_dual(p / radius)


def primal_dual(
    fid: Fidelity,
    A: LinearOperator,
    reg: AnalysisRegularizer,
    x0: torch.Tensor,
    lam: float | None = None,
    target: float = 1.0,
    lower: float | None = None,
    iterations: int = 300,
    tol: float = 1e-4,
    callback: Callback | None = None,
) -> tuple[torch.Tensor, dict]:
    """Chambolle–Pock on ``min_x F(Ax) + λ R(x) + ι(x ≥ lower)``, or with ``lam=None`` on the constrained
    ``min R(x) s.t. D(Ax) ≤ target · E[D]`` (the expected discrepancy at the current ``Ax``); step sizes balanced
    with block preconditioning. Returns ``x`` and ``{"lam", "iterations"}``."""
    constrained = lam is None
    # diagonal preconditioning of the data block (Pock & Chambolle 2011): dual steps ∝ the operator's
    # measurement weights P (e.g. density compensation), with ‖P^{1/2}A‖² in place of ‖A‖²
    weights = A.preconditioner() if fid.gaussian else None
    a2 = A.norm() ** 2 if weights is None else A.weighted_norm2(weights)
    l2 = reg.lipschitz
    # τσ‖K̃‖² < 1 with the block preconditioners 1/‖A‖², 1/‖L‖² (‖K̃‖² ≤ 2); the image is O(1) after
    # scale_problem, and a small primal step lets the data multiplier settle quickly
    tau, sigma = 0.05, 0.49 / 0.05
    x = x0.clone()
    y1 = torch.zeros_like(A.apply(x))
    y2 = torch.zeros_like(reg.analysis(x))
    Kx1, Kx2 = A.apply(x), reg.analysis(x)
    KTy = torch.zeros_like(x)
    radius = 1.0 if constrained else lam
    s1, s2 = sigma / a2, sigma / l2
    s1w = s1 if weights is None else s1 * weights
    mu, mu_hint, delta = 0.0, 1.0, 0.0
    k = 0
    for k in range(1, iterations + 1):
        x_new = clip(x - tau * KTy, lower, None)
        Kn1, Kn2 = A.apply(x_new), reg.analysis(x_new)
        v1 = y1 + s1w * (2 * Kn1 - Kx1)
        if constrained:
            if k % 10 == 1:
                delta = target * fid.expected_discrepancy(Kn1)
            z, mu_p = fid.project(v1 / s1w, delta, mu_hint, weights)
            mu = mu_p * s1  # the multiplier of nll at the saddle point: λ = 1/μ
            mu_hint = mu_p if mu_p > 0 else mu_hint
            y1_new = v1 - s1w * z
        else:
            y1_new = v1 - s1w * fid.prox(v1 / s1w, 1.0 / s1w)
        y2_new = _dual_ball(reg, y2 + s2 * (2 * Kn2 - Kx2), radius)
        KTy_new = A.apply_adjoint(y1_new) + reg.synthesis(y2_new)
        change = _norm(x - x_new) / max(_norm(x_new), 1e-30)
        x, y1, y2, Kx1, Kx2, KTy = x_new, y1_new, y2_new, Kn1, Kn2, KTy_new
        if callback is not None:
            callback(k, x, fid.discrepancy(Kx1) / fid.size)
        if k > 10 and change < tol:
            break
    lam_equiv = lam if not constrained else (1.0 / mu if mu > 0 else float("inf"))  # inf: constraint inactive
    return x, {"lam": lam_equiv, "iterations": k}


def _objective(fid: Fidelity, A: LinearOperator, reg: Regularizer, lam: float, x: torch.Tensor) -> float:
    return fid.nll(A.apply(x)) + lam * float(reg.value(x))


def fista(
    fid: Fidelity,
    A: LinearOperator,
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
    x = x0.clone()
    if fid.gaussian:
        L = A.norm() ** 2 / float(torch.as_tensor(fid.var).min())
    else:
        L = A.norm() ** 2 * float(fid.counts.max()) / (fid.gain * max(fid.shift, 1e-3) ** 2 * 10)
    L = max(L, 1e-12)
    v, t_prev = x, 1.0
    f_x = _objective(fid, A, reg, lam, x)
    k = 0
    for k in range(1, iterations + 1):
        zv = A.apply(v)
        f_v, g_v = fid.nll(zv), A.apply_adjoint(fid.grad(zv))
        while True:
            step = 1.0 / L
            cand = reg.prox(v - step * g_v, step * lam, lower=lower)
            d = cand - v
            f_c = fid.nll(A.apply(cand))
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
    fid: Fidelity,
    A: LinearOperator,
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
    y = fid.y.real if fid.y.is_complex() else fid.y
    rho = 1.0 / max(float(fid.noise.variance(y).mean()), 1e-12)  # the curvature of the likelihood
    x = x0.clone()
    u, v = A.apply(x), clip(x, lower, None)
    d1, d2 = torch.zeros_like(u), torch.zeros_like(v)
    k = 0
    for k in range(1, iterations + 1):
        b = A.apply_adjoint(u - d1) + (v - d2)
        x = conjugate_gradient(lambda w: A.normal(w) + w, b, x, iterations=cg_iterations, tol=1e-6)
        Ax = A.apply(x)
        u = fid.prox(Ax + d1, 1.0 / rho)
        v_prev = v
        v = reg.prox(x + d2, lam / rho, lower=lower)
        r1, r2 = Ax - u, x - v
        d1, d2 = d1 + r1, d2 + r2
        primal_res = math.sqrt(_norm(r1) ** 2 + _norm(r2) ** 2)
        dual_res = rho * _norm(v - v_prev) * math.sqrt(2.0)
        scale = max(_norm(x), 1e-30)
        if callback is not None:
            callback(k, v, fid.nll(A.apply(v)) + lam * float(reg.value(v)))
        if k > 5 and primal_res < tol * scale * 10 and dual_res < tol * scale * rho * 10:
            break
        if primal_res > 10 * dual_res:
            rho, d1, d2 = rho * 2, d1 / 2, d2 / 2
        elif dual_res > 10 * primal_res:
            rho, d1, d2 = rho / 2, d1 * 2, d2 * 2
    return v, {"lam": lam, "iterations": k, "rho": rho}
