"""The data term ``−log p(y | x)`` of ``y = A x + noise``: one object for every method's data step.

:class:`DataTerm` holds ``y``, the linear operator ``A`` and the camera noise model, and gives the likelihood
**exact** on predicted data ``z = A x`` (``nll``, ``nll_grad``, the closed-form ``prox_nll``, the discrepancy and
the projection onto ``{D ≤ δ}``: the convex solvers' data term) and as **weighted least squares** on images,
``f(x) = ½ Σ w |A x − y|²`` with ``w = 1/Var[y]`` (exact for Gaussian noise, the Gaussian approximation of Poisson
noise, whose gradient is Lipschitz: ``value``, ``grad``, ``lipschitz``, ``misfit`` and the preconditioned-CG
``prox``: the data term of plug-and-play, Langevin, diffusion guidance and VB; batches sum per image).
"""

from __future__ import annotations

import math
from functools import cached_property

import torch

from .base import LinearOperator
from .kernels import conjugate_gradient
from .noise import NoiseModel

__all__ = ["DataTerm"]


def _norm(t: torch.Tensor) -> float:
    # a complex tensor's norm is its real view's: far faster on CPU than vector_norm of complex values
    return float(torch.linalg.vector_norm(torch.view_as_real(t.resolve_conj()) if t.is_complex() else t))


