"""MRI reconstructions: CG-SENSE that stops itself, and compressed sensing with L1-wavelet and TV priors.

All three work on single- and multi-coil, Cartesian and non-Cartesian data with complex images, and
choose their regularisation from the noise level (given, or estimated from the k-space periphery).
"""

from __future__ import annotations

import math
from abc import abstractmethod

import torch

from ..methods._solvers import dot
from ..methods.registry import ITERATIONS, Context, Estimate, Method, Param
from ..priors.differences import gradient, gradient_adjoint
from .operators import CartesianMRI, MRIOperator
from .wavelets import Wavelet2D

__all__ = ["CGSense", "CSWavelet", "CSTotalVariation", "lipschitz"]

_MRI_OPERATORS = ("CartesianMRI", "NonCartesianMRI")


def lipschitz(A: MRIOperator) -> float:
    """‖A‖²: exact bound ``max_r Σ_c |S_c(r)|² · max M²`` for Cartesian operators, power iteration otherwise."""
    if isinstance(A, CartesianMRI):
        s2 = 1.0 if A.coil_maps is None else float((A.coil_maps.abs() ** 2).sum(0).max())
        return s2 * float(A.mask.max()) ** 2
    return A.norm() ** 2


def data_term(A: MRIOperator, y: torch.Tensor):
    """``(normal, b, L)`` of ``½‖W^{1/2}(Ax − y)‖²``: ``v ↦ AᴴWAv``, ``AᴴWy`` and a bound on ``‖AᴴWA‖``.

    ``W`` is the density compensation of non-Cartesian operators (a preconditioner: without it the
    oversampled k-space centre makes ``‖A‖²`` large and the step too small for high frequencies),
    else the identity.
    """
    density = getattr(A, "density", None)
    if not isinstance(density, torch.Tensor):
        return A.normal, A._adjoint(y), lipschitz(A)
    w = density.to(y.device)

    def normal(v: torch.Tensor) -> torch.Tensor:
        return A._adjoint(w * A._forward(v))

    g = torch.Generator().manual_seed(0)
    v = torch.randn(A.in_shape, generator=g, dtype=torch.complex64).to(y.device)
    s = 1.0
    for _ in range(20):
        v = normal(v)
        s = float(torch.linalg.vector_norm(v))
        v = v / s
    return normal, A._adjoint(w * y), 1.01 * s


def _sigma(noise, A: MRIOperator, y: torch.Tensor) -> float:
    s = float(noise.sigma_scalar) if noise is not None and noise.gain == 0 else 0.0
    return s if s > 0 else A.estimate_noise(y)


