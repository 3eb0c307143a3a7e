"""The result of a reconstruction (mean, standard deviation, samples and provenance) and the mixing
diagnostics of a sampler's chains (split-R̂, effective sample size)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Reconstruction", "UNCERTAINTY_KINDS", "split_rhat", "effective_sample_size", "mixing_summary"]

#: what a std means: samples of a posterior, or the spread of an ensemble over choices (not a posterior)
UNCERTAINTY_KINDS = ("posterior", "ensemble", None)


@dataclass
class Reconstruction:
    """``mean`` (the image's shape), optional ``std`` and ``samples`` (n, *shape), and ``info``.

    ``info`` holds: method, params, operator spec, noise spec, seed, device, seconds, iterations,
    history, uncertainty (``"posterior"``, ``"ensemble"`` or ``None``) and the package version — enough
    to replay the result.
    """

    mean: np.ndarray
    std: np.ndarray | None = None
    samples: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def uncertainty(self) -> str | None:
        return self.info.get("uncertainty")

    def interval(self, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Central ``level`` interval per pixel: mean ± z·std (Gaussian), the std already calibrated if set."""
        if self.std is None:
            raise ValueError("This reconstruction has no standard deviation; choose a method that returns one.")
        from scipy.stats import norm

        z = float(norm.ppf(0.5 + level / 2))
        return self.mean - z * self.std, self.mean + z * self.std

    def __repr__(self) -> str:
        std = "None" if self.std is None else f"{self.std.shape}"
        smp = "None" if self.samples is None else f"{self.samples.shape}"
        return (f"Reconstruction(method={self.info.get('method')!r}, mean={self.mean.shape}, std={std}, "
                f"samples={smp}, uncertainty={self.uncertainty!r})")


def _split_ranked(chains: np.ndarray) -> np.ndarray:
    """Split each chain in halves and rank-normalize over all draws, per pixel (Vehtari et al. 2021)."""
    from scipy import stats

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
    """Rank-normalized split-R̂ per pixel for draws shaped (chains, draws, *image): ≈ 1 when the chains mixed,
    > 1.01 when they disagree (Vehtari, Gelman, Simpson, Carpenter & Bürkner, Bayesian Analysis 16 (2021) 667)."""
    z = _split_ranked(chains)
    w, var_plus = _variances(z)
    rhat = np.sqrt(var_plus / np.maximum(w, 1e-300))
    return rhat.reshape(np.asarray(chains).shape[2:])


def effective_sample_size(chains) -> np.ndarray:
    """Bulk effective sample size per pixel for draws (chains, draws, *image): rank-normalized split chains,
    autocorrelations by FFT and Geyer's initial monotone sequence (Geyer, Stat. Sci. 7 (1992) 473;
    Vehtari et al. 2021)."""
    z = _split_ranked(chains)
    m, n, _ = z.shape
    w, var_plus = _variances(z)
    centered = z - z.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(centered, n=2 * n, axis=1)
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