def sum_image(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """Sum over the trailing ``ndim`` (image) axes, keeping the batch axes."""
    return t.sum(dim=tuple(range(t.ndim - ndim, t.ndim))) if ndim else t


class DataTerm:
    """``−log p(y | A x)`` for a camera noise model: exact on ``z = A x``, weighted least squares on images.

    Exact: Gaussian ``nll = Σ|z − y|²/2σ²`` and ``D = Σ|z − y|²/κσ²`` (κ = 2 for complex data, else 1);
    Poisson(–Gaussian), shifted counts ``Z = (z + c)/g``, ``Y = (y + c)/g``, ``c = σ²/g``: ``nll = Σ Z − Y log Z``
    and ``D = 2 Σ Y log(Y/Z) − (Y − Z)`` (the deviance). ``D ≈ M`` at the true ``z``; ``M`` = ``measured`` (default:
    every value of ``y``) counts only the measurements when the others are zero by construction
    (:meth:`Operator.n_measured`).

    Weighted least squares: ``w = 1/v`` with ``v`` = ``variance`` when given (e.g. the camera variance at a first
    estimate, ``noise.variance(A x₀)``), else the camera variance at the data, ``gain · max(y, gain) + σ²``; floored
    at 10⁻¹² of its largest value (relative: no floor in the data's units).
    """

    def __init__(self, y: torch.Tensor, A: LinearOperator, noise: NoiseModel, variance: torch.Tensor | None = None,
                 measured: int | None = None):
        self.y, self.A, self.noise = y, A, noise
        self.gaussian = noise.gain == 0
        self.measured = y.numel() if measured is None else int(measured)
        #: operator evaluations (one per image of a batch) by value, grad and prox
        self.evaluations = 0
        if self.gaussian:
            s = noise._sigma_t(y.real if y.is_complex() else y)
            self.sigma2 = s * s
            self.kappa = 2.0 if y.is_complex() else 1.0
        else:
            if y.is_complex():
                raise ValueError("Poisson noise needs real data; this measurement is complex.")
            self.gain, self.shift = noise.gain, noise._shift()
            self.counts = ((y + self.shift) / self.gain).clamp(min=0)
        if variance is None:
            variance = noise.variance((y.real if y.is_complex() else y).clamp(min=noise.gain))
        #: ``v``, the variance behind the weights, and the weights ``w = 1/v`` per measurement
        self.variance = variance.clamp(min=1e-12 * float(variance.max()) + 1e-38)
        self.weights = 1.0 / self.variance

    # -- weighted least squares on images ---------------------------------------------------------------
    @cached_property
    def lipschitz(self) -> float:
        """Lipschitz constant of ``∇f``: ``‖A‖² max w``."""
        return self.A.norm() ** 2 * float(self.weights.max())

    @cached_property
    def weighted_adjoint(self) -> torch.Tensor:
        """``Aᴴ W y``."""
        return self.A.apply_adjoint(self.weights * self.y)

    def weighted_normal(self, x: torch.Tensor) -> torch.Tensor:
        """``Aᴴ W A x``."""
        return self.A.apply_adjoint(self.weights * self.A.apply(x))

    def _count(self, x: torch.Tensor, times: int = 1) -> None:
        self.evaluations += times * max(1, x.numel() // max(1, math.prod(self.A.in_shape)))

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        self._count(x)
        return self.A.apply(x) - self.y

    def value(self, x: torch.Tensor) -> torch.Tensor:
        """``f(x) = ½ Σ w |A x − y|²`` per image of the batch."""
        return 0.5 * sum_image(self._residual(x).abs() ** 2 * self.weights, len(self.A.out_shape))

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """``∇f(x) = Aᴴ W (A x − y)``."""
        return self.A.apply_adjoint(self._residual(x) * self.weights)

    def value_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = self._residual(x)
        return 0.5 * sum_image(r.abs() ** 2 * self.weights, len(self.A.out_shape)), self.A.apply_adjoint(r * self.weights)

    def misfit(self, x: torch.Tensor) -> float:
        """The mean weighted misfit ``mean(w |A x − y|²)``: 1 at the noise level's expectation."""
        return float((self.weights * (self.A.apply(x) - self.y).abs() ** 2).mean())

    def prox(self, center: torch.Tensor, rho: float, start: torch.Tensor | None = None, iterations: int = 20,
             tol: float = 1e-6) -> torch.Tensor:
        """``argmin_x f(x) + ρ/2 ‖x − center‖²`` by conjugate gradients from ``start`` (default: ``center``),
        preconditioned by the operator's approximate inverse of ``w₀·AᴴA + ρ`` (``w₀`` the least weight) where it
        has one (:meth:`LinearOperator.gram_preconditioner`); stops at a relative residual ``tol``."""

        def normal(v: torch.Tensor) -> torch.Tensor:
            self._count(v)
            return self.weighted_normal(v) + rho * v

        return conjugate_gradient(normal, self.weighted_adjoint + rho * center, center if start is None else start,
                                  iterations=iterations, tol=tol,
                                  preconditioner=self.A.gram_preconditioner(float(self.weights.min()), rho))

    # -- exact negative log-likelihood on predicted data z = A x ------------------------------------------
    def nll(self, z: torch.Tensor) -> float:
        """``−log p(y | z)`` up to a constant."""
        return float(self.noise.nll(self.y, z))

    def nll_grad(self, z: torch.Tensor) -> torch.Tensor:
        """``∇_z nll``."""
        return self.noise.grad(self.y, z)

    def expected_discrepancy(self, z: torch.Tensor, seed: int = 0) -> float:
        """``E[D(z)] = M · E[misfit]`` if ``z`` were the true mean (:meth:`NoiseModel.expected_misfit` from one draw,
        exact for Gaussian noise; the Poisson deviance's expectation departs from ``M`` at low photon counts)."""
        if self.gaussian:
            return float(self.measured)
        # one draw: primal_dual re-estimates it every 10 iterations (many draws cost 60 ms a call at 64²)
        return self.noise.expected_misfit(z, seed=seed, draws=1) * self.measured  # mean deviance per value × M

    def discrepancy(self, z: torch.Tensor) -> float:
        """``D(z) = M · misfit`` (≈ ``M`` when ``z`` is the true mean)."""
        if self.gaussian and isinstance(self.sigma2, float):  # one fused pass
            return _norm(z - self.y) ** 2 / (self.kappa * self.sigma2)
        return self.noise.misfit(self.y, z, self.measured) * self.measured

    def prox_nll(self, v: torch.Tensor, mu: float | torch.Tensor) -> torch.Tensor:
        """``argmin_z ½‖z − v‖² + μ nll(z)`` (closed form, elementwise)."""
        if self.gaussian:
            w = mu / self.sigma2
            return (v + w * self.y) / (1 + w)
        g, c, Y = self.gain, self.shift, self.counts
        b = mu / g - c - v
        root = torch.sqrt(b * b + 4 * mu * Y)
        # the positive root of g Z² + b Z − μY/g = 0, in the form without cancellation
        Z = torch.where(b > 0, 2 * mu * Y / (g * (b + root)).clamp(min=1e-30), (root - b) / (2 * g))
        return g * Z - c

    def project(self, v: torch.Tensor, delta: float, mu0: float,
                weights: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
        """Projection of ``v`` onto ``{z : D(z) ≤ δ}`` in the metric ``Σ_i p_i |z_i − v_i|²``: ``prox_nll(v, μ / p)``
        with ``D(prox_nll(v, μ / p)) = δ`` (``p`` = 1 when ``weights`` is ``None``).

        Gaussian noise: ``D(μ) = Σ_i q_i / (1 + μ c_i)²`` with ``q = |v − y|²/κσ²``, ``c = 1/(σ² p)``: closed form
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
            return math.log(max(self.discrepancy(self.prox_nll(v, math.exp(s))), 1e-300)) - log_delta

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
        return self.prox_nll(v, mu), mu

    def project_dual(self, v: torch.Tensor, step: float, delta: float, mu0: float,
                     weights: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
        """The dual update of the constraint ``{D ≤ δ}`` (Moreau): ``v − s ⊙ P(v / s)`` with ``s = step · p``
        (``p`` = ``weights``, else 1) and ``P`` :meth:`project`; returns it with ``P``'s multiplier ``μ``. Gaussian
        noise with one ``σ`` and no weights: ``r · max(0, 1 − (δ / D_s)^{1/2})``, ``r = v − s y``, ``D_s = ‖r‖²/(s²κσ²)``
        in two passes, written into ``v`` (which is then returned); else through :meth:`project` (``v`` kept)."""
        if self.gaussian and weights is None and isinstance(self.sigma2, float):
            r = v.sub_(self.y, alpha=step)
            total = _norm(r) ** 2 / (step * step * self.kappa * self.sigma2)
            if total <= delta:
                return r.zero_(), 0.0
            ratio = math.sqrt(total / delta)  # 1 + μ/σ²
            return r.mul_(1.0 - 1.0 / ratio), (ratio - 1.0) * self.sigma2
        sw = step if weights is None else step * weights
        z, mu = self.project(v / sw, delta, mu0, weights)
        return v - sw * z, mu

    def _project_gaussian(self, v: torch.Tensor, delta: float,
                          weights: torch.Tensor | None) -> tuple[torch.Tensor, float]:
        r = v - self.y
        if weights is None and isinstance(self.sigma2, float):  # D(μ) = Q / (1 + μ/σ²)²
            total = _norm(r) ** 2 / (self.kappa * self.sigma2)
            if total <= delta:
                return v, 0.0
            mu = (math.sqrt(total / delta) - 1) * self.sigma2
            return self.y + r / (1 + mu / self.sigma2), mu
        q = (torch.view_as_real(r).square().sum(-1) if r.is_complex() else r.square()) / (self.kappa * self.sigma2)
        total = float(q.sum())
        if total <= delta:
            return v, 0.0
        c = 1.0 / torch.as_tensor(self.sigma2 if weights is None else self.sigma2 * weights, device=v.device)
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