def _soft(c: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Complex soft thresholding ``c · max(0, 1 − t/|c|)``."""
    mag = c.abs()
    return c * torch.clamp(1 - t / mag.clamp(min=1e-30), min=0)


class CGSense(Method):
    name = "cg_sense"
    label = "CG-SENSE (self-stopping)"
    description = (
        "argmin ‖Ax − y‖² + λ‖x‖² by conjugate gradients from x = 0 (density-weighted for non-Cartesian data), "
        "stopped when the data misfit reaches the noise level (discrepancy principle), so it neither amplifies "
        "noise nor diverges; λ small and relative to ‖A‖²."
    )
    reference = (
        "Pruessmann et al., MRM 46 (2001) 638 (CG-SENSE); Hanke, Conjugate Gradient Type Methods for Ill-Posed "
        "Problems (1995) (early stopping by the discrepancy principle)."
    )
    operators = _MRI_OPERATORS
    domain = "mri"
    params = (
        ITERATIONS(50, 1000),
        Param("lam", float, 1e-3, 0.0, 10.0, doc="Tikhonov weight relative to ‖A‖²", log_scale=True),
        Param("tau", float, 1.0, 0.1, 10.0, doc="discrepancy target: stop when the misfit per sample reaches it"),
    )

    def run(self, y, A: MRIOperator, noise, ctx: Context, iterations: int, lam: float, tau: float) -> Estimate:
        sigma = _sigma(noise, A, y)
        density = getattr(A, "density", None)
        w = density.to(y.device) if isinstance(density, torch.Tensor) else None
        reg = lam * lipschitz(A)

        def normal(v):
            return (A.normal(v) if w is None else A._adjoint(w * A._forward(v))) + reg * v

        with torch.no_grad():
            b = A._adjoint(y if w is None else w * y)
            x = torch.zeros_like(b)
            r, p = b.clone(), b.clone()
            rs = dot(r, r)
            misfit = A.residual_misfit(y, A._forward(x), sigma)
            reason, k = "iterations", 0
            for k in range(1, iterations + 1):
                Mp = normal(p)
                pMp = dot(p, Mp)
                if pMp <= 0 or rs <= 1e-30:
                    reason = "converged"
                    break
                alpha = rs / pMp
                x_new = x + alpha * p
                misfit_new = A.residual_misfit(y, A._forward(x_new), sigma)
                ctx.log(misfit=misfit_new)
                if misfit_new > misfit and k > 1:  # the misfit stopped falling: rounding or λ dominate
                    reason = "misfit stagnated"
                    break
                x, misfit = x_new, misfit_new
                ctx.keep(x, iteration=k)
                ctx.step(k, iterations, x)
                if misfit <= tau:
                    reason = f"discrepancy {misfit:.3g} ≤ {tau:g}"
                    break
                r = r - alpha * Mp
                rs_new = dot(r, r)
                p = r + (rs_new / rs) * p
                rs = rs_new
        return Estimate(x, info={"iterations": k, "stopped": reason, "sigma": sigma, "misfit": misfit,
                                 "lam": reg})


class _ProximalCS(Method):
    """FISTA (Beck & Teboulle 2009) on ``½‖Ax − y‖² + λ R(x)`` with ``λ = κ σ`` from the noise level unless given;
    subclasses give ``R``'s proximal map."""

    operators = _MRI_OPERATORS
    domain = "mri"
    complex_images = True
    #: automatic λ starts at kappa_start · σ and is lowered until the misfit reaches τ
    kappa_start: float = 2.0

    @abstractmethod
    def _prox(self, v: torch.Tensor, t: float, k: int, ctx: Context) -> torch.Tensor:
        """``argmin_x ½‖x − v‖² + t R(x)`` (approximately, for TV) at iteration ``k``."""

    def _solve(self, y, A: MRIOperator, noise, ctx: Context, iterations: int, lam: float | None, tau: float,
               tol: float) -> Estimate:
        sigma = _sigma(noise, A, y)
        normal, b, L = data_term(A, y)
        adapt = lam is None
        lam_ = self.kappa_start * sigma if adapt else lam
        stage = 10
        with torch.no_grad():
            x = b / L
            z, t = x.clone(), 1.0
            k, reason = 0, "iterations"
            for k in range(1, iterations + 1):
                x_new = self._prox(z - (normal(z) - b) / L, lam_ / L, k, ctx)
                t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
                dx = x_new - x
                z = x_new + ((t - 1) / t_new) * dx
                change = float(torch.linalg.vector_norm(dx)) / max(float(torch.linalg.vector_norm(x_new)), 1e-30)
                x, t = x_new, t_new
                ctx.log(change=change, lam=lam_)
                ctx.keep(x, iteration=k)
                ctx.step(k, iterations, x)
                if adapt and k % stage == 0:  # continuation: lower λ until the data are fitted to the noise level
                    misfit = A.residual_misfit(y, A._forward(x), sigma)
                    if misfit > tau and k + stage < iterations:
                        lam_ *= min(max((tau / misfit) ** 1.5, 0.3), 0.85)
                    else:
                        adapt = False
                    continue
                if change < tol and k > 5 and not adapt:
                    reason = f"relative change {change:.2g} < {tol:g}"
                    break
            misfit = A.residual_misfit(y, A._forward(x), sigma)
        return Estimate(x, info={"iterations": k, "stopped": reason, "lam": lam_,
                                 "lam_choice": "given" if lam is not None else f"discrepancy (τ={tau:g}) by continuation",
                                 "sigma": sigma, "misfit": misfit})


class CSWavelet(_ProximalCS):
    name = "cs_wavelet"
    label = "L1-wavelet compressed sensing"
    description = (
        "argmin ½‖Ax − y‖² + λ‖Ψx‖₁ (Ψ an orthonormal Daubechies wavelet transform, db2 by default, complex "
        "soft thresholding; density-weighted data term for non-Cartesian k-space) by "
        "FISTA with a random circular shift of Ψ at every iteration (cycle spinning); λ by the discrepancy principle "
        "(continuation: lowered until the misfit reaches the noise level) unless given."
    )
    reference = (
        "Lustig, Donoho & Pauly, MRM 58 (2007) 1182; Beck & Teboulle, SIAM J. Imaging Sci. 2 (2009) 183; "
        "Figueiredo & Nowak, IEEE TIP 12 (2003) 906 (random shifts); Coifman & Donoho (1995) (cycle spinning)."
    )
    params = (
        ITERATIONS(100, 5000),
        Param("lam", float, None, 0.0, None, doc="regularisation weight (empty: discrepancy principle)", log_scale=True),
        Param("tau", float, 0.85, 0.1, 10.0, doc="discrepancy target (misfit per sample) for the automatic λ"),
        Param("wavelet", str, "db2", choices=("haar", "db2", "db4", "sym4", "sym8"),
              doc="orthogonal wavelet (db2 measured best on the phantoms)"),
        Param("levels", int, 4, 1, 8, doc="decomposition levels"),
        Param("shifts", bool, True, doc="random wavelet shifts (cycle spinning) at every iteration"),
        Param("tol", float, 1e-4, 0.0, 1.0, doc="stop when the relative change of x falls below this"),
    )

    def run(self, y, A, noise, ctx: Context, iterations: int, lam: float | None, wavelet: str, levels: int,
            shifts: bool, tau: float, tol: float) -> Estimate:
        if A.ndim != 2:
            raise ValueError("cs_wavelet reconstructs 2D images; reconstruct a 3D volume slice by slice.")
        self.W = Wavelet2D(A.in_shape, wavelet, levels)
        self.detail = self.W.detail_mask(y.device)
        self.shifts = shifts
        self.gen = ctx.generator(1)
        est = self._solve(y, A, noise, ctx, iterations, lam, tau, tol)
        est.info.update(wavelet=wavelet, levels=self.W.levels, shifts=shifts)
        return est

    def _prox(self, v, t, k, ctx):
        m = 2 ** self.W.levels
        if self.shifts:
            sy, sx = (int(s) for s in torch.randint(0, m, (2,), generator=self.gen, device=self.gen.device))
            v = torch.roll(v, (sy, sx), dims=(-2, -1))
        c = self.W.forward(v)
        c = c * (1 - self.detail) + _soft(c, t) * self.detail
        x = self.W.inverse(c)
        return torch.roll(x, (-sy, -sx), dims=(-2, -1)) if self.shifts else x


class CSTotalVariation(_ProximalCS):
    name = "cs_tv"
    label = "TV compressed sensing"
    description = (
        "argmin ½‖Ax − y‖² + λ TV(x) (isotropic TV of the complex image) by FISTA whose TV proximal steps are solved "
        "by warm-started fast gradient projection on the dual; λ by the discrepancy principle (continuation) unless given."
    )
    reference = (
        "Block, Uecker & Frahm, MRM 57 (2007) 1086 (TV for undersampled radial MRI); Beck & Teboulle, IEEE TIP 18 "
        "(2009) 2419 (FGP and FISTA for TV); Rudin, Osher & Fatemi, Physica D 60 (1992) 259."
    )
    params = (
        ITERATIONS(150, 5000),
        Param("lam", float, None, 0.0, None, doc="regularisation weight (empty: discrepancy principle)", log_scale=True),
        Param("tau", float, 0.85, 0.1, 10.0, doc="discrepancy target (misfit per sample) for the automatic λ"),
        Param("inner", int, 8, 1, 200, doc="dual iterations per TV proximal step"),
        Param("tol", float, 1e-4, 0.0, 1.0, doc="stop when the relative change of x falls below this"),
    )

    def run(self, y, A, noise, ctx: Context, iterations: int, lam: float | None, tau: float, inner: int, tol: float) -> Estimate:
        self.inner = inner
        self.nd = A.ndim
        self.dual = None
        est = self._solve(y, A, noise, ctx, iterations, lam, tau, tol)
        est.info.update(inner=inner)
        return est

    def _prox(self, v, t, k, ctx):
        nd = self.nd
        step = 1.0 / (4 * nd * t)  # 1 / (‖∇‖² t), ‖∇‖² ≤ 4·ndim
        p = torch.zeros((nd,) + tuple(v.shape), dtype=v.dtype, device=v.device) if self.dual is None else self.dual
        q, s = p, 1.0
        for _ in range(self.inner):
            x = v - t * gradient_adjoint(q, nd)
            p_new = q + step * gradient(x, nd)
            p_new = p_new / torch.sqrt((p_new.abs() ** 2).sum(0, keepdim=True)).clamp(min=1.0)
            s_new = (1 + math.sqrt(1 + 4 * s * s)) / 2
            q = p_new + ((s - 1) / s_new) * (p_new - p)
            p, s = p_new, s_new
        self.dual = p
        return v - t * gradient_adjoint(p, nd)
