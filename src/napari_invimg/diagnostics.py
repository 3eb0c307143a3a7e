"""Honesty about failure: data-consistency residuals, coverage and std–error agreement."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from ._device import to_tensor
from .operators.base import Operator
from .operators.noise import NoiseModel
from .uncertainty import Reconstruction

__all__ = [
    "residual",
    "chi2",
    "coverage",
    "interval_halfwidth",
    "std_error_correlation",
    "split_rhat",
    "effective_sample_size",
    "mixing_summary",
]


def residual(y, A: Operator, x_hat, noise: NoiseModel) -> np.ndarray:
    """Normalised data misfit ``(y − A x̂) / sqrt(Var[y | A x̂])``, shaped like ``y``; ≈ N(0, 1) when the
    reconstruction explains the data down to the noise (structure in it means it does not)."""
    with torch.no_grad():
        A.to("cpu")
        z = A.forward(to_tensor(x_hat))
        r = noise.normalised_residual(to_tensor(y).to(z.dtype), z)
    return r.numpy()


def chi2(y, A: Operator, x_hat, noise: NoiseModel) -> float:
    """Reduced chi-square ``mean(|r|²)`` of :func:`residual` (≈ 1 for a good fit; ≫ 1 underfit, ≪ 1 overfit)."""
    r = residual(y, A, x_hat, noise)
    v = np.mean(np.abs(r) ** 2)
    return float(v / 2 if np.iscomplexobj(r) else v)


def interval_halfwidth(rec: Reconstruction, level: float = 0.9) -> np.ndarray:
    """Half-width of the central ``level`` interval for the next draw of the posterior.

    With ``n`` samples the predictive interval ``mean ± t_{n−1} · sd · sqrt(1 + 1/n)`` has the nominal
    coverage for a Gaussian posterior, where the raw ``mean ± z · sd`` under-covers (16 draws: ~0.87 at
    90%). Without samples the Gaussian quantile ``z`` is used.
    """
    if rec.std is None:
        raise ValueError("This reconstruction has no standard deviation; choose a method that returns one.")
    if not 0 < level < 1:
        raise ValueError("level must lie in (0, 1).")
    n = 0 if rec.samples is None else int(rec.samples.shape[0])
    if n >= 2 and "calibration" not in rec.info:
        q = stats.t.ppf(0.5 + level / 2, df=n - 1) * np.sqrt(1 + 1 / n)
    else:
        q = stats.norm.ppf(0.5 + level / 2)
    return q * rec.std


def coverage(rec: Reconstruction, x, level: float = 0.9) -> float:
    """Fraction of pixels whose truth ``x`` lies in the central ``level`` interval (see :func:`interval_halfwidth`)."""
    x = np.asarray(x)
    if x.shape != rec.mean.shape:
        raise ValueError(f"The ground truth {x.shape} and the reconstruction {rec.mean.shape} differ in shape.")
    err = np.abs(np.asarray(rec.mean) - x)
    return float(np.mean(err <= interval_halfwidth(rec, level)))


def std_error_correlation(rec: Reconstruction, x) -> float:
    """Pearson correlation between the std map and the absolute error map (does the std point at errors?)."""
    if rec.std is None:
        raise ValueError("This reconstruction has no standard deviation.")
    err = np.abs(np.asarray(rec.mean) - np.asarray(x)).ravel()
    s = np.asarray(rec.std).ravel()
    if err.std() == 0 or s.std() == 0:
        return 0.0
    return float(np.corrcoef(s, err)[0, 1])


def _split_ranked(chains: np.ndarray) -> np.ndarray:
    """Split each chain in halves and rank-normalise over all draws, per pixel (Vehtari et al. 2021)."""
    c = np.asarray(chains, dtype=np.float64)
    if c.ndim < 2 or c.shape[1] < 4:
        raise ValueError("Mixing diagnostics need an array (chains, draws, ...) with at least 4 draws per chain.")
    if np.iscomplexobj(c):
        c = np.abs(c)
    m, n = c.shape[:2]
    half = n // 2
    c = c.reshape(m, n, -1)
    split = np.concatenate([c[:, :half], c[:, n - half:]], axis=0)  # (2m, half, P)
    flat = split.reshape(-1, split.shape[-1])
    ranks = stats.rankdata(flat, axis=0, method="average")
    z = stats.norm.ppf((ranks - 0.375) / (flat.shape[0] + 0.25))
    return z.reshape(split.shape)


def _variances(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Within-chain variance W and the pooled estimate var⁺ for chains (m, n, P)."""
    n = c.shape[1]
    w = c.var(axis=1, ddof=1).mean(axis=0)
    b_over_n = c.mean(axis=1).var(axis=0, ddof=1)
    return w, (n - 1) / n * w + b_over_n


def split_rhat(chains) -> np.ndarray:
    """Rank-normalised split-R̂ per pixel for draws shaped (chains, draws, *image): ≈ 1 when the chains mixed,
    > 1.01 when they disagree (Vehtari, Gelman, Simpson, Carpenter & Bürkner, Bayesian Analysis 16 (2021) 667)."""
    z = _split_ranked(chains)
    w, var_plus = _variances(z)
    rhat = np.sqrt(var_plus / np.maximum(w, 1e-300))
    return rhat.reshape(np.asarray(chains).shape[2:])


def effective_sample_size(chains) -> np.ndarray:
    """Bulk effective sample size per pixel for draws (chains, draws, *image): rank-normalised split chains,
    autocorrelations by FFT and Geyer's initial monotone sequence (Geyer, Stat. Sci. 7 (1992) 473;
    Vehtari et al. 2021)."""
    z = _split_ranked(chains)
    m, n, _ = z.shape
    w, var_plus = _variances(z)
    centred = z - z.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(centred, n=2 * n, axis=1)
    acov = np.fft.irfft(spec * np.conj(spec), axis=1)[:, :n] / n  # biased autocovariance (m, n, P)
    rho = 1.0 - (w - acov.mean(axis=0)) / np.maximum(var_plus, 1e-300)
    rho[0] = 1.0
    pairs = n // 2
    p = rho[: 2 * pairs : 2] + rho[1 : 2 * pairs : 2]  # Geyer's sums of adjacent pairs (pairs, P)
    positive = np.cumprod(p > 0, axis=0).astype(bool)
    p = np.minimum.accumulate(np.where(positive, p, 0.0), axis=0)
    tau = np.maximum(-1.0 + 2.0 * p.sum(axis=0), 1.0 / np.log10(max(m * n, 10)))
    ess = m * n / tau
    return ess.reshape(np.asarray(chains).shape[2:])


def mixing_summary(chains) -> dict[str, float]:
    """Pixel summaries of split-R̂ and ESS for draws (chains, draws, *image): what ``info`` of an MCMC run holds."""
    rhat = split_rhat(chains)
    ess = effective_sample_size(chains)
    return {
        "rhat_median": float(np.median(rhat)),
        "rhat_max": float(np.max(rhat)),
        "rhat_fraction_below_1.05": float(np.mean(rhat < 1.05)),
        "ess_min": float(np.min(ess)),
        "ess_median": float(np.median(ess)),
        "draws": int(np.asarray(chains).shape[0] * np.asarray(chains).shape[1]),
    }
