"""MRI reconstruction: CG-SENSE that stops itself by the discrepancy principle.

It works on single- and multi-coil, Cartesian and non-Cartesian data with complex images. Compressed
sensing is the generic ``wavelet`` and ``tv`` methods (:mod:`napari_invimg.methods.variational`), which
count only the measured k-space samples (``A.n_measured()``) in their discrepancy principle and use the
density compensation as a preconditioner (``A.preconditioner()``) on non-Cartesian data.
"""

from __future__ import annotations

import torch

from ..methods.registry import ITERATIONS, Context, Estimate, Method, Param
from ..operators.kernels import dot
from .operators import MRIOperator

__all__ = ["CGSense", "lipschitz"]

_MRI_OPERATORS = ("CartesianMRI", "NonCartesianMRI")


def lipschitz(A: MRIOperator) -> float:
    """‖A‖²: the exact bound of :meth:`CartesianMRI.norm` for Cartesian operators, power iteration otherwise."""
    return A.norm() ** 2


def _sigma(noise, A: MRIOperator, y: torch.Tensor) -> float:
    s = float(noise.sigma_scalar) if noise is not None and noise.gain == 0 else 0.0
    return s if s > 0 else A.estimate_noise(y)


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
            return (A.normal(v) if w is None else A.apply_adjoint(w * A.apply(v))) + reg * v

        with torch.no_grad():
            b = A.apply_adjoint(y if w is None else w * y)
            x = torch.zeros_like(b)
            r, p = b.clone(), b.clone()
            rs = dot(r, r)
            misfit = A.residual_misfit(y, A.apply(x), sigma)
            reason, k = "iterations", 0
            for k in range(1, iterations + 1):
                Mp = normal(p)
                pMp = dot(p, Mp)
                if pMp <= 0 or rs <= 1e-30:
                    reason = "converged"
                    break
                alpha = rs / pMp
                x_new = x + alpha * p
                misfit_new = A.residual_misfit(y, A.apply(x_new), sigma)
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
