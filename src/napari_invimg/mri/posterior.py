"""A posterior for compressed-sensing MRI: the Laplace approximation of the ℓ1 (wavelet or TV) posterior at its mode.

The posterior ``p(x | y) ∝ exp(−‖Ax − y‖²/2σ² − λ Σ_g s_g |(Lx)_g|)`` (``L`` the undecimated Haar transform or the
image gradient, groups ``g`` = coefficients or pixels' gradients) is approximated by the Gaussian whose potential
replaces every ``|c_g|`` by its tangent quadratic bound at the mode ``ĉ = L x̂`` (the IRLS majorizer,
``|c| ≤ |c|²/2|ĉ| + |ĉ|/2``): precision ``H = AᴴA/σ² + Lᴴ D L`` with ``D_g = λ s_g / max(|ĉ_g|, ε)``. Its mean is
the MAP ``x̂`` (the fixed point of IRLS is the ℓ1 optimum), λ is the one the MAP picks by the discrepancy principle,
and samples are drawn by perturb-and-optimize: ``x = H⁻¹(Aᴴ(y + σξ₁)/σ² + Lᴴ D^{1/2} ξ₂)`` with ``ξ`` standard
normal, solved by conjugate gradients, all samples as one batch.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from ..methods.registry import ITERATIONS, Context, Estimate, Method, Param
from ..methods.variational import solve_regularized
from ..operators.kernels import conjugate_gradient
from ..operators.noise import Gaussian
from ..priors.base import AnalysisRegularizer
from ..priors.tv import TotalVariation
from ..priors.wavelet import WaveletSparsity
from .methods import _MRI_OPERATORS, _sigma
from .operators import MRIOperator

__all__ = ["SparseLaplace", "sparse_precision"]


def _crandn(shape: tuple[int, ...], like: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    real = torch.randn(shape, generator=gen, device=gen.device)
    if not like.is_complex():
        return real.to(like.device, like.dtype)
    imag = torch.randn(shape, generator=gen, device=gen.device)
    return torch.complex(real, imag).to(like.device, like.dtype)


def sparse_precision(reg: AnalysisRegularizer, x_map: torch.Tensor, lam: float, floor: float) -> torch.Tensor:
    """``D_g = λ s_g / max(|ĉ_g|, ε)``, shaped like ``reg.analysis(x_map)``: the curvature of the tangent quadratic
    bound of ``λ Σ_g s_g |c_g|`` at ``ĉ = L x̂`` (groups: wavelet coefficients, or the gradient at a pixel for TV)."""
    c = reg.analysis(x_map)
    if isinstance(reg, WaveletSparsity):
        weight, magnitude = reg.band_weights(x_map), c.abs()
    else:  # TV: the group norm of the gradient components (axis 0) at each pixel
        weight, magnitude = torch.ones((), device=c.device), c.abs().pow(2).sum(0, keepdim=True).sqrt()
    d = lam * weight / magnitude.clamp(min=floor)
    return d.expand_as(c).to(c.real.dtype)


class SparseLaplace(Method):
    name = "sparse_laplace"
    label = "Sparse posterior (Laplace approximation at the ℓ1 MAP)"
    description = (
        "Gaussian approximation of p(x|y) ∝ exp(−‖Ax−y‖²/2σ² − λ Σ s|Lx|) at its mode (L: undecimated Haar wavelets or "
        "the gradient; λ by the discrepancy principle): precision AᴴA/σ² + Lᴴ diag(λs/max(|Lx̂|, ε)) L; mean = the MAP, "
        "samples by perturb-and-optimize (conjugate gradients); std of the magnitude for complex images."
    )
    reference = (
        "Seeger & Nickisch, SIAM J Imaging Sci 4 (2011) 166 (Gaussian bounds of sparse potentials, MRI); "
        "Papandreou & Yuille, ICCV 2011 (perturb-and-MAP); Lustig, Donoho & Pauly, MRM 58 (2007) 1182."
    )
    operators = _MRI_OPERATORS
    domain = "mri"
    returns_std = True
    uncertainty = "posterior"
    needs_adjoint = True
    params = (
        ITERATIONS(300),
        Param("prior", str, "wavelet", choices=("wavelet", "tv"), doc="ℓ1 of undecimated Haar wavelets, or TV"),
        Param("lam", float, None, 0.0, None, log_scale=True,
              doc="prior weight λ against ‖Ax−y‖²/2σ² (empty: the discrepancy principle of the MAP)"),
        Param("tau", float, 0.8, 0.1, 10.0, doc="discrepancy target of the MAP's automatic λ"),
        Param("n_samples", int, 32, 2, 1000, doc="posterior samples (one batch of conjugate-gradient solves)"),
        Param("cg_iterations", int, 200, 1, 5000, doc="conjugate-gradient steps per sample"),
        Param("floor", float, 3e-4, 1e-6, 1.0, log_scale=True,
              doc="ε of max(|Lx̂|, ε), relative to the MAP's largest magnitude (coefficients at zero stay near zero)"),
    )

    def run(self, y, A: MRIOperator, noise, ctx: Context, iterations: int, prior: str, lam: float | None, tau: float,
            n_samples: int, cg_iterations: int, floor: float) -> Estimate:
        t0 = time.perf_counter()
        sigma = _sigma(noise, A, y)
        if not sigma > 0:
            raise ValueError("sparse_laplace needs the noise level σ of the k-space (Gaussian noise).")
        reg: AnalysisRegularizer = (WaveletSparsity(A.ndim, wavelet="haar", levels=3) if prior == "wavelet"
                                    else TotalVariation(A.ndim))
        x_map, info = solve_regularized(y, A, Gaussian(sigma), reg, ctx, iterations=iterations, solver="primal_dual",
                                        lam=lam, tau=tau, positivity=False, tol=1e-4)
        theta = float(info["lam"])
        if not (theta >= 0 and theta < float("inf")):
            raise ValueError(f"The MAP's prior weight is {theta}; the data are within the noise of a flat image.")
        with torch.no_grad():
            eps = floor * float(x_map.abs().max().clamp(min=1e-30))
            D = sparse_precision(reg, x_map, theta, eps)
            Db = D.unsqueeze(1)  # coefficient axis first, then the batch of samples
            ridge = 1e-6 / sigma**2  # keeps H definite where neither the data nor the prior act

            def normal(v: torch.Tensor) -> torch.Tensor:
                return A.normal(v) / sigma**2 + reg.synthesis(Db * reg.analysis(v)) + ridge * v

            gen = ctx.generator(23)
            batch = n_samples + 1  # the first solve is unperturbed: the mean
            # noise on every value of y: Aᴴ masks out the unsampled k-space itself
            noise_y = sigma * _crandn((batch,) + tuple(y.shape), y, gen)
            coef_shape = (D.shape[0], batch) + tuple(D.shape[1:])
            noise_c = _crandn(coef_shape, x_map, gen)
            noise_y[0] = 0
            noise_c[:, 0] = 0
            b = A.apply_adjoint(y.unsqueeze(0) + noise_y) / sigma**2 + reg.synthesis(Db.sqrt() * noise_c)
            start = x_map.unsqueeze(0).expand((batch,) + tuple(x_map.shape)).clone()
            steps = {"n": 0}

            def progress(k: int, _x: torch.Tensor) -> None:
                steps["n"] = k + 1
                ctx.step(k, cg_iterations, x_map)

            X = conjugate_gradient(normal, b, start, iterations=cg_iterations, tol=1e-5, callback=progress)
            mean, samples = X[0], X[1:]
            spread = samples.abs() if samples.is_complex() else samples
            std = spread.std(0)
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all()):
            raise ValueError("sparse_laplace produced non-finite values; check σ and the data.")
        info = {**{k: v for k, v in info.items() if k in ("lam", "lam_choice", "misfit")},
                "map_iterations": info.get("iterations"), "iterations": info.get("iterations"),
                "cg_iterations": steps["n"], "sigma": sigma, "prior": prior, "floor": eps, "std_from": "samples",
                "std_of": "magnitude" if samples.is_complex() else "value", "wall_seconds": time.perf_counter() - t0}
        return Estimate(mean, std, samples, info)
