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


def _split(chains) -> np.ndarray:
    """Draws (chains, draws, *image) as split half-chains (2·chains, draws // 2, pixels), magnitudes if complex."""
    c = np.asarray(chains)
    if c.ndim < 2 or c.shape[1] < 4:
        raise ValueError("Mixing diagnostics need an array (chains, draws, ...) with at least 4 draws per chain.")
    c = np.abs(c) if np.iscomplexobj(c) else c
    c = c.astype(np.float64)
    m, n = c.shape[:2]
    half = n // 2
    c = c.reshape(m, n, -1)
    return np.concatenate([c[:, :half], c[:, n - half:]], axis=0)


def _z_scale(split: np.ndarray) -> np.ndarray:
    """Rank-normalize over all draws, per pixel: ``Φ⁻¹((r − 3/8) / (S + 1/4))`` (Vehtari et al. 2021, eq. 14)."""
    from scipy import stats

    flat = split.reshape(-1, split.shape[-1])
    ranks = stats.rankdata(flat, axis=0, method="average")
    return stats.norm.ppf((ranks - 0.375) / (flat.shape[0] + 0.25)).reshape(split.shape)


def _split_ranked(chains: np.ndarray) -> np.ndarray:
    """Split each chain in halves and rank-normalize over all draws, per pixel (Vehtari et al. 2021)."""
    return _z_scale(_split(chains))


def _variances(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Within-chain variance W and the pooled estimate var⁺ for chains (m, n, P)."""
    n = c.shape[1]
    w = c.var(axis=1, ddof=1).mean(axis=0)
    b_over_n = c.mean(axis=1).var(axis=0, ddof=1) if c.shape[0] > 1 else np.zeros_like(w)
    return w, (n - 1) / n * w + b_over_n


def _rhat(c: np.ndarray) -> np.ndarray:
    w, var_plus = _variances(c)
    return np.sqrt(var_plus / np.maximum(w, 1e-300))


def split_rhat(chains) -> np.ndarray:
    """Rank-normalized split-R̂ per pixel for draws shaped (chains, draws, *image): ``max(bulk, folded)``, the
    folded one (on ``|x − median|``) catching chains that differ in spread, not location. ≈ 1 when the chains
    mixed, > 1.01 when they disagree (Vehtari, Gelman, Simpson, Carpenter & Bürkner, Bayesian Analysis 16 (2021)
    667; as ``arviz``'s ``rhat(method="rank")``)."""
    split = _split(chains)
    bulk = _rhat(_z_scale(split))
    folded = _rhat(_z_scale(np.abs(split - np.median(split.reshape(-1, split.shape[-1]), axis=0))))
    return np.maximum(bulk, folded).reshape(np.asarray(chains).shape[2:])


def _ess(c: np.ndarray) -> np.ndarray:
    """ESS per pixel of chains (m, n, P): autocovariances by FFT, Geyer's initial positive then monotone
    sequence, step by step as ``arviz`` (Geyer, Stat. Sci. 7 (1992) 473; Vehtari et al. 2021)."""
    m, n, npix = c.shape
    centered = c - c.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(centered, n=2 * n, axis=1)
    acov = np.fft.irfft(spec * np.conj(spec), n=2 * n, axis=1)[:, :n] / n  # biased autocovariance (m, n, P)
    mean_var = acov[:, 0].mean(axis=0) * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n + (c.mean(axis=1).var(axis=0, ddof=1) if m > 1 else 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (mean_var - acov.mean(axis=0)) / var_plus  # (n, P)
    rho_t = np.zeros((n, npix))
    rho_t[0] = 1.0
    rho_t[1] = rho[1]
    even, odd = np.ones(npix), rho[1].copy()
    t_pix = np.ones(npix, dtype=np.int64)
    active = np.ones(npix, dtype=bool)
    t = 1
    while t < n - 3:  # initial positive sequence
        active &= (even + odd) > 0.0
        if not active.any():
            break
        e, o = rho[t + 1], rho[t + 2]
        even, odd = np.where(active, e, even), np.where(active, o, odd)
        keep = active & (e + o >= 0)
        rho_t[t + 1] = np.where(keep, e, rho_t[t + 1])
        rho_t[t + 2] = np.where(keep, o, rho_t[t + 2])
        t_pix = np.where(active, t + 2, t_pix)
        t += 2
    max_t = t_pix - 2
    cols = np.arange(npix)
    fix = even > 0
    rho_t[(max_t + 1)[fix], cols[fix]] = even[fix]
    t = 1
    while t <= int(max_t.max()) - 2:  # initial monotone sequence
        live = t <= max_t - 2
        worse = live & (rho_t[t + 1] + rho_t[t + 2] > rho_t[t - 1] + rho_t[t])
        avg = (rho_t[t - 1] + rho_t[t]) / 2.0
        rho_t[t + 1] = np.where(worse, avg, rho_t[t + 1])
        rho_t[t + 2] = np.where(worse, avg, rho_t[t + 2])
        t += 2
    lags = np.arange(n)[:, None]
    tau = -1.0 + 2.0 * np.where(lags <= max_t[None, :], rho_t, 0.0).sum(axis=0) + rho_t[max_t + 1, cols]
    total = m * n
    ess = total / np.maximum(tau, 1.0 / np.log10(total))
    flat = (c.max(axis=(0, 1)) - c.min(axis=(0, 1))) < np.finfo(float).resolution
    return np.where(flat, float(total), ess)


def effective_sample_size(chains, kind: str = "bulk") -> np.ndarray:
    """Effective sample size per pixel for draws (chains, draws, *image), as in Vehtari et al. (2021):

    ``"bulk"``: of the rank-normalized split chains (how well the center of the posterior is explored);
    ``"tail"``: the smaller ESS of the indicators ``x ≤ q₀.₀₅`` and ``x ≤ q₀.₉₅`` (how well the 5% and 95%
    quantiles, hence 90% intervals, are estimated). Agrees with ``arviz``'s ``ess(method="bulk" | "tail")``.
    """
    if kind not in ("bulk", "tail"):
        raise ValueError(f"kind must be 'bulk' or 'tail', got {kind!r}.")
    shape = np.asarray(chains).shape[2:]
    if kind == "bulk":
        return _ess(_split_ranked(chains)).reshape(shape)
    c = np.asarray(chains)
    c = (np.abs(c) if np.iscomplexobj(c) else c).astype(np.float64).reshape(c.shape[0], c.shape[1], -1)
    flat = c.reshape(-1, c.shape[-1])
    out = None
    for q in (0.05, 0.95):
        below = (c <= np.quantile(flat, q, axis=0)).astype(np.float64)
        e = _ess(_split(below))
        out = e if out is None else np.minimum(out, e)
    return out.reshape(shape)


def mixing_summary(chains) -> dict[str, float]:
    """Pixel summaries of R̂ (max of bulk and folded) and of bulk and tail ESS for draws (chains, draws, *image):
    what ``info`` of an MCMC run holds."""
    rhat = split_rhat(chains)
    ess = effective_sample_size(chains)
    tail = effective_sample_size(chains, "tail")
    return {
        "rhat_median": float(np.median(rhat)),
        "rhat_max": float(np.max(rhat)),
        "rhat_fraction_below_1.05": float(np.mean(rhat < 1.05)),
        "ess_min": float(np.min(ess)),
        "ess_median": float(np.median(ess)),
        "ess_tail_min": float(np.min(tail)),
        "ess_tail_median": float(np.median(tail)),
        "draws": int(np.asarray(chains).shape[0] * np.asarray(chains).shape[1]),
    }
