"""A linear-Gaussian toy problem whose posterior is known in closed form, for checking samplers.

x ~ N(m, s² I), y = A x + N(0, σ² I)  ⇒  x | y ~ N(μ, P⁻¹) with P = AᵀA/σ² + I/s², μ = P⁻¹(Aᵀy/σ² + m/s²).
For x ~ N(m, s² I) the MMSE denoiser at noise level τ is exact: D(x, τ) = m + s²/(s² + τ²) (x − m).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import napari_invimg as ni
from napari_invimg.methods._posterior import Potential
from napari_invimg.priors.denoisers import Denoiser

PRIOR_MEAN = 0.5
PRIOR_STD = 0.2


class GaussianToyDenoiser(Denoiser):
    """Exact MMSE denoiser of the toy prior N(0.5, 0.2² I)."""

    name = "gaussian_toy"

    def denoise(self, x: torch.Tensor, sigma: float, ndim: int) -> torch.Tensor:
        s2 = PRIOR_STD**2
        return PRIOR_MEAN + s2 / (s2 + sigma**2) * (x - PRIOR_MEAN)


class GaussianPotential(Potential):
    """U(x) = |x − m|² / 2 v per batch element."""

    def __init__(self, variance: float, ndim: int = 2):
        self.variance, self.ndim = variance, ndim
        self.lipschitz = 1.0 / variance

    def grad(self, x):
        return (x - PRIOR_MEAN) / self.variance

    def value(self, x):
        return ((x - PRIOR_MEAN) ** 2).sum(dim=(-2, -1)) / (2 * self.variance)


@dataclass
class Toy:
    x: np.ndarray
    y: np.ndarray
    A: ni.operators.Blur
    noise: ni.noise.Gaussian
    mean: np.ndarray  # exact posterior mean
    std: np.ndarray  # exact marginal posterior std
    precision: np.ndarray


def dense(A, shape) -> np.ndarray:
    n = int(np.prod(shape))
    basis = torch.eye(n, dtype=torch.float64).reshape((n,) + tuple(shape)).float()
    with torch.no_grad():
        cols = A.apply(basis).reshape(n, -1).double().numpy()
    return cols.T  # (m, n)


def posterior(A, y: np.ndarray, sigma: float, prior_var: float, shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    M = dense(A, shape)
    P = M.T @ M / sigma**2 + np.eye(M.shape[1]) / prior_var
    cov = np.linalg.inv(P)
    mu = cov @ (M.T @ y.ravel().astype(np.float64) / sigma**2 + PRIOR_MEAN / prior_var)
    return mu.reshape(shape), np.sqrt(np.diag(cov)).reshape(shape), P


def make_toy(shape=(16, 16), sigma=0.05, seed=0, prior_var: float = PRIOR_STD**2, blur=1.0) -> Toy:
    rng = np.random.default_rng(seed)
    x = (PRIOR_MEAN + PRIOR_STD * rng.standard_normal(shape)).astype(np.float32)
    A = ni.operators.Blur(ni.psf.gaussian((5, 5), sigma=blur), shape, boundary="circular")
    noise = ni.noise.Gaussian(sigma)
    y = ni.simulate(x, A, noise, seed=seed)
    mu, sd, P = posterior(A, y, sigma, prior_var, shape)
    return Toy(x, y, A, noise, mu, sd, P)


def exact_coverage(mean, std, post_mean, post_std, level: float = 0.9) -> float:
    """Expected fraction of pixels whose value, drawn from the exact posterior N(post_mean, post_std²), lies in
    mean ± z·std (the coverage the sampler's intervals would have, without the noise of one random truth)."""
    from scipy.stats import norm

    z = norm.ppf(0.5 + level / 2)
    hi = (mean + z * std - post_mean) / post_std
    lo = (mean - z * std - post_mean) / post_std
    return float(np.mean(norm.cdf(hi) - norm.cdf(lo)))

